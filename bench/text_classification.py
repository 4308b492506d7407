"""Text classification for `make bench` (`--only text_classification`): Bible verse genre and fortune categories,
each network beside the TF-IDF + logistic regression baseline trained and tested on the same splits in the same
run; export parity; `toolkit predict x.onnx --text ...` end to end (a fresh process, no TensorFlow); SavedModel
throughput at batch 32.

Targets (issue 23): Bible genre macro-F1 at least 3 points above the baseline within 15 minutes of training on
2 cores; fortunes accuracy above the baseline; ONNX prediction from the command line under 1 s.
"""

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
RECIPES = os.path.join(REPO, "recipes", "text_classification")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")


def cli_predict_seconds(onnx_path, repeats=5):
    """Median wall seconds of `toolkit predict model.onnx --text ...` in a fresh process, and whether that process
    imported TensorFlow."""
    command = [sys.executable, "-m", "toolkit", "predict", onnx_path, "--text",
               "And he said unto them, Go ye into all the world."]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=REPO, env=ENV)
        times.append(time.perf_counter() - started)
    probe = ("import sys; from toolkit.api import predict; "
             f"predict({onnx_path!r}, ['a text']); print('tensorflow' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=REPO,
                              env=ENV).stdout.strip().splitlines()[-1] == "True"
    return round(statistics.median(times), 3), imported


def saved_model_throughput(run_dir, batch=32, repeats=20):
    """Texts per second through the SavedModel's `serving_default` (raw strings) at batch 32."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - the tokenizer ops

    export = os.path.join(run_dir, "export")
    with open(os.path.join(export, "samples", "texts.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f if line.strip()]
    texts = (texts * (batch // max(len(texts), 1) + 1))[:batch]
    serve = tf.saved_model.load(os.path.join(export, "saved_model")).signatures["serving_default"]
    strings = tf.constant(texts)
    for _ in range(3):
        serve(text=strings)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        serve(text=strings)
        times.append(time.perf_counter() - started)
    return round(batch / statistics.median(times), 1)


def summarise(run_dir, seconds=None):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        verify = json.load(f)
    test = metrics["test"]
    baseline = test["baseline"]
    seconds_, tensorflow = cli_predict_seconds(os.path.join(run_dir, "export", "model.onnx"))
    return {
        "run": run_dir, "train_seconds": metrics.get("train_seconds"), "wall_seconds": seconds,
        "epochs": metrics.get("epochs_completed"), "examples": test["examples"],
        "accuracy": round(test["accuracy"], 4), "macro_f1": round(test["macro_f1"], 4),
        "baseline": {"accuracy": round(baseline["accuracy"], 4), "macro_f1": round(baseline["macro_f1"], 4),
                     "C": baseline["C"], "seconds": baseline["seconds"]},
        "validation": test.get("validation"),
        "parity": {name: {endpoint: {"agreement": e["agreement"], "max_abs_diff": e["max_abs_diff"]}
                          for endpoint, e in entry["endpoints"].items()}
                   for name, entry in verify["formats"].items()},
        "cli_onnx_predict_seconds": seconds_, "cli_onnx_imports_tensorflow": tensorflow,
        "saved_model_texts_per_second_batch_32": saved_model_throughput(run_dir),
    }


def bench_text_classification(quick=False, bible_run=None, fortunes_run=None):
    sys.path.insert(0, HERE)
    from segmentation import toolkit_train

    results = {}
    for key, recipe, run_dir in (("bible_genre", "bible_genre.yaml", bible_run),
                                 ("fortunes", "fortunes.yaml", fortunes_run)):
        overrides = ["train.epochs=1", "data.limit.train=2000"] if quick else []
        seconds = None
        if run_dir is None:
            run_dir, seconds, _ = toolkit_train(os.path.join(RECIPES, recipe), os.path.join(WORK, key), *overrides)
        results[key] = summarise(run_dir, seconds and round(seconds, 1))
    bible, fortunes = results["bible_genre"], results["fortunes"]
    results["targets"] = {"bible_macro_f1_over_baseline": 0.03, "bible_train_seconds": 900,
                          "fortunes_accuracy_over_baseline": 0.0, "cli_onnx_predict_seconds": 1.0}
    results["passed"] = {
        "bible_macro_f1_over_baseline": bible["macro_f1"] - bible["baseline"]["macro_f1"] >= 0.03,
        "bible_train_seconds": (bible["train_seconds"] or 0) <= 900,
        "fortunes_accuracy_over_baseline": fortunes["accuracy"] > fortunes["baseline"]["accuracy"],
        "cli_onnx_predict_seconds": all(entry["cli_onnx_predict_seconds"] < 1.0
                                        and not entry["cli_onnx_imports_tensorflow"] for entry in (bible, fortunes)),
    }
    return results


def table(results):
    entry = results.get("text_classification")
    if not entry:
        return ""
    ok = {True: "ok", False: "MISSED"}
    passed, bible, fortunes = entry["passed"], entry["bible_genre"], entry["fortunes"]
    return "\n".join([
        "",
        f"Bible verse genre: macro-F1 {bible['macro_f1']:.4f} vs TF-IDF+LR {bible['baseline']['macro_f1']:.4f} "
        f"(+0.03 {ok[passed['bible_macro_f1_over_baseline']]}), accuracy {bible['accuracy']:.4f} vs "
        f"{bible['baseline']['accuracy']:.4f}, training {bible['train_seconds']} s "
        f"(<= 900 {ok[passed['bible_train_seconds']]})",
        f"fortunes: accuracy {fortunes['accuracy']:.4f} vs TF-IDF+LR {fortunes['baseline']['accuracy']:.4f} "
        f"({ok[passed['fortunes_accuracy_over_baseline']]}), macro-F1 {fortunes['macro_f1']:.4f} vs "
        f"{fortunes['baseline']['macro_f1']:.4f}",
        f"  toolkit predict x.onnx --text: {bible['cli_onnx_predict_seconds']} s / {fortunes['cli_onnx_predict_seconds']} s "
        f"(< 1 s, no TensorFlow {ok[passed['cli_onnx_predict_seconds']]}); SavedModel batch 32: "
        f"{bible['saved_model_texts_per_second_batch_32']} / {fortunes['saved_model_texts_per_second_batch_32']} texts/s",
    ])


if __name__ == "__main__":
    print(json.dumps(bench_text_classification(bible_run=sys.argv[1] if len(sys.argv) > 1 else None,
                                               fortunes_run=sys.argv[2] if len(sys.argv) > 2 else None), indent=2))
