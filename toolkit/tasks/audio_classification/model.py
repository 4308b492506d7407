"""Audio classification networks on log-mel windows: `features [batch, frames, mels] -> probabilities`.

- `cnn`: SpecAugment, then 2-D convolution blocks (3x3 conv, BatchNorm, ReLU, 2x2 max pooling) over time and
  frequency, the frequency axis averaged away, then pooling over time (average or attention) and a softmax.
- `attention`: SpecAugment, two strided 2-D convolutions (as the CTC speech model), bidirectional GRU layers
  and attention pooling over time (a learned score per frame, softmax-weighted mean).
- `run:<speech recognition run>`: the CTC speech model's convolution + recurrent stack (everything up to its
  last recurrent layer), pretrained on speech, under attention pooling and a softmax; frozen first, then
  fine-tuned (`train.fine_tune`).

Padding frames (exactly zero from the feature mask) are left out of average and attention pooling.

Example:

>>> from toolkit.tasks.audio_classification.model import encoder_kind
>>> encoder_kind("run:saved_models/speech"), encoder_kind("cnn")
('run', 'cnn')
"""

import math

_LAYERS = {}
# Keras' default 0.99 leaves the moving variance near its initial 1.0 for hundreds of steps, while these
# layers' activations have variances near 0.01: a run of a few hundred steps then scores at chance in
# inference mode (measured: accuracy 0.36 in inference mode vs 0.77 in training mode on the same batch).
BN_MOMENTUM = 0.9


def encoder_kind(encoder):
    return encoder.split(":", 1)[0] if ":" in encoder else encoder


def attention_pooling_class():
    """`toolkit>AttentionPooling`: softmax-weighted mean over time with a learned score per frame; masked frames
    (`mask` input, 1 = real) get no weight."""
    if "attention" in _LAYERS:
        return _LAYERS["attention"]
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="toolkit")
    class AttentionPooling(keras.layers.Layer):
        def __init__(self, units=64, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="tanh", name="hidden")
            self.score = keras.layers.Dense(1, name="score")

        def build(self, input_shape):
            shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
                input_shape[0], (list, tuple)) else input_shape
            self.hidden.build(shape)
            self.score.build(tuple(shape[:-1]) + (self.units,))

        def call(self, inputs):
            values, mask = inputs
            scores = self.score(self.hidden(values))[:, :, 0]
            scores = ops.where(mask > 0, scores, ops.full_like(scores, -1e9))
            weights = ops.softmax(scores, axis=-1)[:, :, None]
            return ops.sum(values * ops.cast(weights, values.dtype), axis=1)

        def compute_output_shape(self, input_shape):
            shape = input_shape[0]
            return (shape[0], shape[-1])

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    _LAYERS["attention"] = AttentionPooling
    return AttentionPooling


def frame_mask(features, steps):
    """[batch, frames / 2**steps] 1.0 where a frame holds audio, from the zero rows of padded features."""
    import keras
    from keras import ops

    mask = ops.cast(ops.any(ops.not_equal(features, 0.0), axis=-1), "float32")[:, :, None]
    for index in range(steps):
        mask = keras.layers.MaxPooling1D(2, strides=2, padding="same", name=f"frame_mask_{index + 1}")(mask)
    return mask[:, :, 0]


def band_mean_normalised(features):
    """Each mel band minus its mean over the real frames (padding frames, exactly zero, stay zero)."""
    from keras import ops

    mask = ops.cast(ops.any(ops.not_equal(features, 0.0), axis=-1, keepdims=True), features.dtype)
    mean = ops.sum(features * mask, axis=1, keepdims=True) / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    return (features - mean) * mask


def pool(x, mask, kind, units, name="pool"):
    from keras import ops

    if kind == "attention":
        return attention_pooling_class()(units, name=name)([x, mask])
    weights = mask[:, :, None]
    return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


