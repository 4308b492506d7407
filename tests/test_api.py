"""The Python API: recipes in code, Python datasets instead of a recipe source (every task), and a
`Run` that shows its metrics and plots, exports, verifies, loads and predicts, as in a notebook."""

import os

import numpy as np
import pytest

import toolkit
from toolkit.config import load_recipe
from toolkit.errors import DataError
from toolkit.tasks import make_task

from conftest import make_image_folder, run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


def colour_arrays(count, seed):
    """Images whose class is the brightest channel (learnable in a few steps)."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 3, count)
    images = rng.randint(60, 140, (count, 24, 24, 3)).astype(np.uint8)
    images[np.arange(count), :, :, labels] = 240
    return images, labels


def colour_recipe(tmp_path):
    Recipe = toolkit.recipe_class("image_classification")
    return Recipe(task="image_classification", name="colours",
                  data={"source": "fashion_mnist", "image_size": 32, "channels": 3, "validation_fraction": 0.0},
                  model={"backbone": "resnet_tiny", "weights": "none", "head": {"dropout": 0.0}},
                  train={"epochs": 3, "batch_size": 8, "verbose": 0, "fine_tune": {"frozen_epochs": 0},
                         "optimizer": {"learning_rate": 0.01}},
                  export={"verify_samples": 4}, output={"dir": str(tmp_path / "runs")})


@pytest.fixture(scope="module")
def array_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    recipe = colour_recipe(root)
    data = {"train": colour_arrays(90, 0), "test": colour_arrays(24, 1), "class_names": ["red", "green", "blue"]}
    return toolkit.train(recipe, data=data, log=lambda line: None), recipe


def test_train_on_arrays_writes_the_same_run_as_a_recipe_source(array_run):
    run, recipe = array_run
    assert recipe.name == "colours" and recipe.data.source == "fashion_mnist"  # the caller's object is untouched
    saved = run.load_recipe()
    assert saved.data.source == "datasets"
    assert {"recipe.yaml", "model.keras", "metrics.json", "history.csv", "MODEL_CARD.md"} <= set(os.listdir(run.path))
    metrics = run.metrics
    assert metrics["test"]["examples"] == 24 and metrics["data"]["train"]["examples"] == 90
    assert metrics["test"]["accuracy"] > 0.5  # chance is 1/3
    assert "Python datasets" in run.model_card()


def test_run_shows_plots_and_summary_like_the_cli(array_run):
    run, _ = array_run
    assert run.plots() == ["confusion_matrix.png", "training_curves.png"]
    picture = run.plot_history()
    assert picture._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n" and os.fspath(picture) == run.file("training_curves.png")
    assert run.show("confusion_matrix").path.endswith("confusion_matrix.png")
    with pytest.raises(toolkit.ToolkitError, match="no plot nope.png; its plots: confusion_matrix.png"):
        run.show("nope")
    summary = run.summary()
    assert "Export parity" in summary and "accuracy" in summary
    assert list(run.history()["epoch"]) == [0.0, 1.0, 2.0]


def test_run_exports_verify_load_and_predict_agree(array_run):
    run, _ = array_run
    report = run.verify()
    assert set(report["formats"]) == {"saved_model", "onnx"} and report["passed"]
    images, _ = colour_arrays(3, 2)
    keras = run.predict(list(images))
    onnx = run.load("onnx").predict(list(images))
    saved = toolkit.load(run.artifact("saved_model")).predict(list(images))
    labels = [[r["top_k"][0]["label"] for r in results] for results in (keras, onnx, saved)]
    assert labels[0] == labels[1] == labels[2] and set(labels[0]) <= {"red", "green", "blue"}
    with pytest.raises(toolkit.ToolkitError, match="no tflite export|unknown export format"):
        run.artifact("tflite")


def test_a_datasets_run_needs_its_data_again(array_run, tmp_path):
    run, _ = array_run
    with pytest.raises(DataError, match="give them again as data="):
        run.evaluate()
    metrics = run.evaluate(data={"train": colour_arrays(9, 3), "test": colour_arrays(12, 4),
                                 "class_names": ["red", "green", "blue"]})
    assert metrics["examples"] == 12
    assert os.path.isfile(run.file("evaluation_test.json"))
    # A recipe file naming the datasets source is refused in one line by the CLI.
    recipe = tmp_path / "datasets.yaml"
    recipe.write_text(open(run.recipe_path).read())
    result = run_cli("train", str(recipe))
    assert result.returncode == 2 and "give them again as data=" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_batched_keras_dataset_with_its_class_names(tmp_path):
    import keras

    folder = make_image_folder(tmp_path / "images", per_class=5)
    batched = keras.utils.image_dataset_from_directory(folder, image_size=(40, 40), batch_size=4, shuffle=False,
                                                       label_mode="categorical", verbose=False)
    task = make_task(colour_recipe(tmp_path))
    task.use_data(batched)
    data = task.data
    assert data.class_names == ["blue", "green", "red"]
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sum(sizes.values()) == 15 and sizes["test"] == 3  # test_fraction 0.2 cut from train
    assert data.splits["train"].images.shape[1:] == (32, 32, 3)


def test_a_path_as_data_uses_the_tasks_file_source(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=3)
    recipe = toolkit.api._with_data(colour_recipe(tmp_path), folder)
    assert (recipe.data.source, recipe.data.path) == ("folder", os.path.abspath(folder))
    translation = load_recipe("recipes/translation/tsv_pairs.yaml")
    assert toolkit.api._with_data(translation, str(tmp_path)).data.source == "tsv"
    with pytest.raises(DataError, match="no such file or directory"):
        toolkit.api._with_data(translation, str(tmp_path / "missing"))


@pytest.mark.parametrize("data, message", [
    ({"train": colour_arrays(4, 0), "tset": colour_arrays(4, 0)}, "unknown key 'tset'; did you mean 'test'"),
    ({"test": colour_arrays(4, 0)}, "a 'train' dataset is required"),
    ((np.full((4, 8, 8, 3), 0.5, np.float32), np.zeros(4, int)), r"float pixels in \[0, 1\]"),
    ((np.zeros((4, 8, 8, 3), np.uint8), np.full(4, 0.5)), "a label must be an int class index"),
    ([(np.zeros((8, 8, 3), np.uint8), 0, 1)], r"example 0: expected a pair \(image, label\)"),
    ({"train": colour_arrays(6, 0), "class_names": ["only one"]}, "class index 2 but only 1 class_names"),
])
def test_bad_python_data_is_one_line(tmp_path, data, message):
    task = make_task(colour_recipe(tmp_path))
    with pytest.raises(DataError, match=message):
        task.use_data(data)
        _ = task.data


def test_segmentation_pairs_are_resized_with_nearest_masks(tmp_path):
    recipe = load_recipe("recipes/segmentation/fashion_scenes_unet.yaml",
                         overrides={"data.image_size": [16, 16], "data.classes": ["bg", "thing"], "data.channels": 3,
                                    "data.validation_fraction": 0.0,
                                    "model.backbone": "resnet_tiny", "model.weights": "none",
                                    "train.fine_tune.frozen_epochs": 0})
    image = np.zeros((8, 8), np.uint8)
    mask = np.zeros((8, 8), np.int64)
    mask[:4] = 1
    task = make_task(recipe)
    task.use_data({"train": [(image, mask)] * 4, "test": [(image, mask)]})
    split = task.data.splits["train"]
    assert split.images.shape == (4, 16, 16, 3) and split.masks.shape == (4, 16, 16)
    assert split.masks[0, :8].min() == 1 and split.masks[0, 8:].max() == 0
    task = make_task(recipe)
    task.use_data({"train": [(image, mask + 2)]})
    with pytest.raises(DataError, match="a mask holds class 3 but data.classes names 2 classes"):
        _ = task.data


def test_translation_pairs_from_a_tf_dataset(tmp_path):
    import tensorflow as tf

    sources = ["one cat", "two dogs", "", "red cat", "big dog", "small cat"]
    targets = ["TAC ENO", "SGOD OWT", "X", "TAC DER", "GOD GIB", "TAC LLAMS"]
    dataset = tf.data.Dataset.from_tensor_slices((sources, targets)).batch(4)
    task = make_task(load_recipe("recipes/translation/tsv_pairs.yaml"))
    task.use_data({"train": dataset, "test": [("one dog", "GOD ENO")]})
    data = task.data
    assert data.splits["test"] == [("one dog", "GOD ENO")]
    assert sum(len(data.splits[name]) for name in ("train", "validation")) == 5
    assert data.report["train"]["skipped_reasons"] == {"empty side": 1}


def test_speech_pairs_are_checked_like_files(tmp_path):
    wave = (np.sin(np.arange(8000) / 5) * 0.3).astype(np.float32)
    examples = [(wave, "Hello world"), (wave[:0], "silence"), (wave, "ünïcode ok"), (wave, "   ")]
    task = make_task(load_recipe("recipes/speech_recognition/espeak_ctc.yaml"))
    task.use_data({"train": examples, "test": [(wave, "one two")]})
    data = task.data
    texts = [u.text for name in ("train", "validation") for u in data.splits[name]]
    assert "hello world" in texts
    assert data.report["train"]["skipped"] == 3, data.report["train"]
    assert data.splits["test"][0].text == "one two"


def test_recommendation_rows_or_columns(tmp_path):
    recipe = load_recipe({"task": "recommendation", "data": {"source": "movielens", "split": "random",
                                                            "test_fraction": 0.25, "validation_fraction": 0.0}})
    users = [f"u{i % 6}" for i in range(48)]
    items = [f"i{i // 6}" for i in range(48)]  # 48 distinct (user, item) pairs
    columns = {"user": users, "item": items, "rating": [4.0] * 48}
    task = make_task(recipe)
    task.use_data(columns)
    data = task.data
    assert data.num_users == 6 and len(data.splits["test"]) + len(data.splits["train"]) == 48
    rows = [{"user": u, "item": i} for u, i in zip(users, items)]
    task = make_task(recipe)
    task.use_data(rows)
    assert task.data.num_items == 8
    task = make_task(recipe)
    task.use_data({"user": users, "item": items[:3]})
    with pytest.raises(DataError, match="different lengths"):
        _ = task.data


def test_toolkit_predict_stays_the_function_after_every_module_is_imported():
    """`toolkit.predict(...)` in a notebook: no submodule named like an API function may shadow it once imported."""
    import importlib
    import pkgutil

    import toolkit

    for module in pkgutil.walk_packages(toolkit.__path__, "toolkit."):
        if module.name.count(".") == 1:
            importlib.import_module(module.name)
    for name in ("train", "evaluate", "export", "verify", "load", "predict", "explain", "open_run", "load_data"):
        assert callable(getattr(toolkit, name)), name
