"""Object detection: an anchor-free centre-based head (`model.py`) on any registry backbone's feature pyramid,
COCO metrics (pycocotools), and decoding + NMS inside every export.

Model: image (float32 0..255) -> [gray->RGB] -> backbone preprocessing -> backbone features (strides >= the
head's) -> top-down fusion -> head -> raw `[batch, cells, classes + 5]`; training uses the raw outputs, every
other path `model.detect` (decode, per-class NMS, padded).

Serving: `serving_default` takes encoded images of any size and returns `boxes` (xyxy in that image's pixels),
`classes`, `class_names`, `scores` and `count` (padded to `detection.max_detections`), with `image_size`;
`serve_image` takes a uint8 batch. ONNX and TFLite hold the network with decoding and NMS (float32 images at
the model size in, boxes in model pixels out; TFLite with batch 1).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks import make_task
>>> make_task(load_recipe("recipes/object_detection/fashion_detection.yaml")).name
'object_detection'
"""

import os
from typing import Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from toolkit.config.schema import BackboneModelConfig, ExportConfig, ImageDataConfig, ImageRecipe, StrictModel
from toolkit.data.prefetch import prefetched
from toolkit.errors import DataError
from toolkit.tasks.image.task import ImageTask
from toolkit.tasks.object_detection.predictor import DetectionPredictor, draw_boxes, rows_of
from toolkit.tasks.object_detection.sources import DETECTION_SOURCES

# ----------------------------------------------------------------------------------------- recipe


class SceneCounts(StrictModel):
    """How many scenes each split gets."""

    train: PositiveInt = Field(6000, description="training canvases")
    validation: PositiveInt = Field(500, description="validation canvases")
    test: PositiveInt = Field(1000, description="test canvases")


class DetectionScenesConfig(StrictModel):
    """Generation of fashion detection scenes (source fashion_detection)."""

    size: int = Field(128, ge=32, description="canvas height and width")
    items: tuple[PositiveInt, PositiveInt] = Field((1, 6), description="min and max items per canvas")
    scale: tuple[float, float] = Field((1.0, 3.0), description="min and max item scale (1 = 28 pixels)")
    max_overlap: float = Field(0.3, ge=0.0, le=1.0, description="most share of either box that two items' boxes "
                                                                 "may have in common (later items occlude)")
    clutter: int = Field(3, ge=0, description="up to this many unlabelled item fragments per canvas")
    threshold: int = Field(10, ge=0, le=254, description="item pixels brighter than this bound its box")
    count: SceneCounts = Field(default_factory=SceneCounts, description="canvases per split")


class DetectionDataConfig(ImageDataConfig):
    """Detection data: a source of images with boxes."""

    source: str = Field("fashion_detection", description="data source (toolkit list sources object_detection)")
    image_size: tuple[PositiveInt, PositiveInt] = Field((128, 128), description="model input height and width")
    channels: Literal[1, 3] = Field(1, description="1 = grayscale, 3 = RGB")
    classes: Optional[list[str]] = Field(
        None, description="class names (voc/coco: only these, others are unknown; yolo: the names of indices)")
    max_boxes: Optional[PositiveInt] = Field(
        None, description="boxes kept per training image (default: the most any image of the data has)")
    scenes: DetectionScenesConfig = Field(default_factory=DetectionScenesConfig,
                                          description="fashion_detection scenes")


class HeadConfig(StrictModel):
    """The anchor-free detection head."""

    stride: Literal[4, 8, 16, 32] = Field(8, description="output stride: one cell per stride x stride pixels")
    filters: PositiveInt = Field(64, description="width of the feature fusion and the head")
    convs: int = Field(2, ge=0, le=4, description="3x3 convolutions in the head")


class DetectionModelConfig(BackboneModelConfig):
    """Backbone and detection head."""

    head: HeadConfig = Field(default_factory=HeadConfig, description="detection head")


class DetectionLossConfig(StrictModel):
    """Target assignment and loss weights."""

    center_radius: float = Field(1.5, gt=0.0, description="a cell is a positive within this many strides of a "
                                                          "box centre")
    box_weight: float = Field(2.0, ge=0.0, description="weight of the GIoU box loss")
    focal_alpha: float = Field(0.25, gt=0.0, lt=1.0, description="focal loss alpha")
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss gamma")


