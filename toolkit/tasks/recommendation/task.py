"""Recommendation: two-tower retrieval and rating models, ranking/rating metrics, top-k serving export.

Models (`model.kind`), both over user and item *towers*: an id embedding
plus, when the data has them (`model.user_features` / `item_features`),
the user's / item's features looked up inside the model from frozen tables
(numeric columns standardised, categorical ones through their own
embeddings, multi-hot ones such as genres through a linear projection;
`model.item_text` adds the titles embedded once by a pretrained KerasHub
text encoder), then `model.hidden` ReLU layers.

- `retrieval`: each tower ends in a `model.embedding_dim` projection,
  L2-normalised; trained on the training positives with an in-batch
  sampled softmax over the cosine similarity / `model.temperature`, with
  the logQ correction of sampled softmax (`keras_rs.layers.
  SamplingProbabilityCorrection`, item probability = its share of training
  positives) and accidental hits (the same item twice in a batch) removed
  (`keras_rs.layers.RemoveAccidentalHits`). Serving scores every item
  against the user (brute force) and returns the top k.
- `rating`: a DCN (`keras_rs.layers.FeatureCross` cross layers beside a
  deep ReLU stack) over both towers, plus a matrix-factorisation term (dot
  product of user and item factors) and user/item biases, on top of the
  training mean rating; trained with mean squared error.

Metrics: RMSE and MAE (Keras metrics; rating models), and over all items,
with each user's training items excluded, Recall@k, NDCG@k, MAP@k
(`keras_rs.metrics`), hit rate@k and catalogue coverage@k, for the model
and, side by side on the same split, the most-popular and user/item-bias
baselines (`baselines`).

Serving: SavedModel `recommend` (raw user ids, k -> item ids, titles,
scores, known), `score` (raw user and item ids -> score) with the id maps,
titles and the users' already-seen items inside; ONNX of the scoring
network ((user index, item index) -> score), which `toolkit predict x.onnx
--user 42` runs as brute force over all items with the metadata's id maps.
Unknown user ids fail with a clear error, or get the most popular items
(`data.unknown_ids: popular`).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> make_task(load_recipe("recipes/recommendation/movielens_retrieval.yaml")).name
'recommendation'
"""

import os
from typing import Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from toolkit.config.schema import ExportConfig, Recipe, StrictModel
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError, RecipeError, preset_error
from toolkit.tasks.base import Task
from toolkit.tasks.recommendation.config import RecommendationDataConfig
from toolkit.tasks.recommendation.predictor import RecommendationPredictor, Scorer, pack_ints, scoring_model, seen_items
from toolkit.tasks.recommendation.sources import RECOMMENDATION_SOURCES

# ----------------------------------------------------------------------- recipe


class ItemTextConfig(StrictModel):
    """Item titles embedded by a pretrained KerasHub text encoder, frozen, as an item feature."""

    backbone: str = Field(..., description="hub:<preset or local preset dir> of a KerasHub text encoder with a "
                                           "TextClassifierPreprocessor (BERT, RoBERTa, DistilBERT, ...)")
    sequence_length: PositiveInt = Field(32, description="title tokens kept")

    @field_validator("backbone")
    @classmethod
    def _check_backbone(cls, value):
        if not value.startswith("hub:") or len(value) == 4:
            raise ValueError(f"{value!r}: write hub:<preset name or local preset dir>, e.g. hub:bert_tiny_en_uncased")
        return value


