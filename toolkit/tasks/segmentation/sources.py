"""Segmentation data sources: images with per-pixel class masks.

- `folder`: `path/images/*` and `path/masks/*.png` matched by file stem (or
  `path/{train,validation|val,test}/{images,masks}`); masks are single-channel
  class-index PNGs or palette PNGs whose indices follow `data.classes`.
- `tfds`: TFDS segmentation datasets (`oxford_iiit_pet` known by name).
- `fashion_scenes`: 64x64 canvases composed from Fashion-MNIST items with a
  per-pixel label (background + 10 classes), generated from a seed; train
  scenes use train-split items only, test scenes test-split items only.
- `nuclei`: the fluorescence image and nucleus mask shipped in the stardist
  wheel, binarised and tiled with a spatial split (the right-hand
  `data.test_fraction` of the image is test, the strip left of it
  validation), so no test pixel is seen in training.

Example:

>>> from toolkit.tasks.segmentation.sources import SEGMENTATION_SOURCES
>>> SEGMENTATION_SOURCES.names()
['datasets', 'fashion_scenes', 'folder', 'nuclei', 'tfds']
"""

import os

import numpy as np

from toolkit.data import user_data
from toolkit.data.image_io import read_mask  # noqa: F401 - the reader of mask files, importable from here
from toolkit.errors import DataError
from toolkit.registry import Registry
from toolkit.tasks.image.sources import (
    FASHION_MNIST_CLASSES,
    IMAGE_EXTENSIONS,
    LabelledData,
    Split,
    finish_image_splits,
)

SEGMENTATION_SOURCES = Registry("segmentation data source", DataError)
SEGMENTATION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)
MASK_EXTENSIONS = (".png", ".bmp", ".gif")

TFDS_SEGMENTATION = {
    "oxford_iiit_pet": {"mask_key": "segmentation_mask", "offset": -1, "classes": ["pet", "background", "border"]},
}


def _index_files(directory, extensions):
    found = {}
    if not os.path.isdir(directory):
        return found
    for name in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions and not name.startswith("."):
            found.setdefault(stem, os.path.join(directory, name))
    return found


