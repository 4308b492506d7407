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

from toolkit.classification_metrics import classification_metrics
from toolkit.config.schema import ClassifierModelConfig, ImageDataConfig, ImageRecipe
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError
from toolkit.tasks.image.sources import CLASSIFICATION_SOURCES
from toolkit.tasks.image.task import ImageTask
from toolkit.tasks.image_classification.predictor import ImageClassificationPredictor


class ImageClassificationRecipe(ImageRecipe):
    """Recipe of an image classification run."""

    task: Literal["image_classification"] = Field(..., description="task name")
    data: ImageDataConfig = Field(default_factory=ImageDataConfig, description="data")
    model: ClassifierModelConfig = Field(..., description="backbone and head")


class ImageClassificationTask(ImageTask):
    """Image classification: data, model, metrics, evaluation and serving signatures."""

    name = "image_classification"
    predictor = ImageClassificationPredictor
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
        for images, batch_labels in prefetched(dataset.batch(max(self.recipe.train.batch_size, 64)), 2):
            probabilities.append(np.asarray(model(images, training=False)))
            labels.append(batch_labels.numpy())
        probabilities = np.concatenate(probabilities)
        labels = np.concatenate(labels)
        return classification_metrics(probabilities, labels, self.class_names)


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
