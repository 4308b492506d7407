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

import os
import struct
import warnings

import numpy as np

from toolkit.errors import DataError

MAX_PIXELS = 100_000_000


def _name(source):
    """How an image source is named in messages: its path, or "image" for bytes in memory (never a repr)."""
    return str(source) if isinstance(source, (str, os.PathLike)) else "image"


def check_image_size(source, name=None):
    """Refuses an image whose header declares more than MAX_PIXELS pixels, before anything is decoded; returns
    its (width, height), or None when Pillow cannot identify it.

    A PNG of 30000x30000 black pixels compresses to a few hundred kilobytes and decodes to 0.9-2.7 GB: the size
    is read from the header (Pillow reads only that on open) and refused with a DataError. Sources Pillow cannot
    identify are left to the decoder, which names them itself.

    Args:
        source: str path, or a binary file object (rewound afterwards).
        name: str or None. How the image is named in the error (default: the path, or "image").
    """
    from PIL import Image

    position = source.tell() if hasattr(source, "tell") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        width = height = None
    except Exception:  # noqa: BLE001 - not an image Pillow knows: the decoder gives the error
        return None
    finally:
        if position is not None:
            source.seek(position)
    if width is None or width * height > MAX_PIXELS:
        raise _too_large(name or _name(source), width, height)
    return width, height


def _too_large(name, width=None, height=None):
    size = "" if width is None else f" ({width}x{height})"
    return DataError(f"{name}: the image is too large{size}: over {MAX_PIXELS:,} pixels; downscale it first")


def read_image(path, channels):
    """Reads an image file (a path or a binary file object) into a uint8 (H, W, channels) array with Pillow.

    Images of more than MAX_PIXELS pixels are refused from their header, before decoding.
    """
    from PIL import Image, UnidentifiedImageError

    from toolkit.data.files import check_input_file

    name = _name(path)
    if isinstance(path, (str, os.PathLike)):
        check_input_file(path)  # a FIFO, a device or a huge file is refused before it is opened
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, from the header
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise _too_large(name, width, height)
                image.seek(0)
                mode = "L" if channels == 1 else "RGB"
                if image.mode not in ("L", "RGB"):
                    image = image.convert("RGBA").convert("RGB") if "A" in image.mode or image.mode == "P" else image.convert("RGB")
                if image.mode != mode:
                    image = image.convert(mode)
                array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file")
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not an image")
    except Image.DecompressionBombError:
        raise _too_large(name)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError) as error:
        shown = repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else repr(path)
        reason = str(error).replace(shown, "")  # the name is already at the start; bytes are never a repr
        reason = " ".join(reason.split())[:100] or type(error).__name__
        raise DataError(f"{name}: not a readable image (JPEG, PNG, GIF or BMP): {reason}")
    if array.ndim == 2:
        array = array[..., None]
    return array


def resize_bilinear(image, size):
    """Bilinear resize with half-pixel centres, as tf.image.resize; float32 out."""
    image = np.asarray(image)
    in_h, in_w = image.shape[:2]
    out_h, out_w = size
    if (in_h, in_w) == (out_h, out_w):
        return image.astype(np.float32)

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
    # Only the rows and columns that are read are converted to float32: the source image is never copied whole.
    rows0, rows1 = image[y0].astype(np.float32), image[y1].astype(np.float32)
    top = rows0[:, x0] * (1 - fx)[None, :, None] + rows0[:, x1] * fx[None, :, None]
    bottom = rows1[:, x0] * (1 - fx)[None, :, None] + rows1[:, x1] * fx[None, :, None]
    return (top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]).astype(np.float32)


def read_mask(path):
    """Reads a class-index mask (single-channel or palette image) as a 2-D uint8/uint16 array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"mask {path} is not a readable image: {str(error)[:100]}")
    if array.ndim == 3:
        if mode in ("RGB", "RGBA") and np.all(array[..., :3] == array[..., :1]):
            array = array[..., 0]
        else:
            raise DataError(
                f"mask {path} is a colour image; save class indices as a single-channel or palette PNG"
            )
    return array
