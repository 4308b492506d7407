"""Boxes in NumPy (no TensorFlow): the formats users have, IoU, and matching two sets of detections.

Formats (the names of `keras.utils.bounding_boxes`):

- `xyxy`: left, top, right, bottom in pixels (the toolkit's own, and Pascal VOC's);
- `xywh`: left, top, width, height in pixels (COCO);
- `center_xywh`: centre x, centre y, width, height in pixels;
- `rel_center_xywh`: the same as fractions of the image width and height (YOLO txt);
- `yxyx`: top, left, bottom, right in pixels (TensorFlow's `tf.image` ops).

Example:

>>> import numpy as np
>>> from toolkit.tasks.object_detection.boxes import convert, iou_matrix
>>> convert(np.array([[10., 20., 30., 40.]]), "xywh", "xyxy").tolist()
[[10.0, 20.0, 40.0, 60.0]]
>>> float(iou_matrix(np.array([[0., 0., 2., 2.]]), np.array([[1., 0., 3., 2.]]))[0, 0])
0.3333333333333333
"""

import numpy as np

FORMATS = ("xyxy", "xywh", "center_xywh", "rel_center_xywh", "yxyx")


def convert(boxes, source, target, image_size=None):
    """Converts (n, 4) boxes between formats.

    Args:
        boxes: array (n, 4).
        source: str. One of `FORMATS`.
        target: str. One of `FORMATS`.
        image_size: (height, width). Needed by `rel_center_xywh`.
    """
    for name in (source, target):
        if name not in FORMATS:
            raise ValueError(f"unknown box format {name!r}; expected one of {', '.join(FORMATS)}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    xyxy = _to_xyxy(boxes, source, image_size)
    return _from_xyxy(xyxy, target, image_size)


def _size(image_size, name):
    if image_size is None:
        raise ValueError(f"box format {name} needs the image size")
    height, width = image_size
    return float(height), float(width)


def _to_xyxy(boxes, source, image_size):
    a, b, c, d = boxes.T
    if source == "xyxy":
        return boxes.copy()
    if source == "yxyx":
        return np.stack([b, a, d, c], axis=1)
    if source == "xywh":
        return np.stack([a, b, a + c, b + d], axis=1)
    if source == "rel_center_xywh":
        height, width = _size(image_size, source)
        a, b, c, d = a * width, b * height, c * width, d * height
    return np.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=1)


def _from_xyxy(boxes, target, image_size):
    x1, y1, x2, y2 = boxes.T
    if target == "xyxy":
        return boxes
    if target == "yxyx":
        return np.stack([y1, x1, y2, x2], axis=1)
    if target == "xywh":
        return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    centre = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    if target == "rel_center_xywh":
        height, width = _size(image_size, target)
        return centre / np.array([width, height, width, height])
    return centre


def box_problem(box, image_size):
    """Why an xyxy box in pixels is unusable in an image of `image_size` (height, width), or None."""
    x1, y1, x2, y2 = (float(v) for v in box)
    height, width = image_size
    if not all(np.isfinite([x1, y1, x2, y2])):
        return "a box coordinate is not a number"
    if x2 - x1 < 1 or y2 - y1 < 1:
        return f"degenerate box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (under one pixel wide or high)"
    tolerance = 1.0  # annotation tools round outwards by up to a pixel
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        return f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside its {width}x{height} image"
    return None


def iou_matrix(first, second):
    """IoU of every xyxy box in `first` (n, 4) with every box in `second` (m, 4): (n, m)."""
    first = np.asarray(first, np.float64).reshape(-1, 4)
    second = np.asarray(second, np.float64).reshape(-1, 4)
    left = np.maximum(first[:, None, 0], second[None, :, 0])
    top = np.maximum(first[:, None, 1], second[None, :, 1])
    right = np.minimum(first[:, None, 2], second[None, :, 2])
    bottom = np.minimum(first[:, None, 3], second[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    union = area(first)[:, None] + area(second)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_detections(reference, candidate, min_iou=0.99):
    """Greedy one-to-one matching of two detection sets (rows `[x1, y1, x2, y2, score, class]`).

    A pair matches when the classes are equal and the IoU is at least `min_iou`; reference rows are taken in
    descending score. Returns (matched pairs [(i, j)], max |score difference| over matched pairs).
    """
    reference = np.asarray(reference, np.float64).reshape(-1, 6)
    candidate = np.asarray(candidate, np.float64).reshape(-1, 6)
    if not len(reference) or not len(candidate):
        return [], 0.0
    ious = iou_matrix(reference[:, :4], candidate[:, :4])
    ious[reference[:, 5][:, None] != candidate[:, 5][None, :]] = -1.0
    used, pairs, diff = set(), [], 0.0
    for i in np.argsort(-reference[:, 4], kind="stable"):
        order = [j for j in np.argsort(-ious[i], kind="stable") if j not in used and ious[i, j] >= min_iou]
        if order:
            j = order[0]
            used.add(j)
            pairs.append((int(i), int(j)))
            diff = max(diff, abs(reference[i, 4] - candidate[j, 4]))
    return pairs, float(diff)


def compare_detections(references, candidates, min_iou=0.99, min_score=None):
    """Parity of two lists of per-image detections (as `match_detections` takes).

    Returns (max score difference of matched detections, agreement, decisions): agreement is the share of
    detections (counted in the larger of the two sets of each image) that the other side has with the same class
    at IoU >= `min_iou`; decisions is that count. With `min_score`, only the reference's detections scored at
    least that are counted, each looked for among all of the candidate's (quantised models move scores).
    """
    if len(references) != len(candidates):
        return float("inf"), 0.0, 0
    matched, total, diff = 0, 0, 0.0
    for reference, candidate in zip(references, candidates):
        reference = np.reshape(reference, (-1, 6))
        candidate = np.reshape(candidate, (-1, 6))
        if min_score is not None:
            reference = reference[reference[:, 4] >= min_score]
        pairs, score_diff = match_detections(reference, candidate, min_iou)
        matched += len(pairs)
        total += len(reference) if min_score is not None else max(len(reference), len(candidate))
        diff = max(diff, score_diff)
    return diff, (matched / total if total else 1.0), total
