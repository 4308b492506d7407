"""Object detection: box formats, pycocotools metrics on known detections, the three annotation layouts (and
their bad cases), conversion between them, box-aware augmentation, a tiny detector that overfits, and the
train -> export (NMS inside) -> verify -> predict -> serve path."""

import json
import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import DataError
from toolkit.tasks.object_detection.boxes import compare_detections, convert, iou_matrix, match_detections

from conftest import run_cli

CLASSES = ["square", "bar"]


# ------------------------------------------------------------------------------------------- boxes


@pytest.mark.parametrize("fmt", ["xywh", "center_xywh", "rel_center_xywh", "yxyx"])
def test_box_formats_round_trip(fmt):
    boxes = np.array([[3.0, 4.0, 20.0, 30.0], [0.0, 0.0, 64.0, 48.0]])
    there = convert(boxes, "xyxy", fmt, image_size=(48, 64))
    np.testing.assert_allclose(convert(there, fmt, "xyxy", image_size=(48, 64)), boxes)
    if fmt == "rel_center_xywh":
        np.testing.assert_allclose(there[1], [0.5, 0.5, 1.0, 1.0])


def test_iou_and_matching_of_detections():
    assert iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).round(4).tolist() == \
        [[1.0, 0.3333, 0.0]]
    reference = np.array([[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.5, 0]])
    moved = reference.copy()
    moved[0, 4] = 0.8999
    pairs, diff = match_detections(reference, moved)
    assert len(pairs) == 2 and abs(diff - 1e-4) < 1e-9
    other_class = moved.copy()
    other_class[1, 5] = 1
    assert compare_detections([reference], [other_class])[1:] == (0.5, 2)
    assert compare_detections([reference], [reference[:1]])[1] == 0.5  # a missing detection counts


def test_pycocotools_gives_the_known_average_precision():
    from toolkit.tasks.object_detection.metrics import coco_metrics

    truth = [(np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float64), np.array([0, 0]))]
    found = [np.array([[0, 0, 10, 10, 0.9, 0],         # true positive
                       [50, 50, 60, 60, 0.8, 0],       # false positive
                       [20, 20, 40, 40, 0.7, 0]])]     # true positive
    metrics = coco_metrics(truth, found, ["thing", "other"], (64, 64))
    # precision 1 up to recall 0.5 (51 of COCO's 101 recall points), then 2/3 up to recall 1 (50 points)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert metrics["map_50"] == pytest.approx(expected, abs=1e-6)
    assert metrics["map"] == pytest.approx(expected, abs=1e-6)  # every IoU threshold is met exactly
    assert metrics["per_class"]["thing"]["objects"] == 2 and metrics["ar_100"] == pytest.approx(1.0)
    shifted = [np.array([[0, 0, 10, 10, 0.9, 0], [24, 24, 44, 44, 0.7, 0]])]  # IoU 0.47: found at no threshold
    assert coco_metrics(truth, shifted, ["thing", "other"], (64, 64))["map_50"] == pytest.approx(
        (51 * 1.0) / 101, abs=1e-6)


# ------------------------------------------------------------------------------------ annotations


