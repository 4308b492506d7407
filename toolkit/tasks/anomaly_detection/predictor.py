"""Anomaly detectors deployed: an anomaly score per image (with its error heat map) or per time step of a series
(with the flagged stretches), and a flag at the threshold calibrated in training, in every runtime. No
TensorFlow here except in the Keras and SavedModel conventions (when called).

Inputs: images (files or uint8 arrays), or for time-series models CSV files (the training CSV layout) or float
arrays (steps, channels). A long series is cut into windows every `score_stride` steps; each step's score is the
mean error of the windows covering it.

Example:

>>> import numpy as np
>>> from toolkit.tasks.anomaly_detection.predictor import AnomalyPredictor
>>> AnomalyPredictor.compare(np.array([-0.5, 0.2]), np.array([-0.5, 0.2]))
(0.0, 1.0, 2)
"""

import os

import numpy as np

from toolkit.errors import DataError
from toolkit.tasks.image.predictor import ImagePredictor, stack_batch
from toolkit.tasks.predictor import input_names, is_path

BATCH = 256


def score_batches(model, inputs, metadata, batch_size=BATCH):
    """(scores [n], error maps [n, ...]) of a trained Keras network on float inputs, in batches."""
    from toolkit.tasks.anomaly_detection.model import scoring_network

    scorer = scoring_network(model, metadata)
    scores, maps = [], []
    for start in range(0, len(inputs), batch_size):
        score, error = scorer(np.asarray(inputs[start:start + batch_size], np.float32), training=False)
        scores.append(np.asarray(score))
        maps.append(np.asarray(error))
    return np.concatenate(scores).astype(np.float32), np.concatenate(maps).astype(np.float32)


