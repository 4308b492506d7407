"""The trainer: `model.fit` in one or two phases with the toolkit's callbacks.

Phases (Keras transfer-learning guide):

1. `frozen`: backbone frozen, head trained (`train.fine_tune.frozen_epochs`);
2. `fine_tune`: the top `train.fine_tune.unfreeze` backbone layers (or all)
   unfrozen at `learning_rate * learning_rate_factor`; BatchNorm layers of a
   pretrained backbone stay frozen and in inference mode.

Without frozen epochs there is one phase, `train`. Each phase is one `fit()`
call with: an atomic `BackupAndRestore` (so `toolkit train --resume` goes on
from the last completed epoch with the optimizer state intact), the best
checkpoint, early stopping, CSV history, TensorBoard and the progress bar.
"""

import contextlib
import csv
import dataclasses
import math
import os
import time

from toolkit.atomic import atomic_path
from toolkit.data.prefetch import without_autotune_thread
from toolkit.errors import RunError


@dataclasses.dataclass
class Phase:
    """One `fit()` call: epochs [start, end) at a learning rate."""

    name: str
    start: int
    end: int
    learning_rate: float
    unfreeze: object  # "none", "all" or an int


def plan_phases(recipe, pretrained):
    """Returns the training phases of a recipe."""
    train = recipe.train
    tune = train.fine_tune
    base = train.optimizer.learning_rate
    if train.epochs == 0:
        return []  # evaluate/export the initial weights as they are
    if pretrained and tune.frozen_epochs > 0:
        phases = [Phase("frozen", 0, tune.frozen_epochs, base, "none")]
        if tune.frozen_epochs < train.epochs:
            phases.append(Phase("fine_tune", tune.frozen_epochs, train.epochs, base * tune.learning_rate_factor,
                                tune.unfreeze))
        return phases
    return [Phase("train", 0, train.epochs, base, tune.unfreeze)]


def configure(train_config):
    """Seeds every random generator and sets the dtype policy."""
    import keras

    keras.utils.set_random_seed(train_config.seed)
    keras.config.set_dtype_policy(train_config.precision)


def set_trainable(backbone_layer, unfreeze, pretrained):
    """Freezes/unfreezes backbone layers for a phase.

    Args:
        backbone_layer: the backbone (a nested Keras model).
        unfreeze: "none", "all" or int (top N layers trainable).
        pretrained: bool. Keep BatchNorm frozen (pretrained statistics).
    """
    import keras

    if unfreeze == "none" or unfreeze == 0:
        backbone_layer.trainable = False
        return
    backbone_layer.trainable = True
    layers = backbone_layer.layers
    chosen = set(id(layer) for layer in (layers if unfreeze == "all" else layers[len(layers) - unfreeze:]))
    for layer in layers:
        is_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = id(layer) in chosen and not (pretrained and is_norm)


def apply_l2(model, l2):
    """Adds an L2 penalty to every Dense/Conv kernel (taken by trainable ones)."""
    import keras

    if not l2:
        return
    regularizer = keras.regularizers.L2(l2)
    for layer in _all_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and hasattr(kernel, "regularizer"):
            kernel.regularizer = regularizer
        depthwise = getattr(layer, "depthwise_kernel", None)
        if depthwise is not None and hasattr(depthwise, "regularizer"):
            depthwise.regularizer = regularizer


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def make_optimizer(config, schedule, learning_rate, steps):
    """Builds the Keras optimizer with its learning-rate schedule for a phase."""
    import keras

    warmup = min(int(round(schedule.warmup_epochs * steps["per_epoch"])), max(steps["total"] - 1, 0))
    decay_steps = max(steps["total"] - warmup, 1)
    if schedule.name == "constant" and not warmup:
        rate = learning_rate
    else:
        alpha = 1.0 if schedule.name == "constant" else schedule.final_factor
        if warmup:
            rate = keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps, alpha=alpha, warmup_target=learning_rate, warmup_steps=warmup
            )
        else:
            rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=alpha)
    common = {"learning_rate": rate}
    if config.clipnorm:
        common["clipnorm"] = config.clipnorm
    if config.name == "adam":
        return keras.optimizers.Adam(**common)
    if config.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay or 0.004, **common)
    if config.name == "sgd":
        return keras.optimizers.SGD(momentum=config.momentum, nesterov=True,
                                    weight_decay=config.weight_decay or None, **common)
    return keras.optimizers.RMSprop(momentum=config.momentum, **common)


