"""Scale: mixed precision training with float32 exports."""

import json
import os

import numpy as np
import pytest

from conftest import make_image_folder, run_cli, write_recipe

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_float32(tmp_path, precision):
    data = make_image_folder(tmp_path / "images", per_class=10)
    recipe = write_recipe(tmp_path / "mixed.yaml", data, tmp_path / "runs",
                          train={"epochs": 1, "precision": precision})
    result = run_cli("train", recipe, env={"TOOLKIT_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "mixed"
    with open(run_dir / "export" / "verify.json") as f:
        report = json.load(f)
    assert report["passed"] and report["formats"]["onnx"]["endpoints"]["onnx"]["agreement"] == 1.0
    from toolkit.model_io import load_keras_file

    model = load_keras_file(str(run_dir / "model.keras"))  # what is deployed is float32 throughout
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert f"precision {precision}" in (run_dir / "MODEL_CARD.md").read_text()


def test_mixed_policy_keeps_class_scores_float32_and_exports_a_float32_copy(tmp_path):
    import keras
    import numpy as np

    from toolkit.api import float32_model
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task
    from toolkit.training.trainer import configure

    data = make_image_folder(tmp_path / "images", per_class=4)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs",
                                      train={"precision": "mixed_bfloat16"}))
    try:
        configure(recipe.train)
        model = make_task(recipe).build_model()
    finally:
        keras.config.set_dtype_policy("float32")
    backbone = [layer for layer in model.layers if isinstance(layer, keras.Model)][0]
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in backbone.layers)
    copy = float32_model(None, model)
    inner = [layer for layer in copy.layers if isinstance(layer, keras.Model)][0]
    assert {layer.dtype_policy.name for layer in inner.layers} == {"float32"}
    images = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(copy(images).numpy(), model(images).numpy(), atol=0.05)  # bfloat16 rounding



@pytest.mark.parametrize("task_name", ["image_classification", "segmentation", "translation", "speech_recognition",
                                       "recommendation"])
def test_every_task_takes_a_training_step_under_mixed_bfloat16(tmp_path, task_name):
    """Each task's tiny model (tests/reliability/tiny_tasks.py), compiled as the trainer compiles it, takes one
    training step on its own data under the mixed_bfloat16 policy, and its loss is finite (a layer that mixes
    float32 constants into bfloat16 features fails here: SpecAugment did)."""
    import sys

    import keras

    from toolkit.runs import RunDirectory
    from toolkit.tasks import make_task
    from toolkit.training.trainer import configure

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
    try:
        import tiny_tasks
    finally:
        sys.path.pop(0)
    if tiny_tasks.available(task_name):
        pytest.skip(tiny_tasks.available(task_name))
    recipe = tiny_tasks.recipe(task_name, tmp_path, 1)
    recipe.train.precision = "mixed_bfloat16"
    if task_name == "speech_recognition":
        recipe.spec_augment = type(recipe.spec_augment)()  # the tiny recipe turns it off; the default masks
    try:
        configure(recipe.train)
        task = make_task(recipe)
        task.attach_run(RunDirectory.create(recipe))  # as toolkit train: tokenizers are learned here
        train = task.build_inputs("train", training=True)
        assert train.options().autotune.enabled is False  # it ends in toolkit.data.prefetch.prefetched
        inputs, targets = next(iter(train))[:2]
        model = task.build_model()
        model.compile(optimizer="adam", loss=task.build_losses(), metrics=task.build_metrics())
        logs = model.train_on_batch(inputs, targets, return_dict=True)
    finally:
        keras.config.set_dtype_policy("float32")
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in model._flatten_layers())
    assert np.isfinite(logs["loss"]), logs