class DecodingConfig(StrictModel):
    """Decoding and NMS, inside the model's exports."""

    score_threshold: float = Field(0.05, ge=0.0, lt=1.0, description="boxes scored below this are dropped "
                                                                      "(inside the exports; low for mAP)")
    predict_score_threshold: float = Field(0.3, ge=0.0, lt=1.0,
                                           description="toolkit predict and serve show boxes scored at least this")
    iou_threshold: float = Field(0.5, gt=0.0, le=1.0, description="per-class NMS IoU threshold")
    max_detections: PositiveInt = Field(100, description="boxes per image (outputs are padded to it)")
    pre_nms: PositiveInt = Field(200, description="best cells that enter NMS")


class DetectionExportConfig(ExportConfig):
    """Export settings; parity matches detections after NMS."""

    min_agreement: float = Field(0.99, ge=0.0, le=1.0, description="share of detections an export must match "
                                                                   "(same class, IoU >= 0.99)")
    quantized_min_agreement: float = Field(
        0.5, ge=0.0, le=1.0, description="the same for quantised TFLite (its test mAP delta is the real check)")


class DetectionRecipe(ImageRecipe):
    """Recipe of an object detection run."""

    task: Literal["object_detection"] = Field(..., description="task name")
    data: DetectionDataConfig = Field(default_factory=DetectionDataConfig, description="data")
    model: DetectionModelConfig = Field(..., description="backbone and head")
    loss: DetectionLossConfig = Field(default_factory=DetectionLossConfig, description="loss")
    detection: DecodingConfig = Field(default_factory=DecodingConfig, description="decoding and NMS")
    export: DetectionExportConfig = Field(default_factory=DetectionExportConfig, description="export and "
                                                                                              "verification")

    @model_validator(mode="after")
    def _check(self):
        if self.data.scenes.items[0] > self.data.scenes.items[1]:
            raise ValueError("data.scenes.items: the minimum is above the maximum")
        if not 0 < self.data.scenes.scale[0] <= self.data.scenes.scale[1]:
            raise ValueError("data.scenes.scale: give 0 < min <= max")
        stride = self.model.head.stride
        if any(side % stride for side in self.data.image_size):
            raise ValueError(f"data.image_size {list(self.data.image_size)}: each side must be a multiple of "
                             f"model.head.stride ({stride})")
        return self


# ------------------------------------------------------------------------------------------- task


