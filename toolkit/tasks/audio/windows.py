"""Cutting clips into fixed-length windows, and decoding and resampling WAV bytes inside a TensorFlow graph.

A clip of `n` samples heard through windows of `w` samples with hop `h`: one window when `n <= w` (the clip,
zero-padded by the features' mask), else windows starting at 0, h, 2h, ... while they fit, plus one window
ending at the clip's end when the last one stopped short of it. The same rule runs in NumPy (`window_starts`,
for ONNX Runtime and TFLite) and in TensorFlow ops (`tf_windows`, inside SavedModels).

Example:

>>> from toolkit.tasks.audio.windows import window_starts
>>> window_starts(100, 40, 20)
[0, 20, 40, 60]
>>> window_starts(30, 40, 20)
[0]
"""

import numpy as np


def window_starts(length, window, hop):
    """Start samples of the windows of a clip of `length` samples."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def numpy_windows(wave, window, hop):
    """(windows [n, window] float32 zero-padded, lengths [n] int32) of one clip."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    starts = window_starts(len(wave), window, hop)
    batch = np.zeros((len(starts), window), np.float32)
    lengths = np.zeros(len(starts), np.int32)
    for index, start in enumerate(starts):
        piece = wave[start:start + window]
        batch[index, : len(piece)] = piece
        lengths[index] = len(piece)
    return batch, lengths


def tf_windows(wave, window, hop):
    """`numpy_windows` in TensorFlow ops: one 1-D clip -> ([n, window], [n])."""
    import tensorflow as tf

    length = tf.shape(wave)[0]
    regular = tf.range(0, tf.maximum(length - window + 1, 1), hop)
    last = tf.maximum(length - window, 0)
    starts = tf.cond(regular[-1] < last, lambda: tf.concat([regular, [last]], 0), lambda: regular)
    padded = tf.pad(wave, [[0, window]])
    windows = tf.gather(padded, starts[:, None] + tf.range(window)[None, :])
    lengths = tf.minimum(length - starts, window)
    return windows, tf.cast(lengths, tf.int32)


def tf_resample(wave, from_rate, to_rate):
    """Resamples a 1-D float clip from `from_rate` to `to_rate` (scalar tensors) in the frequency domain (band
    limited, as `scipy.signal.resample`): keeps the spectrum below both Nyquist frequencies. Returns
    `ceil(n * to_rate / from_rate)` samples; the clip itself when the rates are equal."""
    import tensorflow as tf

    from_rate = tf.cast(from_rate, tf.int64)
    to_rate = tf.cast(to_rate, tf.int64)

    def convert():
        length = tf.shape(wave, out_type=tf.int64)[0]
        target = (length * to_rate + from_rate - 1) // from_rate
        spectrum = tf.signal.rfft(wave, fft_length=tf.cast([length], tf.int32))
        keep = tf.minimum(length // 2 + 1, target // 2 + 1)
        spectrum = spectrum[:keep]
        spectrum = tf.pad(spectrum, [[0, target // 2 + 1 - keep]])
        out = tf.signal.irfft(spectrum, fft_length=tf.cast([target], tf.int32))
        return out * tf.cast(target, tf.float32) / tf.cast(tf.maximum(length, 1), tf.float32)

    return tf.cond(tf.equal(from_rate, to_rate), lambda: wave, convert)


def tf_decode_wav(data):
    """(mono float32 samples, sample rate) of 16-bit PCM WAV bytes, in TensorFlow ops (`tf.audio.decode_wav`)."""
    import tensorflow as tf

    audio, rate = tf.audio.decode_wav(data)
    return tf.reduce_mean(audio, axis=1), rate
