"""Log-mel features of waveforms, the same in TensorFlow ops (in the graph of a model that takes audio) and in
NumPy (for ONNX Runtime and TFLite, without TensorFlow): STFT (periodic Hann window), power spectrum, the HTK mel
filterbank of `tf.signal.linear_to_mel_weight_matrix`, log, then per-utterance normalisation over the
utterance's own frames; frames past an utterance's length are exactly zero.

Settings come from a model's metadata: `sample_rate` and `features` (`frame_ms`, `step_ms`, `fft_length`,
`num_mel_bins`, `lower_hz`, `upper_hz`).

Example:

>>> import numpy as np
>>> from toolkit.data.audio_features import log_mel_numpy
>>> metadata = {"sample_rate": 16000, "features": {"frame_ms": 25, "step_ms": 10, "fft_length": 512,
...             "num_mel_bins": 40, "lower_hz": 20.0, "upper_hz": 7600.0}}
>>> log_mel_numpy([np.zeros(16000, np.float32)], metadata).shape
(1, 98, 40)
"""

import numpy as np


def frame_sizes(metadata):
    rate = int(metadata["sample_rate"])
    features = metadata["features"]
    return int(rate * features["frame_ms"] / 1000), int(rate * features["step_ms"] / 1000)


def log_mel(waves, lengths, metadata):
    """Normalised log-mel features of a batch of waveforms (TensorFlow ops).

    Args:
        waves: float32 [batch, samples], zero-padded.
        lengths: int32 [batch], samples of each waveform.
        metadata: dict with "sample_rate" and "features".

    Returns:
        float32 [batch, frames, mels]; frames past each length are zero.
    """
    import tensorflow as tf

    features = metadata["features"]
    frame, step = frame_sizes(metadata)
    waves = tf.convert_to_tensor(waves, tf.float32)
    waves = tf.pad(waves, [[0, 0], [0, tf.maximum(frame - tf.shape(waves)[1], 0)]])
    stft = tf.signal.stft(waves, frame, step, int(features["fft_length"]), pad_end=False)
    power = tf.math.square(tf.abs(stft))
    matrix = tf.signal.linear_to_mel_weight_matrix(
        int(features["num_mel_bins"]), int(features["fft_length"]) // 2 + 1, float(metadata["sample_rate"]),
        float(features["lower_hz"]), float(features["upper_hz"]))
    logmel = tf.math.log(tf.tensordot(power, matrix, 1) + 1e-6)
    frames = tf.maximum((tf.cast(lengths, tf.int32) - frame) // step + 1, 0)
    mask = tf.sequence_mask(frames, tf.shape(logmel)[1], tf.float32)[:, :, None]
    count = tf.maximum(tf.reduce_sum(mask, axis=[1, 2], keepdims=True) * tf.cast(tf.shape(logmel)[2], tf.float32),
                       1.0)
    mean = tf.reduce_sum(logmel * mask, axis=[1, 2], keepdims=True) / count
    variance = tf.reduce_sum(tf.square(logmel - mean) * mask, axis=[1, 2], keepdims=True) / count
    return (logmel - mean) * tf.math.rsqrt(variance + 1e-5) * mask


def mel_matrix(metadata):
    """The mel filterbank of `tf.signal.linear_to_mel_weight_matrix` (HTK mel scale, DC bin zero), in NumPy:
    float64 [fft_length // 2 + 1, num_mel_bins]."""
    features = metadata["features"]
    bins, mels = int(features["fft_length"]) // 2 + 1, int(features["num_mel_bins"])

    def to_mel(hertz):
        return 1127.0 * np.log1p(np.asarray(hertz, np.float64) / 700.0)

    linear = to_mel(np.linspace(0.0, float(metadata["sample_rate"]) / 2, bins)[1:])[:, None]
    edges = np.linspace(to_mel(features["lower_hz"]), to_mel(features["upper_hz"]), mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((linear - lower) / (center - lower), (upper - linear) / (upper - center)))
    return np.concatenate([np.zeros((1, mels)), weights], axis=0)


def log_mel_numpy(waves, metadata):
    """`log_mel` in NumPy (no TensorFlow; for ONNX prediction): a list of waveforms -> [batch, frames, mels]."""
    batch, lengths = pad_waves(waves)
    return log_mel_numpy_padded(batch, lengths, metadata)


def log_mel_numpy_padded(batch, lengths, metadata):
    """`log_mel` in NumPy of a zero-padded batch [batch, samples] with the samples of each row in `lengths`."""
    frame, step = frame_sizes(metadata)
    fft_length = int(metadata["features"]["fft_length"])
    batch = np.asarray(batch, np.float32)
    lengths = np.asarray(lengths, np.int32)
    batch = np.pad(batch, [(0, 0), (0, max(frame - batch.shape[1], 0))])
    count = (batch.shape[1] - frame) // step + 1
    index = np.arange(frame)[None, :] + step * np.arange(count)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic Hann, as tf.signal.stft
    power = np.abs(np.fft.rfft(batch[:, index] * window, n=fft_length)) ** 2
    logmel = np.log(power @ mel_matrix(metadata) + 1e-6)
    frames = np.maximum((lengths - frame) // step + 1, 0)
    mask = (np.arange(count)[None, :] < frames[:, None]).astype(np.float64)[:, :, None]
    total = np.maximum(mask.sum(axis=(1, 2), keepdims=True) * logmel.shape[2], 1.0)
    mean = (logmel * mask).sum(axis=(1, 2), keepdims=True) / total
    variance = (np.square(logmel - mean) * mask).sum(axis=(1, 2), keepdims=True) / total
    return ((logmel - mean) / np.sqrt(variance + 1e-5) * mask).astype(np.float32)


def pad_waves(waves):
    lengths = np.asarray([len(w) for w in waves], np.int32)
    batch = np.zeros((len(waves), max(1, int(lengths.max(initial=1)))), np.float32)
    for i, wave in enumerate(waves):
        batch[i, : len(wave)] = wave
    return batch, lengths


def features_of(waves, metadata):
    """Features of a list of waveforms as NumPy [batch, frames, mels] (TensorFlow ops, eager)."""
    batch, lengths = pad_waves(waves)
    return np.asarray(log_mel(batch, lengths, metadata))
