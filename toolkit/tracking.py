"""Experiment tracking: a run's parameters, per-epoch metrics, test metrics, export parity and artifacts sent to
MLflow, Weights & Biases or TensorBoard (the recipe's `track:` section, `--track` on the CLI).

Every backend records the same things:

    parameters   the resolved recipe flattened to dotted keys (`train.optimizer.learning_rate`); lists as JSON text
    per epoch    every number in the Keras epoch logs (loss, val_*, learning_rate, epoch_seconds) at step = the
                 epoch counted from 1
    at the end   the test metrics flattened with dots under `test.` (lists such as the confusion matrix are left
                 out), `train_seconds`, `parameters`, `epochs_completed` and the export parity of
                 export/verify.json (`parity.passed`, `parity.onnx.max_abs_diff`, `parity.onnx.agreement`, ...)
    tags         task, run directory, data provenance (data.source, data.path, per split example counts),
                 versions (toolkit, tensorflow, keras, python) and `track.tags`
    artifacts    MODEL_CARD.md, recipe.yaml, metrics.json, history.csv, export/verify.json and the plots (not the
                 model), when `track.artifacts` is true

A tracker never stops training: each backend call is guarded, and a backend's first failure logs one line
(`tracking: mlflow failed (...); training goes on without it`) and turns that backend off. The tracker libraries
are imported only when their backend is used. `log_study_hparams` writes a tuning study into TensorBoard's HPARAMS
tab. See docs/tracking.md.
"""

import json
import math
import os
import time

MISSING = ("tracking: {name} is not installed (pip install 'keras-task-toolkit[track]' or pip install {package}); "
           "training goes on without it")
FAILED = "tracking: {name} failed ({error}); training goes on without it"
ARTIFACTS = ("MODEL_CARD.md", "recipe.yaml", "metrics.json", "history.csv", "export/verify.json")
MLFLOW_PARAM_LIMIT = 6000  # MLflow's limit on a parameter's value (characters)
MLFLOW_TAG_LIMIT = 5000  # kept under MLflow's limit on a tag's value (8000 in MLflow 3)
STATUSES = ("FINISHED", "FAILED", "KILLED")


class Tracker:
    """What `toolkit.api.train` calls; the base does nothing (track.backend: none)."""

    def callbacks(self):
        """Keras callbacks that log each epoch."""
        return []

    def finish(self, metrics=None, status="FINISHED"):
        """Ends the tracked run: final metrics, export parity and artifacts when `metrics` is given."""


def start_tracking(recipe, run, log, resumed=False):
    """Starts tracking `run` as `recipe.track` says; returns a `Tracker` (never raises).

    Args:
        recipe: the run's resolved recipe (with its `track:` section).
        run: the `RunDirectory`.
        log: callable(str) for the one-line warnings.
        resumed: bool. The run is resumed: MLflow and W&B continue the run whose id is kept in state.json.
    """
    track = getattr(recipe, "track", None)
    try:
        names = track.backends() if track is not None else []
    except Exception:  # a recipe object without a usable track section
        names = []
    if not names:
        return Tracker()
    try:
        context = _Context(recipe, run, log, resumed)
    except Exception as error:
        log(FAILED.format(name=", ".join(names), error=_describe(error)))
        return Tracker()
    session = _Session(context, [BACKENDS[name](context) for name in names if name in BACKENDS])
    session.start()
    return session


# ------------------------------------------------------------------ the session: guards around every backend call


class _Session(Tracker):
    """The backends of one run; each call to a backend is guarded (see the module docstring)."""

    def __init__(self, context, backends):
        self.context = context
        self.backends = backends
        self.finished = False

    def _call(self, backend, method, *args):
        if backend.disabled:
            return
        try:
            getattr(backend, method)(*args)
        except Exception as error:
            backend.disabled = True
            missing = isinstance(error, ImportError) and (getattr(error, "name", None) or "").split(".")[0] in (
                backend.module, backend.name)
            if missing:
                self.context.log(MISSING.format(name=backend.name, package=backend.package))
            else:
                self.context.log(FAILED.format(name=backend.name, error=_describe(error)))

    def start(self):
        for backend in self.backends:
            self._call(backend, "start")

    def callbacks(self):
        if not any(not backend.disabled for backend in self.backends):
            return []
        import keras

        session = self

        class TrackingCallback(keras.callbacks.Callback):
            """Sends each epoch's logs to the run's trackers."""

            def on_epoch_end(self, epoch, logs=None):
                session.epoch(epoch + 1, logs or {})

        return [TrackingCallback()]

    def epoch(self, step, logs):
        values = {}
        for key, value in logs.items():
            number = _number(value)
            if number is not None:
                values[str(key)] = number
        if values:
            for backend in self.backends:
                self._call(backend, "epoch", step, values)

    def finish(self, metrics=None, status="FINISHED"):
        if self.finished:
            return
        self.finished = True
        status = status if status in STATUSES else "FAILED"
        final = None
        if metrics is not None:
            try:
                final = _final(self.context, metrics)
            except Exception as error:  # the status is still sent
                self.context.log(f"tracking: the run's final figures could not be read ({_describe(error)}); "
                                 f"only its status is sent")
        for backend in self.backends:
            self._call(backend, "finish", final, status)


