"""A tuning study: Optuna asks for a point of the recipe's `tune.space`, the toolkit trains it as an ordinary run.

A study directory (`<output.dir>/tune-<recipe name>` unless `--study` says):

    study.db            the Optuna study (SQLite): resuming reads it
    base_recipe.yaml    the recipe searched (a resumed study must be made from the same one)
    trials/trial-NNN/   one run directory per trial (toolkit evaluate/export/predict work on each)
    trials.csv          one row per trial: state, objective, epochs, seconds, parameters
    best_recipe.yaml    the best trial's recipe as a plain recipe (no tune: section)
    study.json          the summary: objective, best trial, counts, timings
    *.png               objective over trials, parameter importance, parallel coordinates
    tensorboard/        HParams of every trial (tensorboard --logdir STUDY_DIR/tensorboard)
    final/              with --final: the best recipe trained on train+validation

Resuming: run the same command again. Finished trials (complete, pruned,
failed) are kept; a trial whose process was killed (its pid is gone) is
marked failed and its parameters are queued again, the new trial resuming
the killed one's run directory from its last completed epoch.
"""

import csv
import dataclasses
import math
import os
import socket
import time

from toolkit.atomic import write_json, write_text
from toolkit.errors import RecipeError, ToolkitError

STATES_DONE = ("COMPLETE", "PRUNED", "FAIL")


def tune(recipe, trials=None, time_budget=None, study_dir=None, final=None, log=print, overrides=None):
    """Runs (or resumes) a hyperparameter search of a recipe's `tune:` section; returns the `StudyResult`.

    Args:
        recipe: a recipe object, a recipe file path or a dict, with a `tune:` section.
        trials: int or None. Trials in the study, finished ones included (default: tune.trials).
        time_budget: float or None. Minutes for this call (default: tune.time_budget_minutes).
        study_dir: str or None. The study directory (default: <output.dir>/tune-<recipe name>).
        final: bool or None. Train the best recipe on train+validation afterwards (default: tune.final).
        log: callable(str). Progress lines.
        overrides: dict or list of `a.b=value`, applied to the recipe first.

    Example:

    >>> import toolkit  # doctest: +SKIP
    >>> study = toolkit.tune("recipes/recommendation/movielens_rating.yaml", trials=20)  # doctest: +SKIP
    >>> study.best["value"], study.best["params"]  # doctest: +SKIP
    >>> toolkit.train(study.best_recipe)  # doctest: +SKIP
    """
    from toolkit.api import _as_recipe

    recipe = _as_recipe(recipe, overrides)
    if recipe.tune is None or not recipe.tune.space:
        raise RecipeError(
            f"recipe {recipe.name}: no tune.space to search; add e.g. tune: {{space: "
            "{train.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}}} (see docs/tune.md)")
    settings = recipe.tune
    total = trials or settings.trials
    budget = time_budget if time_budget is not None else settings.time_budget_minutes
    final = settings.final if final is None else final
    study_dir = os.path.abspath(study_dir or os.path.join(recipe.output.dir, f"tune-{recipe.name}"))
    runner = _Runner(recipe, study_dir, log)
    runner.search(total, None if budget is None else time.time() + 60.0 * budget)
    result = runner.result()
    if final and result.best is not None:
        result.final_run = runner.train_final(result)
        result.write()
    return result


def open_study(study_dir):
    """The `StudyResult` of an existing study directory (its trials, best trial and files), without running."""
    from toolkit.config import load_recipe

    study_dir = os.path.abspath(os.fspath(study_dir))
    base = os.path.join(study_dir, "base_recipe.yaml")
    if not os.path.isfile(base):
        raise ToolkitError(f"{study_dir} is not a study directory (no base_recipe.yaml); make one with toolkit tune")
    runner = _Runner(load_recipe(base), study_dir, print, create=False)
    result = runner.result(write=False)
    final = os.path.join(study_dir, "final")
    if os.path.isfile(os.path.join(final, "metrics.json")):
        from toolkit.api import open_run

        result.final_run = open_run(final)
    return result


