"""Text classification: raw strings -> one label (sentiment, topic, intent, genre) or several (multi-label).

Tokens: a SentencePiece unigram vocabulary learned from the training split (`toolkit.data.text`, shared with
translation), or the tokenizer of a KerasHub text classifier preset (`model.encoder: hub:<preset or dir>`).
Networks (`toolkit.tasks.text_classification.model`): a Transformer encoder or a 1-D convnet trained here, or the
preset's backbone and head, frozen first (`train.fine_tune.frozen_epochs`) and then fine-tuned. Class weights
(`loss.class_weights`) reweight imbalanced classes.

Metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (plot); multi-label: micro and
macro F1 at `model.threshold`, exact-match accuracy and mAP. A scikit-learn TF-IDF + logistic regression baseline
is trained and tested on the same splits in the same run (`baseline`), beside the model in `metrics.json` and the
model card.

Serving: `serving_default` takes a batch of raw strings (normalisation, tokenisation and packing in the graph)
and returns probabilities, the label (or, multi-label, a yes/no per class) and the top-k classes;
`classify_tokens` takes token ids. The ONNX and TFLite exports are the network (token ids -> probabilities);
their metadata holds the tokenizer (`toolkit.tasks.text_classification.predictor`).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> make_task(load_recipe("recipes/text_classification/bible_genre.yaml")).name
'text_classification'
"""

import os
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from toolkit.config.schema import ExportConfig, Recipe, StrictModel
from toolkit.data.prefetch import prefetched
from toolkit.data.text import PAD, encode_proto, learn_sentencepiece, pack_ids_numpy, pad_rows
from toolkit.errors import DataError, RecipeError
from toolkit.tasks.base import Task
from toolkit.tasks.text_classification.config import TextClassDataConfig
from toolkit.tasks.text_classification.predictor import TextClassificationPredictor
from toolkit.tasks.text_classification.sources import TEXT_CLASS_SOURCES

EVALUATION_BATCH = 128

# ----------------------------------------------------------------------- recipe


class TextTokenizerConfig(StrictModel):
    """The SentencePiece vocabulary of networks trained here (hub: encoders bring their own tokenizer)."""

    vocabulary_size: PositiveInt = Field(8000, description="largest SentencePiece vocabulary, learned from the "
                                                           "training split (a small corpus gets a smaller one)")
    max_length: int = Field(128, ge=4, description="most tokens read per text (start/end ids included); longer "
                                                   "texts are truncated")
    vocabulary: Optional[str] = Field(None, description="a SentencePiece .model file to reuse instead of learning one")


class TextModelConfig(StrictModel):
    """The network."""

    encoder: str = Field("transformer", description="transformer, cnn, bag (fastText: mean of token and hashed "
                                                    "n-gram embeddings), or hub:<preset or local preset dir> (a "
                                                    "KerasHub TextClassifier preset: BERT, DistilBERT, RoBERTa, "
                                                    "DeBERTaV3, ... with its tokenizer)")
    embed_dim: PositiveInt = Field(128, description="token embedding width (transformer, cnn, bag)")
    layers: PositiveInt = Field(2, description="TransformerEncoder blocks, or convolutions (cnn)")
    num_heads: PositiveInt = Field(4, description="transformer: attention heads (embed_dim must divide by it)")
    intermediate_dim: PositiveInt = Field(256, description="transformer: feed-forward width")
    filters: PositiveInt = Field(128, description="cnn: filters per convolution")
    kernel_size: PositiveInt = Field(5, description="cnn: convolution width in tokens")
    ngrams: int = Field(2, ge=1, le=4, description="bag: longest token n-gram embedded (1: tokens only)")
    pooling: Literal["mean", "attention"] = Field("mean", description="bag: mean of the token and n-gram "
                                                                      "embeddings, or a learned weight per item")
    ngram_buckets: PositiveInt = Field(100000, le=200000, description="bag: hash buckets shared by the n-grams (at "
                                                                      "most 200,000: the hashing stays inside int32)")
    hidden_units: list[PositiveInt] = Field(default_factory=list, description="dense layers (ReLU) before the output "
                                                                             "(transformer, cnn, bag)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout in the blocks and before the output layer")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="multi-label: a class is predicted at this probability "
                                                              "or above")

    @field_validator("encoder")
    @classmethod
    def _check_encoder(cls, value):
        if value in ("transformer", "cnn", "bag") or (value.startswith("hub:") and len(value) > 4):
            return value
        from toolkit.registry import did_you_mean

        raise ValueError(f"{value!r}{did_you_mean(value, ['transformer', 'cnn', 'bag'])}: write transformer, cnn, bag or "
                         "hub:<KerasHub text classifier preset or local preset dir>")

    @model_validator(mode="after")
    def _check_heads(self):
        if self.encoder == "transformer" and self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be a multiple of num_heads ({self.num_heads})")
        return self