def _history(run_dir):
    import csv

    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=12)
    results = {}
    for name, train, env in (
        ("one", {"strategy": "one_device"}, {}),
        ("mirrored", {"strategy": "mirrored", "devices": ["/cpu:0", "/cpu:1"]}, {"TOOLKIT_LOGICAL_CPUS": "2"}),
    ):
        recipe = write_recipe(tmp_path / f"{name}.yaml", data, tmp_path / "runs", train={"epochs": 2, **train})
        result = run_cli("train", recipe, env={"TOOLKIT_HOME": str(tmp_path / "home"), **env})
        assert result.returncode == 0, result.stderr[-3000:]
        results[name] = _history(tmp_path / "runs" / name)
        if name == "mirrored":
            assert "MirroredStrategy with 2 replicas" in result.stdout
    one, mirrored = results["one"], results["mirrored"]
    # The first epoch's loss is the same to float rounding (global-batch gradients, synchronised BatchNorm);
    # later epochs drift by reduction order only.
    assert float(mirrored[0]["loss"]) == pytest.approx(float(one[0]["loss"]), rel=1e-3), (one, mirrored)
    for a, b in zip(one, mirrored):
        assert float(b["val_loss"]) == pytest.approx(float(a["val_loss"]), rel=0.05), (one, mirrored)
        assert b["val_accuracy"] == a["val_accuracy"]


