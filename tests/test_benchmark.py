"""`toolkit benchmark` over every format of a run's export, and the serving
load test against a `toolkit serve` on loopback."""

import json
import os

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


def test_benchmark_times_every_format_with_the_predict_path(trained_run):
    result = run_cli("benchmark", trained_run["run_dir"], "--batch-sizes", "1,4", "--repeats", "2", "--json",
                     env=trained_run["env"])
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["task"] == "image_classification" and figures["batch_sizes"] == [1, 4]
    assert sorted(row["format"] for row in figures["rows"]) == ["keras", "onnx", "saved_model"]
    for row in figures["rows"]:
        assert row["size_mb"] > 0
        for batch in (1, 4):
            cell = row[f"batch_{batch}"]
            assert 0 < cell["median_ms"] <= cell["p90_ms"] and cell["per_second"] > 0
    table = run_cli("benchmark", os.path.join(trained_run["run_dir"], "export"), "--format", "onnx",
                    "--repeats", "1", env=trained_run["env"])
    assert table.returncode == 0 and table.stdout.splitlines()[2].startswith("onnx"), table.stdout
    bad = run_cli("benchmark", trained_run["run_dir"], "--batch-sizes", "0")
    assert bad.returncode == 2 and "positive integers" in bad.stderr
    missing = run_cli("benchmark", str(trained_run["root"]))
    assert missing.returncode == 2 and "no samples/" in missing.stderr


def test_load_test_counts_every_request(trained_run):
    from toolkit.benchmark import load_test
    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    server = Server(load(resolve_model(trained_run["run_dir"], "onnx")), name="tiny").start(port=0)
    try:
        image = np.zeros((32, 32, 3), np.uint8).tolist()
        figures = load_test(server.url, "tiny", [image], requests=24, concurrency=4)
        assert figures["errors"] == 0 and figures["requests"] == 24
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["requests_per_s"] > 0
        broken = load_test(server.url, "other", [image], requests=3, concurrency=2)
        assert broken["errors"] == 3 and broken["p50_ms"] is None
    finally:
        server.stop()
