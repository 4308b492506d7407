"""`toolkit runs list` and `toolkit runs compare` (toolkit/run_table.py) on fake run directories written here:
recipe.yaml, state.json, metrics.json, history.csv and export/verify.json, no training. Fast: no TensorFlow."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from toolkit.errors import RunError
from toolkit.run_table import (
    compare_runs,
    find_runs,
    format_comparison,
    format_runs,
    list_runs,
    metric_mode,
    value_text,
)

from conftest import REPO, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _recipe(name, output_dir, learning_rate=0.01, epochs=3, dropout=0.0, task="image_classification"):
    return {
        "task": task,
        "name": name,
        "description": "tiny test recipe",
        "data": {"source": "folder", "path": "/data/images", "image_size": [32, 32], "validation_fraction": 0.2},
        "model": {"backbone": "resnet_tiny", "weights": "none", "head": {"dropout": dropout}},
        "train": {"epochs": epochs, "batch_size": 8, "monitor": "val_accuracy",
                  "optimizer": {"name": "adam", "learning_rate": learning_rate}},
        "export": {"formats": ["saved_model", "onnx"], "verify_samples": 6},
        "output": {"dir": str(output_dir)},
    }


def make_run(parent, name, status="complete", learning_rate=0.01, dropout=0.0, epochs=3, accuracy=0.8,
             finished="2026-12-01T10:00:00+00:00", history=True, export="ok", task="image_classification",
             val_curve=None):
    """Writes a fake run directory `parent/name` as `toolkit train` leaves it; returns its path."""
    path = os.path.join(str(parent), name)
    os.makedirs(path)
    with open(os.path.join(path, "recipe.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(_recipe(os.path.basename(name), parent, learning_rate, epochs, dropout, task), f)
    done = epochs if status == "complete" else 1
    state = {"status": status, "completed_phases": ["train"] if status == "complete" else [],
             "phases": [{"name": "train", "start": 0, "end": epochs}], "monitor": "val_accuracy",
             "epoch": done, "train_seconds": 12.5 * done}
    with open(os.path.join(path, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f)
    if history:
        curve = val_curve or [accuracy - 0.1 * (done - 1 - i) for i in range(done)]
        with open(os.path.join(path, "history.csv"), "w", encoding="utf-8") as f:
            f.write("epoch,accuracy,epoch_seconds,learning_rate,loss,val_accuracy,val_loss\n")
            for i in range(done):
                f.write(f"{i},{curve[i] - 0.05},12.5,{learning_rate},{1.0 - curve[i]},{curve[i]},{1.1 - curve[i]}\n")
    if status == "complete":
        metrics = {"task": task, "test": {"examples": 30, "accuracy": accuracy, "loss": 1.0 - accuracy,
                                          "top5_accuracy": 1.0, "macro_f1": accuracy - 0.01,
                                          "per_class": {"red": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
                                          "confusion_matrix": [[1, 0], [0, 1]], "predict_seconds": 0.5},
                   "data": {"train": {"examples": 60}}, "parameters": 1234, "epochs_completed": epochs,
                   "train_seconds": 12.5 * epochs, "finished": finished}
        with open(os.path.join(path, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f)
        with open(os.path.join(path, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
            f.write("# model card\n")
    if status == "complete" and export:
        os.makedirs(os.path.join(path, "export", "saved_model"))
        with open(os.path.join(path, "export", "model.onnx"), "wb") as f:
            f.write(b"onnx")
        passed = export == "ok"
        verify = {"samples": 6, "passed": passed, "formats": {
            "saved_model": {"passed": True, "endpoints": {"serving_default": {"max_abs_diff": 1e-6}}},
            "onnx": {"passed": passed, "endpoints": {"onnx": {"max_abs_diff": 1e-6 if passed else 0.5}}}}}
        with open(os.path.join(path, "export", "verify.json"), "w", encoding="utf-8") as f:
            json.dump(verify, f)
    return path


@pytest.fixture
def runs(tmp_path):
    """Three runs of one recipe (two learning rates, one dropout), an interrupted one, a tune study, and
    folders that must not be searched."""
    root = tmp_path / "runs"
    root.mkdir()
    make_run(root, "tiny", finished="2026-12-01T10:00:00+00:00", accuracy=0.8)
    make_run(root, "tiny-2", learning_rate=0.001, finished="2026-12-01T11:00:00+00:00", accuracy=0.9)
    make_run(root, "tiny-3", learning_rate=0.001, dropout=0.3, finished="2026-12-01T12:00:00+00:00",
             accuracy=0.7, export="failed")
    make_run(root, "tiny-4", status="interrupted", epochs=5, accuracy=0.6)
    make_run(root / "tune-tiny" / "trials", "trial-000", learning_rate=0.05, finished="2026-12-01T09:00:00+00:00",
             accuracy=0.85)
    make_run(root / "tune-tiny", "final", finished="2026-12-01T09:30:00+00:00", accuracy=0.95, export=None)
    make_run(root / "tiny" / "export", "not-a-run")  # inside a run: never searched
    make_run(root / "a" / "b" / "c", "too-deep")  # four levels down
    (root / "notes").mkdir()
    (root / "notes" / "recipe.yaml").write_text("task: x\n")  # no state.json: not a run
    return root


def test_find_runs_searches_three_levels_and_skips_run_folders(runs):
    found = [os.path.relpath(path, runs) for path in find_runs(str(runs))]
    assert found == ["tiny", "tiny-2", "tiny-3", "tiny-4", os.path.join("tune-tiny", "final"),
                     os.path.join("tune-tiny", "trials", "trial-000")]
    assert find_runs(str(runs / "tiny")) == [str(runs / "tiny")]  # a run directory itself


def test_list_a_tune_study_directory(runs):
    rows = list_runs([str(runs / "tune-tiny")])
    assert [row["name"] for row in rows] == ["final", "trials/trial-000"]
    assert rows[1]["reference"] == "final" and rows[1]["differs"] == {"train.optimizer.learning_rate": 0.05}
    rows = list_runs([str(runs / "tiny")])  # a run directory: listed by its name
    assert [row["name"] for row in rows] == ["tiny"] and rows[0]["differs"] == {}


def test_list_rows_newest_first_with_metrics_exports_and_differences(runs):
    rows = list_runs([str(runs)])
    names = [row["name"] for row in rows]
    # newest first: the interrupted run's last state change is now; then by `finished`
    assert names == ["tiny-4", "tiny-3", "tiny-2", "tiny", "tune-tiny/final", "tune-tiny/trials/trial-000"]
    by_name = {row["name"]: row for row in rows}
    tiny = by_name["tiny"]
    assert tiny["task"] == "image_classification" and tiny["status"] == "complete"
    assert tiny["metrics"] == {"accuracy": 0.8, "top5_accuracy": 1.0, "macro_f1": 0.79, "loss": pytest.approx(0.2),
                               "examples": 30}
    assert tiny["epochs"] == 3 and tiny["train_seconds"] == 37.5
    assert tiny["export"] == {"formats": ["saved_model", "onnx"], "parity": "ok", "failed": []}
    assert by_name["tiny-3"]["export"] == {"formats": ["saved_model", "onnx"], "parity": "FAILED",
                                           "failed": ["onnx"]}
    assert by_name["tune-tiny/final"]["export"] == {"formats": [], "parity": None, "failed": []}
    # the interrupted run: what it has (one epoch, its best validation accuracy), no test metrics
    interrupted = by_name["tiny-4"]
    assert interrupted["status"] == "interrupted" and interrupted["metrics"] == {}
    assert interrupted["epochs"] == 1 and interrupted["epochs_planned"] == 5
    assert interrupted["best"] == {"metric": "val_accuracy", "value": 0.6, "epoch": 1}
    # differences: against the first complete run of the same recipe in the table (tiny-3), tune runs included
    assert by_name["tiny-3"]["reference"] is None and by_name["tiny-3"]["differs"] == {}
    assert interrupted["reference"] == "tiny-3"
    assert interrupted["differs"] == {"model.head.dropout": 0.0, "train.epochs": 5,
                                      "train.optimizer.learning_rate": 0.01}
    assert by_name["tiny-2"]["differs"] == {"model.head.dropout": 0.0}
    assert by_name["tune-tiny/trials/trial-000"]["differs"] == {"model.head.dropout": 0.0,
                                                               "train.optimizer.learning_rate": 0.05}
    json.dumps(rows)  # JSON-serialisable as it is
    assert all(not key.startswith("_") for row in rows for key in row)


def test_list_sort_by_metric_best_first_and_loss_lowest_first(runs):
    rows = list_runs([str(runs)], sort="accuracy")
    assert [row["name"] for row in rows] == ["tune-tiny/final", "tiny-2", "tune-tiny/trials/trial-000", "tiny",
                                             "tiny-3", "tiny-4"]  # no test accuracy: last
    assert list(rows[0]["metrics"])[0] == "accuracy"
    rows = list_runs([str(runs)], sort="loss")
    assert [row["name"] for row in rows][:2] == ["tune-tiny/final", "tiny-2"]  # lowest loss first
    assert list(rows[0]["metrics"])[0] == "loss"
    assert metric_mode("val_accuracy") == "max" and metric_mode("wer") == "min" and metric_mode("map_50") == "max"
    with pytest.raises(RunError, match=r"--sort acuracy: no run .* has a test metric 'acuracy'.*did you mean "
                                       r"'accuracy'"):
        list_runs([str(runs)], sort="acuracy")


def test_format_runs_table(runs):
    text = format_runs(list_runs([str(runs)]))
    lines = text.splitlines()
    assert lines[0].split() == ["run", "task", "status", "test", "metrics", "epochs", "time", "export", "finished",
                                "differs"]
    tiny3 = next(line for line in lines if line.startswith("tiny-3 "))
    assert "image_classification" in tiny3 and "accuracy 0.7000" in tiny3 and " 38 s " in tiny3
    assert "saved_model,onnx parity FAILED (onnx)" in tiny3
    assert tiny3.endswith("(reference)")
    assert "saved_model,onnx parity ok" in next(line for line in lines if line.startswith("tiny "))
    tiny4 = next(line for line in lines if line.startswith("tiny-4 "))
    assert "interrupted" in tiny4 and "best val_accuracy 0.6000 (epoch 1)" in tiny4 and " 1/5 " in tiny4
    assert tiny4.endswith("model.head.dropout=0 train.epochs=5 train.optimizer.learning_rate=0.01")
    assert any(line.startswith("differs:") for line in lines)


def test_list_without_runs_and_missing_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    rows = list_runs([str(tmp_path / "empty")])
    assert rows == [] and format_runs(rows).count("\n") == 0
    assert format_runs(rows).startswith(f"no runs under {tmp_path / 'empty'}")
    with pytest.raises(RunError, match="no such directory"):
        list_runs([str(tmp_path / "missing")])


def test_list_survives_broken_files(tmp_path):
    path = make_run(tmp_path, "broken")
    with open(os.path.join(path, "metrics.json"), "w", encoding="utf-8") as f:
        f.write("{not json")
    rows = list_runs([str(tmp_path)])
    assert rows[0]["status"] == "complete" and rows[0]["metrics"] == {}
    assert "note: broken: metrics.json is unreadable" in format_runs(rows)


def test_compare_differences_metrics_and_png(runs, tmp_path):
    png = tmp_path / "out" / "cmp.png"
    comparison = compare_runs([str(runs / "tiny"), str(runs / "tiny-3"), str(runs / "tiny-4")], output=str(png))
    assert comparison["differences"] == {
        "model.head.dropout": {"tiny": 0.0, "tiny-3": 0.3, "tiny-4": 0.0},
        "train.epochs": {"tiny": 3, "tiny-3": 3, "tiny-4": 5},
        "train.optimizer.learning_rate": {"tiny": 0.01, "tiny-3": 0.001, "tiny-4": 0.01}}
    assert comparison["metric"] == "val_accuracy" and comparison["train_metric"] == "accuracy"
    assert comparison["plot"] == str(png) and png.read_bytes()[:8] == PNG_MAGIC
    assert [row["best"]["value"] for row in comparison["runs"]] == [0.8, 0.7, 0.6]
    json.dumps(comparison)
    text = format_comparison(comparison)
    assert "train.optimizer.learning_rate  0.01  0.001   0.01" in text
    assert f"Curves (val_accuracy, dashed: accuracy): {png}" in text
    assert "parity FAILED (onnx)" in text and "interrupted" in text


def test_compare_notes_missing_history_and_metric(runs, tmp_path):
    make_run(tmp_path, "fresh", status="created", history=False)
    comparison = compare_runs([str(runs / "tiny"), str(tmp_path / "fresh")], metric="val_loss",
                              output=str(tmp_path))  # a directory: runs_compare.png inside
    assert comparison["plot"] == str(tmp_path / "runs_compare.png")
    assert comparison["notes"] == ["fresh has no history.csv yet (status created): no val_loss curve"]
    assert comparison["train_metric"] == "loss"
    with pytest.raises(RunError, match=r"--metric val_acc: no run has a history column 'val_acc'.*did you mean"):
        compare_runs([str(runs / "tiny")], metric="val_acc", output=str(tmp_path / "x.png"))
    with pytest.raises(RunError, match="is not a run directory"):
        compare_runs([str(runs / "tiny"), str(tmp_path)], output=str(tmp_path / "x.png"))
    one = compare_runs([str(runs / "tiny")], output=str(tmp_path / "one.png"))
    assert format_comparison(one).startswith("Recipe differences: one run only (tiny)")


def test_compare_labels_clashing_names_and_run_paths(tmp_path):
    a = make_run(tmp_path / "study-a", "trial-000")
    b = make_run(tmp_path / "study-b", "trial-000")
    for path in (a, b):  # a value holding the run's own path differs only by the run directory
        with open(os.path.join(path, "recipe.yaml"), encoding="utf-8") as f:
            recipe = yaml.safe_load(f)
        recipe["data"]["cache_dir"] = os.path.join(path, "cache")
        with open(os.path.join(path, "recipe.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(recipe, f)
    comparison = compare_runs([a, b], output=str(tmp_path / "c.png"))
    assert [row["name"] for row in comparison["runs"]] == ["study-a/trial-000", "study-b/trial-000"]
    assert comparison["differences"] == {}
    assert "Recipe differences: none" in format_comparison(comparison)


def test_value_text():
    assert value_text([32, 32]) == "[32, 32]" and value_text(None) == "null" and value_text(1e-4) == "0.0001"
    assert value_text(True) == "true" and len(value_text("x" * 100)) == 40


def test_run_table_imports_no_tensorflow_or_matplotlib_for_list(runs):
    code = ("import sys; from toolkit.run_table import list_runs, format_runs; "
            f"format_runs(list_runs([{str(runs)!r}])); "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "False"


def test_runs_cli_end_to_end(runs, tmp_path):
    result = run_cli("runs", "list", runs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("run ") and len([line for line in lines if line.startswith(("tiny", "tune-"))]) == 6
    assert next(line for line in lines if line.startswith("tiny ")).endswith(
        "model.head.dropout=0 train.optimizer.learning_rate=0.01")

    result = run_cli("runs", "list", runs, "--sort", "accuracy", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["name"] == "tune-tiny/final" and rows[0]["metrics"]["accuracy"] == 0.95

    png = tmp_path / "compare.png"
    result = run_cli("runs", "compare", runs / "tiny", runs / "tiny-2", "--output", png)
    assert result.returncode == 0, result.stderr
    assert "Recipe differences (1 key;" in result.stdout
    assert "train.optimizer.learning_rate  0.01  0.001" in result.stdout
    assert png.read_bytes()[:8] == PNG_MAGIC

    result = run_cli("runs", "compare", runs / "tiny", runs / "tiny-2", "--output", png, "--json")
    assert json.loads(result.stdout)["plot"] == str(png)

    (tmp_path / "empty").mkdir()
    result = run_cli("runs", "list", tmp_path / "empty")
    assert result.returncode == 0 and result.stdout.startswith("no runs under")
    for args in (("list", tmp_path / "missing"), ("compare", runs / "tiny", tmp_path / "nowhere"),
                 ("list", runs, "--sort", "nope")):
        result = run_cli("runs", *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("toolkit runs: error: ") and result.stderr.count("\n") == 1, result.stderr


def test_compare_a_key_only_one_run_has(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    with open(os.path.join(b, "recipe.yaml"), encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    recipe["track"] = {"backend": "mlflow"}
    with open(os.path.join(b, "recipe.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    comparison = compare_runs([a, b], output=str(tmp_path / "c.png"))
    assert comparison["differences"] == {"track.backend": {"b": "mlflow"}}
    assert "track.backend  (unset)  mlflow" in format_comparison(comparison)
