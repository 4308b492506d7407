"""Shared fixtures: an isolated toolkit home, tiny generated image folders,
tiny recipes, a CLI runner, and one small trained run reused by the
export/predict/verify tests."""

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_HOME": None, "PYTHONWARNINGS": "ignore"}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def toolkit_home(tmp_path_factory, monkeypatch):
    """Each test gets its own weights store and Keras cache."""
    home = tmp_path_factory.mktemp("toolkit_home")
    monkeypatch.setenv("TOOLKIT_HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    return home


CLASS_COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def make_image_folder(root, per_class=12, size=(40, 40), seed=0, layout="flat", corrupt=0):
    """Writes a tiny, learnable 3-class image folder (PNG and JPEG).

    Each class is a colour; images are noisy squares of that colour at random
    places on a gray background, with varied sizes.
    """
    from PIL import Image

    rng = np.random.RandomState(seed)
    root = str(root)
    splits = {"flat": [""], "split": ["train", "test"]}[layout]
    for split in splits:
        for name, colour in CLASS_COLOURS.items():
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            count = per_class if split != "test" else max(3, per_class // 3)
            for index in range(count):
                height = size[0] + rng.randint(-8, 9)
                width = size[1] + rng.randint(-8, 9)
                image = np.full((height, width, 3), 128, np.float32) + rng.normal(0, 10, (height, width, 3))
                top, left = rng.randint(0, height // 2), rng.randint(0, width // 2)
                image[top:top + height // 2, left:left + width // 2] = colour
                image = np.clip(image, 0, 255).astype(np.uint8)
                suffix = ".png" if index % 2 else ".jpg"
                Image.fromarray(image).save(os.path.join(folder, f"{name}_{index:03d}{suffix}"))
    for index in range(corrupt):
        folder = os.path.join(root, splits[0], "red")
        with open(os.path.join(folder, f"broken_{index}.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "images")


def write_recipe(path, data_path, output_dir, **sections):
    """Writes a tiny image classification recipe; keyword sections are merged."""
    recipe = {
        "task": "image_classification",
        "description": "tiny test recipe",
        "data": {"source": "folder", "path": str(data_path), "image_size": [32, 32], "channels": 3,
                 "validation_fraction": 0.2, "test_fraction": 0.25},
        "model": {"backbone": "resnet_tiny", "weights": "none", "head": {"dropout": 0.0}},
        "train": {"epochs": 2, "batch_size": 8, "verbose": 0, "optimizer": {"learning_rate": 0.01}},
        "export": {"verify_samples": 6},
        "output": {"dir": str(output_dir)},
    }
    for key, value in sections.items():
        recipe.setdefault(key, {}).update(value)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return str(path)


def run_cli(*args, check=False, env=None, timeout=600, cwd=None):
    """Runs `python -m toolkit ARGS` in a subprocess; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"})
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"toolkit {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny run trained, exported and verified through the CLI (session-wide)."""
    root = tmp_path_factory.mktemp("trained")
    data = make_image_folder(root / "images", per_class=20)
    recipe = write_recipe(root / "tiny.yaml", data, root / "runs", train={"epochs": 4})
    env = {"TOOLKIT_HOME": str(root / "home"), "KERAS_HOME": str(root / "home" / "keras")}
    result = run_cli("train", recipe, check=True, env=env)
    run_dir = os.path.join(str(root / "runs"), "tiny")
    return {"run_dir": run_dir, "data": data, "recipe": recipe, "stdout": result.stdout, "env": env, "root": root}
