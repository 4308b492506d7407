"""Machine translation: an encoder-decoder Transformer from KerasHub layers,
SentencePiece tokenizers learned from the training split, greedy or beam
search decoding, sacreBLEU BLEU/chrF.

Model (teacher forced): `[encoder_token_ids, decoder_token_ids] -> logits`
built from `keras_hub.layers.TokenAndPositionEmbedding`,
`TransformerEncoder` and `TransformerDecoder`. Decoding with a key/value
cache and KerasHub samplers is in `toolkit.text_generation`.

Serving: `translate` (SavedModel) takes a batch of raw strings and returns
translated strings (normalisation, tokenisation, the decoding loop and
detokenisation inside the graph); `logits` takes token ids. The ONNX export
is the network (token ids -> logits): string ops have no ONNX equivalent,
so `toolkit predict model.onnx` tokenises with the `sentencepiece` library
and decodes greedily in NumPy around ONNX Runtime.

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> recipe = load_recipe("recipes/translation/bible_en_es.yaml")
>>> make_task(recipe).name
'translation'
"""

import base64
import bisect
import os
from typing import Literal, Optional

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from toolkit.config.schema import ExportConfig, Recipe, StrictModel
from toolkit.data.prefetch import prefetched
from toolkit.data.text import BOS, PAD, encode_proto, learn_sentencepiece
from toolkit.errors import DataError, RecipeError, preset_error
from toolkit.tasks.base import Task
from toolkit.tasks.translation.config import TokenizerConfig, TranslationDataConfig
from toolkit.tasks.translation.predictor import TranslationPredictor
from toolkit.tasks.translation.sources import TRANSLATION_SOURCES

# ----------------------------------------------------------------------- recipe


class TransformerConfig(StrictModel):
    """Encoder-decoder Transformer sizes, or a pretrained KerasHub seq2seq preset."""

    pretrained: Optional[str] = Field(
        None, description="hub:<preset or local preset dir> of a KerasHub BART/T5 model to fine-tune "
                          "(its tokenizer and sizes replace tokenizer.* vocabularies and the sizes below)"
    )
    embed_dim: PositiveInt = Field(256, description="token embedding / hidden width")
    num_heads: PositiveInt = Field(4, description="attention heads (embed_dim must divide by it)")
    intermediate_dim: PositiveInt = Field(1024, description="feed-forward width")
    encoder_layers: PositiveInt = Field(3, description="TransformerEncoder blocks")
    decoder_layers: PositiveInt = Field(3, description="TransformerDecoder blocks")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout in every block")

    @model_validator(mode="after")
    def _check_heads(self):
        if self.pretrained is not None and not self.pretrained.startswith("hub:"):
            raise ValueError(f"model.pretrained: {self.pretrained!r} is not a KerasHub preset; "
                             "write hub:<preset name or local preset dir>, e.g. hub:bart_base_en")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be a multiple of num_heads ({self.num_heads})")
        return self


class DecodingConfig(StrictModel):
    """How translations are generated (evaluation, predict and the SavedModel)."""

    method: Literal["greedy", "beam"] = Field("beam", description="greedy or beam search (KerasHub samplers)")
    beam_width: PositiveInt = Field(4, description="beams kept at each step (beam)")
    length_penalty: float = Field(
        0.6, ge=0.0, le=2.0, description="beam: GNMT length penalty alpha, score / ((5 + length) / 6) ** alpha"
    )
    max_length: Optional[PositiveInt] = Field(
        None, description="max generated tokens (at most tokenizer.max_length; default: tokenizer.max_length)"
    )


class TranslationExportConfig(ExportConfig):
    """Export settings: logits parity plus identical translations."""

    parity_tolerance: PositiveFloat = Field(
        1e-3, description="max abs difference of logits allowed between an export and the Keras model"
    )
    verify_samples: PositiveInt = Field(32, description="held-out test pairs used for verification")


class TranslationRecipe(Recipe):
    """Recipe of a machine translation run."""

    task: Literal["translation"] = Field(..., description="task name")
    data: TranslationDataConfig = Field(default_factory=TranslationDataConfig, description="data")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="tokenizers")
    model: TransformerConfig = Field(default_factory=TransformerConfig, description="Transformer sizes")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig, description="decoding")
    export: TranslationExportConfig = Field(default_factory=TranslationExportConfig,
                                            description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        if self.decoding.max_length is None:
            self.decoding.max_length = self.tokenizer.max_length
        if self.decoding.max_length > self.tokenizer.max_length:
            raise ValueError(
                f"decoding.max_length ({self.decoding.max_length}) is above tokenizer.max_length "
                f"({self.tokenizer.max_length}), the longest sequence the model has positions for; lower it"
            )
        if self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: translation fine-tunes the whole encoder-decoder "
                             "(nothing is frozen); set it to 0")
        return self


