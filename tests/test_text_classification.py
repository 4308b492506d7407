"""Text classification end to end on tiny planted data: a tiny Transformer learning a keyword rule, the baseline in
the same run, every export verified, the raw-string SavedModel in a fresh process equal to the Python API, ONNX
prediction without TensorFlow, padding that changes no answer, multi-label training, a tiny local BERT preset
fine-tuned through hub:, and recipe errors in one line. The readers are in test_text_classification_data.py."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import ToolkitError

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models

TOPICS = {"sports": ["goal", "match", "team", "coach"], "music": ["guitar", "song", "band", "drums"],
          "food": ["bread", "soup", "cheese", "pepper"]}
FILLER = [f"w{i}" for i in range(60)] + ["the", "a", "of", "and", "was", "it", "we", "they"]


def planted_texts(count, seed, multi_label=False, length=(4, 16)):
    """Texts of filler words with one keyword of their topic planted (multi-label: one or two topics)."""
    rng = np.random.RandomState(seed)
    names = sorted(TOPICS)
    rows = []
    for index in range(count):
        words = list(rng.choice(FILLER, rng.randint(*length)))
        topics = [names[index % 3]]
        if multi_label and rng.rand() < 0.4:
            topics.append(names[(index + 1 + rng.randint(2)) % 3])
        for topic in topics:
            words.insert(rng.randint(len(words) + 1), rng.choice(TOPICS[topic]))
        rows.append((" ".join(words), "|".join(sorted(set(topics)))))
    return rows


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def make_split_folder(root, multi_label=False, train=300, test=60, length=(4, 16)):
    os.makedirs(root, exist_ok=True)
    write_csv(os.path.join(root, "train.csv"), planted_texts(train, 0, multi_label, length))
    write_csv(os.path.join(root, "test.csv"), planted_texts(test, 1, multi_label, length))
    return str(root)


def recipe_dict(data_path, output, **changes):
    recipe = {
        "task": "text_classification",
        "data": {"source": "csv", "path": str(data_path), "validation_fraction": 0.15, **changes.pop("data", {})},
        "tokenizer": {"vocabulary_size": 120, "max_length": 32},
        "model": {"encoder": "transformer", "embed_dim": 16, "num_heads": 2, "intermediate_dim": 32, "layers": 1,
                  "dropout": 0.0, **changes.pop("model", {})},
        "train": {"epochs": 8, "batch_size": 16, "verbose": 0, "optimizer": {"learning_rate": 0.005},
                  **changes.pop("train", {})},
        "export": {"formats": ["saved_model", "onnx", "tflite", "tflite_dynamic"], "verify_samples": 16,
                   **changes.pop("export", {})},
        "output": {"dir": str(output)},
    }
    recipe.update(changes)
    return recipe


def write_yaml(path, recipe):
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return str(path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny Transformer trained on the planted keyword rule through the CLI, exported to every format."""
    root = tmp_path_factory.mktemp("text")
    data = make_split_folder(root / "planted")
    recipe = write_yaml(root / "tiny_text.yaml", recipe_dict(data, root / "runs"))
    env = {"TOOLKIT_HOME": str(root / "home"), "KERAS_HOME": str(root / "home" / "keras")}
    result = run_cli("train", recipe, check=True, env=env)
    return {"run_dir": str(root / "runs" / "tiny_text"), "stdout": result.stdout, "env": env, "root": root}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_tiny_transformer_learns_the_planted_rule_beside_the_baseline(tiny_run):
    metrics = read_json(os.path.join(tiny_run["run_dir"], "metrics.json"))
    test = metrics["test"]
    assert test["accuracy"] >= 0.9, test["accuracy"]
    assert test["class_names"] == ["food", "music", "sports"] and test["examples"] == 60
    assert set(test["per_class"]["food"]) == {"precision", "recall", "f1", "support"}
    baseline = test["baseline"]
    assert baseline["accuracy"] >= 0.9 and "logistic regression" in baseline["name"] and baseline["C"] in (1, 10, 30, 100, 300, 1000)
    card = open(os.path.join(tiny_run["run_dir"], "MODEL_CARD.md"), encoding="utf-8").read()
    assert "baseline" in card and "TF-IDF" in card
    assert os.path.isfile(os.path.join(tiny_run["run_dir"], "confusion_matrix.png"))
    assert os.path.isfile(os.path.join(tiny_run["run_dir"], "tokenizer.model"))


