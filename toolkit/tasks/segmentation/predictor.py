"""Segmentation models deployed: class-index masks (and colour masks, overlays, class areas) at each image's
own size in every runtime, resized or window by window (`tiles.py`) as the model was trained; verification
outputs, the mean IoU of quantised exports and the model card's per-class table.

Example:

>>> import numpy as np
>>> from toolkit.tasks.segmentation.predictor import confusion_matrix
>>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
[[1, 0], [1, 1]]
"""

import os

import numpy as np

from toolkit.tasks.image.predictor import ImagePredictor, stack_batch
from toolkit.tasks.predictor import input_names, is_path


class SegmentationPredictor(ImagePredictor):
    """Semantic segmentation: a class per pixel."""

    name = "segmentation"
    agreement_unit = "argmax per pixel"
    quality_metric = "mean_iou"

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ("mean_iou", "pixel_accuracy", "foreground_iou", "dice", "examples")
        return {key: metrics[key] for key in keys if key in metrics}

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        return [
            "Per class (test pixels):",
            "",
            table(["class", "IoU", "precision", "recall", "pixels"], [
                [name, "n/a" if v["iou"] is None else number(v["iou"]), number(v["precision"]),
                 number(v["recall"]), v["pixels"]]
                for name, v in metrics.get("per_class", {}).items()
            ]),
            "",
            "`predictions.png` shows test images with their true and predicted masks.",
            "",
        ]

    @classmethod
    def card_limitations(cls, metadata):
        size = "x".join(str(s) for s in metadata.get("image_size", []))
        return [
            f"- Labels every pixel with one of {len(metadata.get('class_names', []))} classes "
            f"({', '.join(metadata.get('class_names', [])[:12])}), for images like the training data "
            f"({metadata.get('data_provenance', '')}).",
            (f"- Images of any size are segmented at their own scale in overlapping {size} windows (the model was "
             "trained on tiles of that size), blended; objects much larger than a window, or images at another "
             "scale than the training images, segment worse."
             if inference_settings(metadata)[0] == "tile" else
             f"- Images are resized to {size} for the network and the masks resized back; thin structures "
             "smaller than a few pixels at that size are lost."),
            "- IoU is measured at the model resolution on the test split named above.",
        ]

    @classmethod
    def reference_key(cls, endpoint):
        return "model_size" if endpoint == "onnx" else "original_size"

    @classmethod
    def quality(cls, outputs, targets, metadata):
        """Mean IoU of model-size outputs against the masks (resized to the model size, nearest)."""
        from toolkit.tasks.segmentation.pipeline import resize_mask

        size, classes = tuple(metadata["image_size"]), len(metadata["class_names"])
        confusion = sum(confusion_matrix(np.asarray(resize_mask(mask, size)), np.argmax(output, axis=-1), classes,
                                         metadata.get("ignore_index"))
                        for output, mask in zip(outputs, targets))
        return float(segmentation_metrics(confusion, metadata["class_names"])["mean_iou"])

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        if endpoint == "onnx":  # the network itself, at the model size
            return [np.asarray(model(resize_bilinear(image, size)[None], training=False))[0] for image in samples]
        segment = segmenter(lambda batch: np.asarray(model(batch, training=False)), metadata, tensorflow=True)
        return [segment(image) for image in samples]

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import png_bytes

        answer = artifact.signatures["serving_default"](image_bytes=tf.constant(png_bytes(samples)))
        padded, sizes = answer["probabilities"].numpy(), answer["image_size"].numpy()
        by_bytes = [padded[i, :h, :w] for i, (h, w) in enumerate(sizes)]
        by_image = [artifact.signatures["serve_image"](images=tf.constant(image[None]))["probabilities"].numpy()[0]
                    for image in samples]
        return {"serving_default": by_bytes, "serve_image": by_image}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        batch = stack_batch(samples, size, lambda image: resize_bilinear(image, size))
        name = artifact.get_inputs()[0].name
        return {"onnx": list(artifact.run(None, {name: batch})[0])}

    # Prediction: one result per input: its class-index mask (an int64 array, in memory) and class areas; with
    # `output_dir`, a colour mask PNG, an overlay PNG and a JSON of the areas are written there instead and the
    # result names them (`toolkit predict` writes into ./predictions).
    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        if all(is_path(item) for item in inputs):
            encoded = []
            for path in inputs:
                with open(path, "rb") as f:
                    encoded.append(f.read())
            answer = handle.signatures["serving_default"](image_bytes=tf.constant(encoded))
            mask, sizes = answer["mask"].numpy(), answer["image_size"].numpy()
            masks = [mask[i, :h, :w] for i, (h, w) in enumerate(sizes)]
        else:
            masks = [handle.signatures["serve_image"](images=tf.constant(image[None]))["mask"].numpy()[0]
                     for image in images]
        return cls._mask_results(inputs, images, masks, metadata, output_dir)

    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        segment = segmenter(lambda batch: handle.predict_on_batch(batch), metadata, tensorflow=True)
        return cls._mask_results(inputs, images, [np.argmax(segment(image), -1) for image in images], metadata,
                                 output_dir)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=False)
        name = handle.get_inputs()[0].name
        segment = segmenter(lambda batch: handle.run(None, {name: batch})[0], metadata)
        return cls._mask_results(inputs, images, [np.argmax(segment(image), -1) for image in images], metadata,
                                 output_dir)

    @staticmethod
    def _mask_results(inputs, images, masks, metadata, output_dir):
        return [mask_result(name, image, np.asarray(mask, np.int64), metadata, output_dir)
                for name, image, mask in zip(input_names(inputs), images, masks)]

    # Explanation: a class's score (logit) summed over the pixels predicted as it (the whole image when none) -
    @classmethod
    def explain_targets(cls, outputs, metadata, class_index=None, image_size=None, **options):
        probabilities = np.asarray(outputs, np.float32)
        predicted = np.argmax(probabilities, axis=-1)
        counts = np.bincount(predicted.ravel(), minlength=probabilities.shape[-1])
        if class_index is None:  # every class present, the largest first
            indices = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i]]
        else:
            indices = [int(class_index)]
        targets = []
        for index in indices:
            pixels = predicted == index
            region = pixels if pixels.any() else np.ones_like(pixels)
            targets.append({"class_index": index, "label": metadata["class_names"][index],
                            "score": round(float(probabilities[..., index][region].mean()), 6),
                            "area": round(float(pixels.mean()), 6), "mask": region.astype(np.float32)})
        return targets

    @classmethod
    def explain_score(cls, outputs, target, metadata):
        from keras import ops

        mask = ops.convert_to_tensor(target["mask"][None], dtype=outputs.dtype)
        return ops.sum(outputs[..., target["class_index"]] * mask, axis=(1, 2))

    @classmethod
    def format_prediction(cls, result):
        areas = sorted(result["areas"].items(), key=lambda item: -item[1]["fraction"])
        shares = ", ".join(f"{name} {entry['fraction']:.1%}" for name, entry in areas if entry["pixels"])
        how = f" ({result['inference']})" if result.get("inference") else ""
        files = f" -> {result['mask']}, {result['overlay']}" if "overlay" in result else ""
        return f"{result['input']}: {shares}{how}{files}"