# ------------------------------------------------------------------- tokenizers


# ------------------------------------------------------------------------- task


class TranslationTask(Task):
    """Machine translation: data, tokenizers, model, BLEU and serving signatures."""

    name = "translation"
    predictor = TranslationPredictor
    config_class = TranslationRecipe
    sources = TRANSLATION_SOURCES
    path_source = "tsv"
    input_kind = "text"
    tflite_unsupported_reason = "its decoding loop and tokenizers are string ops; the SavedModel serves text"
    default_monitor = "val_token_accuracy"

    def data_from_user(self, user):
        from toolkit.tasks.translation.sources import translation_data

        return translation_data(user, self.recipe.data, self.recipe.train.seed)

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._protos = None
        self._report = {}
        self.metadata = None
        self.backbone = _NoBackbone()
        self.backbone.pretrained = bool(recipe.model.pretrained)
        self._hub = None

    def check_references(self):
        if self.recipe.model.pretrained:
            from toolkit.references import check_preset

            check_preset("model.pretrained", self.recipe.model.pretrained[4:], "a BART/T5 preset")

    def attach_run(self, run):
        """Learns the tokenizers once per run and keeps them in RUN/tokenizers/ (a resumed run reuses them)."""
        from toolkit.atomic import atomic_path

        if self.recipe.model.pretrained:
            return  # the preset's tokenizer: nothing learned, and it travels in the model metadata
        directory = run.file("tokenizers")
        if os.path.isfile(os.path.join(directory, "target.spm")):
            self._protos = tuple(_read_proto(directory, side) for side in ("source", "target"))
            return
        os.makedirs(directory, exist_ok=True)
        for side, proto in zip(("source", "target"), self.tokenizer_protos()):
            with atomic_path(os.path.join(directory, f"{side}.spm")) as tmp:
                with open(tmp, "wb") as f:
                    f.write(proto)

    # Data ---------------------------------------------------------------
    @property
    def data(self):
        """The loaded `ParallelData` (splits of (source, target) pairs)."""
        if self._data is None:
            self._data = self.read_data()
            if not self._data.splits.get("train"):
                raise DataError("data: the train split is empty")
        return self._data

    @property
    def hub(self):
        """The pretrained preset's (tokenizer, special ids), for model.pretrained: hub:..."""
        if self._hub is None:
            if self.metadata is not None:
                from toolkit.data.text import unpack_tokenizer
                from toolkit.text_generation import special_ids

                self._hub = (unpack_tokenizer(self.metadata["tokenizers"]["archive"]), special_ids(self.metadata))
            else:
                self._hub = load_hub_tokenizer(self.recipe.model.pretrained[4:])
        return self._hub

    def special_ids(self):
        from toolkit.text_generation import special_ids

        if self.recipe.model.pretrained:
            return self.hub[1]
        return special_ids({"tokenizers": {}})

    def tokenizer_protos(self):
        """(source, target) SentencePiece protos: learned on the train split, or from tokenizer.vocabulary."""
        if self.metadata is not None:
            tokenizers = self.metadata["tokenizers"]
            return base64.b64decode(tokenizers["source"]), base64.b64decode(tokenizers["target"])
        if self._protos is None:
            config = self.recipe.tokenizer
            if config.vocabulary:
                self._protos = tuple(_read_proto(config.vocabulary, side) for side in ("source", "target"))
            else:
                train = self.data.splits["train"]
                self._protos = (
                    learn_sentencepiece([s for s, _ in train], config.source_vocabulary, "source"),
                    learn_sentencepiece([t for _, t in train], config.target_vocabulary, "target"),
                )
        return self._protos

    def _token_ids(self, pairs):
        """Tokenizes pairs with the KerasHub tokenizers; returns (source ids, target ids) lists and truncations."""
        import tensorflow as tf

        from toolkit.data.text import make_tokenizer

        if self.recipe.model.pretrained:
            source_tokenizer = target_tokenizer = self.hub[0]
        else:
            source_proto, target_proto = self.tokenizer_protos()
            source_tokenizer = make_tokenizer(encode_proto(source_proto), "source")
            target_tokenizer = make_tokenizer(encode_proto(target_proto), "target")
        ids = self.special_ids()
        limit = self.recipe.tokenizer.max_length
        source_room = limit - len(ids["encoder_start"]) - len(ids["encoder_end"])
        target_room = limit - len(ids["decoder_start"])
        sources, targets = [], []
        for start in range(0, len(pairs), 4096):
            chunk = pairs[start:start + 4096]
            sources.extend(_as_lists(source_tokenizer(tf.constant([s for s, _ in chunk]))))
            targets.extend(_as_lists(target_tokenizer(tf.constant([t for _, t in chunk]))))
        truncated = sum(1 for s, t in zip(sources, targets) if len(s) > source_room or len(t) > target_room)
        sources = [ids["encoder_start"] + s[:source_room] + ids["encoder_end"] for s in sources]
        return sources, [t[:target_room] for t in targets], truncated

    tfrecord_note = None  # two UTF-8 strings per pair

    def tfrecord_examples(self, split, skipped):
        from toolkit.data.tfrecord import bytes_feature, serialize

        for source, target in self.data.splits[split]:
            yield serialize({"source": bytes_feature(source.encode("utf-8")),
                             "target": bytes_feature(target.encode("utf-8"))})

    def build_inputs(self, split, training=False):
        import tensorflow as tf

        pairs = self.data.splits.get(split) or []
        if not pairs:
            return None
        sources, targets, truncated = self._token_ids(pairs)
        report = dict(self.data.report.get(split, {}))
        report.update({"examples": len(pairs), "truncated": truncated,
                       "max_length": self.recipe.tokenizer.max_length})
        self._report[split] = report

        ids = self.special_ids()
        pad, start = ids["pad"], ids["decoder_start"]

        def generator():
            # Decoder input: start ids + target; labels: the same shifted left, ending with the end id.
            for source, target in zip(sources, targets):
                decoder = start + target
                yield np.asarray(source, np.int32), np.asarray(decoder, np.int32), \
                    np.asarray(decoder[1:] + [ids["eos"]], np.int32)

        spec = tf.TensorSpec([None], tf.int32)
        dataset = tf.data.Dataset.from_generator(generator, output_signature=(spec, spec, spec))
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(len(pairs), self.recipe.data.shuffle_buffer), seed=self.recipe.train.seed,
                                      reshuffle_each_iteration=True)
        dataset = dataset.map(lambda s, d, t: ((s, d), t, tf.cast(tf.not_equal(t, pad), tf.float32)))
        # Buckets by length so a batch is padded to its own longest sequence, not to max_length.
        limit = self.recipe.tokenizer.max_length
        boundaries = [b for b in (12, 20, 28, 40, 56, 80) if b < limit]
        batch = self.recipe.train.batch_size
        dataset = dataset.bucket_by_sequence_length(
            lambda inputs, target, weight: tf.maximum(tf.shape(inputs[0])[0], tf.shape(target)[0]),
            bucket_boundaries=boundaries, bucket_batch_sizes=[batch] * (len(boundaries) + 1),
            padding_values=((pad, pad), pad, 0.0), pad_to_bucket_boundary=False, drop_remainder=False,
        )
        # Bucket membership does not depend on the shuffle, so the number of batches is known:
        # telling tf.data spares Keras an extra, empty step and its "ran out of data" warning.
        lengths = [max(len(source), len(target) + len(start)) for source, target in zip(sources, targets)]
        buckets = np.bincount([bisect.bisect_right(boundaries, n) for n in lengths], minlength=len(boundaries) + 1)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(int(sum(-(-c // batch) for c in buckets))))
        return prefetched(dataset)

    def data_report(self):
        return self._report

    def build_preprocessor(self):
        from toolkit.data.text import normalise_strings

        return normalise_strings

    # Model --------------------------------------------------------------
    def build_model(self):
        import keras
        import keras_hub

        if self.recipe.model.pretrained:
            return build_hub_model(self.recipe.model.pretrained[4:], self.special_ids()["pad"],
                                   self.recipe.name or "translation")
        config, limit = self.recipe.model, self.recipe.tokenizer.max_length
        source_vocabulary, target_vocabulary = self.vocabulary_sizes()
        encoder_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")
        decoder_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
        encoder_mask = keras.ops.not_equal(encoder_ids, PAD)
        x = keras_hub.layers.TokenAndPositionEmbedding(source_vocabulary, limit, config.embed_dim,
                                                       name="encoder_embedding")(encoder_ids)
        for index in range(config.encoder_layers):
            x = keras_hub.layers.TransformerEncoder(config.intermediate_dim, config.num_heads, dropout=config.dropout,
                                                    name=f"encoder_layer_{index}")(x, padding_mask=encoder_mask)
        y = keras_hub.layers.TokenAndPositionEmbedding(target_vocabulary, limit, config.embed_dim,
                                                       name="decoder_embedding")(decoder_ids)
        decoder_mask = keras.ops.not_equal(decoder_ids, PAD)
        for index in range(config.decoder_layers):
            y = keras_hub.layers.TransformerDecoder(config.intermediate_dim, config.num_heads, dropout=config.dropout,
                                                    name=f"decoder_layer_{index}")(
                y, x, decoder_padding_mask=decoder_mask, encoder_padding_mask=encoder_mask)
        logits = keras.layers.Dense(target_vocabulary, dtype="float32", name="logits")(y)  # float32 if mixed
        return keras.Model([encoder_ids, decoder_ids], logits, name=f"{self.recipe.name or 'translation'}_transformer")

    def vocabulary_sizes(self):
        import sentencepiece

        if self.recipe.model.pretrained:
            size = int(self.hub[0].vocabulary_size())
            return size, size
        sizes = []
        for proto in self.tokenizer_protos():
            processor = sentencepiece.SentencePieceProcessor()
            processor.LoadFromSerializedProto(proto)
            sizes.append(processor.GetPieceSize())
        return tuple(sizes)

    def backbone_layer(self, model):
        return model

    def build_losses(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def build_metrics(self):
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        data, model = self.recipe.data, self.recipe.model
        if model.pretrained:
            from toolkit.data.text import pack_tokenizer

            tokenizers = {"kind": "hub", "preset": model.pretrained, "archive": pack_tokenizer(self.hub[0]),
                          "special_ids": self.special_ids()}
        else:
            source, target = self.tokenizer_protos()
            tokenizers = {"kind": "sentencepiece", "source": encode_proto(source), "target": encode_proto(target),
                          "special_ids": dict(self.special_ids(), unk=1, bos=BOS)}
        return {
            "task": self.name,
            "input": self.input_kind,
            "source_language": data.source_language,
            "target_language": data.target_language,
            "tokenizers": tokenizers,
            "max_length": self.recipe.tokenizer.max_length,
            "vocabulary_sizes": list(self.vocabulary_sizes()),
            "model": model.model_dump(),
            "decoding": self.recipe.decoding.model_dump(),
            "data_provenance": self.data.provenance,
            "data_info": self.data.info,
        }

    # Evaluation ---------------------------------------------------------
    def translator(self, model):
        from toolkit.text_generation import Translator

        return Translator(model, self.model_metadata())

    def evaluate(self, model, split="test"):
        from toolkit.text_metrics import corpus_scores

        translator = self.translator(model)
        metrics = self._evaluate_split(model, translator, split, corpus_scores)
        if split == "test" and self.data.splits.get("validation"):
            metrics["validation"] = self._evaluate_split(model, translator, "validation", corpus_scores)
        return metrics

    def _evaluate_split(self, model, translator, split, corpus_scores):
        import time

        pairs = self.data.splits.get(split) or []
        if not pairs:
            raise DataError(f"data: there is no {split} split to evaluate on")
        from toolkit.progress import Progress

        started = time.time()
        decoding = self.recipe.decoding
        how = f"beam {decoding.beam_width}" if decoding.method == "beam" else decoding.method
        with Progress(f"translating {split} ({how})", total=len(pairs), unit="sentences") as progress:
            hypotheses = translator.translate([s for s, _ in pairs], batch_size=32, on_batch=progress.update)
        seconds = time.time() - started
        references = [t for _, t in pairs]
        metrics = {"examples": len(pairs), "decoding": dict(self.recipe.decoding.model_dump()),
                   "decoding_seconds": round(seconds, 1)}
        metrics.update(corpus_scores(hypotheses, references))
        dataset = self.build_inputs(split)
        accuracy = _token_accuracy(model, dataset)
        metrics["token_accuracy"] = accuracy
        metrics["samples"] = [{"source": s, "reference": r, "translation": h}
                              for (s, r), h in list(zip(pairs, hypotheses))[:8]]
        return metrics

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        import tensorflow as tf

        translator = self._serving_translator = self.translator(model)
        translate = translator.translate_function()

        def serve_translate(texts):
            return {"translation": translate(texts)}

        def serve_logits(encoder_token_ids, decoder_token_ids):
            return {"logits": model([encoder_token_ids, decoder_token_ids], training=False)}

        return {
            "serving_default": (serve_translate, [tf.TensorSpec([None], tf.string, name="text")]),
            "translate": (serve_translate, [tf.TensorSpec([None], tf.string, name="text")]),
            "logits": (serve_logits, [tf.TensorSpec([None, None], tf.int32, name="encoder_token_ids"),
                                      tf.TensorSpec([None, None], tf.int32, name="decoder_token_ids")]),
        }

    def serving_resources(self):
        translator = self._serving_translator
        return [translator.source_tokenizer, translator.target_tokenizer]

    def onnx_signature(self):
        import tensorflow as tf

        return [tf.TensorSpec([None, None], tf.int32, name="encoder_token_ids"),
                tf.TensorSpec([None, None], tf.int32, name="decoder_token_ids")]

    def verification_samples(self, count):
        return list(self.data.splits["test"][:count])

    def save_samples(self, samples, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "pairs.tsv"), "w", encoding="utf-8") as f:
            f.writelines(f"{source}\t{target}\n" for source, target in samples)


class _NoBackbone:
    """Translation models are trained from scratch: nothing to freeze."""

    pretrained = False


def _hub_error(preset, error):
    return preset_error("model.pretrained", preset, error, "a BART/T5 preset")


def load_hub_tokenizer(preset):
    """The tokenizer of a KerasHub seq2seq preset and its packing ids (as its Seq2SeqLMPreprocessor packs)."""
    import keras_hub

    try:
        preprocessor = keras_hub.models.Seq2SeqLMPreprocessor.from_preset(preset)
    except Exception as error:  # noqa: BLE001 - any loading failure becomes one recipe error
        raise _hub_error(preset, error)
    preprocessor.build(None)
    tokenizer = preprocessor.tokenizer

    def ids(value):
        return [] if value is None else [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]

    special = {"pad": int(tokenizer.pad_token_id), "eos": int(tokenizer.end_token_id),
               "encoder_start": ids(preprocessor.encoder_packer.start_value),
               "encoder_end": ids(preprocessor.encoder_packer.end_value),
               "decoder_start": ids(preprocessor.decoder_packer.start_value)}
    if not special["decoder_start"]:
        raise RecipeError(f"model.pretrained: preset {preset!r} has no decoder start token; use a BART or T5 preset")
    return tokenizer, special


def build_hub_model(preset, pad, name):
    """A pretrained KerasHub BART/T5 backbone as `[encoder_token_ids, decoder_token_ids] -> logits`."""
    import keras
    import keras_hub

    from toolkit.text_generation import hub_seq2seq_layer_class, seq2seq_class

    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:  # noqa: BLE001
        raise _hub_error(preset, error)
    seq2seq_class(backbone)  # a backbone without cached seq2seq decoding fails here, not after training
    encoder_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")
    decoder_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
    logits = hub_seq2seq_layer_class()(backbone, pad, name="seq2seq")([encoder_ids, decoder_ids])
    return keras.Model([encoder_ids, decoder_ids], logits, name=f"{name}_{backbone.name}")


def _read_proto(directory, side):
    path = os.path.join(directory, f"{side}.spm")
    if not os.path.isfile(path):
        raise RecipeError(f"tokenizer.vocabulary: {path} not found (expected source.spm and target.spm)")
    with open(path, "rb") as f:
        return f.read()


def _as_lists(ids):
    return ids.to_list() if hasattr(ids, "to_list") else [list(row) for row in ids]


def _token_accuracy(model, dataset):
    correct, total = 0.0, 0.0
    for (source, decoder), target, weight in dataset:
        logits = model([source, decoder], training=False)
        predicted = np.argmax(np.asarray(logits), axis=-1)
        weight = weight.numpy()
        correct += float(np.sum((predicted == target.numpy()) * weight))
        total += float(np.sum(weight))
    return correct / total if total else 0.0


__all__ = ["TranslationRecipe", "TranslationTask", "learn_sentencepiece"]
