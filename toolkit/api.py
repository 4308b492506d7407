"""The Python API. The CLI is a thin layer over these functions.

Example:

>>> import toolkit  # doctest: +SKIP
>>> recipe = toolkit.load_recipe("recipes/image_classification/fashion_mnist.yaml",
...                              overrides={"train.epochs": 2})  # doctest: +SKIP
>>> run = toolkit.train(recipe)  # doctest: +SKIP
>>> run.metrics["test"]["accuracy"]  # doctest: +SKIP
>>> run.plot_history()  # doctest: +SKIP
>>> toolkit.load(run.artifact("onnx")).predict(["shoe.png"])  # doctest: +SKIP
"""

import datetime
import os
import platform
import time

from toolkit.config import load_recipe
from toolkit.errors import DataError, RunError, ToolkitError, TrainingInterrupted
from toolkit.model_io import save_model
from toolkit.quiet import import_tensorflow
from toolkit.runs import RunDirectory


class Run(RunDirectory):
    """A run directory, with what a user does with it: load, predict, evaluate, export, verify."""

    def load(self, format_name="keras"):
        """Loads the trained model ("keras") or one of its exports ("saved_model", "onnx") for prediction."""
        return load(self.path if format_name == "keras" else self.artifact(format_name))

    def predict(self, inputs, format_name="keras", **options):
        """Predicts with the trained model or an export (see `toolkit.inference`); one result dict per input."""
        return self.load(format_name).predict(inputs, **options)

    def evaluate(self, split="test", data=None):
        """Evaluates the trained model on a split (as `toolkit evaluate`); returns the metrics."""
        return evaluate(self.path, split, data=data)

    def export(self, formats=None, log=print, data=None):
        """Exports (default: the recipe's formats) and verifies; returns the parity report."""
        return export(self.path, formats, log=log, data=data)

    def verify(self):
        """Re-checks the exports against the trained model on held-out samples; returns the parity report."""
        return verify(self.export_dir)


def open_run(path):
    """Opens an existing run directory (one `toolkit train` wrote) to look at or use its model.

    Example:

    >>> import toolkit  # doctest: +SKIP
    >>> run = toolkit.open_run("saved_models/fashion_mnist")  # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"], run.plots()  # doctest: +SKIP
    >>> run.load("onnx").predict(["shoe.png"])  # doctest: +SKIP

    Raises:
        RunError: `path` is not a run directory.
    """
    return Run.open(os.fspath(path))


def _as_recipe(recipe, overrides=None):
    if isinstance(recipe, (str, os.PathLike, dict)):
        return load_recipe(recipe, overrides=overrides)
    if overrides:
        return load_recipe(recipe.model_dump(mode="json"), overrides=overrides, name=recipe.name)
    return recipe.model_copy(deep=True)  # the caller's object stays as it was (Run.create names the copy)


def float32_model(task, model):
    """Returns `model` with float32 dtype policies throughout (a rebuilt copy with the same weights if it was
    trained mixed): exports (ONNX, TFLite, SavedModel) are float32."""
    import keras

    from toolkit.backbones.build import rebuilt_copy

    config = keras.saving.serialize_keras_object(model)
    converted = _float32_policies(config)
    if converted == config:
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return rebuilt_copy(model, converted)
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_policies(value):
    """A serialized Keras config with every mixed_* dtype policy (layers, nested models) made float32; clone_model
    alone keeps each layer's own policy."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and str(value.get("config", {}).get("name")).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {key: _float32_policies(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_policies(item) for item in value]
    if isinstance(value, str) and value.startswith("mixed_"):
        return "float32"
    return value


def _with_data(recipe, data):
    """The recipe with `data` as its source: a path sets data.source/data.path, datasets set `datasets`."""
    from toolkit.data.user_data import SOURCE
    from toolkit.tasks import task_class

    if data is None:
        return recipe
    overrides = {"data.source": SOURCE}
    if isinstance(data, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(data))
        if not os.path.exists(path):
            raise DataError(f"data={os.fspath(data)!r}: no such file or directory")
        overrides = {"data.source": task_class(recipe.task).path_source, "data.path": path}
    return load_recipe(recipe.model_dump(mode="json"), overrides=overrides, name=recipe.name)


def _make_task(recipe, data):
    """The recipe's task, given Python `data` (a path is already in the recipe, see `_with_data`)."""
    from toolkit.tasks import make_task

    task = make_task(recipe)
    if data is not None and not isinstance(data, (str, os.PathLike)):
        task.use_data(data)
    return task


