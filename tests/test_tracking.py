"""Experiment tracking (toolkit/tracking.py): MLflow runs read back through MLflow's own client, W&B offline run
files read back record by record, TensorBoard HParams sessions read back through TensorBoard's HParams plugin, a
resumed run continuing its MLflow and W&B runs, a broken or missing tracker warning once while training completes,
`toolkit train --track mlflow`, and a tuning study in the HPARAMS tab. The tests that train are marked slow
(one shared 2-epoch run tracked by all three backends, one run with an unreachable MLflow server, one CLI start)."""

import glob
import json
import os
import shutil
import struct

import pytest

from toolkit.tracking import log_study_hparams, parity_figures, start_tracking

from conftest import make_image_folder, run_cli, write_recipe

pytest.importorskip("mlflow")
pytest.importorskip("wandb")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An empty MLflow SQLite store, made once: a new store runs MLflow's ~50 schema migrations (seconds), a copy
    of this one opens at once."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    _client(f"sqlite:///{path}").search_experiments()
    return path


def _store(empty_store, folder):
    """A fresh MLflow store at FOLDER/mlflow.db (a copy of the empty one); returns its URI."""
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(empty_store, os.path.join(folder, "mlflow.db"))
    return f"sqlite:///{os.path.join(folder, 'mlflow.db')}"


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _only_run(client, experiment):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def _steps(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _wandb_records(path):
    """The records of a W&B `.wandb` file (LevelDB log format: 32 KiB blocks of crc32, length, type chunks)."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B", data[:7]
    records, position, pending = [], 7, b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            break
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or the last of first/middle/last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _hparams_tab(logdir):
    """What TensorBoard's HPARAMS tab shows for `tensorboard --logdir LOGDIR`: (experiment, session groups)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=logdir,
                                                            multiplexer=multiplexer))
    request_context = context.RequestContext()
    experiment = backend.experiment_from_metadata(
        request_context, "", True, backend.hparams_metadata(request_context, ""),
        backend.hparams_from_data_provider(request_context, "", limit=None))
    request = api_pb2.ListSessionGroupsRequest(
        experiment_name="", allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS,
                                              api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING],
        start_index=0, slice_size=100, include_metrics=True)
    groups = list_session_groups.Handler(request_context, backend, "", request).run().session_groups
    return experiment, groups


def _hparam(group, name):
    value = group.hparams[name]
    return getattr(value, value.WhichOneof("kind"))