def confusion_matrix(truth, predicted, num_classes, ignore_index=None):
    """Confusion matrix (rows: truth, columns: prediction) of integer masks."""
    truth = np.asarray(truth, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    keep = (truth >= 0) & (truth < num_classes)
    if ignore_index is not None:
        keep &= truth != ignore_index
    truth, predicted = truth[keep], predicted[keep]
    return np.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def segmentation_metrics(confusion, class_names):
    """Mean IoU, per-class IoU, pixel accuracy (and Dice/F1 for two classes) from a confusion matrix.

    Classes absent from both truth and prediction are left out of the mean.
    """
    confusion = np.asarray(confusion, np.float64)
    true_positive = np.diag(confusion)
    truth = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    union = truth + predicted - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(truth > 0, true_positive / truth, 0.0)
    metrics = {
        "pixels": int(confusion.sum()),
        "mean_iou": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0,
        "pixel_accuracy": float(true_positive.sum() / max(confusion.sum(), 1)),
    }
    if len(class_names) == 2:
        tp, fp, fn = true_positive[1], predicted[1] - true_positive[1], truth[1] - true_positive[1]
        metrics["foreground_iou"] = float(tp / (tp + fp + fn)) if tp + fp + fn else 0.0
        metrics["dice"] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
    metrics["per_class"] = {
        name: {
            "iou": None if np.isnan(iou[i]) else round(float(iou[i]), 6),
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "pixels": int(truth[i]),
        }
        for i, name in enumerate(class_names)
    }
    metrics["class_names"] = list(class_names)
    metrics["confusion_matrix"] = confusion.astype(np.int64).tolist()
    return metrics


def palette(count):
    """Distinct RGB colours per class (the Pascal VOC colour map; class 0 black)."""
    colours = []
    for index in range(count):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append([red, green, blue])
    return colours


def colourise(mask, colours):
    """Maps a class-index mask to an RGB uint8 image."""
    table = np.asarray(colours, np.uint8)
    return table[np.clip(mask, 0, len(table) - 1)]


def overlay(image, mask, colours, alpha=0.5):
    """Blends the colour mask over the image (background, class 0, left clear)."""
    rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)
    coloured = colourise(mask, colours).astype(np.float32)
    blend = rgb.astype(np.float32) * (1 - alpha) + coloured * alpha
    return np.where((mask > 0)[..., None], blend, rgb.astype(np.float32)).astype(np.uint8)


