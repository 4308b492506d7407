"""The networks of anomaly detection and the scoring network every export holds.

- `conv_autoencoder`: image (0..255) -> `preprocess` (x / 255) -> stride-2 conv stages -> a dense bottleneck ->
  transposed convs -> sigmoid reconstruction. Score: mean squared error (optionally of a box-blurred error map).
- `series_autoencoder`: float window (steps, channels) -> `preprocess` (standardised with the training mean and
  standard deviation) -> Conv1D (or LSTM) encoder -> bottleneck -> decoder -> linear reconstruction. Score: mean
  squared error of the standardised window; the per-step error is kept.
- `svdd` (deep SVDD, Ruff et al. 2018): image -> backbone -> global pooling -> bias-free dense embedding ->
  squared distance to a centre fixed at the mean embedding of the untrained network (the `toolkit>SVDDDistance`
  layer keeps it as a weight). The distance is the loss and the score.

`scoring_network(model, metadata)` wraps a trained network as input -> [score, error map] (the map is the score
broadcast over the input for svdd): this is the network of the ONNX and TFLite files and of the SavedModel.
"""

_LAYERS = {}


def svdd_distance_class():
    """`toolkit>SVDDDistance`: squared distance of embeddings to a stored centre (a non-trainable weight)."""
    if "svdd" in _LAYERS:
        return _LAYERS["svdd"]
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="toolkit")
    class SVDDDistance(keras.layers.Layer):
        def build(self, input_shape):
            self.center = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False,
                                          name="center")

        def call(self, embeddings):
            return ops.sum(ops.square(embeddings - ops.cast(self.center, embeddings.dtype)), axis=-1)

        def compute_output_shape(self, input_shape):
            return (input_shape[0],)

    _LAYERS["svdd"] = SVDDDistance
    return SVDDDistance


def window_standardise_class():
    """`toolkit>WindowStandardise`: each window minus its own mean, over its own standard deviation (per channel):
    the autoencoder then sees shapes, whatever the level and scale of the series."""
    if "window" in _LAYERS:
        return _LAYERS["window"]
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="toolkit")
    class WindowStandardise(keras.layers.Layer):
        def __init__(self, scale="std", **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, windows):
            mean = ops.mean(windows, axis=1, keepdims=True)
            if self.scale == "noise":  # the mean absolute step-to-step change: about 1.13 noise sigmas
                spread = ops.mean(ops.abs(windows[:, 1:] - windows[:, :-1]), axis=1, keepdims=True)
            else:
                spread = ops.sqrt(ops.mean(ops.square(windows - mean), axis=1, keepdims=True))
            # a floor relative to the values' size: a constant (flat-lined) window divides float32 rounding by
            # nearly nothing otherwise, and runtimes round differently
            floor = 1e-4 * (ops.mean(ops.abs(windows), axis=1, keepdims=True) + 1.0)
            return (windows - mean) / ops.maximum(spread, floor)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    _LAYERS["window"] = WindowStandardise
    return WindowStandardise


def reconstruction_error_class():
    """`toolkit>ReconstructionError`: (target, reconstruction) -> (score [n], error map [n, ...spatial])."""
    if "error" in _LAYERS:
        return _LAYERS["error"]
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="toolkit")
    class ReconstructionError(keras.layers.Layer):
        def __init__(self, blur=0, **kwargs):
            super().__init__(**kwargs)
            self.blur = blur

        def call(self, inputs):
            target, reconstruction = inputs
            error = ops.mean(ops.square(ops.cast(reconstruction, "float32") - ops.cast(target, "float32")), axis=-1)
            if self.blur:  # a moving average over 2 * blur + 1 pixels (steps): sustained errors stand out
                error = ops.average_pool(error[..., None], 2 * self.blur + 1, strides=1, padding="same")[..., 0]
            axes = tuple(range(1, len(error.shape)))
            return ops.mean(error, axis=axes), error

        def get_config(self):
            return {**super().get_config(), "blur": self.blur}

    _LAYERS["error"] = ReconstructionError
    return ReconstructionError


