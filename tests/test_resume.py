"""SIGKILL a training run mid-way, resume it, and check that it continued."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, make_image_folder, run_cli, write_recipe

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


def read_state(run_dir):
    try:
        with open(os.path.join(run_dir, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_sigkill_then_resume_continues_with_optimizer_state(tmp_path):
    from toolkit.backbones.build import build_backbone

    data = make_image_folder(tmp_path / "images", per_class=10)
    weights = str(tmp_path / "tiny.weights.h5")
    build_backbone("resnet_tiny", "none", (32, 32, 3)).model.save_weights(weights)
    epochs, frozen, kill_after = 40, 2, 4
    recipe = write_recipe(
        tmp_path / "resume.yaml", data, tmp_path / "runs",
        model={"weights": "file:" + weights},
        train={"epochs": epochs, "fine_tune": {"frozen_epochs": frozen, "unfreeze": "all"}},
        export={"formats": ["onnx"]},
    )
    run_dir = os.path.join(str(tmp_path / "runs"), "resume")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "train", recipe], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and read_state(run_dir).get("epoch", 0) < kill_after:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_state = read_state(run_dir)
    killed_at = killed_state["epoch"]
    assert kill_after <= killed_at < epochs, killed_state
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))  # nothing looks complete

    result = run_cli("train", "--resume", run_dir, check=True)
    assert "resumed phase fine_tune" in result.stdout
    state = read_state(run_dir)
    assert state["status"] == "complete"
    record = state["resumed"][0]
    assert record["phase"] == "fine_tune" and record["epoch"] >= killed_at
    # the fine-tune optimizer's step counter came back from the backup, not from zero
    assert record["optimizer_iterations"] == (record["epoch"] - frozen) * state["steps_per_epoch"] > 0

    with open(os.path.join(run_dir, "history.csv")) as f:
        history_epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert history_epochs == list(range(epochs))  # continued, no epoch twice, none missing
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["epochs_completed"] == epochs
    assert os.path.isfile(os.path.join(run_dir, "export", "model.onnx"))


def test_resume_refuses_recipe_and_complete_runs(tmp_path, trained_run):
    result = run_cli("train", trained_run["recipe"], "--resume", trained_run["run_dir"])
    assert result.returncode == 2 and "do not pass a recipe" in result.stderr
    result = run_cli("train", "--resume", trained_run["run_dir"], env=trained_run["env"])
    assert result.returncode == 2 and "already complete" in result.stderr
