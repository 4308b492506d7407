"""Audio classification: clip -> label (spoken commands, language, speaker, sound events), log-mel in the graph.

Training hears fixed windows (`data.window_seconds`): a random window of each clip per epoch (zero-padded when
the clip is shorter), with background noise mixed in (`data.noise`) and SpecAugment in the model. Evaluation,
prediction and serving cut each clip into windows (`data.hop_seconds` apart; `toolkit.tasks.audio.windows`),
score every window and take the mean (or max) of the window probabilities as the clip's (`data.aggregate`).

Metrics: clip accuracy, window accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix (plot),
and accuracy per speaker and per group (language) as slice tables.

Serving: `serving_default` takes WAV bytes (16-bit PCM, any sample rate, resampled in the graph),
`serve_waveform` float samples with their lengths and sample rate; both return probabilities, labels, the
top-k classes and the per-window probabilities. The ONNX and TFLite exports are the network (log-mel windows ->
probabilities); `toolkit predict x.onnx` computes windows and features in NumPy.

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> make_task(load_recipe("recipes/audio_classification/asterisk_language.yaml")).name
'audio_classification'
"""

import os
from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from toolkit.config.schema import ExportConfig, Recipe, StrictModel
from toolkit.data.audio_features import log_mel
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError
from toolkit.tasks.audio.config import FeatureConfig, SpecAugmentConfig, check_features
from toolkit.tasks.audio_classification.config import AudioClassDataConfig
from toolkit.tasks.audio_classification.predictor import AudioClassificationPredictor, clip_probabilities
from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES
from toolkit.tasks.base import Task


class AudioModelConfig(StrictModel):
    """The network on log-mel windows."""

    encoder: str = Field("cnn", description="cnn (2-D convolution blocks), attention (convolutions, bidirectional "
                                            "GRU, attention pooling) or run:<speech recognition run> (its CTC "
                                            "model's convolution + recurrent stack, pretrained on speech)")
    filters: list[PositiveInt] = Field(default_factory=lambda: [32, 64, 128],
                                       description="cnn: filters per block (each block halves time and frequency); "
                                                   "attention: the first entry is the convolutions' filters")
    convs_per_block: PositiveInt = Field(1, description="cnn: 3x3 convolutions per block")
    rnn_units: PositiveInt = Field(96, description="attention: GRU units per direction")
    rnn_layers: PositiveInt = Field(1, description="attention: bidirectional GRU layers")
    pooling: Literal["average", "attention"] = Field("average", description="pooling over time (cnn, attention; "
                                                                            "run: encoders use attention)")
    attention_units: PositiveInt = Field(64, description="hidden units of attention pooling")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before the softmax")
    band_norm: bool = Field(False, description="subtract each mel band's mean over the window's frames (cepstral "
                                               "mean normalisation): removes the channel's and part of the "
                                               "speaker's spectral envelope")

    @field_validator("encoder")
    @classmethod
    def _check_encoder(cls, value):
        if value in ("cnn", "attention") or (value.startswith("run:") and len(value) > 4):
            return value
        if value.startswith("hub:"):
            raise ValueError(f"{value!r}: hub: (Whisper) encoders are not supported by audio_classification yet; use "
                             "cnn, attention or run:<speech recognition run>")
        raise ValueError(f"{value!r}: write cnn, attention or run:<speech recognition run directory>")


class AudioExportConfig(ExportConfig):
    """Export settings of audio classifiers."""

    parity_tolerance: PositiveFloat = Field(1e-3, description="max abs difference of clip probabilities allowed")
    verify_samples: PositiveInt = Field(32, description="held-out test clips used for verification")


