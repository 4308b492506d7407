"""The runtime table: every export format loads in a known runtime, and paths map to runtimes without TensorFlow."""

import os
import subprocess
import sys

import pytest

from toolkit.errors import ModelFileError
from toolkit.exporters.formats import FORMATS
from toolkit.runtimes import RUNTIMES, runtime_of, servable_runtimes

from conftest import REPO


def test_every_export_format_names_a_runtime_whose_suffix_fits_its_artifact(tmp_path):
    for name, spec in FORMATS.items():
        runtime = RUNTIMES.get(spec.runtime)
        path = tmp_path / spec.artifact
        if runtime.marker:
            path.mkdir()
            (path / runtime.marker).write_bytes(b"")
        else:
            path.write_bytes(b"")
        assert runtime_of(str(path)) is runtime, name


def test_paths_map_to_runtimes_and_unknown_ones_are_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("task: image_classification\n")
    (tmp_path / "model.keras").write_bytes(b"")
    assert runtime_of(str(run)).name == "keras" and runtime_of(str(tmp_path / "model.keras")).name == "keras"
    with pytest.raises(ModelFileError, match="neither a run directory"):
        runtime_of(str(tmp_path))
    with pytest.raises(ModelFileError, match="no such model file"):
        runtime_of(str(tmp_path / "missing.onnx"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelFileError, match="MODEL must be"):
        runtime_of(str(tmp_path / "notes.txt"))


def test_serve_picks_saved_model_then_onnx_then_tflite_and_the_cli_offers_them():
    assert servable_runtimes() == ["saved_model", "onnx", "tflite"]
    assert not RUNTIMES.get("keras").servable and not RUNTIMES.get("onnx").tensorflow
    from toolkit.cli import _parser

    serve = next(action for action in _parser()._subparsers._group_actions[0].choices["serve"]._actions
                 if "--runtime" in action.option_strings)
    assert list(serve.choices) == servable_runtimes()


def test_the_runtime_table_imports_no_tensorflow():
    code = "import sys, toolkit.runtimes; print(any(m.split('.')[0] == 'tensorflow' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serving_resolves_artifacts_from_the_table(tmp_path):
    from toolkit.serving import resolve_model

    export = tmp_path / "export"
    export.mkdir()
    (export / "model.tflite").write_bytes(b"")
    assert resolve_model(str(export)) == os.path.join(str(export), "model.tflite")
    (export / "model.onnx").write_bytes(b"")
    assert resolve_model(str(export)) == os.path.join(str(export), "model.onnx")
    assert resolve_model(str(export), "tflite") == os.path.join(str(export), "model.tflite")
    with pytest.raises(ModelFileError, match="no saved_model in it"):
        resolve_model(str(export), "saved_model")