def make_yolo_folder(root, count=8, size=(48, 64), seed=0, problems=()):
    """A YOLO dataset of bright squares (class 0) and bars (class 1) on noise, with train/ and val/."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    truth = {}
    for split, number in (("train", count), ("val", max(2, count // 4))):
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.makedirs(os.path.join(root, "labels", split), exist_ok=True)
        for index in range(number):
            height, width = size
            image = rng.randint(0, 40, (height, width, 3)).astype(np.uint8)
            lines, boxes = [], []
            for label, (h, w) in enumerate(((12, 12), (6, 20))):
                y, x = rng.randint(0, height - h), rng.randint(0, width - w)
                image[y:y + h, x:x + w] = (220, 220, 220) if label == 0 else (220, 60, 60)
                boxes.append([x, y, x + w, y + h, label])
                lines.append(f"{label} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} "
                             f"{h / height:.6f}")
            stem = f"{split}{index:03d}"
            Image.fromarray(image).save(os.path.join(root, "images", split, f"{stem}.png"))
            with open(os.path.join(root, "labels", split, f"{stem}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
            truth[stem] = np.array(boxes, np.float64)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    train = os.path.join(root, "images", "train")
    if "no_label" in problems:
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(os.path.join(train, "lonely.png"))
    if "bad_line" in problems:
        with open(os.path.join(root, "labels", "train", "train000.txt"), "a") as f:
            f.write("0 0.5 oops\n")
    if "unknown_class" in problems:
        with open(os.path.join(root, "labels", "train", "train001.txt"), "a") as f:
            f.write("7 0.5 0.5 0.1 0.1\n")
    if "outside" in problems:
        with open(os.path.join(root, "labels", "train", "train002.txt"), "a") as f:
            f.write("0 0.95 0.5 0.3 0.2\n")
    if "degenerate" in problems:
        with open(os.path.join(root, "labels", "train", "train003.txt"), "a") as f:
            f.write("0 0.5 0.5 0.0 0.1\n")
    return str(root), truth


def data_config(source, path, **extra):
    from toolkit.tasks.object_detection.task import DetectionDataConfig

    return DetectionDataConfig(source=source, path=str(path), validation_fraction=0.0, test_fraction=0.0,
                               **extra)


def test_yolo_layout_reads_boxes_in_pixels(tmp_path):
    from toolkit.tasks.object_detection.sources import load_yolo

    root, truth = make_yolo_folder(tmp_path / "yolo")
    data = load_yolo(data_config("yolo", root), 0)
    assert data.class_names == CLASSES and set(data.splits) == {"train", "validation"}
    split = data.splits["train"]
    for path, boxes, classes in zip(split.paths, split.boxes, split.classes):
        expected = truth[os.path.splitext(os.path.basename(path))[0]]
        np.testing.assert_allclose(boxes, expected[:, :4], atol=1e-3)
        assert classes.tolist() == expected[:, 4].astype(int).tolist()


@pytest.mark.parametrize("problem, message", [
    ("no_label", "lonely.png: no label file"),
    ("bad_line", "train000.txt:3: expected 'class cx cy w h'"),
    ("unknown_class", "train001.txt:3: unknown class 7"),
    ("outside", "lies outside its 64x48 image"),
    ("degenerate", "degenerate box"),
])
def test_bad_yolo_annotations_are_skipped_and_counted_or_fail(tmp_path, problem, message):
    from toolkit.tasks.object_detection.sources import load_yolo

    root, _ = make_yolo_folder(tmp_path / "yolo", problems=(problem,))
    data = load_yolo(data_config("yolo", root), 0)
    train = data.splits["train"]
    assert any(message in line for line in train.skipped_files), train.skipped_files
    assert len(train) == 8  # the other images and boxes are kept
    with pytest.raises(DataError, match="data.on_error: skip") as error:
        load_yolo(data_config("yolo", root, on_error="fail"), 0)
    assert message in str(error.value) and "\n" not in str(error.value)


def write_fashion_layouts(tmp_path, layout):
    """A few fashion detection scenes written in `layout` through `toolkit data convert`'s writer."""
    from toolkit.tasks.object_detection.convert import write_dataset
    from toolkit.tasks.object_detection.sources import DetectionSplit, compose_detection_scenes

    rng = np.random.RandomState(0)
    items = rng.randint(0, 255, (20, 28, 28)).astype(np.uint8)
    images, boxes, classes = compose_detection_scenes(items, np.arange(20) % 3, 6, 64, (1, 3), (1.0, 1.5), 0.3, 1,
                                                      10, 0)
    split = DetectionSplit(images=images, boxes=boxes, classes=classes)
    names = ["a", "b", "c"]
    write_dataset({"train": split, "test": split.take(np.arange(2))}, names, str(tmp_path / layout), layout)
    return str(tmp_path / layout), split, names


