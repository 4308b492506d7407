"""The detector: an anchor-free, centre-based head (after FCOS) on one level of a small feature pyramid, its
loss, and decoding with per-class non-maximum suppression in the graph.

Network (`build_head`): the backbone's features at the output stride and deeper are fused top-down (1x1
projections, upsampling, addition: a feature pyramid reduced to the one level the head reads), then
`head.convs` 3x3 convolutions and three outputs per cell: class logits, the distances from the cell centre to
the box's left, top, right and bottom edges (pixels, `exp` of the raw value times the stride), and a
centre-ness logit. The model's output is `[batch, cells, classes + 5]`.

Training targets (`DetectionLoss`, from padded `[batch, max_boxes, 5]` rows `x1, y1, x2, y2, class` in model
pixels, class -1 for padding): a cell is positive for the smallest box that contains its centre within
`center_radius` strides of the box centre. Sigmoid focal loss on classes over all cells, GIoU on the boxes of
positive cells weighted by their centre-ness, binary cross-entropy on centre-ness.

Decoding (`detect`): score = sqrt(class probability x centre-ness) of each cell's best class, the
`pre_nms` best cells, then `NonMaxSuppressionV5` with the boxes of each class shifted apart (so one NMS is a
per-class NMS), padded to `max_detections`. The same graph runs in Keras, the SavedModel, ONNX (tf2onnx maps
the op to ONNX `NonMaxSuppression`) and TFLite (builtin `NON_MAX_SUPPRESSION_V5`).

Example:

>>> import keras
>>> from toolkit.tasks.object_detection.model import build_head
>>> image = keras.Input((64, 64, 3))
>>> features = {8: keras.layers.Conv2D(8, 1, strides=8)(image), 16: keras.layers.Conv2D(8, 1, strides=16)(image)}
>>> keras.Model(image, build_head(features, 8, num_classes=3, filters=16, convs=1)).output.shape
(None, 64, 8)
"""

import math

import numpy as np


def _conv(x, filters, name, kernel=3):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_head(features, stride, num_classes, filters=64, convs=2, prior=0.01):
    """The detection head on `{stride: feature map}`; returns `[batch, cells, num_classes + 5]` raw outputs.

    Args:
        features: dict. Backbone feature maps by stride.
        stride: int. The output stride (the head reads this level; deeper ones are fused into it).
        num_classes: int.
        filters: int. Width of the pyramid and the head.
        convs: int. 3x3 convolutions before the outputs.
        prior: float. Initial class probability (focal-loss bias initialisation).
    """
    import keras
    from keras import layers

    levels = sorted(s for s in features if s >= stride)
    if not levels:
        deepest = max(features)
        raise ValueError(f"the backbone's deepest features have stride {deepest}; set model.head.stride to "
                         f"{deepest} or less")
    x = None
    for level in reversed(levels):
        projected = layers.Conv2D(filters, 1, name=f"fpn_p{level}")(features[level])
        if x is not None:
            factor = x.shape[1] and projected.shape[1] // x.shape[1]
            if factor and factor > 1:
                x = layers.UpSampling2D(factor, interpolation="nearest", name=f"fpn_up{level}")(x)
            if x.shape[1] != projected.shape[1] or x.shape[2] != projected.shape[2]:
                x = layers.Resizing(projected.shape[1], projected.shape[2], name=f"fpn_resize{level}")(x)
            projected = layers.Add(name=f"fpn_add{level}")([projected, x])
        x = projected
    x = _conv(x, filters, "fpn_out")
    for index in range(convs):
        x = _conv(x, filters, f"head{index}")
    bias = -math.log((1 - prior) / prior)
    classes = layers.Conv2D(num_classes, 3, padding="same", name="class_logits",
                            bias_initializer=keras.initializers.Constant(bias))(x)
    distances = layers.Conv2D(4, 3, padding="same", name="box_distances")(x)
    centerness = layers.Conv2D(1, 3, padding="same", name="centerness_logit")(x)
    outputs = layers.Concatenate(name="head_outputs")([classes, distances, centerness])
    return layers.Reshape((-1, num_classes + 5), name="detections_raw")(outputs)


def cell_centres(image_size, stride):
    """(cells, 2) float32 x, y pixel centres of the output grid, row-major (as the head's reshape)."""
    height, width = image_size
    rows, cols = math.ceil(height / stride), math.ceil(width / stride)
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1).astype(np.float32)


def decode_boxes(raw, centres, stride):
    """Raw head outputs `[..., classes + 5]` -> xyxy boxes `[..., 4]` in model pixels (any backend)."""
    from keras import ops

    distances = ops.exp(ops.minimum(raw[..., -5:-1], 8.0)) * stride
    return ops.concatenate([centres - distances[..., :2], centres + distances[..., 2:]], axis=-1)