# ------------------------------------------------------------------ one run tracked by all three backends


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, empty_store):
    """A tiny 2-epoch run with an ONNX export, tracked by mlflow, wandb and tensorboard at once (in-process)."""
    from toolkit.api import train

    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOOLKIT_HOME", str(root / "home"))
        patch.setenv("KERAS_HOME", str(root / "home" / "keras"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):  # W&B's own files, not in ~
            patch.setenv(name, str(root / "home" / "wandb"))
        data = make_image_folder(root / "images")
        recipe = write_recipe(root / "tiny.yaml", data, root / "runs", export={"formats": ["onnx"]},
                              track={"backend": ["mlflow", "wandb", "tensorboard"], "tags": {"owner": "tests"}})
        uri = _store(empty_store, root / "runs")  # where the default URI (sqlite:///<output.dir>/mlflow.db) points
        lines = []
        run = train(recipe, log=lines.append)
    return {"run": run, "lines": lines, "uri": uri, "root": root}


@pytest.mark.slow
def test_a_tracked_run_logs_no_warning_and_keeps_its_tracking_ids(tracked):
    run = tracked["run"]
    assert run.state()["status"] == "complete"
    assert not [line for line in tracked["lines"] if line.startswith("tracking:")], tracked["lines"]
    ids = run.state()["tracking"]
    assert ids["mlflow"] and ids["wandb"] and ids["mlflow_uri"] == tracked["uri"]


@pytest.mark.slow
def test_mlflow_run_reads_back_through_the_mlflow_client(tracked):
    run, client = tracked["run"], _client(tracked["uri"])
    found = _only_run(client, "image_classification")
    assert found.info.run_id == run.state()["tracking"]["mlflow"]
    assert found.info.run_name == "tiny" and found.info.status == "FINISHED"
    experiment = client.get_experiment(found.info.experiment_id)
    assert experiment.artifact_location.endswith(os.path.join("runs", "mlartifacts"))

    params = found.data.params
    assert params["task"] == "image_classification" and params["train.epochs"] == "2"
    assert params["data.image_size"] == "[32, 32]" and params["train.optimizer.learning_rate"] == "0.01"
    assert params["track.backend"] == '["mlflow", "wandb", "tensorboard"]'

    history = run.history()
    loss = _steps(client, found.info.run_id, "loss")
    assert [step for step, _ in loss] == [1, 2]
    assert [round(v, 5) for _, v in loss] == [round(v, 5) for v in history["loss"]]
    for key in ("val_loss", "val_accuracy", "accuracy", "epoch_seconds"):
        assert [step for step, _ in _steps(client, found.info.run_id, key)] == [1, 2], key

    metrics, figures = run.metrics, found.data.metrics
    assert figures["test.accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert figures["test.per_class.red.f1"] == pytest.approx(metrics["test"]["per_class"]["red"]["f1"])
    assert not [key for key in figures if key.startswith("test.confusion_matrix")]
    assert figures["train_seconds"] == pytest.approx(metrics["train_seconds"])
    assert figures["parameters"] == metrics["parameters"]
    with open(run.file("export", "verify.json"), encoding="utf-8") as f:
        verify = json.load(f)
    assert figures["parity.passed"] == float(verify["passed"]) == 1.0
    assert figures["parity.onnx.max_abs_diff"] == pytest.approx(verify["formats"]["onnx"]["endpoints"]["onnx"]
                                                                ["max_abs_diff"])
    assert figures["parity.onnx.agreement"] == 1.0

    tags = found.data.tags
    assert tags["task"] == "image_classification" and tags["run_dir"] == run.path
    assert tags["data.source"] == "folder" and tags["data.path"].endswith("images")
    assert tags["data.train.examples"] == str(metrics["data"]["train"]["examples"])
    assert tags["data.test.examples"] == str(metrics["data"]["test"]["examples"])
    assert tags["owner"] == "tests"
    assert {"version.toolkit", "version.tensorflow", "version.keras", "version.python"} <= set(tags)
    assert tags["mlflow.note.content"].startswith(run.model_card()[:40])

    artifacts = {item.path for item in client.list_artifacts(found.info.run_id)}
    assert {"MODEL_CARD.md", "recipe.yaml", "metrics.json", "history.csv", "training_curves.png",
            "confusion_matrix.png", "export"} <= artifacts
    assert "model.keras" not in artifacts
    assert [item.path for item in client.list_artifacts(found.info.run_id, "export")] == ["export/verify.json"]


@pytest.mark.slow
def test_wandb_offline_run_reads_back_from_its_wandb_file(tracked):
    run = tracked["run"]
    found = glob.glob(run.file("wandb", "offline-run-*", "run-*.wandb"))
    assert len(found) == 1 and os.path.getsize(found[0]) > 0, found
    assert run.state()["tracking"]["wandb"] in found[0]
    records = _wandb_records(found[0])
    first = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert first.display_name == "tiny" and first.project == "image_classification"
    assert "image_classification" in first.tags and "owner:tests" in first.tags
    config = {item.key: json.loads(item.value_json) for item in first.config.update}
    assert config["train.epochs"] == 2 and config["tag.owner"] == "tests"

    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({(item.key or ".".join(item.nested_key)): json.loads(item.value_json)
                         for item in record.history.item})
    epochs = [row for row in rows if "loss" in row]
    assert [row["epoch"] for row in epochs] == [1, 2]
    assert [round(row["loss"], 5) for row in epochs] == [round(v, 5) for v in run.history()["loss"]]

    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    assert summary["test.accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert summary["parity.passed"] == 1.0 and summary["status"] == "FINISHED"

    saved = {f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files}
    assert {"MODEL_CARD.md", "recipe.yaml", "metrics.json", "history.csv", "export/verify.json",
            "training_curves.png"} <= saved
    files = os.path.dirname(found[0])
    assert os.path.isfile(os.path.join(files, "files", "export", "verify.json"))
    assert not os.path.islink(os.path.join(files, "files", "MODEL_CARD.md"))  # a copy, not wandb's symlink
    exits = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits == [0]


@pytest.mark.slow
def test_tensorboard_hparams_tab_shows_the_run(tracked):
    from tensorboard.plugins.hparams import api_pb2

    run = tracked["run"]
    experiment, groups = _hparams_tab(os.path.dirname(run.path))
    names = {info.name for info in experiment.hparam_infos}
    assert {"train.epochs", "train.optimizer.learning_rate", "model.backbone", "data.image_size"} <= names
    metrics = {(info.name.group, info.name.tag) for info in experiment.metric_infos}
    assert {("", "test/accuracy"), ("", "parity/onnx.max_abs_diff"), ("validation", "epoch_loss"),
            ("train", "epoch_loss")} <= metrics
    assert len(groups) == 1
    group = groups[0]
    assert _hparam(group, "train.epochs") == 2 and _hparam(group, "model.backbone") == "resnet_tiny"
    assert group.sessions[0].status == api_pb2.STATUS_SUCCESS
    values = {(m.name.group, m.name.tag): m.value for m in group.metric_values}
    assert values[("", "test/accuracy")] == pytest.approx(run.metrics["test"]["accuracy"])


def test_parity_figures_of_a_format_with_several_endpoints(tmp_path):
    path = tmp_path / "verify.json"
    path.write_text(json.dumps({"passed": False, "formats": {
        "saved_model": {"passed": False, "exact": True, "size_bytes": 10, "endpoints": {
            "serving_default": {"max_abs_diff": 1e-7, "agreement": 1.0, "decisions": 6, "passed": True},
            "serve_image": {"max_abs_diff": 0.5, "agreement": 0.5, "decisions": 6, "passed": False}}},
        "tflite_int8": {"passed": True, "exact": False, "endpoints": {
            "serving_default": {"max_abs_diff": None, "agreement": 0.95, "decisions": 20, "passed": True}}}},
        "quality": {"metric": "accuracy", "keras": 0.9, "formats": {"tflite_int8": {"value": 0.88, "delta": -0.02}}}}))
    figures = parity_figures(str(path))
    assert figures["parity.passed"] == 0.0 and figures["parity.saved_model.passed"] == 0.0
    assert figures["parity.saved_model.max_abs_diff"] == 0.5 and figures["parity.saved_model.agreement"] == 0.5
    assert figures["parity.saved_model.serve_image.max_abs_diff"] == 0.5
    assert "parity.tflite_int8.max_abs_diff" not in figures and figures["parity.tflite_int8.agreement"] == 0.95
    assert figures["parity.quality.keras"] == 0.9 and figures["parity.quality.tflite_int8.delta"] == -0.02
    assert parity_figures(str(tmp_path / "missing.json")) == {}


# ------------------------------------------------------------------ resume, failures, a missing package


def _tiny_run(tmp_path, **track):
    """A created (not trained) run of the tiny recipe with a track: section; returns (run, recipe)."""
    from toolkit.config import load_recipe
    from toolkit.runs import RunDirectory

    path = write_recipe(tmp_path / "tiny.yaml", tmp_path / "images", tmp_path / "runs", track=track)
    run = RunDirectory.create(load_recipe(path))
    return run, run.load_recipe()


def test_a_resumed_run_continues_the_same_mlflow_and_wandb_runs(tmp_path, empty_store, monkeypatch):
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    uri = _store(empty_store, tmp_path / "store")
    run, recipe = _tiny_run(tmp_path, backend=["mlflow", "wandb"], uri=uri, experiment="resume")
    lines = []
    tracker = start_tracking(recipe, run, lines.append)
    (callback,) = tracker.callbacks()
    callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.5, "epoch_seconds": 0.1})
    tracker.finish(status="KILLED")  # interrupted
    first = dict(run.state()["tracking"])
    client = _client(uri)
    assert client.get_run(first["mlflow"]).info.status == "KILLED"

    tracker = start_tracking(run.load_recipe(), run, lines.append, resumed=True)
    assert client.get_run(first["mlflow"]).info.status == "RUNNING"
    (callback,) = tracker.callbacks()
    callback.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.7, "epoch_seconds": 0.1})
    tracker.finish(metrics={"test": {"accuracy": 0.75, "class_names": ["a"]}, "train_seconds": 2.0,
                            "epochs_completed": 2, "data": {"train": {"examples": 21}}})
    assert not lines, lines
    assert run.state()["tracking"]["mlflow"] == first["mlflow"] and run.state()["tracking"]["wandb"] == first["wandb"]
    found = _only_run(client, "resume")
    assert found.info.run_id == first["mlflow"] and found.info.status == "FINISHED"
    assert _steps(client, found.info.run_id, "loss") == [(1, 1.0), (2, 0.5)]
    assert found.data.metrics["test.accuracy"] == 0.75 and found.data.tags["data.train.examples"] == "21"
    offline = glob.glob(run.file("wandb", "offline-run-*", f"run-{first['wandb']}.wandb"))
    assert len(offline) == 2  # W&B offline: one directory per session, the same run id (wandb sync joins them)

    # A new (not resumed) run of the same recipe is a new MLflow run.
    other, recipe = _tiny_run(tmp_path, backend="mlflow", uri=uri, experiment="resume")
    start_tracking(recipe, other, lines.append).finish(status="FAILED")
    assert other.state()["tracking"]["mlflow"] != first["mlflow"]
    assert client.get_run(other.state()["tracking"]["mlflow"]).info.status == "FAILED"


