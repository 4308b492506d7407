"""The segmentation pipeline: (image, mask) pairs with joint augmentation.

Images are resized bilinearly and masks with nearest neighbour to the model
size; Keras augmentation layers transform both with the same random
geometry (`{"images", "segmentation_masks"}` inputs, masks nearest). Targets
are one-hot masks with per-pixel sample weights: class weights, and 0 for
`data.ignore_index` pixels.
"""

import numpy as np
import tensorflow as tf

from toolkit.data.prefetch import prefetched
from toolkit.tasks.image.pipeline import (
    AUTOTUNE,
    SplitReport,
    _with_cardinality,
    adapt_channels,
    decode_files,
    decode_image,
    resize_image,
)


def resize_mask(mask, size):
    """Nearest-neighbour resize of a (H, W) class mask; returns int32 (h, w)."""
    mask = tf.convert_to_tensor(mask)
    return tf.cast(tf.image.resize(mask[..., None], size, method="nearest")[..., 0], tf.int32)


def _read_mask(path):
    from toolkit.data.image_io import read_mask

    return read_mask(path.decode() if isinstance(path, bytes) else str(path)).astype(np.int32)


def segmentation_dataset(split, data_config, on_error="skip"):
    """Returns (unbatched dataset of (float32 image, int32 mask), SplitReport)."""
    size = tuple(data_config.image_size)
    channels = data_config.channels

    def prepare(image, mask):
        image = adapt_channels(image, channels)
        return resize_image(image, size), resize_mask(mask, size)

    skipped = list(getattr(split, "skipped_files", []))
    if split.images is not None:
        dataset = tf.data.Dataset.from_tensor_slices((split.images, split.masks))
        dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE)
        report = SplitReport(len(split), len(skipped), skipped)
    elif split.dataset is not None:
        dataset = split.dataset.map(prepare, num_parallel_calls=AUTOTUNE)
        if data_config.cache:
            dataset = dataset.cache()
        count = split.count if split.count is not None else sum(1 for _ in dataset)
        return _with_cardinality(dataset, count), SplitReport(count, len(skipped), skipped)
    else:
        def load(path, mask_path):
            image = decode_image(tf.io.read_file(path), channels)
            mask = tf.numpy_function(_read_mask, [mask_path], tf.int32)
            mask.set_shape([None, None])
            return prepare(image, mask)

        dataset, good, failed = decode_files(split.paths, split.mask_paths, load, on_error)
        report = SplitReport(good, len(skipped) + len(failed), skipped + failed)
    if data_config.cache:
        dataset = dataset.cache()
    return _with_cardinality(dataset, report.examples), report


def segmentation_batches(dataset, batch_size, num_classes, training=False, shuffle_buffer=10000, seed=0,
                         augmenter=None, class_weights=None, ignore_index=None):
    """Shuffles, batches, augments jointly, and makes (images, one-hot masks, pixel weights)."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and augmenter is not None:
        def augment(images, masks):
            out = augmenter({"images": images, "segmentation_masks": tf.cast(masks[..., None], tf.float32)},
                            training=True)
            return out["images"], tf.cast(tf.round(out["segmentation_masks"][..., 0]), tf.int32)

        dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
    weights = tf.constant(class_weights if class_weights is not None else [1.0] * num_classes, tf.float32)

    def targets(images, masks):
        # Out-of-range values (possible in TFDS data; folder masks are checked
        # up front) are ignored like ignore_index rather than crashing a step.
        valid = (masks >= 0) & (masks < num_classes)
        if ignore_index is not None:
            valid &= tf.not_equal(masks, ignore_index)
        safe = tf.where(valid, masks, 0)
        pixel_weights = tf.gather(weights, safe) * tf.cast(valid, tf.float32)
        one_hot = tf.one_hot(safe, num_classes) * tf.cast(valid, tf.float32)[..., None]
        return images, one_hot, pixel_weights

    return prefetched(dataset.map(targets, num_parallel_calls=AUTOTUNE))
