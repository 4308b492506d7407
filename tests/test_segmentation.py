"""Segmentation: decoders, joint augmentation, metrics, data sources and the
train -> export -> verify -> predict path."""

import json
import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import DataError
from toolkit.tasks import make_task
from toolkit.tasks.segmentation.sources import SEGMENTATION_SOURCES, compose_scenes, read_mask, tile_image
from toolkit.tasks.segmentation.task import confusion_matrix, segmentation_metrics

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

COLOURS = [(20, 20, 20), (220, 60, 60), (60, 220, 60)]


def make_mask_folder(root, count=12, size=(40, 48), seed=0, problems=()):
    """Writes images/ and masks/ with 3 classes: background, a red square, a green disc."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    for index in range(count):
        height, width = size[0] + rng.randint(-4, 5), size[1] + rng.randint(-4, 5)
        mask = np.zeros((height, width), np.uint8)
        top, left = rng.randint(0, height // 2), rng.randint(0, width // 2)
        mask[top:top + height // 3, left:left + width // 3] = 1
        yy, xx = np.mgrid[:height, :width]
        cy, cx = rng.randint(height // 3, height), rng.randint(width // 3, width)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < (min(height, width) // 5) ** 2] = 2
        image = np.asarray(COLOURS, np.float32)[mask] + rng.normal(0, 12, (height, width, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(root, "images", f"s{index:03d}.png"))
        if index % 2:  # palette PNG: indices stored in the pixels
            palette_mask = Image.fromarray(mask, mode="P")
            palette_mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
            palette_mask.save(os.path.join(root, "masks", f"s{index:03d}.png"))
        else:
            Image.fromarray(mask).save(os.path.join(root, "masks", f"s{index:03d}.png"))
    if "missing_mask" in problems:
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.path.join(root, "images", "lonely.png"))
    if "wrong_size" in problems:
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.path.join(root, "images", "small.png"))
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(os.path.join(root, "masks", "small.png"))
    if "bad_index" in problems:
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.path.join(root, "images", "odd.png"))
        Image.fromarray(np.full((40, 40), 7, np.uint8)).save(os.path.join(root, "masks", "odd.png"))
    return str(root)


def seg_recipe(tmp_path, data_path, **sections):
    recipe = {
        "task": "segmentation", "name": "seg", "description": "tiny segmentation",
        "data": {"source": "folder", "path": str(data_path), "classes": ["background", "square", "disc"],
                 "image_size": [32, 32], "channels": 3, "validation_fraction": 0.2, "test_fraction": 0.25},
        "model": {"backbone": "resnet_tiny", "weights": "none",
                  "decoder": {"name": "unet", "filters": [32, 16, 16, 16, 8], "dropout": 0.0}},
        "train": {"epochs": 2, "batch_size": 4, "verbose": 0},
        "export": {"verify_samples": 4},
        "output": {"dir": str(tmp_path / "runs")},
    }
    for key, value in sections.items():
        recipe.setdefault(key, {}).update(value)
    return load_recipe(recipe)


# ----------------------------------------------------------------- metrics


def test_mean_iou_matches_a_hand_computed_example():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    confusion = confusion_matrix(truth, predicted, 3)
    # class 0: tp 2, fp 1 (the 2 read as 0), fn 1 (the 0 read as 1) -> 2/4
    # class 1: tp 3, fp 1, fn 0 -> 3/4 ; class 2: tp 1, fp 0, fn 1 -> 1/2
    metrics = segmentation_metrics(confusion, ["a", "b", "c"])
    assert metrics["per_class"]["a"]["iou"] == pytest.approx(0.5)
    assert metrics["per_class"]["b"]["iou"] == pytest.approx(0.75)
    assert metrics["per_class"]["c"]["iou"] == pytest.approx(0.5)
    assert metrics["mean_iou"] == pytest.approx((0.5 + 0.75 + 0.5) / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(6 / 8)


def test_binary_metrics_and_ignore_index():
    truth = np.array([1, 1, 0, 0, 255])
    predicted = np.array([1, 0, 0, 1, 1])
    metrics = segmentation_metrics(confusion_matrix(truth, predicted, 2, ignore_index=255), ["bg", "fg"])
    assert metrics["pixels"] == 4
    assert metrics["foreground_iou"] == pytest.approx(1 / 3) and metrics["dice"] == pytest.approx(0.5)


def test_absent_class_is_left_out_of_the_mean():
    metrics = segmentation_metrics(confusion_matrix([0, 0, 1], [0, 0, 1], 3), ["a", "b", "c"])
    assert metrics["per_class"]["c"]["iou"] is None and metrics["mean_iou"] == 1.0


# ------------------------------------------------------------------ models


@pytest.mark.parametrize("backbone, size", [("resnet_tiny", 32), ("mobilenet_v3_small", 64), ("mobilenet_v2", 64)])
@pytest.mark.parametrize("decoder", ["unet", "deeplab_v3_plus"])
def test_decoders_build_on_registry_backbones(tmp_path, backbone, size, decoder):
    recipe = seg_recipe(tmp_path, tmp_path, model={
        "backbone": backbone, "weights": "none",
        "decoder": {"name": decoder, "filters": [32, 16, 16, 16, 8], "rates": [1, 2], "low_level_filters": 8},
    }, data={"image_size": [size, size]})
    task = make_task(recipe)
    task.metadata = {"class_names": ["a", "b", "c"]}
    model = task.build_model()
    output = model.predict(np.zeros((2, size, size, 3), np.float32), verbose=0)
    assert output.shape == (2, size, size, 3)
    np.testing.assert_allclose(output.sum(-1), 1.0, atol=1e-5)


# ------------------------------------------------------------- augmentation


def test_augmentation_keeps_mask_aligned_with_image():
    import tensorflow as tf

    from toolkit.config.schema import AugmentConfig
    from toolkit.tasks.image.pipeline import build_augmenter
    from toolkit.tasks.segmentation.pipeline import segmentation_batches

    # A pattern of large blocks whose image value encodes the class: 0, 100, 200.
    mask = np.zeros((32, 32), np.int32)
    mask[4:20, 6:14] = 1
    mask[18:30, 16:30] = 2
    images = np.repeat((mask * 100.0)[None, ..., None], 8, axis=0).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.repeat(mask[None], 8, axis=0)))
    augmenter = build_augmenter(AugmentConfig(flip="horizontal_and_vertical", rotation=0.2, zoom=0.2,
                                              translation=0.2), seed=3)
    batch = next(iter(segmentation_batches(dataset, 8, 3, training=True, seed=3, augmenter=augmenter)))
    augmented, one_hot = batch[0].numpy()[..., 0], batch[1].numpy()
    labels = one_hot.argmax(-1)
    assert not np.array_equal(labels[0], mask)  # it did transform
    decided = np.abs(augmented - np.round(augmented / 100) * 100) < 1  # away from interpolated edges
    agree = labels[decided] == np.round(augmented[decided] / 100)
    assert agree.mean() > 0.99, agree.mean()


# -------------------------------------------------------------------- data


def test_folder_pairs_palette_and_index_masks(tmp_path):
    folder = make_mask_folder(tmp_path / "data", count=8)
    assert read_mask(os.path.join(folder, "masks", "s001.png")).max() == 2  # palette indices, not colours
    data = SEGMENTATION_SOURCES.get("folder")(seg_recipe(tmp_path, folder).data, 0)
    assert sum(len(split) for split in data.splits.values()) == 8
    assert all(len(split.paths) == len(split.mask_paths) for split in data.splits.values())


@pytest.mark.parametrize("problem, message", [
    ("missing_mask", "lonely.png: no mask"),
    ("wrong_size", "mask is 40x30, its image is 40x40"),
    ("bad_index", "class index 7 is outside data.classes"),
])
def test_bad_masks_fail_or_are_skipped_and_counted(tmp_path, problem, message):
    folder = make_mask_folder(tmp_path / "data", count=8, problems=(problem,))
    recipe = seg_recipe(tmp_path, folder, data={"on_error": "fail"})
    with pytest.raises(DataError, match=message):
        SEGMENTATION_SOURCES.get("folder")(recipe.data, 0)
    task = make_task(seg_recipe(tmp_path, folder, data={"on_error": "skip", "validation_fraction": 0.0}))
    for split in ("train", "test"):
        task.build_inputs(split)
    report = task.data_report()
    skipped = [f for entry in report.values() for f in entry["skipped_files"]]
    assert len(skipped) == 1 and message.split(":")[0].split(" ")[0] in skipped[0]


def test_colour_mask_and_missing_classes_are_clear_errors(tmp_path):
    from PIL import Image

    folder = make_mask_folder(tmp_path / "data", count=4)
    Image.fromarray(np.random.randint(0, 255, (44, 52, 3), np.uint8)).save(os.path.join(folder, "masks", "s000.png"))
    with pytest.raises(DataError, match="colour image"):
        read_mask(os.path.join(folder, "masks", "s000.png"))
    recipe = seg_recipe(tmp_path, folder, data={"classes": None})
    with pytest.raises(DataError, match="data.classes: required"):
        SEGMENTATION_SOURCES.get("folder")(recipe.data, 0)


def test_fashion_scenes_are_deterministic_and_use_their_own_items():
    rng = np.random.RandomState(0)
    train_items = np.full((5, 28, 28), 100, np.uint8)
    test_items = np.full((5, 28, 28), 200, np.uint8)
    labels = np.arange(5)
    first = compose_scenes(train_items, labels, 6, 64, (2, 4), 10, seed=1)
    again = compose_scenes(train_items, labels, 6, 64, (2, 4), 10, seed=1)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert set(np.unique(first[0])) <= {0, 100}  # only train items on train canvases
    test = compose_scenes(test_items, labels, 6, 64, (2, 4), 10, seed=rng.randint(100))
    assert set(np.unique(test[0])) <= {0, 200}
    assert first[0].shape == (6, 64, 64, 1) and set(np.unique(first[1])) <= set(range(6))
    assert np.array_equal(first[0][..., 0] > 0, first[1] > 0)  # labelled exactly where items are
    apart = compose_scenes(np.full((5, 28, 28), 100, np.uint8), labels, 20, 64, (3, 3), 10, seed=2, max_overlap=0)
    for mask in apart[1]:  # without overlap every item keeps all of its 28x28 pixels
        counts = np.bincount(mask.ravel(), minlength=6)[1:]
        assert all(c % 784 == 0 for c in counts)


def test_nuclei_tiles_never_mix_train_and_test_pixels(tmp_path):
    import tifffile

    image = np.tile(np.arange(256, dtype=np.uint16), (256, 1))  # pixel value = its column
    mask = np.zeros((256, 256), np.uint16)
    mask[100:140, 180:230] = 7
    folder = tmp_path / "stardist"
    folder.mkdir()
    tifffile.imwrite(folder / "img2d.tif", image)
    tifffile.imwrite(folder / "mask2d.tif", mask)
    recipe = seg_recipe(tmp_path, folder, data={"source": "nuclei", "classes": None, "channels": 1,
                                                "image_size": [32, 32], "tiles": {"size": 32, "stride": 16},
                                                "test_fraction": 0.25, "validation_fraction": 0.125})
    data = SEGMENTATION_SOURCES.get("nuclei")(recipe.data, 0)
    assert data.class_names == ["background", "nucleus"]
    columns = {name: {int(c) for tile in split.images for c in np.unique(tile)} for name, split in
               data.splits.items()}
    assert not columns["train"] & columns["test"] and not columns["validation"] & columns["test"]
    assert set(np.unique(data.splits["test"].masks)) <= {0, 1}
    images, masks = tile_image(image, mask, 32, 32, (192, 256))
    assert images.shape == (16, 32, 32) and masks.max() == 7


def test_nuclei_offline_without_files_is_one_line(tmp_path):
    recipe = seg_recipe(tmp_path, tmp_path / "empty", data={"source": "nuclei", "classes": None, "channels": 1,
                                                            "download": False})
    with pytest.raises(DataError, match="toolkit data fetch"):
        SEGMENTATION_SOURCES.get("nuclei")(recipe.data, 0)


def test_oxford_pets_with_mocked_tfds(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import toolkit.data.tfds as sources

    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: True)
    recipe = seg_recipe(tmp_path, tmp_path, data={"source": "tfds", "tfds_name": "oxford_iiit_pet", "classes": None,
                                                  "tfds_data_dir": str(tmp_path / "tfds"),
                                                  "limit": {"train": 6, "test": 4}})
    with tfds.testing.mock_data(num_examples=10):
        task = make_task(recipe)
        assert task.class_names == ["pet", "background", "border"]
        images, one_hot, weights = next(iter(task.build_inputs("train")))
        assert images.shape[1:] == (32, 32, 3) and one_hot.shape[-1] == 3 and weights.shape[1:] == (32, 32)


# ------------------------------------------------------------- end to end


@pytest.fixture(scope="session")
def trained_segmentation(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    folder = make_mask_folder(root / "data", count=24)
    recipe = seg_recipe(root, folder, train={"epochs": 3})
    from toolkit.config import recipe_to_yaml

    path = root / "seg.yaml"
    path.write_text(recipe_to_yaml(recipe))
    env = {"TOOLKIT_HOME": str(root / "home")}
    result = run_cli("train", str(path), check=True, env=env)
    return {"run_dir": str(root / "runs" / "seg"), "data": folder, "stdout": result.stdout, "env": env,
            "root": root}


@pytest.mark.slow
def test_segmentation_train_export_verify_predict(trained_segmentation, tmp_path):
    run_dir = trained_segmentation["run_dir"]
    assert "mean_iou" in trained_segmentation["stdout"] and "argmax per pixel" in trained_segmentation["stdout"]
    for name in ("model.keras", "metrics.json", "predictions.png", "MODEL_CARD.md", "export/model.onnx",
                 "export/saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        report = json.load(f)
    assert report["passed"] and report["agreement_unit"] == "argmax per pixel"
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)["test"]
    assert set(metrics["per_class"]) == {"background", "square", "disc"} and 0 <= metrics["mean_iou"] <= 1

    image = os.path.join(trained_segmentation["data"], "images", "s003.png")
    masks = {}
    for model in (run_dir, os.path.join(run_dir, "export", "saved_model"), os.path.join(run_dir, "export", "model.onnx")):
        out = tmp_path / os.path.basename(model)
        result = run_cli("predict", model, image, "--output-dir", str(out), "--json", env=trained_segmentation["env"])
        assert result.returncode == 0, result.stderr
        prediction = json.loads(result.stdout)["predictions"][0]
        from PIL import Image

        for kind in ("mask", "overlay"):
            with Image.open(prediction[kind]) as png:
                assert png.size == (prediction["width"], prediction["height"])
        with open(prediction["json"]) as f:
            areas = json.load(f)["areas"]
        assert sum(entry["pixels"] for entry in areas.values()) == prediction["width"] * prediction["height"]
        masks[model] = np.asarray(Image.open(prediction["mask"]))
    reference = masks[run_dir]
    for model, mask in masks.items():
        assert (mask == reference).all(axis=-1).mean() >= 0.999, model


@pytest.mark.slow
def test_serving_default_answers_at_each_image_size(trained_segmentation):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(trained_segmentation["run_dir"], "export", "saved_model"))
    folder = os.path.join(trained_segmentation["data"], "images")
    files = [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:3]]
    from PIL import Image

    sizes = [Image.open(path).size[::-1] for path in files]
    answer = loaded.signatures["serving_default"](image_bytes=tf.constant([open(p, "rb").read() for p in files]))
    assert [tuple(s) for s in answer["image_size"].numpy()] == [tuple(s) for s in sizes]
    mask = answer["mask"].numpy()
    for index, (height, width) in enumerate(sizes):
        assert (mask[index, :height, :width] >= 0).all() and (mask[index, height:, :] == -1).all()


@pytest.mark.slow
def test_toolkit_serve_returns_masks_inline(trained_segmentation):
    import base64
    import io
    import urllib.request

    from PIL import Image

    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    export = os.path.join(trained_segmentation["run_dir"], "export")
    path = os.path.join(trained_segmentation["data"], "images", "s003.png")
    model = load(resolve_model(export, "onnx"))
    server = Server(model, name="seg").start(port=0)
    try:
        with open(path, "rb") as f:
            payload = json.dumps({"signature_name": "toolkit", "instances": [{"b64": base64.b64encode(f.read()).decode()}]}).encode()
        request = urllib.request.Request(server.url + "/v1/models/seg:predict", data=payload, method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            prediction = json.loads(answer.read())["predictions"][0]
    finally:
        server.stop()
    assert set(prediction) == {"height", "width", "inference", "mask", "overlay", "areas"}  # files inline, no paths
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(prediction["mask"]["b64"]))))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        expected = model.predict([path], output_dir=tmp)[0]
        np.testing.assert_array_equal(mask, np.asarray(Image.open(expected["mask"])))
    assert mask.shape[:2] == (prediction["height"], prediction["width"])


@pytest.mark.slow
def test_tflite_exports_of_a_unet_keep_the_masks(trained_segmentation, tmp_path):
    import shutil

    run_dir = str(tmp_path / "seg")
    shutil.copytree(trained_segmentation["run_dir"], run_dir)
    result = run_cli("export", run_dir, "--format", "tflite,tflite_int8", env=trained_segmentation["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        report = json.load(f)
    assert report["formats"]["tflite"]["endpoints"]["tflite"]["max_abs_diff"] < 1e-4
    assert report["formats"]["tflite_int8"]["endpoints"]["tflite_int8"]["agreement"] >= 0.9  # argmax per pixel
    quality = report["quality"]
    assert quality["metric"] == "mean_iou" and quality["formats"]["tflite"]["delta"] == pytest.approx(0, abs=1e-6)
    assert abs(quality["formats"]["tflite_int8"]["delta"]) < 0.1


@pytest.mark.slow
def test_evaluate_prints_the_per_class_table_of_a_segmentation_run(trained_segmentation):
    result = run_cli("evaluate", trained_segmentation["run_dir"], env=trained_segmentation["env"])
    assert result.returncode == 0, result.stderr[-2000:]
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("class"))
    assert header.split() == ["class", "iou", "precision", "recall", "pixels"]
    assert "Traceback" not in result.stderr


def write_blob_micrograph(folder, height=192, width=256, seed=0):
    """A nuclei-like image (bright noisy discs on a dark background) and its mask, as the nuclei source reads."""
    import tifffile

    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), np.uint16)
    for index in range(int(height * width / 700)):
        cy, cx, radius = rng.randint(0, height), rng.randint(0, width), rng.randint(4, 9)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = index + 1
    image = np.where(mask > 0, 170.0, 25.0) + rng.normal(0, 18, (height, width))
    os.makedirs(folder, exist_ok=True)
    tifffile.imwrite(os.path.join(folder, "img2d.tif"), np.clip(image, 0, 255).astype(np.uint8))
    tifffile.imwrite(os.path.join(folder, "mask2d.tif"), mask)
    return (mask > 0).astype(np.int64), np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_a_model_trained_on_tiles_segments_a_whole_image_tile_by_tile_in_every_runtime(tmp_path):
    """Trained on 32px tiles, the model segments the whole 192x256 image at its own scale: on the held-out
    columns every runtime scores within 0.05 of the test-tile mIoU (resizing the image to 32x32 scores far less)."""
    from PIL import Image

    import toolkit
    from toolkit.config import recipe_to_yaml

    truth, image = write_blob_micrograph(str(tmp_path / "micrograph"))
    recipe = seg_recipe(tmp_path, tmp_path / "micrograph", data={
        "source": "nuclei", "classes": None, "channels": 1, "image_size": [32, 32],
        "tiles": {"size": 32, "stride": 8}, "test_fraction": 0.25, "validation_fraction": 0.125},
        train={"epochs": 4, "batch_size": 16, "optimizer": {"learning_rate": 0.003}},
        export={"formats": ["saved_model", "onnx", "tflite"], "verify_samples": 6})
    path = tmp_path / "tiles.yaml"
    path.write_text(recipe_to_yaml(recipe))
    result = run_cli("train", str(path), env={"TOOLKIT_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = str(tmp_path / "runs" / "seg")
    with open(os.path.join(run_dir, "metrics.json")) as f:
        tile_iou = json.load(f)["test"]["mean_iou"]
    assert tile_iou > 0.7
    Image.fromarray(image).save(tmp_path / "whole.png")
    test_columns = slice(int(round(image.shape[1] * 0.75)), None)
    export = os.path.join(run_dir, "export")
    scores = {}
    for name, model in (("keras", run_dir), ("saved_model", os.path.join(export, "saved_model")),
                        ("onnx", os.path.join(export, "model.onnx")), ("tflite", os.path.join(export, "model.tflite"))):
        prediction = toolkit.load(model).predict([str(tmp_path / "whole.png")], output_dir=str(tmp_path / name))[0]
        assert prediction["inference"].startswith("tiled:"), prediction["inference"]
        mask = np.asarray(Image.open(prediction["mask"]))
        predicted = (mask.reshape(mask.shape[0], mask.shape[1], -1).sum(axis=-1) > 0).astype(np.int64)
        assert predicted.shape == truth.shape
        confusion = confusion_matrix(truth[:, test_columns], predicted[:, test_columns], 2)
        scores[name] = segmentation_metrics(confusion, ["background", "nucleus"])["mean_iou"]
    assert all(abs(score - tile_iou) <= 0.05 for score in scores.values()), (tile_iou, scores)
    with open(os.path.join(export, "verify.json")) as f:
        report = json.load(f)
    assert report["passed"] and report["samples"] == 6  # the last sample is a 64x64 mosaic: 9 overlapping windows


@pytest.mark.slow
def test_python_predict_keeps_masks_in_memory_unless_given_an_output_dir(trained_segmentation, tmp_path,
                                                                          monkeypatch):
    import toolkit

    monkeypatch.chdir(tmp_path)
    image = os.path.join(trained_segmentation["data"], "images", "s003.png")
    result = toolkit.load(trained_segmentation["run_dir"]).predict([image])[0]
    assert os.listdir(tmp_path) == []  # nothing written into the working directory
    mask = result["mask"]
    assert isinstance(mask, np.ndarray) and mask.shape == (result["height"], result["width"])
    assert sum(entry["pixels"] for entry in result["areas"].values()) == mask.size
    written = toolkit.load(trained_segmentation["run_dir"]).predict([image], output_dir=str(tmp_path / "out"))[0]
    assert os.path.isfile(written["mask"]) and os.path.isfile(written["overlay"])