# ---------------------------------------------------------------------------------------------------- the runner


class _Runner:
    def __init__(self, recipe, study_dir, log, create=True):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.recipe = recipe
        self.settings = recipe.tune
        self.study_dir = study_dir
        self.log = log
        self.monitor = recipe.train.monitor
        self.metric = self.monitor if self.settings.objective.metric == "monitor" else self.settings.objective.metric
        self.direction = self.settings.objective.resolved_direction(self.monitor)
        if create:
            os.makedirs(os.path.join(study_dir, "trials"), exist_ok=True)
            self._check_base()
        elif not os.path.isfile(os.path.join(study_dir, "study.db")):
            raise ToolkitError(f"{study_dir} has no study.db; run toolkit tune to start the study")
        self.storage = optuna.storages.RDBStorage(
            f"sqlite:///{os.path.join(study_dir, 'study.db')}", engine_kwargs={"connect_args": {"timeout": 60}})
        seed = self.settings.seed if self.settings.seed is not None else recipe.train.seed
        existing = _existing_trials(self.storage)
        self.study = optuna.create_study(
            study_name="study", storage=self.storage, direction=self.direction, load_if_exists=True,
            sampler=self._sampler(seed + existing), pruner=self._pruner())
        self.study.set_user_attr("metric", self.metric)

    # The base recipe -----------------------------------------------------------------------------------------
    def _check_base(self):
        """A study resumes only from the recipe it was made from (apart from trials, budget and final)."""
        from toolkit.config import recipe_to_yaml

        path = os.path.join(self.study_dir, "base_recipe.yaml")
        current = _comparable(self.recipe)
        if os.path.isfile(path):
            from toolkit.config import load_recipe

            stored = _comparable(load_recipe(path))
            if stored != current:
                keys = [key for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]
                raise RecipeError(
                    f"{self.study_dir} holds a study of a different recipe (differing: {', '.join(keys[:5])}"
                    f"{' ...' if len(keys) > 5 else ''}); give another --study directory, or remove that one to "
                    "start over")
            return
        write_text(path, recipe_to_yaml(self.recipe))

    # Optuna's sampler and pruner -------------------------------------------------------------------------------
    def _sampler(self, seed):
        import optuna

        algorithm = self.settings.algorithm
        if algorithm in ("random", "hyperband", "grid"):  # Hyperband: random configurations, successive halving;
            # grid: each point is queued by _queue_grid_point
            return optuna.samplers.RandomSampler(seed=seed)
        startup = max(3, min(10, self.settings.trials // 3))
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)

    def _pruner(self):
        import optuna

        kind = self.settings.resolved_pruner()
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=self.settings.min_epochs,
                                                  max_resource=max(self._max_epochs(), self.settings.min_epochs),
                                                  reduction_factor=self.settings.reduction_factor)
        if kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=self.settings.min_epochs)
        return optuna.pruners.NopPruner()

    def _max_epochs(self):
        spec = self.settings.space.get("train.epochs")
        return int(max(spec.bounds())) if spec is not None else int(self.recipe.train.epochs)

    # The search --------------------------------------------------------------------------------------------
    def search(self, total, deadline):
        import optuna

        self._requeue_killed()
        started = time.time()
        done = self._finished_count()
        if done:
            self.log(f"study {self.study_dir}: resuming with {done} finished trial(s) of {total}")
        else:
            self.log(f"study {self.study_dir}: {total} trial(s), {self.settings.algorithm} over "
                     f"{', '.join(self.settings.space)}; objective {self.metric} ({self.direction})")
        if self.metric.startswith("test."):
            self.log(f"warning: the objective {self.metric} selects on the test split, which then no longer "
                     "measures the tuned recipe fairly; prefer a validation metric")
        while self._finished_count() < total:
            if deadline is not None and time.time() >= deadline:
                self.log(f"time budget reached after {(time.time() - started) / 60:.1f} min: no more trials")
                break
            if self.settings.algorithm == "grid" and not self._queue_grid_point():
                self.log("every grid point has been tried")
                break
            trial = self.study.ask()
            self._run_trial(trial, deadline, optuna)

    def _queue_grid_point(self):
        """Queues the next combination of the choices not tried yet, in a seeded order; returns False when every
        one has been (Optuna's GridSampler stops the study itself, which only works inside `optimize`; queueing one
        point at a time also lets a killed trial's requeued run go first)."""
        import itertools
        import json
        import random

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state.name == "WAITING" for t in trials):
            return True
        keys = list(self.settings.space)
        points = list(itertools.product(*(self.settings.space[key].choice for key in keys)))
        random.Random(self.settings.seed if self.settings.seed is not None else self.recipe.train.seed).shuffle(points)
        seen = {json.dumps(t.params or t.system_attrs.get("fixed_params", {}), sort_keys=True, default=str)
                for t in trials if not t.user_attrs.get("killed")}
        for point in points:
            params = {key: (json.dumps(value) if isinstance(value, (list, dict)) else value)
                      for key, value in zip(keys, point)}
            if json.dumps(params, sort_keys=True, default=str) not in seen:
                self.study.enqueue_trial(params)
                return True
        return False

    def _finished_count(self):
        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if t.state.name in STATES_DONE and not t.user_attrs.get("killed"))

    def _requeue_killed(self):
        """Trials left RUNNING by a process that no longer exists: failed (killed), their parameters queued again
        with their run directory to resume."""
        host = socket.gethostname()
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state.name != "RUNNING":
                continue
            attrs = trial.user_attrs
            if attrs.get("host") not in (None, host) or _alive(attrs.get("pid")):
                continue
            self.storage.set_trial_user_attr(trial._trial_id, "killed", True)
            self.storage.set_trial_state_values(trial._trial_id, state=_state("FAIL"))
            self.study.enqueue_trial(trial.params, user_attrs={"resume_run": attrs.get("run_dir"),
                                                               "resumes_trial": trial.number})
            self.log(f"trial {trial.number} was killed mid-run; it is queued again and resumes "
                     f"{attrs.get('run_dir') or 'from scratch'}")

    def _run_trial(self, trial, deadline, optuna):
        from toolkit.api import train

        number = trial.number
        prefix = f"[trial {number}] "
        params = {key: _suggest(trial, key, spec) for key, spec in self.settings.space.items()}
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        resume_dir = trial.user_attrs.get("resume_run")
        if resume_dir and not os.path.isfile(os.path.join(resume_dir, "recipe.yaml")):
            resume_dir = None
        run_dir = resume_dir or os.path.join(self.study_dir, "trials", f"trial-{number:03d}")
        trial.set_user_attr("run_dir", run_dir)
        shown = ", ".join(f"{key}={_show(value)}" for key, value in params.items())
        self.log(f"trial {number}: {shown}" + (f" (resuming {os.path.basename(run_dir)})" if resume_dir else ""))
        pruning = _trial_callback(trial, self._report_metric(), self._report_sign(), deadline,
                                 history=os.path.join(run_dir, "history.csv") if resume_dir else None)
        started = time.time()
        try:
            if resume_dir:
                run = train(None, resume=run_dir, log=lambda line: self.log(prefix + line), callbacks=[pruning])
            else:
                run = train(self._trial_recipe(params, number), log=lambda line: self.log(prefix + line),
                            callbacks=[pruning])
            value = self._objective_value(run)
        except optuna.TrialPruned as pruned:
            self._mark_run(run_dir, "pruned")
            trial.set_user_attr("stopped", str(pruned) or "pruned")
            self._finish_attrs(trial, run_dir, started)
            self.study.tell(trial, state=_state("PRUNED"))
            self.log(f"trial {number}: pruned after {pruning.epochs} epoch(s) ({str(pruned) or 'below the others'})")
            return
        except KeyboardInterrupt:
            self.storage.set_trial_user_attr(trial._trial_id, "killed", True)
            self.study.tell(trial, state=_state("FAIL"))
            self.study.enqueue_trial(params, user_attrs={"resume_run": run_dir, "resumes_trial": number})
            self.log(f"study interrupted in trial {number}; run the same command again to resume it")
            raise KeyboardInterrupt() from None
        except ToolkitError as error:  # a bad combination or a diverged trial: the study goes on
            trial.set_user_attr("error", str(error))
            self._finish_attrs(trial, run_dir, started)
            self.study.tell(trial, state=_state("FAIL"))
            self.log(f"trial {number}: failed: {error}")
            return
        finally:
            _free_memory()
        self._finish_attrs(trial, run_dir, started)
        if value is None or not math.isfinite(value):
            trial.set_user_attr("error", f"no finite {self.metric} in the run")
            self.study.tell(trial, state=_state("FAIL"))
            self.log(f"trial {number}: failed: the run reports no finite {self.metric}")
            return
        self.study.tell(trial, value)
        best = self.study.best_trial
        self.log(f"trial {number}: {self.metric} {value:.5g} (best: trial {best.number}, {best.value:.5g})")

    def _trial_recipe(self, params, number):
        from toolkit.config import load_recipe

        data = self.recipe.model_dump(mode="json", exclude={"tune"})
        overrides = dict(params)
        overrides.update({"name": f"trial-{number:03d}", "output.dir": os.path.join(self.study_dir, "trials")})
        if not self.settings.export_trials:
            overrides["export.formats"] = []
        tags = dict(self.recipe.track.tags)
        tags.update({"study": self.study_dir, "trial": str(number)})
        overrides["track.tags"] = tags
        overrides.update(self._track_store())
        return load_recipe(data, overrides=overrides)

    def _track_store(self):
        """Trials and the final run live below the study directory: MLflow's default store (beside output.dir)
        is kept at the base recipe's, so every run of the study is in the one store."""
        if "mlflow" in self.recipe.track.backends() and not self.recipe.track.uri \
                and not os.environ.get("MLFLOW_TRACKING_URI"):
            return {"track.uri": "sqlite:///" + os.path.join(self.recipe.output.dir, "mlflow.db")}
        return {}

    def _report_metric(self):
        """The per-epoch history column reported for pruning: the objective if it is one, else the monitor."""
        if "." in self.metric:
            return self.monitor
        return self.metric

    def _report_sign(self):
        from toolkit.config.tune import ObjectiveConfig

        column = self._report_metric()
        mode = ObjectiveConfig(metric=column).resolved_direction()
        return 1.0 if mode == self.direction else -1.0

    def _objective_value(self, run):
        if self.metric.startswith("test."):
            return _lookup(run.metrics.get("test", {}), self.metric[len("test."):])
        if self.metric.startswith("validation."):
            from toolkit.api import evaluate

            return _lookup(evaluate(run.path, "validation"), self.metric[len("validation."):])
        history = run.history()
        values = history.get(self.metric)
        if not values:
            columns = ", ".join(key for key in history if key != "epoch")
            raise ToolkitError(f"tune.objective.metric {self.metric}: the run's history has no such column "
                               f"(it has: {columns}); or use validation.<metric> / test.<metric>")
        monitor = history.get(self.monitor) or values
        from toolkit.config.tune import ObjectiveConfig

        chosen = _best_index(monitor, ObjectiveConfig(metric=self.monitor).resolved_direction())
        return float(values[chosen]) if chosen is not None else None

    def _finish_attrs(self, trial, run_dir, started):
        from toolkit.runs import RunDirectory

        state = RunDirectory(run_dir).state() if os.path.isdir(run_dir) else {}
        trial.set_user_attr("epochs", int(state.get("epoch", 0)))
        trial.set_user_attr("seconds", round(time.time() - started, 1))

    @staticmethod
    def _mark_run(run_dir, status):
        from toolkit.runs import RunDirectory

        if os.path.isfile(os.path.join(run_dir, "state.json")):
            RunDirectory(run_dir).update_state(status=status)

    # Results ---------------------------------------------------------------------------------------------------
    def result(self, write=True):
        result = StudyResult(study_dir=self.study_dir, metric=self.metric, direction=self.direction,
                             space=list(self.settings.space), trials=_trial_rows(self.study),
                             recipe=self.recipe)
        done = [t for t in result.trials if t["state"] == "COMPLETE"]
        if done:
            best = (max if self.direction == "maximize" else min)(done, key=lambda t: t["value"])
            result.best = best
        if write:
            result.write()
            self._plots(result)
        return result

    def _plots(self, result):
        import warnings

        from toolkit.plots import _pyplot

        plt = _pyplot()
        complete = [t for t in result.trials if t["state"] == "COMPLETE"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from optuna.visualization import matplotlib as views

            for name, draw, needs in (("optimization_history", views.plot_optimization_history, 1),
                                      ("param_importances", views.plot_param_importances, 3),
                                      ("parallel_coordinate", views.plot_parallel_coordinate, 2),
                                      ("intermediate_values", views.plot_intermediate_values, 1)):
                path = os.path.join(self.study_dir, f"{name}.png")
                if len(complete) < needs:
                    continue
                try:
                    axes = draw(self.study, **({"target_name": self.metric} if name != "intermediate_values"
                                               else {}))
                    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
                    figure.set_size_inches(9, 5)
                    figure.tight_layout()
                    figure.savefig(path, dpi=90)
                    plt.close(figure)
                    result.plots.append(path)
                except Exception as error:  # e.g. importance with one distinct value: the study still ends well
                    self.log(f"plot {name} skipped ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
        try:
            from toolkit.tracking import log_study_hparams

            log_study_hparams(os.path.join(self.study_dir, "tensorboard"), result.space, result.trials, self.metric)
        except Exception as error:  # tracking never stops the study
            self.log(f"tensorboard hparams skipped ({type(error).__name__}: {error})")

    # The final run ------------------------------------------------------------------------------------------
    def train_final(self, result):
        """Trains the best recipe on train+validation (validation_fraction 0) in STUDY_DIR/final."""
        from toolkit.api import open_run, train
        from toolkit.config import load_recipe

        final_dir = os.path.join(self.study_dir, "final")
        prefix = "[final] "
        if os.path.isdir(final_dir):
            status = open_run(final_dir).state().get("status")
            if status == "complete":
                self.log(f"final run {final_dir} is complete")
                return open_run(final_dir)
            self.log(f"final run {final_dir}: resuming ({status})")
            return train(None, resume=final_dir, log=lambda line: self.log(prefix + line))
        data = load_recipe(result.best_recipe).model_dump(mode="json")
        overrides = {"name": "final", "output.dir": self.study_dir, "train.early_stopping_patience": None,
                     "export.formats": self.recipe.export.formats, **self._track_store()}
        if "validation_fraction" in data.get("data", {}):
            overrides["data.validation_fraction"] = 0.0
        self.log(f"final run: the best recipe (trial {result.best['number']}) on train+validation")
        run = train(load_recipe(data, overrides=overrides), log=lambda line: self.log(prefix + line))
        kept = run.metrics.get("data", {}).get("validation", {})
        if isinstance(kept, dict) and kept.get("examples"):
            self.log(f"note: data.source {data['data'].get('source')} has its own validation split "
                     f"({kept['examples']} examples), which the final run kept for monitoring")
        return run


# ---------------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class StudyResult:
    """A study's outcome: `trials` (one dict per trial), `best` (the best complete trial), the files written."""

    study_dir: str
    metric: str
    direction: str
    space: list
    trials: list
    recipe: object = None
    best: dict = None
    final_run: object = None
    plots: list = dataclasses.field(default_factory=list)

    @property
    def best_recipe(self):
        """Path of best_recipe.yaml (None before any trial completed)."""
        path = os.path.join(self.study_dir, "best_recipe.yaml")
        return path if self.best is not None and os.path.isfile(path) else None

    def write(self):
        """trials.csv, study.json and best_recipe.yaml."""
        keys = list(self.space)
        with open(os.path.join(self.study_dir, "trials.csv.tmp"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["trial", "state", self.metric, "epochs", "seconds", *keys, "run_dir", "note"])
            for row in self.trials:
                writer.writerow([row["number"], row["state"], "" if row["value"] is None else row["value"],
                                 row["epochs"], row["seconds"], *(row["params"].get(k, "") for k in keys),
                                 row["run_dir"], row["note"]])
        os.replace(os.path.join(self.study_dir, "trials.csv.tmp"), os.path.join(self.study_dir, "trials.csv"))
        if self.best is not None:
            self._write_best_recipe()
        counts = {}
        for row in self.trials:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        summary = {"metric": self.metric, "direction": self.direction, "space": keys, "counts": counts,
                   "best": self.best, "trial_seconds": round(sum(r["seconds"] or 0 for r in self.trials), 1),
                   "best_recipe": self.best_recipe}
        if self.final_run is not None:
            summary["final"] = {"run_dir": self.final_run.path, "test": self.final_run.metrics.get("test", {})}
        write_json(os.path.join(self.study_dir, "study.json"), summary)

    def _write_best_recipe(self):
        from toolkit.config import load_recipe, recipe_to_yaml

        path = os.path.join(self.best["run_dir"], "recipe.yaml")
        if not os.path.isfile(path):
            return
        best = load_recipe(path)
        name = self.recipe.name if self.recipe is not None else best.name
        data = best.model_dump(mode="json", exclude={"tune"})
        data["name"] = f"{name}-tuned"
        data["output"]["dir"] = self.recipe.output.dir if self.recipe is not None else data["output"]["dir"]
        if self.recipe is not None:
            data["export"]["formats"] = list(self.recipe.export.formats)
            data["track"]["tags"] = dict(self.recipe.track.tags)
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.best["params"].items())
        header = (f"# Tuned by toolkit tune ({self.study_dir}): trial {self.best['number']}, {self.metric} "
                  f"{self.best['value']:.5g}\n# searched: {shown}\n")
        write_text(os.path.join(self.study_dir, "best_recipe.yaml"),
                   header + recipe_to_yaml(load_recipe(data)))

    def table(self):
        """The trial table as text."""
        keys = list(self.space)
        header = ["trial", "state", self.metric, "epochs", "time"] + [k.split(".")[-1] for k in keys] + ["note"]
        rows = []
        for row in self.trials:
            value = "" if row["value"] is None else f"{row['value']:.5g}"
            star = " *" if self.best is not None and row["number"] == self.best["number"] else ""
            rows.append([str(row["number"]) + star, row["state"].lower(), value, str(row["epochs"]),
                         f"{row['seconds'] or 0:.0f} s", *(_show(row["params"].get(k, "")) for k in keys),
                         _short(row["note"])])
        widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *rows]]
        return "\n".join(lines)

    def summary(self):
        """What `toolkit tune` prints at the end: the trial table, the best trial and the files."""
        counts = {}
        for row in self.trials:
            counts[row["state"].lower()] = counts.get(row["state"].lower(), 0) + 1
        lines = ["", f"Study {self.study_dir}",
                 f"  {len(self.trials)} trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                 f"  objective {self.metric} ({self.direction})", "", self.table(), ""]
        if self.best is None:
            lines.append("No trial completed yet.")
        else:
            shown = ", ".join(f"{k}={_show(v)}" for k, v in self.best["params"].items())
            lines += [f"Best: trial {self.best['number']}, {self.metric} {self.best['value']:.5g}: {shown}",
                      f"  run          {self.best['run_dir']}",
                      f"  recipe       {self.best_recipe}  (toolkit train {self.best_recipe})"]
        if self.final_run is not None:
            from toolkit.tasks import predictor_class

            metrics = self.final_run.metrics
            shown = predictor_class(metrics["task"]).summary_metrics(metrics.get("test", {}))
            lines.append(f"  final run    {self.final_run.path}: test " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
        lines.append(f"  trials       {os.path.join(self.study_dir, 'trials.csv')}")
        for path in self.plots:
            lines.append(f"  plot         {path}")
        return "\n".join(lines)

    def __repr__(self):
        best = "none yet" if self.best is None else f"trial {self.best['number']} {self.best['value']:.5g}"
        return f"StudyResult({self.study_dir!r}, trials={len(self.trials)}, best={best})"


# ---------------------------------------------------------------------------------------------------- helpers


def _trial_callback(trial, column, sign, deadline, history=None):
    """A Keras callback that reports the per-epoch `column` (times `sign`, so that the study's direction holds) to
    the Optuna trial, prunes, and stops the trial at the time budget; `.epochs` counts the epochs seen."""
    import keras
    import optuna

    class TrialCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_train_begin(self, logs=None):
            if history and os.path.isfile(history) and not self.epochs:  # a resumed trial: its earlier epochs
                from toolkit.plots import read_history

                values = read_history(history).get(column, [])
                for epoch, value in enumerate(values):
                    if math.isfinite(value):
                        trial.report(sign * float(value), epoch + 1)
                self.epochs = len(values)

        def on_epoch_end(self, epoch, logs=None):
            self.epochs = epoch + 1
            value = (logs or {}).get(column)
            if value is not None and math.isfinite(float(value)):
                trial.report(sign * float(value), epoch + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{column} {float(value):.4g} at epoch {epoch + 1}")
            if deadline is not None and time.time() >= deadline:
                raise optuna.TrialPruned(f"time budget reached at epoch {epoch + 1}")

    return TrialCallback()


def _suggest(trial, key, spec):
    kind = spec.kind
    if kind == "choice":
        choices = spec.choice
        if all(isinstance(c, (int, float, str, bool)) or c is None for c in choices):
            return trial.suggest_categorical(key, choices)
        import json  # lists or mappings: Optuna stores plain values, so the choice is by its JSON text

        picked = trial.suggest_categorical(key, [json.dumps(c) for c in choices])
        return json.loads(picked)
    low, high = getattr(spec, kind)
    if kind == "uniform":
        return trial.suggest_float(key, low, high, step=spec.step)
    if kind == "log_uniform":
        return trial.suggest_float(key, low, high, log=True)
    if kind == "int":
        return trial.suggest_int(key, int(low), int(high), step=int(spec.step or 1))
    return trial.suggest_int(key, int(low), int(high), log=True)


def _trial_rows(study):
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "WAITING":  # queued, not run yet
            continue
        attrs = t.user_attrs
        note = attrs.get("error") or attrs.get("stopped") or ("killed, queued again" if attrs.get("killed") else "")
        if attrs.get("resumes_trial") is not None:
            note = (note + "; " if note else "") + f"resumes trial {attrs['resumes_trial']}"
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "params": {k: _plain(v) for k, v in t.params.items()},
                     "epochs": attrs.get("epochs", len(t.intermediate_values)), "seconds": attrs.get("seconds"),
                     "run_dir": attrs.get("run_dir", ""), "note": note,
                     "intermediate": {int(k): float(v) for k, v in t.intermediate_values.items()}})
    return rows


def _plain(value):
    import json

    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _existing_trials(storage):
    try:
        study_id = storage.get_study_id_from_name("study")
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _comparable(recipe):
    """The recipe flattened, without what may change between calls of one study."""
    data = recipe.model_dump(mode="json", exclude={"name", "output", "track"})
    tune = data.get("tune") or {}
    for key in ("trials", "time_budget_minutes", "final", "export_trials"):
        tune.pop(key, None)
    from toolkit.run_table import flatten

    return flatten(data)


def _lookup(metrics, key):
    node = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            shown = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise ToolkitError(f"tune.objective.metric: the evaluation has no {key!r} (it has: {shown})")
        node = node[part]
    return float(node) if isinstance(node, (int, float)) else None


def _best_index(values, direction):
    finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return (max if direction == "maximize" else min)(finite)[1]


def _short(text, width=60):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _show(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _state(name):
    from optuna.trial import TrialState

    return getattr(TrialState, name)


def _alive(pid):
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_memory():
    """Between trials: drops the finished trial's graphs and tensors."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
