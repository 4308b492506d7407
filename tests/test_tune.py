"""`toolkit tune`: a search over a recipe's own dotted keys (Optuna), each trial an ordinary run directory,
resumable after SIGKILL, with invalid spaces refused in one line before any trial starts."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, make_image_folder, run_cli, write_recipe

GRID = {"space": {"train.optimizer.learning_rate": {"choice": [1.0e-6, 0.01]},
                  "model.head.dropout": {"choice": [0.0, 0.1]}},
        "algorithm": "grid", "trials": 4}


def _recipe(tmp_path, name="tiny", tune=None, **sections):
    data = make_image_folder(tmp_path / "images", per_class=20)
    path = write_recipe(tmp_path / f"{name}.yaml", data, tmp_path / "runs", **sections)
    with open(path, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    recipe["tune"] = tune or GRID
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return path


def test_grid_search_finds_the_planted_best_and_writes_a_plain_recipe(tmp_path):
    """A learning rate of 1e-6 learns nothing in 3 epochs: every best trial has 0.01; the best recipe is plain."""
    import toolkit
    from toolkit.config import load_recipe

    path = _recipe(tmp_path, train={"epochs": 3}, export={"formats": ["onnx"], "verify_samples": 4})
    lines = []
    study = toolkit.tune(path, final=True, log=lines.append)
    assert [row["state"] for row in study.trials] == ["COMPLETE"] * 4
    assert study.best["params"]["train.optimizer.learning_rate"] == 0.01
    assert study.best["value"] > max(row["value"] for row in study.trials
                                     if row["params"]["train.optimizer.learning_rate"] == 1.0e-6)
    # Every trial is an ordinary run directory: not exported (tune.export_trials false), evaluable.
    for row in study.trials:
        assert os.path.isfile(os.path.join(row["run_dir"], "model.keras"))
        assert not os.path.isdir(os.path.join(row["run_dir"], "export"))
    assert toolkit.evaluate(study.best["run_dir"], "validation")["accuracy"] == pytest.approx(study.best["value"])
    best = load_recipe(study.best_recipe)
    assert best.tune is None and best.train.optimizer.learning_rate == 0.01 and best.name == "tiny-tuned"
    assert best.export.formats == ["onnx"]
    with open(study.best_recipe, encoding="utf-8") as f:
        assert "\ntune:" not in f.read()
    for name in ("trials.csv", "study.json", "study.db", "optimization_history.png", "parallel_coordinate.png"):
        assert os.path.isfile(os.path.join(study.study_dir, name)), name
    with open(os.path.join(study.study_dir, "trials.csv"), encoding="utf-8") as f:
        assert len(f.read().strip().splitlines()) == 5
    # The final run: the best recipe on train+validation, exported and verified.
    final = study.final_run
    assert final.path == os.path.join(study.study_dir, "final")
    trial_data = toolkit.open_run(study.best["run_dir"]).metrics["data"]
    assert final.metrics["data"].get("validation", {}).get("examples", 0) == 0
    assert final.metrics["data"]["train"]["examples"] == (trial_data["train"]["examples"]
                                                          + trial_data["validation"]["examples"])
    assert final.load_recipe().train.optimizer.learning_rate == 0.01
    assert os.path.isfile(os.path.join(final.path, "export", "model.onnx"))
    summary = study.summary()
    assert "Best: trial" in summary and "final run" in summary and "4 complete" in summary
    # Running it again finds the study complete: nothing is trained twice.
    again = toolkit.tune(path, log=lines.append)
    assert len(again.trials) == 4 and again.best["number"] == study.best["number"]
    assert toolkit.open_study(study.study_dir).best["number"] == study.best["number"]
    # A changed base recipe is refused for the same study directory, in one line.
    with pytest.raises(toolkit.ToolkitError, match=r"different recipe \(differing: train.epochs\)"):
        toolkit.tune(path, overrides={"train.epochs": 2})


@pytest.mark.parametrize("override, message", [
    ("tune.space.model.head.dropout={choice: [0.1, 1.5]}",
     "tune.space.model.head.dropout: the value 1.5 is not valid: model.head.dropout: expected less than 1; got 1.5"),
    ("tune.space.model.head.dropot={choice: [0.1]}", "tune.space.model.head.dropot: no such recipe key; did you mean "
                                                     "'dropout'?"),
    ("tune.space.train.epochs={int: [0, -2]}", "int: low 0 is above high -2"),
    ("tune.space.train.batch_size={uniform: [1, 2], choice: [3]}", "give exactly one of"),
    ("tune.algorithm=grid", "algorithm grid: every key needs choice"),
])
def test_an_invalid_space_is_one_line_before_any_trial(tmp_path, override, message):
    space = {"space": {"train.optimizer.learning_rate": {"log_uniform": [1.0e-4, 1.0e-2]}}}
    path = _recipe(tmp_path, tune=space)
    result = run_cli("tune", path, override)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("toolkit tune: error: ") and message in lines[0], result.stderr
    assert not os.path.exists(tmp_path / "runs")  # nothing created


def test_no_tune_section_and_bad_flags_are_one_line(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=4)
    path = write_recipe(tmp_path / "plain.yaml", data, tmp_path / "runs")
    result = run_cli("tune", path)
    assert result.returncode == 2 and "no tune.space to search" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("tune", path, "--trials", "0")
    assert result.returncode == 2 and "--trials 0: give 1 or more" in result.stderr


def test_time_budget_stops_a_trial_at_an_epoch_end_as_pruned(tmp_path):
    import toolkit

    tune = {"space": {"train.optimizer.learning_rate": {"log_uniform": [1.0e-3, 1.0e-2]}}, "trials": 5}
    path = _recipe(tmp_path, tune=tune, train={"epochs": 3})
    lines = []
    study = toolkit.tune(path, time_budget=0.001, log=lines.append)
    assert [row["state"] for row in study.trials] == ["PRUNED"]
    assert study.trials[0]["epochs"] == 1 and "time budget reached at epoch 1" in study.trials[0]["note"]
    assert any("time budget reached" in line and "no more trials" in line for line in lines)
    assert study.best is None and study.best_recipe is None and "No trial completed yet" in study.summary()
    with open(os.path.join(study.trials[0]["run_dir"], "state.json"), encoding="utf-8") as f:
        assert json.load(f)["status"] == "pruned"


def test_median_pruner_stops_a_bad_trial_early(tmp_path):
    """Seed 5 orders the grid [0.01, 0.02, 1e-6] with 1e-6 last (checked below): after two good trials, the
    learning rate of 1e-6 is below their median at epoch 1 and stopped there."""
    import toolkit

    tune = {"space": {"train.optimizer.learning_rate": {"choice": [0.01, 0.02, 1.0e-6]}}, "algorithm": "grid",
            "pruner": "median", "trials": 3, "seed": 5}
    path = _recipe(tmp_path, tune=tune, train={"epochs": 3})
    study = toolkit.tune(path, log=lambda line: None)
    rates = [row["params"]["train.optimizer.learning_rate"] for row in study.trials]
    assert rates[-1] == 1.0e-6, rates  # the seed's order
    assert [row["state"] for row in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert study.trials[-1]["epochs"] == 1 and "val_accuracy" in study.trials[-1]["note"]
    assert "pruned" in study.table()


def test_sigkill_mid_study_resumes_without_repeating_finished_trials(tmp_path):
    path = _recipe(tmp_path, train={"epochs": 4}, tune=dict(GRID, trials=3))
    study_dir = tmp_path / "runs" / "tune-tiny"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "tune", path], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = study_dir / "trials" / "trial-001" / "history.csv"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # kill while trial 1 trains (after its first epoch)
            if history.is_file() and len(history.read_text().strip().splitlines()) >= 2:
                break
            assert process.poll() is None, "the study ended before it could be killed"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = study_dir / "trials" / "trial-000" / "metrics.json"
    stamp = finished.stat().st_mtime_ns
    result = run_cli("tune", path, check=True)
    assert "trial 1 was killed mid-run; it is queued again and resumes" in result.stdout
    assert finished.stat().st_mtime_ns == stamp  # trial 0 was not trained again
    import toolkit

    study = toolkit.open_study(study_dir)
    states = [(row["state"], row["note"]) for row in study.trials]
    assert states[0] == ("COMPLETE", "") and states[1] == ("FAIL", "killed, queued again")
    done = [row for row in study.trials if row["state"] == "COMPLETE"]
    assert len(done) == 3
    resumed = [row for row in done if "resumes trial 1" in row["note"]]
    assert len(resumed) == 1 and resumed[0]["run_dir"].endswith("trial-001")
    assert resumed[0]["params"] == study.trials[1]["params"]
    keys = [json.dumps(row["params"], sort_keys=True) for row in done]
    assert len(set(keys)) == 3  # no grid point trained twice
    with open(os.path.join(resumed[0]["run_dir"], "state.json"), encoding="utf-8") as f:
        assert json.load(f)["status"] == "complete"
