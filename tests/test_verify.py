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


def test_onnx_export_runs_the_tf2onnx_optimizers_in_place_to_the_same_graph_and_falls_back_when_one_fails(
        trained_run, tmp_path, monkeypatch):
    import onnx
    import tf2onnx.optimizer

    from toolkit.api import open_trained
    from toolkit.exporters import onnx as onnx_export
    from toolkit.exporters.formats import OnnxOptions

    run, recipe, task, model = open_trained(trained_run["run_dir"])
    calls = []
    optimize_graph = tf2onnx.optimizer.optimize_graph

    def recorded(graph, catch_errors=True, optimizers=None):
        calls.append(catch_errors)
        return optimize_graph(graph, catch_errors, optimizers)

    monkeypatch.setattr(tf2onnx.optimizer, "optimize_graph", recorded)
    onnx_export.export_onnx(model, task, str(tmp_path / "fast.onnx"), OnnxOptions())
    monkeypatch.setattr(onnx_export, "_optimizers_in_place", __import__("contextlib").nullcontext)
    onnx_export.export_onnx(model, task, str(tmp_path / "copies.onnx"), OnnxOptions())
    assert calls == [False, True] and "TF2ONNX_CATCH_ERRORS" not in os.environ
    fast, copies = onnx.load(str(tmp_path / "fast.onnx")), onnx.load(str(tmp_path / "copies.onnx"))
    assert _structure(fast) == _structure(copies) and len(fast.graph.node) > 10

    # An optimizer that raises: the in-place conversion fails, the default one (which skips it) writes the file.
    monkeypatch.undo()
    calls.clear()

    def failing_in_place(graph, catch_errors=True, optimizers=None):
        calls.append(catch_errors)
        if not catch_errors:
            raise ValueError("an optimizer failed")
        return optimize_graph(graph, catch_errors, optimizers)

    monkeypatch.setattr(tf2onnx.optimizer, "optimize_graph", failing_in_place)
    onnx_export.export_onnx(model, task, str(tmp_path / "fallback.onnx"), OnnxOptions())
    assert calls == [False, True]
    assert _structure(onnx.load(str(tmp_path / "fallback.onnx"))) == _structure(copies)


def _structure(proto):
    """An ONNX graph with its names and node order left out (tf2onnx numbers names per process, and orders
    independent branches either way): the sorted signatures of its nodes and the signatures of its outputs, where a
    tensor's signature is its initializer's bytes, its graph input's position, or its node's operator, attributes
    and input signatures (a Merkle hash)."""
    import hashlib

    signature = {value.name: f"input{index}" for index, value in enumerate(proto.graph.input)}
    signature.update({tensor.name: hashlib.sha256(tensor.raw_data or tensor.SerializeToString()).hexdigest()
                      for tensor in proto.graph.initializer})
    nodes = list(proto.graph.node)
    done = []
    while nodes:  # topological: a node once all its inputs have signatures
        ready = [node for node in nodes if all(name in signature or not name for name in node.input)]
        assert ready, "the graph has a cycle or an input that nothing makes"
        for node in ready:
            attributes = sorted((a.name, a.SerializeToString()) for a in node.attribute if a.type != a.GRAPH)
            node_signature = hashlib.sha256(repr((node.op_type, node.domain, attributes,
                                                  [signature.get(name, "") for name in node.input])).encode())
            done.append(node_signature.hexdigest())
            signature.update({name: f"{done[-1]}:{position}" for position, name in enumerate(node.output)})
            nodes.remove(node)
    return sorted(done), [signature[value.name] for value in proto.graph.output]