@pytest.mark.parametrize("layout", ["coco", "voc", "yolo"])
def test_each_layout_reads_back_what_the_converter_wrote(tmp_path, layout):
    from toolkit.tasks.object_detection.sources import DETECTION_SOURCES

    root, split, names = write_fashion_layouts(tmp_path, layout)
    extra = {"classes": names} if layout != "coco" else {}
    data = DETECTION_SOURCES.get(layout)(data_config(layout, root, **extra), 0)
    assert data.class_names == names and len(data.splits["train"]) == 6 and len(data.splits["test"]) == 2
    for index in range(6):
        np.testing.assert_allclose(data.splits["train"].boxes[index], split.boxes[index], atol=1e-3)
        assert data.splits["train"].classes[index].tolist() == split.classes[index].tolist()


def test_coco_and_voc_bad_annotations_name_their_file(tmp_path):
    from toolkit.tasks.object_detection.sources import load_coco, load_voc

    root, _, names = write_fashion_layouts(tmp_path, "coco")
    path = os.path.join(root, "annotations", "instances_train.json")
    document = json.load(open(path))
    document["annotations"][0]["bbox"] = [50, 50, 40, 40]  # outside the 64x64 image
    document["annotations"][1]["category_id"] = 99
    document["images"][2]["file_name"] = "missing.png"
    json.dump(document, open(path, "w"))
    train = load_coco(data_config("coco", root), 0).splits["train"]
    text = "\n".join(train.skipped_files)
    assert "lies outside its 64x64 image" in text and "category_id 99" in text and "missing.png" in text
    assert len(train) == 5 and train.skipped_boxes == 2

    root, _, _ = write_fashion_layouts(tmp_path, "voc")
    os.remove(os.path.join(root, "Annotations", "000001.xml"))
    data = load_voc(data_config("voc", root, classes=["a", "b"]), 0)  # "c" is unknown
    text = "\n".join(data.splits["train"].skipped_files)
    assert "000001.xml: no annotation file" in text
    if any(c.tolist().count(2) for c in write_fashion_layouts(tmp_path / "again", "voc")[1].classes):
        assert "unknown class 'c'" in text
    with pytest.raises(DataError, match="000001.xml"):
        load_voc(data_config("voc", root, classes=names, on_error="fail"), 0)


def test_data_convert_command_between_layouts(tmp_path):
    root, _ = make_yolo_folder(tmp_path / "yolo")
    result = run_cli("data", "convert", "--from", "yolo", "--to", "coco", root, str(tmp_path / "coco"))
    assert result.returncode == 0, result.stderr
    assert "10 images (train 8, validation 2), 2 classes, yolo -> coco" in result.stdout
    again = run_cli("data", "convert", "--from", "coco", "--to", "voc", str(tmp_path / "coco"), str(tmp_path / "coco"))
    assert again.returncode == 2 and "exists and is not empty" in again.stderr
    result = run_cli("data", "convert", "--from", "coco", "--to", "voc", str(tmp_path / "coco"), str(tmp_path / "voc"))
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(tmp_path / "voc" / "Annotations")) == 10


def test_voc_from_tfds_with_mocked_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import toolkit.data.tfds as tfds_sources
    from toolkit.tasks import make_task

    monkeypatch.setattr(tfds_sources, "can_resolve", lambda host, timeout=5.0: True)
    recipe = detection_recipe(tmp_path, tmp_path, epochs=1, data={
        "source": "tfds", "tfds_name": "voc/2007", "tfds_data_dir": str(tmp_path / "tfds"), "path": None,
        "limit": {"train": 6, "test": 4}, "max_boxes": 5})
    with tfds.testing.mock_data(num_examples=10):
        task = make_task(recipe)
        assert len(task.class_names) == 20 and task.class_names[0] == "aeroplane"
        images, targets = next(iter(task.build_inputs("train")))
        assert images.shape[1:] == (64, 64, 3) and targets.shape[1:] == (5, 5)
        valid = targets.numpy()[..., 4] >= 0
        boxes = targets.numpy()[..., :4][valid]
        assert valid.any() and (boxes >= 0).all() and (boxes <= 64).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


