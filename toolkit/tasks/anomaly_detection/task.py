"""Anomaly detection: networks trained on normal data only, scored by reconstruction error (autoencoders, with
per-pixel / per-step error maps) or embedding distance (deep SVDD), with a threshold calibrated after training on
the validation split and recorded in the model.

Images and time series share the task; `data.source` says which (`config.py`). Training never sees an anomaly.
After training (`finish_training`), the validation scores set the threshold: their quantile at
`threshold.target_false_positive_rate`, or the best F1 on a labelled validation split. Evaluation: AUROC, average
precision, precision/recall/F1 at that threshold, the isolation-forest and PCA baselines on the same splits, and
for long time series event-level detection (labelled windows found, false-alarm windows per series).

Serving: `serving_default` takes encoded image bytes (images) or float windows [n, steps, channels] (series) and
returns `score`, `flag` (score above the threshold) and `error_map`; ONNX and TFLite hold the scoring network
(input -> score, error map), the flag is applied outside with the threshold in their metadata.
"""

import os

import numpy as np

from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError, RecipeError
from toolkit.tasks.anomaly_detection.config import AnomalyRecipe
from toolkit.tasks.anomaly_detection.predictor import AnomalyPredictor, score_batches
from toolkit.tasks.anomaly_detection.sources import ANOMALY_SOURCES
from toolkit.tasks.image.task import ImageTask

CLASS_NAMES = ["normal", "anomaly"]
SCORE_BATCH = 256


def window_standardised(windows, scale="window"):
    """Windows [n, steps, channels] each minus its mean, over its standard deviation (window) or its mean absolute
    step-to-step change (noise), as the graph's `preprocess` does."""
    windows = np.asarray(windows, np.float32)
    mean = windows.mean(axis=1, keepdims=True)
    if scale == "noise":
        spread = np.abs(np.diff(windows, axis=1)).mean(axis=1, keepdims=True)
    else:
        spread = np.sqrt(np.square(windows - mean).mean(axis=1, keepdims=True))
    floor = 1e-4 * (np.abs(windows).mean(axis=1, keepdims=True) + 1.0)
    return ((windows - mean) / np.maximum(spread, floor)).astype(np.float32)


class _NoBackbone:
    """What the trainer freezes for autoencoders: nothing."""

    pretrained = False


