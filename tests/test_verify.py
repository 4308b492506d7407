"""Parity verification: a mismatched export fails, and the good one is kept."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


@pytest.mark.slow
def test_mismatched_onnx_export_fails_verify(trained_run, tmp_path):
    from toolkit.api import open_trained
    from toolkit.exporters.formats import OnnxOptions
    from toolkit.exporters.onnx import export_onnx

    copy = str(tmp_path / "run")
    shutil.copytree(trained_run["run_dir"], copy)
    run, recipe, task, model = open_trained(copy)
    rng = np.random.RandomState(0)
    for variable in model.get_layer("predictions").weights:  # a different model, same shape
        variable.assign(variable.numpy() + rng.normal(0, 1.0, variable.shape).astype("float32"))
    export_onnx(model, task, os.path.join(copy, "export", "model.onnx"), OnnxOptions())

    result = run_cli("verify", os.path.join(copy, "export"), env=trained_run["env"])
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "onnx/onnx: max abs diff" in result.stderr
    assert "FAILED" in result.stdout
    with open(os.path.join(copy, "export", "verify.json")) as f:
        report = json.load(f)
    assert not report["passed"] and not report["formats"]["onnx"]["passed"]
    assert report["formats"]["saved_model"]["passed"]


@pytest.mark.slow
def test_failed_export_keeps_previous_good_one(trained_run, tmp_path, monkeypatch):
    from toolkit import api
    from toolkit.errors import ParityError

    copy = str(tmp_path / "run")
    shutil.copytree(trained_run["run_dir"], copy)
    before = open(os.path.join(copy, "export", "model.onnx"), "rb").read()
    monkeypatch.setattr("toolkit.exporters.verify.compare", lambda reference, outputs: (1.0, 0.5, 10))
    with pytest.raises(ParityError, match="previous export is untouched"):
        api.export(copy, "onnx", log=lambda message: None)
    assert open(os.path.join(copy, "export", "model.onnx"), "rb").read() == before
    assert os.path.isdir(os.path.join(copy, "export.rejected"))
    leftovers = [name for name in os.listdir(copy) if name.startswith(".export.tmp")]
    assert leftovers == []
