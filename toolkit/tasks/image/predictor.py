"""What every image task's predictor shares: reading user images (files or uint8 arrays) and the samples
`toolkit verify` saved (PNG).

Example:

>>> import numpy as np
>>> from toolkit.tasks.image.predictor import as_image
>>> as_image(np.zeros((4, 4), np.uint8), 1).shape
(4, 4, 1)
"""

import os

import numpy as np

from toolkit.errors import DataError
from toolkit.tasks.predictor import Predictor, is_path


class ImagePredictor(Predictor):
    """Base of the predictors of tasks whose input is one image."""

    @classmethod
    def load_samples(cls, directory, metadata):
        from toolkit.data.image_io import read_image

        names = sorted(name for name in os.listdir(directory) if name.endswith(".png"))
        return [read_image(os.path.join(directory, name), metadata["channels"]) for name in names]

    # Prediction helpers -------------------------------------------------
    @classmethod
    def read_inputs(cls, inputs, channels, with_tensorflow):
        """Reads user inputs (paths or uint8 arrays) into uint8 (H, W, C) arrays."""
        if with_tensorflow:
            from toolkit.tasks.image.pipeline import load_image_files

            return [load_image_files([item], channels)[0] if is_path(item) else as_image(item, channels)
                    for item in inputs]
        from toolkit.data.image_io import read_image

        return [read_image(item, channels) if is_path(item) else as_image(item, channels) for item in inputs]

    @classmethod
    def explain_inputs(cls, inputs, metadata):
        """(uint8 images as read, float32 batch resized to the model size as `predict_keras` does)."""
        from toolkit.tasks.image.pipeline import resize_image

        size = tuple(metadata["image_size"])
        images = cls.read_inputs(inputs, metadata["channels"], with_tensorflow=True)
        return images, stack_batch(images, size, lambda image: resize_image(image, size).numpy())


def as_image(item, channels):
    """Checks a user array: uint8 (H, W, channels) (or (H, W) for one channel)."""
    image = np.asarray(item)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] != channels or image.dtype != np.uint8:
        raise DataError(
            f"an image array must be uint8 of shape (height, width, {channels}); got {image.dtype} {image.shape}"
        )
    return image


def stack_batch(images, size, resize):
    """Stacks uint8 images into one float32 batch, resizing only those that need it."""
    batch = np.empty((len(images), size[0], size[1], images[0].shape[-1]), np.float32)
    for index, image in enumerate(images):
        batch[index] = image if image.shape[:2] == tuple(size) else resize(image)
    return batch