def detection_loss_class():
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class DetectionLoss(keras.losses.Loss):
        """Focal + GIoU + centre-ness loss of the head's raw outputs against padded box rows (module docstring)."""

        def __init__(self, image_size=(128, 128), stride=8, num_classes=1, center_radius=1.5, alpha=0.25,
                     gamma=2.0, box_weight=2.0, name="detection_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.image_size, self.stride, self.num_classes = tuple(image_size), int(stride), int(num_classes)
            self.center_radius, self.alpha, self.gamma, self.box_weight = center_radius, alpha, gamma, box_weight
            self.centres = cell_centres(self.image_size, self.stride)

        def call(self, y_true, y_pred):
            ops = keras.ops
            y_pred = ops.cast(y_pred, "float32")
            truth = ops.cast(y_true, "float32")
            boxes, labels = truth[..., :4], truth[..., 4]  # [B, M, 4], [B, M]
            centres = ops.convert_to_tensor(self.centres)  # [N, 2]
            cx, cy = centres[None, :, None, 0], centres[None, :, None, 1]  # [1, N, 1]
            x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))  # [B, 1, M]
            left, top, right, bottom = cx - x1, cy - y1, x2 - cx, y2 - cy  # [B, N, M]
            inside = ops.minimum(ops.minimum(left, right), ops.minimum(top, bottom)) > 0
            radius = self.center_radius * self.stride
            near = (ops.abs(cx - (x1 + x2) / 2) < radius) & (ops.abs(cy - (y1 + y2) / 2) < radius)
            valid = labels[:, None, :] >= 0
            candidate = inside & near & valid
            area = (x2 - x1) * (y2 - y1)
            area = ops.where(candidate, area, 1e12)
            assigned = ops.argmin(area, axis=-1)  # [B, N]
            positive = ops.cast(ops.any(candidate, axis=-1), "float32")  # [B, N]
            pick = lambda values: ops.take_along_axis(values, assigned[..., None], axis=-1)[..., 0]  # noqa: E731
            target_class = ops.cast(pick(ops.broadcast_to(labels[:, None, :], ops.shape(area))), "int32")
            target_box = ops.stack([pick(ops.broadcast_to(b, ops.shape(area))) for b in (x1, y1, x2, y2)], axis=-1)
            distances = ops.stack([pick(d) for d in (left, top, right, bottom)], axis=-1)
            distances = ops.maximum(distances, 1e-6)
            lr, tb = distances[..., 0::2], distances[..., 1::2]
            centerness_target = ops.sqrt(
                (ops.min(lr, axis=-1) / ops.max(lr, axis=-1)) * (ops.min(tb, axis=-1) / ops.max(tb, axis=-1)))
            positives = ops.maximum(ops.sum(positive), 1.0)

            logits = y_pred[..., :self.num_classes]
            one_hot = ops.one_hot(ops.maximum(target_class, 0), self.num_classes) * positive[..., None]
            probability = ops.sigmoid(logits)
            cross_entropy = ops.binary_crossentropy(one_hot, logits, from_logits=True)
            p_t = one_hot * probability + (1 - one_hot) * (1 - probability)
            alpha_t = one_hot * self.alpha + (1 - one_hot) * (1 - self.alpha)
            focal = ops.sum(alpha_t * ops.power(1 - p_t, self.gamma) * cross_entropy) / positives

            predicted = decode_boxes(y_pred, centres[None], self.stride)
            giou = _giou(predicted, target_box)
            weight = centerness_target * positive
            box = ops.sum((1 - giou) * weight) / ops.maximum(ops.sum(weight), 1e-6)
            centerness = ops.binary_crossentropy(centerness_target[..., None], y_pred[..., -1:], from_logits=True)
            centerness = ops.sum(centerness[..., 0] * positive) / positives
            return focal + self.box_weight * box + centerness

        def get_config(self):
            return {**super().get_config(), "image_size": list(self.image_size), "stride": self.stride,
                    "num_classes": self.num_classes, "center_radius": self.center_radius, "alpha": self.alpha,
                    "gamma": self.gamma, "box_weight": self.box_weight}

    return DetectionLoss


