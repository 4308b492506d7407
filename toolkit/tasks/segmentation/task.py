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
from toolkit.errors import DataError
from toolkit.tasks.image.task import ImageTask, input_names, is_path, stack_batch
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


# --------------------------------------------------------------------- metrics


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


# ------------------------------------------------------------------------ task


class SegmentationTask(ImageTask):
    """Semantic segmentation: data, model, metrics, serving and prediction."""

    name = "segmentation"
    config_class = SegmentationRecipe
    sources = SEGMENTATION_SOURCES
    user_data_extras = ("class_names",)
    default_monitor = "val_mean_iou"
    agreement_unit = "argmax per pixel"

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
        for images, masks in dataset.batch(max(self.recipe.train.batch_size, 16)).prefetch(2):
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

    @classmethod
    def reference_key(cls, endpoint):
        return "model_size" if endpoint == "onnx" else "original_size"

    quality_metric = "mean_iou"

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

    @classmethod
    def format_prediction(cls, result):
        areas = sorted(result["areas"].items(), key=lambda item: -item[1]["fraction"])
        shares = ", ".join(f"{name} {entry['fraction']:.1%}" for name, entry in areas if entry["pixels"])
        how = f" ({result['inference']})" if result.get("inference") else ""
        files = f" -> {result['mask']}, {result['overlay']}" if "overlay" in result else ""
        return f"{result['input']}: {shares}{how}{files}"


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


__all__ = ["SegmentationRecipe", "SegmentationTask", "segmentation_metrics", "confusion_matrix"]
