"""What every plain script shares: its two arguments, the epoch timer and the one JSON line it prints.

The timer is the only callback of each plain `fit()`. `epoch_seconds` is what the toolkit's `EpochTimer` (the
first callback of `toolkit train`, whose figure goes into `history.csv`) measures: from `on_epoch_begin` to
`on_epoch_end`, the epoch's training steps and its validation pass. `epoch_ends` are the clock at each
`on_epoch_end` (seconds, `time.perf_counter`): their differences are the whole epoch-to-epoch wall time, which on
the toolkit side also holds the end-of-epoch callbacks that run after its `EpochTimer` (checkpoints, backup,
CSV/TensorBoard logs, run state); bench/throughput.py reads the toolkit's from its TensorBoard event times.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arguments(usage):
    """(limit, epochs) from the command line: `python bench/plain/<task>.py LIMIT EPOCHS`."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: python {sys.argv[0]} LIMIT EPOCHS\n{usage}")
    return int(sys.argv[1]), int(sys.argv[2])


def recipe_task(recipe, overrides):
    """(recipe, task) of a shipped recipe (`recipes/<recipe>`) with `overrides`: the toolkit's own data loader gives
    the plain script the same examples as `toolkit train` with the same overrides."""
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task

    loaded = load_recipe(os.path.join(REPO, "recipes", recipe), overrides)
    return loaded, make_task(loaded)


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.ends = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            self.seconds.append(end - self.start)
            self.ends.append(end)

    return EpochTimer()


def report(timer, examples, unit, train_examples, model, **extra):
    """Prints the one JSON line: epoch seconds and ends, the units trained on per epoch (`examples`: images,
    target tokens, ...) and what they are (`unit`), the training examples and the model's parameter count (which
    bench/throughput.py checks against the toolkit run's metrics.json)."""
    print(json.dumps({"epoch_seconds": timer.seconds, "epoch_ends": timer.ends, "examples": int(examples),
                      "unit": unit, "train_examples": int(train_examples), "parameters": int(model.count_params()),
                      **extra}))