def _giou(first, second):
    from keras import ops

    area = lambda b: ops.maximum(b[..., 2] - b[..., 0], 0) * ops.maximum(b[..., 3] - b[..., 1], 0)  # noqa: E731
    left = ops.maximum(first[..., 0], second[..., 0])
    top = ops.maximum(first[..., 1], second[..., 1])
    right = ops.minimum(first[..., 2], second[..., 2])
    bottom = ops.minimum(first[..., 3], second[..., 3])
    inter = ops.maximum(right - left, 0) * ops.maximum(bottom - top, 0)
    union = area(first) + area(second) - inter
    iou = inter / ops.maximum(union, 1e-6)
    hull = ((ops.maximum(first[..., 2], second[..., 2]) - ops.minimum(first[..., 0], second[..., 0]))
            * (ops.maximum(first[..., 3], second[..., 3]) - ops.minimum(first[..., 1], second[..., 1])))
    return iou - (hull - union) / ops.maximum(hull, 1e-6)


def settings(metadata):
    """The decoding settings stored in a model's metadata."""
    detection = metadata["detection"]
    return {key: detection[key] for key in ("stride", "score_threshold", "iou_threshold", "max_detections",
                                            "pre_nms")}


def detect(raw, metadata, score_threshold=None, max_detections=None):
    """In-graph decoding and per-class NMS of raw head outputs `[batch, cells, classes + 5]` (TensorFlow).

    Returns a dict of `boxes` [batch, K, 4] (xyxy, model pixels, clipped to the image), `scores` [batch, K],
    `classes` [batch, K] int32 (-1 for padding) and `count` [batch] int32, K = max_detections. A static batch
    of 1 (the TFLite export) runs without a loop, which the int8 calibrator needs.
    """
    import tensorflow as tf

    config = settings(metadata)
    threshold = config["score_threshold"] if score_threshold is None else score_threshold
    keep = int(config["max_detections"] if max_detections is None else max_detections)
    stride = config["stride"]
    height, width = metadata["image_size"]
    num_classes = len(metadata["class_names"])
    centres = tf.constant(cell_centres((height, width), stride))
    raw = tf.cast(raw, tf.float32)
    boxes = decode_boxes(raw, centres[None], stride)
    boxes = tf.clip_by_value(boxes, 0.0, tf.constant([width, height, width, height], tf.float32))
    probability = tf.sigmoid(raw[..., :num_classes]) * tf.sigmoid(raw[..., -1:])
    scores = tf.sqrt(tf.reduce_max(probability, axis=-1))
    classes = tf.argmax(probability, axis=-1, output_type=tf.int32)
    candidates = min(int(config["pre_nms"]), len(cell_centres((height, width), stride)))
    shift = float(max(height, width) + 1)

    def one(args):
        image_boxes, image_scores, image_classes = args
        top = tf.math.top_k(image_scores, k=candidates)
        picked_boxes = tf.gather(image_boxes, top.indices)
        picked_classes = tf.gather(image_classes, top.indices)
        shifted = picked_boxes + tf.cast(picked_classes, tf.float32)[:, None] * shift
        selected, selected_scores, count = tf.raw_ops.NonMaxSuppressionV5(
            boxes=tf.stack([shifted[:, 1], shifted[:, 0], shifted[:, 3], shifted[:, 2]], axis=1),
            scores=top.values, max_output_size=keep, iou_threshold=float(config["iou_threshold"]),
            score_threshold=float(threshold), soft_nms_sigma=0.0, pad_to_max_output_size=True)
        valid = tf.range(keep) < count
        return (tf.where(valid[:, None], tf.gather(picked_boxes, selected), 0.0),
                tf.where(valid, selected_scores, 0.0),
                tf.where(valid, tf.gather(picked_classes, selected), -1), count)

    if raw.shape[0] == 1:
        outputs = [value[None] for value in one((boxes[0], scores[0], classes[0]))]
    else:
        outputs = tf.map_fn(one, (boxes, scores, classes), fn_output_signature=(
            tf.TensorSpec([keep, 4], tf.float32), tf.TensorSpec([keep], tf.float32),
            tf.TensorSpec([keep], tf.int32), tf.TensorSpec([], tf.int32)))
    return dict(zip(("boxes", "scores", "classes", "count"), outputs))


class Detector:
    """The network with decoding and NMS: float32 images `[batch, H, W, C]` at the model size (0..255) -> the
    dict of `detect`. What the ONNX and TFLite exports hold (`Task.onnx_model`)."""

    def __init__(self, model, metadata):
        self.model, self.metadata = model, metadata

    def __call__(self, images, training=False):
        return detect(self.model(images, training=False), self.metadata)


def scale_boxes(boxes, from_size, to_size):
    """Scales xyxy boxes (any backend, last axis 4) from an image of (height, width) `from_size` to `to_size`."""
    from keras import ops

    sy = ops.cast(to_size[0], "float32") / ops.cast(from_size[0], "float32")
    sx = ops.cast(to_size[1], "float32") / ops.cast(from_size[1], "float32")
    return boxes * ops.stack([sx, sy, sx, sy])
