"""Object detectors deployed: boxes (in each image's own pixels), classes, names and scores in every runtime,
post-NMS parity, the mAP of quantised exports, drawn boxes and COCO-style JSON, and the model card's text.

Every artifact holds decoding and NMS: the SavedModel's `serving_default` (encoded images of any size) and
`serve_image` (uint8 batches) answer in the image's pixels; the ONNX and TFLite graphs take float32 images at the
model size and answer in model pixels, scaled back here. A detection row is `[x1, y1, x2, y2, score, class]`.

Example:

>>> import numpy as np
>>> from toolkit.tasks.object_detection.predictor import rows_of
>>> rows_of(np.array([[[1., 2., 3., 4.], [0., 0., 0., 0.]]]), np.array([[0.9, 0.]]), np.array([[2, -1]]),
...         np.array([1]))[0].tolist()
[[1.0, 2.0, 3.0, 4.0, 0.9, 2.0]]
"""

import os

import numpy as np

from toolkit.tasks.image.predictor import ImagePredictor, stack_batch
from toolkit.tasks.object_detection.boxes import compare_detections
from toolkit.tasks.predictor import input_names, is_path


class DetectionPredictor(ImagePredictor):
    """Object detection: boxes with classes and scores."""

    name = "object_detection"
    agreement_unit = "detection matched (same class, IoU >= 0.99; quantised: score >= 0.3 at IoU 0.5)"
    quality_metric = "map_50"
    options = ("min_score",)

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ("map", "map_50", "map_75", "ar_100", "examples")
        return {key: metrics[key] for key in keys if key in metrics}

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        return [
            "COCO metrics (pycocotools) on the whole test split: mAP@[.5:.95] "
            f"{number(metrics.get('map', 0))}, mAP@0.5 {number(metrics.get('map_50', 0))}, mAP@0.75 "
            f"{number(metrics.get('map_75', 0))}, AR@100 {number(metrics.get('ar_100', 0))}.",
            "",
            "Per class (test objects):",
            "",
            table(["class", "AP@[.5:.95]", "AP@0.5", "objects"], [
                [name, number(v["ap"]), number(v["ap_50"]), v["objects"]]
                for name, v in metrics.get("per_class", {}).items()
            ]),
            "",
            "`precision_recall.png` shows the per-class precision-recall curves at IoU 0.5; `predictions.png` test "
            "images with true (green) and predicted (red) boxes.",
            "",
        ]

    @classmethod
    def card_limitations(cls, metadata):
        size = "x".join(str(s) for s in metadata.get("image_size", []))
        detection = metadata.get("detection", {})
        return [
            f"- Finds objects of {len(metadata.get('class_names', []))} classes "
            f"({', '.join(metadata.get('class_names', [])[:12])}) in images like the training data "
            f"({metadata.get('data_provenance', '')}).",
            f"- Images are resized (stretched) to {size} for the network and the boxes scaled back; objects under "
            f"about {detection.get('stride', 8)} pixels at that size are missed.",
            f"- At most {detection.get('max_detections')} boxes per image with a score of at least "
            f"{detection.get('score_threshold')} (NMS IoU {detection.get('iou_threshold')}, per class); these are "
            "inside every export.",
        ]

    # Verification ------------------------------------------------------------------------------
    @classmethod
    def compare(cls, reference, outputs, exact=True):
        """Detections matched one to one with the same class at IoU >= 0.99; for quantised artifacts the Keras
        model's detections scored at least 0.3 (what predict shows by default) found at IoU >= 0.5."""
        if exact:
            return compare_detections(reference, outputs, min_iou=0.99)
        return compare_detections(reference, outputs, min_iou=0.5, min_score=0.3)

    @classmethod
    def reference_key(cls, endpoint):
        return "model_size" if endpoint.startswith("onnx") else "original_size"

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        if endpoint.startswith("onnx"):  # the network on NumPy-resized images, as the ONNX predictor feeds it
            batch = stack_batch(samples, size, lambda image: resize_bilinear(image, size))
            return keras_rows(model, batch, metadata, [image.shape[:2] for image in samples])
        return [keras_rows(model, image[None], metadata, [image.shape[:2]], resize=True)[0] for image in samples]

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import png_bytes

        answer = artifact.signatures["serving_default"](image_bytes=tf.constant(png_bytes(samples)))
        by_bytes = rows_of(*(answer[key].numpy() for key in ("boxes", "scores", "classes", "count")))
        by_image = []
        for image in samples:
            answer = artifact.signatures["serve_image"](images=tf.constant(image[None]))
            by_image.extend(rows_of(*(answer[key].numpy() for key in ("boxes", "scores", "classes", "count"))))
        return {"serving_default": by_bytes, "serve_image": by_image}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        return {"onnx": onnx_rows(artifact, samples, metadata)}

    @classmethod
    def quality(cls, outputs, targets, metadata):
        """COCO mAP@0.5 of detections against (boxes, classes) targets in the images' own pixels."""
        from toolkit.tasks.object_detection.metrics import coco_metrics

        sizes = [target[2] for target in targets]
        return coco_metrics([(t[0], t[1]) for t in targets], outputs, metadata["class_names"], sizes)["map_50"]

    # Prediction --------------------------------------------------------------------------------
    # One result per input: {"input", "height", "width", "count", "detections": [{"box" (xyxy pixels), "class",
    # "class_id", "score"}]}; with output_dir, `<stem>_boxes.png` (boxes drawn) and `<stem>.json` (the result
    # and COCO-style `coco` rows) are written there too.
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None, min_score=None):
        import tensorflow as tf

        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        size = tuple(metadata["image_size"])
        batch = np.stack([tf.image.resize(np.asarray(image, np.float32), size, method="bilinear").numpy()
                          for image in images])  # each image resized alone, then one batch through the network
        rows = keras_rows(handle, batch, metadata, [image.shape[:2] for image in images])
        return cls._results(inputs, images, rows, metadata, top_k, output_dir, min_score)

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None, min_score=None):
        import tensorflow as tf

        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        if all(is_path(item) for item in inputs):
            encoded = []
            for path in inputs:
                with open(path, "rb") as f:
                    encoded.append(f.read())
            answer = handle.signatures["serving_default"](image_bytes=tf.constant(encoded))
            rows = rows_of(*(answer[key].numpy() for key in ("boxes", "scores", "classes", "count")))
        else:
            rows = []
            for image in images:
                answer = handle.signatures["serve_image"](images=tf.constant(image[None]))
                rows.extend(rows_of(*(answer[key].numpy() for key in ("boxes", "scores", "classes", "count"))))
        return cls._results(inputs, images, rows, metadata, top_k, output_dir, min_score)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None, min_score=None):
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=False)
        return cls._results(inputs, images, onnx_rows(handle, images, metadata), metadata, top_k, output_dir,
                            min_score)

    @classmethod
    def _results(cls, inputs, images, rows, metadata, top_k, output_dir, min_score):
        results = []
        if min_score is None:
            min_score = metadata.get("detection", {}).get("predict_score_threshold", 0.0)
        for name, image, found in zip(input_names(inputs), images, rows):
            found = np.asarray(found).reshape(-1, 6)
            found = found[found[:, 4] >= min_score]
            if top_k is not None:
                found = found[:top_k]
            results.append(detection_result(name, image, found, metadata, output_dir))
        return results

    # Explanation: the score of each kept box (after NMS), from its cell of the head -------------------------
    @classmethod
    def explain_targets(cls, outputs, metadata, class_index=None, image_size=None, min_score=None, **options):
        from toolkit.tasks.object_detection.model import cell_centres, decode_boxes, detect, settings

        raw = np.asarray(outputs, np.float32)
        count = len(metadata["class_names"])
        answer = {key: value.numpy() for key, value in detect(raw[None], metadata).items()}
        rows = rows_of(answer["boxes"], answer["scores"], answer["classes"], answer["count"])[0]
        if min_score is None:
            min_score = metadata.get("detection", {}).get("predict_score_threshold", 0.0)
        stride = settings(metadata)["stride"]
        size = tuple(metadata["image_size"])
        cells = np.asarray(decode_boxes(raw[None], cell_centres(size, stride)[None], stride))[0]
        cells = np.clip(cells, 0, [size[1], size[0], size[1], size[0]])
        probability = 1 / (1 + np.exp(-raw[:, :count])) * (1 / (1 + np.exp(-raw[:, -1:])))
        scores = np.sqrt(probability.max(axis=-1))
        targets = []
        for row in rows:
            index = int(row[5])
            if row[4] < min_score or (class_index is not None and index != int(class_index)):
                continue
            # the cell NMS kept: its class, its box and its score
            distance = np.abs(cells - row[:4]).sum(axis=-1) + 100 * np.abs(scores - row[4]) + \
                1e6 * (probability.argmax(axis=-1) != index)
            box = scaled(row, size, image_size or size)[0, :4]
            targets.append({"class_index": index, "label": metadata["class_names"][index],
                            "score": round(float(row[4]), 6), "box": [round(float(v), 2) for v in box],
                            "cell": int(np.argmin(distance))})
        return targets

    @classmethod
    def explain_score(cls, outputs, target, metadata):
        from keras import ops

        cell = outputs[:, target["cell"]]
        return ops.sqrt(ops.sigmoid(cell[:, target["class_index"]]) * ops.sigmoid(cell[:, -1]))

    @classmethod
    def format_prediction(cls, result):
        found = ", ".join(f"{d['class']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['box'])}]"
                          for d in result["detections"][:8])
        more = f" (+{result['count'] - 8} more)" if result["count"] > 8 else ""
        files = f" -> {result['image']}" if "image" in result else ""
        return f"{result['input']}: {result['count']} objects{': ' if found else ''}{found}{more}{files}"