class DetectionTask(ImageTask):
    """Object detection: data, model, COCO evaluation, plots and serving signatures."""

    name = "object_detection"
    predictor = DetectionPredictor
    config_class = DetectionRecipe
    sources = DETECTION_SOURCES
    user_data_extras = ("class_names",)
    path_source = "yolo"
    tfrecord_note = "its boxes are not written to TFRecord (read COCO, VOC or YOLO files directly)"

    def data_from_user(self, user):
        from toolkit.tasks.object_detection.sources import detection_data

        return detection_data(user, self.recipe.data, self.recipe.train.seed)

    @property
    def data(self):
        data = ImageTask.data.fget(self)  # read once; an empty train split is an error there
        if "test" not in data.splits:
            raise DataError(f"data: source {self.recipe.data.source!r} has no test split; set data.test_fraction > 0")
        return data

    @property
    def max_boxes(self):
        if self.recipe.data.max_boxes:
            return self.recipe.data.max_boxes
        counts = [len(c) for split in self.data.splits.values() if split.classes is not None for c in split.classes]
        return max(counts + [1]) if counts else 100

    def split_dataset(self, split):
        from toolkit.tasks.object_detection.pipeline import detection_dataset

        return detection_dataset(split, self.recipe.data, self.max_boxes)

    def data_report(self):
        report = super().data_report()
        for name, entry in report.items():
            split = self.data.splits.get(name)
            if split is not None:
                entry["skipped_boxes"] = split.skipped_boxes
                if split.classes is not None:
                    entry["boxes"] = int(sum(len(c) for c in split.classes))
        return report

    def build_inputs(self, split, training=False):
        from toolkit.tasks.image.pipeline import build_augmenter
        from toolkit.tasks.object_detection.pipeline import detection_batches

        dataset = self._unbatched(split)
        if dataset is None:
            return None
        augmenter = build_augmenter(self.recipe.data.augment, self.recipe.train.seed, bounding_box_format="xyxy") \
            if training else None
        return detection_batches(dataset, self.recipe.train.batch_size, training=training,
                                 shuffle_buffer=self.recipe.data.shuffle_buffer, seed=self.recipe.train.seed,
                                 augmenter=augmenter)

    # Model ---------------------------------------------------------------------------------------
    def build_model(self):
        import keras

        from toolkit.backbones.build import feature_extractor
        from toolkit.tasks.object_detection.model import build_head

        inputs, x = self.build_stem()
        height, width = self.recipe.data.image_size
        head = self.recipe.model.head
        extractor, strides = feature_extractor(self.backbone, (height, width, x.shape[-1]),
                                               strides=(4, 8, 16, 32), extra_strides=())
        self.backbone_layer_name = extractor.name
        outputs = self.call_backbone(extractor, x)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        raw = build_head(dict(zip(strides, outputs)), head.stride, len(self.class_names), filters=head.filters,
                         convs=head.convs)
        return keras.Model(inputs, raw, name=f"{self.recipe.name or 'image'}_detector")

    def build_losses(self):
        from toolkit.tasks.object_detection.model import detection_loss_class

        loss = self.recipe.loss
        return detection_loss_class()(
            image_size=tuple(self.recipe.data.image_size), stride=self.recipe.model.head.stride,
            num_classes=len(self.class_names), center_radius=loss.center_radius, alpha=loss.focal_alpha,
            gamma=loss.focal_gamma, box_weight=loss.box_weight)

    def build_metrics(self):
        return []

    def model_metadata(self):
        if self.metadata is not None:
            return self.metadata
        metadata = self.base_metadata()
        decoding = self.recipe.detection
        metadata["detection"] = {"stride": self.recipe.model.head.stride, "box_format": "xyxy",
                                 **decoding.model_dump()}
        return metadata

    # Evaluation ----------------------------------------------------------------------------------
    def detections(self, model, split, count=None):
        """Yields (images, true rows [B, max_boxes, 5], detection rows per image) batches, in model pixels."""
        from toolkit.tasks.object_detection.model import detect

        dataset = self._unbatched(split)
        if dataset is None:
            raise DataError(f"data: there is no {split} split to evaluate on")
        if count is not None:
            dataset = dataset.take(count)
        metadata = self.model_metadata()
        for images, targets in prefetched(dataset.batch(max(self.recipe.train.batch_size, 16)), 2):
            answer = detect(model(images, training=False), metadata)
            yield images.numpy(), targets.numpy(), rows_of(*(answer[k].numpy() for k in ("boxes", "scores",
                                                                                            "classes", "count")))

    def evaluate(self, model, split="test"):
        from toolkit.tasks.object_detection.metrics import coco_metrics

        truth, found = [], []
        for _, targets, rows in self.detections(model, split):
            for target, row in zip(targets, rows):
                valid = target[:, 4] >= 0
                truth.append((target[valid, :4], target[valid, 4].astype(np.int64)))
                found.append(row)
        metrics = {"examples": len(truth), "objects": int(sum(len(t[1]) for t in truth))}
        metrics.update(coco_metrics(truth, found, self.class_names, tuple(self.recipe.data.image_size)))
        return metrics

    def plot(self, model, metrics, run_dir):
        from toolkit.atomic import atomic_path
        from toolkit.plots import _pyplot
        from toolkit.tasks.object_detection.metrics import plot_precision_recall

        names = []
        if metrics.get("precision_recall"):
            plot_precision_recall(metrics["precision_recall"], os.path.join(run_dir, "precision_recall.png"))
            names.append("precision_recall.png")
        pictures = []
        for images, targets, rows in self.detections(model, "test", count=8):
            for image, target, row in zip(images, targets, rows):
                valid = target[:, 4] >= 0
                shown = row[row[:, 4] >= self.recipe.detection.predict_score_threshold]
                pictures.append(draw_boxes(np.clip(image, 0, 255).astype(np.uint8), shown, self.class_names,
                                           truth=(target[valid, :4], target[valid, 4])))
        plt = _pyplot()
        figure, axes = plt.subplots(2, 4, figsize=(12, 6.4), squeeze=False)
        for axis, picture in zip(axes.ravel(), pictures):
            axis.imshow(picture)
        for axis in axes.ravel():
            axis.set_xticks([])
            axis.set_yticks([])
        figure.suptitle("test images: true boxes green, predicted red (score >= "
                        f"{self.recipe.detection.predict_score_threshold:g})")
        figure.tight_layout()
        with atomic_path(os.path.join(run_dir, "predictions.png")) as tmp:
            figure.savefig(tmp, format="png", dpi=80)
        plt.close(figure)
        return names + ["predictions.png"]

    # Samples -------------------------------------------------------------------------------------
    def split_examples(self, split_name, limit=None, targets=True, skipped=None):
        """Yields (uint8 image as stored, (boxes xyxy, classes, (height, width)) or None) of a split."""
        import itertools

        from toolkit.tasks.image.pipeline import adapt_channels, load_image_files

        split, channels = self.data.splits[split_name], self.recipe.data.channels

        def pairs():
            if split.dataset is not None:
                for image, boxes, classes in split.dataset.as_numpy_iterator():
                    image = np.asarray(adapt_channels(image, channels))
                    yield image, (boxes, classes, image.shape[:2]) if targets else None
                return
            for index in range(len(split)):
                if split.images is not None:
                    image = np.asarray(adapt_channels(split.images[index], channels))
                else:
                    try:
                        image = np.asarray(load_image_files([split.paths[index]], channels)[0])
                    except DataError as error:
                        if skipped is not None:
                            skipped.append(str(error))
                        continue
                yield image, (split.boxes[index], split.classes[index], image.shape[:2]) if targets else None

        yield from itertools.islice(pairs(), limit)

    # Serving and export --------------------------------------------------------------------------
    def onnx_model(self, model):
        from toolkit.tasks.object_detection.model import Detector

        return Detector(model, self.model_metadata())

    def tflite_signature(self):
        import tensorflow as tf

        height, width = self.recipe.data.image_size
        return [tf.TensorSpec([1, height, width, self.recipe.data.channels], tf.float32, name="image")]

    def serving_signatures(self, model):
        import tensorflow as tf

        from toolkit.tasks.image.pipeline import decode_image
        from toolkit.tasks.object_detection.model import detect

        metadata = self.model_metadata()
        size = tuple(metadata["image_size"])
        channels, keep = self.recipe.data.channels, metadata["detection"]["max_detections"]
        names = tf.constant(list(self.class_names) + [""])

        def at_size(images):
            """uint8/float images [batch, H, W, C] of one size -> detections in their pixels."""
            shape = tf.cast(tf.shape(images)[1:3], tf.float32)
            answer = detect(model(tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear"),
                                  training=False), metadata)
            scale = tf.stack([shape[1] / size[1], shape[0] / size[0]] * 2)
            answer["boxes"] = answer["boxes"] * scale
            answer["class_names"] = tf.gather(names, tf.where(answer["classes"] < 0, len(self.class_names),
                                                              answer["classes"]))
            return answer

        def serve_bytes(image_bytes):
            def one(data):
                image = decode_image(data, channels)
                answer = at_size(image[None])
                return ({key: value[0] for key, value in answer.items()}, tf.shape(image)[:2])

            signature = ({"boxes": tf.TensorSpec([keep, 4], tf.float32), "scores": tf.TensorSpec([keep], tf.float32),
                          "classes": tf.TensorSpec([keep], tf.int32), "count": tf.TensorSpec([], tf.int32),
                          "class_names": tf.TensorSpec([keep], tf.string)}, tf.TensorSpec([2], tf.int32))
            answer, sizes = tf.map_fn(one, image_bytes, fn_output_signature=signature)
            return {**answer, "image_size": sizes}

        def serve_image(images):
            return at_size(images)

        return {
            "serving_default": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
            "serve_image": (serve_image, [tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]),
        }


__all__ = ["DetectionRecipe", "DetectionTask"]