def trim_history(path, before_epoch):
    """Keeps the rows of history.csv with epoch < before_epoch (resume)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and row[0].isdigit() and int(row[0]) < before_epoch]
    if len(kept) == len(body):
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(kept)


def best_so_far(path, monitor):
    """Best value of `monitor` in history.csv, or None."""
    from toolkit.plots import read_history
    from toolkit.training.callbacks import monitor_mode

    values = [v for v in read_history(path).get(monitor, []) if not math.isnan(v)]
    if not values:
        return None
    return min(values) if monitor_mode(monitor) == "min" else max(values)


class Trainer:
    """Trains a task's model in a run directory.

    Args:
        task: Task. The task (holds the recipe).
        run: Run. The run directory.
        log: callable(str). Where progress lines go.
        callbacks: list of Keras callbacks added to every phase's `fit()` after the toolkit's own (the epoch's
            logs then hold `epoch_seconds`): experiment trackers, `toolkit tune`'s pruning.
    """

    def __init__(self, task, run, log=print, callbacks=()):
        self.task = task
        self.run = run
        self.log = log
        self.recipe = task.recipe
        self.callbacks = list(callbacks)

    def monitor(self, has_validation):
        monitor = self.recipe.train.monitor or self.task.default_monitor
        if not has_validation and monitor.startswith("val_"):
            monitor = monitor[len("val_"):]
        return monitor

    def fit(self):
        """Runs (or resumes) all phases; returns the model with the best weights."""
        from toolkit.training.callbacks import DeferredInterrupt

        # Ctrl-C is raised between steps, never inside one of TensorFlow's context managers
        with DeferredInterrupt() as interrupt:
            return self._fit(interrupt)

    def _fit(self, interrupt):
        import keras

        from toolkit.progress import live_output
        from toolkit.training.callbacks import (
            AtomicBackupAndRestore,
            BestCheckpoint,
            EpochLine,
            EpochState,
            EpochTimer,
            NaNGuard,
            load_weights_quietly,
        )
        from toolkit.training.distribute import make_strategy, strategy_summary, synchronize_batch_norm

        recipe, run, task = self.recipe, self.run, self.task
        strategy = make_strategy(recipe.train)  # first: it may split the CPU before TensorFlow starts
        scope = strategy.scope if strategy is not None else contextlib.nullcontext
        if strategy is not None:
            self.log(f"strategy: {strategy_summary(strategy)}")
        configure(recipe.train)
        # Every task's pipeline ends with toolkit.data.prefetch.prefetched; this holds for one that does not.
        train_data = without_autotune_thread(task.build_inputs("train", training=True))
        if recipe.train.steps_per_epoch:
            # One stream across epochs (as TF Model Garden's train_steps): Keras alone ends an epoch early, with a
            # warning, where a finite dataset runs out before steps_per_epoch.
            train_data = train_data.repeat()
        validation_data = without_autotune_thread(task.build_inputs("validation"))
        with scope():
            model = task.build_model()
        apply_l2(model, recipe.train.l2)
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            synchronize_batch_norm(model, True)  # statistics of the global batch, as on one device
        if recipe.train.strategy == "multi_worker":
            from toolkit.training.distribute import patch_multi_worker_fit

            patch_multi_worker_fit(model, strategy)
        pretrained = task.backbone.pretrained
        phases = plan_phases(recipe, pretrained)
        report = task.data_report()
        from toolkit.data.skips import skip_lines

        for line in skip_lines(report):
            self.log(line)
        train_count = report["train"]["examples"]
        per_epoch = recipe.train.steps_per_epoch or max(1, math.ceil(train_count / recipe.train.batch_size))
        monitor = self.monitor(validation_data is not None)
        history_path = run.file("history.csv")
        best_path = run.file("checkpoints", "best.weights.h5")
        os.makedirs(run.file("checkpoints"), exist_ok=True)
        state = run.update_state(status="training", phases=[dataclasses.asdict(p) for p in phases],
                                 monitor=monitor, steps_per_epoch=per_epoch)
        done = list(state.get("completed_phases", []))
        started = time.time()
        previous_seconds = float(state.get("train_seconds", 0.0))
        for index, phase in enumerate(phases):
            if phase.name in done:
                continue
            if index > 0 and phases[index - 1].name in done:
                load_weights_quietly(model, run.file("checkpoints", f"phase_{phases[index - 1].name}.weights.h5"))
            set_trainable(task.backbone_layer(model), phase.unfreeze, pretrained)
            steps = {"per_epoch": per_epoch, "total": per_epoch * (phase.end - phase.start)}
            with scope():
                model.compile(
                    optimizer=make_optimizer(recipe.train.optimizer, recipe.train.schedule, phase.learning_rate,
                                             steps),
                    loss=task.build_losses(),
                    metrics=task.build_metrics(),
                )
            guard = NaNGuard()
            backup = AtomicBackupAndRestore(run.file("_backup", phase.name), guard)
            restored = backup.restored_epoch()
            trim_history(history_path, max(restored, phase.start))
            callbacks = [
                EpochTimer(),
                guard,
                BestCheckpoint(best_path, monitor, best=best_so_far(history_path, monitor), guard=guard),
                keras.callbacks.CSVLogger(history_path, append=True),
                backup,
                _ResumeRecorder(run, phase, restored, self.log),
                # train_seconds is kept per epoch so a killed-and-resumed run still counts its early epochs.
                EpochState(lambda **kw: run.update_state(train_seconds=previous_seconds + time.time() - started, **kw)),
                keras.callbacks.TensorBoard(run.file("logs"), write_graph=False, update_freq="epoch"),
                *self.callbacks,
                interrupt,  # last: an epoch that ended is written before Ctrl-C stops the run
            ]
            verbose = recipe.train.verbose
            if verbose == "auto" and not live_output():  # a log file: one line per epoch, no bar
                callbacks.insert(1, EpochLine(self.log, recipe.train.epochs))  # after EpochTimer: it shows the time
                verbose = 0
            if recipe.train.early_stopping_patience:
                callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor,
                                                               patience=recipe.train.early_stopping_patience))
            # A task whose "backbone" is the whole model (trained from scratch or whole) has nothing to freeze.
            frozen = ("" if task.backbone_layer(model) is model else
                      f", backbone {'frozen' if phase.unfreeze == 'none' else 'unfrozen: ' + str(phase.unfreeze)}")
            self.log(f"phase {phase.name}: epochs {phase.start + 1}-{phase.end}, learning rate "
                     f"{phase.learning_rate:g}{frozen}")
            model.fit(
                train_data,
                validation_data=validation_data,
                initial_epoch=phase.start,
                epochs=phase.end,
                steps_per_epoch=recipe.train.steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose,
            )
            interrupt.check()
            if guard.at is not None:
                raise self._diverged(phase, guard.at, best_path)
            with atomic_path(run.file("checkpoints", f"phase_{phase.name}.weights.h5")) as tmp:
                model.save_weights(tmp)
            done.append(phase.name)
            run.update_state(completed_phases=done,
                             train_seconds=previous_seconds + time.time() - started)
        if os.path.isfile(best_path):
            load_weights_quietly(model, best_path)
        if strategy is not None:
            # Evaluation, saving and export run on one device: a plain copy without distributed variables.
            from toolkit.training.distribute import outside_strategy

            model = outside_strategy(model)
        return model




    def _diverged(self, phase, at, best_path):
        """Records a NaN/inf loss in the run state; returns the one-line error naming the step and causes."""
        self.run.update_state(status="diverged", diverged={"phase": phase.name, **at})
        optimizer = self.recipe.train.optimizer
        kept = (f"the last good weights are kept in {best_path}" if os.path.isfile(best_path)
                else "no epoch finished before it, so there is no checkpoint to keep")
        clip = "" if optimizer.clipnorm else " or set train.optimizer.clipnorm: 1.0"
        return RunError(
            f"training diverged: the loss became {at['loss']} at epoch {at['epoch']}, "
            f"{'step ' + str(at['step']) if at['step'] else 'in validation'} "
            f"(phase {phase.name}); likely causes: a learning rate too high (train.optimizer.learning_rate is "
            f"{phase.learning_rate:g}; lower it{clip}) or bad data (NaN/inf values, labels out of range); {kept}")


class _ResumeRecorder:
    """Records where a resumed phase restarted (after BackupAndRestore ran)."""

    def __new__(cls, run, phase, restored, log):
        import keras

        class Recorder(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if restored > phase.start:
                    iterations = int(self.model.optimizer.iterations.numpy())
                    log(f"resumed phase {phase.name} at epoch {restored + 1} "
                        f"(optimizer iterations restored: {iterations})")
                    records = run.state().get("resumed", [])
                    records.append({"phase": phase.name, "epoch": restored, "optimizer_iterations": iterations})
                    run.update_state(resumed=records)

        return Recorder()
