"""Trainer pieces: phases, freezing, schedules, and repeatability by seed."""

import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.training.trainer import make_optimizer, plan_phases, set_trainable, trim_history

from conftest import make_image_folder, write_recipe

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


def recipe_with(tmp_path, **train):
    path = write_recipe(tmp_path / "r.yaml", tmp_path / "data", tmp_path / "runs")
    return load_recipe(path, overrides={"model.weights": "pretrained", **{f"train.{k}": v for k, v in train.items()}})


def test_phases(tmp_path):
    recipe = recipe_with(tmp_path, epochs=5, **{"fine_tune.frozen_epochs": 2, "fine_tune.unfreeze": 3,
                                                 "fine_tune.learning_rate_factor": 0.5})
    frozen, tune = plan_phases(recipe, pretrained=True)
    assert (frozen.name, frozen.start, frozen.end, frozen.unfreeze) == ("frozen", 0, 2, "none")
    assert (tune.name, tune.start, tune.end, tune.unfreeze) == ("fine_tune", 2, 5, 3)
    assert tune.learning_rate == pytest.approx(recipe.train.optimizer.learning_rate * 0.5)
    only = plan_phases(recipe_with(tmp_path, epochs=2, **{"fine_tune.frozen_epochs": 2}), pretrained=True)
    assert [p.name for p in only] == ["frozen"]
    assert [p.name for p in plan_phases(recipe_with(tmp_path, epochs=3), pretrained=True)] == ["train"]


