"""Data sources: where examples come from, split into train/validation/test.

Sources are registered by name (`data.source` in a recipe). They return
lists of files or in-memory arrays plus class names; the per-modality
pipelines in `toolkit.tasks.image.pipeline` turn those into `tf.data` datasets.
Nothing here imports TensorFlow at module level.

Example:

>>> from toolkit.tasks.image.sources import CLASSIFICATION_SOURCES
>>> "folder" in CLASSIFICATION_SOURCES and "fashion_mnist" in CLASSIFICATION_SOURCES
True
"""

import dataclasses
import gzip
import os
from typing import Optional

import numpy as np

from toolkit.data import user_data
from toolkit.data.tfds import prepare_tfds, tfds_count, tfds_split_names
from toolkit.errors import DataError
from toolkit.registry import Registry

CLASSIFICATION_SOURCES = Registry("image classification data source", DataError)
CLASSIFICATION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class Split:
    """One split of a dataset.

    Exactly one of `images` (uint8 array N x H x W x C), `paths` (list of
    image files) or `dataset` (an unbatched tf.data.Dataset) is set. Targets
    are `labels` (classification) or `masks` / `mask_paths` (segmentation).
    """

    labels: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None
    paths: Optional[list] = None
    dataset: object = None
    count: Optional[int] = None
    masks: Optional[np.ndarray] = None
    mask_paths: Optional[list] = None

    def __len__(self):
        if self.count is not None:
            return self.count
        for items in (self.labels, self.images, self.paths):
            if items is not None:
                return len(items)
        raise TypeError("the size of this split is known only after reading it")

    def is_empty(self):
        """True when the split is known to have no examples."""
        try:
            return len(self) == 0
        except TypeError:
            return False

    def take(self, indices):
        """Returns the split restricted to `indices` (arrays and files only)."""
        indices = np.asarray(indices, dtype=np.int64)
        pick = lambda items: None if items is None else (  # noqa: E731
            items[indices] if isinstance(items, np.ndarray) else [items[i] for i in indices])
        return Split(labels=pick(self.labels), images=pick(self.images), paths=pick(self.paths),
                     masks=pick(self.masks), mask_paths=pick(self.mask_paths))


@dataclasses.dataclass
class LabelledData:
    """What an image source returns: splits, class names and provenance; `tiled` when the examples are tiles cut
    from larger images (a segmentation model then predicts large images window by window)."""

    splits: dict
    class_names: list
    provenance: str
    tiled: bool = False