class RecommenderModelConfig(StrictModel):
    """Towers and heads of a recommender."""

    kind: Literal["retrieval", "rating"] = Field("retrieval", description="retrieval (two towers, top-k) or "
                                                 "rating (DCN, predicts the rating)")
    embedding_dim: PositiveInt = Field(32, description="id embedding size (and retrieval output size)")
    feature_dim: PositiveInt = Field(8, description="size of each categorical / multi-hot feature embedding")
    user_features: bool = Field(True, description="use the data's user features (e.g. age, gender, occupation)")
    item_features: bool = Field(True, description="use the data's item features (e.g. genres, year)")
    hidden: list[PositiveInt] = Field(default_factory=lambda: [64], description="ReLU layers of each tower "
                                      "(retrieval) or of the deep part (rating)")
    cross_layers: NonNegativeInt = Field(2, description="rating: DCN cross layers")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after hidden layers")
    embedding_l2: float = Field(0.0, ge=0.0, description="L2 penalty on the id embeddings and biases")
    temperature: PositiveFloat = Field(0.1, description="retrieval: softmax temperature of the cosine scores")
    logq_correction: bool = Field(True, description="retrieval: subtract log(item sampling probability)")
    towers: Optional[str] = Field(None, description="run:<run dir> of a recommender trained on the same data: its "
                                  "id embeddings and feature layers initialise this model's towers")
    item_text: Optional[ItemTextConfig] = Field(None, description="embed item titles with a pretrained text "
                                                "backbone (mean of its token outputs, frozen) as an item feature")

    @field_validator("towers")
    @classmethod
    def _check_towers(cls, value):
        if value is not None and (not value.startswith("run:") or len(value) == 4):
            raise ValueError(f"{value!r}: write run:<run directory>, e.g. run:saved_models/movielens_retrieval")
        return value


class RecommenderEvaluationConfig(StrictModel):
    """Ranking evaluation over all items."""

    k: list[PositiveInt] = Field(default_factory=lambda: [10, 20], description="cut-offs of the @k metrics")
    baselines: bool = Field(True, description="also score the most-popular and user/item-bias baselines")


class RecommendationExportConfig(ExportConfig):
    """Export settings: score parity plus identical top-k lists."""

    parity_tolerance: PositiveFloat = Field(1e-4, description="max abs difference of scores allowed")
    verify_samples: PositiveInt = Field(32, description="held-out test (user, item) pairs used for verification")
    top_k: PositiveInt = Field(10, description="items `toolkit predict` returns by default")


class RecommendationRecipe(Recipe):
    """Recipe of a recommendation run."""

    task: Literal["recommendation"] = Field(..., description="task name")
    data: RecommendationDataConfig = Field(default_factory=RecommendationDataConfig, description="data")
    model: RecommenderModelConfig = Field(default_factory=RecommenderModelConfig, description="model")
    evaluation: RecommenderEvaluationConfig = Field(default_factory=RecommenderEvaluationConfig,
                                                    description="evaluation")
    export: RecommendationExportConfig = Field(default_factory=RecommendationExportConfig,
                                               description="export and verification")


# ------------------------------------------------------------- item features


def embed_texts(texts, config):
    """Mean-pooled token outputs of a KerasHub text encoder preset (frozen): float32 [len(texts), hidden]."""
    import keras_hub

    preset = config.backbone[4:]
    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=config.sequence_length)
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:  # noqa: BLE001 - any loading failure becomes one recipe error
        raise preset_error("model.item_text.backbone", preset, error, "a text encoder preset")
    vectors = []
    for start in range(0, len(texts), 256):
        inputs = preprocessor(list(texts[start:start + 256]))
        outputs = backbone(inputs, training=False)
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        mask = np.asarray(inputs["padding_mask"], np.float32)[:, :, None]
        vectors.append((np.asarray(sequence) * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0))
    return np.concatenate(vectors).astype(np.float32)


def feature_columns(features, use):
    """A frozen table (float32 [n, columns]) of a `Features` object and how to read it.

    Returns:
        (table or None, spec): spec is a list of {"name", "kind", "start", "width", "vocabulary"}.
    """
    if not use or not features.arrays:
        return None, []
    columns, spec, start = [], [], 0
    for name in features.names():
        kind, array = features.kinds[name], np.asarray(features.arrays[name])
        if kind == "numeric":
            array = array.astype(np.float32)
            std = float(array.std()) or 1.0
            array = ((array - float(array.mean())) / std)[:, None]
        elif kind == "categorical":
            array = array.astype(np.float32)[:, None]
        else:
            array = array.astype(np.float32)
        spec.append({"name": name, "kind": kind, "start": start, "width": int(array.shape[1]),
                     "vocabulary": len(features.vocabularies.get(name, [])) or int(array.max(initial=0)) + 1})
        columns.append(array)
        start += int(array.shape[1])
    return np.concatenate(columns, axis=1), spec


