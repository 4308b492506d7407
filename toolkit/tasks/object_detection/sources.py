"""Object detection data sources: images with boxes (xyxy pixels of the image as stored) and class indices.

- `coco`: COCO JSON (`annotations/instances_<split>.json` + the images it names);
- `voc`: Pascal VOC (`Annotations/*.xml`, `JPEGImages/`, splits from `ImageSets/Main/<split>.txt`);
- `yolo`: YOLO txt (`images/<split>/*`, `labels/<split>/*.txt` with `class cx cy w h` normalised; class names
  from `data.classes`, `classes.txt` or `data.yaml`);
- `tfds`: TensorFlow Datasets with `objects/bbox` and `objects/label` (`voc`, `coco/2017`);
- `fashion_detection` (offline default): real Fashion-MNIST items pasted onto canvases with exact boxes; train
  scenes from the train split's items, validation and test scenes from held-out items;
- `datasets`: Python data given to `toolkit.train(recipe, data=...)`.

A box outside its image, a degenerate box, an unknown class name or an image without an annotation file is
skipped and counted, or stops the run naming the file, per `data.on_error`.

Example:

>>> from toolkit.tasks.object_detection.sources import DETECTION_SOURCES
>>> DETECTION_SOURCES.names()
['coco', 'datasets', 'fashion_detection', 'tfds', 'voc', 'yolo']
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from toolkit.data import user_data
from toolkit.errors import DataError
from toolkit.registry import Registry
from toolkit.tasks.image.sources import FASHION_MNIST_CLASSES, IMAGE_EXTENSIONS
from toolkit.tasks.object_detection.boxes import box_problem, convert

DETECTION_SOURCES = Registry("object detection data source", DataError)
DETECTION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val", "valid"), "test": ("test",)}


@dataclasses.dataclass
class DetectionSplit:
    """One split: `images` (uint8 N x H x W x C) or `paths` (image files) or `dataset` (tf.data of (uint8
    image, xyxy pixel boxes, class indices)); `boxes` / `classes` one array per image (xyxy pixels, int)."""

    boxes: Optional[list] = None
    classes: Optional[list] = None
    images: Optional[np.ndarray] = None
    paths: Optional[list] = None
    dataset: object = None
    count: Optional[int] = None
    skipped_files: list = dataclasses.field(default_factory=list)
    skipped_boxes: int = 0

    def __len__(self):
        if self.count is not None:
            return self.count
        return len(self.images) if self.images is not None else len(self.paths)

    def is_empty(self):
        return self.dataset is None and len(self) == 0

    def take(self, indices):
        pick = lambda items: None if items is None else (  # noqa: E731
            items[indices] if isinstance(items, np.ndarray) else [items[i] for i in indices])
        return DetectionSplit(boxes=pick(self.boxes), classes=pick(self.classes), images=pick(self.images),
                              paths=pick(self.paths))


@dataclasses.dataclass
class DetectionData:
    """What a detection source returns."""

    splits: dict
    class_names: list
    provenance: str


class Problems:
    """Collects bad annotations of one source: skipped and counted, or the first one raised (`data.on_error`)."""

    def __init__(self, on_error):
        self.on_error, self.files, self.boxes = on_error, [], 0

    def image(self, message):
        self._check(message)
        self.files.append(message)

    def box(self, message):
        self._check(message)
        self.boxes += 1
        if len(self.files) < 50:
            self.files.append(message)

    def _check(self, message):
        if self.on_error == "fail":
            raise DataError(f"{message}; fix the annotation or set data.on_error: skip")

    def attach(self, split):
        split.skipped_files, split.skipped_boxes = self.files, self.boxes
        return split


def checked_boxes(where, boxes, classes, image_size, problems):
    """(boxes float32 (k, 4), classes int64 (k,)) of an image with the unusable boxes left out (and reported)."""
    keep = []
    for index, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        problem = box_problem(box, image_size)
        if problem:
            problems.box(f"{where}: {problem}")
        else:
            keep.append(index)
    height, width = image_size
    kept = np.asarray(boxes, np.float64).reshape(-1, 4)[keep]
    kept = np.clip(kept, 0, [width, height, width, height]).astype(np.float32)
    return kept, np.asarray(classes, np.int64).reshape(-1)[keep]


def _image_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def _class_index(name, class_names, where, problems, grow):
    if name in class_names:
        return class_names.index(name)
    if grow:
        class_names.append(name)
        return len(class_names) - 1
    problems.box(f"{where}: unknown class {name!r} (data.classes: {', '.join(class_names[:10])})")
    return None


def finish_detection_splits(splits, config, seed):
    """Cuts missing validation/test splits from train (seeded, by image) and applies `data.limit`."""
    rng = np.random.RandomState(seed)
    for name, fraction in (("test", config.test_fraction), ("validation", config.validation_fraction)):
        if name in splits or fraction <= 0:
            continue
        train = splits["train"]
        if train.dataset is not None:
            continue
        order = rng.permutation(len(train))
        cut = max(1, int(round(len(train) * fraction))) if len(train) > 1 else 0
        held, kept = np.sort(order[:cut]), np.sort(order[cut:])
        splits[name], splits["train"] = train.take(held), train.take(kept)
        splits["train"].skipped_files, splits["train"].skipped_boxes = train.skipped_files, train.skipped_boxes
    for name, split in list(splits.items()):
        limit = getattr(config.limit, name, None)
        if limit is not None and split.dataset is None and len(split) > limit:
            kept = split.take(np.arange(limit))
            kept.skipped_files, kept.skipped_boxes = split.skipped_files, split.skipped_boxes
            splits[name] = kept
        elif limit is not None and split.dataset is not None:
            split.dataset = split.dataset.take(limit)
            split.count = min(limit, split.count) if split.count else limit
    return splits


# ------------------------------------------------------------------------------ fashion_detection


def compose_detection_scenes(images, labels, count, size, items, scale, max_overlap, clutter, threshold, seed):
    """Canvases of Fashion-MNIST items at random scales with their exact boxes.

    Args:
        images: uint8 (N, 28, 28). Items on black.
        labels: int (N,). Their classes.
        count: int. Canvases.
        size: int. Canvas height and width.
        items: (int, int). Min and max items per canvas.
        scale: (float, float). Min and max item scale (1 = 28 px).
        max_overlap: float. Most share of either box that an item's box may cover of an earlier one's (items
            drawn later occlude; IoU alone would let a small item hide under a large one).
        clutter: int. Up to this many unlabelled fragments (a random 6-10 px crop of another item) per canvas.
        threshold: int. Pixels brighter than this bound the box.
        seed: int.

    Returns:
        (canvases uint8 (count, size, size, 1), boxes [float32 (k, 4) xyxy], classes [int64 (k,)]).
    """
    from PIL import Image

    rng = np.random.RandomState(seed)
    canvases = np.zeros((count, size, size), np.uint8)
    all_boxes, all_classes = [], []
    for index in range(count):
        canvas = canvases[index]
        for _ in range(rng.randint(0, clutter + 1)):
            piece = images[rng.randint(len(images))]
            side = rng.randint(6, 11)
            top, left = rng.randint(0, 28 - side), rng.randint(0, 28 - side)
            crop = piece[top:top + side, left:left + side]
            y, x = rng.randint(0, size - side), rng.randint(0, size - side)
            np.maximum(canvas[y:y + side, x:x + side], crop // 2, out=canvas[y:y + side, x:x + side])
        boxes, classes = [], []
        for _ in range(rng.randint(items[0], items[1] + 1)):
            item = rng.randint(len(images))
            side = int(round(28 * rng.uniform(*scale)))
            side = min(side, size)
            pixels = np.asarray(Image.fromarray(images[item]).resize((side, side), Image.BILINEAR))
            on = pixels > threshold
            if not on.any():
                continue
            rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
            for _ in range(30):
                y, x = rng.randint(0, size - side + 1), rng.randint(0, size - side + 1)
                box = np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], np.float32)
                if not boxes or overlap(box, np.array(boxes)).max() <= max_overlap:
                    break
            else:
                continue
            region = canvas[y:y + side, x:x + side]
            region[on] = pixels[on]
            boxes.append(box)
            classes.append(int(labels[item]))
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        all_classes.append(np.asarray(classes, np.int64))
    return canvases[..., None], all_boxes, all_classes


def overlap(box, others):
    """Intersection of an xyxy box with each of `others` (n, 4) over the smaller of the two areas."""
    left, top = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    right, bottom = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(np.minimum(area(box), area(others)), 1e-9)


@DETECTION_SOURCES.register("fashion_detection")
def load_fashion_detection(config, seed):
    """Fashion-MNIST items pasted on canvases with exact boxes (`data.scenes`: count, size, items, scale,
    overlap, clutter); train/validation/test scenes use items of those Fashion-MNIST splits only."""
    from toolkit.tasks.image.sources import load_fashion_mnist

    items = load_fashion_mnist(config.model_copy(update={"limit": type(config.limit)(), "source": "fashion_mnist"}),
                               seed)
    scenes = config.scenes
    splits = {}
    for offset, name in enumerate(("train", "validation", "test")):
        if name not in items.splits:
            continue
        source = items.splits[name]
        canvases, boxes, classes = compose_detection_scenes(
            source.images[..., 0], source.labels, getattr(scenes.count, name), scenes.size, tuple(scenes.items),
            tuple(scenes.scale), scenes.max_overlap, scenes.clutter, scenes.threshold, seed * 1000 + offset)
        splits[name] = DetectionSplit(images=canvases, boxes=boxes, classes=classes)
    provenance = (f"fashion detection scenes: {scenes.size}x{scenes.size} canvases of {scenes.items[0]}-"
                  f"{scenes.items[1]} items at {scenes.scale[0]:g}x-{scenes.scale[1]:g}x from " + items.provenance)
    limits = config.model_copy(update={"validation_fraction": 0.0})
    return DetectionData(finish_detection_splits(splits, limits, seed), list(FASHION_MNIST_CLASSES), provenance)


# ------------------------------------------------------------------------------------------- COCO


def _split_of(stem):
    lowered = stem.lower()
    for split, names in SPLIT_NAMES.items():
        if any(name in lowered for name in names):
            return split
    return None


def read_coco(json_path, image_dir, class_names, problems, grow):
    """(paths, boxes, classes) of one COCO instances file; categories are named by `name`."""
    try:
        with open(json_path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as error:
        raise DataError(f"{json_path}: not a readable COCO JSON file ({str(error)[:120]})")
    if not isinstance(document, dict) or "images" not in document or "annotations" not in document:
        raise DataError(f"{json_path}: a COCO instances file needs 'images' and 'annotations' lists")
    categories = {c["id"]: c["name"] for c in document.get("categories", [])}
    by_image = {}
    for annotation in document["annotations"]:
        by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    paths, boxes, classes = [], [], []
    for image in document["images"]:
        path = os.path.join(image_dir, image["file_name"])
        if not os.path.isfile(path):
            problems.image(f"{json_path}: image {image['file_name']} is not in {image_dir}")
            continue
        size = (image.get("height"), image.get("width"))
        if not all(size):
            size = _image_size(path)
        image_boxes, image_classes = [], []
        for annotation in by_image.get(image["id"], []):
            if annotation.get("iscrowd"):
                continue
            where = f"{json_path}: annotation {annotation.get('id')} of {image['file_name']}"
            name = categories.get(annotation.get("category_id"))
            if name is None:
                problems.box(f"{where}: category_id {annotation.get('category_id')} is not in 'categories'")
                continue
            index = _class_index(name, class_names, where, problems, grow)
            if index is None:
                continue
            image_boxes.append(convert(np.asarray(annotation["bbox"], np.float64), "xywh", "xyxy")[0])
            image_classes.append(index)
        kept_boxes, kept_classes = checked_boxes(path, image_boxes, image_classes, size, problems)
        paths.append(path)
        boxes.append(kept_boxes)
        classes.append(kept_classes)
    return paths, boxes, classes


def _coco_image_dir(root, stem):
    name = stem.replace("instances_", "")
    for candidate in (os.path.join(root, "images", name), os.path.join(root, name), os.path.join(root, "images"),
                      root):
        if os.path.isdir(candidate):
            return candidate
    return root


@DETECTION_SOURCES.register("coco")
def load_coco(config, seed):
    """COCO: `data.path` holds `annotations/instances_<split>*.json` (or `<split>.json`) and the images in
    `images/<split>`, `<split>/`, `images/` or beside; splits are named train, val/validation and test."""
    root = _root(config, "coco", "a directory with annotations/instances_train.json and the images")
    folder = os.path.join(root, "annotations") if os.path.isdir(os.path.join(root, "annotations")) else root
    files = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
    class_names, grow = list(config.classes or []), not config.classes
    splits = {}
    for name in files:
        stem = os.path.splitext(name)[0]
        split = _split_of(stem)
        if split is None or split in splits:
            continue
        problems = Problems(config.on_error)
        paths, boxes, classes = read_coco(os.path.join(folder, name), _coco_image_dir(root, stem), class_names,
                                          problems, grow)
        splits[split] = problems.attach(DetectionSplit(paths=paths, boxes=boxes, classes=classes))
    if "train" not in splits:
        raise DataError(f"{folder}: no COCO instances file for the train split (instances_train*.json)")
    return DetectionData(finish_detection_splits(splits, config, seed), class_names, f"COCO JSON from {root}")


# ---------------------------------------------------------------------------------------- VOC


def read_voc_xml(path, image_dir, class_names, problems, grow):
    """(image path, boxes, classes) of one Pascal VOC XML file, or None when its image is missing. VOC corners
    are 1-based inclusive: [xmin - 1, ymin - 1, xmax, ymax] in pixels."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        problems.image(f"{path}: not a readable VOC XML file ({str(error)[:80]})")
        return None
    filename = (root.findtext("filename") or os.path.splitext(os.path.basename(path))[0] + ".jpg").strip()
    image_path = os.path.join(image_dir, filename)
    if not os.path.isfile(image_path):
        problems.image(f"{path}: its image {filename} is not in {image_dir}")
        return None
    size = root.find("size")
    try:
        height, width = int(size.findtext("height")), int(size.findtext("width"))
        if not height or not width:
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        height, width = _image_size(image_path)
    boxes, classes = [], []
    for number, item in enumerate(root.findall("object")):
        where = f"{path}: object {number + 1}"
        index = _class_index((item.findtext("name") or "").strip(), class_names, where, problems, grow)
        if index is None:
            continue
        box = item.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            problems.box(f"{where}: bndbox needs numeric xmin, ymin, xmax, ymax")
            continue
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        classes.append(index)
    kept_boxes, kept_classes = checked_boxes(path, boxes, classes, (height, width), problems)
    return image_path, kept_boxes, kept_classes


