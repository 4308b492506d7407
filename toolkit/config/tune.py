"""The `tune:` and `track:` recipe sections: a hyperparameter search over the recipe's own dotted keys
(`toolkit tune`) and experiment tracking (any run).

Example:

>>> from toolkit.config.tune import TuneConfig
>>> tune = TuneConfig(space={"train.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]},
...                          "model.head.dropout": {"choice": [0.1, 0.3]}},
...                   objective={"metric": "val_accuracy"})
>>> tune.space["model.head.dropout"].kind, tune.objective.resolved_direction()
('choice', 'maximize')
"""

import builtins
from typing import Any, Literal, Optional, Union

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_serializer, model_validator

from toolkit.config.base import StrictModel

RANGE_KINDS = ("uniform", "log_uniform", "int", "log_int")
KINDS = ("choice",) + RANGE_KINDS


def monitor_mode(monitor):
    """'max' for accuracy-like metrics, 'min' for losses and errors."""
    name = monitor.removeprefix("val_").lower()
    if any(key in name for key in ("acc", "auc", "iou", "f1", "precision", "recall", "bleu", "chrf", "ndcg", "map",
                                   "dice", "hit_rate", "coverage", "windows_found")):
        return "max"
    return "min"


class SpaceSpec(StrictModel):
    """One searched key: exactly one of `choice: [a, b, ...]`, `uniform: [low, high]`, `log_uniform: [low, high]`,
    `int: [low, high]` or `log_int: [low, high]` (ints inclusive), with an optional `step`."""

    choice: Optional[list[Any]] = Field(None, description="values to choose from (any YAML values)")
    uniform: Optional[tuple[float, float]] = Field(None, description="a float in [low, high]")
    log_uniform: Optional[tuple[PositiveFloat, PositiveFloat]] = Field(
        None, description="a float in [low, high], sampled on a log scale")
    int: Optional[tuple[builtins.int, builtins.int]] = Field(None, description="an integer in [low, high]")
    log_int: Optional[tuple[PositiveInt, PositiveInt]] = Field(
        None, description="an integer in [low, high], sampled on a log scale")
    step: Optional[PositiveFloat] = Field(None, description="uniform/int: the grid step (default: continuous / 1)")

    @model_validator(mode="after")
    def _one_kind(self):
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}; got {', '.join(given) or 'none'}")
        kind = given[0]
        if kind == "choice" and not self.choice:
            raise ValueError("choice: give at least one value")
        if kind in RANGE_KINDS:
            low, high = getattr(self, kind)
            if low > high:
                raise ValueError(f"{kind}: low {low} is above high {high}")
        if self.step is not None and kind not in ("uniform", "int"):
            raise ValueError(f"step: only with uniform or int, not {kind}")
        return self

    @model_serializer
    def _dump(self):  # only the kind given (and step), as written in a recipe
        data = {self.kind: list(getattr(self, self.kind))}
        if self.step is not None:
            data["step"] = self.step
        return data

    @property
    def kind(self):
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    def bounds(self):
        """The values to check against the recipe schema before any trial: every choice, or low and high."""
        value = getattr(self, self.kind)
        if self.kind == "choice":
            return list(value)
        if self.kind in ("int", "log_int"):
            return [builtins.int(value[0]), builtins.int(value[1])]
        return [float(value[0]), float(value[1])]


class ObjectiveConfig(StrictModel):
    """What a trial is judged by."""

    metric: str = Field(
        "monitor",
        description="monitor (the recipe's train.monitor, e.g. val_accuracy), any per-epoch history column "
                    "(val_loss, val_accuracy, ...; its best epoch counts, and it can prune), or validation.<key> / "
                    "test.<key> of the task's evaluation (e.g. validation.bleu, computed after training)")
    direction: Literal["auto", "maximize", "minimize"] = Field(
        "auto", description="auto: maximize accuracy-like metrics (acc, auc, iou, f1, bleu, ...), minimize the rest")

    def resolved_direction(self, monitor=None):
        if self.direction != "auto":
            return self.direction
        metric = monitor if self.metric == "monitor" and monitor else self.metric
        return "maximize" if monitor_mode(metric.split(".")[-1]) == "max" else "minimize"