def test_every_export_is_verified_against_the_keras_model(tiny_run):
    report = read_json(os.path.join(tiny_run["run_dir"], "export", "verify.json"))
    assert report["passed"], report
    formats = {entry["format"] if isinstance(entry, dict) and "format" in entry else entry
               for entry in report.get("artifacts", report.get("formats", {}))}
    assert {"saved_model", "onnx", "tflite", "tflite_dynamic"} <= formats or len(formats) >= 4, report


def test_raw_string_saved_model_in_a_fresh_process_equals_the_python_api(tiny_run):
    import toolkit

    texts = ["  we   w3 soup and w7 ", "the guitar w1", "w2 w3 coach"]
    python = toolkit.predict(tiny_run["run_dir"], texts)
    saved_model = os.path.join(tiny_run["run_dir"], "export", "saved_model")
    code = (
        "import json, tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({saved_model!r})\n"
        f"out = m.signatures['serving_default'](text=tf.constant({texts!r}))\n"
        "print(json.dumps({'labels': [x.decode() for x in out['label'].numpy()],"
        " 'probabilities': out['probabilities'].numpy().tolist()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["labels"] == [r["label"] for r in python] == ["food", "music", "sports"]
    for row, expected in zip(answer["probabilities"], python):
        top = expected["top_k"][0]
        assert abs(row[top["index"]] - top["probability"]) < 1e-4


def test_onnx_predict_runs_without_tensorflow_and_says_when_text_is_truncated(tiny_run, tmp_path):
    onnx = os.path.join(tiny_run["run_dir"], "export", "model.onnx")
    long_text = " ".join(["w5"] * 60 + ["bread"])
    code = (
        "import json, sys\n"
        "from toolkit.api import predict\n"
        f"results = predict({onnx!r}, ['a song w1', {long_text!r}])\n"
        "print(json.dumps([results, 'tensorflow' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **tiny_run["env"], "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    results, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported is False
    assert results[0]["label"] == "music" and "warning" not in results[0]
    assert "truncated" in results[1]["warning"] and results[1]["tokens"] > 32
    lines = tmp_path / "texts.txt"
    lines.write_text("cheese w2 w9\n\nthe team w4\n", encoding="utf-8")
    cli = run_cli("predict", onnx, "--text", "we drums", str(lines), env=tiny_run["env"])
    assert cli.returncode == 0, cli.stderr
    assert [line.split()[0] for line in cli.stdout.strip().splitlines()[-3:]] == ["music", "food", "sports"]


def test_serve_answers_tf_serving_and_toolkit_requests_with_raw_strings(tiny_run):
    from test_serving import call

    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    export = os.path.join(tiny_run["run_dir"], "export")
    texts = ["the soup w4", "w9 band"]
    for runtime in ("saved_model", "onnx"):
        server = Server(load(resolve_model(export, runtime)), name="text", max_batch_size=8).start(port=0)
        try:
            status, answer = call(server.url + "/v1/models/text:predict", {"signature_name": "toolkit",
                                                                           "instances": texts})
            assert status == 200 and [p["label"] for p in answer["predictions"]] == ["food", "music"], answer
            if runtime == "saved_model":  # TF Serving's own request: the signature's named outputs
                status, answer = call(server.url + "/v1/models/text:predict", {"instances": texts})
                assert status == 200 and [p["label"] for p in answer["predictions"]] == ["food", "music"], answer
                assert set(answer["predictions"][0]) == {"probabilities", "label", "top_k_classes",
                                                         "top_k_probabilities"}
            status, answer = call(server.url + "/v1/models/text:predict", {"signature_name": "toolkit",
                                                                           "instances": [""]})
            assert status == 400 and "empty" in answer["error"], answer
        finally:
            server.stop()


def test_padding_changes_no_answer(tiny_run):
    from toolkit.model_io import load_keras_file, read_toolkit_metadata
    from toolkit.tasks.text_classification.predictor import TextCodec

    path = os.path.join(tiny_run["run_dir"], "model.keras")
    model, metadata = load_keras_file(path), read_toolkit_metadata(path)
    codec = TextCodec(metadata)
    short, _ = codec.ids(["the soup"])
    batch, _ = codec.ids(["the soup", " ".join(["w1"] * 25 + ["goal"])])
    assert batch.shape[1] > short.shape[1]
    alone, together = np.asarray(model(short)), np.asarray(model(batch))
    np.testing.assert_allclose(alone[0], together[0], atol=1e-6)


def test_multi_label_run_reports_micro_macro_f1_and_map(tmp_path):
    import toolkit

    data = make_split_folder(tmp_path / "multi", multi_label=True, train=300, test=60)
    recipe = load_recipe(recipe_dict(data, tmp_path / "runs", name="multi", data={"multi_label": True},
                                     model={"encoder": "cnn", "filters": 16, "layers": 1},
                                     train={"epochs": 10, "optimizer": {"learning_rate": 0.01}},
                                     export={"formats": ["saved_model", "onnx"]}))
    toolkit.train(recipe)
    metrics = read_json(os.path.join(str(tmp_path / "runs" / "multi"), "metrics.json"))["test"]
    assert metrics["micro_f1"] >= 0.85 and metrics["mAP"] >= 0.9, metrics
    assert {"micro_f1", "macro_f1", "mAP", "subset_accuracy"} <= set(metrics["baseline"])
    run_dir = str(tmp_path / "runs" / "multi")
    answers = toolkit.predict(os.path.join(run_dir, "export", "model.onnx"), ["w1 soup w2 guitar w3", "w4 coach"])
    assert set(answers[0]["labels"]) == {"food", "music"} and answers[1]["labels"] == ["sports"]


def tiny_bert_preset(directory):
    """A tiny BERT text classifier (random weights) with a WordPiece vocabulary, saved as a local KerasHub preset."""
    import keras
    import keras_hub

    words = sorted({w for words in TOPICS.values() for w in words} | set(FILLER))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=32)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=4,
                                             hidden_dim=64, intermediate_dim=128, max_sequence_length=64)
    keras_hub.models.BertTextClassifier(backbone=backbone, preprocessor=preprocessor, num_classes=2) \
        .save_to_preset(str(directory))
    return str(directory)