# ------------------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("augment", [{"flip": "horizontal"}, {"translation": 0.2}, {"zoom": 0.3},
                                     {"flip": "horizontal_and_vertical", "translation": 0.1, "zoom": 0.2}])
def test_augmentation_moves_boxes_with_their_pixels(augment):
    import tensorflow as tf

    from toolkit.config.schema import AugmentConfig
    from toolkit.tasks.image.pipeline import build_augmenter
    from toolkit.tasks.object_detection.pipeline import augment_batch

    images = np.zeros((16, 64, 64, 1), np.float32)
    targets = np.full((16, 3, 5), -1.0, np.float32)
    rng = np.random.RandomState(1)
    for index in range(16):
        y, x = rng.randint(8, 40), rng.randint(8, 40)
        images[index, y:y + 16, x:x + 12] = 255.0
        targets[index, 0] = [x, y, x + 12, y + 16, index % 2]
    augmenter = build_augmenter(AugmentConfig(**augment), seed=3, bounding_box_format="xyxy")
    out_images, out_targets = augment_batch(augmenter, tf.constant(images), tf.constant(targets))
    moved = 0
    for image, rows, before in zip(out_images.numpy(), out_targets.numpy(), targets):
        bright = np.argwhere(image[..., 0] > 127)
        if not len(bright):  # pushed out of the image: its box must be gone too
            assert (rows[:, 4] < 0).all()
            continue
        assert rows[0, 4] == before[0, 4] and (rows[1:, 4] < 0).all()
        pixels = [bright[:, 1].min(), bright[:, 0].min(), bright[:, 1].max() + 1, bright[:, 0].max() + 1]
        assert iou_matrix(rows[:1, :4], [pixels])[0, 0] > 0.8, (rows[0], pixels)
        moved += not np.allclose(rows[0, :4], before[0, :4])
    assert moved > 0


# ---------------------------------------------------------------------------------------- training


def detection_recipe(root, data_path, epochs, **sections):
    recipe = {
        "task": "object_detection", "name": "det", "description": "tiny detection",
        "data": {"source": "yolo", "path": str(data_path), "image_size": [64, 64], "channels": 3,
                 "test_fraction": 0.2, "validation_fraction": 0.0},
        "model": {"backbone": "resnet_tiny", "weights": "none", "head": {"stride": 8, "filters": 32, "convs": 1}},
        "train": {"epochs": epochs, "batch_size": 8, "verbose": 0, "optimizer": {"learning_rate": 0.003},
                  "schedule": {"name": "cosine", "warmup_epochs": 1}},
        "export": {"formats": ["saved_model", "onnx", "tflite"], "verify_samples": 4},
        "output": {"dir": str(root / "runs")},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return load_recipe(recipe)


@pytest.mark.slow
def test_a_tiny_detector_overfits_a_few_scenes(tmp_path):
    import toolkit
    from toolkit.tasks import make_task

    root, _ = make_yolo_folder(tmp_path / "yolo", count=8)
    recipe = detection_recipe(tmp_path, root, epochs=1)
    task = make_task(recipe)
    task.data.splits["test"] = task.data.splits["train"]  # overfit: evaluated on its own training scenes
    model = task.build_model()
    import keras

    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=task.build_losses())
    model.fit(task.build_inputs("train", training=False).repeat(), steps_per_epoch=1, epochs=150, verbose=0)
    metrics = task.evaluate(model)
    assert metrics["map_50"] >= 0.9, metrics["map_50"]
    assert toolkit  # the public package imports with the task registered


@pytest.fixture(scope="session")
def trained_detection(tmp_path_factory):
    from toolkit.config import recipe_to_yaml

    root = tmp_path_factory.mktemp("det")
    folder, _ = make_yolo_folder(root / "data", count=16)
    recipe = detection_recipe(root, folder, epochs=40, data={"validation_fraction": 0.0})
    path = root / "det.yaml"
    path.write_text(recipe_to_yaml(recipe))
    env = {"TOOLKIT_HOME": str(root / "home")}
    result = run_cli("train", str(path), check=True, env=env)
    return {"run_dir": str(root / "runs" / "det"), "data": folder, "stdout": result.stdout, "env": env}