def train(recipe, overrides=None, resume=None, log=print, data=None, callbacks=None):
    """Trains, evaluates, exports and verifies a recipe; returns the `Run`.

    Args:
        recipe: a recipe object, a recipe file path or a dict.
        overrides: dict of dotted keys (or list of `a.b=value`).
        resume: str or None. A run directory to resume instead.
        log: callable(str). Progress lines.
        data: optional. Replaces the recipe's data source: a folder or file
            path (read by the task's folder/tsv/csv source), or Python
            datasets (a `tf.data.Dataset`, list or `(inputs, targets)`
            arrays, or a dict of them by split; see `toolkit.data.user_data`).
            A run trained on Python datasets needs them again to resume.
        callbacks: optional list of Keras callbacks added to each training phase (after the toolkit's own).

    The recipe's `track:` section sends the run to MLflow, W&B or TensorBoard
    (see `toolkit.tracking`); a tracker that fails warns once and never stops training.

    Example:

    >>> import toolkit, tensorflow as tf  # doctest: +SKIP
    >>> train_ds = tf.keras.utils.image_dataset_from_directory("photos/train")  # doctest: +SKIP
    >>> run = toolkit.train("recipes/image_classification/fashion_mnist.yaml",
    ...                     data={"train": train_ds, "test": test_ds})  # doctest: +SKIP
    """
    import_tensorflow()
    from toolkit.training.distribute import make_strategy
    from toolkit.training.trainer import Trainer

    if resume:
        run = Run.open(resume)
        if run.state().get("status") == "complete":
            raise RunError(f"{resume} is already complete; start a new run with toolkit train RECIPE")
        run.recover()
        recipe = run.load_recipe()
        make_strategy(recipe.train)  # before anything starts TensorFlow (multi-worker, TPU, logical CPUs)
        _make_task(recipe, None).check_references()
        log(f"resuming {run.path}")
    else:
        recipe = _with_data(_as_recipe(recipe, overrides), data)
        make_strategy(recipe.train)  # before anything starts TensorFlow (multi-worker, TPU, logical CPUs)
        # Files, runs, presets and voices the recipe names: checked before any data is read or run created.
        _make_task(recipe, None).check_references()
        run = Run.create(recipe)
        recipe = run.load_recipe()
        log(f"run directory: {run.path}")
    started = time.time()
    from toolkit.tracking import start_tracking

    tracker = start_tracking(recipe, run, log, resumed=bool(resume))
    try:
        task = _make_task(recipe, data)
        task.attach_run(run)  # a task may read its data here (e.g. to learn tokenizers): errors are handled below
        model = Trainer(task, run, log, callbacks=[*tracker.callbacks(), *(callbacks or [])]).fit()
    except KeyboardInterrupt:
        run.update_state(status="interrupted")
        tracker.finish(status="KILLED")
        raise TrainingInterrupted(run.path)
    except ToolkitError:
        tracker.finish(status="FAILED")
        if not resume and "epoch" not in run.state():  # nothing trained yet: leave no empty run behind
            import shutil

            shutil.rmtree(run.path, ignore_errors=True)
        raise
    except BaseException:  # e.g. a pruned tune trial: the tracked run ends with it
        tracker.finish(status="KILLED")
        raise
    model = float32_model(task, model)
    task.finish_training(model)
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
        from toolkit.exporters import export_run

        task.metadata = metadata
        try:
            export_run(run, model, task, recipe.export.formats, log)
        except BaseException:
            tracker.finish(metrics=metrics, status="FAILED")  # what was measured is kept in the tracker too
            raise
        finally:  # the card also records a failed export's absence
            _card(run, recipe, task, metadata, metrics)
    else:
        _card(run, recipe, task, metadata, metrics)
    run.update_state(status="complete")
    tracker.finish(metrics=metrics)
    import shutil

    shutil.rmtree(run.file("_backup"), ignore_errors=True)
    return run


