"""Semantic segmentation: a U-Net or DeepLabV3+ decoder on a backbone's
feature pyramid, per-pixel classes at the input resolution.

Model: image (float32 0..255) -> [gray->RGB] -> backbone preprocessing ->
backbone feature extractor (strides 2..32) -> decoder -> per-pixel softmax.

Images of another size than the model's are resized to it and the masks
resized back, or, for a model trained on tiles of larger images
(`inference.mode`), segmented window by window at their own scale
(`toolkit.tasks.segmentation.tiles`), in every runtime.

Serving: `serving_default` takes a batch of encoded images of any size and
returns, at each image's own size, the class-index `mask` and the
`probabilities` (padded to the largest image of the batch; `image_size`
gives each one's height and width); `serve_image` takes a uint8 batch and
answers at its size. The ONNX export is the Keras network (model size).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> recipe = load_recipe("recipes/segmentation/nuclei_unet.yaml")
>>> make_task(recipe).name
'segmentation'
"""

import os
from typing import Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from toolkit.config.schema import BackboneModelConfig, ExportConfig, ImageDataConfig, ImageRecipe, StrictModel
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError
from toolkit.tasks.image.task import ImageTask
from toolkit.tasks.segmentation.predictor import (
    SegmentationPredictor,
    colourise,
    confusion_matrix,
    inference_settings,
    palette,
    segmentation_metrics,
)
from toolkit.tasks.segmentation.sources import SEGMENTATION_SOURCES

# ----------------------------------------------------------------------- recipe


class SceneCounts(StrictModel):
    """How many fashion scenes each split gets."""

    train: PositiveInt = Field(20000, description="training canvases")
    validation: PositiveInt = Field(1000, description="validation canvases")
    test: PositiveInt = Field(2000, description="test canvases")


class ScenesConfig(StrictModel):
    """Generation of fashion scenes (source fashion_scenes)."""

    size: int = Field(64, ge=28, description="canvas height and width")
    items: tuple[PositiveInt, PositiveInt] = Field((2, 4), description="min and max items per canvas")
    threshold: int = Field(10, ge=0, le=254, description="item pixels brighter than this are labelled")
    max_overlap: Optional[NonNegativeInt] = Field(
        4, description="pixels two items' boxes may overlap (null: items occlude each other freely)"
    )
    count: SceneCounts = Field(default_factory=SceneCounts, description="canvases per split")


class TilesConfig(StrictModel):
    """Tiling of a large image (source nuclei)."""

    size: PositiveInt = Field(64, description="tile height and width")
    stride: PositiveInt = Field(32, description="step between training tiles (held-out tiles never overlap)")


class SegmentationDataConfig(ImageDataConfig):
    """Images with per-pixel class masks."""

    classes: Optional[list[str]] = Field(
        None, description="names of mask indices 0, 1, ... (required for folder; the source's otherwise)"
    )
    ignore_index: Optional[NonNegativeInt] = Field(
        None, description="mask value excluded from loss and metrics (e.g. 255 for void borders)"
    )
    scenes: ScenesConfig = Field(default_factory=ScenesConfig, description="fashion_scenes generation")
    tiles: TilesConfig = Field(default_factory=TilesConfig, description="nuclei tiling")


class DecoderConfig(StrictModel):
    """The dense-prediction decoder."""

    name: Literal["unet", "deeplab_v3_plus"] = Field("unet", description="decoder architecture")
    filters: list[PositiveInt] = Field(
        default_factory=lambda: [256, 128, 64, 32, 16],
        description="unet: widths from the deepest level up; deeplab_v3_plus: the first is the ASPP width",
    )
    rates: list[PositiveInt] = Field(
        default_factory=lambda: [6, 12, 18], description="deeplab_v3_plus: atrous rates (scale with feature size)"
    )
    low_level_filters: PositiveInt = Field(48, description="deeplab_v3_plus: low-level skip projection")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the deepest features")


class SegmentationModelConfig(BackboneModelConfig):
    """Backbone and decoder."""

    decoder: DecoderConfig = Field(default_factory=DecoderConfig, description="decoder")


class LossConfig(StrictModel):
    """Per-pixel loss: categorical cross-entropy, optionally plus a Dice term."""

    dice_weight: float = Field(0.0, ge=0.0, description="weight of the soft Dice loss added to cross-entropy")
    class_weights: Optional[list[PositiveFloat]] = Field(
        None, description="cross-entropy weight of each class (one per class)"
    )