def test_a_failing_backend_warns_once_and_the_others_go_on(tmp_path, monkeypatch, empty_store):
    from toolkit import tracking

    calls = []

    def broken(self, step, values):
        calls.append(step)
        raise ConnectionError("the tracking server went away")

    monkeypatch.setattr(tracking._MLflow, "epoch", broken)
    uri = _store(empty_store, tmp_path / "store")
    run, recipe = _tiny_run(tmp_path, backend=["mlflow", "tensorboard"], uri=uri)
    lines = []
    tracker = start_tracking(recipe, run, lines.append)
    (callback,) = tracker.callbacks()
    for epoch in range(3):
        callback.on_epoch_end(epoch, {"loss": 1.0})
    tracker.finish(metrics={"test": {"accuracy": 0.5}})
    assert calls == [1]  # turned off after its first failure
    assert lines == ["tracking: mlflow failed (ConnectionError: the tracking server went away); "
                     "training goes on without it"]
    assert glob.glob(run.file("logs", "events.out.tfevents.*"))  # tensorboard went on


def test_a_missing_package_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails as if it were not installed
    run, recipe = _tiny_run(tmp_path, backend="wandb")
    lines = []
    tracker = start_tracking(recipe, run, lines.append)
    assert tracker.callbacks() == []
    tracker.finish(metrics={"test": {}})
    assert lines == ["tracking: wandb is not installed (pip install 'keras-task-toolkit[track]' or pip install "
                     "wandb); training goes on without it"]


