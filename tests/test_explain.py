"""`toolkit explain` and `toolkit.explain`: saliency maps through the nested backbone of classifiers, segmenters
and detectors; the planted-patch check (each method's peak lands on the patch that decides the class); the CLI's
files and lines; one-line refusals."""

import json
import os

import numpy as np
import pytest

import toolkit
from toolkit.errors import ModelFileError
from toolkit.explanations import METHODS, normalise, peak

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains tiny models

SIZE, SIDE = 64, 24  # a bright 24-pixel square decides the class; Grad-CAM's grid is 4x4 (stride 16)


def patch_arrays(count, seed):
    """Dark noisy images; class 1 ("patch") holds a bright square at a random place. Returns (images, labels,
    (top, left) of each square)."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, count)
    images = rng.randint(20, 90, (count, SIZE, SIZE, 3)).astype(np.uint8)
    corners = []
    for index, label in enumerate(labels):
        top, left = rng.randint(0, SIZE - SIDE, 2)
        corners.append((int(top), int(left)))
        if label:
            images[index, top:top + SIDE, left:left + SIDE] = 235
    return images, labels, corners


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    Recipe = toolkit.recipe_class("image_classification")
    recipe = Recipe(task="image_classification", name="patch",
                    data={"source": "fashion_mnist", "image_size": SIZE, "channels": 3, "validation_fraction": 0.0},
                    model={"backbone": "resnet_tiny", "weights": "none", "head": {"dropout": 0.0}},
                    train={"epochs": 6, "batch_size": 16, "verbose": 0, "fine_tune": {"frozen_epochs": 0},
                           "optimizer": {"learning_rate": 0.01}},
                    export={"formats": []}, output={"dir": str(root / "runs")})
    images, labels, _ = patch_arrays(160, 0)
    test_images, test_labels, _ = patch_arrays(16, 1)
    run = toolkit.train(recipe, data={"train": (images, labels), "test": (test_images, test_labels),
                                      "class_names": ["plain", "patch"]}, log=lambda line: None)
    assert run.metrics["test"]["accuracy"] >= 0.9
    return run


def test_the_classifier_calls_its_backbone_as_a_nested_model(patch_run):
    import keras

    model = toolkit.load(patch_run.path)
    layer = model.handle.get_layer(model.metadata["backbone"]["layer"])
    assert isinstance(layer, keras.Model)  # what keras-io's Grad-CAM cannot look into


@pytest.mark.parametrize("method", METHODS)
def test_each_methods_peak_lands_on_the_planted_patch(patch_run, method):
    images, labels, corners = patch_arrays(20, 2)
    chosen = [i for i in range(len(images)) if labels[i]][:8]
    results = toolkit.explain(patch_run.path, [images[i] for i in chosen], method=method, class_="patch", steps=16)
    hits = []
    for index, result in zip(chosen, results):
        (entry,) = result["explanations"]
        assert entry["class"] == "patch" and entry["class_index"] == 1 and 0 <= entry["score"] <= 1
        assert entry["map"].shape == (SIZE, SIZE) and entry["map"].dtype == np.float32
        assert 0.0 <= entry["map"].min() and entry["map"].max() <= 1.0
        row, column = peak(entry["map"])
        top, left = corners[index]
        hits.append(top <= row < top + SIDE and left <= column < left + SIDE)
    assert np.mean(hits) >= 0.75, (method, hits)
    if method.startswith("gradcam"):
        assert results[0]["layer"] == "resnet_tiny/stage4_block1_out (stride 16)"  # the deepest metadata stride


def test_default_class_is_the_top1_and_the_class_is_taken_by_name_or_index(patch_run):
    images, labels, _ = patch_arrays(6, 3)
    model = toolkit.load(patch_run.path)
    predicted = [r["top_k"][0]["label"] for r in model.predict(list(images))]
    default = toolkit.explain(model, list(images))
    assert [r["explanations"][0]["class"] for r in default] == predicted
    by_name = toolkit.explain(model, [images[0]], class_="PLAIN")[0]["explanations"][0]
    by_index = toolkit.explain(model, [images[0]], class_=0)[0]["explanations"][0]
    assert by_name["class"] == by_index["class"] == "plain"
    np.testing.assert_allclose(by_name["map"], by_index["map"], atol=1e-6)


def test_maps_are_in_the_input_images_pixels(patch_run):
    images, _, _ = patch_arrays(1, 4)
    wide = np.repeat(images[0], 2, axis=1)  # 64 x 128: resized for the model, the map comes back at 64 x 128
    for method in ("gradcam", "occlusion"):
        entry = toolkit.explain(patch_run.path, [wide], method=method)[0]["explanations"][0]
        assert entry["map"].shape == (SIZE, 2 * SIZE)


def test_cli_writes_an_overlay_png_and_the_raw_map_per_input(patch_run, tmp_path):
    from PIL import Image

    images, labels, _ = patch_arrays(4, 5)
    paths = []
    for index, image in enumerate(images[:2]):
        paths.append(str(tmp_path / f"img{index}.png"))
        Image.fromarray(image).save(paths[-1])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = run_cli("explain", patch_run.path, *paths, broken, "--class", "1")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all("gradcam of patch" in line for line in lines), result.stdout
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [  # the readable ones are explained
        f"toolkit explain: error: {broken}: not a readable image (JPEG, PNG, GIF or BMP)"]
    folder = os.path.join(patch_run.path, "explain")  # the default: next to the run's model
    assert sorted(os.listdir(folder)) == ["img0_gradcam_patch.npy", "img0_gradcam_patch.png",
                                          "img1_gradcam_patch.npy", "img1_gradcam_patch.png"]
    raw = np.load(os.path.join(folder, "img0_gradcam_patch.npy"))
    assert raw.shape == (SIZE, SIZE) and raw.dtype == np.float32 and raw.max() <= 1.0
    assert Image.open(os.path.join(folder, "img0_gradcam_patch.png")).size == (SIZE, SIZE)
    out = tmp_path / "maps"
    result = run_cli("explain", os.path.join(patch_run.path, "model.keras"), paths[0], "--method", "gradcam++",
                     "--output-dir", out, "--json", check=True)
    answer = json.loads(result.stdout)
    (entry,) = answer["explanations"][0]["explanations"]
    assert entry["overlay"] == str(out / "img0_gradcampp_" f"{entry['class']}.png") and os.path.isfile(entry["npy"])


def test_refusals_are_one_line(patch_run, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not really onnx")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(patch_arrays(1, 6)[0][0]).save(image)
    result = run_cli("explain", onnx, image)  # refused before TensorFlow loads
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"toolkit explain: error: {onnx} is an export (onnx); explain needs the Keras model's layers and gradients: "
        "give the run directory or its model.keras"]
    with pytest.raises(ModelFileError, match="^--class 'sock': not a class of this model; give a name or an index "
                                             "of: 0 plain, 1 patch$"):
        toolkit.explain(patch_run.path, [np.zeros((8, 8, 3), np.uint8)], class_="sock")
    result = run_cli("explain", patch_run.path, image, "--method", "lime")  # argparse: the usage, then one line
    assert result.returncode == 2 and "invalid choice: 'lime'" in result.stderr.strip().splitlines()[-1]
    with pytest.raises(ModelFileError, match="^--class 7: out of range; this model has classes 0..1 "):
        toolkit.explain(patch_run.path, [np.zeros((8, 8, 3), np.uint8)], class_=7)


def test_a_task_without_the_hook_refuses_before_loading(tmp_path):
    import keras

    from toolkit.model_io import save_model

    inputs = keras.Input((4,))
    path = str(tmp_path / "other.keras")
    save_model(keras.Model(inputs, keras.layers.Dense(2)(inputs)), path, {"task": "translation", "input": "text"})
    with pytest.raises(ModelFileError, match="translation models cannot be explained") as caught:
        toolkit.explain(path, ["a.png"])
    assert "\n" not in str(caught.value)


def test_normalise_and_peak():
    assert normalise(np.full((3, 3), 5.0)).max() == 0.0
    flat = np.zeros((8, 8))
    flat[5:8, 0:3] = 1.0  # a flat top in a corner: its centre, not its first pixel
    assert peak(flat) == (6, 1)


# ------------------------------------------------------------------------- segmentation and detection


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    from test_segmentation import make_mask_folder

    from toolkit.config import load_recipe

    root = tmp_path_factory.mktemp("explain_seg")
    data = make_mask_folder(str(root / "masks"), count=10)
    recipe = load_recipe({
        "task": "segmentation", "name": "seg", "description": "tiny segmentation",
        "data": {"source": "folder", "path": data, "classes": ["background", "square", "disc"],
                 "image_size": [32, 32], "channels": 3, "validation_fraction": 0.0, "test_fraction": 0.2},
        "model": {"backbone": "resnet_tiny", "weights": "none",
                  "decoder": {"name": "unet", "filters": [16, 8, 8, 8, 8], "dropout": 0.0}},
        "train": {"epochs": 3, "batch_size": 4, "verbose": 0},
        "export": {"formats": []},
        "output": {"dir": str(root / "runs")},
    })
    return toolkit.train(recipe, log=lambda line: None), data


def test_segmentation_explains_each_class_present_through_the_feature_extractor(segmentation_run):
    run, data = segmentation_run
    image = os.path.join(data, "images", "s000.png")
    from PIL import Image

    height, width = np.asarray(Image.open(image)).shape[:2]
    mask = toolkit.load(run.path).predict([image])[0]["mask"]
    present = [name for i, name in enumerate(["background", "square", "disc"]) if (mask == i).any()]
    for method in ("gradcam", "integrated_gradients"):
        result = toolkit.explain(run.path, [image], method=method, steps=8)[0]
        assert sorted(e["class"] for e in result["explanations"]) == sorted(present)
        for entry in result["explanations"]:
            assert entry["map"].shape == (height, width) and 0 <= entry["score"] <= 1 and 0 <= entry["area"] <= 1
    assert result["explanations"][0]["area"] >= result["explanations"][-1]["area"]  # the largest first
    asked = toolkit.explain(run.path, [image], class_="disc")[0]
    assert [e["class"] for e in asked["explanations"]] == ["disc"] and asked["layer"].startswith("resnet_tiny_features/")


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    from test_object_detection import detection_recipe, make_yolo_folder

    root = tmp_path_factory.mktemp("explain_det")
    folder, truth = make_yolo_folder(root / "yolo", count=8)
    recipe = detection_recipe(root, folder, epochs=6, export={"formats": []})
    return toolkit.train(recipe, log=lambda line: None), folder, truth


def test_detection_explains_each_kept_box(detection_run):
    run, folder, _ = detection_run
    image = os.path.join(folder, "images", "train", "train000.png")
    found = toolkit.load(run.path).predict([image], min_score=0.0)[0]["detections"]
    assert found
    threshold = found[min(2, len(found) - 1)]["score"]  # the best three boxes (a map each)
    found = [d for d in found if d["score"] >= threshold]
    result = toolkit.explain(run.path, [image], min_score=threshold)[0]
    entries = result["explanations"]
    assert len(entries) == len(found) >= 1
    for entry, detection in zip(entries, found):
        assert entry["class"] == detection["class"] and entry["score"] == pytest.approx(detection["score"], abs=1e-4)
        np.testing.assert_allclose(entry["box"], detection["box"], atol=0.05)
        assert entry["map"].shape == (48, 64)
    first = found[0]["class"]
    only = toolkit.explain(run.path, [image], class_=first, min_score=threshold, method="occlusion")[0]["explanations"]
    assert {e["class"] for e in only} == {first}
    none = toolkit.explain(run.path, [image], min_score=0.999)[0]
    assert none["explanations"] == []


def test_cli_names_each_box_file(detection_run, tmp_path):
    run, folder, _ = detection_run
    image = os.path.join(folder, "images", "train", "train001.png")
    found = toolkit.load(run.path).predict([image], min_score=0.0)[0]["detections"]
    threshold = found[min(1, len(found) - 1)]["score"] - 1e-6  # the best two boxes
    result = run_cli("explain", run.path, image, "--min-score", threshold, "--output-dir", tmp_path / "out", check=True)
    assert result.stdout.count("\n") == 1 and "gradcam of " in result.stdout
    names = os.listdir(tmp_path / "out")
    assert 4 <= len(names) <= 6 and all(name.startswith("train001_gradcam_box") for name in names)


def test_a_model_without_backbone_metadata_gets_the_input_methods_and_a_one_line_refusal():
    import keras

    from toolkit.explanations import FeatureTap, explain_batch

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ModelFileError, match="names no backbone layer, which Grad-CAM needs; use --method "):
        FeatureTap(model, {})
    tap = FeatureTap(model, {}, features=False)
    images = np.random.RandomState(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    logits = np.asarray(tap(images)[1])
    probabilities = np.asarray(model(images))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))  # the softmax left out, exactly
    np.testing.assert_allclose(shifted / shifted.sum(-1, keepdims=True), probabilities, atol=1e-5)
    for method in ("integrated_gradients", "occlusion"):  # an untrained model: occlusion may only raise the score
        maps = explain_batch(method, tap, images, lambda values: values[:, 1], steps=4, patch=2)
        assert maps.shape == (1, 8, 8) and 0.0 <= maps.min() and maps.max() <= 1.0
        assert method == "occlusion" or maps.max() == pytest.approx(1.0)


def test_explain_help_and_the_export_refusal_import_no_tensorflow(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    from conftest import REPO

    onnx, image = tmp_path / "m.onnx", tmp_path / "a.png"
    onnx.write_bytes(b"x")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code = ("import sys, contextlib, io\n"
            "from toolkit.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try:\n"
            "        main(['explain', '--help'])\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0\n"
            "assert '--method {gradcam,gradcam++,integrated_gradients,occlusion}' in out.getvalue()\n"
            "err = io.StringIO()\n"
            "with contextlib.redirect_stderr(err):\n"
            f"    assert main(['explain', {str(onnx)!r}, {str(image)!r}]) == 2\n"
            "assert 'is an export (onnx)' in err.getvalue(), err.getvalue()\n"
            "assert 'tensorflow' not in sys.modules, 'imported tensorflow'\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "ok", result.stderr