def build_network(recipe, num_classes, encoder=None):
    """The classifier; `encoder` is the pretrained speech encoder (a Keras model) of a `run:` encoder."""
    import keras
    from keras import layers, ops

    from toolkit.tasks.audio.layers import spec_augment_class

    config, augment = recipe.model, recipe.spec_augment
    bins = recipe.features.num_mel_bins
    features = keras.Input((None, bins), name="features")
    x = features
    if config.band_norm:
        x = band_mean_normalised(features)
    x = spec_augment_class()(augment.freq_masks, augment.freq_width, augment.time_masks, augment.time_width,
                             seed=recipe.train.seed, name="spec_augment")(x)
    kind = encoder_kind(config.encoder)
    if kind == "run":
        mask = frame_mask(features, encoder.time_steps)
        x = encoder(x)
        pooling = "attention"
    elif kind == "cnn":
        x = layers.Reshape((-1, bins, 1), name="add_channel")(x)
        for index, filters in enumerate(config.filters):
            for repeat in range(config.convs_per_block):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{index + 1}_conv{repeat + 1}")(x)
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{index + 1}_bn{repeat + 1}")(x)
                x = layers.ReLU(name=f"block{index + 1}_relu{repeat + 1}")(x)
            x = layers.MaxPooling2D(2, padding="same", name=f"block{index + 1}_pool")(x)
        x = ops.mean(x, axis=2)  # frequency averaged away: [batch, frames', channels]
        mask = frame_mask(features, len(config.filters))
        pooling = config.pooling
    else:  # attention
        x = layers.Reshape((-1, bins, 1), name="add_channel")(x)
        for index in range(2):
            x = layers.Conv2D(config.filters[0], (5, 5), strides=2, padding="same", use_bias=False,
                              name=f"conv_{index + 1}")(x)
            x = layers.ReLU(name=f"conv_{index + 1}_relu")(layers.BatchNormalization(
                momentum=BN_MOMENTUM, name=f"conv_{index + 1}_bn")(x))
        merged = math.ceil(math.ceil(bins / 2) / 2)
        x = layers.Reshape((-1, merged * config.filters[0]), name="merge_bins")(x)
        for index in range(config.rnn_layers):
            x = layers.Bidirectional(layers.GRU(config.rnn_units, return_sequences=True), name=f"rnn_{index + 1}")(x)
        mask = frame_mask(features, 2)
        pooling = "attention" if config.pooling == "attention" else "average"
    x = pool(x, mask, pooling, config.attention_units)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(features, outputs, name=f"{recipe.name or 'audio'}_classifier")


def load_speech_encoder(run_dir, recipe):
    """The convolution + recurrent stack of a CTC speech recognition run's model, as a Keras model
    `features -> [batch, frames / time_stride, 2 * rnn_units]` (its own SpecAugment switched off), with
    `time_steps` (how many halvings of the frame rate it applies).

    Raises:
        RecipeError: not a CTC speech recognition run, or its features differ from the recipe's.
    """
    import keras

    from toolkit.errors import RecipeError
    from toolkit.model_io import load_keras_file
    from toolkit.references import run_metadata

    metadata = run_metadata("model.encoder", run_dir)
    if metadata.get("task") != "speech_recognition" or "whisper" in metadata:
        raise RecipeError(f"model.encoder: run:{run_dir} is a {metadata.get('task', 'unknown')}"
                          f"{' Whisper' if 'whisper' in metadata else ''} run; run: takes a CTC speech recognition run")
    mine = {"sample_rate": recipe.data.sample_rate, **recipe.features.model_dump()}
    theirs = {"sample_rate": metadata.get("sample_rate"), **metadata.get("features", {})}
    differ = [key for key in mine if float(mine[key]) != float(theirs.get(key, -1))]
    if differ:
        wanted = ", ".join(f"{'data.' if key == 'sample_rate' else 'features.'}{key}: {theirs.get(key)}"
                           for key in differ)
        raise RecipeError(f"model.encoder: run:{run_dir} hears other features ({', '.join(differ)} differ); set "
                          f"{wanted}")
    model = load_keras_file(f"{run_dir}/model.keras")
    rnn = [layer.name for layer in model.layers if layer.name.startswith("rnn_") and layer.name.endswith("_dropout")]
    if not rnn:
        raise RecipeError(f"model.encoder: run:{run_dir}: its model has no recurrent layers (rnn_N_dropout)")
    speech_augment = model.get_layer("spec_augment")
    speech_augment.freq_masks = speech_augment.time_masks = 0  # the classifier applies its own SpecAugment
    encoder = keras.Model(model.input, model.get_layer(rnn[-1]).output, name="speech_encoder")
    encoder.time_steps = int(math.log2(int(metadata.get("model", {}).get("time_stride", 2))))
    return encoder