class _Context:
    """What every backend needs: the recipe flattened, the tags, names, and the run's tracking ids."""

    def __init__(self, recipe, run, log, resumed):
        self.recipe, self.run, self.log, self.resumed = recipe, run, log, resumed
        self.track = recipe.track
        self.task = str(getattr(recipe, "task", "") or "run")
        self.experiment = self.track.experiment or self.task
        self.params = flatten_params(_recipe_dict(recipe, run))
        self.tags = _start_tags(recipe, run)

    def stored_id(self, name):
        """The id a resumed run's backend kept in state.json, or None."""
        if not self.resumed:
            return None
        value = (self.run.state().get("tracking") or {}).get(name)
        return value if isinstance(value, str) and value else None

    def store_ids(self, **ids):
        """Keeps tracking ids in the run's state.json (`tracking: {mlflow: RUN_ID, wandb: RUN_ID, ...}`)."""
        tracking = dict(self.run.state().get("tracking") or {})
        tracking.update(ids)
        self.run.update_state(tracking=tracking)


class _Final:
    """What `finish(metrics)` sends: figures (name -> float), data tags, artifacts, the model card."""

    def __init__(self, figures, step, data, artifacts, card):
        self.figures, self.step, self.data, self.artifacts, self.card = figures, step, data, artifacts, card


def _final(context, metrics):
    run = context.run
    figures = flat_scalars(metrics.get("test") or {}, "test.")
    for key in ("train_seconds", "parameters", "epochs_completed"):
        number = _number(metrics.get(key))
        if number is not None:
            figures[key] = number
    figures.update(parity_figures(os.path.join(run.export_dir, "verify.json")))
    data = data_tags(metrics.get("data") or {})
    artifacts = []
    if context.track.artifacts:
        artifacts = [name for name in ARTIFACTS if os.path.isfile(run.file(*name.split("/")))]
        artifacts += sorted(name for name in os.listdir(run.path)
                            if name.endswith(".png") and os.path.isfile(run.file(name)))
    card = None
    if os.path.isfile(run.file("MODEL_CARD.md")):
        with open(run.file("MODEL_CARD.md"), encoding="utf-8") as f:
            card = f.read()
    step = int(_number(metrics.get("epochs_completed")) or 0)
    return _Final(figures, step, data, artifacts, card)


class _Backend:
    """One tracker. `start`, `epoch`, `finish` may raise: the session turns the backend off then."""

    name = module = package = ""

    def __init__(self, context):
        self.context = context
        self.disabled = False

    def start(self):
        pass

    def epoch(self, step, values):
        pass

    def finish(self, final, status):
        pass


# ------------------------------------------------------------------ MLflow