@pytest.mark.slow
def test_an_unreachable_mlflow_server_warns_once_and_training_completes(tmp_path, monkeypatch):
    from toolkit.api import train

    data = make_image_folder(tmp_path / "images", per_class=8)
    recipe = write_recipe(tmp_path / "tiny.yaml", data, tmp_path / "runs", train={"epochs": 1},
                          export={"formats": []},
                          track={"backend": ["mlflow", "tensorboard"], "uri": "http://127.0.0.1:9"})
    lines = []
    run = train(recipe, log=lines.append)
    assert run.state()["status"] == "complete" and os.path.isfile(run.file("metrics.json"))
    warnings = [line for line in lines if line.startswith("tracking:")]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("tracking: mlflow failed (") and warnings[0].endswith(
        "); training goes on without it")
    assert "mlflow" not in run.state().get("tracking", {})
    experiment, groups = _hparams_tab(os.path.dirname(run.path))
    assert len(groups) == 1  # the tensorboard backend still wrote its session


@pytest.mark.slow
def test_train_track_mlflow_on_the_cli(tmp_path, monkeypatch, empty_store):
    """`toolkit train RECIPE --track mlflow` on data that fails to load (no class folders): the failure is an
    MLflow run with status FAILED, and the output holds the toolkit's error only (cheaper than a full run)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    os.makedirs(tmp_path / "empty")
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path / "empty", tmp_path / "runs", train={"epochs": 1},
                          export={"formats": []})
    uri = _store(empty_store, tmp_path / "runs")
    result = run_cli("train", recipe, "--track", "mlflow")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "found 0 class folder(s)" in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("[toolkit] run directory:"), output  # no MLflow chatter
    found = _only_run(_client(uri), "image_classification")
    assert found.info.status == "FAILED" and found.info.run_name == "tiny"
    assert found.data.params["track.backend"] == "mlflow" and found.data.tags["data.source"] == "folder"


# ------------------------------------------------------------------ a tuning study in the HPARAMS tab


def test_log_study_hparams_shows_each_trial(tmp_path):
    from tensorboard.plugins.hparams import api_pb2

    logdir = str(tmp_path / "tensorboard")
    trials = [
        {"number": 0, "params": {"train.optimizer.learning_rate": 0.01, "model.backbone": "resnet_tiny",
                                 "train.batch_size": 8}, "value": 0.8, "state": "COMPLETE"},
        {"number": 1, "params": {"train.optimizer.learning_rate": 0.001, "model.backbone": "mobilenet_v3_small",
                                 "train.batch_size": 16}, "value": None, "state": "PRUNED",
         "intermediate": {1: 0.4, 2: 0.6}},
    ]
    keys = ["train.optimizer.learning_rate", "model.backbone", "train.batch_size"]
    log_study_hparams(logdir, keys, trials, "val_accuracy")
    trials.append({"number": 2, "params": {"train.optimizer.learning_rate": 0.1, "model.backbone": "resnet_tiny",
                                           "train.batch_size": 8}, "value": None, "state": "FAIL"})
    log_study_hparams(logdir, keys, trials, "val_accuracy")  # again after another trial: rewritten, not doubled
    assert len(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))) == 1
    assert len(glob.glob(os.path.join(logdir, "0", "events.out.tfevents.*"))) == 1

    experiment, groups = _hparams_tab(logdir)
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(infos) == {*keys, "state"}
    rate = infos["train.optimizer.learning_rate"].domain_interval
    assert (rate.min_value, rate.max_value) == (0.001, 0.1)
    assert sorted(v.string_value for v in infos["model.backbone"].domain_discrete.values) == [
        "mobilenet_v3_small", "resnet_tiny"]
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [("", "val_accuracy")]
    by_name = {group.name: group for group in groups}
    assert set(by_name) == {"0", "1", "2"}
    assert _hparam(by_name["1"], "model.backbone") == "mobilenet_v3_small"
    assert _hparam(by_name["1"], "train.batch_size") == 16 and _hparam(by_name["1"], "state") == "PRUNED"
    assert [m.value for m in by_name["0"].metric_values] == [pytest.approx(0.8)]
    assert [(m.value, m.training_step) for m in by_name["1"].metric_values] == [(pytest.approx(0.6), 2)]
    assert not by_name["2"].metric_values
    statuses = {name: group.sessions[0].status for name, group in by_name.items()}
    assert statuses == {"0": api_pb2.STATUS_SUCCESS, "1": api_pb2.STATUS_UNKNOWN, "2": api_pb2.STATUS_FAILURE}
