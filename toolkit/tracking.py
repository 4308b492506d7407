"""Experiment tracking: a run's parameters, per-epoch metrics, test metrics, export parity and artifacts sent to
MLflow, Weights & Biases or TensorBoard (the recipe's `track:` section, `--track` on the CLI).

(Interface stub: the backends are being written.)
"""


class Tracker:
    """What `toolkit.api.train` calls; the base does nothing (track.backend: none)."""

    def callbacks(self):
        """Keras callbacks that log each epoch."""
        return []

    def finish(self, metrics=None, status="FINISHED"):
        """Ends the tracked run: final metrics, export parity and artifacts when `metrics` is given."""


def start_tracking(recipe, run, log, resumed=False):
    """Starts tracking `run` as `recipe.track` says; returns a `Tracker` (never raises)."""
    return Tracker()
