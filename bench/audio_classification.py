"""Audio classification for `make bench` (`--only audio_classification`): spoken language identification on the
Asterisk prompts with held-out test speakers, spoken digits trained on espeak-ng voices and tested on real
human digits, export parity, and the realtime factor of every export at batch 1.

Targets (issue 22): language identification accuracy >= 0.90 on 1-second windows and >= 0.97 per whole prompt
within 20 minutes of training on 2 cores; spoken digits (synthetic training only) >= 0.80 on the real English
digits; realtime factor at batch 1 <= 0.05 for every export.
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
RECIPES = os.path.join(REPO, "recipes", "audio_classification")


def realtime_factors(run_dir, clips=20):
    """{format: median seconds of compute per second of audio} over test clips, one clip per call (batch 1),
    through `toolkit.load(...).predict` (windows, features and the network; files already read)."""
    import toolkit

    export = os.path.join(run_dir, "export")
    predictor_samples = None
    factors = {}
    for name in ("saved_model", "model.onnx", "model.tflite", "model_dynamic.tflite", "model_int8.tflite"):
        path = os.path.join(export, name)
        if not os.path.exists(path):
            continue
        model = toolkit.load(path)
        if predictor_samples is None:
            predictor_samples = model.predictor.load_samples(os.path.join(export, "samples"), model.metadata)[:clips]
        rate = int(model.metadata["sample_rate"])
        model.predict([predictor_samples[0]])  # warm up
        ratios = []
        for wave in predictor_samples:
            start = time.perf_counter()
            model.predict([wave])
            ratios.append((time.perf_counter() - start) / (len(wave) / rate))
        factors[name] = round(statistics.median(ratios), 4)
    return factors


def summarise(run_dir, seconds=None):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        verify = json.load(f)
    test = metrics["test"]
    quality = (verify.get("quality") or {}).get("formats") or {}
    return {
        "run": run_dir, "train_seconds": metrics.get("train_seconds"), "wall_seconds": seconds,
        "epochs": metrics.get("epochs_completed"), "clip_accuracy": round(test["accuracy"], 4),
        "window_accuracy": round(test["window_accuracy"], 4), "macro_f1": round(test["macro_f1"], 4),
        "clips": test["examples"], "windows": test["windows"],
        "per_speaker": {name: v["accuracy"] for name, v in (test.get("per_speaker") or {}).items()},
        "per_group": {name: v["accuracy"] for name, v in (test.get("per_group") or {}).items()},
        "validation_accuracy": (test.get("validation") or {}).get("accuracy"),
        "parity": {name: {endpoint: {"agreement": e["agreement"], "max_abs_diff": e["max_abs_diff"]}
                          for endpoint, e in entry["endpoints"].items()}
                   for name, entry in verify["formats"].items()},
        "quantized_accuracy_delta": {name: round(v["delta"], 4) for name, v in quality.items()},
        "realtime_factor": realtime_factors(run_dir),
    }


def bench_audio_classification(quick=False, language_run=None, digits_run=None):
    sys.path.insert(0, HERE)
    from segmentation import toolkit_train

    results = {}
    for key, recipe, run_dir in (("language", "asterisk_language.yaml", language_run),
                                 ("digits", "spoken_digits.yaml", digits_run)):
        overrides = ["train.epochs=2"] if quick else []
        seconds = None
        if run_dir is None:
            run_dir, seconds, _ = toolkit_train(os.path.join(RECIPES, recipe), os.path.join(WORK, key), *overrides)
        results[key] = summarise(run_dir, seconds and round(seconds, 1))
    language, digits = results["language"], results["digits"]
    results["targets"] = {"language_window_accuracy": 0.90, "language_clip_accuracy": 0.97,
                          "language_train_seconds": 1200, "digits_english_accuracy": 0.80, "realtime_factor": 0.05}
    results["passed"] = {
        "language_window_accuracy": language["window_accuracy"] >= 0.90,
        "language_clip_accuracy": language["clip_accuracy"] >= 0.97,
        "language_train_seconds": (language["train_seconds"] or 0) <= 1200,
        "digits_english_accuracy": digits["per_group"].get("en", 0) >= 0.80,
        "realtime_factor": all(v <= 0.05 for entry in (language, digits) for v in entry["realtime_factor"].values()),
    }
    return results


def table(results):
    entry = results.get("audio_classification")
    if not entry:
        return ""
    ok = {True: "ok", False: "MISSED"}
    passed, language, digits = entry["passed"], entry["language"], entry["digits"]
    return "\n".join([
        "",
        f"language identification (Asterisk prompts, held-out speakers): 1-s windows {language['window_accuracy']:.3f} "
        f"(>= 0.90 {ok[passed['language_window_accuracy']]}), whole prompts {language['clip_accuracy']:.3f} "
        f"(>= 0.97 {ok[passed['language_clip_accuracy']]}), training {language['train_seconds']} s "
        f"({ok[passed['language_train_seconds']]}); per speaker {language['per_speaker']}",
        f"spoken digits (espeak-ng training, real test digits): {digits['clip_accuracy']:.3f}; per language "
        f"{digits['per_group']} (en >= 0.80 {ok[passed['digits_english_accuracy']]})",
        f"  realtime factor at batch 1: language {language['realtime_factor']}, digits {digits['realtime_factor']} "
        f"(<= 0.05 {ok[passed['realtime_factor']]})",
    ])


if __name__ == "__main__":
    print(json.dumps(bench_audio_classification(language_run=sys.argv[1] if len(sys.argv) > 1 else None,
                                                digits_run=sys.argv[2] if len(sys.argv) > 2 else None), indent=2))
