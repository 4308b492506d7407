"""Anomaly detection end to end on tiny planted data: an image autoencoder trained on normal images only separates
planted anomalies (a bright square) and beats nothing it should not; the threshold is calibrated and recorded;
every export is verified and predicts the same flags; a series autoencoder finds planted windows in synthetic
series and predicts on a CSV file; deep SVDD on a registry backbone; recipe errors in one line. The scoring and
series helpers are in test_anomaly_scoring.py and test_anomaly_series.py."""

import csv
import json
import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import ToolkitError

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models

SIZE = 16


def planted_image(rng, anomalous):
    """A smooth gray gradient with noise; anomalies carry a bright 5x5 square at a random place."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    angle = rng.uniform(0, 2 * np.pi)
    image = 70 + 40 * (np.cos(angle) * x + np.sin(angle) * y) + rng.normal(0, 3, (SIZE, SIZE))
    if anomalous:
        top, left = rng.randint(1, SIZE - 6, size=2)
        image[top:top + 5, left:left + 5] = 245
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_images(folder, count, anomalous, seed):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    for index in range(count):
        Image.fromarray(planted_image(rng, anomalous)).save(os.path.join(folder, f"{index:03d}.png"))


def write_yaml(path, recipe):
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return str(path)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly")
    data = root / "parts"
    write_images(data / "train" / "normal", 160, False, 0)
    write_images(data / "test" / "normal", 30, False, 1)
    write_images(data / "test" / "square", 30, True, 2)
    with open(data / "test" / "square" / "broken.png", "wb") as f:
        f.write(b"not a png")
    recipe = write_yaml(root / "tiny_anomaly.yaml", {
        "task": "anomaly_detection",
        "data": {"source": "folder", "path": str(data), "image_size": [SIZE, SIZE], "channels": 1,
                 "validation_fraction": 0.2},
        "model": {"network": "conv_autoencoder", "filters": [8, 16], "latent": 8},
        "threshold": {"method": "quantile", "target_false_positive_rate": 0.05},
        "train": {"epochs": 25, "batch_size": 16, "verbose": 0, "optimizer": {"learning_rate": 0.003}},
        "export": {"formats": ["saved_model", "onnx", "tflite"], "verify_samples": 24},
        "output": {"dir": str(root / "runs")},
    })
    env = {"TOOLKIT_HOME": str(root / "home")}
    result = run_cli("train", recipe, check=True, env=env)
    return {"run_dir": str(root / "runs" / "tiny_anomaly"), "stdout": result.stdout, "env": env, "root": root,
            "data": data}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_autoencoder_trained_on_normal_images_separates_the_planted_anomalies(image_run):
    metrics = read_json(os.path.join(image_run["run_dir"], "metrics.json"))
    test = metrics["test"]
    assert test["auroc"] >= 0.95, test["auroc"]
    assert test["normal"] == 30 and test["anomalous"] == 30 and test["unit"] == "image"
    assert metrics["data"]["test"]["skipped"] == 1  # the broken file, counted
    assert metrics["data"]["train"]["anomalous"] == 0
    assert set(test["baselines"]) == {"isolation_forest", "pca"}
    for figures in test["baselines"].values():
        assert 0.0 <= figures["auroc"] <= 1.0 and "f1" in figures
    threshold = test["threshold"]
    assert threshold["method"] == "quantile" and threshold["target_false_positive_rate"] == 0.05
    assert threshold["validation_false_positive_rate"] <= 0.05
    for name in ("score_histogram.png", "worst_reconstructions.png", "MODEL_CARD.md"):
        assert os.path.isfile(os.path.join(image_run["run_dir"], name)), name
    card = open(os.path.join(image_run["run_dir"], "MODEL_CARD.md"), encoding="utf-8").read()
    assert "isolation_forest" in card and "threshold" in card


def test_threshold_is_recorded_in_the_model_and_every_export(image_run):
    from toolkit.model_io import read_toolkit_metadata

    metadata = read_toolkit_metadata(os.path.join(image_run["run_dir"], "model.keras"))
    metrics = read_json(os.path.join(image_run["run_dir"], "metrics.json"))
    assert metadata["threshold"]["threshold"] == pytest.approx(metrics["test"]["threshold"]["threshold"])
    assert metadata["score_stats"]["latent_precision"]  # the combined score's statistics travel with the model
    report = read_json(os.path.join(image_run["run_dir"], "export", "verify.json"))
    assert report["passed"], report


def test_every_runtime_predicts_the_same_scores_and_flags(image_run):
    import toolkit

    folder = image_run["data"] / "test" / "square"
    images = [str(folder / name) for name in sorted(os.listdir(folder)) if name != "broken.png"][:4]
    images += [str(image_run["data"] / "test" / "normal" / f"{i:03d}.png") for i in range(4)]
    export = os.path.join(image_run["run_dir"], "export")
    keras_results = toolkit.predict(image_run["run_dir"], images)
    assert [r["anomaly"] for r in keras_results][:4] == [True] * 4
    assert sum(r["anomaly"] for r in keras_results[4:]) <= 1
    assert keras_results[0]["error_map"].shape == (SIZE, SIZE)
    for artifact in ("saved_model", "model.onnx", "model.tflite"):
        results = toolkit.predict(os.path.join(export, artifact), images)
        assert [r["anomaly"] for r in results] == [r["anomaly"] for r in keras_results], artifact
        for got, want in zip(results, keras_results):
            assert got["score"] == pytest.approx(want["score"], rel=1e-3, abs=1e-4), artifact


def test_cli_predict_writes_heat_maps_without_tensorflow_for_onnx(image_run, tmp_path):
    image = str(image_run["data"] / "test" / "square" / "000.png")
    onnx = os.path.join(image_run["run_dir"], "export", "model.onnx")
    out = tmp_path / "maps"
    result = run_cli("predict", onnx, image, "--output-dir", out, check=True, env=image_run["env"])
    assert "ANOMALY" in result.stdout and "000_heatmap.png" in result.stdout, result.stdout
    assert os.path.getsize(out / "000_heatmap.png") > 100
    code = ("import sys, toolkit; toolkit.predict(sys.argv[1], [sys.argv[2]]); "
            "print('tensorflow' in sys.modules)")
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", code, onnx, image], capture_output=True, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert probe.stdout.strip().splitlines()[-1] == "False", probe.stderr[-2000:]


def test_saved_model_serving_default_takes_image_bytes_and_returns_score_flag_map(image_run):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(image_run["run_dir"], "export", "saved_model"))
    with open(image_run["data"] / "test" / "square" / "001.png", "rb") as f:
        data = f.read()
    answer = loaded.signatures["serving_default"](image_bytes=tf.constant([data]))
    assert bool(answer["flag"].numpy()[0]) is True
    assert answer["error_map"].shape == (1, SIZE, SIZE) and answer["score"].shape == (1,)


def series_recipe(root, **changes):
    recipe = {
        "task": "anomaly_detection",
        "data": {"source": "synthetic_series", "window": 32, "stride": 4,
                 "synthetic": {"train_series": 4, "validation_series": 2, "test_series": 4, "length": 720,
                               "period": 96}},
        "model": {"network": "series_autoencoder", "filters": [16, 32], "latent": 4},
        "threshold": {"method": "quantile", "target_false_positive_rate": 0.002},
        "train": {"epochs": 6, "batch_size": 32, "verbose": 0, "optimizer": {"learning_rate": 0.003}},
        "export": {"formats": ["saved_model", "onnx", "tflite"], "verify_samples": 16},
        "output": {"dir": str(root / "runs")},
    }
    for key, value in changes.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return write_yaml(root / "tiny_series.yaml", recipe)


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    env = {"TOOLKIT_HOME": str(root / "home")}
    run_cli("train", series_recipe(root), check=True, env=env)
    return {"run_dir": str(root / "runs" / "tiny_series"), "env": env, "root": root}


def test_series_autoencoder_finds_planted_windows_and_reports_events(series_run):
    metrics = read_json(os.path.join(series_run["run_dir"], "metrics.json"))
    test = metrics["test"]
    assert test["unit"] == "step"
    events = test["events"]
    assert events["series"] == 4 and events["windows"] >= 4
    assert events["found"] >= events["windows"] // 2, events  # a tiny model, 6 epochs: at least half
    assert test["auroc"] is not None and "false_alarms_per_series_mean" in events
    assert read_json(os.path.join(series_run["run_dir"], "export", "verify.json"))["passed"]
    assert os.path.isfile(os.path.join(series_run["run_dir"], "series_0.png"))


def test_series_predict_on_a_csv_file_flags_the_planted_jump(series_run, tmp_path):
    from toolkit.tasks.anomaly_detection.series import generate_series

    item = generate_series(1, 99, length=720, period=96, kinds=())[0]
    values = item.values[:, 0].copy()
    noise = np.abs(np.diff(values)).mean()
    values[500:503] += 40 * noise  # a jump far above the noise
    path = tmp_path / "meter.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        for stamp, value in zip(item.timestamps, values):
            writer.writerow([str(stamp), f"{value:.5f}"])
    for artifact in ("model.keras", os.path.join("export", "model.onnx")):
        result = run_cli("predict", os.path.join(series_run["run_dir"], artifact), path, "--output-dir",
                         tmp_path / "out", "--json", check=True, env=series_run["env"])
        answer = json.loads(result.stdout)
        predictions = answer["predictions"] if isinstance(answer, dict) else answer
        anomalies = predictions[0]["anomalies"]
        assert any(str(item.timestamps[495]) <= a["end"] and a["start"] <= str(item.timestamps[505])
                   for a in anomalies), anomalies


def test_svdd_on_a_registry_backbone_trains_and_scores(tmp_path):
    data = tmp_path / "parts"
    write_images(data / "train" / "normal", 60, False, 0)
    write_images(data / "test" / "normal", 10, False, 1)
    write_images(data / "test" / "square", 10, True, 2)
    recipe = write_yaml(tmp_path / "svdd.yaml", {
        "task": "anomaly_detection",
        "data": {"source": "folder", "path": str(data), "image_size": [32, 32], "channels": 1},
        "model": {"network": "svdd", "backbone": "resnet_mini", "weights": "none", "latent": 8},
        "train": {"epochs": 2, "batch_size": 16, "verbose": 0},
        "baseline": {"methods": []},
        "export": {"formats": ["onnx"], "verify_samples": 8},
        "output": {"dir": str(tmp_path / "runs")},
    })
    run_cli("train", recipe, check=True, env={"TOOLKIT_HOME": str(tmp_path / "home")})
    metrics = read_json(tmp_path / "runs" / "svdd" / "metrics.json")
    assert metrics["test"]["auroc"] is not None and "baselines" not in metrics["test"]
    assert read_json(tmp_path / "runs" / "svdd" / "export" / "verify.json")["passed"]


@pytest.mark.parametrize("changes, message", [
    ({"model": {"network": "conv_autoencoder"}}, "set model.network: series_autoencoder"),
    ({"data": {"source": "fashion_mnist"}, "model": {"network": "conv_autoencoder"}}, "data.normal_class"),
    ({"data": {"source": "fashion_mnist", "normal_class": "Sneaker", "image_size": [30, 30]},
      "model": {"network": "conv_autoencoder"}}, "must be divisible by 4"),
    ({"threshold": {"target_false_positive_rate": 1.5}}, "target_false_positive_rate"),
])
def test_recipe_errors_are_one_line(tmp_path, changes, message):
    path = series_recipe(tmp_path, **changes)
    with pytest.raises(ToolkitError) as error:
        load_recipe(path)
    assert message in str(error.value) and "\n" not in str(error.value).strip()


def test_best_f1_without_validation_anomalies_is_one_line(tmp_path):
    data = tmp_path / "parts"
    write_images(data / "train" / "normal", 20, False, 0)
    write_images(data / "test" / "normal", 4, False, 1)
    write_images(data / "test" / "square", 4, True, 2)
    recipe = write_yaml(tmp_path / "f1.yaml", {
        "task": "anomaly_detection",
        "data": {"source": "folder", "path": str(data), "image_size": [SIZE, SIZE], "channels": 1},
        "model": {"network": "conv_autoencoder", "filters": [4, 8], "latent": 4},
        "threshold": {"method": "best_f1"}, "train": {"epochs": 1, "verbose": 0}, "export": {"formats": []},
        "output": {"dir": str(tmp_path / "runs")},
    })
    result = run_cli("train", recipe, env={"TOOLKIT_HOME": str(tmp_path / "home")})
    assert result.returncode != 0
    assert "best_f1 needs anomalies in the validation split" in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_recipes_load():
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes",
                          "anomaly_detection")
    for name in sorted(os.listdir(folder)):
        recipe = load_recipe(os.path.join(folder, name))
        assert recipe.task == "anomaly_detection", name