@DETECTION_SOURCES.register("voc")
def load_voc(config, seed):
    """Pascal VOC: `data.path` holds `Annotations/*.xml` and `JPEGImages/`; splits from
    `ImageSets/Main/{train,val,test}.txt` when present, else cut from all images."""
    root = _root(config, "voc", "a VOC directory with Annotations/ and JPEGImages/")
    annotations, image_dir = os.path.join(root, "Annotations"), os.path.join(root, "JPEGImages")
    if not os.path.isdir(annotations):
        raise DataError(f"{root}: no Annotations/ folder (Pascal VOC layout: Annotations/*.xml, JPEGImages/*.jpg)")
    class_names, grow = list(config.classes or []), not config.classes
    lists = os.path.join(root, "ImageSets", "Main")
    members = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            path = os.path.join(lists, f"{name}.txt")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    members[split] = [line.split()[0] for line in f if line.strip()]
                break
    if "train" not in members:
        members = {"train": sorted(os.path.splitext(n)[0] for n in os.listdir(annotations) if n.endswith(".xml"))}
    splits = {}
    for split, stems in members.items():
        problems = Problems(config.on_error)
        paths, boxes, classes = [], [], []
        for stem in stems:
            xml = os.path.join(annotations, f"{stem}.xml")
            if not os.path.isfile(xml):
                problems.image(f"{xml}: no annotation file for image {stem}")
                continue
            found = read_voc_xml(xml, image_dir, class_names, problems, grow)
            if found:
                paths.append(found[0])
                boxes.append(found[1])
                classes.append(found[2])
        splits[split] = problems.attach(DetectionSplit(paths=paths, boxes=boxes, classes=classes))
    return DetectionData(finish_detection_splits(splits, config, seed), class_names, f"Pascal VOC from {root}")