class _MLflow(_Backend):
    """MLflow through `MlflowClient` (not the fluent API, whose active run is process-wide)."""

    name = module = "mlflow"
    package = "mlflow-skinny"

    def uri(self):
        """track.uri, else MLFLOW_TRACKING_URI, else sqlite:///<output.dir>/mlflow.db."""
        uri = self.context.track.uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        return "sqlite:///" + os.path.abspath(os.path.join(self.context.recipe.output.dir, "mlflow.db"))

    @staticmethod
    def artifact_location(uri):
        """Where a new experiment keeps its artifacts: beside a SQLite file (`mlartifacts/`), else the store's
        default (a server's artifact root)."""
        if uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
            database = uri[len("sqlite:///"):].split("?")[0]
            return os.path.join(os.path.dirname(os.path.abspath(database)), "mlartifacts")
        return None

    def start(self):
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        _quiet_loggers("mlflow", "alembic")  # after the import: MLflow sets its loggers up when imported

        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        uri = self.uri()
        if uri.startswith(("http://", "https://")):  # an unreachable server fails in seconds, not minutes
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.client = client = MlflowClient(tracking_uri=uri)
        context = self.context
        self.run_id, logged = None, {}
        stored = context.stored_id("mlflow")
        if stored:
            try:
                existing = client.get_run(stored)
            except Exception:  # not in this store (another URI): a new MLflow run
                existing = None
            if existing is not None:
                self.run_id, logged = stored, dict(existing.data.params)
                client.update_run(stored, status="RUNNING")
        if self.run_id is None:
            experiment = self._experiment(uri)
            created = client.create_run(experiment, run_name=context.run.name,
                                        tags={_key(k): _clip(v, MLFLOW_TAG_LIMIT) for k, v in context.tags.items()})
            self.run_id = created.info.run_id
            context.store_ids(mlflow=self.run_id, mlflow_uri=uri)
        params = {}
        for key, value in context.params.items():
            key = _key(key)
            if key not in logged and key not in params:
                params[key] = _clip(_text(value), MLFLOW_PARAM_LIMIT)
        items = [self.Param(key, value) for key, value in params.items()]
        for index in range(0, len(items), 100):  # MLflow takes at most 100 parameters a batch
            client.log_batch(self.run_id, params=items[index:index + 100])
        if stored and self.run_id == stored:
            tags = [self.RunTag(_key(k), _clip(v, MLFLOW_TAG_LIMIT)) for k, v in context.tags.items()]
            client.log_batch(self.run_id, tags=tags)

    def _experiment(self, uri):
        client, name = self.client, self.context.experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, artifact_location=self.artifact_location(uri))
            except Exception:  # created meanwhile by another process (parallel trials)
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _metrics(self, values, step):
        stamp = int(time.time() * 1000)
        items = [self.Metric(_key(key), value, stamp, step) for key, value in values.items()]
        for index in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[index:index + 1000])

    def epoch(self, step, values):
        self._metrics(values, step)

    def finish(self, final, status):
        try:
            if final is not None:
                self._metrics(final.figures, final.step)
                tags = {**final.data}
                if final.card:
                    tags["mlflow.note.content"] = final.card  # the run's description in the MLflow UI
                self.client.log_batch(self.run_id, tags=[self.RunTag(_key(k), _clip(str(v), MLFLOW_TAG_LIMIT))
                                                         for k, v in tags.items()])
                for name in final.artifacts:
                    folder = os.path.dirname(name)
                    self.client.log_artifact(self.run_id, self.context.run.file(*name.split("/")),
                                             artifact_path=folder or None)
        finally:
            self.client.set_terminated(self.run_id, status)


# ------------------------------------------------------------------ Weights & Biases