def inference_settings(metadata):
    """(mode, overlap) of a trained model: "tile" or "resize" (runs written before tiling existed resize)."""
    inference = metadata.get("inference") or {}
    return inference.get("mode", "resize"), float(inference.get("overlap", 0.25))


def describe_inference(image_shape, metadata):
    """One line on how an image of `image_shape` is segmented by the model."""
    size = tuple(metadata["image_size"])
    mode, overlap = inference_settings(metadata)
    if mode == "tile":
        from toolkit.tasks.segmentation.tiles import describe

        return describe(image_shape, size, overlap)
    if tuple(image_shape[:2]) == size:
        return f"whole image at the model size {size[0]}x{size[1]}"
    return (f"resized: {image_shape[0]}x{image_shape[1]} -> {size[0]}x{size[1]} for the network, the mask resized "
            "back")


def segmenter(predict_batch, metadata, tensorflow=False):
    """A function uint8 image (H, W, C) -> float32 class probabilities (H, W, classes) at the image's size.

    Args:
        predict_batch: callable. float32 [n, height, width, channels] at the model size -> probabilities.
        metadata: dict. The model's metadata (image size, inference mode).
        tensorflow: bool. Resize with TensorFlow (the Keras reference) instead of NumPy; both agree to float
            rounding.
    """
    from toolkit.data.image_io import resize_bilinear

    size = tuple(metadata["image_size"])
    mode, overlap = inference_settings(metadata)
    if mode == "tile":
        from toolkit.tasks.segmentation.tiles import tiled_probabilities

        return lambda image: tiled_probabilities(image, predict_batch, size, overlap)

    def resize(array, height_width):
        if tensorflow:
            import tensorflow as tf

            return tf.image.resize(np.asarray(array, np.float32), height_width, method="bilinear").numpy()
        return resize_bilinear(array, height_width)

    def segment(image):
        probabilities = np.asarray(predict_batch(resize(image, size)[None]), np.float32)[0]
        return probabilities if image.shape[:2] == size else resize(probabilities, image.shape[:2])

    return segment


def mask_result(name, image, mask, metadata, output_dir=None):
    """The result of one segmented image: {"input", "height", "width", "inference", "areas", "mask"}; "mask" is
    the class-index array, or with `output_dir` the path of the colour mask PNG beside "overlay" and "json"
    (`<stem>_mask.png`, `<stem>_overlay.png`, `<stem>.json`, written atomically)."""
    counts = np.bincount(mask.ravel(), minlength=len(metadata["class_names"]))
    total = int(counts.sum())
    areas = {
        label: {"pixels": int(counts[i]), "fraction": round(float(counts[i]) / total, 6)}
        for i, label in enumerate(metadata["class_names"])
    }
    result = {"input": str(name), "height": int(mask.shape[0]), "width": int(mask.shape[1]),
              "inference": describe_inference(image.shape, metadata), "mask": mask, "areas": areas}
    if output_dir is None:
        return result
    from PIL import Image

    from toolkit.atomic import atomic_path, write_json

    os.makedirs(output_dir, exist_ok=True)
    if name.startswith("array["):
        stem = name.replace("[", "_").replace("]", "")
    else:
        stem = os.path.splitext(os.path.basename(name))[0]
    colours = metadata.get("palette") or palette(len(metadata["class_names"]))
    paths = {kind: os.path.join(output_dir, f"{stem}_{kind}.png") for kind in ("mask", "overlay")}
    for kind, array in (("mask", colourise(mask, colours)), ("overlay", overlay(image, mask, colours))):
        with atomic_path(paths[kind]) as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
    result.update(mask=paths["mask"], overlay=paths["overlay"])
    json_path = os.path.join(output_dir, f"{stem}.json")
    write_json(json_path, result)
    result["json"] = json_path
    return result
