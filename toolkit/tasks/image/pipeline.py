"""The image pipeline: decode, resize, augment, cache and prefetch with tf.data.

The same `decode_image` and `resize_image` functions run in training, in
evaluation and inside the exported SavedModel, so a served image is
preprocessed exactly as in training. Pixel values stay in 0..255 (float32);
normalisation happens inside the model (each backbone declares its own), so
it is never applied twice.

Example:

>>> import numpy as np
>>> from toolkit.tasks.image.pipeline import resize_image
>>> resize_image(np.zeros((28, 28, 1), np.uint8), (32, 32)).shape
TensorShape([32, 32, 1])
"""

import dataclasses
import io

import numpy as np
import tensorflow as tf

from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(data, channels):
    """Decodes JPEG/PNG/GIF/BMP bytes to a uint8 (H, W, channels) tensor.

    JPEGs use the accurate integer DCT (TensorFlow's default is the fast,
    less exact one), which decodes bit-for-bit like Pillow/libjpeg: the ONNX
    path, which reads images with Pillow, then sees the same pixels.
    """
    def jpeg():
        return tf.io.decode_jpeg(data, channels=channels, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(data, channels=channels, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(data), jpeg, other)
    image.set_shape([None, None, channels])
    return image


def adapt_channels(image, channels):
    """Converts a uint8/float image between grayscale and RGB as needed."""
    have = image.shape[-1]
    if have == channels or have is None:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), image.dtype)
    if have == 4:
        return adapt_channels(image[..., :3], channels)
    raise DataError(f"images have {have} channels; expected 1 or 3")


def resize_image(image, size):
    """Resizes to `size` (bilinear, no antialiasing); returns float32 in 0..255."""
    image = tf.convert_to_tensor(image)
    return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")


def encode_png(image):
    """Encodes a uint8 (H, W, C) numpy image as PNG bytes."""
    return tf.io.encode_png(tf.convert_to_tensor(image, tf.uint8)).numpy()


def build_augmenter(config, seed, bounding_box_format=None):
    """Returns a Keras Sequential of random augmentation layers, or None.

    With `bounding_box_format` (e.g. "xyxy") the geometric layers also move `{"bounding_boxes"}` inputs.
    """
    import keras

    boxes = {"bounding_box_format": bounding_box_format} if bounding_box_format else {}
    layers = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed, **boxes))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="constant", seed=seed, **boxes))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed, **boxes))
    if config.translation:
        layers.append(keras.layers.RandomTranslation(config.translation, config.translation, fill_mode="constant",
                                                     seed=seed, **boxes))
    if config.contrast:
        layers.append(keras.layers.RandomContrast(config.contrast, value_range=(0, 255), seed=seed))
    if not layers:
        return None
    return keras.Sequential(layers, name="augment")


@dataclasses.dataclass
class SplitReport:
    """How many examples a split has and which were skipped as unreadable."""

    examples: int
    skipped: int = 0
    skipped_files: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return {"examples": self.examples, "skipped": self.skipped, "skipped_files": self.skipped_files[:20]}


def image_dataset(split, data_config, on_error="skip"):
    """Returns (unbatched dataset of (float32 image, int label), SplitReport).

    Files are decoded in parallel; an unreadable file is skipped and counted,
    or raises a `DataError` naming it when `on_error` is "fail". Decoded,
    resized images are cached in memory when `data_config.cache`.
    """
    size = tuple(data_config.image_size)
    channels = data_config.channels

    def prepare(image):
        image = adapt_channels(image, channels)
        if image.shape[0] == size[0] and image.shape[1] == size[1]:
            return tf.cast(image, tf.float32)
        return resize_image(image, size)

    if split.images is not None:
        images = split.images
        dataset = tf.data.Dataset.from_tensor_slices((images, split.labels))
        dataset = dataset.map(lambda x, y: (prepare(x), y), num_parallel_calls=AUTOTUNE)
        report = SplitReport(len(split))
    elif split.dataset is not None:
        dataset = split.dataset.map(lambda x, y: (prepare(x), y), num_parallel_calls=AUTOTUNE)
        if data_config.cache:
            dataset = dataset.cache()
        count = split.count if split.count is not None else sum(1 for _ in dataset)  # also fills the cache
        return _with_cardinality(dataset, count), SplitReport(count)
    else:
        dataset, report = _files_dataset(split, prepare, channels, on_error)
    if data_config.cache:
        dataset = dataset.cache()
    return _with_cardinality(dataset, report.examples), report


