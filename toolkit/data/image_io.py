"""TensorFlow-free image reading and resizing (for ONNX-only prediction).

`resize_bilinear` reproduces `tf.image.resize(..., method="bilinear",
antialias=False)` (half-pixel centres), so an ONNX model served without
TensorFlow sees the same pixels as in training.

Example:

>>> import numpy as np
>>> from toolkit.data.image_io import resize_bilinear
>>> resize_bilinear(np.zeros((28, 28, 1), np.uint8), (32, 32)).shape
(32, 32, 1)
"""

import numpy as np

from toolkit.errors import DataError

MAX_PIXELS = 100_000_000


def read_image(path, channels):
    """Reads an image file into a uint8 (H, W, channels) array with Pillow."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as image:
            image.seek(0)
            mode = "L" if channels == 1 else "RGB"
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGBA").convert("RGB") if "A" in image.mode or image.mode == "P" else image.convert("RGB")
            if image.mode != mode:
                image = image.convert(mode)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file")
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an image")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} is not a readable image (JPEG, PNG, GIF or BMP): {str(error)[:100]}")
    except Image.DecompressionBombError:
        raise DataError(f"{path} is too large (over {MAX_PIXELS} pixels)")
    if array.ndim == 2:
        array = array[..., None]
    return array


def resize_bilinear(image, size):
    """Bilinear resize with half-pixel centres, as tf.image.resize; float32 out."""
    image = np.asarray(image, dtype=np.float32)
    in_h, in_w = image.shape[:2]
    out_h, out_w = size
    if (in_h, in_w) == (out_h, out_w):
        return image.copy()

    def axis(in_size, out_size):
        scale = in_size / out_size
        centre = (np.arange(out_size, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5
        low = np.floor(centre)
        frac = (centre - low).astype(np.float32)
        low_index = np.clip(low.astype(np.int64), 0, in_size - 1)
        high_index = np.clip(low.astype(np.int64) + 1, 0, in_size - 1)
        return low_index, high_index, frac

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return (top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]).astype(np.float32)