class _Wandb(_Backend):
    """W&B: offline by default (files under <run>/wandb, `wandb sync` uploads them), never a login prompt."""

    name = module = package = "wandb"

    def start(self):
        import wandb

        context, track = self.context, self.context.track
        settings = wandb.Settings(silent=True, quiet=True, show_info=False, show_warnings=False, console="off",
                                  x_disable_stats=True, disable_git=True, disable_code=True, save_code=False,
                                  init_timeout=60)
        if track.mode == "online" and wandb.run is None and not _wandb_key(wandb):  # never a login prompt
            raise RuntimeError("no W&B API key: set WANDB_API_KEY or run wandb login, or use track.mode: offline")
        stored = context.stored_id("wandb")
        tags = [context.task] + [f"{key}:{value}"[:64] for key, value in track.tags.items()]
        config = {**context.params, **{f"tag.{key}": value for key, value in context.tags.items()}}
        self.wandb_run = wandb.init(
            mode=track.mode, dir=context.run.path, project=track.experiment or context.task, entity=track.entity,
            name=context.run.name, notes=getattr(context.recipe, "description", None) or None, config=config,
            tags=tags, id=stored, resume="allow", reinit="create_new", job_type="train", settings=settings)
        if self.wandb_run.id != stored:
            context.store_ids(wandb=self.wandb_run.id)
        # Epochs are the x axis: a resumed run that redoes an epoch logs it again instead of being dropped.
        self.wandb_run.define_metric("epoch")
        self.wandb_run.define_metric("*", step_metric="epoch")

    def epoch(self, step, values):
        self.wandb_run.log({**values, "epoch": step})

    def finish(self, final, status):
        import shutil

        try:
            if final is not None:
                self.wandb_run.summary.update({**final.figures, **final.data})
                files = self.wandb_run.dir
                for name in final.artifacts:
                    target = os.path.join(files, *name.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    # A copy in the run's files/ (not wandb's symlink): what is synced is what the run had.
                    shutil.copy2(self.context.run.file(*name.split("/")), target)
                    self.wandb_run.save(target, base_path=files, policy="now", glob=False)
            self.wandb_run.summary["status"] = status
        finally:
            self.wandb_run.finish(exit_code=0 if status == "FINISHED" else 1)


def _wandb_key(wandb):
    """Whether W&B has an API key (environment, settings, .netrc), asked without a prompt."""
    try:
        return wandb.login(prompt=False, verify=False)
    except TypeError:  # a wandb without login(prompt=)
        return bool(os.environ.get("WANDB_API_KEY") or getattr(getattr(wandb, "api", None), "api_key", None))


# ------------------------------------------------------------------ TensorBoard


class _TensorBoard(_Backend):
    """TensorBoard: the run's logs/ (Keras writes logs/train and logs/validation) becomes an HParams session.

    The session is written at logs/ itself so the HPARAMS tab also shows the last train/ and validation/
    scalars of each run (TensorBoard takes a session's metrics from its directory and the ones below it).
    """

    name = module = "tensorboard"
    package = "tensorboard"

    def start(self):
        from tensorboard.plugins.hparams import summary_v2

        context = self.context
        hparams = {key: value for key, value in context.params.items()
                   if isinstance(value, (bool, int, float, str)) and not _non_finite(value)}
        pb = summary_v2.hparams_pb(hparams, trial_id=context.run.path, start_time_secs=_started(context))
        with _EventWriter(context.run.file("logs")) as writer:
            writer.write(pb, step=0)

    def finish(self, final, status):
        context = self.context
        with _EventWriter(context.run.file("logs")) as writer:
            if final is not None:
                for name, value in final.figures.items():
                    writer.scalar(name.replace(".", "/", 1), value, final.step)
                lines = ["| tag | value |", "|---|---|"]
                lines += [f"| {key} | {value} |" for key, value in {**context.tags, **final.data}.items()]
                writer.text("tags", "\n".join(lines), final.step)
                if final.card:
                    writer.text("model_card", final.card, final.step)
            writer.write(_session_end(_TB_STATUS[status]), step=final.step if final is not None else 0)


_TB_STATUS = {"FINISHED": "STATUS_SUCCESS", "FAILED": "STATUS_FAILURE", "KILLED": "STATUS_UNKNOWN",
              "COMPLETE": "STATUS_SUCCESS", "FAIL": "STATUS_FAILURE", "PRUNED": "STATUS_UNKNOWN",
              "RUNNING": "STATUS_RUNNING"}

BACKENDS = {"mlflow": _MLflow, "wandb": _Wandb, "tensorboard": _TensorBoard}


def _started(context):
    """The run's creation time (its recipe.yaml), for the HParams session's start."""
    try:
        return os.path.getmtime(context.run.recipe_path)
    except OSError:
        return time.time()


# ------------------------------------------------------------------ TensorBoard files without TensorFlow


class _EventWriter:
    """Writes TensorBoard events synchronously into a new events file of `logdir` (pure Python: no TensorFlow
    summary writer, no thread)."""

    count = 0

    def __init__(self, logdir, suffix=".toolkit"):
        import socket

        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        os.makedirs(logdir, exist_ok=True)
        _EventWriter.count += 1
        self.path = os.path.join(logdir, f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                                         f"{os.getpid()}.{_EventWriter.count}{suffix}")
        self.event_pb2 = event_pb2
        self.file = open(self.path, "wb")
        self.records = RecordWriter(self.file)
        self.records.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def write(self, summary, step):
        event = self.event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
        self.records.write(event.SerializeToString())

    def scalar(self, tag, value, step):
        from tensorboard.compat.proto import summary_pb2

        self.write(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]), step)

    def text(self, tag, text, step):
        from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.text import metadata

        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                        string_val=[text.encode("utf-8")])
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor,
                                          metadata=metadata.create_summary_metadata(display_name=tag, description=""))
        self.write(summary_pb2.Summary(value=[value]), step)

    def close(self):
        self.records.flush()
        self.records.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _session_end(status):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(status), end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
        tensor=metadata.NULL_TENSOR)])