def build_image_autoencoder(config, image_size, channels, name="image_autoencoder"):
    """The convolutional autoencoder of `model.filters` stages and a `model.latent` bottleneck."""
    import keras

    height, width = image_size
    inputs = keras.Input((height, width, channels), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="preprocess")(inputs)
    for index, filters in enumerate(config.filters):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"encode_{index}")(x)
    shape = tuple(x.shape[1:])
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.latent, name="bottleneck")(x)
    x = keras.layers.Dense(shape[0] * shape[1] * shape[2], activation="relu", name="expand")(x)
    x = keras.layers.Reshape(shape, name="unflatten")(x)
    for index, filters in enumerate(reversed(config.filters)):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                                         name=f"decode_{index}")(x)
    outputs = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid", dtype="float32",
                                  name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def build_series_autoencoder(config, window, channels, mean, std, name="series_autoencoder"):
    """The Conv1D (or LSTM) autoencoder of windows of `window` steps and `channels` values."""
    import keras
    import numpy as np

    inputs = keras.Input((window, channels), name="window")
    if config.standardise in ("window", "noise"):
        x = window_standardise_class()(scale="std" if config.standardise == "window" else "noise",
                                       name="preprocess")(inputs)
    else:
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        # standardised with constants (a Rescaling, not Normalization: tf2onnx turns the latter's statistics into
        # graph inputs)
        x = keras.layers.Rescaling([float(v) for v in 1.0 / std], [float(v) for v in -mean / std],
                                   name="preprocess")(inputs)
    if config.layer == "lstm":
        units = config.filters[-1]
        x = keras.layers.LSTM(units, name="encode")(x)
        x = keras.layers.Dense(config.latent, name="bottleneck")(x)
        x = keras.layers.RepeatVector(window, name="repeat")(x)
        x = keras.layers.LSTM(units, return_sequences=True, name="decode")(x)
    else:
        for index, filters in enumerate(config.filters):
            x = keras.layers.Conv1D(filters, 5, strides=2, padding="same", activation="relu",
                                    name=f"encode_{index}")(x)
        steps, width = x.shape[1], x.shape[2]
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(config.latent, name="bottleneck")(x)
        x = keras.layers.Dense(steps * width, activation="relu", name="expand")(x)
        x = keras.layers.Reshape((steps, width), name="unflatten")(x)
        for index, filters in enumerate(reversed(config.filters)):
            x = keras.layers.Conv1DTranspose(filters, 5, strides=2, padding="same", activation="relu",
                                             name=f"decode_{index}")(x)
    outputs = keras.layers.Dense(channels, dtype="float32", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def build_svdd(inputs, features, config, name="svdd"):
    """Deep SVDD head on backbone features: pooled, embedded without bias, squared distance to the centre."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dense(config.latent, use_bias=False, name="embedding")(x)
    distance = svdd_distance_class()(name="distance", dtype="float32")(x)
    return keras.Model(inputs, distance, name=name)


def set_svdd_center(model, images, eps=0.1):
    """Fixes the centre at the mean embedding of `images` by the model as built (coordinates near 0 pushed to
    +-eps, as in Ruff et al., so the trivial all-zero embedding is not the centre)."""
    import keras
    import numpy as np

    embed = keras.Model(model.inputs, model.get_layer("embedding").output)
    center = np.mean(np.asarray(embed.predict(images, batch_size=64, verbose=0)), axis=0)
    center[(abs(center) < eps) & (center < 0)] = -eps
    center[(abs(center) < eps) & (center >= 0)] = eps
    model.get_layer("distance").center.assign(center.astype(np.float32))


def scoring_network(model, metadata):
    """input -> [score [n], error map [n, H, W] or [n, steps]] of a trained network (see the module doc)."""
    import keras
    from keras import ops

    network = metadata["model"]["network"]
    if network == "svdd":
        distance = model.output
        spatial = tuple(model.inputs[0].shape[1:3])

        class _Broadcast(keras.layers.Layer):
            def call(self, score):
                return ops.ones((ops.shape(score)[0],) + spatial, dtype=score.dtype) * score[:, None, None]

        return keras.Model(model.inputs[0], [distance, _Broadcast(name="error_map")(distance)], name="scorer")
    target = model.get_layer("preprocess").output
    score, error = reconstruction_error_class()(blur=metadata["model"].get("score_blur", 0),
                                                name="error")([target, model.output])
    kind, stats = metadata["model"].get("score", "reconstruction"), metadata.get("score_stats")
    if network == "conv_autoencoder" and kind != "reconstruction" and stats:
        score = _latent_score_class()(kind, stats, name="combined_score")([score, model.get_layer("bottleneck").output])
    return keras.Model(model.inputs[0], [score, error], name="scorer")


def latent_codes(model, inputs, batch_size=256):
    """The bottleneck codes [n, latent] of an autoencoder on `inputs`."""
    import keras
    import numpy as np

    encoder = keras.Model(model.inputs[0], model.get_layer("bottleneck").output)
    return np.concatenate([np.asarray(encoder(np.asarray(inputs[i:i + batch_size], np.float32), training=False))
                           for i in range(0, len(inputs), batch_size)])


def latent_statistics(train_codes, ridge=1e-3):
    """Mean and precision matrix of the training codes (the Mahalanobis distance's), JSON-able."""
    import numpy as np

    codes = np.asarray(train_codes, np.float64)
    covariance = np.cov(codes.T) + ridge * np.eye(codes.shape[1])
    return {"latent_mean": codes.mean(axis=0).tolist(), "latent_precision": np.linalg.inv(covariance).tolist()}


def _log_stats(values):
    import numpy as np

    logs = np.log(np.maximum(np.asarray(values, np.float64), 1e-12))
    return float(logs.mean()), float(max(logs.std(), 1e-6))


def standardisation(errors, distances):
    """Log-scale mean and std of the validation normals' reconstruction errors and latent distances."""
    (error_mean, error_std), (latent_mean, latent_std) = _log_stats(errors), _log_stats(distances)
    return {"error_log_mean": error_mean, "error_log_std": error_std, "latent_log_mean": latent_mean,
            "latent_log_std": latent_std}


def mahalanobis(codes, stats):
    import numpy as np

    difference = np.asarray(codes, np.float64) - np.asarray(stats["latent_mean"])
    return np.einsum("ij,jk,ik->i", difference, np.asarray(stats["latent_precision"]), difference)


def _latent_score_class():
    if "latent" in _LAYERS:
        return _LAYERS["latent"]
    import keras
    import numpy as np
    from keras import ops

    class LatentScore(keras.layers.Layer):
        """(reconstruction error [n], codes [n, d]) -> the latent or combined score (model.score)."""

        def __init__(self, kind, stats, **kwargs):
            super().__init__(**kwargs)
            self.kind, self.stats = kind, stats
            self.mean = np.asarray(stats["latent_mean"], np.float32)
            self.precision = np.asarray(stats["latent_precision"], np.float32)

        def call(self, inputs):
            error, codes = inputs
            difference = codes - self.mean
            distance = ops.sum(ops.matmul(difference, self.precision) * difference, axis=-1)
            if self.kind == "latent":
                return distance
            stats = self.stats
            return ((ops.log(ops.maximum(error, 1e-12)) - stats["error_log_mean"]) / stats["error_log_std"]
                    + (ops.log(ops.maximum(distance, 1e-12)) - stats["latent_log_mean"]) / stats["latent_log_std"])

    _LAYERS["latent"] = LatentScore
    return LatentScore