# -------------------------------------------------------------------- layers

_LAYERS = {}


def in_batch_logits_class():
    """`toolkit>InBatchLogits`: in-batch sampled-softmax logits of a two-tower model (registered on first use)."""
    if "in_batch" in _LAYERS:
        return _LAYERS["in_batch"]
    import keras
    import keras_rs

    @keras.saving.register_keras_serializable(package="toolkit")
    class InBatchLogits(keras.layers.Layer):
        """[user vectors, item vectors, item ids, item sampling probabilities] -> logits [batch, batch];
        the label of row i is column i (its own item)."""

        def __init__(self, temperature=0.1, logq_correction=True, **kwargs):
            super().__init__(**kwargs)
            self.temperature = float(temperature)
            self.logq_correction = bool(logq_correction)
            self.correction = keras_rs.layers.SamplingProbabilityCorrection()
            self.remove_hits = keras_rs.layers.RemoveAccidentalHits()

        def build(self, input_shape):
            self.built = True  # no weights of its own

        def call(self, inputs):
            from keras import ops

            users, items, item_ids, probabilities = inputs
            logits = ops.matmul(users, ops.transpose(items)) / self.temperature
            if self.logq_correction:
                logits = self.correction(logits, probabilities)
            labels = ops.eye(ops.shape(logits)[0], dtype=logits.dtype)
            return self.remove_hits(logits, labels, item_ids)

        def compute_output_shape(self, input_shape):
            return (input_shape[0][0], input_shape[1][0])

        def get_config(self):
            return {**super().get_config(), "temperature": self.temperature,
                    "logq_correction": self.logq_correction}

    _LAYERS["in_batch"] = InBatchLogits
    return InBatchLogits