def log_study_hparams(logdir, space_keys, trials, objective_name):
    """Writes a tuning study for TensorBoard's HPARAMS tab (`tensorboard --logdir STUDY_DIR/tensorboard`).

    One HParams session per trial in `logdir/<trial number>` (its space values, a `state` column, the objective as
    a scalar, and the session status: COMPLETE success, FAIL failure, RUNNING running, PRUNED unknown), and the
    study's `hparams_config` (each key's domain from the values tried, the objective as the metric) in `logdir`.
    A trial's per-epoch objective (`intermediate`, if given) is the scalar `<objective>_per_epoch`; a trial
    without a value (pruned) shows its last per-epoch objective. Calling it again rewrites what an earlier call
    wrote (call it after each trial or once at the end).

    Args:
        logdir: str. The folder to write (created).
        space_keys: list of the dotted recipe keys searched.
        trials: list of {"number": int, "params": {key: value}, "value": float or None,
            "state": "COMPLETE" | "PRUNED" | "FAIL" | "RUNNING", optional "intermediate": {epoch: objective}}
            (other keys are ignored).
        objective_name: str. The objective's name (e.g. "val_accuracy"), the metric's tag.
    """
    from tensorboard.plugins.hparams import summary_v2

    _remove_events(logdir, ".study")
    keys = list(dict.fromkeys(space_keys))
    values = {key: [] for key in keys}
    rows = []
    for trial in trials:
        params = {}
        for key in keys:
            value = _hparam_value((trial.get("params") or {}).get(key))
            if value is not None:
                params[key] = value
                values[key].append(value)
        params["state"] = str(trial.get("state") or "COMPLETE")
        rows.append((trial, params))
    states = sorted({params["state"] for _, params in rows} | {"COMPLETE"})
    hparams = [summary_v2.HParam(key, _domain(values[key])) for key in keys]
    hparams.append(summary_v2.HParam("state", summary_v2.Discrete(states)))
    metric = summary_v2.Metric(objective_name, display_name=objective_name)
    with _EventWriter(logdir, ".study") as writer:
        writer.write(summary_v2.hparams_config_pb(hparams, [metric], time_created_secs=time.time()), step=0)
    for trial, params in rows:
        number = int(trial["number"])
        folder = os.path.join(logdir, str(number))
        _remove_events(folder, ".study")
        curve = sorted((int(step), _number(value)) for step, value in (trial.get("intermediate") or {}).items())
        curve = [(step, value) for step, value in curve if value is not None]
        last = curve[-1][0] if curve else 0
        with _EventWriter(folder, ".study") as writer:
            writer.write(summary_v2.hparams_pb(params, trial_id=str(number)), step=0)
            for step, value in curve:
                writer.scalar(f"{objective_name}_per_epoch", value, step)
            value = _number(trial.get("value"))
            if value is None and curve:  # a pruned trial: its last reported objective
                value = curve[-1][1]
            if value is not None:
                writer.scalar(objective_name, value, last)
            writer.write(_session_end(_TB_STATUS.get(params["state"], "STATUS_UNKNOWN")), step=last)


def _remove_events(folder, suffix):
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith("events.out.tfevents.") and name.endswith(suffix):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _hparam_value(value):
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, str):
        return value
    number = _number(value)
    if number is not None and not isinstance(value, (list, tuple, dict)):
        return int(value) if isinstance(value, int) else number
    return json.dumps(value, default=str)


def _domain(values):
    """The HParam domain of the values tried: an interval of numbers, a set of strings or booleans."""
    from tensorboard.plugins.hparams import summary_v2

    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return summary_v2.Discrete(sorted(set(values)))
    if all(isinstance(v, str) for v in values):
        return summary_v2.Discrete(sorted(set(values)))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if all(isinstance(v, int) for v in values):
            return summary_v2.IntInterval(min(values), max(values))
        return summary_v2.RealInterval(float(min(values)), float(max(values)))
    return None


# ------------------------------------------------------------------ what is logged


def flatten_params(data, prefix=""):
    """The recipe as {dotted key: value}: dicts flattened, lists (and empty dicts) as JSON text."""
    from toolkit.run_table import flatten

    return {name: json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else value
            for name, value in flatten(data, prefix).items()}