def test_unfreezing_keeps_pretrained_batchnorm_frozen():
    import keras

    from toolkit.backbones.build import build_backbone

    backbone = build_backbone("resnet_tiny", "none", (32, 32, 3)).model
    set_trainable(backbone, "none", pretrained=True)
    assert not backbone.trainable_weights
    set_trainable(backbone, 6, pretrained=True)
    trainable = [layer.name for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable == ["stage4_block1_conv2", "stage4_block1_proj"]  # top 6 layers, BatchNorm excluded
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    set_trainable(backbone, "all", pretrained=True)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    set_trainable(backbone, "all", pretrained=False)  # from scratch: BatchNorm trains
    assert all(layer.trainable for layer in norms)


def test_schedule_warmup_then_cosine(tmp_path):
    recipe = recipe_with(tmp_path, **{"schedule.warmup_epochs": 1, "optimizer.learning_rate": 0.1})
    optimizer = make_optimizer(recipe.train.optimizer, recipe.train.schedule, 0.1, {"per_epoch": 10, "total": 50})
    optimizer.build([])
    values = []
    for step in (0, 5, 10, 30, 50):
        optimizer.iterations.assign(step)
        values.append(float(optimizer.learning_rate))
    assert values[0] == pytest.approx(0.0) and values[1] == pytest.approx(0.05)
    assert values[2] == pytest.approx(0.1) and values[3] < 0.1 and values[4] == pytest.approx(0.0, abs=1e-6)


def test_trim_history_drops_epochs_to_redo(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n")
    trim_history(str(path), 2)
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.9"]


@pytest.mark.slow
def test_same_seed_same_run(tmp_path):
    from toolkit import api

    data = make_image_folder(tmp_path / "images", per_class=8)
    path = write_recipe(tmp_path / "seeded.yaml", data, tmp_path / "runs", export={"formats": []})
    first = api.train(path, log=lambda message: None)
    second = api.train(path, log=lambda message: None)
    assert first.path != second.path  # a second run never overwrites the first
    a, b = first.metrics["test"], second.metrics["test"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["confusion_matrix"] == b["confusion_matrix"]
    history = [np.genfromtxt(run.file("history.csv"), delimiter=",", names=True) for run in (first, second)]
    np.testing.assert_allclose(history[0]["loss"], history[1]["loss"], rtol=1e-5)


def test_steps_per_epoch_beyond_one_pass_repeats_the_training_data(tmp_path):
    """train.steps_per_epoch above the batches of one pass: every epoch runs that many steps on the repeated data
    (Keras alone ends the epoch, with a warning, where a finite dataset runs out)."""
    import keras

    from toolkit import api

    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch = []

        def on_epoch_begin(self, epoch, logs=None):
            self.per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.per_epoch[-1] += 1

    data = make_image_folder(tmp_path / "images", per_class=8)
    path = write_recipe(tmp_path / "steps.yaml", data, tmp_path / "runs", export={"formats": []},
                        train={"epochs": 2, "batch_size": 8, "steps_per_epoch": 5, "verbose": 0,
                               "optimizer": {"learning_rate": 0.01}})
    counter = Steps()
    run = api.train(path, log=lambda message: None, callbacks=[counter])
    assert run.metrics["data"]["train"]["examples"] <= 16  # at most 2 batches of 8 in one pass
    assert counter.per_epoch == [5, 5]
    assert run.state()["steps_per_epoch"] == 5


@pytest.mark.slow
def test_a_redirected_train_log_has_one_plain_line_per_epoch_and_no_tensorflow_noise(tmp_path):
    """stdout and stderr to a file (not a terminal): no progress-bar escapes or carriage returns, at most one line
    per epoch, and none of TensorFlow's start-up or run-time log lines."""
    import os
    import re
    import subprocess
    import sys

    from conftest import REPO

    data = make_image_folder(tmp_path / "images", per_class=8)
    recipe = write_recipe(tmp_path / "tiny.yaml", data, tmp_path / "runs", train={"epochs": 3, "verbose": "auto"},
                          export={"formats": ["onnx"]})
    environment = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL",
                                                                                 "PYTHONWARNINGS")}
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        result = subprocess.run([sys.executable, "-m", "toolkit", "train", recipe], stdout=out,
                                stderr=subprocess.STDOUT, env=environment, cwd=REPO, timeout=600)
    text = log.read_bytes().decode("utf-8")
    assert result.returncode == 0, text[-3000:]
    assert "\r" not in text and "\x1b" not in text and "\b" not in text, repr(text[:500])
    epoch_lines = [line for line in text.splitlines() if re.match(r"\[toolkit\] epoch \d+/3: ", line)]
    assert len(epoch_lines) == 3 and "loss" in epoch_lines[0] and "val_accuracy" in epoch_lines[0], text
    assert not re.search(r"^Epoch \d+/\d+$", text, re.M)  # Keras's own epoch header is not printed as well
    noise = [line for line in text.splitlines() if re.match(r"[IWEF]\d{4} |WARNING:|.*cuda|.*oneDNN", line)]
    assert not noise, noise
    assert len(text.splitlines()) < 60, text


@pytest.mark.slow
def test_ctrl_c_on_a_terminal_starts_its_message_on_a_new_line(tmp_path):
    """On a terminal Keras draws a progress bar; Ctrl-C in the middle of it must not glue the message to it."""
    import os
    import pty
    import select
    import sys
    import time

    from conftest import REPO

    data = make_image_folder(tmp_path / "images", per_class=30)
    recipe = write_recipe(tmp_path / "tiny.yaml", data, tmp_path / "runs", train={"epochs": 40, "verbose": "auto"},
                          export={"formats": []})
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the toolkit on the terminal's other end
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "toolkit", "train", recipe])
    output, sent, started = b"", False, time.time()
    while time.time() - started < 300:
        if select.select([terminal], [], [], 1.0)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not sent and b"Epoch 3/" in output:
            time.sleep(0.3)
            os.write(terminal, b"\x03")  # the terminal sends SIGINT to the foreground process
            sent = True
    _, status = os.waitpid(pid, 0)
    assert sent and os.waitstatus_to_exitcode(status) == 130, output[-2000:]
    text = output.decode("utf-8", "replace")
    line = next(line for line in text.replace("\r\n", "\n").split("\n") if "interrupted" in line)
    assert line.lstrip("\r").startswith("toolkit train: interrupted; resume with: toolkit train --resume"), repr(line)


