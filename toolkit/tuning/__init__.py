"""`toolkit tune`: a hyperparameter search over any recipe's own dotted keys, with Optuna.

Why Optuna and not KerasTuner: a trial here is a whole toolkit run (data
pipeline, one or two `fit` phases, evaluation, a run directory), not a
`build(hp)` function whose `fit` the tuner drives. Optuna's ask-and-tell API
lets the toolkit's own trainer run each trial and report each epoch, its
SQLite store makes a study resumable after a kill, and it has the samplers
(TPE, random, grid), pruners (Hyperband, median) and plots (history,
importance, parallel coordinates) the recipe section names.

See `toolkit.tuning.study.tune` and docs/tune.md.
"""

__all__ = ["tune", "open_study"]


def __getattr__(name):
    if name in __all__:
        from toolkit.tuning import study

        return getattr(study, name)
    raise AttributeError(f"module 'toolkit.tuning' has no attribute {name!r}")
