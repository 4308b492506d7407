"""Sliding-window (tiled) inference for dense prediction, in NumPy and in TensorFlow ops.

A model trained on tiles cut from large images (the nuclei source: 64px tiles of
a 512px micrograph) must see a new image at the scale it was trained on: the
image is covered by overlapping windows of the model's input size, each window
is predicted, and the class probabilities are blended back with weights that
fall off towards a window's edges (a Gaussian, as MONAI's
`sliding_window_inference(mode="gaussian")`), so the seams where a convolution
saw zero padding count least. An image smaller than a window is padded with
zeros at the bottom and right and the answer cropped back.

`tiled_probabilities` (NumPy, any runtime: a Keras model, ONNX Runtime, TFLite)
and `tiled_probabilities_tf` (inside a SavedModel's serving signature) place
the same windows and blend with the same weights, so their answers agree to
float rounding.

Example:

>>> import numpy as np
>>> from toolkit.tasks.segmentation.tiles import window_starts, tiled_probabilities
>>> window_starts(100, 64, 48)
[0, 36]
>>> identity = lambda batch: np.concatenate([batch, 1 - batch], axis=-1)
>>> image = np.random.RandomState(0).rand(100, 90, 1).astype(np.float32)
>>> np.allclose(tiled_probabilities(image, identity, (64, 64), 0.25)[..., :1], image, atol=1e-6)
True
"""

import numpy as np

SIGMA_SCALE = 0.125  # the Gaussian's sigma as a share of the window size (MONAI's default)
MIN_WEIGHT = 1e-4  # floor of the blending weight: an image corner seen by one window still counts


def window_stride(tile, overlap):
    """Step between windows of `tile` pixels that overlap by the share `overlap` (at least 1 pixel)."""
    return max(1, int(round(tile * (1.0 - overlap))))


def window_starts(length, tile, stride):
    """Start offsets of windows of `tile` pixels, `stride` apart, covering [0, max(length, tile)); the last
    window ends at the edge."""
    length = max(length, tile)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_weights(tile):
    """(height, width) float32 weights of one window: a Gaussian centred on it, 1 at the centre, floored."""
    axes = []
    for size in tile:
        centre = (size - 1) / 2.0
        sigma = max(size * SIGMA_SCALE, 1e-6)
        axes.append(np.exp(-0.5 * ((np.arange(size, dtype=np.float64) - centre) / sigma) ** 2))
    weights = np.outer(axes[0], axes[1])
    return np.maximum(weights / weights.max(), MIN_WEIGHT).astype(np.float32)


def describe(image_shape, tile, overlap):
    """One line on what tiled inference does with an image of `image_shape` (height, width, ...)."""
    rows = window_starts(image_shape[0], tile[0], window_stride(tile[0], overlap))
    columns = window_starts(image_shape[1], tile[1], window_stride(tile[1], overlap))
    return (f"tiled: {len(rows) * len(columns)} windows of {tile[0]}x{tile[1]} at the image's own scale, "
            f"overlap {overlap:g}")


def tiled_probabilities(image, predict_batch, tile, overlap, batch_size=32):
    """Class probabilities of an image of any size from windows of the model's input size (NumPy).

    Args:
        image: float32 or uint8 array (height, width, channels).
        predict_batch: callable. float32 [n, tile_h, tile_w, channels] -> [n, tile_h, tile_w, classes].
        tile: (int, int). The model's input height and width.
        overlap: float. Share of a window that overlaps its neighbour (0 <= overlap < 1).
        batch_size: int. Windows per model call.

    Returns:
        float32 (height, width, classes).
    """
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    tile_h, tile_w = tile
    padded = np.pad(image, [[0, max(tile_h - height, 0)], [0, max(tile_w - width, 0)], [0, 0]])
    corners = [(top, left)
               for top in window_starts(height, tile_h, window_stride(tile_h, overlap))
               for left in window_starts(width, tile_w, window_stride(tile_w, overlap))]
    weights = blend_weights(tile)
    total = None
    weight_sum = np.zeros(padded.shape[:2], np.float32)
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        windows = np.stack([padded[top:top + tile_h, left:left + tile_w] for top, left in chunk])
        probabilities = np.asarray(predict_batch(windows), np.float32)
        if total is None:
            total = np.zeros(padded.shape[:2] + probabilities.shape[-1:], np.float32)
        for (top, left), window in zip(chunk, probabilities):
            total[top:top + tile_h, left:left + tile_w] += window * weights[..., None]
            weight_sum[top:top + tile_h, left:left + tile_w] += weights
    return (total / weight_sum[..., None])[:height, :width]


