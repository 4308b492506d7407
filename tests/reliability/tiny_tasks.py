"""Tiny recipes of every task for the reliability suite: data generated in a
temporary directory, models small enough that a run takes seconds on 2 CPU
cores. `write(task, root, epochs)` writes the recipe as YAML and returns its
path; the data builders are the ones the task tests use."""

import os
import shutil

TASKS = ["image_classification", "segmentation", "translation", "speech_recognition", "recommendation"]


def recipe(task, root, epochs):
    """The loaded tiny recipe of `task` with its data under `root` and its runs in `root/runs`."""
    root = str(root)
    os.makedirs(root, exist_ok=True)
    return {
        "image_classification": _classification,
        "segmentation": _segmentation,
        "translation": _translation,
        "speech_recognition": _speech,
        "recommendation": _recommendation,
    }[task](root, epochs)


def write(task, root, epochs, name=None):
    """Writes the tiny recipe of `task` to `root/<task>.yaml`; returns the path."""
    from toolkit.config import recipe_to_yaml

    loaded = recipe(task, root, epochs)
    loaded.name = name or task
    path = os.path.join(str(root), f"{task}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(recipe_to_yaml(loaded))
    return path


def available(task):
    """Why `task` cannot run here (a missing Debian package), or None."""
    if task == "speech_recognition" and shutil.which("espeak-ng") is None:
        return "Debian espeak-ng is not installed (apt-get install espeak-ng)"
    return None


def _classification(root, epochs):
    from toolkit.config import load_recipe

    from conftest import make_image_folder, write_recipe

    data = make_image_folder(os.path.join(root, "images"), per_class=10)
    path = write_recipe(os.path.join(root, "classification_base.yaml"), data, os.path.join(root, "runs"),
                        train={"epochs": epochs}, export={"formats": ["onnx"], "verify_samples": 4})
    return load_recipe(path)


def _segmentation(root, epochs):
    from test_segmentation import make_mask_folder

    from toolkit.config import load_recipe

    data = make_mask_folder(os.path.join(root, "masks_data"), count=10)
    return load_recipe({
        "task": "segmentation", "description": "tiny segmentation",
        "data": {"source": "folder", "path": data, "classes": ["background", "square", "disc"],
                 "image_size": [32, 32], "channels": 3, "validation_fraction": 0.2, "test_fraction": 0.2},
        "model": {"backbone": "resnet_tiny", "weights": "none",
                  "decoder": {"name": "unet", "filters": [16, 8, 8, 8, 8], "dropout": 0.0}},
        "train": {"epochs": epochs, "batch_size": 4, "verbose": 0},
        "export": {"formats": ["onnx"], "verify_samples": 2},
        "output": {"dir": os.path.join(root, "runs")},
    })


def _translation(root, epochs):
    from test_translation import toy_recipe, write_toy_corpus

    from toolkit.config import load_recipe

    data = write_toy_corpus(os.path.join(root, "pairs"), train=240, test=12)
    return load_recipe(toy_recipe(
        _Root(root), data,
        tokenizer={"source_vocabulary": 40, "target_vocabulary": 40, "max_length": 12},
        decoding={"method": "greedy", "max_length": 12},
        train={"epochs": epochs, "batch_size": 32},
        export={"formats": ["onnx"], "verify_samples": 2},
    ))


def _speech(root, epochs):
    from test_speech_recognition import tiny_recipe

    loaded = tiny_recipe(_Root(root), epochs=epochs)
    loaded.export.formats = ["onnx"]
    return loaded


def _recommendation(root, epochs):
    import pathlib

    from test_recommendation import planted_recipe, planted_table

    table = planted_table(pathlib.Path(root) / "plays.csv")
    loaded = planted_recipe(_Root(root), table)
    loaded.train.epochs = epochs
    loaded.export.formats = ["onnx"]
    return loaded


class _Root(str):
    """A str root that also supports `root / "name"` like the pathlib roots the task tests pass."""

    def __truediv__(self, other):
        import pathlib

        return pathlib.Path(self) / other
