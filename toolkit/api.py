"""The Python API. The CLI is a thin layer over these functions.

Example:

>>> import toolkit  # doctest: +SKIP
>>> recipe = toolkit.load_recipe("recipes/image_classification/fashion_mnist.yaml",
...                              overrides={"train.epochs": 2})  # doctest: +SKIP
>>> run = toolkit.train(recipe)  # doctest: +SKIP
>>> run.metrics()["test"]["accuracy"]  # doctest: +SKIP
"""

import datetime
import os
import platform
import time

from toolkit.config import load_recipe
from toolkit.errors import RunError, ToolkitError, TrainingInterrupted
from toolkit.runs import Run, save_model


def _as_recipe(recipe, overrides=None):
    if isinstance(recipe, (str, os.PathLike, dict)):
        return load_recipe(recipe, overrides=overrides)
    if overrides:
        return load_recipe(recipe.model_dump(mode="json"), overrides=overrides, name=recipe.name)
    return recipe


def float32_model(task, model):
    """Returns `model` with a float32 dtype policy (a rebuilt copy if it is mixed)."""
    import keras

    if model.dtype_policy.name == "float32":
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    finally:
        keras.config.set_dtype_policy(previous)
    return copy


def train(recipe, overrides=None, resume=None, log=print):
    """Trains, evaluates, exports and verifies a recipe; returns the `Run`.

    Args:
        recipe: a recipe object, a recipe file path or a dict.
        overrides: dict of dotted keys (or list of `a.b=value`).
        resume: str or None. A run directory to resume instead.
        log: callable(str). Progress lines.
    """
    from toolkit.tasks import make_task
    from toolkit.training.trainer import Trainer

    if resume:
        run = Run.open(resume)
        if run.state().get("status") == "complete":
            raise RunError(f"{resume} is already complete; start a new run with toolkit train RECIPE")
        recipe = run.load_recipe()
        log(f"resuming {run.path}")
    else:
        recipe = _as_recipe(recipe, overrides)
        run = Run.create(recipe)
        recipe = run.load_recipe()
        log(f"run directory: {run.path}")
    task = make_task(recipe)
    task.attach_run(run)
    started = time.time()
    try:
        model = Trainer(task, run, log).fit()
    except KeyboardInterrupt:
        run.update_state(status="interrupted")
        raise TrainingInterrupted(run.path)
    except ToolkitError:
        if not resume and "epoch" not in run.state():  # nothing trained yet: leave no empty run behind
            import shutil

            shutil.rmtree(run.path, ignore_errors=True)
        raise
    model = float32_model(task, model)
    metadata = task.model_metadata()
    save_model(model, run.model_path, metadata)
    log("evaluating on the test split ...")
    test_metrics = task.evaluate(model, "test")
    state = run.state()
    metrics = {
        "task": recipe.task,
        "test": test_metrics,
        "data": task.data_report(),
        "parameters": int(model.count_params()),
        "epochs_completed": int(state.get("epoch", recipe.train.epochs)),
        "train_seconds": round(float(state.get("train_seconds", time.time() - started)), 1),
        "device": f"{os.cpu_count()} CPU cores ({platform.machine()})",
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resumed": state.get("resumed", []),
    }
    from toolkit.atomic import write_json

    write_json(run.file("metrics.json"), metrics)
    _plots(task, run, model, test_metrics, state)
    if recipe.export.formats:
        from toolkit.export import export_run

        task.metadata = metadata
        try:
            export_run(run, model, task, recipe.export.formats, log)
        finally:  # the card also records a failed export's absence
            _card(run, recipe, metadata, metrics)
    else:
        _card(run, recipe, metadata, metrics)
    run.update_state(status="complete")
    import shutil

    shutil.rmtree(run.file("_backup"), ignore_errors=True)
    return run


def _plots(task, run, model, test_metrics, state):
    from toolkit.plots import plot_history

    boundaries = [p["start"] for p in state.get("phases", [])[1:]]
    plot_history(run.file("history.csv"), run.file("training_curves.png"), boundaries)
    task.plot(model, test_metrics, run.path)


def _card(run, recipe, metadata, metrics):
    import json

    from toolkit.model_card import write_model_card

    verify_path = os.path.join(run.export_dir, "verify.json")
    report = None
    if os.path.isfile(verify_path):
        with open(verify_path, encoding="utf-8") as f:
            report = json.load(f)
    write_model_card(run, recipe, metadata, metrics, report)


def open_trained(run_dir):
    """Returns (run, recipe, task, model) of a finished run."""
    from toolkit.backbones.build import load_keras_file, read_toolkit_metadata
    from toolkit.tasks import make_task

    run = Run.open(run_dir, need_model=True)
    recipe = run.load_recipe()
    task = make_task(recipe)
    task.metadata = read_toolkit_metadata(run.model_path)
    model = load_keras_file(run.model_path)
    return run, recipe, task, model


def evaluate(run_dir, split="test"):
    """Evaluates a run's model on a split of its recipe's data; returns the metrics.

    The result is also written to `RUN_DIR/evaluation_<split>.json`.
    """
    from toolkit.atomic import write_json

    run, recipe, task, model = open_trained(run_dir)
    metrics = task.evaluate(model, split)
    write_json(run.file(f"evaluation_{split}.json"), metrics)
    return metrics


def export(run_dir, formats=None, log=print):
    """Exports a run's model (default: the recipe's formats) and verifies it."""
    from toolkit.export import export_run
    from toolkit.export.formats import parse_formats

    run, recipe, task, model = open_trained(run_dir)
    formats = parse_formats(formats or recipe.export.formats)
    report = export_run(run, model, task, formats, log)
    _card(run, recipe, task.metadata, run.metrics())
    return report


def verify(export_dir):
    """Re-verifies an export directory against its run's model; returns the report."""
    from toolkit.export import verify_export

    return verify_export(export_dir)


def load(path):
    """Loads a run directory, `.keras`, SavedModel directory or `.onnx` file."""
    from toolkit.predict import load as load_model

    return load_model(path)


def predict(model_path, inputs, top_k=None, output_dir=None):
    """Loads a model and predicts for `inputs`; returns one dict per input."""
    return load(model_path).predict(inputs, top_k=top_k, output_dir=output_dir)