def split_indices(labels, fraction, seed):
    """Stratified split of indices: (kept, held_out), held_out ~ fraction per class.

    Args:
        labels: array of int. One label per example.
        fraction: float. Share of each class to hold out.
        seed: int. Seed of the permutation.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = int(round(len(members) * fraction))
        if fraction > 0 and len(members) > 1:
            count = max(1, min(count, len(members) - 1))
        held.extend(members[:count].tolist())
    held = np.sort(np.asarray(held, dtype=np.int64))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held


def _strata(split):
    """Labels to stratify by (classification), or one stratum."""
    return split.labels if split.labels is not None else np.zeros(len(split), np.int64)


def finish_image_splits(splits, config, seed):
    """Fills missing validation/test splits by seeded stratified splits, then applies limits."""
    if "test" not in splits:
        if config.test_fraction <= 0:
            raise DataError(f"data: source {config.source!r} has no test split; set data.test_fraction > 0")
        kept, held = split_indices(_strata(splits["train"]), config.test_fraction, seed)
        splits["train"], splits["test"] = splits["train"].take(kept), splits["train"].take(held)
    if "validation" not in splits and config.validation_fraction > 0:
        kept, held = split_indices(_strata(splits["train"]), config.validation_fraction, seed + 1)
        splits["train"], splits["validation"] = splits["train"].take(kept), splits["train"].take(held)
    for name, split in list(splits.items()):
        limit = getattr(config.limit, name, None)
        if limit is not None and split.dataset is None and len(split) > limit:
            rng = np.random.RandomState(seed + 2)
            splits[name] = split.take(np.sort(rng.permutation(len(split))[:limit]))
        elif limit is not None and split.dataset is not None:
            split.dataset = split.dataset.take(limit)
            split.count = min(limit, split.count) if split.count else None
    return splits


# ---------------------------------------------------------------------- folders


def _image_files(directory):
    files = []
    for root, _, names in os.walk(directory):
        for name in names:
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                files.append(os.path.join(root, name))
    return sorted(files)


def _class_dirs(directory):
    return sorted(
        entry for entry in os.listdir(directory)
        if os.path.isdir(os.path.join(directory, entry)) and not entry.startswith(".")
    )


def _read_class_folders(directory, class_names=None):
    found = _class_dirs(directory)
    if class_names is None:
        class_names = found
        if len(class_names) < 2:
            raise DataError(
                f"data.path {directory}: found {len(class_names)} class folder(s) "
                f"({', '.join(class_names) or 'none'}); image classification needs at least 2 "
                "(one subfolder of images per class)"
            )
    else:
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise DataError(
                f"{directory}: class folder(s) {', '.join(unknown)} do not exist in the train split "
                f"({', '.join(class_names)}); every split must use the train split's classes"
            )
    paths, labels = [], []
    for index, name in enumerate(class_names):
        folder = os.path.join(directory, name)
        if not os.path.isdir(folder):
            continue
        files = _image_files(folder)
        if not files:
            raise DataError(
                f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove it"
            )
        paths.extend(files)
        labels.extend([index] * len(files))
    return Split(labels=np.asarray(labels, dtype=np.int64), paths=paths), class_names


@CLASSIFICATION_SOURCES.register("folder")
def load_folder(config, seed):
    """Class-per-subfolder images: `path/<class>/*.jpg`, or with split folders
    `path/train/<class>/...`, `path/test/<class>/...` and optionally
    `path/validation/` (or `val/`)."""
    root = config.path
    if not root:
        raise DataError("data.path: required for data.source: folder (a directory with one subfolder per class)")
    if not os.path.isdir(root):
        raise DataError(f"data.path {root} does not exist or is not a directory")
    entries = set(_class_dirs(root))
    splits = {}
    if "train" in entries:
        splits["train"], class_names = _read_class_folders(os.path.join(root, "train"))
        for split, candidates in (("validation", ("validation", "val")), ("test", ("test",))):
            for candidate in candidates:
                if candidate in entries:
                    splits[split], _ = _read_class_folders(os.path.join(root, candidate), class_names)
                    break
    else:
        splits["train"], class_names = _read_class_folders(root)
    return LabelledData(
        finish_image_splits(splits, config, seed), class_names, f"image folder {root}"
    )


# ----------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_idx(path):
    """Reads an IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read IDX file ({error}); re-download or reinstall it")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise DataError(f"{path}: truncated IDX file ({len(data) - offset} of {expected} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


@CLASSIFICATION_SOURCES.register("fashion_mnist")
def load_fashion_mnist(config, seed):
    """Fashion-MNIST (60k train / 10k test, 28x28 gray, 10 classes) from the
    Debian package `dataset-fashion-mnist` (or `data.path` with the
    `*-ubyte.gz` files), else `keras.datasets.fashion_mnist` (download)."""
    directory = config.path or FASHION_MNIST_DIR
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    files = [_find(directory, stem) for stem in stems]
    if all(files):
        x_train, y_train, x_test, y_test = (read_idx(path) for path in files)
        provenance = (
            f"Fashion-MNIST (Zalando Research, MIT licence) from {directory}"
            + (" (Debian package dataset-fashion-mnist)" if directory == FASHION_MNIST_DIR else "")
        )
    elif config.download:
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        except Exception as error:  # noqa: BLE001 - keras raises a bare Exception offline
            raise DataError(
                f"Fashion-MNIST files are not in {directory} and the download failed ({str(error)[:120]}); "
                "install them with: sudo apt-get install dataset-fashion-mnist, or set data.path to a "
                "directory with the *-ubyte.gz files"
            )
        provenance = "Fashion-MNIST (Zalando Research, MIT licence) via keras.datasets (downloaded)"
    else:
        raise DataError(
            f"Fashion-MNIST files are not in {directory} and data.download is false; install them with: "
            "sudo apt-get install dataset-fashion-mnist, or set data.path"
        )
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"Fashion-MNIST in {directory}: image and label counts differ")
    splits = {
        "train": Split(labels=y_train.astype(np.int64), images=x_train[..., None]),
        "test": Split(labels=y_test.astype(np.int64), images=x_test[..., None]),
    }
    return LabelledData(finish_image_splits(splits, config, seed), list(FASHION_MNIST_CLASSES), provenance)