def build_tower(prefix, count, table, spec, config, name, project):
    """A tower: index -> id embedding + features (frozen table lookups) -> hidden layers [-> unit vector]."""
    import keras
    from keras import layers, ops

    regularizer = keras.regularizers.L2(config.embedding_l2) if config.embedding_l2 else None
    index = keras.Input((), dtype="int32", name=f"{prefix}_index")
    parts = [layers.Embedding(count, config.embedding_dim, embeddings_regularizer=regularizer,
                              name=f"{prefix}_embedding")(index)]
    table_layer = None
    if table is not None:
        table_layer = layers.Embedding(count, table.shape[1], trainable=False, name=f"{prefix}_feature_table")
        rows = table_layer(index)
        for column in spec:
            values = rows[:, column["start"]:column["start"] + column["width"]]
            if column["kind"] == "numeric":
                parts.append(values)
            elif column["kind"] == "categorical":
                codes = ops.cast(values[:, 0], "int32")
                parts.append(layers.Embedding(column["vocabulary"], config.feature_dim,
                                              name=f"{prefix}_{column['name']}_embedding")(codes))
            else:  # multi-hot (genres) or dense (title text embeddings): a linear projection
                parts.append(layers.Dense(config.feature_dim, use_bias=False,
                                          name=f"{prefix}_{column['name']}_projection")(values))
    x = layers.Concatenate(name=f"{prefix}_inputs")(parts) if len(parts) > 1 else parts[0]
    for number, units in enumerate(config.hidden):
        x = layers.Dense(units, activation="relu", name=f"{prefix}_hidden_{number + 1}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"{prefix}_dropout_{number + 1}")(x)
    if project:
        x = layers.Dense(config.embedding_dim, dtype="float32", name=f"{prefix}_projection")(x)  # float32 if mixed
        x = layers.UnitNormalization(name=f"{prefix}_normalize")(x)
    tower = keras.Model(index, x, name=name)
    if table_layer is not None:
        table_layer.set_weights([table])
    return tower


# ------------------------------------------------------------------------- task


class RecommendationTask(Task):
    """Recommendation: interactions, two-tower retrieval or DCN rating model, ranking metrics, top-k serving."""

    name = "recommendation"
    predictor = RecommendationPredictor
    config_class = RecommendationRecipe
    sources = RECOMMENDATION_SOURCES
    path_source = "csv"
    tfrecord_note = "an interaction table is small (one array per column)"
    input_kind = "user"
    tflite_unsupported_reason = "its top-k lookup over every item is served from the SavedModel"
    default_monitor = "val_loss"

    def use_data(self, data):
        if isinstance(data, dict) and "user" in data:  # one table given as columns
            data = {"train": data}
        super().use_data(data)

    def data_from_user(self, user):
        from toolkit.tasks.recommendation.sources import recommendation_data

        return recommendation_data(user, self.recipe.data, self.recipe.train.seed)

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._report = {}
        self.metadata = None
        self._server = None
        self.backbone = _Towers(recipe.model.towers is not None)

    def check_references(self):
        from toolkit.references import check_preset, check_run

        model = self.recipe.model
        if model.towers:
            check_run("model.towers", model.towers[4:], lambda metadata: metadata.get("task") == self.name,
                      "a recommendation run trained on the same data")
        if model.item_text:
            check_preset("model.item_text.backbone", model.item_text.backbone[4:], "a text encoder preset")

    @property
    def data(self):
        if self._data is None:
            self._data = self.read_data()
            if not len(self._data.splits["train"]):
                raise DataError("data: the train split is empty")
        return self._data

    # Data ---------------------------------------------------------------
    def build_inputs(self, split, training=False):
        import tensorflow as tf

        data = self.data
        retrieval = self.recipe.model.kind == "retrieval"
        rows = data.positives(split) if retrieval else data.splits[split]
        self._report[split] = {**data.report.get(split, {}), "examples": len(rows)}
        if not len(rows):
            return None
        batch = self.recipe.train.batch_size
        if retrieval:
            popularity = data.item_popularity().astype(np.float64)
            probability = (popularity / max(popularity.sum(), 1.0)).astype(np.float32)
            dataset = tf.data.Dataset.from_tensor_slices({"user": rows.users, "item": rows.items,
                                                          "item_probability": probability[rows.items]})
        else:
            dataset = tf.data.Dataset.from_tensor_slices(((rows.users, rows.items), rows.ratings))
        if training:
            dataset = dataset.shuffle(len(rows), seed=self.recipe.train.seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch)
        if retrieval:  # the label of each row is its own item: column i of row i
            dataset = dataset.map(lambda x: (x, tf.eye(tf.shape(x["user"])[0])))
        return prefetched(dataset)

    def data_report(self):
        return self._report

    def build_preprocessor(self):
        return None

    # Model --------------------------------------------------------------
    def build_model(self):
        import keras
        from keras import layers, ops

        config, data = self.recipe.model, self.data
        user_table, user_spec = feature_columns(data.user_features, config.user_features)
        item_table, item_spec = feature_columns(data.item_features, config.item_features)
        if config.item_text:
            text = embed_texts([str(t) for t in data.item_titles.tolist()], config.item_text)
            start = 0 if item_table is None else item_table.shape[1]
            item_spec = item_spec + [{"name": "title_text", "kind": "dense", "start": start,
                                      "width": int(text.shape[1]), "vocabulary": 0}]
            item_table = text if item_table is None else np.concatenate([item_table, text], axis=1)
        retrieval = config.kind == "retrieval"
        user_tower = build_tower("user", data.num_users, user_table, user_spec, config, "user_tower", retrieval)
        item_tower = build_tower("item", data.num_items, item_table, item_spec, config, "item_tower", retrieval)
        if retrieval:
            user = keras.Input((), dtype="int32", name="user")
            item = keras.Input((), dtype="int32", name="item")
            probability = keras.Input((), dtype="float32", name="item_probability")
            logits = in_batch_logits_class()(config.temperature, config.logq_correction, name="in_batch_logits")(
                [user_tower(user), item_tower(item), item, probability])
            model = keras.Model({"user": user, "item": item, "item_probability": probability}, logits,
                                name=f"{self.recipe.name or 'recommender'}_retrieval")
        else:
            import keras_rs

            user = keras.Input((), dtype="int32", name="user")
            item = keras.Input((), dtype="int32", name="item")
            u, i = user_tower(user), item_tower(item)
            x0 = layers.Concatenate(name="both_towers")([u, i])
            cross = x0
            for number in range(config.cross_layers):
                cross = keras_rs.layers.FeatureCross(name=f"cross_{number + 1}")(x0, cross)
            deep = x0
            for number, units in enumerate(config.hidden):
                deep = layers.Dense(units, activation="relu", name=f"deep_{number + 1}")(deep)
            regularizer = keras.regularizers.L2(config.embedding_l2) if config.embedding_l2 else None
            mean = float(np.mean(data.splits["train"].ratings))
            head = layers.Dense(1, bias_initializer=keras.initializers.Constant(mean), name="rating_head")(
                layers.Concatenate(name="cross_and_deep")([cross, deep]))
            # Matrix factorisation term: its own factors (a layer shared with a tower would be saved twice
            # and the .keras file would not load).
            user_factors = layers.Embedding(data.num_users, config.embedding_dim, embeddings_regularizer=regularizer,
                                            name="user_factors")(user)
            item_factors = layers.Embedding(data.num_items, config.embedding_dim, embeddings_regularizer=regularizer,
                                            name="item_factors")(item)
            dot = ops.sum(user_factors * item_factors, axis=-1, keepdims=True)
            user_bias = layers.Embedding(data.num_users, 1, embeddings_initializer="zeros",
                                         embeddings_regularizer=regularizer, name="user_bias")(user)
            item_bias = layers.Embedding(data.num_items, 1, embeddings_initializer="zeros",
                                         embeddings_regularizer=regularizer, name="item_bias")(item)
            rating = layers.Add(name="rating")([head, dot, user_bias, item_bias])[:, 0]
            model = keras.Model([user, item], rating, name=f"{self.recipe.name or 'recommender'}_rating")
        if config.towers:
            self._initialise_towers(model)
        return model

    def _initialise_towers(self, model):
        """Copies the id embeddings and feature layers of a `run:` recommender trained on the same ids."""
        from toolkit.model_io import load_keras_file
        from toolkit.references import run_metadata

        directory = self.recipe.model.towers[4:]
        try:
            metadata = run_metadata("model.towers", directory)
        except RecipeError as error:
            raise RecipeError(f"model.towers: {directory} is not a finished run ({str(error).splitlines()[0]}); "
                              "train the retrieval recipe first")
        if metadata.get("task") != self.name:
            raise RecipeError(f"model.towers: {directory} is a {metadata.get('task')} run, not a recommender")
        mine = self.model_metadata()
        if metadata.get("user_ids") != mine["user_ids"] or metadata.get("item_ids") != mine["item_ids"]:
            raise RecipeError(f"model.towers: {directory} was trained on other users/items (another data source or "
                              "split); use a run of the same data settings")
        source = load_keras_file(os.path.join(directory, "model.keras"))
        copied = 0
        for tower in ("user_tower", "item_tower"):
            theirs = {layer.name: layer for layer in source.get_layer(tower).layers}
            for layer in model.get_layer(tower).layers:
                other = theirs.get(layer.name)
                if other is None or not layer.weights:
                    continue
                if [w.shape for w in layer.weights] == [w.shape for w in other.weights]:
                    layer.set_weights(other.get_weights())
                    copied += 1
        if not copied:
            raise RecipeError(f"model.towers: no layer of {directory} matches this model (embedding_dim, features); "
                              "use the same model.embedding_dim and feature settings")

    def backbone_layer(self, model):
        return model

    def build_losses(self):
        import keras

        if self.recipe.model.kind == "retrieval":
            return keras.losses.CategoricalCrossentropy(from_logits=True)
        return keras.losses.MeanSquaredError()

    def build_metrics(self):
        import keras

        if self.recipe.model.kind == "retrieval":
            return [keras.metrics.CategoricalAccuracy(name="in_batch_accuracy")]
        return [keras.metrics.RootMeanSquaredError(name="rmse")]

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        data = self.data
        seen = data.items_by_user("train")
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in seen])]).astype(np.int32)
        popularity = data.item_popularity()
        self.metadata = {
            "task": self.name,
            "input": self.input_kind,
            "kind": self.recipe.model.kind,
            "user_ids": [str(u) for u in data.user_ids.tolist()],
            "item_ids": [str(i) for i in data.item_ids.tolist()],
            "item_titles": [str(t) for t in data.item_titles.tolist()],
            "seen": {"offsets": pack_ints(offsets), "items": pack_ints(np.concatenate(seen) if seen else [])},
            "popular": [int(i) for i in np.argsort(-popularity, kind="stable")],  # every item: any k works
            "unknown_ids": self.recipe.data.unknown_ids,
            "top_k": self.recipe.export.top_k,
            "rating_scale": data.info.get("rating_scale"),
            # Rating models answer within the training ratings' range (older runs answer unclipped).
            "clip_to_rating_scale": self.recipe.model.kind == "rating" and bool(data.info.get("rating_scale")),
            "item_text": self.recipe.model.item_text.backbone if self.recipe.model.item_text else None,
            "data_provenance": data.provenance,
        }
        return self.metadata

    # Evaluation ---------------------------------------------------------
    def evaluate(self, model, split="test"):
        data = self.data
        if not len(data.splits.get(split, [])):
            raise DataError(f"data: there is no {split} split to evaluate on")
        metadata = self.model_metadata()
        scorer = Scorer(model, metadata)
        ks = self.recipe.evaluation.k
        scores = scorer.all_scores(np.arange(data.num_users, dtype=np.int32))
        metrics = {"examples": int(len(data.splits[split])), "kind": self.recipe.model.kind,
                   **ranking_metrics(scores, data, split, ks)}
        if self.recipe.model.kind == "rating":
            rows = data.splits[split]
            metrics.update(rating_metrics(scorer.ratings(rows.users, rows.items), rows.ratings))
        if split == "test" and len(data.splits.get("validation", [])):
            metrics["validation"] = ranking_metrics(scores, data, "validation", ks)
            if self.recipe.model.kind == "rating":
                rows = data.splits["validation"]
                metrics["validation"].update(rating_metrics(scorer.ratings(rows.users, rows.items), rows.ratings))
        if split == "test" and self.recipe.evaluation.baselines:
            metrics["baselines"] = baseline_metrics(data, split, ks)
        return metrics

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        import tensorflow as tf

        server = Server(model, self.model_metadata())
        self._server = server
        return {
            "serving_default": (server.recommend, [tf.TensorSpec([None], tf.string, name="user_id"),
                                                   tf.TensorSpec([], tf.int32, name="k")]),
            "recommend": (server.recommend, [tf.TensorSpec([None], tf.string, name="user_id"),
                                             tf.TensorSpec([], tf.int32, name="k")]),
            "score": (server.score, [tf.TensorSpec([None], tf.string, name="user_id"),
                                     tf.TensorSpec([None], tf.string, name="item_id")]),
        }

    def serving_resources(self):
        return self._server.resources() if self._server else []

    def onnx_model(self, model):
        return scoring_model(model, self.model_metadata())

    def onnx_signature(self):
        import tensorflow as tf

        return [tf.TensorSpec([None], tf.int32, name="user"), tf.TensorSpec([None], tf.int32, name="item")]

    def verification_samples(self, count):
        data, rows = self.data, self.data.splits["test"]
        return [(str(data.user_ids[u]), str(data.item_ids[i]), float(r))
                for u, i, r in zip(rows.users[:count], rows.items[:count], rows.ratings[:count])]

    def save_samples(self, samples, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "pairs.tsv"), "w", encoding="utf-8") as f:
            f.write("user\titem\trating\n")
            for user, item, rating in samples:
                f.write(f"{user}\t{item}\t{rating}\n")


