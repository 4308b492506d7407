"""Image classification models deployed: ranked labels from images in every runtime, verification outputs,
the accuracy of quantised exports, and the model card's per-class table.

Example:

>>> import numpy as np
>>> from toolkit.tasks.image_classification.predictor import postprocess
>>> postprocess(np.array([[0.2, 0.8]]), ["cat", "dog"], 1, ["a.png"])[0]["top_k"][0]["label"]
'dog'
"""

import numpy as np

from toolkit.tasks.image.predictor import ImagePredictor, stack_batch
from toolkit.tasks.predictor import input_names, is_path


class ImageClassificationPredictor(ImagePredictor):
    """Image classification: ranked labels per image."""

    name = "image_classification"
    quality_metric = "accuracy"

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ("accuracy", "top5_accuracy", "macro_f1", "loss", "examples")
        return {key: metrics[key] for key in keys if key in metrics}

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        return [
            "Per class:",
            "",
            table(["class", "precision", "recall", "F1", "support"], [
                [name, number(v["precision"]), number(v["recall"]), number(v["f1"]), v["support"]]
                for name, v in metrics.get("per_class", {}).items()
            ]),
            "",
        ]

    @classmethod
    def card_limitations(cls, metadata):
        classes = len(metadata.get("class_names", []))
        size = "x".join(str(s) for s in metadata.get("image_size", []))
        return [
            f"- Intended for classifying images like those of the training data ({metadata.get('data_provenance', '')}) "
            f"into the {classes} classes above. It always answers with one of these classes, also for images of "
            "anything else; use the probabilities to reject unsure answers.",
            "- Accuracy is measured on the test split named above; images from another source (camera, lighting, "
            "framing, resolution) can score much lower. Check the per-class table: errors concentrate on similar "
            "classes.",
            f"- Inputs are resized to {size} without keeping the aspect ratio, as in training.",
        ]

    @classmethod
    def quality(cls, outputs, targets, metadata):
        return float(np.mean(np.argmax(np.asarray(outputs), axis=-1) == np.asarray(targets).reshape(-1)))

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        from toolkit.tasks.image.pipeline import resize_image

        size = tuple(metadata["image_size"])
        return np.concatenate([np.asarray(model(resize_image(image, size)[None], training=False)) for image in samples])

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import png_bytes

        encoded = tf.constant(png_bytes(samples))
        by_bytes = artifact.signatures["serving_default"](image_bytes=encoded)["probabilities"].numpy()
        by_image = np.concatenate([
            artifact.signatures["serve_image"](images=tf.constant(image[None]))["probabilities"].numpy()
            for image in samples
        ])
        return {"serving_default": by_bytes, "serve_image": by_image}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        batch = np.stack([resize_bilinear(image, size) for image in samples])
        name = artifact.get_inputs()[0].name
        return {"onnx": artifact.run(None, {name: batch})[0]}

    # Prediction: image files and/or uint8 arrays (H, W, C) -> ranked labels -------------------------
    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        probabilities = _saved_model_probabilities(handle, inputs, metadata["channels"])
        return cls._ranked(probabilities, metadata, inputs, top_k)

    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        from toolkit.tasks.image.pipeline import resize_image

        size = tuple(metadata["image_size"])
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        batch = stack_batch(images, size, lambda image: resize_image(image, size).numpy())
        return cls._ranked(handle.predict_on_batch(batch), metadata, inputs, top_k)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        from toolkit.data.image_io import resize_bilinear

        size = tuple(metadata["image_size"])
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=False)
        batch = stack_batch(images, size, lambda image: resize_bilinear(image, size))
        return cls._ranked(handle.run(None, {handle.get_inputs()[0].name: batch})[0], metadata, inputs, top_k)

    @staticmethod
    def _ranked(probabilities, metadata, inputs, top_k):
        return postprocess(probabilities, metadata["class_names"], top_k or metadata.get("top_k", 5),
                           input_names(inputs))

    # Explanation: the score (logit) of the top-1 (or asked) class --------------------------------------
    @classmethod
    def explain_targets(cls, outputs, metadata, class_index=None, image_size=None, **options):
        probabilities = np.asarray(outputs, np.float64).reshape(-1)
        index = int(np.argmax(probabilities)) if class_index is None else int(class_index)
        return [{"class_index": index, "label": metadata["class_names"][index],
                 "score": round(float(probabilities[index]), 6)}]

    @classmethod
    def explain_score(cls, outputs, target, metadata):
        return outputs[:, target["class_index"]]

    @classmethod
    def format_prediction(cls, result):
        ranked = ", ".join(f"{item['label']} {item['probability']:.3f}" for item in result["top_k"])
        return f"{result['input']}: {ranked}"


def _saved_model_probabilities(loaded, inputs, channels):
    import tensorflow as tf

    from toolkit.tasks.image.pipeline import load_image_files

    if all(is_path(item) for item in inputs):
        load_image_files(inputs, channels)  # one clear error per unreadable file, before serving
        encoded = []
        for path in inputs:
            with open(path, "rb") as f:
                encoded.append(f.read())
        outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
        return outputs["probabilities"].numpy()
    images = ImageClassificationPredictor.read_inputs(inputs, channels, with_tensorflow=True)
    serve = loaded.signatures["serve_image"]
    if len({image.shape for image in images}) == 1:  # one call for a batch of equal sizes
        return serve(images=tf.constant(np.stack(images)))["probabilities"].numpy()
    return np.concatenate([serve(images=tf.constant(image[None]))["probabilities"].numpy() for image in images])


def postprocess(probabilities, class_names, top_k, inputs):
    """Turns probabilities into ranked label lists, one dict per input."""
    probabilities = np.asarray(probabilities)
    top_k = max(1, min(top_k, len(class_names)))
    candidates = np.argpartition(-probabilities, top_k - 1, axis=-1)[:, :top_k]
    results = []
    for item, row, best in zip(inputs, probabilities, candidates):
        order = best[np.argsort(-row[best], kind="stable")]
        results.append({
            "input": str(item),
            "top_k": [
                {"index": int(i), "label": class_names[i], "probability": round(float(row[i]), 6)} for i in order
            ],
        })
    return results