def rows_of(boxes, scores, classes, count):
    """Per-image detection rows `[x1, y1, x2, y2, score, class]` from padded batch outputs."""
    return [np.concatenate([boxes[i, :n], scores[i, :n, None], classes[i, :n, None].astype(np.float32)], axis=1)
            .astype(np.float64) for i, n in enumerate(np.asarray(count).astype(int))]


def scaled(rows, model_size, image_size):
    """Rows in model pixels -> the image's pixels."""
    rows = np.array(rows, np.float64).reshape(-1, 6)
    sy, sx = image_size[0] / model_size[0], image_size[1] / model_size[1]
    rows[:, :4] *= [sx, sy, sx, sy]
    return rows


def keras_rows(model, batch, metadata, image_sizes, resize=False):
    """Detection rows of a Keras model on a batch (resized in TensorFlow when `resize`), in the images' pixels."""
    import tensorflow as tf

    from toolkit.tasks.object_detection.model import detect

    size = tuple(metadata["image_size"])
    batch = tf.cast(batch, tf.float32)
    if resize:
        batch = tf.image.resize(batch, size, method="bilinear")
    answer = detect(model(batch, training=False), metadata)
    rows = rows_of(*(answer[key].numpy() for key in ("boxes", "scores", "classes", "count")))
    return [scaled(r, size, image_size) for r, image_size in zip(rows, image_sizes)]