def _plots(task, run, model, test_metrics, state):
    from toolkit.plots import plot_history

    boundaries = [p["start"] for p in state.get("phases", [])[1:]]
    plot_history(run.file("history.csv"), run.file("training_curves.png"), boundaries)
    task.plot(model, test_metrics, run.path)


def _card(run, recipe, task, metadata, metrics):
    import json

    from toolkit.model_card import write_model_card

    verify_path = os.path.join(run.export_dir, "verify.json")
    report = None
    if os.path.isfile(verify_path):
        with open(verify_path, encoding="utf-8") as f:
            report = json.load(f)
    write_model_card(run, recipe, metadata, metrics, report, task.predictor)


def open_trained(run_dir, data=None):
    """Returns (run, recipe, task, model) of a finished run (`data`: its Python datasets, as in `train`)."""
    import_tensorflow()
    from toolkit.model_io import load_keras_file, read_toolkit_metadata

    run = Run.open(run_dir, need_model=True)
    recipe = run.load_recipe()
    task = _make_task(recipe, data)
    task.metadata = read_toolkit_metadata(run.model_path)
    model = load_keras_file(run.model_path)
    return run, recipe, task, model


def evaluate(run_dir, split="test", data=None):
    """Evaluates a run's model on a split of its recipe's data; returns the metrics.

    The result is also written to `RUN_DIR/evaluation_<split>.json`. A run
    trained on Python datasets is evaluated on the `data` given here.
    """
    from toolkit.atomic import write_json

    run, recipe, task, model = open_trained(os.fspath(run_dir), data)
    metrics = task.evaluate(model, split)
    write_json(run.file(f"evaluation_{split}.json"), metrics)
    return metrics


def export(run_dir, formats=None, log=print, data=None):
    """Exports a run's model (default: the recipe's formats) and verifies it on held-out test samples.

    A run trained on Python datasets takes them again as `data` (the samples come from its test split).
    """
    from toolkit.exporters import export_run
    from toolkit.exporters.formats import parse_formats

    run, recipe, task, model = open_trained(os.fspath(run_dir), data)
    run.recover()
    formats = parse_formats(formats or recipe.export.formats)
    report = export_run(run, model, task, formats, log)
    _card(run, recipe, task, task.metadata, run.metrics)
    return report


def verify(export_dir):
    """Re-verifies an export directory against its run's model.keras; returns the report.

    Raises:
        ParityError: an artifact does not match the model.
    """
    import json

    import_tensorflow()
    from toolkit.atomic import write_json
    from toolkit.errors import ParityError
    from toolkit.exporters.verify import failures, verify_directory
    from toolkit.model_io import load_keras_file, read_toolkit_metadata
    from toolkit.tasks import predictor_class

    export_dir = os.path.abspath(os.fspath(export_dir))
    if not os.path.isdir(export_dir):
        raise RunError(f"{export_dir}: no such export directory")
    if not os.path.isdir(os.path.join(export_dir, "samples")):
        raise RunError(f"{export_dir} is not a toolkit export directory (no samples/); give RUN_DIR/export")
    run = Run.open(os.path.dirname(export_dir), need_model=True)
    recipe = run.load_recipe()
    metadata = read_toolkit_metadata(run.model_path)
    model = load_keras_file(run.model_path)
    report = verify_directory(export_dir, model, predictor_class(metadata["task"]), metadata,
                              recipe.export.parity_tolerance, recipe.export.min_agreement,
                              recipe.export.quantized_min_agreement)
    previous = os.path.join(export_dir, "verify.json")
    if os.path.isfile(previous):  # the test-split quality needs the data; keep what the export measured
        with open(previous, encoding="utf-8") as f:
            quality = json.load(f).get("quality")
        if quality:
            report["quality"] = quality
    write_json(os.path.join(export_dir, "verify.json"), report)
    if not report["passed"]:
        raise ParityError("verification failed: " + "; ".join(failures(report) or ["no artifacts found"]))
    return report


