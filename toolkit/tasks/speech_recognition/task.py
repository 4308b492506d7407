"""Speech recognition: a DeepSpeech2-style CTC acoustic model with log-mel
features computed in the graph, WER/CER with jiwer, waveform-to-text export.

Features (`toolkit.data.audio_features.log_mel`, TensorFlow ops, and `log_mel_numpy`): STFT
(Hann window), power spectrum, mel filterbank, log, then per-utterance
normalisation over the utterance's own frames; frames past an utterance's
length are exactly zero, which is how the model tells padding from speech.

Model (`features [batch, frames, mels] -> logits [batch, frames / 2, 1 +
characters]`): SpecAugment (frequency and time masks, training only), two
2-D convolutions (stride 2x2 then 1x2, or 2x2 with `model.time_stride: 4`) with BatchNorm and ReLU, a stack of
bidirectional GRU/LSTM layers, a dense layer to the characters plus the CTC
blank (index 0). Padding frames are forced to predict the blank, so CTC over
the padded length equals CTC over each utterance's own length, and decoding
needs no lengths. Trained with `keras.losses.CTC`; decoded greedily, with
`keras.ops.ctc_decode` beam search, or through a lexicon with a word bigram
model (`toolkit.tasks.speech_recognition.lexicon`, Viterbi in TensorFlow ops).

Serving: `transcribe` (SavedModel) takes float waveforms `[batch, samples]`
at the recipe's sample rate with their lengths and returns strings
(features, network and decoding inside); `logits` takes features. The ONNX
export is the acoustic model (features -> logits); `toolkit predict x.onnx`
computes the same features in NumPy (`log_mel_numpy`) and decodes greedily
(or with the lexicon, `decode_numpy`) in NumPy, without TensorFlow.

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> make_task(load_recipe("recipes/speech_recognition/espeak_ctc.yaml")).name
'speech_recognition'
"""

import math
import os
import time
from typing import Literal, Optional

import numpy as np
from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from toolkit.config.schema import ExportConfig, Recipe, StrictModel
from toolkit.data.audio_features import features_of, log_mel
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError
from toolkit.tasks.audio.config import FeatureConfig, SpecAugmentConfig, check_features
from toolkit.tasks.audio.layers import spec_augment_class
from toolkit.tasks.base import Task
from toolkit.tasks.speech_recognition.config import DEFAULT_VOCABULARY, SpeechDataConfig
from toolkit.tasks.speech_recognition.decoding import BLANK, text_to_ids
from toolkit.tasks.speech_recognition.predictor import SpeechRecognitionPredictor, make_transcriber
from toolkit.tasks.speech_recognition.sources import SPEECH_SOURCES

# ----------------------------------------------------------------------- recipe


class AcousticModelConfig(StrictModel):
    """DeepSpeech2-style network sizes."""

    conv_filters: PositiveInt = Field(32, description="filters of the two 2-D convolutions")
    conv_kernel: tuple[PositiveInt, PositiveInt] = Field((11, 41), description="(time, frequency) kernel of the "
                                                         "first convolution; the second uses (time, frequency / 2)")
    time_stride: Literal[2, 4] = Field(2, description="frames per output step: 2 (20 ms with a 10 ms hop) or 4 "
                                       "(the second convolution strides in time too; half the recurrent work)")
    rnn: Literal["gru", "lstm"] = Field("gru", description="recurrent cell")
    rnn_units: PositiveInt = Field(192, description="units per direction")
    rnn_layers: PositiveInt = Field(3, description="bidirectional recurrent layers")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after each recurrent layer")
    pretrained: Optional[str] = Field(
        None, description="hub:<preset or local preset dir> of a KerasHub Whisper model to evaluate (train.epochs: 0) "
                          "or fine-tune instead of the CTC network; the sizes above are then unused")

    init: Optional[str] = Field(
        None, description="run:<run dir> of a finished speech_recognition CTC run with the same vocabulary, "
                          "sample rate, features and sizes: its whole network's weights start this run (fine-tuning)")

    @field_validator("pretrained")
    @classmethod
    def _check_pretrained(cls, value):
        if value is not None and (not value.startswith("hub:") or len(value) == 4):
            raise ValueError(f"{value!r}: write hub:<preset name or local preset dir>, e.g. hub:whisper_tiny_en")
        return value

    @field_validator("init")
    @classmethod
    def _check_init(cls, value):
        if value is not None and (not value.startswith("run:") or len(value) == 4):
            raise ValueError(f"{value!r}: write run:<run directory>, e.g. run:saved_models/espeak_ctc")
        return value


