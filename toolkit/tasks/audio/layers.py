"""Keras layers shared by the audio tasks (registered for safe loading by each task package that uses them)."""

_LAYERS = {}


def spec_augment_class():
    """`toolkit>SpecAugment`: frequency and time masks on features, in training only (registered on first use)."""
    if "spec" in _LAYERS:
        return _LAYERS["spec"]
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class SpecAugment(keras.layers.Layer):
        def __init__(self, freq_masks=2, freq_width=10, time_masks=2, time_width=12, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.freq_masks, self.freq_width = freq_masks, freq_width
            self.time_masks, self.time_width = time_masks, time_width
            self.seed = seed
            self.generator = keras.random.SeedGenerator(seed)

        def _masks(self, count, width, size, batch):
            from keras import ops

            keep = ops.ones((batch, size))
            positions = ops.arange(size)[None, :]
            for _ in range(count):
                span = ops.floor(keras.random.uniform((batch, 1), seed=self.generator) * (width + 1))
                room = ops.maximum(ops.cast(size, "float32") - span, 1.0)
                start = ops.floor(keras.random.uniform((batch, 1), seed=self.generator) * room)
                span, start = ops.cast(span, "int32"), ops.cast(start, "int32")
                inside = ops.logical_and(positions >= start, positions < start + span)
                keep = keep * ops.cast(ops.logical_not(inside), keep.dtype)
            return keep

        def call(self, features, training=False):
            from keras import ops

            if not training:
                return features
            batch, frames, bins = ops.shape(features)[0], ops.shape(features)[1], ops.shape(features)[2]
            if self.freq_masks and self.freq_width:
                masks = self._masks(self.freq_masks, self.freq_width, bins, batch)
                features = features * ops.cast(masks, features.dtype)[:, None, :]  # bfloat16 under mixed_bfloat16
            if self.time_masks and self.time_width:
                masks = self._masks(self.time_masks, self.time_width, frames, batch)
                features = features * ops.cast(masks, features.dtype)[:, :, None]
            return features

        def get_config(self):
            return {**super().get_config(), "freq_masks": self.freq_masks, "freq_width": self.freq_width,
                    "time_masks": self.time_masks, "time_width": self.time_width, "seed": self.seed}

    _LAYERS["spec"] = SpecAugment
    return SpecAugment