class _Towers:
    """The towers are trained whole (no frozen phase); `pretrained` when initialised from a `run:`."""

    def __init__(self, pretrained):
        self.pretrained = pretrained


# ------------------------------------------------------------------- serving


class Server:
    """The SavedModel's `recommend` and `score` functions: id maps, titles and seen items inside the graph."""

    def __init__(self, model, metadata):
        import tensorflow as tf

        self.network = scoring_model(model, metadata)
        self.metadata = metadata
        count = len(metadata["item_ids"])
        self.user_table = _lookup(metadata["user_ids"])
        self.item_table = _lookup(metadata["item_ids"])
        self.item_ids = tf.constant(metadata["item_ids"])
        self.titles = tf.constant(metadata["item_titles"])
        seen = seen_items(metadata)
        self.seen = tf.RaggedTensor.from_row_lengths(
            tf.constant(np.concatenate(seen) if seen else np.zeros(0, np.int32), tf.int32),
            tf.constant([len(s) for s in seen], tf.int64))
        self.popular = tf.constant(np.asarray(metadata["popular"][:count], np.int32))
        self.everything = tf.range(count, dtype=tf.int32)
        self.fallback = metadata.get("unknown_ids") == "popular"

    def resources(self):
        return [self.user_table, self.item_table]

    def _users(self, user_id):
        import tensorflow as tf

        index = tf.cast(self.user_table.lookup(user_id), tf.int32)
        if not self.fallback:
            tf.debugging.assert_non_negative(index, message="unknown user id: the model knows only users seen "
                                                            "in training")
        return index

    def recommend(self, user_id, k):
        import tensorflow as tf

        users = self._users(user_id)
        batch, count = tf.shape(users)[0], tf.shape(self.everything)[0]
        k = tf.minimum(k, count)
        known = users >= 0
        safe = tf.maximum(users, 0)
        scores = self.network([tf.repeat(safe, count), tf.tile(self.everything, [batch])], training=False)
        scores = tf.reshape(tf.cast(scores, tf.float32), [batch, count])
        seen = tf.gather(self.seen, safe)
        hits = tf.scatter_nd(tf.stack([tf.cast(seen.value_rowids(), tf.int32), seen.flat_values], axis=1),
                             tf.ones_like(seen.flat_values, tf.float32), [batch, count])
        scores = tf.where(hits > 0, tf.constant(-np.inf, tf.float32), scores)
        # The same order as NumPy's stable argsort of -score: ties broken by the lower item index.
        top = tf.math.top_k(scores, k=k, sorted=True)
        indices, values = top.indices, top.values
        popular = tf.tile(self.popular[None, :k], [batch, 1])
        indices = tf.where(known[:, None], indices, popular)
        values = tf.where(known[:, None], values, tf.zeros_like(values))
        return {"item_ids": tf.gather(self.item_ids, indices), "titles": tf.gather(self.titles, indices),
                "scores": self._clip(values), "known": known}

    def _clip(self, scores):
        import tensorflow as tf

        scale = self.metadata.get("rating_scale")
        if not self.metadata.get("clip_to_rating_scale") or not scale:
            return scores
        clipped = tf.clip_by_value(scores, np.float32(scale[0]), np.float32(scale[1]))
        return tf.where(tf.math.is_inf(scores) & (scores < 0), scores, clipped)  # seen items stay -inf

    def score(self, user_id, item_id):
        import tensorflow as tf

        users = self._users(user_id)
        items = tf.cast(self.item_table.lookup(item_id), tf.int32)
        tf.debugging.assert_non_negative(items, message="unknown item id: the model knows only items seen in training")
        scores = self.network([tf.maximum(users, 0), items], training=False)
        scores = self._clip(tf.cast(tf.reshape(scores, [-1]), tf.float32))
        return {"score": tf.where(users >= 0, scores, tf.fill(tf.shape(scores), np.float32(np.nan))),
                "known": users >= 0}