def test_ctrl_c_during_fit_is_raised_at_the_next_step_never_inside_a_tensorflow_context():
    """A KeyboardInterrupt that lands inside one of TensorFlow's context managers (a device scope half entered)
    came out as "RuntimeError: Exiting device scope without proper scope nesting" (exit 1, not 130). The trainer's
    DeferredInterrupt records Ctrl-C and raises it at the next step boundary; a second Ctrl-C raises at once."""
    import signal
    import threading
    import time

    import keras
    import tensorflow as tf

    from toolkit.training.callbacks import DeferredInterrupt

    assert threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in `python -m toolkit`
    seen = []

    class Press(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)
            if batch == 1:
                with tf.device("/CPU:0"):
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.05)  # the handler runs here; with Python's default handler nothing below would
                    seen.append("after")

    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        with pytest.raises(KeyboardInterrupt):
            with DeferredInterrupt() as interrupt:
                model.fit(np.zeros((16, 4)), np.zeros((16, 2)), batch_size=4, epochs=3, verbose=0,
                          callbacks=[Press(), interrupt])
        assert seen == [0, 1, "after"]  # raised at the step boundary right after the press, before step 1 ran
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
        with pytest.raises(KeyboardInterrupt):
            with DeferredInterrupt():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                seen.append("first press waits")
                os.kill(os.getpid(), signal.SIGINT)  # the second press does not wait
                time.sleep(0.05)
                seen.append("never")
        assert seen[-1] == "first press waits"
        with pytest.raises(KeyboardInterrupt):
            with DeferredInterrupt():  # a press after the last step boundary is raised when the block ends
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                seen.append("end of block")
        assert seen[-1] == "end of block"
        outside = DeferredInterrupt()
        thread = threading.Thread(target=lambda: outside.__enter__())
        thread.start()
        thread.join()
        assert outside._previous is None  # another thread leaves the handler alone
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_training_datasets_run_without_the_autotune_thread_so_epoch_ends_do_not_stall():
    """The trainer's datasets keep AUTOTUNE parallelism but no tf.data autotuning thread: the destructor of a
    finished iterator waited for that thread's timer (up to the iterator's lifetime), once per epoch."""
    import time

    import tensorflow as tf

    from toolkit.data.prefetch import without_autotune_thread

    assert without_autotune_thread(None) is None
    dataset = (tf.data.Dataset.range(4000).map(lambda x: x * 2, num_parallel_calls=tf.data.AUTOTUNE)
               .batch(8).prefetch(tf.data.AUTOTUNE))
    steady = without_autotune_thread(dataset)
    assert dataset.options().autotune.enabled is not False and steady.options().autotune.enabled is False
    iterator = iter(steady)
    values = []
    for batch in iterator:  # a slow consumer for about a second: the autotuning timer, were it there, grows
        values.extend(batch.numpy().tolist())
        time.sleep(0.002)
    started = time.perf_counter()
    del iterator
    assert time.perf_counter() - started < 0.1
    assert values == [2 * x for x in range(4000)]


def _fitted(seed=0, units=3):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(np.random.RandomState(seed).rand(16, 4), np.ones((16, 2)), epochs=2, batch_size=4, verbose=0)
    return model