def split_outputs(outputs):
    """(boxes, scores, classes, count) among an ONNX or TFLite graph's outputs, told apart by rank and type."""
    by_kind = {}
    for value in outputs:
        value = np.asarray(value)
        kind = {3: "boxes", 1: "count"}.get(value.ndim) or (
            "classes" if np.issubdtype(value.dtype, np.integer) else "scores")
        by_kind[kind] = value
    return tuple(by_kind[key] for key in ("boxes", "scores", "classes", "count"))


def onnx_rows(session, images, metadata):
    """Detection rows of an ONNX Runtime (or TFLite) session on uint8 images of any size, in their pixels."""
    from toolkit.data.image_io import resize_bilinear

    size = tuple(metadata["image_size"])
    batch = stack_batch(images, size, lambda image: resize_bilinear(image, size))
    name = session.get_inputs()[0].name
    rows = rows_of(*split_outputs(session.run(None, {name: batch})))
    return [scaled(r, size, image.shape[:2]) for r, image in zip(rows, images)]


def draw_boxes(image, rows, class_names, colour=(255, 40, 40), truth=None):
    """An RGB uint8 copy of `image` with detection rows (and optional true (boxes, classes) in green) drawn."""
    from PIL import Image, ImageDraw

    rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)
    picture = Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)))
    draw = ImageDraw.Draw(picture)
    if truth is not None:
        for box in np.reshape(truth[0], (-1, 4)):
            draw.rectangle([float(v) for v in box], outline=(40, 220, 40))
    for row in np.reshape(rows, (-1, 6)):
        draw.rectangle([float(v) for v in row[:4]], outline=colour)
        draw.text((float(row[0]) + 1, float(row[1]) + 1), f"{class_names[int(row[5])]} {row[4]:.2f}", fill=colour)
    return np.asarray(picture)


def detection_result(name, image, rows, metadata, output_dir=None):
    """The result dict of one image (see `DetectionPredictor`); with `output_dir` the drawn image and JSON are
    written (atomically) and named in the result."""
    class_names = metadata["class_names"]
    detections = [{"box": [round(float(v), 2) for v in row[:4]], "class": class_names[int(row[5])],
                   "class_id": int(row[5]), "score": round(float(row[4]), 6)} for row in rows]
    result = {"input": str(name), "height": int(image.shape[0]), "width": int(image.shape[1]),
              "count": len(detections), "detections": detections}
    if output_dir is None:
        return result
    from PIL import Image

    from toolkit.atomic import atomic_path, write_json

    os.makedirs(output_dir, exist_ok=True)
    stem = name.replace("[", "_").replace("]", "") if name.startswith("array[") else \
        os.path.splitext(os.path.basename(name))[0]
    picture = os.path.join(output_dir, f"{stem}_boxes.png")
    with atomic_path(picture) as tmp:
        Image.fromarray(draw_boxes(image, rows, class_names)).save(tmp, format="PNG")
    coco = [{"image_id": str(name), "category_id": d["class_id"], "category": d["class"], "score": d["score"],
             "bbox": [d["box"][0], d["box"][1], round(d["box"][2] - d["box"][0], 2),
                      round(d["box"][3] - d["box"][1], 2)]} for d in detections]
    json_path = os.path.join(output_dir, f"{stem}.json")
    write_json(json_path, {**result, "coco": coco})
    result.update(image=picture, json=json_path)
    return result
