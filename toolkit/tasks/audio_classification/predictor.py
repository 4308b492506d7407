"""Audio classifiers deployed: audio files (any common sample rate, resampled) or float waveforms in, a label per
clip out, with the probabilities of every window, in every runtime. Outside the graph (ONNX Runtime, TFLite)
windows and log-mel features are computed in NumPy; verification outputs (clip probabilities), the accuracy of
quantised exports and the model card's per-class, per-speaker and per-group tables.

Example:

>>> import numpy as np
>>> from toolkit.tasks.audio_classification.predictor import aggregate
>>> [round(float(p), 2) for p in aggregate(np.array([[0.9, 0.1], [0.5, 0.5]]), "mean")]
[0.7, 0.3]
"""

import os
import time

import numpy as np

from toolkit.data.audio_features import log_mel, log_mel_numpy_padded
from toolkit.tasks.predictor import Predictor, input_names, is_path

WINDOW_BATCH = 256


def aggregate(window_probabilities, how):
    """Clip probabilities from its windows' (`how`: mean, or max renormalised to sum 1)."""
    scores = np.asarray(window_probabilities, np.float64)
    if how == "max":
        clip = scores.max(axis=0)
        return (clip / max(clip.sum(), 1e-12)).astype(np.float32)
    return scores.mean(axis=0).astype(np.float32)


def window_sizes(metadata):
    rate = int(metadata["sample_rate"])
    return int(round(metadata["window_seconds"] * rate)), max(1, int(round(metadata["hop_seconds"] * rate)))


def clip_probabilities(run, waves, metadata, numpy_features=False, batch_size=WINDOW_BATCH, on_batch=None):
    """(clip probabilities [clips, classes], per-clip window probabilities) of waveforms at the model's rate.

    Args:
        run: callable features [n, frames, mels] -> probabilities [n, classes] (a Keras model, an ONNX session).
        waves: list of 1-D float arrays.
        metadata: dict. The model's metadata (sample rate, features, windows, aggregate).
        numpy_features: bool. Features in NumPy (no TensorFlow) instead of TensorFlow ops.
        batch_size: int. Windows per call.
        on_batch: optional callable(number of clips done in this batch).
    """
    from toolkit.tasks.audio.windows import numpy_windows

    window, hop = window_sizes(metadata)
    batches, sizes, owners = [], [], []
    for owner, wave in enumerate(waves):
        pieces, lengths = numpy_windows(wave, window, hop)
        batches.append(pieces)
        sizes.append(lengths)
        owners += [owner] * len(lengths)
    batches = np.concatenate(batches) if batches else np.zeros((0, window), np.float32)
    sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int32)
    step = batch_size
    scores, done = [], 0
    for start in range(0, len(sizes), step):
        chunk, lengths = batches[start:start + step], sizes[start:start + step]
        if numpy_features:
            features = log_mel_numpy_padded(chunk, lengths, metadata)
        else:
            features = np.asarray(log_mel(chunk, lengths, metadata))
        scores.append(np.asarray(run(features), np.float32))
        if on_batch is not None:
            finished = owners[start + step] if start + step < len(owners) else len(waves)
            on_batch(finished - done)
            done = finished
    scores = np.concatenate(scores) if scores else np.zeros((0, len(metadata["class_names"])), np.float32)
    owners = np.asarray(owners)
    windows = [scores[owners == owner] for owner in range(len(waves))]
    clips = np.stack([aggregate(w, metadata.get("aggregate", "mean")) for w in windows])
    return clips, windows


def onnx_runner(session):
    """features -> probabilities through an ONNX Runtime session, or a TFLite one (which runs a batch-1 network
    row by row itself)."""
    name = session.get_inputs()[0].name
    return lambda features: session.run(None, {name: features})[0]


