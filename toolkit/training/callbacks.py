"""Callbacks of the trainer: atomic backups, best checkpoint, run state.

Keras' own `BackupAndRestore` writes its files in place; a SIGKILL during a
write would leave a corrupt backup. `AtomicBackupAndRestore` writes to a
temporary file and renames, so the backup on disk is always a complete one.
"""

import json
import math
import os
import warnings

import keras

from toolkit.atomic import atomic_path, write_json
from toolkit.config.tune import monitor_mode  # noqa: F401 - the rule lives in the config layer (no Keras)


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

    def _save_model(self):
        if diverged(self.guard):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_path(self._weights_path) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})

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
                self.model.save_weights(tmp, overwrite=True)
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


def load_weights_quietly(model, path):
    """Loads model weights, ignoring the optimizer slots saved beside them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)