def heat_colours(values):
    """float 0..1 [H, W] -> uint8 RGB [H, W, 3] (dark blue -> red -> yellow)."""
    v = np.clip(np.asarray(values, np.float32), 0, 1)
    red = np.clip(2.0 * v, 0, 1)
    green = np.clip(2.0 * v - 1.0, 0, 1)
    blue = np.clip(0.5 - v, 0, 0.5) * 2 * 0.6
    return np.round(np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def write_heatmap(image, error_map, path):
    """An overlay PNG of the input image (gray) and its error map, normalised to its own maximum."""
    from PIL import Image

    from toolkit.atomic import atomic_path
    from toolkit.data.image_io import resize_bilinear

    image = np.asarray(image, np.float32)
    gray = image.mean(axis=-1) if image.ndim == 3 else image
    error = np.asarray(error_map, np.float32)
    if error.shape != gray.shape:
        error = resize_bilinear(error[..., None], gray.shape)[..., 0]
    error = error / max(float(error.max()), 1e-12)
    overlay = 0.5 * np.repeat(gray[..., None], 3, axis=-1) + 0.5 * heat_colours(error).astype(np.float32)
    with atomic_path(path) as tmp:
        Image.fromarray(np.clip(np.round(overlay), 0, 255).astype(np.uint8)).save(tmp, format="PNG")


def _when(timestamps, step):
    """A step as the user knows it: its timestamp, or its index when the series has none."""
    return int(step) if timestamps is None else str(timestamps[min(step, len(timestamps) - 1)])


class AnomalyPredictor(ImagePredictor):
    """Anomaly detection: a score and a flag per image, or per step of a series."""

    name = "anomaly_detection"
    agreement_unit = "flag per sample"
    quality_metric = "auroc"

    # Reports and the model card -------------------------------------------------------------------
    @classmethod
    def summary_metrics(cls, metrics):
        summary = {key: metrics[key] for key in ("auroc", "average_precision", "precision", "recall", "f1")
                   if key in metrics}
        summary["threshold"] = metrics.get("threshold", {}).get("threshold")
        for name, figures in metrics.get("baselines", {}).items():
            summary[f"{name}_auroc"] = figures.get("auroc")
        if "events" in metrics:
            summary["windows_found"] = metrics["events"].get("window_recall")
            summary["false_alarms_per_series"] = metrics["events"].get("false_alarms_per_series_mean")
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        def row(name, figures):
            return [name, number(figures.get("auroc")), number(figures.get("average_precision")),
                    number(figures.get("precision")), number(figures.get("recall")), number(figures.get("f1"))]

        threshold = metrics.get("threshold", {})
        lines = [f"Per {metrics.get('unit', 'example')} of the test split; the threshold "
                 f"({number(threshold.get('threshold'))}) was set by {threshold.get('method')} on the validation "
                 "split; the baselines (scikit-learn) were fitted on the same training data and calibrated the "
                 "same way.", "",
                 table(["detector", "AUROC", "average precision", "precision", "recall", "F1"],
                       [row("this model", metrics)] + [row(name, figures) for name, figures
                                                       in metrics.get("baselines", {}).items()]), ""]
        events = metrics.get("events")
        if events:
            lines += [f"Labelled anomaly windows found: {events.get('found')} of {events.get('windows')}; false-alarm "
                      f"windows per series: {number(events.get('false_alarms_per_series_mean'))} on average, "
                      f"{events.get('false_alarms_per_series_max')} at most.", ""]
        return lines

    @classmethod
    def card_limitations(cls, metadata):
        return [
            f"- Trained on normal data only: {metadata.get('normal', '')} ({metadata.get('data_provenance', '')}). "
            "Anything unlike it scores high, including normal data from another source (another camera, sensor or "
            "season): recalibrate the threshold on validation data from where it is deployed.",
            "- The flag is the score above a threshold chosen on the validation split; the false-positive rate in "
            "deployment is only as close to its target as the validation data is to what the model sees.",
        ]

    # Verification ---------------------------------------------------------------------------------
    @classmethod
    def load_samples(cls, directory, metadata):
        if metadata.get("input") == "series":
            return list(np.load(os.path.join(directory, "windows.npy")))
        return super().load_samples(directory, metadata)

    @classmethod
    def _network_inputs(cls, samples, metadata):
        if metadata.get("input") == "series":
            return np.stack([np.asarray(sample, np.float32) for sample in samples])
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        return stack_batch(samples, size, lambda image: resize_bilinear(image, size))

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        scores, _ = score_batches(model, cls._network_inputs(samples, metadata), metadata)
        return scores - np.float32(metadata["threshold"]["threshold"])

    @classmethod
    def compare(cls, reference, outputs, exact=True):
        """Scores minus the threshold: (max difference, share of equal flags, samples). The difference is absolute
        for scores within 1 of the threshold and relative beyond (|a - b| / |a|): scores span orders of magnitude
        (an error in noise units reaches hundreds on a flat line) and float32 keeps about 7 digits of each."""
        reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
        if reference.shape != outputs.shape:
            return float("inf"), 0.0, 0
        if not reference.size:
            return 0.0, 0.0, 0
        agreement = float(np.mean((reference > 0) == (outputs > 0)))
        difference = np.abs(reference - outputs) / np.maximum(1.0, np.abs(reference))
        return float(np.max(difference)), agreement, int(reference.size)

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        threshold = np.float32(metadata["threshold"]["threshold"])
        if metadata.get("input") == "series":
            answer = artifact.signatures["serving_default"](windows=tf.constant(cls._network_inputs(samples, metadata)))
            return {"serving_default": answer["score"].numpy() - threshold}
        from toolkit.tasks.image.pipeline import png_bytes

        by_bytes = artifact.signatures["serving_default"](image_bytes=tf.constant(png_bytes(samples)))
        by_image = [artifact.signatures["serve_image"](images=tf.constant(image[None]))["score"].numpy()[0]
                    for image in samples]
        return {"serving_default": by_bytes["score"].numpy() - threshold,
                "serve_image": np.asarray(by_image, np.float32) - threshold}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        name = artifact.get_inputs()[0].name
        scores = artifact.run(None, {name: cls._network_inputs(samples, metadata)})[0]
        return {"onnx": np.asarray(scores, np.float32).reshape(-1) - np.float32(metadata["threshold"]["threshold"])}

    @classmethod
    def quality(cls, outputs, targets, metadata):
        """AUROC of the scores against the 0/1 targets (None when one kind is missing)."""
        from sklearn.metrics import roc_auc_score

        targets = np.asarray(targets)
        if len(np.unique(targets)) < 2:
            return None
        return float(roc_auc_score(targets, np.asarray(outputs, np.float64).reshape(-1)))

    # Prediction ---------------------------------------------------------------------------------
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return cls._predict(lambda batch: score_batches(handle, batch, metadata), metadata, inputs, output_dir)

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        def run(batch):
            if metadata.get("input") == "series":
                answer = handle.signatures["serving_default"](windows=tf.constant(batch, tf.float32))
            else:
                answer = handle.signatures["serve_image"](images=tf.constant(np.round(batch).astype(np.uint8)))
            return answer["score"].numpy(), answer["error_map"].numpy()

        return cls._predict(run, metadata, inputs, output_dir)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        name = handle.get_inputs()[0].name

        def run(batch):
            scores, maps = [], []
            for start in range(0, len(batch), BATCH):
                score, error = handle.run(None, {name: np.asarray(batch[start:start + BATCH], np.float32)})[:2]
                scores.append(np.asarray(score).reshape(-1))
                maps.append(np.asarray(error))
            return np.concatenate(scores), np.concatenate(maps)

        return cls._predict(run, metadata, inputs, output_dir)

    @classmethod
    def _predict(cls, run, metadata, inputs, output_dir):
        if metadata.get("input") == "series":
            return cls._predict_series(run, metadata, inputs, output_dir)
        threshold = float(metadata["threshold"]["threshold"])
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=False)
        scores, maps = run(cls._network_inputs(images, metadata))
        results = []
        for index, (name, image, score, error) in enumerate(zip(input_names(inputs), images, scores, maps)):
            result = {"input": name, "score": round(float(score), 6), "anomaly": bool(score > threshold),
                      "threshold": round(threshold, 6)}
            if output_dir:
                os.makedirs(output_dir, exist_ok=True)
                stem = os.path.splitext(os.path.basename(name))[0] if is_path(inputs[index]) else f"array_{index}"
                result["heatmap"] = os.path.join(output_dir, f"{stem}_heatmap.png")
                write_heatmap(image, error, result["heatmap"])
            else:
                result["error_map"] = np.asarray(error)
            results.append(result)
        return results

    @classmethod
    def _read_series(cls, item, metadata):
        """[(name, values (T, C), timestamps or None)] of one input: a CSV file (one series) or an array."""
        if not is_path(item):
            values = np.asarray(item, np.float32)
            if values.ndim == 1:
                values = values[:, None]
            if values.ndim != 2 or values.shape[1] != metadata["channels"]:
                raise DataError(f"a series array must be (steps, {metadata['channels']}) floats; got {values.shape}")
            return [(None, values, None)]
        from toolkit.tasks.anomaly_detection.series import read_series_csv

        if not os.path.exists(item):
            raise DataError(f"{os.fspath(item)}: no such file; give a CSV file of the series (the training layout)")
        csv = metadata.get("csv", {})
        items, _ = read_series_csv(os.fspath(item), timestamp_column=csv.get("timestamp_column", "timestamp"),
                                   value_columns=csv.get("value_columns"), label_column=csv.get("label_column"))
        return [(item.name, item.values, item.timestamps) for item in items]

    @classmethod
    def _predict_series(cls, run, metadata, inputs, output_dir):
        from toolkit.tasks.anomaly_detection.scoring import flags_to_runs
        from toolkit.tasks.anomaly_detection.series import make_windows, step_scores

        threshold, window = float(metadata["threshold"]["threshold"]), int(metadata["window"])
        results = []
        for index, (name, item) in enumerate(zip(input_names(inputs), inputs)):
            for series_name, values, timestamps in cls._read_series(item, metadata):
                if values.shape[1] != metadata["channels"]:
                    raise DataError(f"{name}: {values.shape[1]} value columns; the model takes "
                                    f"{metadata['channels']}")
                if len(values) < window:
                    raise DataError(f"{name}: {len(values)} steps; the model needs at least {window}")
                if not metadata.get("long_series"):  # fixed-length instances: one score each
                    score, _ = run(values[None, :window])
                    results.append({"input": name, "score": round(float(score[0]), 6),
                                    "anomaly": bool(score[0] > threshold), "threshold": round(threshold, 6)})
                    continue
                windows, starts = make_windows(values, window, int(metadata["score_stride"]))
                _, maps = run(np.asarray(windows, np.float32))
                steps = step_scores(np.asarray(maps), starts, window, len(values))
                flags = (steps > threshold).astype(np.uint8)
                runs = flags_to_runs(flags)
                result = {"input": name if series_name is None else series_name, "steps": int(len(values)),
                          "max_score": round(float(steps.max()), 6), "threshold": round(threshold, 6),
                          "anomalous_steps": int(flags.sum()),
                          "anomalies": [{"start": _when(timestamps, a), "end": _when(timestamps, b - 1), "steps": int(b - a),
                                         "max_score": round(float(steps[a:b].max()), 6)} for a, b in runs]}
                result["anomaly"] = bool(runs)
                if output_dir:
                    from toolkit.tasks.anomaly_detection.scoring import plot_series

                    os.makedirs(output_dir, exist_ok=True)
                    stem = os.path.splitext(os.path.basename(str(result["input"])))[0] if is_path(item) \
                        else f"array_{index}"
                    result["plot"] = os.path.join(output_dir, f"{stem}_scores.png")
                    plot_series(values, steps, threshold, [], flags, result["plot"], timestamps=timestamps,
                                title=str(result["input"]))
                else:
                    result["step_scores"] = steps
                results.append(result)
        return results

    @classmethod
    def format_prediction(cls, result):
        verdict = "ANOMALY" if result["anomaly"] else "normal"
        if "steps" in result:
            spans = ", ".join(f"{a['start']}..{a['end']}" for a in result["anomalies"][:5])
            more = f" (+{len(result['anomalies']) - 5} more)" if len(result["anomalies"]) > 5 else ""
            return (f"{result['input']}: {verdict}: {len(result['anomalies'])} anomalous stretch(es) "
                    f"{spans}{more}; max score {result['max_score']:.4g} (threshold {result['threshold']:.4g})"
                    + (f" -> {result['plot']}" if result.get("plot") else ""))
        return (f"{result['input']}: {verdict} (score {result['score']:.4g}, threshold {result['threshold']:.4g})"
                + (f" -> {result['heatmap']}" if result.get("heatmap") else ""))