def _check_pairs(root, config, class_count):
    """Pairs images with masks by stem and checks each pair; returns (Split, problems)."""
    from PIL import Image

    images = _index_files(os.path.join(root, "images"), IMAGE_EXTENSIONS)
    masks = _index_files(os.path.join(root, "masks"), MASK_EXTENSIONS)
    if not images:
        raise DataError(f"{os.path.join(root, 'images')}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    kept_images, kept_masks, problems = [], [], []
    for stem, image_path in images.items():
        mask_path = masks.get(stem)
        if mask_path is None:
            problems.append(f"{image_path}: no mask {stem}.png in {os.path.join(root, 'masks')}")
            continue
        try:
            with Image.open(image_path) as image:
                width, height = image.size
        except OSError:
            problems.append(f"{image_path}: not a readable image")
            continue
        try:
            mask = read_mask(mask_path)
        except DataError as error:
            problems.append(str(error))
            continue
        if mask.shape != (height, width):
            problems.append(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is {width}x{height}")
            continue
        values = np.unique(mask)
        if config.ignore_index is not None:
            values = values[values != config.ignore_index]
        if len(values) and values.max() >= class_count:
            problems.append(
                f"{mask_path}: class index {int(values.max())} is outside data.classes (0..{class_count - 1})"
            )
            continue
        kept_images.append(image_path)
        kept_masks.append(mask_path)
    if problems and config.on_error == "fail":
        raise DataError(f"{problems[0]} ({len(problems)} problem(s) in {root}); fix the data or set data.on_error: skip")
    split = Split(paths=kept_images, mask_paths=kept_masks)
    split.skipped_files = problems
    return split


@SEGMENTATION_SOURCES.register("folder")
def load_mask_folder(config, seed):
    """Images with class-index masks: `path/images/*`, `path/masks/*.png` matched by file stem, or the same
    under `path/train`, `path/test` (and `path/validation` or `path/val`); names of the indices in
    `data.classes`."""
    root = config.path
    if not root:
        raise DataError("data.path: required for data.source: folder (a directory with images/ and masks/)")
    if not os.path.isdir(root):
        raise DataError(f"data.path {root} does not exist or is not a directory")
    if not config.classes:
        raise DataError("data.classes: required for data.source: folder (the names of mask indices 0, 1, ...)")
    count = len(config.classes)
    splits = {}
    if os.path.isdir(os.path.join(root, "train")):
        splits["train"] = _check_pairs(os.path.join(root, "train"), config, count)
        for split, candidates in (("validation", ("validation", "val")), ("test", ("test",))):
            for candidate in candidates:
                if os.path.isdir(os.path.join(root, candidate)):
                    splits[split] = _check_pairs(os.path.join(root, candidate), config, count)
                    break
    elif os.path.isdir(os.path.join(root, "images")):
        splits["train"] = _check_pairs(root, config, count)
    else:
        raise DataError(f"data.path {root}: expected images/ and masks/ folders (or train/ and test/ holding them)")
    if not len(splits["train"]):
        raise DataError(f"data.path {root}: no image has a usable mask")
    skipped = {name: getattr(split, "skipped_files", []) for name, split in splits.items()}
    splits = finish_image_splits(splits, config, seed)
    for name, split in splits.items():
        split.skipped_files = skipped.get(name, []) if name in skipped else []
    if "train" in skipped and "validation" not in skipped:
        splits["train"].skipped_files = skipped["train"]
    return LabelledData(splits, list(config.classes), f"image and mask folders {root}")


@SEGMENTATION_SOURCES.register("tfrecord")
def load_tfrecord_segmentation(config, seed):
    """Sharded TFRecords written by `toolkit data to-tfrecord` (`data.path`: their directory), streamed."""
    from toolkit.tasks.image.sources import finish_image_splits, load_image_tfrecords

    splits, meta = load_image_tfrecords(config, "segmentation", "mask")
    return LabelledData(finish_image_splits(splits, config, seed), list(meta["class_names"]), meta["provenance"])


@SEGMENTATION_SOURCES.register("tfds")
def load_tfds_segmentation(config, seed):
    """A TFDS segmentation dataset (`data.tfds_name`; oxford_iiit_pet known by name, others need
    `data.classes`), read from `data.tfds_data_dir` or downloaded when `data.download`."""
    import tensorflow as tf

    from toolkit.data.tfds import prepare_tfds, tfds_count, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. oxford_iiit_pet)")
    known = TFDS_SEGMENTATION.get(name, {})
    classes = list(config.classes or known.get("classes") or [])
    if not classes:
        raise DataError(f"data.classes: required for TFDS dataset {name} (names of the mask values)")
    builder, info = prepare_tfds(name, config)
    mask_key, offset = known.get("mask_key", "segmentation_mask"), known.get("offset", 0)
    splits = {}
    for split, spec in tfds_split_names(info, config).items():
        dataset = builder.as_dataset(split=spec, shuffle_files=False)
        dataset = dataset.map(
            lambda example: (example["image"], tf.cast(tf.cast(example[mask_key][..., 0], tf.int32) + offset, tf.uint8))
        )
        splits[split] = Split(dataset=dataset, count=tfds_count(info, spec))
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'})"
    return LabelledData(finish_image_splits(splits, config, seed), classes, provenance)


def compose_scenes(images, labels, count, size, items, threshold, seed, max_overlap=None):
    """Composes `count` canvases of `size` from item images, with per-pixel labels.

    Items are pasted at random places; an item's pixels brighter than
    `threshold` get its class index + 1 (0 is background).

    Args:
        images: uint8 array (N, h, w). Item images on a black background.
        labels: int array (N,). Item classes.
        count: int. Number of canvases.
        size: int. Canvas height and width.
        items: (int, int). Min and max items per canvas.
        threshold: int. Pixel value above which an item pixel is labelled.
        seed: int. Seed of the composition.
        max_overlap: int or None. How many pixels two items' boxes may
            overlap (rows or columns); None lets items occlude each other
            freely (later over earlier). An item that finds no place in 30
            tries is left out.

    Returns:
        (canvases uint8 (count, size, size, 1), masks uint8 (count, size, size)).
    """
    rng = np.random.RandomState(seed)
    height, width = images.shape[1:3]
    canvases = np.zeros((count, size, size), np.uint8)
    masks = np.zeros((count, size, size), np.uint8)
    for index in range(count):
        boxes = []
        for _ in range(rng.randint(items[0], items[1] + 1)):
            for _ in range(30):
                top, left = rng.randint(0, size - height + 1), rng.randint(0, size - width + 1)
                if max_overlap is None or all(
                    top + height - max_overlap <= other_top or other_top + height - max_overlap <= top
                    or left + width - max_overlap <= other_left or other_left + width - max_overlap <= left
                    for other_top, other_left in boxes
                ):
                    break
            else:
                continue
            boxes.append((top, left))
            item = rng.randint(len(images))
            pixels = images[item]
            on = pixels > threshold
            canvases[index, top:top + height, left:left + width][on] = pixels[on]
            masks[index, top:top + height, left:left + width][on] = labels[item] + 1
    return canvases[..., None], masks


@SEGMENTATION_SOURCES.register("fashion_scenes")
def load_fashion_scenes(config, seed):
    """Canvases composed from Fashion-MNIST items (background + 10 classes); `data.scenes` sets their
    number, size and items per canvas; train/validation/test scenes use items of those splits only."""
    from toolkit.tasks.image.sources import load_fashion_mnist

    items = load_fashion_mnist(config.model_copy(update={"limit": type(config.limit)()}), seed)
    scenes = config.scenes
    splits = {}
    for offset, name in enumerate(("train", "validation", "test")):
        if name not in items.splits:
            continue
        source = items.splits[name]
        count = getattr(scenes.count, name)
        canvases, masks = compose_scenes(
            source.images[..., 0], source.labels, count, scenes.size, tuple(scenes.items), scenes.threshold,
            seed * 1000 + offset, scenes.max_overlap,
        )
        splits[name] = Split(images=canvases, masks=masks)
    classes = ["background"] + list(FASHION_MNIST_CLASSES)
    provenance = (
        f"fashion scenes: {scenes.size}x{scenes.size} canvases of {scenes.items[0]}-{scenes.items[1]} items from "
        + items.provenance
    )
    return LabelledData(finish_image_splits(splits, config, seed), classes, provenance)


def tile_image(image, mask, size, stride, columns):
    """Cuts (image, mask) tiles whose columns lie in [columns[0], columns[1])."""
    tiles, labels = [], []
    height = image.shape[0]
    for top in range(0, height - size + 1, stride):
        for left in range(columns[0], columns[1] - size + 1, stride):
            tiles.append(image[top:top + size, left:left + size])
            labels.append(mask[top:top + size, left:left + size])
    return np.asarray(tiles), np.asarray(labels)


def to_uint8(image):
    """Maps an image to uint8: as is when it fits 0..255, else percentile-stretched."""
    if image.dtype == np.uint8:
        return image
    if image.min() >= 0 and image.max() <= 255:
        return image.astype(np.uint8)
    low, high = np.percentile(image, [0.5, 99.5])
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


@SEGMENTATION_SOURCES.register("nuclei")
def load_nuclei(config, seed):
    """Real fluorescence nuclei (512x512 image + instance mask, binarised) from the stardist wheel
    (downloaded from PyPI into the toolkit's data cache on first use, or `data.path`); tiles of
    `data.tiles.size`, spatial split: the right `data.test_fraction` of the image is test."""
    from toolkit.data.fetch import STARDIST, data_cache, fetch_wheel_members

    try:
        import tifffile
    except ImportError:
        raise DataError("the nuclei source needs tifffile: pip install tifffile")
    directory = config.path or data_cache("stardist")
    paths = fetch_wheel_members(STARDIST, directory, download=config.download)
    image = to_uint8(tifffile.imread(paths["img2d.tif"]))
    mask = (tifffile.imread(paths["mask2d.tif"]) > 0).astype(np.uint8)
    if image.shape != mask.shape:
        raise DataError(f"nuclei: image {image.shape} and mask {mask.shape} differ in size")
    width = image.shape[1]
    tiles = config.tiles
    test_start = int(round(width * (1 - config.test_fraction)))
    validation_start = int(round(test_start - width * config.validation_fraction))
    if test_start - 0 < tiles.size or width - test_start < tiles.size:
        raise DataError(f"data.tiles.size {tiles.size} does not fit the train and test regions; lower it")
    regions = {"train": (0, validation_start if config.validation_fraction > 0 else test_start),
               "test": (test_start, width)}
    if config.validation_fraction > 0:
        if test_start - validation_start < tiles.size:
            raise DataError("data.validation_fraction: the validation strip is narrower than a tile")
        regions["validation"] = (validation_start, test_start)
    splits = {}
    for name, columns in regions.items():
        stride = tiles.stride if name == "train" else tiles.size  # held-out tiles do not overlap
        images, masks = tile_image(image, mask, tiles.size, stride, columns)
        if not len(images):
            raise DataError(f"nuclei: the {name} region {columns} holds no {tiles.size}px tile")
        splits[name] = Split(images=images[..., None], masks=masks)
    provenance = f"nuclei: {STARDIST['origin']}, tiles {tiles.size}px, test = columns {test_start}-{width}"
    return LabelledData(finish_image_splits(splits, config, seed), ["background", "nucleus"], provenance, tiled=True)


# --------------------------------------------------- data= (Python datasets)


def mask_array(mask, size, where):
    """A checked user mask resized by nearest neighbour (`resize_mask`, as the file pipeline does)."""
    import tensorflow as tf

    from toolkit.tasks.segmentation.pipeline import resize_mask

    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype.kind not in "iub":
        raise DataError(f"{where}: a mask must be HxW (or HxWx1) class indices; got shape {mask.shape}, "
                        f"dtype {mask.dtype}")
    return resize_mask(tf.convert_to_tensor(mask.astype(np.int32)), size).numpy()


def segmentation_data(user, config, seed):
    """`LabelledData` of (image, mask) datasets, resized to `data.image_size` (masks by nearest)."""
    from toolkit.tasks.image.sources import image_array

    size = tuple(config.image_size)
    splits, largest = {}, 0
    for name in user.splits:
        images, masks = [], []
        for index, example in enumerate(user.examples(name, batched_rank=4)):
            where = f"data['{name}'] example {index}"
            image, mask = user_data.pair(example, name, index, "(image, mask)")
            images.append(image_array(image, size, config.channels, where))
            masks.append(mask_array(mask, size, where))
            largest = max(largest, int(masks[-1].max()))
        if not images:
            raise DataError(f"data['{name}'] has no examples")
        splits[name] = Split(images=np.stack(images), masks=np.stack(masks))
    class_names = config.classes or user_data.class_names(user, largest + 1, "data")
    if largest >= len(class_names):
        raise DataError(f"data: a mask holds class {largest} but data.classes names {len(class_names)} classes")
    return LabelledData(finish_image_splits(splits, config, seed), list(class_names),
                        "Python datasets given to toolkit.train")
