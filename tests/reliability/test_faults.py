"""Faults users hit, for every task: Ctrl-C and SIGKILL during training, then
`--resume`; a NaN loss; a full disk and a read-only run directory during export.

The interruption points are random (epoch and a delay inside it); the seed is
printed with every failure and taken from TOOLKIT_FAULT_SEED to replay a run.
"""

import concurrent.futures
import contextlib
import csv
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
import tiny_tasks
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

EPOCHS = tiny_tasks.BASELINE_EPOCHS
SEED = int(os.environ.get("TOOLKIT_FAULT_SEED", random.SystemRandom().randrange(10**6)))
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
# What a resumed run may differ by from an uninterrupted one: after the resume point the data order and the
# dropout masks are drawn again (as with keras.callbacks.BackupAndRestore), so the last training losses agree
# only to within this fraction of the loss the run gained (final loss: the median of the last third of the
# epochs; measured: at most 0.006 of it).
LOSS_TOLERANCE = 0.2
# Each task's headline test metric (a fraction) agrees to within this (measured over three runs: at most 0.024).
HEADLINE = {"image_classification": "accuracy", "segmentation": "mean_iou", "translation": "token_accuracy",
            "speech_recognition": "cer", "recommendation": "recall@5"}
METRIC_TOLERANCE = 0.15


def _available_tasks():
    return [task for task in tiny_tasks.TASKS if tiny_tasks.available(task) is None]


def _env(root):
    env = dict(os.environ, **ENV, TOOLKIT_HOME=os.path.join(root, "home"),
               KERAS_HOME=os.path.join(root, "home", "keras"))
    return env