class InferenceConfig(StrictModel):
    """How a trained model segments an image of another size than data.image_size (predict, serve, exports)."""

    mode: Literal["auto", "resize", "tile"] = Field(
        "auto", description="resize: the whole image to data.image_size and the mask back (models trained on whole "
                            "images); tile: overlapping windows of data.image_size at the image's own scale, blended "
                            "(models trained on tiles of larger images); auto: tile when the data source trains on "
                            "tiles (nuclei), resize otherwise")
    overlap: float = Field(0.25, ge=0.0, le=0.9, description="tile: share of each window that overlaps the next one")


class SegmentationExportConfig(ExportConfig):
    """Export settings; parity counts agreeing pixels."""

    min_agreement: float = Field(
        0.999, ge=0.0, le=1.0, description="share of pixels whose argmax must agree between export and Keras"
    )


class SegmentationRecipe(ImageRecipe):
    """Recipe of a semantic segmentation run."""

    task: Literal["segmentation"] = Field(..., description="task name")
    data: SegmentationDataConfig = Field(default_factory=SegmentationDataConfig, description="data")
    model: SegmentationModelConfig = Field(..., description="backbone and decoder")
    loss: LossConfig = Field(default_factory=LossConfig, description="loss")
    inference: InferenceConfig = Field(default_factory=InferenceConfig,
                                       description="how images of other sizes are segmented")
    export: SegmentationExportConfig = Field(default_factory=SegmentationExportConfig,
                                             description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        if self.loss.class_weights and self.data.classes and len(self.loss.class_weights) != len(self.data.classes):
            raise ValueError(
                f"loss.class_weights: {len(self.loss.class_weights)} weights for {len(self.data.classes)} classes"
            )
        if self.data.scenes.items[0] > self.data.scenes.items[1]:
            raise ValueError("data.scenes.items: the minimum is above the maximum")
        return self


# ------------------------------------------------------------------------ loss


def segmentation_loss(label_smoothing=0.0, dice_weight=0.0):
    """Per-pixel categorical cross-entropy plus an optional soft Dice term.

    Targets are one-hot masks (all-zero for ignored pixels); per-pixel sample
    weights carry class weights and ignore masks into the cross-entropy.
    """
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class SegmentationLoss(keras.losses.Loss):
        def __init__(self, label_smoothing=0.0, dice_weight=0.0, name="segmentation_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = label_smoothing
            self.dice_weight = dice_weight
            self.cross_entropy = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing,
                                                                      reduction=None)

        def call(self, y_true, y_pred):
            ops = keras.ops
            loss = self.cross_entropy(y_true, y_pred)
            if self.dice_weight:
                valid = ops.sum(y_true, axis=-1, keepdims=True)
                prediction = y_pred * valid
                axes = (0, 1, 2)
                intersection = ops.sum(prediction * y_true, axis=axes)
                total = ops.sum(prediction, axis=axes) + ops.sum(y_true, axis=axes)
                dice = 1.0 - ops.mean((2.0 * intersection + 1.0) / (total + 1.0))
                loss = loss + self.dice_weight * dice
            return loss

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing, "dice_weight": self.dice_weight}

    return SegmentationLoss(label_smoothing=label_smoothing, dice_weight=dice_weight)


# ------------------------------------------------------------------------ task


