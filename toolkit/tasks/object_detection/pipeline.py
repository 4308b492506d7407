"""The detection pipeline: (image, boxes) pairs resized to the model size, box-aware augmentation with Keras
preprocessing layers, and padded targets.

Targets are `[max_boxes, 5]` rows `x1, y1, x2, y2, class` in model pixels (class -1 pads). Images are resized
(stretched) to `data.image_size` and their boxes scaled with them, as prediction does. Augmentation uses the
Keras layers' `bounding_boxes` inputs (`RandomFlip`, `RandomTranslation`, `RandomZoom`, `RandomRotation`,
`RandomContrast` with `bounding_box_format="xyxy"`), so boxes move with their pixels; boxes pushed out of the
image are clipped, and dropped when less than a pixel is left. The layers are the image tasks' own
(`toolkit.tasks.image.pipeline.build_augmenter`), built with `bounding_box_format`.
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
)


def pad_targets(boxes, classes, max_boxes):
    """float32 (max_boxes, 5) rows of one image (class -1 pads; boxes beyond max_boxes are dropped)."""
    rows = np.full((max_boxes, 5), -1.0, np.float32)
    count = min(len(classes), max_boxes)
    rows[:count, :4] = np.asarray(boxes, np.float32).reshape(-1, 4)[:count]
    rows[:count, 4] = np.asarray(classes)[:count]
    return rows


def _resize(image, targets, size, channels):
    image = adapt_channels(image, channels)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.stack([size[1] / shape[1], size[0] / shape[0], size[1] / shape[1], size[0] / shape[0]])
    valid = targets[:, 4:] >= 0
    boxes = tf.where(valid, targets[:, :4] * scale, targets[:, :4])
    return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear"), tf.concat([boxes, targets[:, 4:]], 1)


def detection_dataset(split, data_config, max_boxes):
    """Returns (unbatched dataset of (float32 image at the model size, float32 targets (max_boxes, 5)),
    SplitReport)."""
    size, channels = tuple(data_config.image_size), data_config.channels
    skipped = list(split.skipped_files)
    if split.dataset is not None:
        def prepare(image, boxes, classes):
            count = tf.minimum(tf.shape(classes)[0], max_boxes)
            rows = tf.concat([tf.cast(boxes[:count], tf.float32), tf.cast(classes[:count, None], tf.float32)], 1)
            rows = tf.pad(rows, [[0, max_boxes - count], [0, 0]], constant_values=-1.0)
            return _resize(image, rows, size, channels)

        dataset = split.dataset.map(prepare, num_parallel_calls=AUTOTUNE)
        count = split.count if split.count is not None else sum(1 for _ in dataset)
        report = SplitReport(count, len(skipped), skipped)
    else:
        targets = np.stack([pad_targets(b, c, max_boxes) for b, c in zip(split.boxes, split.classes)]) \
            if len(split) else np.zeros((0, max_boxes, 5), np.float32)
        if split.images is not None:
            dataset = tf.data.Dataset.from_tensor_slices((split.images, targets))
            dataset = dataset.map(lambda image, rows: _resize(image, rows, size, channels), num_parallel_calls=AUTOTUNE)
            report = SplitReport(len(split), len(skipped), skipped)
        else:
            def load(path, rows):
                return _resize(decode_image(tf.io.read_file(path), channels), rows, size, channels)

            dataset, good, failed = decode_files(split.paths, targets, load, data_config.on_error)
            report = SplitReport(good, len(skipped) + len(failed), skipped + failed)
    if data_config.cache:
        dataset = dataset.cache()
    return _with_cardinality(dataset, report.examples), report


def augment_batch(augmenter, images, targets):
    """Applies a box-aware augmenter (`build_augmenter(..., bounding_box_format="xyxy")`) to a batch; boxes are
    clipped to the image and those under a pixel dropped."""
    boxes, labels = targets[..., :4], targets[..., 4]
    data = augmenter({"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}}, training=True)
    images, boxes = data["images"], data["bounding_boxes"]["boxes"]
    labels = tf.cast(data["bounding_boxes"]["labels"], tf.float32)
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    boxes = tf.clip_by_value(boxes, 0.0, tf.stack([width, height, width, height]))
    keep = (labels >= 0) & (boxes[..., 2] - boxes[..., 0] >= 1) & (boxes[..., 3] - boxes[..., 1] >= 1)
    rows = tf.concat([tf.where(keep[..., None], boxes, -1.0), tf.where(keep, labels, -1.0)[..., None]], -1)
    return images, rows


def detection_batches(dataset, batch_size, training=False, shuffle_buffer=10000, seed=0, augmenter=None):
    """Shuffles, batches and augments (images, padded box rows)."""
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training and augmenter is not None:
        dataset = dataset.map(lambda images, targets: augment_batch(augmenter, images, targets),
                              num_parallel_calls=AUTOTUNE)
    return prefetched(dataset)