def _lookup(keys):
    import tensorflow as tf

    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys), tf.range(len(keys), dtype=tf.int64)), default_value=-1)


# ------------------------------------------------------------------- metrics


def ranking_metrics(scores, data, split, ks):
    """Recall/NDCG/MAP (keras_rs.metrics), hit rate and coverage @k over all items.

    Args:
        scores: float [users, items], every training user's score of every item.
        data: RecommendationData. Relevant items are the split's positives;
            each user's training items are masked out (never recommended).
        split: str. "test" or "validation".
        ks: list of int.

    Returns:
        {"recall@k", "ndcg@k", "map@k", "hit_rate@k", "coverage@k", "users"} for each k.
    """
    import keras_rs

    relevant = data.items_by_user(split, positives_only=True)
    train = data.items_by_user("train")
    users = np.asarray([u for u in range(data.num_users) if len(relevant[u])], np.int32)
    if not len(users):
        return {"users": 0}
    labels = np.zeros((len(users), data.num_items), np.float32)
    mask = np.ones((len(users), data.num_items), bool)
    for row, user in enumerate(users):
        labels[row, relevant[user]] = 1.0
        mask[row, train[user]] = False
    masked = np.where(mask, scores[users], -np.inf)
    result = {"users": int(len(users))}
    for k in ks:
        for name, metric in (("recall", keras_rs.metrics.RecallAtK), ("ndcg", keras_rs.metrics.NDCG),
                             ("map", keras_rs.metrics.MeanAveragePrecision)):
            instance = metric(k=k, shuffle_ties=False)
            instance.update_state({"labels": labels, "mask": mask}, scores[users])
            result[f"{name}@{k}"] = float(instance.result())
        top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        result[f"hit_rate@{k}"] = float(np.mean(np.take_along_axis(labels, top, axis=1).max(axis=1)))
        result[f"coverage@{k}"] = float(len(np.unique(top)) / data.num_items)
    return result


