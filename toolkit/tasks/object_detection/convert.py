"""`toolkit data convert`: detection annotations from one layout (COCO JSON, Pascal VOC, YOLO txt) to another.

The source is read by the same readers as `data.source` (bad annotations skipped and counted); images are
copied (in-memory images written as PNG). Split names are written as train, val and test.

Example:

>>> import numpy as np, tempfile
>>> from toolkit.tasks.object_detection.convert import write_dataset
>>> from toolkit.tasks.object_detection.sources import DetectionSplit
>>> split = DetectionSplit(images=np.zeros((1, 8, 8, 1), np.uint8), boxes=[np.array([[1., 1., 5., 6.]])],
...                        classes=[np.array([0])])
>>> out = tempfile.mkdtemp()
>>> sorted(write_dataset({"train": split}, ["thing"], out, "yolo"))
['train']
"""

import json
import os
import shutil

import numpy as np

from toolkit.errors import DataError
from toolkit.tasks.object_detection.boxes import convert

SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}


def _images(split):
    """(file name, path to copy or None, uint8 image or None, (height, width)) of each image of a split."""
    from PIL import Image

    for index in range(len(split)):
        if split.paths is not None:
            path = split.paths[index]
            with Image.open(path) as image:
                size = (image.height, image.width)
            yield os.path.basename(path), path, None, size
        else:
            image = split.images[index]
            yield f"{index:06d}.png", None, image, image.shape[:2]


def _place(name, path, array, directory):
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, name)
    if path is not None:
        shutil.copyfile(path, target)
    else:
        from PIL import Image

        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(target)


def _number(value):
    return float(f"{float(value):.4f}")


def write_dataset(splits, class_names, output, layout):
    """Writes `{split: DetectionSplit}` (file or in-memory images) into `output` in `layout`; returns {split:
    images written}."""
    written = {}
    for split_name, split in splits.items():
        if split.dataset is not None:
            raise DataError("data convert: a TFDS source is not converted; read it with data.source: tfds")
        folder = SPLIT_FOLDERS[split_name]
        images, annotations, listing = [], [], []
        for index, (name, path, array, size) in enumerate(_images(split)):
            boxes, classes = np.reshape(split.boxes[index], (-1, 4)), np.reshape(split.classes[index], -1)
            stem = os.path.splitext(name)[0]
            if layout == "coco":
                _place(name, path, array, os.path.join(output, "images", folder))
                images.append({"id": index + 1, "file_name": name, "height": int(size[0]), "width": int(size[1])})
                for box, label in zip(convert(boxes, "xyxy", "xywh"), classes):
                    annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                        "category_id": int(label) + 1, "bbox": [_number(v) for v in box],
                                        "area": _number(box[2] * box[3]), "iscrowd": 0})
            elif layout == "voc":
                _place(name, path, array, os.path.join(output, "JPEGImages"))
                _write_voc(os.path.join(output, "Annotations", f"{stem}.xml"), name, size, boxes, classes,
                           class_names)
                listing.append(stem)
            else:
                _place(name, path, array, os.path.join(output, "images", folder))
                directory = os.path.join(output, "labels", folder)
                os.makedirs(directory, exist_ok=True)
                with open(os.path.join(directory, f"{stem}.txt"), "w", encoding="utf-8") as f:
                    for box, label in zip(convert(boxes, "xyxy", "rel_center_xywh", size), classes):
                        f.write(f"{int(label)} " + " ".join(f"{v:.6f}" for v in box) + "\n")
        if layout == "coco":
            os.makedirs(os.path.join(output, "annotations"), exist_ok=True)
            with open(os.path.join(output, "annotations", f"instances_{folder}.json"), "w", encoding="utf-8") as f:
                json.dump({"images": images, "annotations": annotations,
                           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]}, f)
        elif layout == "voc":
            os.makedirs(os.path.join(output, "ImageSets", "Main"), exist_ok=True)
            with open(os.path.join(output, "ImageSets", "Main", f"{folder}.txt"), "w", encoding="utf-8") as f:
                f.write("".join(f"{stem}\n" for stem in listing))
        written[split_name] = len(split)
    if layout == "yolo":
        with open(os.path.join(output, "classes.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))
    return written


def _write_voc(path, file_name, size, boxes, classes, class_names):
    from xml.sax.saxutils import escape

    os.makedirs(os.path.dirname(path), exist_ok=True)
    objects = "".join(
        f"  <object><name>{escape(class_names[int(label)])}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{_number(box[0] + 1):g}</xmin><ymin>{_number(box[1] + 1):g}</ymin>"
        f"<xmax>{_number(box[2]):g}</xmax><ymax>{_number(box[3]):g}</ymax></bndbox></object>\n"
        for box, label in zip(boxes, classes))
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"<annotation>\n  <filename>{escape(file_name)}</filename>\n  <size><width>{size[1]}</width>"
                f"<height>{size[0]}</height><depth>3</depth></size>\n{objects}</annotation>\n")


def convert_command(args, log):
    """`toolkit data convert --from F --to T SOURCE_DIR OUTPUT_DIR`."""
    from toolkit.tasks.object_detection.sources import DETECTION_SOURCES
    from toolkit.tasks.object_detection.task import DetectionDataConfig

    if os.path.isdir(args.output) and os.listdir(args.output):
        raise DataError(f"{args.output}: exists and is not empty; give a new directory")
    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    config = DetectionDataConfig(source=args.source_format, path=args.source, classes=classes,
                                 validation_fraction=0.0, test_fraction=0.0)
    data = DETECTION_SOURCES.get(args.source_format)(config, 0)
    staging = args.output.rstrip("/") + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    written = write_dataset(data.splits, data.class_names, staging, args.target_format)
    if os.path.isdir(args.output):
        os.rmdir(args.output)
    os.replace(staging, args.output)
    skipped = sum(len(split.skipped_files) for split in data.splits.values())
    counts = ", ".join(f"{name} {count}" for name, count in written.items())
    print(f"{sum(written.values())} images ({counts}), {len(data.class_names)} classes, {args.source_format} -> "
          f"{args.target_format} in {args.output}" + (f"; {skipped} bad annotations skipped" if skipped else ""))