class TuneConfig(StrictModel):
    """A hyperparameter search (`toolkit tune`): Optuna samples `space`, each trial is a run directory."""

    space: dict[str, SpaceSpec] = Field(
        default_factory=dict,
        description="dotted recipe keys to search, e.g. train.optimizer.learning_rate: {log_uniform: [1e-4, 1e-2]}")
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig, description="the metric to optimise")

    @field_validator("space", mode="before")
    @classmethod
    def _flatten(cls, value):
        """Nested sections (`model: {head: {dropout: {choice: ...}}}`, or what a CLI override
        tune.space.model.head.dropout=... makes) become dotted keys."""
        if not isinstance(value, dict):
            return value
        flat = {}

        def walk(prefix, node):
            for key, item in node.items():
                name = f"{prefix}.{key}" if prefix else str(key)
                if isinstance(item, dict) and item and not (set(item) & set(KINDS + ("step",))):
                    walk(name, item)
                else:
                    flat[name] = item

        walk("", value)
        return flat
    algorithm: Literal["tpe", "random", "grid", "hyperband"] = Field(
        "tpe", description="tpe (Bayesian, Optuna's TPE), random, grid (choice spaces only: every combination) or "
                           "hyperband (random configurations, bad ones stopped early by successive halving)")
    pruner: Literal["auto", "none", "median", "hyperband"] = Field(
        "auto", description="early stopping of bad trials on the per-epoch objective: auto (hyperband with "
                            "algorithm hyperband, else none), none, median or hyperband")
    min_epochs: PositiveInt = Field(
        1, description="pruning: epochs every trial runs before it can be stopped (hyperband's smallest budget)")
    reduction_factor: int = Field(3, ge=2, description="hyperband: keep 1/reduction_factor of the trials per rung")
    trials: PositiveInt = Field(20, description="trials in the study (finished ones count when it resumes)")
    time_budget_minutes: Optional[PositiveFloat] = Field(
        None, description="stop starting trials after this many minutes; a running trial stops at the next epoch "
                          "end past it (counted as pruned)")
    seed: Optional[int] = Field(None, description="sampler seed (default: train.seed)")
    final: bool = Field(False, description="after the search, train the best recipe on train+validation")
    export_trials: bool = Field(
        False, description="export every trial (default: trials are not exported; the final run and "
                           "toolkit export RUN_DIR export)")

    @model_validator(mode="after")
    def _check(self):
        if self.algorithm == "grid":
            ranged = [key for key, spec in self.space.items() if spec.kind != "choice"]
            if ranged:
                raise ValueError(f"algorithm grid: every key needs choice: [...]; {', '.join(ranged)} "
                                 "is a range (use tpe or random, or list its values)")
        return self

    def resolved_pruner(self):
        if self.pruner != "auto":
            return self.pruner
        return "hyperband" if self.algorithm == "hyperband" else "none"


class TrackConfig(StrictModel):
    """Experiment tracking of the run (parameters, per-epoch metrics, test metrics, export parity, artifacts)."""

    backend: Union[Literal["none", "tensorboard", "mlflow", "wandb"],
                   list[Literal["tensorboard", "mlflow", "wandb"]]] = Field(
        "none", description="none, tensorboard (HParams and final metrics beside the run's logs/), mlflow, wandb, "
                            "or a list of them")
    uri: Optional[str] = Field(
        None, description="mlflow: tracking URI (default: sqlite:///<output.dir>/mlflow.db, artifacts beside it; "
                          "an http:// server; also MLFLOW_TRACKING_URI)")
    experiment: Optional[str] = Field(
        None, description="mlflow experiment / wandb project (default: the task name)")
    mode: Literal["offline", "online"] = Field(
        "offline", description="wandb: offline (files under <run>/wandb, wandb sync uploads them) or online")
    entity: Optional[str] = Field(None, description="wandb: team or user")
    tags: dict[str, str] = Field(default_factory=dict, description="extra tags on the tracked run")
    artifacts: bool = Field(True, description="upload the model card, plots, recipe and metrics as artifacts")

    def backends(self):
        """The backends as a list ([] for none)."""
        if isinstance(self.backend, list):
            return list(dict.fromkeys(self.backend))
        return [] if self.backend == "none" else [self.backend]


# ------------------------------------------------------------------ checking a space against the recipe schema


def check_space(recipe):
    """Validates every value of `recipe.tune.space` (each choice, each range's low and high) through the recipe's
    own schema, as a trial would set it; raises ValueError naming the key and the value."""
    from pydantic import ValidationError

    from toolkit.config.loader import _field_names, _format_one, apply_overrides
    from toolkit.errors import RecipeError

    tune = getattr(recipe, "tune", None)
    if tune is None or not tune.space:
        return
    schema = type(recipe)
    base = recipe.model_dump(mode="json", exclude={"tune"})
    for key, spec in tune.space.items():
        if key.split(".")[0] in ("tune", "task", "name", "output"):
            raise ValueError(f"tune.space.{key}: {key.split('.')[0]} cannot be searched")
        parts = key.split(".")
        if len(parts) > 1 and _field_names(schema, parts[:-1]) and parts[-1] not in _field_names(schema, parts[:-1]):
            from toolkit.registry import did_you_mean

            names = _field_names(schema, parts[:-1])
            raise ValueError(f"tune.space.{key}: no such recipe key{did_you_mean(parts[-1], names)} "
                             f"({'.'.join(parts[:-1])} has: {', '.join(names)})")
        for value in spec.bounds():
            try:
                data = apply_overrides(_copy(base), {key: value}, source="tune.space")
            except RecipeError as error:
                raise ValueError(f"tune.space.{key}: {error}")
            try:
                schema.model_validate(data)
            except ValidationError as error:
                problem = _format_one(error.errors()[0], schema)
                raise ValueError(f"tune.space.{key}: the value {value!r} is not valid: {problem}")


def _copy(data):
    import copy

    return copy.deepcopy(data)