def rating_metrics(predicted, ratings):
    """RMSE and MAE (Keras metrics) of predicted ratings."""
    import keras

    figures = {}
    for name, metric in (("rmse", keras.metrics.RootMeanSquaredError()), ("mae", keras.metrics.MeanAbsoluteError())):
        metric.update_state(np.asarray(ratings, np.float32), np.asarray(predicted, np.float32))
        figures[name] = float(metric.result())
    return figures


def bias_baseline(data, regularization=(10.0, 15.0), iterations=10):
    """Rating = mean + user bias + item bias, fitted by alternating regularised least squares
    (Koren's baseline predictor). Returns (mean, user biases, item biases)."""
    rows = data.splits["train"]
    mean = float(np.mean(rows.ratings))
    user_bias, item_bias = np.zeros(data.num_users), np.zeros(data.num_items)
    for _ in range(iterations):
        residual = rows.ratings - mean - user_bias[rows.users]
        item_bias = np.bincount(rows.items, residual, data.num_items) / (
            regularization[0] + np.bincount(rows.items, minlength=data.num_items))
        residual = rows.ratings - mean - item_bias[rows.items]
        user_bias = np.bincount(rows.users, residual, data.num_users) / (
            regularization[1] + np.bincount(rows.users, minlength=data.num_users))
    return mean, user_bias, item_bias


def baseline_metrics(data, split, ks):
    """The most-popular and user/item-bias baselines on the same split and metrics."""
    popularity = data.item_popularity().astype(np.float32)
    results = {"most_popular": ranking_metrics(np.tile(popularity, (data.num_users, 1)), data, split, ks)}
    mean, user_bias, item_bias = bias_baseline(data)
    scores = (mean + user_bias[:, None] + item_bias[None, :]).astype(np.float32)
    results["bias"] = ranking_metrics(scores, data, split, ks)
    rows = data.splits[split]
    results["bias"].update(rating_metrics(mean + user_bias[rows.users] + item_bias[rows.items], rows.ratings))
    return results


__all__ = ["RecommendationRecipe", "RecommendationTask", "ranking_metrics", "rating_metrics", "bias_baseline"]