@pytest.mark.slow
def test_detection_train_export_verify_predict_in_every_runtime(trained_detection, tmp_path):
    run_dir = trained_detection["run_dir"]
    assert "map_50" in trained_detection["stdout"]
    for name in ("model.keras", "metrics.json", "predictions.png", "precision_recall.png", "MODEL_CARD.md",
                 "export/model.onnx", "export/model.tflite", "export/saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    report = json.load(open(os.path.join(run_dir, "export", "verify.json")))
    assert report["passed"] and report["agreement_unit"].startswith("detection matched")
    for entry in report["formats"].values():  # NMS inside every export: the same boxes after NMS
        for figures in entry["endpoints"].values():
            assert figures["agreement"] == 1.0 and figures["decisions"] > 0 and figures["max_abs_diff"] < 1e-4
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))["test"]
    assert set(metrics["per_class"]) == set(CLASSES) and 0 <= metrics["map"] <= metrics["map_50"] <= 1
    card = open(os.path.join(run_dir, "MODEL_CARD.md")).read()
    assert "mAP@0.5" in card and "AP@[.5:.95]" in card

    image = os.path.join(trained_detection["data"], "images", "val", "val000.png")
    answers = {}
    for model in (run_dir, os.path.join(run_dir, "export", "saved_model"), os.path.join(run_dir, "export", "model.onnx"),
                  os.path.join(run_dir, "export", "model.tflite")):
        out = tmp_path / os.path.basename(model)
        result = run_cli("predict", model, image, "--output-dir", str(out), "--json", "--score-threshold", "0.05",
                         env=trained_detection["env"])
        assert result.returncode == 0, result.stderr
        prediction = json.loads(result.stdout)["predictions"][0]
        from PIL import Image

        with Image.open(prediction["image"]) as png:
            assert png.size == (prediction["width"], prediction["height"]) == (64, 48)
        written = json.load(open(prediction["json"]))
        assert len(written["coco"]) == prediction["count"] == len(prediction["detections"])
        answers[model] = np.array([d["box"] + [d["score"], d["class_id"]] for d in prediction["detections"]])
    reference = answers[run_dir]
    assert len(reference)
    for model, rows in answers.items():
        assert compare_detections([reference], [rows])[1] == 1.0, model
    fewer = run_cli("predict", os.path.join(run_dir, "export", "model.onnx"), image, "--json", "--max-detections",
                    "1", "--score-threshold", "0.0", "--output-dir", str(tmp_path / "fewer"),
                    env=trained_detection["env"])
    assert json.loads(fewer.stdout)["predictions"][0]["count"] == 1
    wrong = run_cli("predict", os.path.join(run_dir, "export", "model.onnx"), "--text", "x",
                    env=trained_detection["env"])
    assert wrong.returncode == 2 and "\n" not in wrong.stderr.strip()


@pytest.mark.slow
def test_serving_default_answers_in_each_images_pixels(trained_detection):
    import tensorflow as tf
    from PIL import Image

    loaded = tf.saved_model.load(os.path.join(trained_detection["run_dir"], "export", "saved_model"))
    small = os.path.join(trained_detection["data"], "images", "val", "val000.png")
    image = np.asarray(Image.open(small))
    large = os.path.join(str(os.path.dirname(small)), "..", "..", "large.png")
    Image.fromarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)).save(large)
    answer = loaded.signatures["serving_default"](image_bytes=tf.constant([open(p, "rb").read() for p in (small, large)]))
    assert answer["image_size"].numpy().tolist() == [[48, 64], [96, 128]]
    count, boxes = answer["count"].numpy(), answer["boxes"].numpy()
    scores, classes = answer["scores"].numpy(), answer["classes"].numpy()
    assert count[0] > 0 and count[1] > 0
    # The best box of the small image is found in the 2x image at twice its coordinates (resizing 2x larger
    # pixels to the model size is not bit-identical, so scores differ slightly).
    best = np.concatenate([boxes[0, 0] * 2, [scores[0, 0], classes[0, 0]]])
    large_rows = np.concatenate([boxes[1, :5], scores[1, :5, None], classes[1, :5, None]], axis=1)
    assert match_detections([best], large_rows, min_iou=0.8)[0], (best, large_rows)
    names = answer["class_names"].numpy()
    assert all(n.decode() in CLASSES for n in names[0, :count[0]]) and names[0, count[0]:].tolist() == \
        [b""] * (len(names[0]) - count[0])


