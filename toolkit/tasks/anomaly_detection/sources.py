"""Data sources of anomaly detection: every source gives normal-only training data and labelled (0 normal,
1 anomaly) validation and test data.

Images: `fashion_mnist` (one class normal, the nine others anomalies: the usual one-vs-rest protocol; the
validation split holds held-out training normals and, when asked, other classes' training images) and `folder`
(`train/<normal>/`, `test/<normal>/`, `test/<anything else>/`, optionally `validation/`; the MVTec AD layout).
Time series (`series.py`): `synthetic_series` (NAB-style, deterministic from the seed), `csv` (NAB layout, label
column or windows file) and `ucr` (a UCR set from the sktime wheel, one class normal).

Example:

>>> from toolkit.tasks.anomaly_detection.sources import ANOMALY_SOURCES
>>> sorted(ANOMALY_SOURCES.names())
['csv', 'fashion_mnist', 'folder', 'synthetic_series', 'ucr']
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from toolkit.errors import DataError
from toolkit.registry import Registry

ANOMALY_SOURCES = Registry("anomaly detection data source", DataError)


@dataclasses.dataclass
class AnomalySplit:
    """One split. `inputs`: uint8 images (N, H, W, C), or float32 windows / instances (N, steps, channels);
    `labels`: 0/1 per input. Long series (synthetic, csv) keep `series` (a list of `series.Series`): their
    validation and test inputs are cut into windows by the task, and scored per step."""

    inputs: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    series: Optional[list] = None
    names: Optional[list] = None  # what each input is (file, or the Fashion-MNIST class), for plots

    def __len__(self):
        return len(self.series) if self.series is not None else len(self.inputs)


@dataclasses.dataclass
class AnomalyData:
    """What a source returns."""

    splits: dict
    provenance: str
    normal: str  # what is normal, in words
    skipped: dict = dataclasses.field(default_factory=dict)  # split -> ["file:line: reason", ...]
    channels: int = 1
    value_names: Optional[list] = None


def _limit(inputs, labels, names, limit, seed):
    if limit is None or len(inputs) <= limit:
        return inputs, labels, names
    keep = np.sort(np.random.RandomState(seed).permutation(len(inputs))[:limit])
    return inputs[keep], labels[keep], None if names is None else [names[i] for i in keep]


def _validation_indices(count, fraction, seed):
    """(kept, held-out) sorted indices of `count` normal inputs, `fraction` held out at random (at least one each)."""
    if fraction <= 0 or count < 2:
        raise DataError("data.validation_fraction: anomaly detection calibrates its threshold on validation normals; "
                        "set data.validation_fraction > 0 or give a validation/ folder")
    order = np.random.RandomState(seed + 1).permutation(count)
    held = min(count - 1, max(1, int(round(count * fraction))))
    return np.sort(order[held:]), np.sort(order[:held])


def _cut_validation(normals, fraction, seed):
    """(train, validation) of normal inputs (`_validation_indices`)."""
    kept, held = _validation_indices(len(normals), fraction, seed)
    return normals[kept], normals[held]


# ------------------------------------------------------------------ images


@ANOMALY_SOURCES.register("fashion_mnist")
def load_fashion_mnist_one_class(config, seed):
    """Fashion-MNIST one-vs-rest: `data.normal_class` is normal (train: its 6,000 training images less the
    validation share), test: all 10,000 test images (1,000 normal)."""
    from toolkit.tasks.image.sources import FASHION_MNIST_CLASSES, load_fashion_mnist

    names = FASHION_MNIST_CLASSES
    wanted = config.normal_class
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.isdigit()):
        index = int(wanted)
        if not 0 <= index < len(names):
            raise DataError(f"data.normal_class: {index} is not a Fashion-MNIST class index (0-9)")
    elif wanted in names:
        index = names.index(wanted)
    else:
        from toolkit.registry import did_you_mean

        raise DataError(f"data.normal_class: {wanted!r} is not a Fashion-MNIST class{did_you_mean(str(wanted), names)}"
                        f" (classes: {', '.join(names)})")
    plain = config.model_copy(update={"validation_fraction": 0.0, "test_fraction": 0.0,
                                      "limit": config.limit.model_copy(update={"train": None, "test": None,
                                                                                "validation": None})})
    source = load_fashion_mnist(plain, seed)
    train, test = source.splits["train"], source.splits["test"]
    normals = train.images[train.labels == index]
    normals, val_normals = _cut_validation(normals, config.validation_fraction, seed)
    val_inputs, val_labels = val_normals, np.zeros(len(val_normals), np.uint8)
    val_names = [names[index]] * len(val_normals)
    extra = config.validation_anomalies
    if extra:
        others = np.flatnonzero(train.labels != index)
        pick = np.sort(np.random.RandomState(seed + 3).choice(others, min(extra, len(others)), replace=False))
        val_inputs = np.concatenate([val_inputs, train.images[pick]])
        val_labels = np.concatenate([val_labels, np.ones(len(pick), np.uint8)])
        val_names += [names[label] for label in train.labels[pick]]
    test_labels = (test.labels != index).astype(np.uint8)
    splits = {}
    for name, (inputs, labels, tags) in {
        "train": (normals, np.zeros(len(normals), np.uint8), [names[index]] * len(normals)),
        "validation": (val_inputs, val_labels, val_names),
        "test": (test.images, test_labels, [names[label] for label in test.labels]),
    }.items():
        inputs, labels, tags = _limit(inputs, labels, tags, getattr(config.limit, name), seed + 7)
        splits[name] = AnomalySplit(inputs=_resize_all(inputs, config), labels=labels, names=tags)
    return AnomalyData(splits, source.provenance, f"Fashion-MNIST class {names[index]!r} (index {index})",
                       channels=config.channels)


def _resize_all(images, config):
    """uint8 images at data.image_size and data.channels (Fashion-MNIST is 28x28 gray)."""
    from toolkit.data.image_io import resize_bilinear

    size = tuple(config.image_size)
    if images.shape[-1] != config.channels:
        images = np.repeat(images, 3, axis=-1) if config.channels == 3 else \
            np.round(images.astype(np.float32).mean(axis=-1, keepdims=True)).astype(np.uint8)
    if images.shape[1:3] == size:
        return images
    return np.stack([np.clip(np.round(resize_bilinear(image, size)), 0, 255).astype(np.uint8) for image in images])


def _read_folder(directory, config, skipped):
    """uint8 images of every image file under `directory` (sorted), unreadable ones skipped (or raised)."""
    from toolkit.data.image_io import read_image
    from toolkit.tasks.image.sources import IMAGE_EXTENSIONS

    paths = sorted(os.path.join(root, name) for root, _, files in os.walk(directory) for name in files
                   if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    images, kept = [], []
    for path in paths:
        try:
            images.append(read_image(path, config.channels))
            kept.append(path)
        except DataError as error:
            if config.on_error == "fail":
                raise
            skipped.append(str(error))
    if not images:
        return np.zeros((0, *config.image_size, config.channels), np.uint8), []
    from toolkit.data.image_io import resize_bilinear

    size = tuple(config.image_size)
    return np.stack([image if image.shape[:2] == size else
                     np.clip(np.round(resize_bilinear(image, size)), 0, 255).astype(np.uint8)
                     for image in images]), kept


def _labelled_folder(directory, config, skipped, where):
    """(images, labels, names) of `directory/<class>/`: folders named in data.normal_folders are normal."""
    inputs, labels, names = [], [], []
    classes = sorted(entry for entry in os.listdir(directory) if os.path.isdir(os.path.join(directory, entry)))
    if not classes:
        raise DataError(f"{directory}: no class folders; put normal images in {where}/normal/ and anomalies in "
                        f"{where}/anomaly/ (or any other folder name)")
    for name in classes:
        images, paths = _read_folder(os.path.join(directory, name), config, skipped)
        inputs.append(images)
        labels.append(np.full(len(images), 0 if name in config.normal_folders else 1, np.uint8))
        names += paths
    return np.concatenate(inputs), np.concatenate(labels), names


@ANOMALY_SOURCES.register("folder")
def load_anomaly_folder(config, seed):
    """`data.path/train/<normal>/` (or `data.path/train/` of images) for training; `data.path/test/<normal>/`
    and `data.path/test/<anomaly kind>/` for testing; `data.path/validation/` likewise (else cut from train)."""
    root = config.path
    if not root:
        raise DataError("data.path: required for data.source: folder (a directory with train/ and test/)")
    if not os.path.isdir(root):
        raise DataError(f"data.path {root} does not exist or is not a directory")
    for needed in ("train", "test"):
        if not os.path.isdir(os.path.join(root, needed)):
            raise DataError(f"data.path {root} has no {needed}/ folder; the layout is train/normal/*.png, "
                            "test/normal/*.png and test/<anomaly>/*.png")
    skipped = {"train": [], "validation": [], "test": []}
    train_dir = os.path.join(root, "train")
    inside = [os.path.join(train_dir, name) for name in config.normal_folders
              if os.path.isdir(os.path.join(train_dir, name))]
    normals, train_names = _read_folder(inside[0] if inside else train_dir, config, skipped["train"])
    if not len(normals):
        raise DataError(f"{train_dir}: no readable images to train on")
    splits = {}
    val_dir = next((os.path.join(root, name) for name in ("validation", "val")
                    if os.path.isdir(os.path.join(root, name))), None)
    if val_dir:
        inputs, labels, names = _labelled_folder(val_dir, config, skipped["validation"], "validation")
        splits["validation"] = AnomalySplit(inputs, labels, names=names)
    else:
        kept, held = _validation_indices(len(normals), config.validation_fraction, seed)
        splits["validation"] = AnomalySplit(normals[held], np.zeros(len(held), np.uint8),
                                            names=[train_names[i] for i in held])
        normals, train_names = normals[kept], [train_names[i] for i in kept]
    splits["train"] = AnomalySplit(normals, np.zeros(len(normals), np.uint8), names=train_names)
    inputs, labels, names = _labelled_folder(os.path.join(root, "test"), config, skipped["test"], "test")
    splits["test"] = AnomalySplit(inputs, labels, names=names)
    return AnomalyData(splits, f"image folder {root}", f"the images of {train_dir}", skipped=skipped,
                       channels=config.channels)


# ------------------------------------------------------------------ time series


def _series_split_by_time(series_list, config):
    """{split: [Series]} cutting each series in time: the first part trains, then validation, then test."""
    from toolkit.tasks.anomaly_detection.series import Series

    parts = {"train": [], "validation": [], "test": []}
    for item in series_list:
        length = len(item.values)
        test_start = int(round(length * (1 - config.test_fraction)))
        val_start = int(round(test_start * (1 - config.validation_fraction)))
        for split, (start, end) in {"train": (0, val_start), "validation": (val_start, test_start),
                                    "test": (test_start, length)}.items():
            if end - start < config.window:
                raise DataError(f"{item.name}: {length} steps are too few to cut {split} steps "
                                f"{start}-{end} of at least data.window ({config.window}) steps; lower data.window "
                                "or give train/, validation/ and test/ folders")
            windows = [(max(a, start) - start, min(b, end) - start) for a, b in item.windows if a < end and b > start]
            parts[split].append(Series(
                name=f"{item.name}[{start}:{end}]", values=item.values[start:end],
                timestamps=None if item.timestamps is None else item.timestamps[start:end],
                labels=None if item.labels is None else item.labels[start:end], windows=windows))
    return parts


def series_data(parts, provenance, normal, skipped=None):
    """`AnomalyData` of {split: [Series]} (training windows are cut by the task from their normal steps)."""
    channels = int(parts["train"][0].values.shape[1])
    for items in parts.values():
        for item in items:
            if item.values.shape[1] != channels:
                raise DataError(f"{item.name}: {item.values.shape[1]} value columns, but the training series "
                                f"have {channels}; give every file the same value columns (data.value_columns)")
    return AnomalyData({split: AnomalySplit(series=items) for split, items in parts.items()}, provenance, normal,
                       skipped=skipped or {}, channels=channels)


@ANOMALY_SOURCES.register("synthetic_series")
def load_synthetic_series(config, seed):
    """NAB-style series from the generator: anomaly-free training series, labelled validation and test series."""
    from toolkit.tasks.anomaly_detection.series import generate_series

    synthetic = config.synthetic
    common = {"length": synthetic.length, "period": synthetic.period}
    parts = {
        "train": generate_series(synthetic.train_series, seed, kinds=(), **common),
        "validation": generate_series(synthetic.validation_series, seed + 1, kinds=tuple(synthetic.kinds), **common),
        "test": generate_series(synthetic.test_series, seed + 2, kinds=tuple(synthetic.kinds), **common),
    }
    for split, items in parts.items():
        for index, item in enumerate(items):
            item.name = f"{split}-{index:02d}"
    return series_data(parts, f"synthetic NAB-style series (seed {seed}; generator in "
                              "toolkit/tasks/anomaly_detection/series.py)",
                       f"the anomaly-free behaviour of the training series ({', '.join(synthetic.kinds)} injected "
                       "in validation and test)")


@ANOMALY_SOURCES.register("csv")
def load_csv_series(config, seed):
    """CSV time series: `data.path` a file, a directory of files (each series cut in time into train, validation
    and test), or a directory with train/, validation/ and test/ folders of files."""
    from toolkit.tasks.anomaly_detection.series import read_anomaly_windows, read_series_csv

    root = config.path
    if not root:
        raise DataError("data.path: required for data.source: csv (a CSV file or a directory of them)")
    if not os.path.exists(root):
        raise DataError(f"data.path {root} does not exist")
    windows = read_anomaly_windows(config.windows_file) if config.windows_file else None
    options = {"timestamp_column": config.timestamp_column, "value_columns": config.value_columns,
               "label_column": config.label_column, "windows": windows, "on_error": config.on_error}
    skipped = {}
    if os.path.isdir(root) and os.path.isdir(os.path.join(root, "train")):
        parts = {}
        for split, names in (("train", ("train",)), ("validation", ("validation", "val")), ("test", ("test",))):
            folder = next((os.path.join(root, n) for n in names if os.path.isdir(os.path.join(root, n))), None)
            if folder is None:
                raise DataError(f"data.path {root} has train/ but no {names[0]}/ folder of CSV files")
            parts[split], skipped[split] = read_series_csv(folder, **options)
    else:
        items, skipped["train"] = read_series_csv(root, **options)
        parts = _series_split_by_time(items, config)
    return series_data(parts, f"CSV time series {root}", f"the behaviour of the training part of {root}",
                       skipped=skipped)


@ANOMALY_SOURCES.register("ucr")
def load_ucr_set(config, seed):
    """A UCR set (`toolkit data fetch ucr`): training instances of `data.ucr.normal_class`; every test instance,
    anomalous when of another class."""
    from toolkit.data.fetch import data_cache
    from toolkit.tasks.anomaly_detection.series import read_ucr

    directory = config.path or data_cache("ucr")
    train, test, test_labels = read_ucr(directory, config.ucr.name, config.ucr.normal_class)
    train, val = _cut_validation(np.asarray(train, np.float32), config.validation_fraction, seed)
    splits = {"train": AnomalySplit(train, np.zeros(len(train), np.uint8)),
              "validation": AnomalySplit(val, np.zeros(len(val), np.uint8)),
              "test": AnomalySplit(np.asarray(test, np.float32), np.asarray(test_labels, np.uint8))}
    return AnomalyData(splits, f"UCR {config.ucr.name} (from the sktime wheel, {directory})",
                       f"class {config.ucr.normal_class} of UCR {config.ucr.name}", channels=int(train.shape[-1]))