def test_the_resume_backup_restores_every_model_and_optimizer_variable_and_refuses_another_model(tmp_path):
    import h5py

    from toolkit.errors import RunError
    from toolkit.training.callbacks import AtomicBackupAndRestore

    trained = _fitted()
    backup = AtomicBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(trained)
    backup.on_epoch_end(1)
    assert sorted(os.listdir(tmp_path / "backup")) == ["state.npz", "training_metadata.json"]
    trained.save_weights(str(tmp_path / "keras.weights.h5"))  # Keras' own backup holds the same variables
    with h5py.File(tmp_path / "keras.weights.h5", "r") as f:
        saved = []
        f.visititems(lambda name, item: saved.append(name) if isinstance(item, h5py.Dataset) else None)
    assert len(saved) == len(np.load(tmp_path / "backup" / "state.npz").files)

    fresh = _fitted(seed=1)  # other weights, other optimizer slots and step counter
    restore = AtomicBackupAndRestore(str(tmp_path / "backup"))
    restore.set_model(fresh)
    restore.on_train_begin()
    assert fresh._initial_epoch == 2 and restore.restored_epoch() == 2
    pairs = list(zip(trained.weights + trained.optimizer.variables, fresh.weights + fresh.optimizer.variables))
    assert len(pairs) == 8 + 14 and all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)

    other = _fitted(units=5)
    refuse = AtomicBackupAndRestore(str(tmp_path / "backup"))
    refuse.set_model(other)
    with pytest.raises(RunError, match=r"the --resume backup .*state.npz does not fit this model \(variable 0, "
                                        r"sequential_\d+/dense_\d+/kernel, is \(4, 3\) there and \(4, 5\) here\); was "
                                        r"the recipe changed\?"):
        refuse.on_train_begin()


def test_a_backup_written_by_keras_save_weights_still_resumes(tmp_path):
    """A run started by a toolkit that wrote `latest.weights.h5` resumes after an upgrade."""
    from toolkit.training.callbacks import AtomicBackupAndRestore, write_json

    trained = _fitted()
    os.makedirs(tmp_path / "backup")
    trained.save_weights(str(tmp_path / "backup" / "latest.weights.h5"))
    write_json(str(tmp_path / "backup" / "training_metadata.json"), {"epoch": 2, "batch": 0})
    fresh = _fitted(seed=1)
    restore = AtomicBackupAndRestore(str(tmp_path / "backup"))
    restore.set_model(fresh)
    restore.on_train_begin()
    assert fresh._initial_epoch == 2
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(trained.weights + trained.optimizer.variables,
                                                                      fresh.weights + fresh.optimizer.variables))


def test_the_best_checkpoint_holds_the_model_weights_without_the_optimizer_and_loads_back(tmp_path):
    import h5py

    from toolkit.training.callbacks import BestCheckpoint, load_weights_quietly

    trained = _fitted()
    best = BestCheckpoint(str(tmp_path / "best.weights.h5"), "val_loss")
    best.set_model(trained)
    best.on_epoch_end(0, {"val_loss": 0.5})
    with h5py.File(tmp_path / "best.weights.h5", "r") as f:
        saved = []
        f.visititems(lambda name, item: saved.append(name) if isinstance(item, h5py.Dataset) else None)
    assert len(saved) == len(trained.weights) and not any(name.startswith("optimizer") for name in saved)
    fresh = _fitted(seed=1)
    load_weights_quietly(fresh, str(tmp_path / "best.weights.h5"))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(trained.weights, fresh.weights))


def test_every_tf_data_pipeline_of_the_toolkit_prefetches_through_the_shared_helper():
    """Training, validation, evaluation and prediction pipelines all end in `toolkit.data.prefetch.prefetched`, so
    none keeps the autotuning thread whose iterator teardown idles (a raw `.prefetch(` would bring it back)."""
    import re

    from conftest import REPO

    raw = []
    for root, _, names in os.walk(os.path.join(REPO, "toolkit")):
        for name in names:
            path = os.path.join(root, name)
            if name.endswith(".py") and not path.endswith(os.path.join("data", "prefetch.py")):
                with open(path, encoding="utf-8") as f:
                    raw += [f"{os.path.relpath(path, REPO)}:{number}" for number, line in enumerate(f, 1)
                            if re.search(r"\.prefetch\(", line)]
    assert raw == [], f"use toolkit.data.prefetch.prefetched instead of .prefetch( at {raw}"