class AudioClassificationRecipe(Recipe):
    """Recipe of an audio classification run."""

    task: Literal["audio_classification"] = Field(..., description="task name")
    data: AudioClassDataConfig = Field(default_factory=AudioClassDataConfig, description="data")
    features: FeatureConfig = Field(default_factory=FeatureConfig, description="log-mel features")
    spec_augment: SpecAugmentConfig = Field(default_factory=SpecAugmentConfig, description="SpecAugment")
    model: AudioModelConfig = Field(default_factory=AudioModelConfig, description="network")
    export: AudioExportConfig = Field(default_factory=AudioExportConfig, description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        check_features(self.features, self.data.sample_rate)
        if self.data.window_seconds * 1000 < self.features.frame_ms:
            raise ValueError(f"data.window_seconds ({self.data.window_seconds}) is shorter than one feature frame "
                             f"({self.features.frame_ms} ms)")
        if not self.model.encoder.startswith("run:") and self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: only a run: encoder is pretrained; set it to 0")
        return self


class _Encoder:
    """What the trainer freezes: the pretrained speech encoder of a run: model, or nothing."""

    def __init__(self, model=None):
        self.model = model
        self.pretrained = model is not None


class AudioClassificationTask(Task):
    """Audio classification: data, windows, network, clip metrics and serving signatures."""

    name = "audio_classification"
    predictor = AudioClassificationPredictor
    config_class = AudioClassificationRecipe
    sources = AUDIO_CLASS_SOURCES
    input_kind = "audio"
    default_monitor = "val_accuracy"
    user_data_extras = ("class_names",)
    tfrecord_note = "its clips are read from audio files or the offline sets directly"

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._report = {}
        self.metadata = None
        self.backbone = _Encoder()

    def data_from_user(self, user):
        from toolkit.tasks.audio_classification.sources import audio_class_data

        return audio_class_data(user, self.recipe.data, self.recipe.train.seed, user.extras.get("class_names"))

    @property
    def data(self):
        if self._data is None:
            self._data = self.read_data()
            if not self._data.splits.get("train"):
                raise DataError("data: the train split is empty")
        return self._data

    @property
    def class_names(self):
        return list(self.data.class_names)

    @property
    def window(self):
        return int(round(self.recipe.data.window_seconds * self.recipe.data.sample_rate))

    @property
    def hop(self):
        return max(1, int(round(self.recipe.data.hop_seconds * self.recipe.data.sample_rate)))

    @property
    def recurrent(self):
        return self.recipe.model.encoder != "cnn"

    def check_references(self):
        from toolkit.references import check_run

        encoder = self.recipe.model.encoder
        if encoder.startswith("run:"):
            check_run("model.encoder", encoder[4:],
                      lambda metadata: metadata.get("task") == "speech_recognition" and "whisper" not in metadata,
                      "a CTC speech_recognition run (its acoustic model is the encoder)")
        noise = self.recipe.data.noise.path
        if noise and not os.path.isdir(noise):
            from toolkit.errors import RecipeError

            raise RecipeError(f"data.noise.path: {noise} is not a directory; give a folder of noise recordings or "
                              "leave it out for synthetic noise")

    # Data ---------------------------------------------------------------
    def _noise_bank(self):
        """Noise recordings of data.noise.path at the model's rate (None: synthetic noise)."""
        path = self.recipe.data.noise.path
        if not path:
            return None
        from toolkit.data.audio_io import UnreadableAudio, load_audio
        from toolkit.tasks.audio_classification.sources import _audio_files

        bank = []
        for file in _audio_files(path):
            try:
                bank.append(load_audio(file, self.recipe.data.sample_rate))
            except UnreadableAudio:
                continue
        if not bank:
            raise DataError(f"data.noise.path {path}: no readable audio files; add WAV files or leave it out")
        return bank

    def build_inputs(self, split, training=False):
        import tensorflow as tf

        from toolkit.data.audio_io import gsm_round_trip
        from toolkit.tasks.audio.windows import numpy_windows

        clips = self.data.splits.get(split) or []
        if not clips:
            return None
        metadata = self.model_metadata()
        index = {name: i for i, name in enumerate(self.class_names)}
        window, hop = self.window, self.hop
        report = dict(self.data.report.get(split, {}))
        report["examples"] = len(clips)
        report["audio_seconds"] = round(sum(len(c.audio) for c in clips) / self.recipe.data.sample_rate, 1)
        self._report[split] = report
        signature = (tf.TensorSpec([window], tf.float32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32))
        batch = self.recipe.train.batch_size
        if training:
            noise = self.recipe.data.noise
            bank = self._noise_bank() if noise.probability > 0 else None
            speed = tuple(self.recipe.data.speed_perturb)
            gsm, rate = self.recipe.data.gsm_probability, self.recipe.data.sample_rate
            epoch = [0]

            def generator():
                random = np.random.RandomState(self.recipe.train.seed + 7919 * epoch[0])
                epoch[0] += 1
                for position in random.permutation(len(clips)):
                    clip = clips[position]
                    factor = random.uniform(*speed) if speed != (1.0, 1.0) else 1.0
                    wave = crop(clip.audio, int(round(window * factor)), random)
                    if factor != 1.0:
                        wave = change_speed(wave, factor)[:window]
                    if gsm and random.rand() < gsm:
                        wave = gsm_round_trip(wave, rate)
                    if noise.probability and random.rand() < noise.probability:
                        wave = mix_noise(wave, random, noise.snr_db, bank)
                    padded = np.zeros(window, np.float32)
                    padded[: len(wave)] = wave
                    yield padded, np.int32(len(wave)), np.int32(index[clip.label])

            dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
            count = -(-len(clips) // batch)
        else:
            waves, lengths, labels = [], [], []
            for clip in clips:
                pieces, sizes = numpy_windows(clip.audio, window, hop)
                waves.append(pieces)
                lengths.append(sizes)
                labels.append(np.full(len(sizes), index[clip.label], np.int32))
            waves, lengths, labels = np.concatenate(waves), np.concatenate(lengths), np.concatenate(labels)
            dataset = tf.data.Dataset.from_tensor_slices((waves, lengths, labels))
            count = -(-len(labels) // batch)
        dataset = dataset.batch(batch).map(lambda w, n, y: (log_mel(w, n, metadata), y),
                                           num_parallel_calls=tf.data.AUTOTUNE)
        if not training:
            dataset = dataset.cache()
        return prefetched(dataset.apply(tf.data.experimental.assert_cardinality(count)))

    def data_report(self):
        return self._report

    def build_preprocessor(self):
        metadata = self.model_metadata()
        return lambda waves, lengths: log_mel(waves, lengths, metadata)

    # Model --------------------------------------------------------------
    def build_model(self):
        from toolkit.tasks.audio_classification.model import build_network, load_speech_encoder

        encoder = None
        if self.recipe.model.encoder.startswith("run:"):
            encoder = load_speech_encoder(self.recipe.model.encoder[4:], self.recipe)
            self.backbone = _Encoder(encoder)
        return build_network(self.recipe, len(self.class_names), encoder)

    def backbone_layer(self, model):
        if self.backbone.pretrained:
            return model.get_layer("speech_encoder")
        return model

    def build_losses(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def build_metrics(self):
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        data = self.recipe.data
        return {
            "task": self.name,
            "input": self.input_kind,
            "sample_rate": data.sample_rate,
            "features": self.recipe.features.model_dump(),
            "class_names": self.class_names,
            "window_seconds": data.window_seconds,
            "hop_seconds": data.hop_seconds,
            "aggregate": data.aggregate,
            "model": self.recipe.model.model_dump(),
            # what the model card names as the backbone: the encoder, and where its weights came from
            "backbone": {"reference": self.recipe.model.encoder,
                         "weights_source": ("a speech recognition run's encoder, fine-tuned here"
                                            if self.recipe.model.encoder.startswith("run:") else "trained here")},
            "top_k": min(self.recipe.export.top_k, len(self.class_names)),
            "data_provenance": self.data.provenance,
        }

    # Evaluation ---------------------------------------------------------
    def evaluate(self, model, split="test"):
        from toolkit.classification_metrics import classification_metrics, slice_accuracy
        from toolkit.progress import Progress

        clips = self.data.splits.get(split) or []
        if not clips:
            raise DataError(f"data: there is no {split} split to evaluate on")
        metadata = self.model_metadata()
        index = {name: i for i, name in enumerate(self.class_names)}
        labels = np.asarray([index[c.label] for c in clips])
        with Progress(f"classifying {split}", total=len(clips), unit="clips") as progress:
            probabilities, windows = clip_probabilities(
                lambda features: np.asarray(model(features, training=False)), [c.audio for c in clips], metadata,
                on_batch=progress.update)
        metrics = classification_metrics(probabilities, labels, self.class_names)
        window_labels = np.concatenate([np.full(len(w), label) for w, label in zip(windows, labels)])
        window_predicted = np.concatenate([np.argmax(w, axis=-1) for w in windows])
        metrics["window_accuracy"] = float(np.mean(window_predicted == window_labels))
        metrics["windows"] = int(len(window_labels))
        metrics["window_seconds"] = self.recipe.data.window_seconds
        metrics["aggregate"] = self.recipe.data.aggregate
        predicted = np.argmax(probabilities, axis=-1)
        if any(c.speaker for c in clips):
            metrics["per_speaker"] = slice_accuracy(predicted, labels, [c.speaker or "?" for c in clips])
        if any(c.group for c in clips):
            metrics["per_group"] = slice_accuracy(predicted, labels, [c.group for c in clips])
        errors = [(float(probabilities[i, predicted[i]]), i) for i in range(len(clips)) if predicted[i] != labels[i]]
        metrics["worst"] = [{"id": clips[i].id, "label": clips[i].label, "predicted": self.class_names[predicted[i]],
                             "probability": round(p, 4), "speaker": clips[i].speaker}
                            for p, i in sorted(errors, reverse=True)[:10]]
        if split == "test" and self.data.splits.get("validation"):
            validation = self.data.splits["validation"]
            scores, _ = clip_probabilities(lambda features: np.asarray(model(features, training=False)),
                                           [c.audio for c in validation], metadata)
            truth = np.asarray([index[c.label] for c in validation])
            metrics["validation"] = {"accuracy": float(np.mean(np.argmax(scores, -1) == truth)),
                                     "examples": len(validation)}
        return metrics

    def plot(self, model, metrics, run_dir):
        from toolkit.plots import plot_confusion_matrix

        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), self.class_names,
                              os.path.join(run_dir, "confusion_matrix.png"))
        return ["confusion_matrix.png"]

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        import tensorflow as tf

        from toolkit.tasks.audio.windows import tf_decode_wav, tf_resample, tf_windows

        metadata = self.model_metadata()
        rate, window, hop = self.recipe.data.sample_rate, self.window, self.hop
        classes = len(self.class_names)
        names = tf.constant(self.class_names)
        top_k = min(self.recipe.export.top_k, classes)
        use_max = self.recipe.data.aggregate == "max"

        def classify(wave):
            pieces, lengths = tf_windows(wave, window, hop)
            scores = model(log_mel(pieces, lengths, metadata), training=False)
            if use_max:
                clip = tf.reduce_max(scores, axis=0)
                clip = clip / tf.reduce_sum(clip)
            else:
                clip = tf.reduce_mean(scores, axis=0)
            return clip, scores

        def outputs(clip, windows):
            top = tf.math.top_k(clip, k=top_k)
            return {"probabilities": clip, "label": tf.gather(names, tf.argmax(clip, axis=-1)),
                    "top_k_classes": tf.gather(names, top.indices), "top_k_probabilities": top.values,
                    "window_probabilities": windows.to_tensor(), "window_count": tf.cast(windows.row_lengths(),
                                                                                           tf.int32)}

        signature = (tf.TensorSpec([classes], tf.float32), tf.RaggedTensorSpec([None, classes], tf.float32, 0))

        def serve_bytes(wav_bytes):
            def one(data):
                wave, source_rate = tf_decode_wav(data)
                return classify(tf_resample(wave, source_rate, rate))

            return outputs(*tf.map_fn(one, wav_bytes, fn_output_signature=signature))

        def serve_waveform(waveform, lengths, sample_rate):
            def one(item):
                wave, length = item
                return classify(tf_resample(wave[:length], sample_rate, rate))

            return outputs(*tf.map_fn(one, (waveform, lengths), fn_output_signature=signature))

        return {
            "serving_default": (serve_bytes, [tf.TensorSpec([None], tf.string, name="wav_bytes")]),
            "serve_waveform": (serve_waveform, [tf.TensorSpec([None, None], tf.float32, name="waveform"),
                                                tf.TensorSpec([None], tf.int32, name="lengths"),
                                                tf.TensorSpec([], tf.int32, name="sample_rate")]),
        }

    def onnx_signature(self):
        import tensorflow as tf

        return [tf.TensorSpec([None, None, self.recipe.features.num_mel_bins], tf.float32, name="features")]

    tflite_supported = True
    tflite_unsupported_reason = "the converter cannot calibrate recurrent layers for int8"

    @property
    def tflite_int8_supported(self):
        return not self.recurrent  # the calibrator cannot run GRU layers

    def tflite_signature(self):
        """One window's features: batch 1 for recurrent encoders (their loops convert to builtin ops only with a
        static batch), any batch for the CNN."""
        import tensorflow as tf

        from toolkit.data.audio_features import frame_sizes

        frame, step = frame_sizes(self.model_metadata())
        frames = max((self.window - frame) // step + 1, 1)
        batch = 1 if self.recurrent else None
        return [tf.TensorSpec([batch, frames, self.recipe.features.num_mel_bins], tf.float32, name="features")]

    def representative_inputs(self, count):
        from toolkit.tasks.audio.windows import numpy_windows

        metadata = self.model_metadata()
        inputs = []
        for i, clip in enumerate(self.data.splits["train"][:count]):
            pieces, lengths = numpy_windows(crop(clip.audio, self.window, np.random.RandomState(i)), self.window,
                                            self.hop)
            inputs.append(np.asarray(log_mel(pieces[:1], lengths[:1], metadata)))
        return inputs

    def verification_samples(self, count):
        return list(self.data.splits["test"][:count])

    def quality_samples(self, count):
        clips = self.data.splits["test"][:count]
        index = {name: i for i, name in enumerate(self.class_names)}
        return [c.audio for c in clips], np.asarray([index[c.label] for c in clips])

    def save_samples(self, samples, directory):
        from toolkit.data.audio_io import write_wav

        os.makedirs(directory, exist_ok=True)
        rate = self.recipe.data.sample_rate
        with open(os.path.join(directory, "labels.csv"), "w", encoding="utf-8") as f:
            f.write("file,label\n")
            for index, clip in enumerate(samples):
                write_wav(os.path.join(directory, f"{index:03d}.wav"), clip.audio, rate)
                f.write(f"{index:03d}.wav,{clip.label}\n")


def crop(wave, window, random):
    """A random `window`-sample piece of a clip (the clip itself when shorter)."""
    if len(wave) <= window:
        return np.asarray(wave, np.float32)
    start = random.randint(len(wave) - window + 1)
    return np.asarray(wave[start:start + window], np.float32)


def change_speed(wave, factor):
    """`wave` played `factor` times faster (linear interpolation): tempo and pitch change together."""
    size = max(1, int(round(len(wave) / factor)))
    positions = np.arange(size) * factor
    return np.interp(positions, np.arange(len(wave)), wave).astype(np.float32)


def mix_noise(wave, random, snr_db, bank=None):
    """`wave` plus noise at a random signal-to-noise ratio in `snr_db` (dB): a random piece of a recording from
    `bank`, or white, pink or brown noise."""
    size = len(wave)
    if bank:
        source = bank[random.randint(len(bank))]
        if len(source) >= size:
            start = random.randint(len(source) - size + 1)
            noise = np.asarray(source[start:start + size], np.float64)
        else:
            noise = np.resize(np.asarray(source, np.float64), size)
    else:
        white = random.standard_normal(size)
        kind = random.randint(3)
        if kind == 0:
            noise = white
        else:  # pink (1/f) or brown (1/f^2) by shaping the spectrum
            spectrum = np.fft.rfft(white)
            frequencies = np.maximum(np.arange(len(spectrum)), 1.0)
            noise = np.fft.irfft(spectrum / (frequencies ** (0.5 * kind)), n=size)
    signal_power = float(np.mean(np.square(wave))) or 1e-8
    noise_power = float(np.mean(np.square(noise))) or 1e-8
    snr = random.uniform(snr_db[0], snr_db[1])
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr / 10)))
    return np.clip(wave + scale * noise, -1.0, 1.0).astype(np.float32)


__all__ = ["AudioClassificationRecipe", "AudioClassificationTask"]