def test_strategy_errors_are_one_line(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=3)
    for train, env, message in (
        ({"strategy": "mirrored", "devices": ["/gpu:7"]}, {}, "train.devices: \\['/gpu:7'\\] not found"),
        ({"strategy": "multi_worker"}, {"TF_CONFIG": ""}, "set TF_CONFIG on every machine"),
    ):
        recipe = write_recipe(tmp_path / "bad.yaml", data, tmp_path / "runs", train=train)
        result = run_cli("train", recipe, env={"TOOLKIT_HOME": str(tmp_path / "home"), **env})
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        import re

        assert re.search(message, result.stderr), result.stderr


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_local_workers_train_in_step(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    data = make_image_folder(tmp_path / "images", per_class=8)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        recipe = write_recipe(tmp_path / f"worker{index}.yaml", data, tmp_path / f"runs{index}",
                              train={"epochs": 1, "strategy": "multi_worker"})
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env = dict(os.environ, TF_CONFIG=tf_config, TOOLKIT_HOME=str(tmp_path / f"home{index}"),
                   TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
        processes.append(subprocess.Popen([sys.executable, "-m", "toolkit", "train", recipe], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert "MultiWorkerMirroredStrategy with 2 replicas" in out
    histories = [_history(tmp_path / f"runs{index}" / f"worker{index}") for index in range(2)]
    assert float(histories[0][0]["loss"]) == pytest.approx(float(histories[1][0]["loss"]), rel=1e-5)
    from toolkit.model_io import load_keras_file

    weights = [load_keras_file(str(tmp_path / f"runs{i}" / f"worker{i}" / "model.keras")).get_weights()
               for i in range(2)]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_to_tfrecord_writes_shards_that_train_like_the_folder(tmp_path):
    import glob

    import yaml

    data = make_image_folder(tmp_path / "images", per_class=10)
    recipe = write_recipe(tmp_path / "folder.yaml", data, tmp_path / "runs", train={"epochs": 1})
    env = {"TOOLKIT_HOME": str(tmp_path / "home")}
    out = tmp_path / "records"
    result = run_cli("data", "to-tfrecord", recipe, str(out), "--shards", "3", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "tfrecord.json") as f:
        meta = json.load(f)
    assert meta["task"] == "image_classification" and meta["class_names"] == ["blue", "green", "red"]
    assert sum(meta["splits"].values()) == 30 and set(meta["splits"]) == {"train", "validation", "test"}
    assert len(glob.glob(str(out / "train-*-of-00003.tfrecord"))) == 3

    with open(recipe) as f:
        spec = yaml.safe_load(f)
    spec["data"] = {**spec["data"], "source": "tfrecord", "path": str(out)}
    spec["name"] = "from_records"
    with open(tmp_path / "records.yaml", "w") as f:
        yaml.safe_dump(spec, f)
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task

    folder_task, record_task = make_task(load_recipe(recipe)), make_task(load_recipe(str(tmp_path / "records.yaml")))
    assert record_task.class_names == folder_task.class_names
    first = [list(task.split_examples("test", 3)) for task in (folder_task, record_task)]
    for (a, label_a), (b, label_b) in zip(*first):  # the same examples, pixel for pixel, in the same order
        np.testing.assert_array_equal(a, b)
        assert int(label_a) == int(label_b)
    result = run_cli("train", str(tmp_path / "records.yaml"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout


def test_to_tfrecord_of_segmentation_keeps_masks_and_refuses_other_tasks(tmp_path):
    from test_segmentation import make_mask_folder, seg_recipe

    from toolkit.config import load_recipe
    from toolkit.data.tfrecord import write_tfrecords
    from toolkit.errors import DataError
    from toolkit.tasks import make_task

    folder = make_mask_folder(tmp_path / "data", count=6)
    recipe = seg_recipe(tmp_path, folder)
    meta = write_tfrecords(recipe, str(tmp_path / "records"), shards=2, log=lambda line: None)
    assert meta["task"] == "segmentation" and sum(meta["splits"].values()) == 6
    spec = recipe.model_dump(mode="json")
    spec["data"].update(source="tfrecord", path=str(tmp_path / "records"))
    records = make_task(load_recipe(spec))
    (image, mask), = list(records.split_examples("test", 1))
    (expected_image, expected_mask), = list(make_task(recipe).split_examples("test", 1))
    np.testing.assert_array_equal(image, expected_image)
    np.testing.assert_array_equal(mask, expected_mask)
    with pytest.raises(DataError, match="recommendation recipes are not written to TFRecord"):
        write_tfrecords(load_recipe("recipes/recommendation/movielens_retrieval.yaml"), str(tmp_path / "x"))
    with pytest.raises(DataError, match="holds segmentation TFRecords, not image_classification"):
        from toolkit.data.tfrecord import read_meta

        read_meta(str(tmp_path / "records"), "image_classification")


def test_to_tfrecord_round_trips_translation_and_speech(tmp_path):
    from test_speech_data import make_speech_folder

    from toolkit.config import load_recipe
    from toolkit.data.tfrecord import write_tfrecords
    from toolkit.tasks import make_task

    pairs = [f"the house number {i}\tla casa numero {i}" for i in range(30)]
    (tmp_path / "pairs.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    corpus = make_speech_folder(tmp_path / "speech", count=12, rate=22050)
    recipes = {
        "translation": {"task": "translation", "data": {"source": "tsv", "path": str(tmp_path / "pairs.tsv")}},
        "speech_recognition": {"task": "speech_recognition", "data": {"source": "folder", "path": corpus,
                                                                     "validation_fraction": 0.2,
                                                                     "test_fraction": 0.2}},
    }
    for name, spec in recipes.items():
        recipe = load_recipe(spec)
        out = tmp_path / f"{name}_records"
        meta = write_tfrecords(recipe, str(out), shards=2, log=lambda line: None)
        original = make_task(recipe).data
        assert meta["splits"] == {split: len(items) for split, items in original.splits.items()}
        spec = recipe.model_dump(mode="json")
        spec["data"].update(source="tfrecord", path=str(out))
        again = make_task(load_recipe(spec)).data
        assert again.provenance.startswith("TFRecords of ")
        for split, items in original.splits.items():
            if name == "translation":
                assert sorted(again.splits[split]) == sorted(items)
            else:
                key = {u.id: u for u in again.splits[split]}
                for utterance in items:
                    copy = key[utterance.id]
                    assert copy.text == utterance.text and copy.speaker == utterance.speaker
                    np.testing.assert_array_equal(copy.audio, utterance.audio)