def test_tiny_local_bert_preset_fine_tunes_through_hub_and_exports(tmp_path):
    import toolkit

    preset = tiny_bert_preset(tmp_path / "tiny_bert")
    # Short texts: a one-layer random-init BERT's [CLS] finds the keyword among a few words quickly.
    data = make_split_folder(tmp_path / "planted", train=240, test=45, length=(1, 6))
    recipe = load_recipe(recipe_dict(data, tmp_path / "runs", name="bert", model={"encoder": f"hub:{preset}"},
                                     train={"epochs": 12, "fine_tune": {"frozen_epochs": 1, "learning_rate_factor": 1.0},
                                            "optimizer": {"learning_rate": 0.003}},
                                     export={"formats": ["saved_model", "onnx", "tflite"]}))
    toolkit.train(recipe)
    run_dir = str(tmp_path / "runs" / "bert")
    metrics = read_json(os.path.join(run_dir, "metrics.json"))["test"]
    assert metrics["accuracy"] >= 0.8, metrics["accuracy"]
    history = open(os.path.join(run_dir, "history.csv"), encoding="utf-8").read()
    assert history.count("\n") == 13  # header + 12 epochs over the frozen and fine-tuning phases
    assert read_json(os.path.join(run_dir, "export", "verify.json"))["passed"]
    answers = toolkit.predict(os.path.join(run_dir, "export", "saved_model"), ["the GUITAR w1", "we eat bread"])
    assert [a["label"] for a in answers] == ["music", "food"]
    metadata = read_json(os.path.join(run_dir, "export", "saved_model", "assets.extra", "toolkit.json"))
    assert metadata["tokenizer"]["kind"] == "hub" and metadata["tokenizer"]["start"] == [2]


