"""What every image task shares: loading its data source, the model stem
(grayscale->RGB, the backbone's own rescaling, the backbone), verification
samples and TFRecords. Reading user images for prediction is in `predictor.py`.

Image classification and segmentation subclass `ImageTask`; the stem is
the one place that knows how pixels in 0..255 reach a backbone.
"""

import os

import numpy as np

from toolkit.errors import DataError, RecipeError
from toolkit.tasks.base import Task


class ImageTask(Task):
    """Base of tasks whose input is one image."""

    input_kind = "image"

    def __init__(self, recipe):
        super().__init__(recipe)
        self._data = None
        self._datasets = {}
        self._reports = {}
        self.backbone = None
        self.metadata = None  # set when working on a trained model (export, evaluate)

    def check_references(self):
        from toolkit.references import check_backbone

        check_backbone("model.backbone", self.recipe.model.backbone, self.recipe.model.weights)

    # Data ---------------------------------------------------------------
    @property
    def data(self):
        """The loaded `LabelledData` (splits, class names, provenance)."""
        if self._data is None:
            self._data = self.read_data()
            if self._data.splits["train"].is_empty():
                raise DataError("data: the train split is empty")
        return self._data

    @property
    def class_names(self):
        if self.metadata is not None:
            return list(self.metadata["class_names"])
        return list(self.data.class_names)

    def split_dataset(self, split):
        """Returns (unbatched tf.data.Dataset, SplitReport) of one loaded split."""
        raise NotImplementedError

    def _unbatched(self, split):
        if split not in self._datasets:
            if split not in self.data.splits:
                return None
            self._datasets[split], self._reports[split] = self.split_dataset(self.data.splits[split])
        return self._datasets[split]

    def data_report(self):
        return {split: report.to_dict() for split, report in self._reports.items()}

    def build_preprocessor(self):
        from toolkit.tasks.image.pipeline import adapt_channels, resize_image

        size, channels = tuple(self.recipe.data.image_size), self.recipe.data.channels
        return lambda images: resize_image(adapt_channels(images, channels), size)

    # Model --------------------------------------------------------------
    def build_stem(self):
        """Builds the backbone and the model input up to the backbone.

        Returns:
            (inputs, preprocessed tensor fed to the backbone). Sets
            `self.backbone`.
        """
        import keras

        from toolkit.backbones.build import build_backbone
        from toolkit.backbones.registry import BACKBONES

        data, config = self.recipe.data, self.recipe.model
        height, width = data.image_size
        channels = data.channels
        wanted = channels
        if config.backbone in BACKBONES:
            wanted = BACKBONES.get(config.backbone).channels or channels
        self.backbone = backbone = build_backbone(config.backbone, config.weights, (height, width, wanted))
        backbone_channels = backbone.channels or channels
        inputs = keras.Input((height, width, channels), name="image")
        x = inputs
        if channels == 1 and backbone_channels == 3:
            x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
        elif channels != backbone_channels:
            raise RecipeError(
                f"model.backbone {config.backbone} takes {backbone_channels}-channel images but data.channels is "
                f"{channels}; set data.channels: {backbone_channels}"
            )
        if backbone.scale != 1.0 or backbone.offset != 0.0:
            x = keras.layers.Rescaling(backbone.scale, backbone.offset, name="backbone_preprocessing")(x)
        return inputs, x

    def call_backbone(self, layer, x):
        """Calls the backbone (or its feature extractor) on x.

        A pretrained backbone keeps BatchNorm in inference mode, frozen or
        not (Keras transfer-learning guide); a randomly initialised one
        trains it.
        """
        return layer(x, training=False) if self.backbone.pretrained else layer(x)

    def backbone_layer(self, model):
        name = self.backbone_layer_name or self.metadata["backbone"]["layer"]
        return model.get_layer(name)

    backbone_layer_name = None

    def base_metadata(self):
        """Metadata every image task stores with its model and exports."""
        data = self.recipe.data
        backbone = self.backbone.metadata() if self.backbone else None
        if backbone and self.backbone_layer_name:
            backbone["layer"] = self.backbone_layer_name
            backbone["backbone_name"] = self.backbone.model.name
        return {
            "task": self.name,
            "input": self.input_kind,
            "class_names": self.class_names,
            "image_size": list(data.image_size),
            "channels": data.channels,
            "backbone": backbone,
            "data_provenance": self.data.provenance,
        }

    # Verification -------------------------------------------------------
    def onnx_signature(self):
        import tensorflow as tf

        height, width = self.recipe.data.image_size
        return [tf.TensorSpec([None, height, width, self.recipe.data.channels], tf.float32, name="image")]

    tflite_supported = True

    def representative_inputs(self, count):
        """Up to `count` training images as the network takes them (float32 [1, H, W, C]), for int8 calibration."""
        from toolkit.tasks.image.pipeline import resize_image

        size = tuple(self.recipe.data.image_size)
        return [np.asarray(resize_image(image, size), np.float32)[None]
                for image, _ in self.split_examples("train", count, targets=False)]

    tfrecord_note = None  # images (PNG) with their targets

    def tfrecord_examples(self, split, skipped):
        from toolkit.data.tfrecord import bytes_feature, serialize
        from toolkit.tasks.image.pipeline import encode_png

        for image, target in self.split_examples(split, skipped=skipped):
            yield serialize({"image": bytes_feature(encode_png(np.asarray(image, np.uint8))),
                             **self.tfrecord_target(target)})

    def tfrecord_target(self, target):
        """{feature name: tf.train.Feature} of one example's target."""
        raise NotImplementedError

    def tfrecord_metadata(self):
        return {"class_names": list(self.class_names), "channels": self.recipe.data.channels}

    def split_examples(self, split_name, limit=None, targets=True, skipped=None):
        """Yields (uint8 image (H, W, C), label or mask) of a split as its source holds them (unreadable files
        skipped, and appended as "file: reason" to the list `skipped` when one is given), up to `limit`; with
        `targets=False` the target is None and is not read."""
        import itertools

        from toolkit.tasks.image.pipeline import adapt_channels

        split, channels = self.data.splits[split_name], self.recipe.data.channels
        masks = getattr(split, "masks", None) is not None or getattr(split, "mask_paths", None) is not None
        if split.images is not None:
            values = (split.masks if masks else split.labels) if targets else itertools.repeat(None)
            pairs = ((np.asarray(adapt_channels(image, channels)), None if target is None else np.asarray(target))
                     for image, target in zip(split.images, values))
        elif split.paths is not None:
            pairs = self._file_examples(split, channels, masks if targets else None, skipped)
        else:
            pairs = ((np.asarray(adapt_channels(x, channels)), np.asarray(y) if targets else None)
                     for x, y in split.dataset)
        yield from itertools.islice(pairs, limit)

    @staticmethod
    def _file_examples(split, channels, masks, skipped=None):
        """(image, target) of a file split; `masks` True: mask files, False: labels, None: no target. Unreadable
        files are skipped (and their errors appended to `skipped`, a list, when given)."""
        from toolkit.data.image_io import read_mask
        from toolkit.tasks.image.pipeline import load_image_files

        for index, path in enumerate(split.paths):
            try:
                image = load_image_files([path], channels)[0]
                target = None if masks is None else read_mask(split.mask_paths[index]) if masks else \
                    split.labels[index]
            except DataError as error:
                if skipped is not None:
                    skipped.append(str(error))
                continue
            yield np.asarray(image), None if target is None else np.asarray(target)

    def quality_samples(self, count):
        """(uint8 test images, their labels or masks) for the quantised artifacts' quality delta."""
        pairs = list(self.split_examples("test", count))
        return [x for x, _ in pairs], [y for _, y in pairs]

    def verification_samples(self, count):
        return [image for image, _ in self.split_examples("test", count, targets=False)]

    def save_samples(self, samples, directory):
        from PIL import Image

        os.makedirs(directory, exist_ok=True)
        for index, image in enumerate(samples):
            array = image[..., 0] if image.shape[-1] == 1 else image
            Image.fromarray(array).save(os.path.join(directory, f"{index:03d}.png"))