class CTCDecodingConfig(StrictModel):
    """How transcripts are decoded (CTC logits, or Whisper's tokens)."""

    method: Literal["greedy", "beam", "lexicon"] = Field(
        "greedy", description="greedy (best path), beam search, or lexicon (best path through lexicon words with a "
                              "word bigram model; CTC models only)")
    beam_width: PositiveInt = Field(16, description="beams (beam)")
    lexicon: str = Field("train", description="lexicon: the words of the training transcripts (train), or a word "
                                               "list file (one word per line; bigram counts still from train)")
    lm_weight: NonNegativeFloat = Field(
        0.5, description="lexicon: weight of the word bigram log-probability (0: lexicon only)")
    word_bonus: float = Field(0.0, description="lexicon: score added per word (> 0 favours more, shorter words)")
    max_tokens: PositiveInt = Field(96, description="Whisper: most tokens generated per utterance")


class SpeechExportConfig(ExportConfig):
    """Export settings: logits parity plus identical greedy transcripts."""

    parity_tolerance: PositiveFloat = Field(1e-3, description="max abs difference of logits allowed")
    verify_samples: PositiveInt = Field(16, description="held-out test utterances used for verification")


class SpeechRecognitionRecipe(Recipe):
    """Recipe of a speech recognition run."""

    task: Literal["speech_recognition"] = Field(..., description="task name")
    data: SpeechDataConfig = Field(default_factory=SpeechDataConfig, description="data")
    vocabulary: str = Field(DEFAULT_VOCABULARY, description="characters the model writes (CTC blank added)")
    extra_tests: list[str] = Field(
        default_factory=list, description="other data sources evaluated as out-of-domain test sets (e.g. pocketsphinx)"
    )
    features: FeatureConfig = Field(default_factory=FeatureConfig, description="log-mel features")
    spec_augment: SpecAugmentConfig = Field(default_factory=SpecAugmentConfig, description="SpecAugment")
    model: AcousticModelConfig = Field(default_factory=AcousticModelConfig, description="acoustic model")
    decoding: CTCDecodingConfig = Field(default_factory=CTCDecodingConfig, description="decoding")
    export: SpeechExportConfig = Field(default_factory=SpeechExportConfig, description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        if len(set(self.vocabulary)) != len(self.vocabulary) or not self.vocabulary:
            raise ValueError(f"vocabulary: {self.vocabulary!r} must list each character once")
        if self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: the acoustic model is trained whole; set it to 0")
        if self.model.pretrained and self.model.init:
            raise ValueError("model.init: starts a CTC network from a run; model.pretrained uses Whisper instead; "
                             "give one of them")
        if self.model.pretrained and self.decoding.method == "lexicon":
            raise ValueError("decoding.method: lexicon decodes CTC logits; Whisper (model.pretrained) decodes "
                             "tokens, use greedy or beam")
        if self.model.pretrained:  # Whisper brings its own features
            if self.data.sample_rate != 16000:
                raise ValueError(f"data.sample_rate: Whisper listens at 16000 Hz, not {self.data.sample_rate}; "
                                 "set data.sample_rate: 16000")
            return self
        check_features(self.features, self.data.sample_rate)
        return self


# ------------------------------------------------------------------------- task


class SpeechRecognitionTask(Task):
    """Speech recognition: data, features, CTC model, WER/CER and serving signatures."""

    name = "speech_recognition"
    predictor = SpeechRecognitionPredictor
    config_class = SpeechRecognitionRecipe
    sources = SPEECH_SOURCES
    input_kind = "audio"
    default_monitor = "val_loss"

    def data_from_user(self, user):
        from toolkit.tasks.speech_recognition.sources import speech_data

        return speech_data(user, self.recipe.data, self.recipe.train.seed, self.recipe.vocabulary)

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._report = {}
        self.metadata = None
        self.backbone = _NoBackbone()
        self._whisper = None
        self._whisper_entries = None
        self._transcriber = None
        self._lexicon = None

    def check_references(self):
        from toolkit.references import check_file, check_preset

        recipe = self.recipe
        if recipe.model.pretrained:
            check_preset("model.pretrained", recipe.model.pretrained[4:], "a Whisper preset")
        elif recipe.decoding.lexicon != "train":
            check_file("decoding.lexicon", recipe.decoding.lexicon, "a text file with one word per line, or train "
                       "(the words of the training transcripts)")
        if recipe.model.init:
            self.init_metadata()
        if recipe.data.source == "espeak":
            from toolkit.tasks.speech_recognition.sources import check_voices

            espeak = recipe.data.espeak
            check_voices(list(espeak.voices) + list(espeak.test_voices))

    # Architecture settings that shape the weights (dropout and SpecAugment do not).
    INIT_MODEL_KEYS = ("conv_filters", "conv_kernel", "time_stride", "rnn", "rnn_units", "rnn_layers")

    def init_metadata(self):
        """The metadata of the `model.init` run, checked to be a CTC speech run this network can start from.

        Raises:
            RecipeError: one line naming the run, what differs and how to fix it.
        """
        import json

        from toolkit.errors import RecipeError
        from toolkit.references import run_metadata

        directory = self.recipe.model.init[4:]
        field = "model.init"
        metadata = run_metadata(field, directory)
        if metadata.get("task") != self.name:
            raise RecipeError(f"{field}: run:{directory} is a {metadata.get('task', 'unknown')} run; model.init takes "
                              "a speech_recognition CTC run (e.g. run:saved_models/espeak_ctc)")
        if metadata.get("whisper") or (metadata.get("model") or {}).get("pretrained"):
            raise RecipeError(f"{field}: run:{directory} is a Whisper run; model.init takes a CTC run (fine-tune a "
                              "Whisper run's preset with model.pretrained instead)")
        recipe = self.recipe
        theirs_model = metadata.get("model") or {}
        mine = {"vocabulary": recipe.vocabulary, "data.sample_rate": recipe.data.sample_rate,
                **{f"features.{key}": value for key, value in recipe.features.model_dump(mode="json").items()},
                **{f"model.{key}": value for key, value in recipe.model.model_dump(mode="json").items()
                   if key in self.INIT_MODEL_KEYS}}
        theirs = {"vocabulary": metadata.get("vocabulary"), "data.sample_rate": metadata.get("sample_rate"),
                  **{f"features.{key}": value for key, value in (metadata.get("features") or {}).items()},
                  **{f"model.{key}": theirs_model.get(key) for key in self.INIT_MODEL_KEYS}}
        differ = [key for key in mine if json.dumps(mine[key]) != json.dumps(theirs.get(key))
                  and not (isinstance(mine[key], (int, float)) and isinstance(theirs.get(key), (int, float))
                           and float(mine[key]) == float(theirs[key]))]
        if differ:
            shown = ", ".join(f"{key} {theirs.get(key)!r} there, {mine[key]!r} here" for key in differ[:4])
            raise RecipeError(f"{field}: run:{directory} is not compatible with this recipe ({shown}); set the same "
                              "vocabulary, data.sample_rate, features and model sizes as that run")
        return metadata

    def _initialise_from_run(self, model):
        """Copies every weight of the `model.init` run's network into `model` (same layer names and shapes)."""
        from toolkit.errors import RecipeError
        from toolkit.model_io import load_keras_file

        self.init_metadata()
        directory = self.recipe.model.init[4:]
        source = load_keras_file(os.path.join(directory, "model.keras"))
        theirs = {layer.name: layer for layer in source.layers}
        copied = 0
        for layer in model.layers:
            if not layer.weights or layer.name == "spec_augment":  # its seed state is not a weight to learn
                continue
            other = theirs.get(layer.name)
            shapes = [tuple(w.shape) for w in layer.weights]
            if other is None or [tuple(w.shape) for w in other.weights] != shapes:
                raise RecipeError(f"model.init: run:{directory} has no layer {layer.name!r} of weight shapes {shapes}; "
                                  "set the same vocabulary, features and model sizes as that run")
            layer.set_weights(other.get_weights())
            copied += 1
        if not copied:
            raise RecipeError(f"model.init: run:{directory}: no weights to copy; give a trained CTC run")
        return copied

    @property
    def whisper(self):
        """(backbone, tokenizer, audio converter config) of `model.pretrained` (loaded once), or None."""
        if self._whisper is None and self.recipe.model.pretrained:
            from toolkit.tasks.speech_recognition.whisper import load_whisper

            self._whisper = load_whisper(self.recipe.model.pretrained[4:])
        return self._whisper

    @property
    def data(self):
        if self._data is None:
            self._data = self.read_data(self.recipe.vocabulary)
            if not self._data.splits.get("train"):
                raise DataError("data: the train split is empty")
        return self._data

    tfrecord_note = None  # float32 samples (raw bytes), rate, transcript, speaker, id

    def tfrecord_examples(self, split, skipped):
        from toolkit.data.tfrecord import bytes_feature, int64_feature, serialize

        rate = self.recipe.data.sample_rate
        for utterance in self.data.splits[split]:
            yield serialize({"audio": bytes_feature(np.asarray(utterance.audio, "<f4").tobytes()),
                             "sample_rate": int64_feature(rate), "text": bytes_feature(utterance.text.encode("utf-8")),
                             "speaker": bytes_feature(utterance.speaker.encode("utf-8")),
                             "id": bytes_feature(utterance.id.encode("utf-8"))})

    def tfrecord_metadata(self):
        return {"sample_rate": self.recipe.data.sample_rate}

    def build_inputs(self, split, training=False):
        import tensorflow as tf

        utterances = self.data.splits.get(split) or []
        if not utterances:
            return None
        metadata = self.model_metadata()
        vocabulary = self.recipe.vocabulary
        report = dict(self.data.report.get(split, {}))
        report["examples"] = len(utterances)
        report["audio_seconds"] = round(sum(len(u.audio) for u in utterances) / self.recipe.data.sample_rate, 1)
        self._report[split] = report

        if self.recipe.model.pretrained:
            dataset, padding = self._whisper_examples(utterances, metadata)
        else:
            def generator():
                for utterance in utterances:
                    yield (utterance.audio.astype(np.float32),
                           np.asarray(text_to_ids(utterance.text, vocabulary), np.int32))

            dataset = tf.data.Dataset.from_generator(generator, output_signature=(
                tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)))
            dataset = dataset.map(lambda wave, label: (log_mel(wave[None], tf.shape(wave)[:1], metadata)[0], label),
                                  num_parallel_calls=tf.data.AUTOTUNE)
            padding = {"padded_shapes": ([None, None], [None])}
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(len(utterances), self.recipe.data.shuffle_buffer),
                                      seed=self.recipe.train.seed, reshuffle_each_iteration=True)
        batch = self.recipe.train.batch_size
        dataset = dataset.padded_batch(batch, **padding)
        count = -(-len(utterances) // batch)
        return prefetched(dataset.apply(tf.data.experimental.assert_cardinality(count)))

    def _whisper_examples(self, utterances, metadata):
        """((Whisper features, decoder ids), labels, weights) per utterance, and how to pad them into batches."""
        import tensorflow as tf

        from toolkit.tasks.speech_recognition.whisper import features, label_ids
        from toolkit.text_generation import special_ids

        tokenizer, ids = self.whisper[1], special_ids(metadata)
        limit = self.recipe.decoding.max_tokens

        def generator():
            for utterance in utterances:
                yield (utterance.audio.astype(np.float32),
                       *label_ids(tokenizer, utterance.text, ids["decoder_start"], ids["eos"], limit))

        dataset = tf.data.Dataset.from_generator(generator, output_signature=(
            tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32)))
        dataset = dataset.map(lambda wave, decoder, labels, weights: (
            (features(wave[None], metadata)[0], decoder), labels, weights), num_parallel_calls=tf.data.AUTOTUNE)
        pad = tf.constant(ids["pad"], tf.int32)
        return dataset, {"padded_shapes": (([None, None], [None]), [None], [None]),
                         "padding_values": ((0.0, pad), pad, 0.0)}

    def data_report(self):
        return self._report

    def build_preprocessor(self):
        metadata = self.model_metadata()
        return lambda waves, lengths: log_mel(waves, lengths, metadata)

    def build_model(self):
        import keras
        from keras import layers, ops

        if self.recipe.model.pretrained:
            from toolkit.tasks.speech_recognition.whisper import build_whisper_model

            return build_whisper_model(self.whisper[0], self.recipe.name or "speech")
        config, augment = self.recipe.model, self.recipe.spec_augment
        bins = self.recipe.features.num_mel_bins
        features = keras.Input((None, bins), name="features")
        # Frames of padding are exactly zero (see log_mel); after each time stride of 2 an output frame is
        # speech when either of its two input frames is.
        speech = ops.cast(ops.any(ops.not_equal(features, 0.0), axis=-1), "float32")[:, :, None]
        speech = layers.MaxPooling1D(2, strides=2, padding="same", name="frame_mask")(speech)
        if config.time_stride == 4:
            speech = layers.MaxPooling1D(2, strides=2, padding="same", name="frame_mask_2")(speech)
        x = spec_augment_class()(augment.freq_masks, augment.freq_width, augment.time_masks, augment.time_width,
                                 seed=self.recipe.train.seed, name="spec_augment")(features)
        x = layers.Reshape((-1, bins, 1), name="add_channel")(x)
        time_kernel, freq_kernel = config.conv_kernel
        x = layers.Conv2D(config.conv_filters, (time_kernel, freq_kernel), strides=(2, 2), padding="same", use_bias=False,
                          name="conv_1")(x)
        x = layers.ReLU(name="conv_1_relu")(layers.BatchNormalization(name="conv_1_bn")(x))
        x = layers.Conv2D(config.conv_filters, (time_kernel, max(1, freq_kernel // 2)),
                          strides=(config.time_stride // 2, 2), padding="same", use_bias=False, name="conv_2")(x)
        x = layers.ReLU(name="conv_2_relu")(layers.BatchNormalization(name="conv_2_bn")(x))
        merged = math.ceil(math.ceil(bins / 2) / 2)  # mel bins left after two frequency strides of 2 ("same")
        x = layers.Reshape((-1, merged * config.conv_filters), name="merge_bins")(x)
        cell = layers.GRU if config.rnn == "gru" else layers.LSTM
        for index in range(config.rnn_layers):
            x = layers.Bidirectional(cell(config.rnn_units, return_sequences=True), name=f"rnn_{index + 1}")(x)
            x = layers.Dropout(config.dropout, name=f"rnn_{index + 1}_dropout")(x)
        # float32 under a mixed precision policy: CTC needs full-precision logits.
        logits = layers.Dense(len(self.recipe.vocabulary) + 1, dtype="float32", name="characters")(x)
        # Padding frames: logit 0 for the blank, -1e4 for every character (built from tensors: a NumPy
        # constant here becomes an extra ONNX input).
        blank = ops.one_hot(ops.cast(speech[:, :, 0] * 0.0, "int32") + BLANK, len(self.recipe.vocabulary) + 1)
        logits = ops.where(speech > 0, logits, (blank - 1.0) * 1e4)
        model = keras.Model(features, logits, name=f"{self.recipe.name or 'speech'}_ctc")
        if config.init:
            self._initialise_from_run(model)
        return model

    def backbone_layer(self, model):
        return model

    def build_losses(self):
        import keras

        if self.recipe.model.pretrained:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return keras.losses.CTC()

    def build_metrics(self):
        return []

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        return {
            "task": self.name,
            "input": self.input_kind,
            "sample_rate": self.recipe.data.sample_rate,
            "vocabulary": self.recipe.vocabulary,
            "features": self.recipe.features.model_dump(),
            "model": self.recipe.model.model_dump(),
            "decoding": self.recipe.decoding.model_dump(),
            "data_provenance": self.data.provenance,
            **self._whisper_metadata(),
            **self._lexicon_metadata(),
        }

    def _lexicon_metadata(self):
        """{"lexicon": words and bigram counts of the training transcripts} of a CTC model (kept with the model, so
        any export can decode with `decoding.method: lexicon`)."""
        if self.recipe.model.pretrained:
            return {}
        if self._lexicon is None:
            from toolkit.tasks.speech_recognition.lexicon import build_lexicon

            words_file = None if self.recipe.decoding.lexicon == "train" else self.recipe.decoding.lexicon
            self._lexicon = build_lexicon([u.text for u in self.data.splits["train"]], self.recipe.vocabulary,
                                          words_file)
        return {"lexicon": self._lexicon}

    def _whisper_metadata(self):
        if not self.recipe.model.pretrained:
            return {}
        if self._whisper_entries is None:  # packing the tokenizer writes files: once
            from toolkit.tasks.speech_recognition.whisper import whisper_metadata

            _, tokenizer, converter_config = self.whisper
            self._whisper_entries = whisper_metadata(self.recipe.model.pretrained, tokenizer, converter_config,
                                                     self.recipe.decoding.max_tokens)
        return self._whisper_entries

    # Evaluation ---------------------------------------------------------
    def evaluate(self, model, split="test"):
        utterances = self.data.splits.get(split) or []
        if not utterances:
            raise DataError(f"data: there is no {split} split to evaluate on")
        metrics = self._score(model, utterances, split)
        if split == "test":
            if self.data.splits.get("validation"):
                metrics["validation"] = self._score(model, self.data.splits["validation"], "validation")
            for source in self.recipe.extra_tests:
                config = self.recipe.data.model_copy(update={"source": source})
                extra = self.sources.get(source)(config, self.recipe.train.seed, self.recipe.vocabulary)
                metrics.setdefault("out_of_domain", {})[source] = dict(
                    self._score(model, extra.splits["test"], source), provenance=extra.provenance)
        return metrics

    def _score(self, model, utterances, label):
        import jiwer

        from toolkit.progress import Progress

        transcriber = make_transcriber(model, self.model_metadata())
        started = time.time()
        with Progress(f"transcribing {label}", total=len(utterances), unit="utterances") as progress:
            hypotheses = transcriber.transcribe([u.audio for u in utterances], on_batch=progress.update)
        seconds = time.time() - started
        audio_seconds = sum(len(u.audio) for u in utterances) / self.recipe.data.sample_rate
        references = [u.text for u in utterances]
        rows = []
        for utterance, hypothesis in zip(utterances, hypotheses):
            rows.append({"id": utterance.id, "speaker": utterance.speaker, "reference": utterance.text,
                         "transcript": hypothesis,
                         "cer": round(jiwer.cer(utterance.text, hypothesis or " "), 4),
                         "wer": round(jiwer.wer(utterance.text, hypothesis or " "), 4)})
        worst = sorted(rows, key=lambda row: (-row["wer"], -row["cer"]))[:10]
        safe = [h if h.strip() else "<empty>" for h in hypotheses]
        return {"examples": len(utterances), "wer": float(jiwer.wer(references, safe)),
                "cer": float(jiwer.cer(references, safe)), "decoding": self.recipe.decoding.model_dump(),
                "audio_seconds": round(audio_seconds, 1), "decoding_seconds": round(seconds, 2),
                "realtime_factor": round(seconds / max(audio_seconds, 1e-9), 4), "worst": worst}

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        import tensorflow as tf

        self._transcriber = make_transcriber(model, self.model_metadata())
        transcribe = self._transcriber.function()

        def serve_transcribe(waveform, lengths):
            return {"transcript": transcribe(waveform, lengths)}

        wave_spec = [tf.TensorSpec([None, None], tf.float32, name="waveform"),
                     tf.TensorSpec([None], tf.int32, name="lengths")]
        if self.recipe.model.pretrained:
            def serve_logits(features, decoder_token_ids):
                return {"logits": model([features, decoder_token_ids], training=False)}
        else:
            def serve_logits(features):
                return {"logits": model(features, training=False)}

        return {
            "serving_default": (serve_transcribe, wave_spec),
            "transcribe": (serve_transcribe, wave_spec),
            "logits": (serve_logits, self.onnx_signature()),
        }

    def serving_resources(self):
        return self._transcriber.resources() if self._transcriber else []

    def onnx_signature(self):
        import tensorflow as tf

        if self.recipe.model.pretrained:
            mels = self.model_metadata()["whisper"]["audio_converter"]["num_mels"]
            return [tf.TensorSpec([None, None, mels], tf.float32, name="features"),
                    tf.TensorSpec([None, None], tf.int32, name="decoder_token_ids")]
        return [tf.TensorSpec([None, None, self.recipe.features.num_mel_bins], tf.float32, name="features")]

    def quality_samples(self, count):
        utterances = self.data.splits["test"][:count]
        return utterances, [u.text for u in utterances]

    tflite_int8_supported = False  # the converter's calibrator cannot run the recurrent layers
    tflite_unsupported_reason = "a Whisper model's decoding loop is not exported; the CTC acoustic network is"

    @property
    def tflite_supported(self):
        return not self.recipe.model.pretrained  # the CTC acoustic network; Whisper's decoder loop is not exported

    def tflite_signature(self):
        """Batch 1, any number of frames: recurrent loops convert to builtin TFLite ops only with a static batch."""
        import tensorflow as tf

        return [tf.TensorSpec([1, None, self.recipe.features.num_mel_bins], tf.float32, name="features")]

    def representative_inputs(self, count):
        """Log-mel features ([1, frames, mels]) of up to `count` training utterances, for int8 calibration."""
        metadata = self.model_metadata()
        return [features_of([u.audio], metadata) for u in self.data.splits["train"][:count]]

    def verification_samples(self, count):
        return list(self.data.splits["test"][:count])

    def save_samples(self, samples, directory):
        from toolkit.data.audio_io import write_wav

        os.makedirs(directory, exist_ok=True)
        rate = self.recipe.data.sample_rate
        with open(os.path.join(directory, "metadata.csv"), "w", encoding="utf-8") as f:
            for index, utterance in enumerate(samples):
                write_wav(os.path.join(directory, f"{index:03d}.wav"), utterance.audio, rate)
                f.write(f"{index:03d}|{utterance.text}\n")


class _NoBackbone:
    """The acoustic model is trained whole: nothing to freeze."""

    pretrained = False


__all__ = ["SpeechRecognitionRecipe", "SpeechRecognitionTask"]