# -------------------------------------------------------------------------- TFDS


@CLASSIFICATION_SOURCES.register("tfrecord")
def load_tfrecord(config, seed):
    """Sharded TFRecords written by `toolkit data to-tfrecord` (`data.path`: their directory), streamed."""
    splits, meta = load_image_tfrecords(config, "image_classification", "label")
    return LabelledData(finish_image_splits(splits, config, seed), list(meta["class_names"]), meta["provenance"])


def load_image_tfrecords(config, task, target):
    """{split: Split(dataset streaming the shards, count)} and the metadata of a TFRecord directory of images
    with a `target`: "label" (int64) or "mask" (PNG of class indices)."""
    import tensorflow as tf

    from toolkit.data.tfrecord import read_meta, stream_splits

    meta = read_meta(config.path, task)
    channels = int(meta["channels"])
    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            target: tf.io.FixedLenFeature([], tf.string if target == "mask" else tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_png(example["image"], channels=channels)
        if target == "mask":
            return image, tf.io.decode_png(example["mask"], channels=1)[..., 0]
        return image, example["label"]

    return {split: Split(dataset=dataset, count=count)
            for split, (dataset, count) in stream_splits(config.path, meta, parse).items()}, meta


@CLASSIFICATION_SOURCES.register("tfds")
def load_tfds(config, seed):
    """A TensorFlow Datasets image classification dataset (`data.tfds_name`),
    read from `data.tfds_data_dir` or downloaded when `data.download`."""
    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. tf_flowers)")
    builder, info = prepare_tfds(name, config)
    class_names = list(info.features["label"].names)
    splits = {}
    for split, spec in tfds_split_names(info, config).items():
        dataset = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False)
        splits[split] = Split(dataset=dataset, count=tfds_count(info, spec))
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'})"
    return LabelledData(finish_image_splits(splits, config, seed), class_names, provenance)


# --------------------------------------------------- data= (Python datasets)


def image_array(image, size, channels, where):
    """A checked user image at `size` and `channels`, converted as the file pipeline does (uint8)."""
    import tensorflow as tf

    from toolkit.tasks.image.pipeline import adapt_channels, resize_image

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise DataError(f"{where}: an image must be HxW or HxWxC with 1, 3 or 4 channels; got shape {image.shape}")
    if image.dtype.kind == "f" and image.size and float(image.max()) <= 1.0 and float(image.max()) > 0:
        raise DataError(f"{where}: float pixels in [0, 1]; give 0-255 values "
                        "(as keras.utils.image_dataset_from_directory and TFDS do)")
    resized = resize_image(adapt_channels(tf.convert_to_tensor(image), channels), size).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def label_index(label, where):
    label = np.asarray(label)
    if label.ndim == 1 and label.size > 1:  # one-hot / categorical
        return int(np.argmax(label))
    if label.size != 1 or label.dtype.kind not in "iub":
        raise DataError(f"{where}: a label must be an int class index or a one-hot vector; got {label!r:.60}")
    return int(label.reshape(()))


def classification_data(user, config, seed):
    """`LabelledData` of (image, label) datasets, resized to `data.image_size`."""
    splits, largest = {}, -1
    for name in user.splits:
        images, labels = [], []
        for index, example in enumerate(user.examples(name, batched_rank=4)):
            where = f"data['{name}'] example {index}"
            image, label = user_data.pair(example, name, index, "(image, label)")
            images.append(image_array(image, tuple(config.image_size), config.channels, where))
            labels.append(label_index(label, where))
            if labels[-1] < 0:
                raise DataError(f"{where}: negative label {labels[-1]}")
        if not images:
            raise DataError(f"data['{name}'] has no examples")
        largest = max(largest, max(labels))
        splits[name] = Split(labels=np.asarray(labels, np.int64), images=np.stack(images))
    class_names = user_data.class_names(user, largest + 1, "data")
    return LabelledData(finish_image_splits(splits, config, seed), class_names, "Python datasets given to toolkit.train")