def flat_scalars(data, prefix=""):
    """The finite numbers of a nested dict as {prefix + dotted key: float}; lists and text are left out."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_scalars(value, name + "."))
        elif not isinstance(value, (list, tuple, str)):
            number = _number(value)
            if number is not None:
                flat[name] = number
    return flat


def parity_figures(path):
    """export/verify.json as figures: parity.passed, and for each format parity.<format>.passed, .max_abs_diff
    (the largest over its endpoints), .agreement (the smallest), .size_bytes, and each endpoint's figures
    (parity.<format>.<endpoint>.max_abs_diff ...) when it has several; the TFLite quality check as
    parity.quality.keras and parity.quality.<format>.value / .delta. {} without the file."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    figures = {}
    if "passed" in report:
        figures["parity.passed"] = float(bool(report["passed"]))
    for name, entry in (report.get("formats") or {}).items():
        if not isinstance(entry, dict):
            continue
        prefix = f"parity.{name}."
        for key in ("passed", "exact"):
            if key in entry:
                figures[prefix + key] = float(bool(entry[key]))
        size = _number(entry.get("size_bytes"))
        if size is not None:
            figures[prefix + "size_bytes"] = size
        endpoints = {key: value for key, value in (entry.get("endpoints") or {}).items() if isinstance(value, dict)}
        diffs = [d for d in (_number(e.get("max_abs_diff")) for e in endpoints.values()) if d is not None]
        agreements = [a for a in (_number(e.get("agreement")) for e in endpoints.values()) if a is not None]
        if diffs:
            figures[prefix + "max_abs_diff"] = max(diffs)
        if agreements:
            figures[prefix + "agreement"] = min(agreements)
        if len(endpoints) > 1:
            for endpoint, values in endpoints.items():
                figures.update(flat_scalars({k: v for k, v in values.items() if k != "passed"},
                                            f"{prefix}{endpoint}."))
    quality = report.get("quality")
    if isinstance(quality, dict):
        keras_value = _number(quality.get("keras"))
        if keras_value is not None:
            figures["parity.quality.keras"] = keras_value
        figures.update(flat_scalars(quality.get("formats") or {}, "parity.quality."))
    return figures


def data_tags(report):
    """The data report's counts as tags: data.<split>.<key> (examples, skipped, ...) and its top-level scalars."""
    tags = {}
    for key, value in report.items():
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, (bool, int, float, str)) and not isinstance(item, bool):
                    tags[f"data.{key}.{name}"] = item
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            tags[f"data.{key}"] = value
    return tags


def _start_tags(recipe, run):
    tags = {"task": str(getattr(recipe, "task", "")), "run_dir": run.path}
    data = getattr(recipe, "data", None)
    for field in ("source", "path", "tfds_name", "name"):
        value = getattr(data, field, None)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            tags[f"data.{field}"] = str(value)
    tags.update(_versions())
    tags.update({str(key): str(value) for key, value in recipe.track.tags.items()})
    return tags


def _versions():
    import platform
    import sys
    from importlib import metadata

    # The package is imported already (this module is inside it); read it from sys.modules, not by importing up.
    versions = {"version.toolkit": str(getattr(sys.modules.get("toolkit"), "__version__", "unknown")),
                "version.python": platform.python_version()}
    for package in ("tensorflow", "keras"):
        try:
            versions[f"version.{package}"] = metadata.version(package)
        except Exception:
            module = sys.modules.get(package)
            if module is not None:
                versions[f"version.{package}"] = str(getattr(module, "__version__", "unknown"))
    return versions


def _recipe_dict(recipe, run):
    if hasattr(recipe, "model_dump"):
        return recipe.model_dump(mode="json")
    return run.load_recipe().model_dump(mode="json")


# ------------------------------------------------------------------ small helpers


def _number(value):
    """A finite float from a number (Python, NumPy or a one-element tensor), else None."""
    if value is None or isinstance(value, (str, bytes, dict, list, tuple)):
        return None
    if isinstance(value, (bool, int, float)):
        number = float(value)
    else:
        try:
            import numpy as np

            array = np.asarray(value)
            if array.size != 1 or array.dtype.kind not in "biuf":
                return None
            number = float(array.reshape(()))
        except Exception:
            return None
    return number if math.isfinite(number) else None


def _non_finite(value):
    return isinstance(value, float) and not math.isfinite(value)


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _clip(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _key(name):
    """A name MLflow accepts (letters, digits, _ - . / and spaces; at most 250 characters)."""
    import re

    key = re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(name)).strip("/") or "_"
    key = key.replace("..", "._")
    return key[:250]


def _describe(error):
    """`Type: first line of the message`, short."""
    message = str(error).strip().split("\n")[0]
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _quiet_loggers(*names):
    import logging

    for name in names:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