class AnomalyDetectionTask(ImageTask):
    """Anomaly detection: data, networks, threshold calibration, metrics with baselines, serving signatures."""

    name = "anomaly_detection"
    predictor = AnomalyPredictor
    config_class = AnomalyRecipe
    sources = ANOMALY_SOURCES
    path_source = "folder"
    default_monitor = "val_loss"
    tfrecord_note = "its data is read from images, CSV files or the offline sets directly"

    def __init__(self, recipe):
        super().__init__(recipe)
        self.backbone = _NoBackbone()
        self.threshold = None
        self.score_stats = None
        self.normalizer = None
        self._inputs = {}
        self._baselines = {}

    @property
    def input_kind(self):
        return self.recipe.data.kind

    @property
    def series(self):
        return self.recipe.data.kind == "series"

    @property
    def network(self):
        return self.recipe.model.network

    def check_references(self):
        from toolkit.references import check_backbone, check_file

        if self.network == "svdd":
            check_backbone("model.backbone", self.recipe.model.backbone, self.recipe.model.weights)
        if self.recipe.data.windows_file:
            check_file("data.windows_file", self.recipe.data.windows_file, "a JSON file of anomaly windows per file")

    def data_from_user(self, user):
        raise DataError("anomaly detection reads its data from data.source (images or time series); Python "
                        "datasets are not supported yet: write them to a folder (train/normal, test/normal, "
                        "test/anomaly) or CSV files")

    # Data ---------------------------------------------------------------
    @property
    def data(self):
        if self._data is None:
            self._data = self.read_data()
            if not len(self._data.splits["train"]):
                raise DataError("data: the train split is empty")
        return self._data

    @property
    def class_names(self):
        return list(CLASS_NAMES)

    @property
    def window(self):
        """Steps per window (the UCR instance length for ucr)."""
        split = self.data.splits["train"]
        return int(split.inputs.shape[1]) if split.series is None and self.series else self.recipe.data.window

    def score_stride(self):
        return self.recipe.data.score_stride or max(1, self.window // 4)

    def split_inputs(self, split):
        """(inputs, labels, owners, starts) of a split as the network takes them: images, instances, or the
        windows of long series (training: windows of normal steps only, every data.stride steps; validation and
        test: every score_stride steps, with the series index and start step of each window)."""
        if split in self._inputs:
            return self._inputs[split]
        part = self.data.splits.get(split)
        if part is None:
            return None
        if part.series is None:
            result = (part.inputs, part.labels, None, None)
        else:
            from toolkit.tasks.anomaly_detection.series import make_windows, window_labels

            stride = self.recipe.data.stride if split == "train" else self.score_stride()
            inputs, labels, owners, starts = [], [], [], []
            for index, item in enumerate(part.series):
                if len(item.values) < self.window:
                    raise DataError(f"{item.name}: {len(item.values)} steps, fewer than data.window "
                                    f"({self.window}); lower data.window")
                windows, first = make_windows(item.values, self.window, stride)  # the last window ends the series
                flags = window_labels(item.labels, first, self.window) if item.labels is not None else \
                    np.zeros(len(first), np.uint8)
                if split == "train":  # never train on a labelled anomaly
                    windows, first, flags = windows[flags == 0], first[flags == 0], flags[flags == 0]
                inputs.append(windows)
                labels.append(flags)
                owners.append(np.full(len(first), index))
                starts.append(first)
            result = (np.concatenate(inputs).astype(np.float32), np.concatenate(labels).astype(np.uint8),
                      np.concatenate(owners), np.concatenate(starts))
        if not len(result[0]):
            raise DataError(f"data: the {split} split has no {'windows' if self.series else 'images'}")
        self._inputs[split] = result
        return result

    def normalisation(self):
        """(mean, std) per channel of the training windows (series)."""
        if self.normalizer is None:
            inputs = self.split_inputs("train")[0]
            mean = inputs.reshape(-1, inputs.shape[-1]).mean(axis=0)
            std = inputs.reshape(-1, inputs.shape[-1]).std(axis=0)
            self.normalizer = (mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))
        return self.normalizer

    def targets(self, inputs):
        """What the network is trained to output for `inputs`: the preprocessed input (autoencoders), 0 (svdd)."""
        if self.network == "svdd":
            return np.zeros(len(inputs), np.float32)
        if self.series:
            if self.recipe.model.standardise != "global":
                return window_standardised(inputs, self.recipe.model.standardise)
            mean, std = self.normalisation()
            return ((inputs - mean) / std).astype(np.float32)
        return (inputs.astype(np.float32) / 255.0).astype(np.float32)

    def build_inputs(self, split, training=False):
        import tensorflow as tf

        if self.data.splits.get(split) is None:
            return None
        inputs, labels, _, _ = self.split_inputs(split)
        if split != "train":  # validation loss on normal examples only: what the network is trained on
            inputs = inputs[labels == 0]
            if not len(inputs):
                return None
        dataset = tf.data.Dataset.from_tensor_slices((inputs.astype(np.float32), self.targets(inputs)))
        if training:
            dataset = dataset.shuffle(min(len(inputs), self.recipe.data.shuffle_buffer), seed=self.recipe.train.seed,
                                      reshuffle_each_iteration=True)
        return prefetched(dataset.batch(self.recipe.train.batch_size), 2)

    def data_report(self):
        report = {}
        for split, part in self.data.splits.items():
            inputs, labels, _, _ = self.split_inputs(split)
            entry = {"examples": int(len(inputs)), "normal": int(np.sum(labels == 0)),
                     "anomalous": int(np.sum(labels == 1)), "skipped": len(self.data.skipped.get(split, []))}
            if part.series is not None:
                entry["series"] = len(part.series)
                entry["labelled_windows"] = int(sum(len(item.windows) for item in part.series))
            if self.data.skipped.get(split):
                entry["skipped_examples"] = self.data.skipped[split][:5]
            report[split] = entry
        return report

    def build_preprocessor(self):
        return lambda inputs: inputs

    # Model --------------------------------------------------------------
    def build_model(self):
        from toolkit.tasks.anomaly_detection import model as networks

        config = self.recipe.model
        if self.network == "series_autoencoder":
            mean, std = self.normalisation()
            return networks.build_series_autoencoder(config, self.window, self.data.channels, mean, std)
        if self.network == "conv_autoencoder":
            return networks.build_image_autoencoder(config, tuple(self.recipe.data.image_size),
                                                    self.recipe.data.channels)
        inputs, x = self.build_stem()
        features = self.call_backbone(self.backbone.model, x)
        self.backbone_layer_name = self.backbone.model.name
        model = networks.build_svdd(inputs, features, config)
        train = self.split_inputs("train")[0]
        networks.set_svdd_center(model, train[:512].astype(np.float32))
        return model

    def backbone_layer(self, model):
        if self.network != "svdd":
            return model
        return super().backbone_layer(model)

    def build_losses(self):
        import keras

        return keras.losses.MeanAbsoluteError() if self.network == "svdd" else keras.losses.MeanSquaredError()

    def build_metrics(self):
        return []

    # After training: the threshold ----------------------------------------
    def finish_training(self, model):
        """Calibrates the threshold on the validation split's scores (recorded in the model's metadata)."""
        from toolkit.tasks.anomaly_detection.scoring import calibrate

        config = self.recipe.threshold
        self.fit_score_statistics(model)
        scores, labels = self.scores(model, "validation")
        if config.method == "best_f1" and not (labels == 1).any():
            raise RecipeError("threshold.method: best_f1 needs anomalies in the validation split; give a "
                              "validation/ folder with anomalies (or data.validation_anomalies for fashion_mnist), "
                              "or use threshold.method: quantile")
        normal = labels == 0
        self.threshold = calibrate(config.method, scores if config.method == "best_f1" else scores[normal],
                                   labels if config.method == "best_f1" else None,
                                   target_false_positive_rate=config.target_false_positive_rate)
        return self.threshold

    def fit_score_statistics(self, model):
        """model.score latent/combined: the training codes' mean and precision, and the log-scale statistics of
        the validation normals' reconstruction errors and latent distances (they weigh the two terms)."""
        from toolkit.tasks.anomaly_detection import model as networks

        if self.network != "conv_autoencoder" or self.recipe.model.score == "reconstruction":
            return
        stats = networks.latent_statistics(networks.latent_codes(model, self.split_inputs("train")[0]))
        inputs, labels, _, _ = self.split_inputs("validation")
        normal = inputs[labels == 0]
        errors, _ = score_batches(model, normal, {"model": dict(self.recipe.model.model_dump(),
                                                                score="reconstruction")})
        distances = networks.mahalanobis(networks.latent_codes(model, normal), stats)
        self.score_stats = dict(stats, **networks.standardisation(errors, distances))

    def scoring_metadata(self):
        """What the scoring network needs: the model section and the score statistics."""
        if self.metadata is not None:
            return self.metadata
        return {"model": self.recipe.model.model_dump(), "score_stats": self.score_stats}

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        data = self.recipe.data
        metadata = {
            "task": self.name,
            "input": self.input_kind,
            "class_names": self.class_names,
            "model": self.recipe.model.model_dump(),
            "threshold": self.threshold,
            "score_stats": self.score_stats,
            "normal": self.data.normal,
            "data_provenance": self.data.provenance,
            "backbone": self.backbone.metadata() if self.network == "svdd" else None,
        }
        if self.network == "svdd" and self.backbone_layer_name:
            metadata["backbone"]["layer"] = self.backbone_layer_name
        if self.series:
            mean, std = self.normalisation()
            metadata.update({"window": self.window, "channels": self.data.channels,
                             "score_stride": self.score_stride(), "long_series": self._long_series(),
                             "mean": mean.tolist(), "std": std.tolist(), "value_names": self.data.value_names,
                             "csv": {"timestamp_column": data.timestamp_column, "value_columns": data.value_columns,
                                     "label_column": data.label_column}})
        else:
            metadata.update({"image_size": list(data.image_size), "channels": data.channels})
        return metadata

    def _long_series(self):
        return self.data.splits["train"].series is not None

    # Evaluation ---------------------------------------------------------
    def scores(self, model, split, maps=False):
        """(scores, labels[, error maps]) of a split: per input, or per step of long series (all series
        concatenated; the maps are then the per-step scores)."""
        inputs, labels, owners, starts = self.split_inputs(split)
        score, error = score_batches(model, inputs, self.scoring_metadata(), SCORE_BATCH)
        if owners is None:
            return (score, labels, error) if maps else (score, labels)
        steps, step_labels = self.step_scores(split, error)
        return (steps, step_labels, steps) if maps else (steps, step_labels)

    def step_scores(self, split, error):
        """(per-step scores, per-step labels) of the long series of a split, concatenated in order."""
        from toolkit.tasks.anomaly_detection.series import step_scores

        _, _, owners, starts = self.split_inputs(split)
        scores, labels = [], []
        for index, item in enumerate(self.data.splits[split].series):
            mine = owners == index
            scores.append(step_scores(error[mine], starts[mine], self.window, len(item.values)))
            labels.append(item.labels if item.labels is not None else np.zeros(len(item.values), np.uint8))
        return np.concatenate(scores).astype(np.float32), np.concatenate(labels).astype(np.uint8)

    def evaluate(self, model, split="test"):
        from toolkit.tasks.anomaly_detection.scoring import detection_metrics

        if self.data.splits.get(split) is None:
            raise DataError(f"data: there is no {split} split to evaluate on")
        threshold = self._threshold(model)
        scores, labels = self.scores(model, split)
        metrics = detection_metrics(scores, labels, threshold["threshold"])
        metrics["threshold"] = threshold
        metrics["unit"] = "step" if self._long_series() else ("window" if self.series else "image")
        if self._long_series():
            metrics["events"] = self.events(scores, split, threshold["threshold"])
        if self.recipe.baseline.methods:
            metrics["baselines"] = self.baselines(split)
        return metrics

    def _threshold(self, model):
        if self.threshold is None and self.metadata is not None:
            self.threshold = self.metadata.get("threshold")
        if self.threshold is None:
            self.finish_training(model)
        return self.threshold

    def events(self, step_scores, split, threshold):
        """Event-level detection over the long series of a split (labelled windows found, false alarms)."""
        from toolkit.tasks.anomaly_detection.scoring import aggregate_events, event_metrics

        per_series, offset = [], 0
        for item in self.data.splits[split].series:
            flags = (step_scores[offset:offset + len(item.values)] > threshold).astype(np.uint8)
            offset += len(item.values)
            per_series.append(event_metrics(flags, item.windows, length=len(item.values)))
        return aggregate_events(per_series)

    def baselines(self, split):
        """The scikit-learn baselines' figures on `split`: fitted on the training inputs (flattened), threshold
        calibrated like the network's."""
        from toolkit.tasks.anomaly_detection.scoring import baseline_scores, calibrate, detection_metrics

        if split in self._baselines:
            return self._baselines[split]
        train = self._flat(self.split_inputs("train")[0])
        val_inputs, val_labels, _, _ = self.split_inputs("validation")
        inputs, labels, _, _ = self.split_inputs(split)
        import time

        config, results = self.recipe.threshold, {}
        for method in self.recipe.baseline.methods:
            started = time.time()
            both = baseline_scores(method, train, np.concatenate([self._flat(val_inputs), self._flat(inputs)]),
                                   seed=self.recipe.train.seed)
            val_scores, scores = both[:len(val_inputs)], both[len(val_inputs):]
            if self._long_series():
                val_scores, val_labels_used = self.step_scores("validation", np.repeat(val_scores[:, None],
                                                                                      self.window, axis=1))
                scores, labels_used = self.step_scores(split, np.repeat(scores[:, None], self.window, axis=1))
            else:
                val_labels_used, labels_used = val_labels, labels
            best = config.method == "best_f1" and (val_labels_used == 1).any()
            threshold = calibrate("best_f1" if best else "quantile",
                                  val_scores if best else val_scores[val_labels_used == 0],
                                  val_labels_used if best else None,
                                  target_false_positive_rate=config.target_false_positive_rate)
            figures = detection_metrics(scores, labels_used, threshold["threshold"])
            if self._long_series():
                figures["events"] = self.events(scores, split, threshold["threshold"])
            figures["seconds"] = round(time.time() - started, 1)
            results[method] = figures
        self._baselines[split] = results
        return results

    def _flat(self, inputs):
        inputs = np.asarray(inputs, np.float32)
        if self.series:
            if self.recipe.model.standardise != "global":
                inputs = window_standardised(inputs, self.recipe.model.standardise)
            else:
                mean, std = self.normalisation()
                inputs = (inputs - mean) / std
        else:
            inputs = inputs / 255.0
        return inputs.reshape(len(inputs), -1)

    def plot(self, model, metrics, run_dir):
        from toolkit.tasks.anomaly_detection.scoring import (
            plot_score_histogram,
            plot_series,
            plot_worst_reconstructions,
        )

        threshold = metrics["threshold"]["threshold"]
        scores, labels, maps = self.scores(model, "test", maps=True)
        plot_score_histogram(scores, labels, threshold, os.path.join(run_dir, "score_histogram.png"),
                             title=f"test {metrics['unit']} scores")
        names = ["score_histogram.png"]
        if not self.series:
            inputs = self.split_inputs("test")[0]
            worst = np.argsort(-scores)[:8]
            if self.network != "svdd":
                reconstructions = np.asarray(model.predict(inputs[worst].astype(np.float32), verbose=0))
            else:
                reconstructions = inputs[worst].astype(np.float32) / 255.0
            plot_worst_reconstructions(inputs[worst], reconstructions, maps[worst], scores[worst],
                                       os.path.join(run_dir, "worst_reconstructions.png"))
            names.append("worst_reconstructions.png")
        elif self._long_series():
            offset = 0
            for index, item in enumerate(self.data.splits["test"].series[:3]):
                mine = scores[offset:offset + len(item.values)]
                offset += len(item.values)
                name = f"series_{index}.png"
                plot_series(item.values, mine, threshold, item.windows, (mine > threshold).astype(np.uint8),
                            os.path.join(run_dir, name), timestamps=item.timestamps, title=item.name)
                names.append(name)
        return names

    # Serving and export -------------------------------------------------
    def onnx_model(self, model):
        from toolkit.tasks.anomaly_detection.model import scoring_network

        return scoring_network(model, self.model_metadata())

    def onnx_signature(self):
        import tensorflow as tf

        if self.series:
            return [tf.TensorSpec([None, self.window, self.data.channels], tf.float32, name="window")]
        return super().onnx_signature()

    @property
    def tflite_supported(self):
        return not (self.series and self.recipe.model.layer == "lstm")

    tflite_int8_supported = True
    tflite_unsupported_reason = "its LSTM layers do not convert to TFLite builtin ops"

    def representative_inputs(self, count):
        inputs = self.split_inputs("train")[0][:count]
        return [np.asarray(item, np.float32)[None] for item in inputs]

    def serving_signatures(self, model):
        import tensorflow as tf

        scorer = self.onnx_model(model)
        threshold = tf.constant(float(self.model_metadata()["threshold"]["threshold"]), tf.float32)

        def outputs(inputs):
            score, error = scorer(inputs, training=False)
            return {"score": score, "flag": score > threshold, "error_map": error}

        if self.series:
            def serve_window(windows):
                return outputs(windows)

            spec = tf.TensorSpec([None, self.window, self.data.channels], tf.float32, name="windows")
            return {"serving_default": (serve_window, [spec])}

        from toolkit.tasks.image.pipeline import decode_image, resize_image

        height, width = self.recipe.data.image_size
        channels = self.recipe.data.channels

        def serve_bytes(image_bytes):
            images = tf.map_fn(lambda data: resize_image(decode_image(data, channels), (height, width)), image_bytes,
                               fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))
            return outputs(images)

        def serve_image(images):
            return outputs(resize_image(images, (height, width)))

        return {
            "serving_default": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
            "serve_image": (serve_image, [tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]),
        }

    def verification_samples(self, count):
        inputs = self.split_inputs("test")[0]
        picked = np.unique(np.linspace(0, len(inputs) - 1, min(count, len(inputs))).astype(int))  # spread out
        return [np.asarray(inputs[i]) for i in picked]

    def quality_samples(self, count):
        inputs, labels, _, _ = self.split_inputs("test")
        rng = np.random.RandomState(self.recipe.train.seed)
        picked = np.sort(rng.permutation(len(inputs))[:count])
        return [np.asarray(inputs[i]) for i in picked], [int(labels[i]) for i in picked]

    def save_samples(self, samples, directory):
        if not self.series:
            return super().save_samples(samples, directory)
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, "windows.npy"), np.stack(samples).astype(np.float32))


__all__ = ["AnomalyDetectionTask", "AnomalyRecipe"]