def load(path):
    """Loads a run directory, `.keras`, SavedModel directory or `.onnx` file."""
    from toolkit.inference import load as load_model

    return load_model(path)


def predict(model_path, inputs, top_k=None, output_dir=None):
    """Loads a model and predicts for `inputs`; returns one dict per input."""
    return load(model_path).predict(inputs, top_k=top_k, output_dir=output_dir)


def explain(model, inputs, method=None, class_=None, output_dir=None, steps=32, patch=None, min_score=None):
    """Saliency maps of a Keras image model (a run directory, a `.keras` file or a model `load` returned) on
    image paths or uint8 arrays (method None: Grad-CAM), or token attributions of a text model on texts
    (integrated gradients); see `toolkit.inference.explain` and docs/explain.md.

    Example:

    >>> import toolkit  # doctest: +SKIP
    >>> result = toolkit.explain("saved_models/fashion_mnist", ["shoe.png"])[0]  # doctest: +SKIP
    >>> entry = result["explanations"][0]  # doctest: +SKIP
    >>> entry["class"], entry["score"], entry["map"].shape  # doctest: +SKIP
    ('Sneaker', 0.97, (28, 28))

    Returns:
        One dict per input: `input`, `method`, `explanations`: per class (or box) explained, `class`,
        `class_index`, `score` and `map` (float32 0..1 in the input's pixels); with `output_dir` also the
        `overlay` (PNG) and `npy` paths written there.
    """
    from toolkit.inference import explain as explain_model

    if not isinstance(model, (str, os.PathLike)):
        return explain_model(model, inputs, method=method, class_=class_, output_dir=output_dir, steps=steps,
                             patch=patch, min_score=min_score)
    import_tensorflow()
    return explain_model(os.fspath(model), inputs, method=method, class_=class_, output_dir=output_dir,
                         steps=steps, patch=patch, min_score=min_score)


def load_data(recipe, overrides=None, data=None):
    """Reads a recipe's data (or Python `data`, as in `train`) as the task sees it, to look at before training.

    Returns the task's data object: `splits` by name ("train", "validation",
    "test") plus what the task keeps (class names, vocabularies, reports).

    Example:

    >>> import toolkit  # doctest: +SKIP
    >>> data = toolkit.load_data("recipes/image_classification/fashion_mnist.yaml")  # doctest: +SKIP
    >>> data.splits["train"].images.shape, data.class_names[:2]  # doctest: +SKIP
    ((54000, 28, 28, 1), ['T-shirt/top', 'Trouser'])
    """
    import_tensorflow()
    recipe = _with_data(_as_recipe(recipe, overrides), data)
    return _make_task(recipe, data).data


def recipe_class(task_name):
    """The recipe schema (pydantic class) of a task, for building recipes in code.

    Example:

    >>> import toolkit
    >>> Recipe = toolkit.recipe_class("image_classification")
    >>> recipe = Recipe(task="image_classification", name="shoes",
    ...                 data={"source": "fashion_mnist", "image_size": 32},
    ...                 model={"backbone": "resnet_mini", "weights": "none"},
    ...                 train={"epochs": 1, "fine_tune": {"frozen_epochs": 0}})
    >>> recipe.train.epochs = 2  # assignments are validated too
    >>> recipe.model.backbone, recipe.data.image_size, recipe.train.epochs
    ('resnet_mini', (32, 32), 2)

    `toolkit.load_recipe(dict)` builds the same object and reports a bad
    field as one line (`RecipeError`) instead of pydantic's message.
    """
    from toolkit.tasks import task_class

    return task_class(task_name).config_class
