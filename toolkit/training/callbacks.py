"""Callbacks of the trainer: atomic backups, best checkpoint, run state.

Keras' own `BackupAndRestore` writes its files in place; a SIGKILL during a
write would leave a corrupt backup. `AtomicBackupAndRestore` writes to a
temporary file and renames, so the backup on disk is always a complete one.

Both per-epoch writes are kept short, since they stand between epochs: the
backup is one `.npz` of the model's and the optimizer's variables (about 4x
faster to write than Keras' `.weights.h5` of the same variables: 0.05 s
against 0.21 s for the nuclei U-Net), and the best checkpoint is a Keras
`.weights.h5` of the model's weights only (half the variables; the optimizer's
slots are in the backup).
"""

import json
import math
import os
import warnings

import keras
import numpy as np

from toolkit.atomic import atomic_path, write_json
from toolkit.config.tune import monitor_mode  # noqa: F401 - the rule lives in the config layer (no Keras)
from toolkit.errors import RunError


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose writes are atomic.

    Args:
        backup_dir: str. Directory of this phase's backup.
        guard: NaNGuard or None. After a NaN loss the backup is neither
            overwritten nor deleted: it keeps the last good epoch.
    """

    def __init__(self, backup_dir, guard=None):
        super().__init__(backup_dir)
        self.guard = guard

    def on_train_end(self, logs=None):
        if not diverged(self.guard):
            super().on_train_end(logs)

    @property
    def _state_path(self):
        return os.path.join(self.backup_dir, "state.npz")

    def _variables(self):
        """Every variable a resume restores, in a fixed order: the model's (as `model.weights`), then the
        optimizer's (step counter, learning rate, slots); the same set Keras' `save_weights` writes."""
        optimizer = self.model.optimizer
        return list(self.model.weights) + (list(optimizer.variables) if optimizer is not None else [])

    def _save_model(self):
        if diverged(self.guard):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        arrays = {}
        for index, variable in enumerate(self._variables()):
            value = np.asarray(variable.numpy())
            if value.dtype.kind == "V" or value.dtype.name == "bfloat16":  # no .npy type: float32 holds it exactly
                value = value.astype(np.float32)
            arrays[f"v{index}"] = value
        with atomic_path(self._state_path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def _load_model(self):
        if not os.path.exists(self._state_path):  # no backup, or one written as .weights.h5 by an older toolkit
            return super()._load_model()
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        variables = self._variables()
        with np.load(self._state_path, allow_pickle=False) as saved:
            shapes = [tuple(saved[f"v{index}"].shape) for index in range(len(saved.files))]
            here = [tuple(variable.shape) for variable in variables]
            if shapes != here:
                first = next((i for i, (a, b) in enumerate(zip(shapes, here)) if a != b), None)
                detail = (f"it holds {len(shapes)} variables, the model has {len(here)}" if first is None else
                          f"variable {first}, {variables[first].path}, is {shapes[first]} there and {here[first]} "
                          f"here")
                raise RunError(f"the --resume backup {self._state_path} does not fit this model ({detail}); was the "
                               f"recipe changed? Train it again without --resume, or put back the recipe the run "
                               f"started with")
            for index, variable in enumerate(variables):
                variable.assign(saved[f"v{index}"])
        with open(self._training_metadata_path, encoding="utf-8") as f:
            self.model._initial_epoch = int(json.load(f)["epoch"])

    def restored_epoch(self):
        """Returns the epoch a restart resumes at (0 without a backup)."""
        if not os.path.exists(self._training_metadata_path):
            return 0
        with open(self._training_metadata_path, encoding="utf-8") as f:
            return int(json.load(f)["epoch"])


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/infinite loss and records where (`at`): a training step, or the
    validation at the end of an epoch. Put it before the callbacks that save, which then skip that epoch."""

    def __init__(self):
        super().__init__()
        self.at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"), batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key.endswith("loss"):
                self._check(value, None)

    def _check(self, loss, step):
        if self.at is None and loss is not None and not math.isfinite(float(loss)):
            self.at = {"epoch": self._epoch + 1, "step": step, "loss": str(float(loss))}
            self.model.stop_training = True


