"""TFLite export: float32, dynamic-range and int8 artifacts of a classifier,
verified against Keras (exact for float32, agreement for quantised ones),
with their sizes and test-split accuracy delta, and served by predict,
benchmark and serve through the same ONNX-like session."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


@pytest.fixture(scope="module")
def tflite_run(trained_run, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("tflite") / "tiny")
    shutil.copytree(trained_run["run_dir"], run_dir)
    result = run_cli("export", run_dir, "--format", "tflite,tflite_dynamic,tflite_int8", env=trained_run["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    return {**trained_run, "run_dir": run_dir, "stdout": result.stdout}


def test_tflite_artifacts_are_verified_with_sizes_and_accuracy_delta(tflite_run):
    with open(os.path.join(tflite_run["run_dir"], "export", "verify.json")) as f:
        report = json.load(f)
    formats = report["formats"]
    assert report["passed"] and {"saved_model", "onnx", "tflite", "tflite_dynamic", "tflite_int8"} <= set(formats)
    assert formats["tflite"]["exact"] and formats["tflite"]["endpoints"]["tflite"]["max_abs_diff"] < 1e-4
    for name in ("tflite_dynamic", "tflite_int8"):
        assert not formats[name]["exact"] and formats[name]["endpoints"][name]["agreement"] >= 0.9
        assert formats[name]["size_bytes"] < 0.5 * formats["tflite"]["size_bytes"]  # int8 weights
    quality = report["quality"]
    assert quality["metric"] == "accuracy" and quality["examples"] > 0
    for name in ("tflite", "tflite_dynamic", "tflite_int8"):
        figures = quality["formats"][name]
        assert 0 <= figures["value"] <= 1 and figures["delta"] == pytest.approx(figures["value"] - quality["keras"])
    assert quality["formats"]["tflite"]["delta"] == 0
    assert "test-split accuracy" in tflite_run["stdout"] and "(quantised: agreement only)" in tflite_run["stdout"]


def test_tflite_predicts_like_keras_everywhere(tflite_run):
    import toolkit
    from toolkit.benchmark import benchmark

    export = os.path.join(tflite_run["run_dir"], "export")
    images = sorted(os.path.join(export, "samples", name) for name in os.listdir(os.path.join(export, "samples")))[:4]
    keras = toolkit.load(tflite_run["run_dir"]).predict(images)
    lite = toolkit.load(os.path.join(export, "model.tflite"))
    assert lite.runtime == "tflite" and lite.metadata["task"] == "image_classification"
    answers = lite.predict(images)
    for a, b in zip(keras, answers):
        assert a["top_k"][0]["label"] == b["top_k"][0]["label"]
        assert a["top_k"][0]["probability"] == pytest.approx(b["top_k"][0]["probability"], abs=1e-4)
    result = run_cli("predict", os.path.join(export, "model_int8.tflite"), images[0], "--json", env=tflite_run["env"])
    assert result.returncode == 0 and json.loads(result.stdout)["runtime"] == "tflite", result.stderr
    figures = benchmark(tflite_run["run_dir"], batch_sizes=(1, 3), repeats=1)
    assert {"tflite", "tflite_dynamic", "tflite_int8"} <= {row["format"] for row in figures["rows"]}

    from toolkit.serving import Server, resolve_model

    server = Server(toolkit.load(resolve_model(export, "tflite")), name="lite").start(port=0)
    try:
        import urllib.request

        image = np.zeros((32, 32, 3), np.uint8).tolist()
        request = urllib.request.Request(server.url + "/v1/models/lite:predict", method="POST",
                                         data=json.dumps({"signature_name": "toolkit", "instances": [image]}).encode())
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.loads(answer.read())["predictions"][0]["top_k"]
    finally:
        server.stop()


def test_tflite_of_a_task_without_it_is_one_line(tmp_path):
    from toolkit.errors import ExportError
    from toolkit.exporters.tflite import export_float

    class Translation:
        name = "translation"

    with pytest.raises(ExportError, match="translation models have no TFLite export"):
        export_float(None, Translation(), str(tmp_path / "m.tflite"), None)