class AudioClassificationPredictor(Predictor):
    """Audio classification: a label per clip, probabilities per window."""

    name = "audio_classification"
    agreement_unit = "top-1 per clip"
    quality_metric = "accuracy"
    export_notes = {
        "onnx": "the network only (log-mel windows -> probabilities): `toolkit predict x.onnx` cuts clips into "
                "windows, computes the features in NumPy and averages the window probabilities",
        "tflite": "the network only, like ONNX",
    }

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ("accuracy", "window_accuracy", "macro_f1", "examples")
        summary = {key: metrics[key] for key in keys if key in metrics}
        for group, figures in (metrics.get("per_group") or {}).items():
            summary[f"accuracy_{group}"] = figures["accuracy"]
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        lines = [f"Clip accuracy {metrics.get('accuracy', 0):.2%} (mean of {metrics.get('window_seconds')} s window "
                 f"scores: {metrics.get('aggregate')}), window accuracy {metrics.get('window_accuracy', 0):.2%} on "
                 f"{metrics.get('windows')} windows.", "", "Per class:", "",
                 table(["class", "precision", "recall", "F1", "support"], [
                     [name, number(v["precision"]), number(v["recall"]), number(v["f1"]), v["support"]]
                     for name, v in metrics.get("per_class", {}).items()]), ""]
        for key, title in (("per_speaker", "speaker"), ("per_group", "group")):
            if metrics.get(key):
                lines += [f"Per {title}:", "", table([title, "accuracy", "clips"], [
                    [name, number(v["accuracy"]), v["examples"]] for name, v in metrics[key].items()]), ""]
        return lines

    @classmethod
    def card_limitations(cls, metadata):
        return [
            f"- Classifies clips like those of the training data ({metadata.get('data_provenance', '')}) into the "
            f"{len(metadata.get('class_names', []))} classes above; it always answers one of them, also for audio "
            "of anything else: use the probabilities to reject unsure answers.",
            f"- Hears {metadata.get('window_seconds')} s windows at {metadata.get('sample_rate')} Hz (`toolkit "
            f"predict` and the SavedModel resample); a longer clip is scored window by window "
            f"({metadata.get('hop_seconds')} s apart) and the {metadata.get('aggregate')} of the window scores decides.",
            "- Accuracy per speaker is in the table above: voices, microphones and rooms unlike the training data "
            "can score much lower.",
        ]

    # Verification -----------------------------------------------------------------------------
    @classmethod
    def load_samples(cls, directory, metadata):
        from toolkit.data.audio_io import load_audio

        with open(os.path.join(directory, "labels.csv"), encoding="utf-8") as f:
            names = [line.split(",", 1)[0] for line in f.read().splitlines()[1:] if line]
        return [load_audio(os.path.join(directory, name), int(metadata["sample_rate"])) for name in names]

    @classmethod
    def predict_inputs(cls, samples):
        return [np.asarray(s.audio if hasattr(s, "audio") else s, np.float32) for s in samples]

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        waves = cls.predict_inputs(samples)
        return clip_probabilities(lambda f: np.asarray(model(f, training=False)), waves, metadata)[0]

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import io

        import tensorflow as tf

        from toolkit.data.audio_io import write_wav

        waves = cls.predict_inputs(samples)
        encoded = []
        for wave in waves:
            buffer = io.BytesIO()
            write_wav(buffer, wave, int(metadata["sample_rate"]))
            encoded.append(buffer.getvalue())
        by_bytes = artifact.signatures["serving_default"](wav_bytes=tf.constant(encoded))["probabilities"].numpy()
        by_wave = np.concatenate([artifact.signatures["serve_waveform"](
            waveform=tf.constant(wave[None]), lengths=tf.constant([len(wave)], tf.int32),
            sample_rate=tf.constant(int(metadata["sample_rate"]), tf.int32))["probabilities"].numpy()
            for wave in waves])
        return {"serving_default": by_bytes, "serve_waveform": by_wave}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        return {"onnx": clip_probabilities(onnx_runner(artifact), cls.predict_inputs(samples), metadata,
                                           numpy_features=True)[0]}

    @classmethod
    def quality(cls, outputs, targets, metadata):
        return float(np.mean(np.argmax(np.asarray(outputs), axis=-1) == np.asarray(targets).reshape(-1)))

    # Prediction: audio files or float waveforms at the model's rate -------------------------------
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return cls._predict(inputs, metadata, top_k,
                            lambda waves: clip_probabilities(lambda f: np.asarray(handle(f, training=False)), waves,
                                                             metadata))

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        def classify(waves):
            clips, windows = [], []
            for wave in waves:
                answer = handle.signatures["serve_waveform"](
                    waveform=tf.constant(wave[None]), lengths=tf.constant([len(wave)], tf.int32),
                    sample_rate=tf.constant(int(metadata["sample_rate"]), tf.int32))
                clips.append(answer["probabilities"].numpy()[0])
                windows.append(answer["window_probabilities"].numpy()[0][: int(answer["window_count"].numpy()[0])])
            return np.stack(clips), windows

        return cls._predict(inputs, metadata, top_k, classify)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return cls._predict(inputs, metadata, top_k, lambda waves: clip_probabilities(
            onnx_runner(handle), waves, metadata, numpy_features=True))

    @staticmethod
    def _predict(inputs, metadata, top_k, classify):
        from toolkit.data.audio_io import load_audio

        rate = int(metadata["sample_rate"])
        waves = [load_audio(str(item), rate) if is_path(item) else np.asarray(item, np.float32).reshape(-1)
                 for item in inputs]
        started = time.time()
        clips, windows = classify(waves)
        seconds = time.time() - started
        audio = sum(len(w) for w in waves) / rate
        names = metadata["class_names"]
        k = max(1, min(top_k or metadata.get("top_k", 5), len(names)))
        from toolkit.tasks.audio.windows import window_starts

        window, hop = window_sizes(metadata)
        results = []
        for name, clip, window_scores, wave in zip(input_names(inputs), clips, windows, waves):
            order = np.argsort(-clip, kind="stable")[:k]
            results.append({
                "input": name, "label": names[int(order[0])],
                "top_k": [{"index": int(i), "label": names[int(i)], "probability": round(float(clip[i]), 6)}
                          for i in order],
                "windows": [{"start_seconds": round(start / rate, 3), "label": names[int(np.argmax(scores))],
                             "probability": round(float(np.max(scores)), 6)}
                            for start, scores in zip(window_starts(len(wave), window, hop), window_scores)],
                "audio_seconds": round(len(wave) / rate, 3),
                "realtime_factor": round(seconds / max(audio, 1e-9), 4),
            })
        return results

    @classmethod
    def format_prediction(cls, result):
        ranked = ", ".join(f"{item['label']} {item['probability']:.3f}" for item in result["top_k"])
        count = len(result["windows"])
        return f"{result['input']}: {ranked} ({count} window{'' if count == 1 else 's'}, {result['audio_seconds']:g} s)"