# --------------------------------------------------------------------------------------- YOLO


def yolo_class_names(root, configured):
    """Class names of a YOLO dataset: `data.classes`, else `classes.txt`, else `names` of `data.yaml`."""
    if configured:
        return list(configured)
    listing = os.path.join(root, "classes.txt")
    if os.path.isfile(listing):
        with open(listing, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            import yaml

            with open(path, encoding="utf-8") as f:
                names = (yaml.safe_load(f) or {}).get("names")
            if isinstance(names, dict):
                return [names[key] for key in sorted(names)]
            if isinstance(names, list):
                return [str(name) for name in names]
    raise DataError(f"{root}: YOLO class names not found; set data.classes or add classes.txt (one name per line)")


def read_yolo_labels(path, image_size, class_count, problems):
    """(boxes xyxy pixels, classes) of one YOLO label file (`class cx cy w h` per line, normalised)."""
    boxes, classes = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            try:
                index, values = int(fields[0]), [float(v) for v in fields[1:5]]
                if len(values) != 4:
                    raise ValueError
            except ValueError:
                problems.box(f"{where}: expected 'class cx cy w h', got {line.strip()[:60]!r}")
                continue
            if not 0 <= index < class_count:
                problems.box(f"{where}: unknown class {index} ({class_count} classes)")
                continue
            boxes.append(convert(np.asarray(values), "rel_center_xywh", "xyxy", image_size)[0])
            classes.append(index)
    return checked_boxes(path, boxes, classes, image_size, problems)


@DETECTION_SOURCES.register("yolo")
def load_yolo(config, seed):
    """YOLO txt: `data.path` holds `images/<split>/*` and `labels/<split>/<stem>.txt` (Ultralytics layout;
    split folders train, val/validation, test), or `images/` and `labels/` without splits."""
    root = _root(config, "yolo", "a directory with images/ and labels/")
    class_names = yolo_class_names(root, config.classes)
    images_root, labels_root = os.path.join(root, "images"), os.path.join(root, "labels")
    if not os.path.isdir(images_root):
        raise DataError(f"{root}: no images/ folder (YOLO layout: images/<split>/*.jpg, labels/<split>/*.txt)")
    folders = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if os.path.isdir(os.path.join(images_root, name)):
                folders[split] = name
                break
    if "train" not in folders:
        folders = {"train": ""}
    splits = {}
    for split, name in folders.items():
        problems = Problems(config.on_error)
        paths, boxes, classes = [], [], []
        image_dir, label_dir = os.path.join(images_root, name), os.path.join(labels_root, name)
        for file_name in sorted(os.listdir(image_dir)):
            stem, extension = os.path.splitext(file_name)
            if extension.lower() not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(image_dir, file_name)
            label = os.path.join(label_dir, f"{stem}.txt")
            if not os.path.isfile(label):
                problems.image(f"{path}: no label file {label}")
                continue
            try:
                size = _image_size(path)
            except OSError:
                problems.image(f"{path}: not a readable image")
                continue
            image_boxes, image_classes = read_yolo_labels(label, size, len(class_names), problems)
            paths.append(path)
            boxes.append(image_boxes)
            classes.append(image_classes)
        splits[split] = problems.attach(DetectionSplit(paths=paths, boxes=boxes, classes=classes))
    return DetectionData(finish_detection_splits(splits, config, seed), class_names, f"YOLO txt from {root}")


def _root(config, source, what):
    if not config.path:
        raise DataError(f"data.path: required for data.source: {source} ({what})")
    if not os.path.isdir(config.path):
        raise DataError(f"data.path {config.path} does not exist or is not a directory")
    return config.path


# --------------------------------------------------------------------------------------- TFDS


@DETECTION_SOURCES.register("tfds")
def load_tfds(config, seed):
    """A TFDS detection dataset with `image`, `objects/bbox` (normalised yxyx) and `objects/label` (`voc`,
    `coco/2017`), read from `data.tfds_data_dir` or downloaded when `data.download`."""
    import tensorflow as tf

    from toolkit.data.tfds import prepare_tfds, tfds_count, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. voc/2007)")
    builder, info = prepare_tfds(name, config)
    objects = info.features["objects"]
    class_names = list(objects["label"].names)

    def example(features):
        image = features["image"]
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        box = features["objects"]["bbox"] * tf.stack([size[0], size[1], size[0], size[1]])
        labels = tf.cast(features["objects"]["label"], tf.int64)
        count = tf.minimum(tf.shape(box)[0], tf.shape(labels)[0])  # equal in real data; not in tfds mock data
        box = tf.stack([box[:count, 1], box[:count, 0], box[:count, 3], box[:count, 2]], axis=1)
        usable = (box[:, 2] - box[:, 0] >= 1) & (box[:, 3] - box[:, 1] >= 1)  # degenerate boxes are left out
        return image, tf.boolean_mask(box, usable), tf.boolean_mask(labels[:count], usable)

    splits = {}
    for split, spec in tfds_split_names(info, config).items():
        dataset = builder.as_dataset(split=spec, shuffle_files=False).map(example)
        splits[split] = DetectionSplit(dataset=dataset, count=tfds_count(info, spec))
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'})"
    return DetectionData(finish_detection_splits(splits, config, seed), class_names, provenance)