def _state(run_dir):
    try:
        with open(os.path.join(run_dir, "state.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _start(args, root):
    return subprocess.Popen([sys.executable, "-m", "toolkit", *args], cwd=REPO, env=_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt(process, run_dir, at_epoch, delay, sig):
    """Waits until the run has finished `at_epoch` epochs, then `delay` seconds, then sends `sig`."""
    deadline = time.time() + 300
    while _state(run_dir).get("epoch", 0) < at_epoch:
        if process.poll() is not None or time.time() > deadline:
            out, err = process.communicate()
            raise AssertionError(f"the run ended before epoch {at_epoch} (rc {process.returncode}):\n{err[-2000:]}")
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(sig)
    out, err = process.communicate(timeout=300)
    return {"rc": process.returncode, "stdout": out, "stderr": err, "state": _state(run_dir)}


def _finish(args, root):
    process = _start(args, root)
    out, err = process.communicate(timeout=600)
    return {"rc": process.returncode, "stdout": out, "stderr": err}


def check_complete(run_dir):
    """Opens every file of a run under its final name (JSON, YAML, CSV, HDF5, .keras zip, ONNX, PNG); a
    half-written one fails. Returns the hidden temporaries a killed write may leave (never under a final name)."""
    import h5py
    from PIL import Image

    temporaries = []
    for parent, directories, files in os.walk(run_dir):
        hidden = [name for name in directories + files if name.startswith(".") and (".tmp-" in name or
                                                                                   ".old-" in name)]
        temporaries += [os.path.join(parent, name) for name in hidden]
        directories[:] = [name for name in directories if name not in hidden]
        for name in files:
            if name in hidden:
                continue
            path = os.path.join(parent, name)
            if name.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    json.load(f)
            elif name.endswith(".yaml"):
                with open(path, encoding="utf-8") as f:
                    assert isinstance(yaml.safe_load(f), dict), path
            elif name.endswith(".csv"):
                with open(path, newline="", encoding="utf-8") as f:
                    rows = list(csv.reader(f))
                assert rows and all(len(row) == len(rows[0]) for row in rows), path
            elif name.endswith(".h5"):
                with h5py.File(path, "r") as f:
                    f.visit(lambda key: None)
            elif name.endswith(".npz"):  # the --resume backup: reading every array raises on a truncated file
                with np.load(path, allow_pickle=False) as archive:
                    for key in archive.files:
                        archive[key]
            elif name.endswith(".keras"):
                with zipfile.ZipFile(path) as archive:
                    assert archive.testzip() is None, path
            elif name.endswith(".onnx"):
                import onnx

                onnx.load(path)
            elif name.endswith(".png"):
                with Image.open(path) as image:
                    image.verify()
    return temporaries


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _scenario(task, root, rng):
    """Ctrl-C at a random epoch, resume, SIGKILL at a later random epoch, resume to the end."""
    recipe = tiny_tasks.write(task, root, EPOCHS[task])
    run_dir = os.path.join(root, "runs", task)
    epochs = EPOCHS[task]
    first = rng.randint(1, epochs // 4)
    sigint = _interrupt(_start(["train", recipe], root), run_dir, first, rng.uniform(0, 0.1), signal.SIGINT)
    sigint["at_epoch"] = first
    # Ctrl-C lands after the epoch in flight (tiny epochs take tens of milliseconds, so a loaded machine may be
    # several epochs past `first`): the kill comes at a later epoch than wherever the first run stopped.
    after = sigint["state"].get("epoch", first) + 1
    second = rng.randint(after, max(after, epochs // 2))
    sigkill = _interrupt(_start(["train", "--resume", run_dir], root), run_dir, second, rng.uniform(0, 0.1),
                         signal.SIGKILL)
    sigkill["at_epoch"] = second
    sigkill["model_keras_exists"] = os.path.exists(os.path.join(run_dir, "model.keras"))
    sigkill["temporaries"] = check_complete(run_dir)
    resumed = _finish(["train", "--resume", run_dir], root)
    return {"recipe": recipe, "run_dir": run_dir, "sigint": sigint, "sigkill": sigkill, "resumed": resumed}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    """Per task: an uninterrupted run (the session's shared baseline, tiny_tasks.baseline, which the serving tests
    also use) and an interrupted-and-resumed one, two processes at a time."""
    root = str(tmp_path_factory.mktemp("faults"))
    rng = random.Random(SEED)
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for task in _available_tasks():
            jobs[task] = (pool.submit(_scenario, task, os.path.join(root, task, "interrupted"),
                                      random.Random(rng.random())),
                          pool.submit(tiny_tasks.baseline, task, tmp_path_factory))
        return {task: {**interrupted.result(), "baseline": baseline.result()}
                for task, (interrupted, baseline) in jobs.items()}


def _task(faults, task):
    if task not in faults:
        pytest.skip(tiny_tasks.available(task))
    return faults[task]


@pytest.mark.slow
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_ctrl_c_leaves_a_resumable_run_and_says_how(faults, task):
    sigint = _task(faults, task)["sigint"]
    where = f"(TOOLKIT_FAULT_SEED={SEED}, Ctrl-C after epoch {sigint['at_epoch']})"
    assert sigint["rc"] == 130, where + sigint["stderr"][-2000:]
    lines = sigint["stderr"].strip().splitlines()
    assert "Traceback" not in sigint["stderr"], where + sigint["stderr"][-2000:]
    assert lines[-1] == f"toolkit train: interrupted; resume with: toolkit train --resume {faults[task]['run_dir']}"
    assert sigint["state"]["status"] == "interrupted" and sigint["state"]["epoch"] >= sigint["at_epoch"], where


@pytest.mark.slow
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_sigkill_never_leaves_a_half_written_artifact(faults, task):
    sigkill = _task(faults, task)["sigkill"]
    where = f"(TOOLKIT_FAULT_SEED={SEED}, SIGKILL after epoch {sigkill['at_epoch']})"
    assert sigkill["rc"] == -signal.SIGKILL, where
    assert sigkill["state"]["status"] == "training" and not sigkill["model_keras_exists"], where
    # every file under its final name opened completely (check_complete); only hidden temporaries may be left,
    # and the resume cleaned them up
    assert all(os.path.basename(path).startswith(".") for path in sigkill["temporaries"])
    assert check_complete(faults[task]["run_dir"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_resume_continues_with_optimizer_state_and_matches_an_uninterrupted_run(faults, task):
    run = _task(faults, task)
    where = f"(TOOLKIT_FAULT_SEED={SEED}, Ctrl-C after epoch {run['sigint']['at_epoch']}, SIGKILL after " \
            f"{run['sigkill']['at_epoch']})"
    assert run["resumed"]["rc"] == 0, where + run["resumed"]["stderr"][-3000:]
    assert run["baseline"]["rc"] == 0, run["baseline"]["stderr"][-3000:]
    state = _state(run["run_dir"])
    assert state["status"] == "complete"
    # two resumes, each at the last completed epoch, each with the optimizer's step counter restored
    assert [record["epoch"] for record in state["resumed"]] == [run["sigint"]["state"]["epoch"],
                                                                 run["sigkill"]["state"]["epoch"]], where
    for record in state["resumed"]:
        assert record["optimizer_iterations"] == record["epoch"] * state["steps_per_epoch"], where
    resumed, baseline = _history(run["run_dir"]), _history(run["baseline"]["run_dir"])
    assert [int(row["epoch"]) for row in resumed] == list(range(EPOCHS[task])), where  # none twice, none missing
    # up to the first interruption the two runs are the same computation
    first = run["sigint"]["state"]["epoch"]
    np.testing.assert_allclose([float(row["loss"]) for row in resumed[:first]],
                               [float(row["loss"]) for row in baseline[:first]], rtol=1e-4)
    # after it, the resumed run carries on from where it was, not from scratch: its first resumed epoch is far
    # below the first epoch's loss, and the final loss agrees with the uninterrupted run
    start = float(baseline[0]["loss"])
    after = float(resumed[first]["loss"])
    assert abs(after - float(baseline[first]["loss"])) < 0.5 * abs(start - float(baseline[first]["loss"])), where
    # the final losses: the median of the last third of the epochs (a tiny run's single epochs spike)
    tail = EPOCHS[task] // 3
    final_resumed = float(np.median([float(row["loss"]) for row in resumed[-tail:]]))
    final_baseline = float(np.median([float(row["loss"]) for row in baseline[-tail:]]))
    assert abs(final_resumed - final_baseline) <= LOSS_TOLERANCE * abs(start - final_baseline), where
    with open(os.path.join(run["run_dir"], "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["epochs_completed"] == EPOCHS[task]
    with open(os.path.join(run["baseline"]["run_dir"], "metrics.json"), encoding="utf-8") as f:
        uninterrupted = json.load(f)
    name = HEADLINE[task]
    assert abs(metrics["test"][name] - uninterrupted["test"][name]) <= METRIC_TOLERANCE, (where, name)
    assert not os.path.exists(os.path.join(run["run_dir"], "_backup"))
    # parity: the ONNX export of the resumed model answers like it on held-out samples (export verification)
    with open(os.path.join(run["run_dir"], "export", "verify.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["passed"] and report["sample_source"] == "held-out test split", report
    endpoints = report["formats"]["onnx"]["endpoints"].values()
    assert endpoints and all(e["passed"] and e["agreement"] == 1.0 for e in endpoints), report


def _tree_digest(path):
    digest = hashlib.sha256()
    for parent, directories, files in sorted(os.walk(path)):
        directories.sort()
        for name in sorted(files):
            digest.update(name.encode())
            with open(os.path.join(parent, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


EXPORT_FAULTS = textwrap.dedent("""
    import contextlib, io, json, os, resource, signal, subprocess, sys

    import toolkit.exporters
    from toolkit import cli

    mode, run_dirs = sys.argv[1], sys.argv[2:]
    export_run = toolkit.exporters.export_run

    def full_disk(*args, **kwargs):
        # every write past 8 KiB fails in the kernel (EFBIG), as on a full disk; the model is already loaded
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))
        try:
            return export_run(*args, **kwargs)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    @contextlib.contextmanager
    def read_only(path):
        # a read-only bind mount (root: chmod does not stop root) or a read-only mode bit (other users)
        if os.geteuid() != 0:
            os.chmod(path, 0o555)
            try:
                yield "chmod"
            finally:
                os.chmod(path, 0o755)
            return
        mounted = subprocess.run(["mount", "--bind", path, path], capture_output=True).returncode == 0
        if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", path], capture_output=True).returncode:
            subprocess.run(["umount", path])
            mounted = False
        if not mounted:  # a container without mount rights: the file system refuses the first write
            import tempfile
            original = tempfile.mkdtemp
            def refuse(*args, **kwargs):
                raise OSError(30, "Read-only file system")
            tempfile.mkdtemp = refuse
            try:
                yield "simulated"
            finally:
                tempfile.mkdtemp = original
            return
        try:
            yield "mount"
        finally:
            subprocess.run(["umount", path], check=True)

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for run_dir in run_dirs:
        stderr = io.StringIO()
        with contextlib.ExitStack() as stack:
            if mode == "full":
                toolkit.exporters.export_run = full_disk
                how = "rlimit"
            else:
                how = stack.enter_context(read_only(run_dir))
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["export", run_dir, "--format", "saved_model,onnx"])
            toolkit.exporters.export_run = export_run
        print(json.dumps({"run_dir": run_dir, "code": code, "stderr": stderr.getvalue(), "how": how}), flush=True)
""")


@pytest.fixture(scope="module")
def export_faults(faults, tmp_path_factory):
    """`toolkit export` of every finished run on a full disk, then into a read-only run directory."""
    runs = [run["run_dir"] for run in faults.values() if run["resumed"]["rc"] == 0]
    script = tmp_path_factory.mktemp("export_faults") / "export_faults.py"
    script.write_text(EXPORT_FAULTS)
    results = {}
    for mode in ("full", "read_only"):
        before = {run_dir: _tree_digest(os.path.join(run_dir, "export")) for run_dir in runs}
        listing = {run_dir: sorted(os.listdir(run_dir)) for run_dir in runs}
        process = subprocess.run([sys.executable, str(script), mode, *runs], cwd=REPO, capture_output=True,
                                 text=True, env=dict(os.environ, **ENV), timeout=600)
        assert process.returncode == 0, process.stderr[-3000:]
        for line in process.stdout.splitlines():
            if line.startswith("{"):
                result = json.loads(line)
                run_dir = result["run_dir"]
                result["export_unchanged"] = _tree_digest(os.path.join(run_dir, "export")) == before[run_dir]
                result["listing_unchanged"] = sorted(os.listdir(run_dir)) == listing[run_dir]
                results[(mode, run_dir)] = result
    return results


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "read_only"])
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_export_on_a_full_disk_or_read_only_directory_keeps_the_previous_export(faults, export_faults, task, mode):
    run_dir = _task(faults, task)["run_dir"]
    result = export_faults[(mode, run_dir)]
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 2 and len(lines) == 1, result
    reason = "File too large" if mode == "full" else ("Permission denied" if result["how"] == "chmod"
                                                      else "Read-only file system")
    assert lines[0].startswith("toolkit export: error: export") and reason in lines[0], result
    assert "the previous export is untouched" in lines[0]
    assert result["export_unchanged"] and result["listing_unchanged"], result  # nothing replaced, nothing left


def _spiking_optimizer(make_optimizer, spike_epoch):
    """`make_optimizer` whose learning rate jumps to 1e30 after `spike_epoch` epochs (the loss then diverges)."""
    import keras

    class Spike(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, rate, at):
            self.rate, self.at = rate, at

        def __call__(self, step):
            from keras import ops

            return ops.where(step >= self.at, 1e30, self.rate)

        def get_config(self):
            return {"rate": self.rate, "at": self.at}

    def spiking(config, schedule, learning_rate, steps):
        optimizer = make_optimizer(config, schedule, learning_rate, steps)
        optimizer.learning_rate = Spike(learning_rate, spike_epoch * steps["per_epoch"])
        return optimizer

    return spiking


@pytest.mark.slow
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(task, tmp_path, monkeypatch, capsys):
    import h5py

    from toolkit import cli
    from toolkit.training import trainer

    if tiny_tasks.available(task):
        pytest.skip(tiny_tasks.available(task))
    recipe = tiny_tasks.write(task, tmp_path, 6)
    monkeypatch.setattr(trainer, "make_optimizer", _spiking_optimizer(trainer.make_optimizer, 2))
    with contextlib.redirect_stdout(None):
        code = cli.main(["train", recipe])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    message = lines[0]
    found = re.match(r"toolkit train: error: training diverged: the loss became (nan|inf|-inf) at epoch (\d+), "
                     r"(step (\d+)|in validation) \(phase train\); likely causes: a learning rate too high", message)
    assert found and "bad data" in message, message
    epoch, step = int(found.group(2)), found.group(4) and int(found.group(4))
    assert epoch >= 3  # the spike comes with the first step of epoch 3; its effect shows from that step on
    run_dir = os.path.join(str(tmp_path), "runs", task)
    best = os.path.join(run_dir, "checkpoints", "best.weights.h5")
    assert f"the last good weights are kept in {best}" in message
    state = _state(run_dir)
    assert state["status"] == "diverged" and state["diverged"]["epoch"] == epoch
    assert state["diverged"]["step"] == step
    with h5py.File(best, "r") as f:  # the checkpoint is from before the spike: every weight finite
        weights = []
        f.visititems(lambda name, item: weights.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    assert weights and all(np.all(np.isfinite(w)) for w in weights if np.issubdtype(np.asarray(w).dtype, np.floating))
    # the backup keeps the last epoch that finished with a finite loss, not the diverged one
    with open(os.path.join(run_dir, "_backup", "train", "training_metadata.json"), encoding="utf-8") as f:
        assert json.load(f)["epoch"] == epoch - 1
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))


def test_recover_puts_back_a_directory_swap_cut_between_its_two_renames(tmp_path):
    from toolkit.atomic import recover

    run = tmp_path / "run"
    (run / ".export.old-abc").mkdir(parents=True)  # killed after `export` -> `.export.old-*`, before the new one
    (run / ".export.old-abc" / "model.onnx").write_bytes(b"previous")
    (run / ".export.tmp-def").mkdir()  # the new export, not complete
    (run / ".metrics.json.tmp-123-metrics.json").write_text('{"accura')
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".best.weights.h5.tmp-9-best.weights.h5").write_bytes(b"\x89HDF")
    (run / "keep.txt").write_text("x")
    changed = recover(str(run))
    assert len(changed) == 4
    assert sorted(os.listdir(run)) == ["checkpoints", "export", "keep.txt"]
    assert (run / "export" / "model.onnx").read_bytes() == b"previous" and os.listdir(run / "checkpoints") == []
    # the previous directory exists as well: the leftover old copy is removed
    (run / ".export.old-xyz").mkdir()
    recover(str(run))
    assert sorted(os.listdir(run)) == ["checkpoints", "export", "keep.txt"]
