"""The `toolkit` command end to end on a tiny generated image folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

VERBS = ["train", "evaluate", "predict", "export", "verify", "config", "list", "weights", "data"]


def test_help_on_every_verb_without_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from toolkit.cli import main\n"
        f"for verb in [[]] + [[v] for v in {VERBS!r}] + [['weights', 'import']]:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            main(verb + ['--help'])\n"
        "        except SystemExit as exit:\n"
        "            assert exit.code == 0, (verb, exit.code)\n"
        "    assert 'usage: toolkit' in out.getvalue(), verb\n"
        "assert 'tensorflow' not in sys.modules, 'toolkit --help imported tensorflow'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "ok", result.stderr


def test_list_commands():
    for what, expected in [("backbones", "mobilenet_v3_small"), ("tasks", "image_classification"),
                           ("formats", "onnx"), ("sources", "fashion_mnist"),
                           ("recipes", "fashion_mnist.yaml")]:
        result = run_cli("list", what)
        assert result.returncode == 0 and expected in result.stdout, (what, result.stderr)


def test_user_errors_are_one_line_exit_2(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: image_classification\nmodel: {backbone: resnet_tiny, weights: none}\n"
                      "train: {epochz: 3}\n")
    cases = [
        ("config", str(recipe)),
        ("train", str(recipe)),
        ("train", str(tmp_path / "missing.yaml")),
        ("train",),
        ("evaluate", str(tmp_path)),
        ("predict", str(tmp_path / "nope.onnx"), "x.png"),
        ("verify", str(tmp_path)),
        ("export", str(tmp_path), "--format", "onnx"),
        ("weights", "import", str(tmp_path / "w.weights.h5"), "--backbone", "mobilenet_v3_smal"),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"toolkit {args[0]}: error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_export_verify_predict_end_to_end(trained_run):
    run_dir = trained_run["run_dir"]
    stdout = trained_run["stdout"]
    for name in ("recipe.yaml", "model.keras", "metrics.json", "history.csv", "training_curves.png",
                 "confusion_matrix.png", "MODEL_CARD.md", "export/saved_model/saved_model.pb",
                 "export/model.onnx", "export/verify.json", "logs"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "_backup"))
    assert "Export parity" in stdout and "Test metrics" in stdout and "FAILED" not in stdout

    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    test = metrics["test"]
    assert set(test["per_class"]) == {"blue", "green", "red"}
    assert np.array(test["confusion_matrix"]).sum() == test["examples"]
    assert metrics["epochs_completed"] == 4

    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        report = json.load(f)
    assert report["passed"] and set(report["formats"]) == {"saved_model", "onnx"}
    assert set(report["formats"]["saved_model"]["endpoints"]) == {"serving_default", "serve_image"}
    card = open(os.path.join(run_dir, "MODEL_CARD.md")).read()
    assert "Export parity" in card and "max abs diff" in card and "image folder" in card

    images = sorted(os.path.join(trained_run["data"], "red", f) for f in os.listdir(os.path.join(trained_run["data"], "red")))[:3]
    images += sorted(os.path.join(trained_run["data"], "blue", f) for f in os.listdir(os.path.join(trained_run["data"], "blue")))[:3]
    labels = {}
    for model in (run_dir, os.path.join(run_dir, "model.keras"), os.path.join(run_dir, "export", "saved_model"),
                  os.path.join(run_dir, "export", "model.onnx")):
        result = run_cli("predict", model, *images, "--json", "--top-k", "2", env=trained_run["env"])
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout)
        labels[model] = [p["top_k"][0]["label"] for p in output["predictions"]]
        probabilities = [p["top_k"][0]["probability"] for p in output["predictions"]]
        assert all(len(p["top_k"]) == 2 for p in output["predictions"])
        labels[model + ":p"] = probabilities
    keras_labels = labels[run_dir]
    assert all(labels[m] == keras_labels for m in labels if not m.endswith(":p"))
    reference = np.array(labels[run_dir + ":p"])
    for key, value in labels.items():
        if key.endswith(":p"):
            np.testing.assert_allclose(value, reference, atol=1e-4)
    # the tiny model learned the colours: most predictions are right
    truth = ["red"] * 3 + ["blue"] * 3
    assert sum(a == b for a, b in zip(keras_labels, truth)) >= 4, keras_labels

    text = run_cli("predict", os.path.join(run_dir, "export", "model.onnx"), images[0])
    assert text.returncode == 0 and text.stdout.startswith(images[0] + ": ")


@pytest.mark.slow
def test_python_dash_m_and_evaluate_export_verify_verbs(trained_run):
    run_dir = trained_run["run_dir"]
    result = run_cli("evaluate", run_dir, "--json", env=trained_run["env"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert metrics["accuracy"] == pytest.approx(json.load(f)["test"]["accuracy"])

    result = run_cli("export", run_dir, "--format", "onnx", env=trained_run["env"])
    assert result.returncode == 0, result.stderr
    assert "onnx" in result.stdout and os.path.isdir(os.path.join(run_dir, "export", "saved_model"))

    result = run_cli("verify", os.path.join(run_dir, "export"), env=trained_run["env"])
    assert result.returncode == 0 and "all exports match" in result.stdout, result.stderr


def test_onnx_prediction_does_not_import_tensorflow(trained_run, tmp_path):
    onnx_path = os.path.join(trained_run["run_dir"], "export", "model.onnx")
    image = os.path.join(trained_run["run_dir"], "export", "samples", "000.png")
    code = (
        "import sys\n"
        "from toolkit.cli import main\n"
        f"assert main(['predict', {onnx_path!r}, {image!r}]) == 0\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "trained = [m for m in sys.modules if m.startswith('toolkit.tasks.') and m.endswith('.task')]\n"
        "assert not trained, f'training modules were imported: {trained}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert image in result.stdout


def test_predict_rejects_a_non_image_in_one_line(trained_run, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not an image")
    for model in (os.path.join(trained_run["run_dir"], "export", "model.onnx"), trained_run["run_dir"]):
        result = run_cli("predict", model, str(bogus), env=trained_run["env"])
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "not a readable image" in result.stderr


def test_predict_reports_each_unreadable_file_and_predicts_the_rest(trained_run, tmp_path):
    samples = os.path.join(trained_run["run_dir"], "export", "samples")
    good = [os.path.join(samples, "000.png"), os.path.join(samples, "001.png")]
    bogus = tmp_path / "broken.png"
    bogus.write_bytes(b"\x89PNG not really")
    missing = str(tmp_path / "gone.jpg")
    for model in (os.path.join(trained_run["run_dir"], "export", "model.onnx"), trained_run["run_dir"]):
        result = run_cli("predict", model, good[0], str(bogus), good[1], missing, env=trained_run["env"])
        assert result.returncode == 2, result.stderr
        assert [line.split(": ")[0] for line in result.stdout.splitlines()] == good, result.stdout
        errors = result.stderr.splitlines()
        assert len(errors) == 2 and "broken.png" in errors[0] and "gone.jpg" in errors[1], result.stderr
        assert all(line.startswith("toolkit predict: error: ") for line in errors)
        assert "Traceback" not in result.stderr


def test_the_python_api_imports_tensorflow_without_its_log_lines(trained_run):
    code = ("import toolkit\n"
            f"model = toolkit.load({trained_run['run_dir']!r})\n"
            f"print(model.predict([{os.path.join(trained_run['run_dir'], 'export', 'samples', '000.png')!r}])[0]"
            "['top_k'][0]['label'])\n")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stderr == "", result.stderr


def test_open_run_and_its_error(trained_run, tmp_path):
    import toolkit

    run = toolkit.open_run(trained_run["run_dir"])
    assert run.metrics["test"]["accuracy"] >= 0 and "training_curves.png" in run.plots()
    with pytest.raises(toolkit.ToolkitError, match="no such run directory"):
        toolkit.open_run(tmp_path / "nothing")


@pytest.mark.slow
def test_fine_tune_from_an_earlier_run(trained_run, tmp_path):
    from conftest import write_recipe

    recipe = write_recipe(
        tmp_path / "transfer.yaml", trained_run["data"], tmp_path / "runs",
        model={"backbone": "run:" + trained_run["run_dir"], "weights": "pretrained"},
        train={"epochs": 3, "fine_tune": {"frozen_epochs": 1, "unfreeze": 4, "learning_rate_factor": 0.1}},
        export={"formats": ["onnx"]},
    )
    result = run_cli("train", recipe, env=trained_run["env"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "phase frozen: epochs 1-1" in result.stdout and "phase fine_tune: epochs 2-3" in result.stdout
    run_dir = os.path.join(str(tmp_path / "runs"), "transfer")
    with open(os.path.join(run_dir, "state.json")) as f:
        assert json.load(f)["completed_phases"] == ["frozen", "fine_tune"]
    card = open(os.path.join(run_dir, "MODEL_CARD.md")).read()
    assert "run " + trained_run["run_dir"] in card
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        assert json.load(f)["passed"]


def test_data_list_and_clean_the_cache(tmp_path):
    home = tmp_path / "home"
    corpus = home / "data" / "speech" / "espeak-0123456789ab"
    (corpus / "wavs").mkdir(parents=True)
    (corpus / "wavs" / "a.wav").write_bytes(b"\0" * 5000)
    (corpus / "corpus.json").write_text(json.dumps({"generator": "espeak-ng 1.51", "utterances": {"train": 3},
                                                    "audio_seconds": {"train": 120.0}, "sample_rate": 16000}))
    (home / "data" / "bible").mkdir(parents=True)
    (home / "data" / "bible" / "bible_en_es.tsv").write_text("x\ty\n")
    env = {"TOOLKIT_HOME": str(home)}
    listed = run_cli("data", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert set(rows) == {"bible", "speech/espeak-0123456789ab", "total"}
    assert "5.1 KB" in rows["speech/espeak-0123456789ab"] and "3 utterances, 2 min" in rows["speech/espeak-0123456789ab"]
    wrong = run_cli("data", "clean", "speach", env=env)
    assert wrong.returncode == 2 and "did you mean 'speech'" in wrong.stderr and wrong.stderr.count("\n") == 1
    cleaned = run_cli("data", "clean", "speech", env=env)
    assert cleaned.returncode == 0 and "removed speech/espeak-0123456789ab" in cleaned.stdout, cleaned.stderr
    assert not corpus.exists() and (home / "data" / "bible").exists()
    assert run_cli("data", "clean", "--all", env=env).returncode == 0 and not (home / "data" / "bible").exists()


def test_predict_help_names_every_kind_of_input():
    result = run_cli("predict", "--help")
    text = " ".join(result.stdout.split())
    for words in ("images", "audio files", "text files with one sentence per line", "--user"):
        assert words in text, words


def test_evaluate_tables_keep_timings_apart_from_the_metrics():
    from toolkit.reports import metrics_table

    table = metrics_table({"bleu": 23.6, "chrf": 51.2, "examples": 100, "decoding_seconds": 105.7,
                           "validation": {"bleu": 25.0, "decoding_seconds": 9.0}})
    scores, _, rest = table.partition("\n\n  validation")
    assert "decoding_seconds" not in scores and "bleu" in scores
    assert rest.index("decoding_seconds") > rest.index("bleu")
    assert table.rstrip().endswith("timings\n    decoding_seconds 105.7000")