def diverged(guard):
    """Whether a NaNGuard (or None) has seen a NaN/infinite loss."""
    return guard is not None and guard.at is not None


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the weights of the best epoch by `monitor`, atomically.

    Args:
        path: str. The `.weights.h5` file to write.
        monitor: str. Metric name in the epoch logs (e.g. `val_loss`).
        best: float or None. Best value so far (from an earlier phase or a
            resumed run).
        on_improve: callable(epoch, value) or None. Called after each save.
        guard: NaNGuard or None. An epoch that ended in a NaN loss is never saved.
    """

    def __init__(self, path, monitor, best=None, on_improve=None, guard=None):
        super().__init__()
        self.guard = guard
        self.path = path
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.best = best
        self.on_improve = on_improve

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"train.monitor {self.monitor!r} is not in the epoch logs ({', '.join(logs or {})})")
            return
        value = float(value)
        if math.isnan(value) or diverged(self.guard):
            return
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best = value
            with atomic_path(self.path) as tmp:
                save_model_weights(self.model, tmp)
            if self.on_improve:
                self.on_improve(epoch, value)




class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` (wall time of the epoch, validation included) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class EpochLine(keras.callbacks.Callback):
    """One plain line per epoch (for logs and redirected output, instead of Keras's progress bar): the epoch, its
    time and its metrics, e.g. `epoch 3/10: 12 s, loss 0.2011, accuracy 0.9669, val_loss 0.3280`."""

    def __init__(self, log, epochs):
        super().__init__()
        self.log = log
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        from toolkit.progress import duration

        logs = dict(logs or {})
        seconds = logs.pop("epoch_seconds", None)
        keys = sorted((key for key, value in logs.items() if hasattr(value, "__float__")),
                      key=lambda key: (key.startswith("val_"), not key.endswith("loss"), key))  # loss first
        figures = ", ".join(f"{key} {float(logs[key]):.4g}" for key in keys)
        took = "" if seconds is None else f" {seconds:.1f} s," if seconds < 10 else f" {duration(seconds)},"
        self.log(f"epoch {epoch + 1}/{self.epochs}:{took} {figures}")


class EpochState(keras.callbacks.Callback):
    """Records the last completed epoch of the run in its state file."""

    def __init__(self, update):
        super().__init__()
        self.update = update

    def on_epoch_end(self, epoch, logs=None):
        self.update(epoch=epoch + 1)


class DeferredInterrupt(keras.callbacks.Callback):
    """Ctrl-C during training stops at the next step boundary instead of wherever the signal lands.

    Python raises `KeyboardInterrupt` between any two bytecodes, which can be inside TensorFlow's own context
    managers (a device scope half entered); TensorFlow then fails with "Exiting device scope without proper scope
    nesting" instead of the interrupt. Used as a context manager around `fit`, this callback replaces the SIGINT
    handler (only in the main thread, and only where it is Python's default) with one that records the request;
    the interrupt is raised at the next batch, epoch or phase boundary (after the epoch-end writes when it
    lands at an epoch's end; list this callback last). A second Ctrl-C raises at once, as before.
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = None

    def __enter__(self):
        import signal
        import threading

        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, kind, value, traceback):
        self._restore()
        if kind is None:
            self.check()

    def _restore(self):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame):
        if self.requested:  # the second Ctrl-C: no more waiting
            self._restore()
            raise KeyboardInterrupt
        self.requested = True
        try:  # os.write, not print: a handler may run while the main thread is inside a print
            os.write(2, b"\ninterrupt: stopping after this step (Ctrl-C again to stop now)\n")
        except OSError:
            pass

    def check(self, *args, **kwargs):
        """Raises `KeyboardInterrupt` if Ctrl-C was pressed; a safe point between steps."""
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt

    # batch *begin* hooks: Keras keeps dispatching the batch *end* hooks asynchronously when no callback has one
    on_train_batch_begin = on_test_batch_begin = on_epoch_begin = on_epoch_end = check


def save_model_weights(model, path):
    """Writes the model's weights, without the optimizer's variables, as a Keras `.weights.h5` (loadable with
    `model.load_weights`); the whole `save_weights` where this Keras cannot leave the optimizer out."""
    try:
        from keras.src.saving import saving_lib

        skip = [model.optimizer] if getattr(model, "optimizer", None) is not None else None
        saving_lib.save_weights_only(model, path, objects_to_skip=skip)
    except (ImportError, AttributeError, TypeError):
        model.save_weights(path, overwrite=True)


def load_weights_quietly(model, path):
    """Loads model weights, ignoring optimizer variables that only one of the file and the model has (the best
    checkpoint holds none; a `save_weights` file holds them all)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)
