"""Tiny recipes of every task for the reliability suite: data generated in a
temporary directory, models small enough that a run takes seconds on 2 CPU
cores. `write(task, root, epochs)` writes the recipe as YAML and returns its
path; the data builders are the ones the task tests use."""

import os
import shutil

TASKS = ["image_classification", "segmentation", "translation", "speech_recognition", "recommendation"]
# Epochs of each task's shared baseline run (`baseline`): the fault tests' uninterrupted reference, long enough for
# their random interruption points and loss comparisons.
BASELINE_EPOCHS = {"image_classification": 30, "segmentation": 24, "translation": 24, "speech_recognition": 40,
                   "recommendation": 40}
BASELINE_FORMATS = "export.formats=[saved_model,onnx]"


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


def baseline(task, tmp_path_factory):
    """The tiny run of `task` (BASELINE_EPOCHS, exported as SavedModel and ONNX), trained once per test session by
    `toolkit train` and shared by every module that asks, on every xdist worker: the first caller trains it while
    holding a lock on it, later ones wait for it and read its result. The fault tests compare their interrupted runs
    with it; the serving tests serve its exports (they only read it).

    Returns {"rc", "stdout", "stderr", "run_dir", "export"}.
    """
    import fcntl
    import json
    import subprocess
    import sys

    from conftest import REPO

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker has its own basetemp under the session's one
        base = base.parent
    root = os.path.join(str(base), "shared_baselines", task)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when a worker dies
        done = os.path.join(root, "result.json")
        if os.path.exists(done):
            with open(done, encoding="utf-8") as f:
                return json.load(f)
        recipe = write(task, root, BASELINE_EPOCHS[task])
        home = os.path.join(root, "home")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", TOOLKIT_HOME=home,
                   KERAS_HOME=os.path.join(home, "keras"))
        process = subprocess.run([sys.executable, "-m", "toolkit", "train", recipe, BASELINE_FORMATS], cwd=REPO,
                                 env=env, capture_output=True, text=True, timeout=900)
        run_dir = os.path.join(root, "runs", task)
        result = {"rc": process.returncode, "stdout": process.stdout, "stderr": process.stderr, "run_dir": run_dir,
                  "export": os.path.join(run_dir, "export")}
        with open(done, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return result