@pytest.mark.slow
def test_toolkit_serve_returns_boxes_per_instance(trained_detection):
    import base64
    import urllib.request

    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    export = os.path.join(trained_detection["run_dir"], "export")
    path = os.path.join(trained_detection["data"], "images", "val", "val000.png")
    model = load(resolve_model(export, "onnx"))
    server = Server(model, name="det").start(port=0)
    try:
        payload = json.dumps({"signature_name": "toolkit",
                              "instances": [{"b64": base64.b64encode(open(path, "rb").read()).decode()}]}).encode()
        request = urllib.request.Request(server.url + "/v1/models/det:predict", data=payload, method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            prediction = json.loads(answer.read())["predictions"][0]
    finally:
        server.stop()
    expected = model.predict([path])[0]
    assert prediction["count"] == expected["count"] and prediction["detections"] == expected["detections"]


@pytest.mark.slow
def test_tflite_int8_detector_keeps_nms_and_reports_the_map_delta(trained_detection, tmp_path):
    import shutil

    run_dir = str(tmp_path / "det")
    shutil.copytree(trained_detection["run_dir"], run_dir)
    result = run_cli("export", run_dir, "--format", "tflite_int8", env=trained_detection["env"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.load(open(os.path.join(run_dir, "export", "verify.json")))
    figures = report["formats"]["tflite_int8"]["endpoints"]["tflite_int8"]
    assert figures["passed"] and figures["decisions"] > 0
    quality = report["quality"]  # the test-split mAP@0.5 of the int8 file beside the Keras model's
    assert quality["metric"] == "map_50" and quality["examples"] > 0
    delta = quality["formats"]["tflite_int8"]["delta"]
    assert abs(delta) <= 0.25, quality
    assert "tflite_int8" in result.stdout and "map_50" in result.stdout


@pytest.mark.slow
def test_tf_serving_rest_answers_with_the_saved_models_named_outputs(trained_detection):
    """TF Serving's REST row format on the SavedModel: the answer is `serving_default`'s outputs, per instance."""
    import base64
    import urllib.request

    import tensorflow as tf

    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    export = os.path.join(trained_detection["run_dir"], "export")
    path = os.path.join(trained_detection["data"], "images", "val", "val001.png")
    data = open(path, "rb").read()
    server = Server(load(resolve_model(export, "saved_model")), name="det").start(port=0)
    try:
        payload = json.dumps({"instances": [{"b64": base64.b64encode(data).decode()}]}).encode()
        request = urllib.request.Request(server.url + "/v1/models/det:predict", data=payload, method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            prediction = json.loads(answer.read())["predictions"][0]
    finally:
        server.stop()
    expected = tf.saved_model.load(os.path.join(export, "saved_model")).signatures["serving_default"](
        image_bytes=tf.constant([data]))
    assert set(prediction) == {"boxes", "scores", "classes", "class_names", "count", "image_size"}
    count = int(expected["count"].numpy()[0])
    assert prediction["count"] == count and prediction["image_size"] == [48, 64]
    np.testing.assert_allclose(prediction["boxes"][:count], expected["boxes"].numpy()[0, :count], rtol=1e-6)
    assert prediction["class_names"][:count] == [n.decode() for n in expected["class_names"].numpy()[0, :count]]