def _with_cardinality(dataset, count):
    # Keras counts an extra optimizer step per epoch on datasets of unknown
    # size (and warns that the input ran out); a known size avoids both.
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def decode_files(paths, targets, load, on_error):
    """Decodes image files with their targets in parallel, dropping the files that fail.

    Args:
        paths: list of str. Image files.
        targets: array or list. One target per file (labels, mask paths, box rows).
        load: callable(path, target) -> (image, target) in TensorFlow; a file whose `load` fails is dropped.
        on_error: "skip" or "fail" (`data.on_error`).

    Returns:
        (cached dataset of (image, target), decoded count, ["<path>: image could not be decoded", ...]).
    """
    indices = np.arange(len(paths), dtype=np.int64)
    base = tf.data.Dataset.from_tensor_slices((indices, paths, targets))
    decoded = base.map(lambda index, path, target: (index, *load(path, target)), num_parallel_calls=AUTOTUNE,
                       deterministic=True).ignore_errors().cache()
    good = np.fromiter(decoded.map(lambda i, x, y: i).as_numpy_iterator(), dtype=np.int64)
    failed = [f"{paths[i]}: image could not be decoded" for i in np.setdiff1d(indices, good)]
    if failed and on_error == "fail":
        raise DataError(f"{failed[0]} ({len(failed)} of {len(indices)} files failed); fix or remove it, or set "
                        "data.on_error: skip")
    if len(indices) and not len(good):
        raise DataError(f"none of the {len(indices)} images could be decoded (first: {paths[0]})")
    return decoded.map(lambda i, x, y: (x, y)), len(good), failed


def _files_dataset(split, prepare, channels, on_error):
    indices = np.arange(len(split.paths), dtype=np.int64)
    base = tf.data.Dataset.from_tensor_slices((indices, split.paths, split.labels))

    def load(index, path, label):
        return index, prepare(decode_image(tf.io.read_file(path), channels)), label

    decoded = base.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors().cache()
    good = np.fromiter(decoded.map(lambda i, x, y: i).as_numpy_iterator(), dtype=np.int64)
    bad = np.setdiff1d(indices, good)
    report = SplitReport(len(good), len(bad), [split.paths[i] for i in bad])
    if len(bad) and on_error == "fail":
        raise DataError(
            f"cannot decode image {split.paths[bad[0]]} ({len(bad)} of {len(indices)} files failed); "
            "fix or remove it, or set data.on_error: skip"
        )
    if len(good) == 0:
        raise DataError(f"none of the {len(indices)} images could be decoded (first: {split.paths[0]}); check "
                        "data.path: JPEG, PNG, GIF or BMP files")
    return decoded.map(lambda i, x, y: (x, y)), report


def batched(dataset, batch_size, num_classes=None, training=False, shuffle_buffer=10000, seed=0,
            augmenter=None, drop_remainder=False):
    """Shuffles (training), batches, augments (training), one-hot encodes and prefetches."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and augmenter is not None:
        dataset = dataset.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
    if num_classes is not None:
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=AUTOTUNE)
    return prefetched(dataset)


def png_bytes(images):
    """Encodes a batch of uint8 images as a list of PNG bytes."""
    return [encode_png(image) for image in images]


def load_image_files(paths, channels):
    """Reads image files into a list of uint8 arrays with clear errors.

    An image whose header declares more than `image_io.MAX_PIXELS` pixels is refused before it is decoded.
    """
    from toolkit.data.files import check_input_file
    from toolkit.data.image_io import check_image_size

    images = []
    for path in paths:
        check_input_file(path)  # before reading: a FIFO, /dev/zero or a 3 GB file is one line, not a hang
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file")
        except IsADirectoryError:
            raise DataError(f"{path}: is a directory, not an image")
        except OSError as error:
            raise DataError(f"{path}: cannot read it ({error.strerror})")
        check_image_size(io.BytesIO(data), name=path)  # the bytes already read: no second open
        try:
            images.append(decode_image(data, channels).numpy())
        except (tf.errors.InvalidArgumentError, ValueError):
            raise DataError(f"{path}: not a readable image (JPEG, PNG, GIF or BMP)")
    return images


__all__ = [
    "decode_image", "adapt_channels", "resize_image", "encode_png", "build_augmenter", "image_dataset",
    "batched", "png_bytes", "load_image_files", "SplitReport",
]