# ----------------------------------------------------------------------------- data= (Python)


def detection_data(user, config, seed):
    """`toolkit.train(recipe, data=...)`: examples are (image uint8 (H, W[, C]), {"boxes": xyxy pixels (k, 4),
    "classes": (k,) ints}); `class_names` is required."""
    class_names = user.extras.get("class_names") or config.classes
    if not class_names:
        raise DataError("data=: give class_names (the names of class indices 0, 1, ...)")
    splits = {}
    for split in user.splits:
        problems = Problems(config.on_error)
        images, boxes, classes = [], [], []
        for number, item in enumerate(user.examples(split, batched_rank=4)):
            where = f"data={split}[{number}]"
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict)):
                raise DataError(f"{where}: expected (image, {{'boxes': ..., 'classes': ...}})")
            image = np.asarray(item[0])
            image = image[..., None] if image.ndim == 2 else image
            if image.dtype != np.uint8 or image.ndim != 3:
                raise DataError(f"{where}: the image must be uint8 (height, width[, channels]); got {image.dtype} "
                                f"{image.shape}")
            target_classes = np.asarray(item[1].get("classes", item[1].get("labels", [])), np.int64).reshape(-1)
            bad = target_classes[(target_classes < 0) | (target_classes >= len(class_names))]
            if len(bad):
                raise DataError(f"{where}: class index {int(bad[0])} is outside class_names (0..{len(class_names) - 1})")
            kept = checked_boxes(where, item[1].get("boxes", []), target_classes, image.shape[:2], problems)
            images.append(image)
            boxes.append(kept[0])
            classes.append(kept[1])
        if len({image.shape for image in images}) > 1:
            raise DataError(f"data={split}: images differ in size; give one size, or use a folder source")
        splits[split] = problems.attach(DetectionSplit(images=np.stack(images), boxes=boxes, classes=classes))
    return DetectionData(finish_detection_splits(splits, config, seed), list(class_names), "Python data (data=)")
