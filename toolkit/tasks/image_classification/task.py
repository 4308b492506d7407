"""Image classification on a pretrained backbone.

Model: image (float32 0..255) -> [gray->RGB] -> backbone preprocessing ->
backbone -> global average pooling -> dropout/dense head -> softmax.

Serving: the SavedModel's `serving_default` takes a batch of encoded image
bytes (JPEG/PNG/GIF/BMP, any size), `serve_image` a uint8 image batch; both
resize inside and return probabilities, the top-k indices, probabilities and
class names. The ONNX export is the Keras model (float32 images at the model
size, dynamic batch).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> recipe = load_recipe("recipes/image_classification/fashion_mnist.yaml")
>>> make_task(recipe).name
'image_classification'
"""

import os
from typing import Literal

import numpy as np
from pydantic import Field

from toolkit.config.schema import ClassifierModelConfig, ImageDataConfig, ImageRecipe
from toolkit.errors import DataError
from toolkit.tasks.image.sources import CLASSIFICATION_SOURCES
from toolkit.tasks.image.task import ImageTask, input_names, is_path, stack_batch


class ImageClassificationRecipe(ImageRecipe):
    """Recipe of an image classification run."""

    task: Literal["image_classification"] = Field(..., description="task name")
    data: ImageDataConfig = Field(default_factory=ImageDataConfig, description="data")
    model: ClassifierModelConfig = Field(..., description="backbone and head")


class ImageClassificationTask(ImageTask):
    """Image classification: data, model, metrics, serving and prediction."""

    name = "image_classification"
    config_class = ImageClassificationRecipe
    sources = CLASSIFICATION_SOURCES
    user_data_extras = ("class_names",)
    default_monitor = "val_accuracy"

    def data_from_user(self, user):
        from toolkit.tasks.image.sources import classification_data

        return classification_data(user, self.recipe.data, self.recipe.train.seed)

    def split_dataset(self, split):
        from toolkit.tasks.image.pipeline import image_dataset

        return image_dataset(split, self.recipe.data, self.recipe.data.on_error)

    def tfrecord_target(self, target):
        from toolkit.data.tfrecord import int64_feature

        return {"label": int64_feature(target)}

    def build_inputs(self, split, training=False):
        from toolkit.tasks.image.pipeline import batched, build_augmenter

        dataset = self._unbatched(split)
        if dataset is None:
            return None
        augmenter = build_augmenter(self.recipe.data.augment, self.recipe.train.seed) if training else None
        return batched(
            dataset, self.recipe.train.batch_size, num_classes=len(self.class_names), training=training,
            shuffle_buffer=self.recipe.data.shuffle_buffer, seed=self.recipe.train.seed, augmenter=augmenter,
        )

    # Model --------------------------------------------------------------
    def build_model(self):
        import keras

        inputs, x = self.build_stem()
        features = self.call_backbone(self.backbone.model, x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        head = self.recipe.model.head
        for index, units in enumerate(head.hidden_units):
            if head.dropout:
                x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{index}")(x)
            x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{index}")(x)
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
        outputs = keras.layers.Dense(
            len(self.class_names), activation="softmax", dtype="float32", name="predictions"
        )(x)
        self.backbone_layer_name = self.backbone.model.name
        return keras.Model(inputs, outputs, name=f"{self.recipe.name or 'image'}_classifier")

    def build_losses(self):
        import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=self.recipe.train.label_smoothing)

    def build_metrics(self):
        import keras

        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if len(self.class_names) > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
        return metrics

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        metadata = self.base_metadata()
        metadata["top_k"] = min(self.recipe.export.top_k, len(self.class_names))
        return metadata

    # Evaluation ---------------------------------------------------------
    def evaluate(self, model, split="test"):
        dataset = self._unbatched(split)
        if dataset is None:
            raise DataError(f"data: there is no {split} split to evaluate on")
        probabilities, labels = [], []
        for images, batch_labels in dataset.batch(max(self.recipe.train.batch_size, 64)).prefetch(2):
            probabilities.append(np.asarray(model(images, training=False)))
            labels.append(batch_labels.numpy())
        probabilities = np.concatenate(probabilities)
        labels = np.concatenate(labels)
        return classification_metrics(probabilities, labels, self.class_names)

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

    def plot(self, model, metrics, run_dir):
        from toolkit.plots import plot_confusion_matrix

        path = os.path.join(run_dir, "confusion_matrix.png")
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), self.class_names, path)
        return ["confusion_matrix.png"]

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import decode_image, resize_image

        height, width = self.recipe.data.image_size
        channels = self.recipe.data.channels
        names = tf.constant(self.class_names)
        top_k = min(self.recipe.export.top_k, len(self.class_names))

        def outputs(images):
            probabilities = model(images, training=False)
            top = tf.math.top_k(probabilities, k=top_k)
            return {
                "probabilities": probabilities,
                "top_k_indices": top.indices,
                "top_k_probabilities": top.values,
                "top_k_classes": tf.gather(names, top.indices),
            }

        def serve_bytes(image_bytes):
            images = tf.map_fn(
                lambda data: resize_image(decode_image(data, channels), (height, width)),
                image_bytes,
                fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
            )
            return outputs(images)

        def serve_image(images):
            return outputs(resize_image(images, (height, width)))

        return {
            "serving_default": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
            "serve_image": (serve_image, [tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]),
        }

    quality_metric = "accuracy"

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
    images = ImageClassificationTask.read_inputs(inputs, channels, with_tensorflow=True)
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


def classification_metrics(probabilities, labels, class_names):
    """Accuracy, top-5, loss, per-class precision/recall/F1 and the confusion matrix.

    Args:
        probabilities: float array (N, K).
        labels: int array (N,).
        class_names: list of K str.
    """
    count = len(class_names)
    predicted = np.argmax(probabilities, axis=-1)
    confusion = np.bincount(labels * count + predicted, minlength=count * count).reshape(count, count)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    metrics = {
        "examples": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "loss": float(-np.mean(np.log(picked))),
    }
    if count > 5:
        top5 = np.argsort(-probabilities, axis=-1)[:, :5]
        metrics["top5_accuracy"] = float(np.mean(np.any(top5 == labels[:, None], axis=-1)))
    metrics["macro_precision"] = float(np.mean(precision))
    metrics["macro_recall"] = float(np.mean(recall))
    metrics["macro_f1"] = float(np.mean(f1))
    metrics["per_class"] = {
        name: {
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "f1": round(float(f1[i]), 6),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    metrics["class_names"] = list(class_names)
    metrics["confusion_matrix"] = confusion.tolist()
    return metrics