class SegmentationTask(ImageTask):
    """Semantic segmentation: data, model, metrics, evaluation and serving signatures."""

    name = "segmentation"
    predictor = SegmentationPredictor
    config_class = SegmentationRecipe
    sources = SEGMENTATION_SOURCES
    user_data_extras = ("class_names",)
    default_monitor = "val_mean_iou"

    def data_from_user(self, user):
        from toolkit.tasks.segmentation.sources import segmentation_data

        return segmentation_data(user, self.recipe.data, self.recipe.train.seed)

    @property
    def class_names(self):
        if self.metadata is not None:
            return list(self.metadata["class_names"])
        return list(self.recipe.data.classes or self.data.class_names)

    def split_dataset(self, split):
        from toolkit.tasks.segmentation.pipeline import segmentation_dataset

        return segmentation_dataset(split, self.recipe.data, self.recipe.data.on_error)

    def tfrecord_target(self, target):
        from toolkit.data.tfrecord import bytes_feature
        from toolkit.tasks.image.pipeline import encode_png

        mask = np.asarray(target)
        if mask.max(initial=0) > 255:
            raise DataError("to-tfrecord: a mask holds class indices above 255; PNG masks hold 0-255")
        return {"mask": bytes_feature(encode_png(mask.astype(np.uint8)[..., None]))}

    def build_inputs(self, split, training=False):
        from toolkit.tasks.image.pipeline import build_augmenter
        from toolkit.tasks.segmentation.pipeline import segmentation_batches

        dataset = self._unbatched(split)
        if dataset is None:
            return None
        augmenter = build_augmenter(self.recipe.data.augment, self.recipe.train.seed) if training else None
        weights = self.recipe.loss.class_weights
        if weights and len(weights) != len(self.class_names):
            raise DataError(f"loss.class_weights: {len(weights)} weights for {len(self.class_names)} classes")
        return segmentation_batches(
            dataset, self.recipe.train.batch_size, len(self.class_names), training=training,
            shuffle_buffer=self.recipe.data.shuffle_buffer, seed=self.recipe.train.seed, augmenter=augmenter,
            class_weights=weights, ignore_index=self.recipe.data.ignore_index,
        )

    # Model --------------------------------------------------------------
    def build_model(self):
        import keras

        from toolkit.backbones.build import feature_extractor
        from toolkit.tasks.segmentation.decoders import deeplab_v3_plus, unet

        inputs, x = self.build_stem()
        height, width = self.recipe.data.image_size
        shape = (height, width, x.shape[-1])
        extractor, strides = feature_extractor(self.backbone, shape)
        self.backbone_layer_name = extractor.name
        outputs = self.call_backbone(extractor, x)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        features = dict(zip(strides, outputs))
        decoder = self.recipe.model.decoder
        count = len(self.class_names)
        if decoder.name == "unet":
            probabilities = unet(features, x, count, filters=tuple(decoder.filters), dropout=decoder.dropout)
        else:
            features = {s: f for s, f in features.items() if s >= 4} or features
            probabilities = deeplab_v3_plus(features, x, count, filters=decoder.filters[0],
                                            rates=tuple(decoder.rates), low_level_filters=decoder.low_level_filters,
                                            dropout=decoder.dropout)
        return keras.Model(inputs, probabilities, name=f"{self.recipe.name or 'image'}_{decoder.name}")

    def build_losses(self):
        return segmentation_loss(self.recipe.train.label_smoothing, self.recipe.loss.dice_weight)

    def build_metrics(self):
        import keras

        return [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.MeanIoU(len(self.class_names), sparse_y_true=False, sparse_y_pred=False, name="mean_iou"),
        ]

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        metadata = self.base_metadata()
        metadata["palette"] = palette(len(self.class_names))
        metadata["ignore_index"] = self.recipe.data.ignore_index
        metadata["decoder"] = self.recipe.model.decoder.name
        inference = self.recipe.inference
        mode = inference.mode
        if mode == "auto":
            mode = "tile" if getattr(self.data, "tiled", False) else "resize"
        metadata["inference"] = {"mode": mode, "overlap": inference.overlap}
        return metadata

    # Evaluation ---------------------------------------------------------
    def predicted_masks(self, model, split, count=None):
        """Yields (images, true masks, predicted masks) batches of a split."""
        dataset = self._unbatched(split)
        if dataset is None:
            raise DataError(f"data: there is no {split} split to evaluate on")
        if count is not None:
            dataset = dataset.take(count)
        for images, masks in prefetched(dataset.batch(max(self.recipe.train.batch_size, 16)), 2):
            probabilities = np.asarray(model(images, training=False))
            yield images.numpy(), masks.numpy(), np.argmax(probabilities, axis=-1)

    def evaluate(self, model, split="test"):
        count = len(self.class_names)
        confusion = np.zeros((count, count), np.int64)
        images = 0
        for batch, truth, predicted in self.predicted_masks(model, split):
            confusion += confusion_matrix(truth, predicted, count, self.recipe.data.ignore_index)
            images += len(batch)
        metrics = {"examples": images}
        metrics.update(segmentation_metrics(confusion, self.class_names))
        return metrics

    def plot(self, model, metrics, run_dir):
        from toolkit.plots import plot_mask_grid

        rows = []
        colours = palette(len(self.class_names))
        for images, truth, predicted in self.predicted_masks(model, "test", count=8):
            rows.extend((image, colourise(np.asarray(t), colours), colourise(np.asarray(p), colours))
                        for image, t, p in zip(images, truth, predicted))
        plot_mask_grid(rows[:8], colours, self.class_names, os.path.join(run_dir, "predictions.png"))
        return ["predictions.png"]

    # Serving and export -------------------------------------------------
    def verification_samples(self, count):
        """Held-out test images; for a tiled model the last one is a 2x2 mosaic of test tiles, so verification
        also covers an image that several overlapping windows segment."""
        samples = super().verification_samples(count)
        if inference_settings(self.model_metadata())[0] == "tile" and len(samples) >= 4 and count > 1:
            first = samples[:4]
            if len({image.shape for image in first}) == 1:
                mosaic = np.concatenate([np.concatenate(first[:2], axis=1), np.concatenate(first[2:], axis=1)])
                samples = samples[:count - 1] + [mosaic]
        return samples

    def serving_signatures(self, model):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import decode_image

        channels = self.recipe.data.channels
        count = len(self.class_names)
        at_size = segmenter_tf(lambda images: model(images, training=False), self.model_metadata())

        def serve_bytes(image_bytes):
            # Explicit while loops: images differ in size, so each is decoded and
            # segmented at its own size (resized or tiled), then padded to the largest.
            total = tf.shape(image_bytes)[0]

            def segment(index, outputs, sizes):
                image = decode_image(image_bytes[index], channels)
                shape = tf.shape(image)[:2]
                return index + 1, outputs.write(index, at_size(image[None])[0]), sizes.write(index, shape)

            outputs = tf.TensorArray(tf.float32, size=total, infer_shape=False,
                                     element_shape=tf.TensorShape([None, None, count]))
            _, outputs, sizes = tf.while_loop(lambda index, *_: index < total, segment,
                                              (tf.constant(0), outputs, tf.TensorArray(tf.int32, size=total)))
            sizes = sizes.stack()
            height, width = tf.reduce_max(sizes[:, 0]), tf.reduce_max(sizes[:, 1])

            def pad(index, padded, masks):
                probabilities = outputs.read(index)
                shape = tf.shape(probabilities)
                padding = [[0, height - shape[0]], [0, width - shape[1]], [0, 0]]
                mask = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
                return (index + 1, padded.write(index, tf.pad(probabilities, padding)),
                        masks.write(index, tf.pad(mask, padding[:2], constant_values=-1)))

            _, padded, masks = tf.while_loop(
                lambda index, *_: index < total, pad,
                (tf.constant(0), tf.TensorArray(tf.float32, size=total), tf.TensorArray(tf.int32, size=total)),
            )
            return {"mask": masks.stack(), "probabilities": padded.stack(), "image_size": sizes}

        def serve_image(images):
            probabilities = at_size(images)
            return {"mask": tf.argmax(probabilities, axis=-1, output_type=tf.int32), "probabilities": probabilities}

        return {
            "serving_default": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
            "serve_image": (serve_image, [tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]),
        }


def segmenter_tf(model, metadata):
    """In-graph `segmenter` for serving signatures: float32/uint8 images [batch, H, W, C] -> probabilities
    [batch, H, W, classes] at their own size."""
    import tensorflow as tf

    size = tuple(metadata["image_size"])
    count = len(metadata["class_names"])
    mode, overlap = inference_settings(metadata)
    if mode == "tile":
        from toolkit.tasks.segmentation.tiles import tiled_probabilities_tf

        def segment(images):
            images = tf.cast(images, tf.float32)
            return tf.map_fn(lambda image: tiled_probabilities_tf(image, model, size, overlap, count), images,
                             fn_output_signature=tf.TensorSpec([None, None, count], tf.float32))

        return segment

    def segment(images):
        resized = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear")
        return tf.image.resize(model(resized), tf.shape(images)[1:3], method="bilinear")

    return segment


__all__ = ["SegmentationRecipe", "SegmentationTask", "segmentation_metrics", "confusion_matrix"]