def test_recipe_errors_are_one_line(tmp_path):
    base = {"task": "text_classification"}
    with pytest.raises(ToolkitError, match="transformer, cnn, bag or hub:"):
        load_recipe({**base, "model": {"encoder": "lstm"}})
    with pytest.raises(ToolkitError, match="only a hub: encoder is pretrained"):
        load_recipe({**base, "train": {"epochs": 2, "fine_tune": {"frozen_epochs": 1}}})
    with pytest.raises(ToolkitError, match="label_smoothing"):
        load_recipe({**base, "train": {"label_smoothing": 0.1}})
    with pytest.raises(ToolkitError, match="num_heads"):
        load_recipe({**base, "model": {"embed_dim": 30, "num_heads": 4}})
    with pytest.raises(ToolkitError, match="'nope' not in data.classes"):
        load_recipe({**base, "data": {"classes": ["a", "b"]}, "loss": {"class_weights": {"nope": 2.0}}})
    missing = run_cli("train", write_yaml(tmp_path / "r.yaml", {**base, "model": {"encoder": "hub:./no_such_dir"}}))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr


@pytest.mark.parametrize("name", ["bible_genre", "fortunes"])
def test_shipped_recipes_load(name):
    from toolkit.tasks import make_task

    recipe = load_recipe(f"recipes/text_classification/{name}.yaml")
    assert make_task(recipe).name == "text_classification" and recipe.data.source == name


def test_balanced_class_weights_follow_the_training_counts(tmp_path):
    from toolkit.tasks import make_task

    root = tmp_path / "skewed"
    os.makedirs(root)
    write_csv(root / "train.csv", [("w1 goal", "sports")] * 30 + [("w2 soup", "food")] * 10)
    write_csv(root / "test.csv", [("w1 goal", "sports"), ("w2 soup", "food")])
    task = make_task(load_recipe(recipe_dict(str(root), tmp_path / "runs", loss={"class_weights": "balanced"},
                                             data={"validation_fraction": 0.0})))
    np.testing.assert_allclose(task.class_weights(), [40 / (2 * 10), 40 / (2 * 30)])


def test_batches_by_length_match_the_declared_cardinality(tmp_path):
    """Texts of every length around the bucket boundaries: tf.data is told the exact number of batches."""
    from toolkit.tasks import make_task

    root = tmp_path / "lengths"
    os.makedirs(root)
    rng = np.random.RandomState(0)
    rows = [(" ".join(list(rng.choice(FILLER, n)) + ["goal" if n % 2 else "soup"]), "sports" if n % 2 else "food")
            for n in range(1, 70) for _ in range(3)]
    write_csv(root / "train.csv", rows)
    write_csv(root / "test.csv", rows[:4])
    recipe = recipe_dict(str(root), tmp_path / "runs", data={"validation_fraction": 0.0})
    recipe["tokenizer"]["max_length"] = 80
    for batch_size in (2, 3, 5, 7):
        recipe["train"]["batch_size"] = batch_size
        task = make_task(load_recipe(recipe))
        lengths = sorted({len(ids) for ids in task.split_ids("train")[0]})
        assert len({16, 32, 64} & set(lengths)) >= 2, lengths  # texts exactly at the bucket boundaries
        for training in (True, False):
            dataset = task.build_inputs("train", training=training)
            assert int(dataset.cardinality()) == sum(1 for _ in dataset)