def tiled_probabilities_tf(image, model, tile, overlap, classes, batch_size=32):
    """`tiled_probabilities` in TensorFlow ops, for a serving signature (any image size at run time).

    Args:
        image: float32 tensor (height, width, channels).
        model: callable. float32 [n, tile_h, tile_w, channels] -> [n, tile_h, tile_w, classes].
        tile: (int, int). The model's input height and width.
        overlap: float. As in `tiled_probabilities`.
        classes: int. Number of classes (the last axis of the model's output).
        batch_size: int. Windows per model call (bounds the memory of a large image).

    Returns:
        float32 tensor (height, width, classes).
    """
    import tensorflow as tf

    tile_h, tile_w = tile
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    padded = tf.pad(image, [[0, tf.maximum(tile_h - height, 0)], [0, tf.maximum(tile_w - width, 0)], [0, 0]])
    padded_h, padded_w = tf.maximum(height, tile_h), tf.maximum(width, tile_w)

    def starts(length, size, stride):
        regular = tf.range(0, length - size + 1, stride)
        last = tf.reshape(length - size, [1])
        return tf.cond(tf.equal(regular[-1], length - size), lambda: regular, lambda: tf.concat([regular, last], 0))

    rows = starts(padded_h, tile_h, window_stride(tile_h, overlap))
    columns = starts(padded_w, tile_w, window_stride(tile_w, overlap))
    tops, lefts = tf.meshgrid(rows, columns, indexing="ij")
    tops, lefts = tf.reshape(tops, [-1]), tf.reshape(lefts, [-1])
    count = tf.shape(tops)[0]
    # [n, tile_h, tile_w, 2] pixel coordinates of every window.
    grid_y = tops[:, None, None] + tf.range(tile_h)[None, :, None] + tf.zeros([1, 1, tile_w], tf.int32)
    grid_x = lefts[:, None, None] + tf.range(tile_w)[None, None, :] + tf.zeros([1, tile_h, 1], tf.int32)
    coordinates = tf.stack([grid_y, grid_x], axis=-1)
    windows = tf.gather_nd(padded, coordinates)
    chunks = (count + batch_size - 1) // batch_size
    filler = chunks * batch_size - count
    windows = tf.concat([windows, tf.zeros(tf.concat([[filler], tf.shape(windows)[1:]], 0), windows.dtype)], 0)
    windows = tf.reshape(windows, tf.concat([[chunks, batch_size], tf.shape(windows)[1:]], 0))
    probabilities = tf.map_fn(model, windows, parallel_iterations=1,
                              fn_output_signature=tf.TensorSpec([batch_size, tile_h, tile_w, classes], tf.float32))
    probabilities = tf.reshape(probabilities, [-1, tile_h, tile_w, classes])[:count]
    weights = tf.constant(blend_weights(tile))
    total = tf.tensor_scatter_nd_add(tf.zeros([padded_h, padded_w, classes]), coordinates,
                                     probabilities * weights[None, :, :, None])
    weight_sum = tf.tensor_scatter_nd_add(tf.zeros([padded_h, padded_w]), coordinates,
                                          tf.tile(weights[None], [count, 1, 1]))
    return (total / weight_sum[..., None])[:height, :width]