class TextLossConfig(StrictModel):
    """Loss weighting."""

    class_weights: Union[Literal["none", "balanced"], dict[str, PositiveFloat]] = Field(
        "none", description="none, balanced (each class weighted by examples / (classes * its examples), as "
                            "scikit-learn) or {class: weight}; multi-label: an example takes the largest weight of "
                            "its labels")


class BaselineConfig(StrictModel):
    """The TF-IDF + logistic regression baseline trained and tested on the same splits in the same run."""

    enabled: bool = Field(True, description="train and report the baseline")
    C: list[PositiveFloat] = Field(default_factory=lambda: [1.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
                                   description="inverse regularisation strengths tried; the best on validation is kept")
    max_features: PositiveInt = Field(200000, description="most TF-IDF features (word 1-2 grams)")


class TextExportConfig(ExportConfig):
    """Export settings of text classifiers."""

    parity_tolerance: PositiveFloat = Field(1e-4, description="max abs difference of probabilities allowed")
    verify_samples: PositiveInt = Field(64, description="held-out test texts used for verification")


class TextClassificationRecipe(Recipe):
    """Recipe of a text classification run."""

    task: Literal["text_classification"] = Field(..., description="task name")
    data: TextClassDataConfig = Field(default_factory=TextClassDataConfig, description="data")
    tokenizer: TextTokenizerConfig = Field(default_factory=TextTokenizerConfig, description="tokenizer")
    model: TextModelConfig = Field(default_factory=TextModelConfig, description="network")
    loss: TextLossConfig = Field(default_factory=TextLossConfig, description="loss")
    baseline: BaselineConfig = Field(default_factory=BaselineConfig, description="classic baseline")
    export: TextExportConfig = Field(default_factory=TextExportConfig, description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        if not self.model.encoder.startswith("hub:") and self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: only a hub: encoder is pretrained; set it to 0")
        weights = self.loss.class_weights
        if isinstance(weights, dict) and self.data.classes is not None:
            unknown = sorted(set(weights) - set(self.data.classes))
            if unknown:
                raise ValueError(f"loss.class_weights: {', '.join(map(repr, unknown))} not in data.classes")
        if self.data.multi_label and self.train.monitor is None:
            self.train.monitor = "val_pr_auc"  # precision-recall AUC over the classes; accuracy needs one label
        if self.train.label_smoothing and not self.data.multi_label:
            raise ValueError("train.label_smoothing: single-label text classification trains on class indices "
                             "(sparse cross-entropy, no smoothing); set it to 0")
        return self


class _Backbone:
    """What the trainer freezes: the preset's backbone (hub:), or nothing."""

    def __init__(self, layer=None):
        self.layer = layer
        self.pretrained = layer is not None


# ------------------------------------------------------------------------- task


class TextClassificationTask(Task):
    """Text classification: data, tokenizer, network, metrics with a baseline, and the raw-string signatures."""

    name = "text_classification"
    predictor = TextClassificationPredictor
    config_class = TextClassificationRecipe
    sources = TEXT_CLASS_SOURCES
    path_source = "csv"
    input_kind = "text"
    user_data_extras = ("class_names",)
    tfrecord_note = "its texts are read from text files or the offline sets directly"
    tflite_supported = True

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._proto = None
        self._hub = None
        self._ids = {}
        self._report = {}
        self.metadata = None
        self.backbone = _Backbone()

    default_monitor = "val_accuracy"  # multi-label recipes default to val_pr_auc (TextClassificationRecipe)

    @property
    def hub_preset(self):
        encoder = self.recipe.model.encoder
        return encoder[4:] if encoder.startswith("hub:") else None

    def data_from_user(self, user):
        from toolkit.tasks.text_classification.sources import text_class_data

        return text_class_data(user, self.recipe.data, self.recipe.train.seed, user.extras.get("class_names"))

    def check_references(self):
        from toolkit.references import check_file, check_preset

        if self.hub_preset:
            check_preset("model.encoder", self.hub_preset, "a KerasHub text classifier preset")
        if self.recipe.tokenizer.vocabulary:
            check_file("tokenizer.vocabulary", self.recipe.tokenizer.vocabulary, "a SentencePiece .model file")

    def attach_run(self, run):
        """Learns the SentencePiece vocabulary once per run into RUN/tokenizer.model (a resumed run reuses it)."""
        from toolkit.atomic import atomic_path

        if self.hub_preset:
            return
        path = run.file("tokenizer.model")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                self._proto = f.read()
            return
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(self.tokenizer_proto())

    # Data ---------------------------------------------------------------
    @property
    def data(self):
        if self._data is None:
            self._data = self.read_data()
            if not self._data.splits.get("train"):
                raise DataError("data: the train split is empty")
        return self._data

    @property
    def class_names(self):
        if self.metadata is not None:
            return list(self.metadata["class_names"])
        return list(self.data.class_names)

    @property
    def multi_label(self):
        return bool(self.recipe.data.multi_label)

    def tokenizer_proto(self):
        """The SentencePiece model: learned on the train split, or read from tokenizer.vocabulary."""
        if self._proto is None:
            if self.metadata is not None:
                from toolkit.data.text import proto_bytes

                self._proto = proto_bytes(self.metadata["tokenizer"]["proto"])
            elif self.recipe.tokenizer.vocabulary:
                with open(self.recipe.tokenizer.vocabulary, "rb") as f:
                    self._proto = f.read()
            else:
                texts = [example.text for example in self.data.splits["train"]]
                self._proto = learn_sentencepiece(texts, self.recipe.tokenizer.vocabulary_size, "training")
        return self._proto

    @property
    def hub(self):
        """The preset's `HubText` (tokenizer and packing ids)."""
        if self._hub is None:
            from toolkit.tasks.text_classification.model import HubText, load_hub_text

            if self.metadata is not None:
                from toolkit.data.text import unpack_tokenizer

                tokenizer = self.metadata["tokenizer"]
                self._hub = HubText(unpack_tokenizer(tokenizer["archive"]), tokenizer["start"], tokenizer["end"],
                                    tokenizer["pad"])
            else:
                self._hub = load_hub_text(self.hub_preset)
        return self._hub

    def packing(self):
        """(start ids, end ids, pad id) put around and after each text's tokens."""
        if self.hub_preset:
            return self.hub.start, self.hub.end, self.hub.pad
        return [], [], PAD

    def vocabulary_size(self):
        if self.hub_preset:
            return int(self.hub.tokenizer.vocabulary_size())
        from toolkit.data.text import sentencepiece_processor

        return int(sentencepiece_processor(encode_proto(self.tokenizer_proto())).GetPieceSize())

    def token_ids(self, texts):
        """Packed token ids (lists) of texts, and how many were truncated."""
        start, end, _ = self.packing()
        limit = self.recipe.tokenizer.max_length
        if self.hub_preset:
            import tensorflow as tf

            tokens = []
            for first in range(0, len(texts), 1024):
                ids = self.hub.tokenizer(tf.constant(texts[first:first + 1024]))
                ids = ids.to_list() if hasattr(ids, "to_list") else ids  # a RaggedTensor, or lists already
                tokens.extend([int(i) for i in np.asarray(row).reshape(-1)] for row in ids)
        else:
            from toolkit.data.text import sentencepiece_processor

            processor = sentencepiece_processor(encode_proto(self.tokenizer_proto()))
            tokens = processor.Encode(list(texts)) if texts else []
        room = limit - len(start) - len(end)
        truncated = sum(1 for t in tokens if len(t) > room)
        return [pack_ids_numpy(t, start, end, limit) for t in tokens], truncated

    def targets(self, examples):
        """Class indices [n] (single-label) or multi-hot float32 [n, classes]."""
        index = {name: i for i, name in enumerate(self.class_names)}
        if self.multi_label:
            targets = np.zeros((len(examples), len(index)), np.float32)
            for row, example in enumerate(examples):
                for label in example.labels:
                    targets[row, index[label]] = 1.0
            return targets
        return np.asarray([index[example.labels[0]] for example in examples], np.int32)

    def class_weights(self):
        """Weight per class index from loss.class_weights (ones for none)."""
        setting, names = self.recipe.loss.class_weights, self.class_names
        if setting == "none":
            return np.ones(len(names), np.float32)
        if setting == "balanced":
            counts = np.zeros(len(names))
            targets = self.targets(self.data.splits["train"])
            if self.multi_label:
                counts += targets.sum(axis=0)
            else:
                counts += np.bincount(targets, minlength=len(names))
            total = counts.sum()
            return np.where(counts > 0, total / (len(names) * np.maximum(counts, 1)), 1.0).astype(np.float32)
        unknown = sorted(set(setting) - set(names))
        if unknown:
            raise RecipeError(f"loss.class_weights: {', '.join(map(repr, unknown))} not among the classes "
                              f"({', '.join(names)})")
        return np.asarray([setting.get(name, 1.0) for name in names], np.float32)

    def split_ids(self, split):
        """(packed ids lists, truncated count) of a split, computed once."""
        if split not in self._ids:
            self._ids[split] = self.token_ids([example.text for example in self.data.splits.get(split) or []])
        return self._ids[split]

    def build_inputs(self, split, training=False):
        import tensorflow as tf

        examples = self.data.splits.get(split) or []
        if not examples:
            return None
        ids, truncated = self.split_ids(split)
        targets = self.targets(examples)
        weights = self.class_weights()
        if self.multi_label:
            example_weights = np.where(targets.any(axis=1), (targets * weights).max(axis=1), 1.0).astype(np.float32)
        else:
            example_weights = weights[targets]
        report = dict(self.data.report.get(split, {}))
        report.update({"examples": len(examples), "truncated": truncated,
                       "max_length": self.recipe.tokenizer.max_length})
        self._report[split] = report
        _, _, pad = self.packing()
        seed = self.recipe.train.seed

        def generator():
            for position in range(len(ids)):
                yield np.asarray(ids[position], np.int32), targets[position], example_weights[position]

        target_spec = (tf.TensorSpec([len(self.class_names)], tf.float32) if self.multi_label
                       else tf.TensorSpec([], tf.int32))
        dataset = tf.data.Dataset.from_generator(
            generator, output_signature=(tf.TensorSpec([None], tf.int32), target_spec, tf.TensorSpec([], tf.float32)))
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(len(ids), self.recipe.data.shuffle_buffer), seed=seed,
                                      reshuffle_each_iteration=True)
        # Batches of similar lengths, padded to their own longest text (padding changes no answer: model.py).
        limit = self.recipe.tokenizer.max_length
        boundaries = [b for b in (16, 32, 64, 128, 256, 512) if b < limit]
        batch = self.recipe.train.batch_size
        dataset = dataset.bucket_by_sequence_length(
            lambda token_ids, target, weight: tf.shape(token_ids)[0], bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch] * (len(boundaries) + 1),
            padding_values=(pad, 0.0 if self.multi_label else 0, 0.0), pad_to_bucket_boundary=False,
            drop_remainder=False)
        import bisect

        buckets = np.bincount([bisect.bisect_right(boundaries, len(row)) for row in ids],
                              minlength=len(boundaries) + 1)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(int(sum(-(-c // batch) for c in buckets))))
        return prefetched(dataset)

    def data_report(self):
        return self._report

    def build_preprocessor(self):
        return self._string_ids()

    # Model --------------------------------------------------------------
    def build_model(self):
        from toolkit.tasks.text_classification.model import build_hub_network, build_network, hub_backbone

        if self.hub_preset:
            model = build_hub_network(self.hub_preset, len(self.class_names), self.multi_label, self.hub.pad,
                                      self.recipe.model.dropout, self.recipe.name or "text")
            self.backbone = _Backbone(hub_backbone(model))
            return model
        return build_network(self.recipe, self.vocabulary_size(), len(self.class_names), self.multi_label)

    def backbone_layer(self, model):
        if self.hub_preset:
            from toolkit.tasks.text_classification.model import hub_backbone

            return hub_backbone(model)
        return model

    def build_losses(self):
        import keras

        if self.multi_label:
            return keras.losses.BinaryCrossentropy(label_smoothing=self.recipe.train.label_smoothing)
        return keras.losses.SparseCategoricalCrossentropy()

    def build_metrics(self):
        import keras

        if self.multi_label:
            return [keras.metrics.AUC(curve="PR", multi_label=True, num_labels=len(self.class_names), name="pr_auc")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        start, end, pad = self.packing()
        tokenizer = {"start": start, "end": end, "pad": pad, "max_length": self.recipe.tokenizer.max_length,
                     "vocabulary_size": self.vocabulary_size()}
        if self.hub_preset:
            from toolkit.data.text import pack_tokenizer

            tokenizer.update({"kind": "hub", "preset": self.hub_preset, "archive": pack_tokenizer(self.hub.tokenizer)})
            weights_source = f"KerasHub preset {self.hub_preset}, fine-tuned here"
        else:
            tokenizer.update({"kind": "sentencepiece", "proto": encode_proto(self.tokenizer_proto())})
            weights_source = "trained here"
        return {
            "task": self.name,
            "input": self.input_kind,
            "class_names": self.class_names,
            "multi_label": self.multi_label,
            "threshold": self.recipe.model.threshold,
            "tokenizer": tokenizer,
            "model": self.recipe.model.model_dump(),
            "backbone": {"reference": self.recipe.model.encoder, "weights_source": weights_source},
            "top_k": min(self.recipe.export.top_k, len(self.class_names)),
            "data_provenance": self.data.provenance,
        }

    # Evaluation ---------------------------------------------------------
    def probabilities(self, model, split, on_batch=None):
        """Probabilities [n, classes] of the examples of a split, in order."""
        ids, _ = self.split_ids(split)
        _, _, pad = self.packing()
        order = np.argsort([len(row) for row in ids], kind="stable")  # similar lengths batched together
        scores = np.zeros((len(ids), len(self.class_names)), np.float32)
        for first in range(0, len(ids), EVALUATION_BATCH):
            chosen = order[first:first + EVALUATION_BATCH]
            scores[chosen] = np.asarray(model(pad_rows([ids[i] for i in chosen], pad), training=False))
            if on_batch is not None:
                on_batch(len(chosen))
        return scores

    def _metrics(self, scores, examples):
        from toolkit.classification_metrics import classification_metrics

        if self.multi_label:
            from toolkit.tasks.text_classification.metrics import multi_label_metrics

            return multi_label_metrics(scores, self.targets(examples), self.class_names, self.recipe.model.threshold)
        return classification_metrics(scores, self.targets(examples), self.class_names)

    def evaluate(self, model, split="test"):
        from toolkit.progress import Progress

        examples = self.data.splits.get(split) or []
        if not examples:
            raise DataError(f"data: there is no {split} split to evaluate on")
        with Progress(f"classifying {split}", total=len(examples), unit="texts") as progress:
            scores = self.probabilities(model, split, on_batch=progress.update)
        metrics = self._metrics(scores, examples)
        metrics["truncated"] = self.split_ids(split)[1]
        if not self.multi_label:
            from toolkit.classification_metrics import slice_accuracy

            predicted, labels = np.argmax(scores, axis=-1), self.targets(examples)
            if any(example.group for example in examples):
                metrics["per_group"] = slice_accuracy(predicted, labels, [e.group or "?" for e in examples])
            errors = [(float(scores[i, predicted[i]]), i) for i in range(len(examples)) if predicted[i] != labels[i]]
            metrics["worst"] = [{"id": examples[i].id, "text": examples[i].text[:200], "label": examples[i].labels[0],
                                 "predicted": self.class_names[predicted[i]], "probability": round(p, 4)}
                                for p, i in sorted(errors, reverse=True)[:10]]
        if split == "test" and self.data.splits.get("validation"):
            validation = self.data.splits["validation"]
            figures = self._metrics(self.probabilities(model, "validation"), validation)
            from toolkit.tasks.text_classification.metrics import headline

            metrics["validation"] = dict(headline(figures, self.multi_label), examples=len(validation))
        if self.recipe.baseline.enabled:
            metrics["baseline"] = self.baseline(split)
        return metrics

    def baseline(self, split):
        """The TF-IDF + logistic regression baseline's figures on `split` (trained on the train split)."""
        from toolkit.tasks.text_classification.baseline import tfidf_logistic_regression
        from toolkit.tasks.text_classification.metrics import headline

        config = self.recipe.baseline

        def dense(examples):
            targets = self.targets(examples)
            if self.multi_label:
                return targets
            return np.eye(len(self.class_names), dtype=np.float32)[targets]

        train, validation = self.data.splits["train"], self.data.splits.get("validation") or []
        examples = self.data.splits[split]
        result = tfidf_logistic_regression(
            [e.text for e in train], dense(train), [e.text for e in validation],
            dense(validation) if validation else None, [e.text for e in examples], multi_label=self.multi_label,
            C_values=tuple(config.C), max_features=config.max_features, seed=self.recipe.train.seed)
        figures = headline(self._metrics(result["probabilities"], examples), self.multi_label)
        return dict(figures, name=result["name"], C=result["C"], features=result["features"],
                    seconds=result["seconds"])

    def plot(self, model, metrics, run_dir):
        if self.multi_label:
            return []
        from toolkit.plots import plot_confusion_matrix

        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), self.class_names,
                              os.path.join(run_dir, "confusion_matrix.png"))
        return ["confusion_matrix.png"]

    # Serving and export -------------------------------------------------
    def _string_tokenizer(self):
        """The Keras tokenizer layer the SavedModel runs (tracked as a serving resource)."""
        if self.hub_preset:
            return self.hub.tokenizer
        from toolkit.data.text import make_tokenizer

        return make_tokenizer(encode_proto(self.tokenizer_proto()), "text")

    def _string_ids(self):
        """strings -> packed token ids, in the graph (normalisation as in training)."""
        from toolkit.data.text import normalise_strings, pack_ids

        tokenizer = self._serving_tokenizer = self._string_tokenizer()
        start, end, pad = self.packing()
        limit = self.recipe.tokenizer.max_length
        return lambda texts: pack_ids(tokenizer(normalise_strings(texts)), start, end, limit, pad)

    def serving_signatures(self, model):
        import tensorflow as tf

        to_ids = self._string_ids()
        names = tf.constant(self.class_names)
        top_k = min(self.recipe.export.top_k, len(self.class_names))
        threshold = float(self.recipe.model.threshold)
        multi_label = self.multi_label

        def outputs(probabilities):
            top = tf.math.top_k(probabilities, k=top_k)
            answer = {"probabilities": probabilities, "top_k_classes": tf.gather(names, top.indices),
                      "top_k_probabilities": top.values}
            if multi_label:
                answer["predicted"] = probabilities >= threshold
            else:
                answer["label"] = tf.gather(names, tf.argmax(probabilities, axis=-1))
            return answer

        def serve_text(text):
            return outputs(model(to_ids(text), training=False))

        def serve_tokens(token_ids):
            return outputs(model(token_ids, training=False))

        return {
            "serving_default": (serve_text, [tf.TensorSpec([None], tf.string, name="text")]),
            "classify_tokens": (serve_tokens, [tf.TensorSpec([None, None], tf.int32, name="token_ids")]),
        }

    def serving_resources(self):
        return [self._serving_tokenizer]

    def onnx_signature(self):
        import tensorflow as tf

        return [tf.TensorSpec([None, None], tf.int32, name="token_ids")]

    def representative_inputs(self, count):
        ids, _ = self.split_ids("train")
        return [np.asarray([row], np.int32) for row in ids[:count]]

    def verification_samples(self, count):
        return list(self.data.splits["test"][:count])

    def quality_samples(self, count):
        examples = self.data.splits["test"][:count]
        return [e.text for e in examples], self.targets(examples)

    def save_samples(self, samples, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "texts.tsv"), "w", encoding="utf-8") as f:
            f.writelines(f"{example.text}\t{'|'.join(example.labels)}\n" for example in samples)


__all__ = ["TextClassificationRecipe", "TextClassificationTask"]
