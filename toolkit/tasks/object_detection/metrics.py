"""COCO detection metrics through pycocotools (the reference implementation), and a precision-recall plot.

Example:

>>> import numpy as np
>>> from toolkit.tasks.object_detection.metrics import coco_metrics
>>> truth = [(np.array([[0., 0., 10., 10.]]), np.array([0]))]
>>> found = [np.array([[0., 0., 10., 10., 0.9, 0.]])]
>>> round(coco_metrics(truth, found, ["thing"], (32, 32))["map_50"], 3)
1.0
"""

import contextlib
import io

import numpy as np


def coco_objects(truth, detections, class_names, image_sizes):
    """pycocotools `COCO` ground truth and detections of per-image (boxes xyxy, classes) and detection rows
    `[x1, y1, x2, y2, score, class]`; `image_sizes` is one (height, width) or one per image."""
    from pycocotools.coco import COCO

    sizes = [image_sizes] * len(truth) if np.ndim(image_sizes) == 1 else list(image_sizes)
    images, annotations, results = [], [], []
    for index, ((boxes, classes), rows, size) in enumerate(zip(truth, detections, sizes)):
        images.append({"id": index, "height": int(size[0]), "width": int(size[1])})
        for box, label in zip(np.reshape(boxes, (-1, 4)), np.reshape(classes, -1)):
            width, height = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": int(label),
                                "bbox": [float(box[0]), float(box[1]), width, height], "area": width * height,
                                "iscrowd": 0})
        for row in np.reshape(rows, (-1, 6)):
            results.append({"image_id": index, "category_id": int(row[5]), "score": float(row[4]),
                            "bbox": [float(row[0]), float(row[1]), float(row[2] - row[0]), float(row[3] - row[1])]})
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i, "name": name} for i, name in enumerate(class_names)]}
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        found = ground.loadRes(results) if results else None
    return ground, found


def coco_metrics(truth, detections, class_names, image_sizes):
    """COCO mAP@[.5:.95], mAP@0.5, mAP@0.75, AR@100, small/medium/large AP and per-class AP of a whole split.

    Args:
        truth: list of (boxes (k, 4) xyxy pixels, classes (k,)). One per image.
        detections: list of arrays (n, 6) `[x1, y1, x2, y2, score, class]`. One per image.
        class_names: list of str.
        image_sizes: (height, width), or one per image.

    Returns:
        A JSON-able dict (`precision_recall`: per-class precision at 101 recall points, IoU 0.5, for the plot).
    """
    from pycocotools.cocoeval import COCOeval

    ground, found = coco_objects(truth, detections, class_names, image_sizes)
    names = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "ar_1", "ar_10", "ar_100",
             "ar_small", "ar_medium", "ar_large")
    if found is None:
        metrics = {name: 0.0 for name in names}
        metrics["per_class"] = {name: {"ap": 0.0, "ap_50": 0.0, "objects": 0} for name in class_names}
        return metrics
    evaluation = COCOeval(ground, found, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    metrics = {name: max(float(value), 0.0) for name, value in zip(names, evaluation.stats)}
    precision = evaluation.eval["precision"]  # [iou, recall, class, area, max_dets]
    objects = np.bincount(np.concatenate([np.reshape(c, -1) for _, c in truth]).astype(np.int64)
                          if truth else np.zeros(0, np.int64), minlength=len(class_names))
    per_class, curves = {}, {}
    for index, name in enumerate(class_names):
        values = precision[:, :, index, 0, -1]
        at_50 = precision[0, :, index, 0, -1]
        per_class[name] = {"ap": float(np.mean(values[values > -1])) if np.any(values > -1) else 0.0,
                           "ap_50": float(np.mean(at_50[at_50 > -1])) if np.any(at_50 > -1) else 0.0,
                           "objects": int(objects[index])}
        curves[name] = [round(max(float(v), 0.0), 4) for v in at_50]
    metrics["per_class"] = per_class
    metrics["precision_recall"] = curves
    return metrics


def plot_precision_recall(curves, path):
    """Per-class precision-recall curves at IoU 0.5 (COCO's 101 recall points) into a PNG."""
    from toolkit.plots import _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 5))
    recall = np.linspace(0, 1, 101)
    for name, precision in curves.items():
        axis.plot(recall, precision, label=name, linewidth=1.2)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title("Precision-recall at IoU 0.5 (test split)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, loc="lower left", ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
