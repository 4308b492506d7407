"""Object detection for `make bench` (`--only detection`): the fashion_detection recipe trained on 2 cores, its
COCO mAP on the held-out test scenes, export parity after NMS, the int8 TFLite mAP delta, ONNX Runtime latency
at batch 1 including NMS, and `toolkit predict x.onnx` end to end.

Targets (issue 21): mAP@0.5 >= 0.85 and mAP@[.5:.95] >= 0.55 within 30 minutes of training; SavedModel and ONNX
detections identical to Keras after NMS; TFLite int8 mAP@0.5 within 0.02 of float; ONNX batch 1 <= 10 ms at
128x128; `toolkit predict x.onnx` (no TensorFlow) < 1 s. With `--detection-backbone-run DIR` (a finished
`make demo` classifier) the recipe is also trained on that backbone (`run:`) and from random init with the same
time budget, and the two mAPs are reported side by side.
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
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
RECIPE = os.path.join(REPO, "recipes", "object_detection", "fashion_detection.yaml")


def onnx_latency(run_dir, repeats=200):
    """Median ms of one 128x128 test scene through the ONNX file (network, decoding and NMS) on ONNX Runtime."""
    import numpy as np

    from toolkit.exporters.onnx import load_onnx, read_onnx_metadata
    from toolkit.tasks.object_detection.predictor import DetectionPredictor

    path = os.path.join(run_dir, "export", "model.onnx")
    session = load_onnx(path)
    metadata = read_onnx_metadata(session, path)
    sample = DetectionPredictor.load_samples(os.path.join(run_dir, "export", "samples"), metadata)[0]
    batch = sample[None].astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(None, {name: batch})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: batch})
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def predict_end_to_end(run_dir, repeats=5):
    """Median wall seconds of `toolkit predict model.onnx <scene>.png` in a fresh process."""
    toolkit = os.path.join(os.path.dirname(sys.executable), "toolkit")
    image = os.path.join(run_dir, "export", "samples", "000.png")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run([toolkit, "predict", os.path.join(run_dir, "export", "model.onnx"), image,
                                 "--output-dir", os.path.join(WORK, "detection_predictions")],
                                capture_output=True, text=True, env=ENV)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"toolkit predict failed: {result.stderr[-2000:]}")
    return round(statistics.median(times), 3)


def summarise(run_dir, seconds=None):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        verify = json.load(f)
    test = metrics["test"]
    parity = {name: {endpoint: {"agreement": figures["agreement"], "max_score_diff": figures["max_abs_diff"],
                                "detections": figures["decisions"]}
                     for endpoint, figures in entry["endpoints"].items()}
              for name, entry in verify["formats"].items()}
    quality = verify.get("quality") or {}
    int8 = (quality.get("formats") or {}).get("tflite_int8")
    row = {
        "run": run_dir, "train_seconds": metrics.get("train_seconds"), "wall_seconds": seconds,
        "epochs": metrics.get("epochs_completed"), "map": test["map"], "map_50": test["map_50"],
        "map_75": test["map_75"], "ar_100": test["ar_100"], "test_images": test["examples"],
        "per_class_ap_50": {name: round(v["ap_50"], 4) for name, v in test["per_class"].items()},
        "parity": parity, "int8_map_50_delta": None if int8 is None else round(int8["delta"], 4),
        "int8_quality_examples": quality.get("examples"),
    }
    return row


def bench_detection(quick=False, run_dir=None, backbone_run=None):
    sys.path.insert(0, HERE)
    from segmentation import toolkit_train

    overrides = ["data.scenes.count={train: 600, validation: 60, test: 100}", "train.epochs=2"] if quick else []
    seconds = None
    if run_dir is None:
        run_dir, seconds, _ = toolkit_train(RECIPE, os.path.join(WORK, "detection"), *overrides)
    result = summarise(run_dir, seconds and round(seconds, 1))
    result["onnx_batch_1_ms"] = onnx_latency(run_dir, repeats=50 if quick else 200)
    result["predict_onnx_end_to_end_s"] = predict_end_to_end(run_dir, repeats=2 if quick else 5)
    result["targets"] = {"map_50": 0.85, "map": 0.55, "train_seconds": 1800, "onnx_batch_1_ms": 10.0,
                         "predict_s": 1.0, "int8_map_50_delta": 0.02}
    result["passed"] = {
        "map_50": result["map_50"] >= 0.85, "map": result["map"] >= 0.55,
        "train_seconds": (result["train_seconds"] or 0) <= 1800,
        "parity": all(e["agreement"] == 1.0 and e["max_score_diff"] <= 1e-4 for name, f in result["parity"].items()
                      if name in ("saved_model", "onnx") for e in f.values()),
        "int8": result["int8_map_50_delta"] is not None and abs(result["int8_map_50_delta"]) <= 0.02,
        "onnx_batch_1_ms": result["onnx_batch_1_ms"] <= 10.0,
        "predict_s": result["predict_onnx_end_to_end_s"] < 1.0,
    }
    if backbone_run:
        pretrained, seconds, _ = toolkit_train(RECIPE, os.path.join(WORK, "detection_run"), *overrides,
                                               f"model.backbone=run:{backbone_run}", "model.weights=pretrained",
                                               "name=fashion_detection_run_backbone")
        result["run_backbone"] = summarise(pretrained, round(seconds, 1))  # same recipe and epochs
    return result


def table(results):
    entry = results.get("detection")
    if not entry:
        return ""
    ok = {True: "ok", False: "MISSED"}
    passed = entry["passed"]
    lines = [
        "",
        f"object detection (fashion_detection, {entry['test_images']} test scenes): mAP@[.5:.95] {entry['map']:.3f} "
        f"(>= 0.55 {ok[passed['map']]}), mAP@0.5 {entry['map_50']:.3f} (>= 0.85 {ok[passed['map_50']]}), "
        f"mAP@0.75 {entry['map_75']:.3f}, training {entry['train_seconds']} s ({ok[passed['train_seconds']]})",
        f"  parity after NMS (SavedModel, ONNX identical) {ok[passed['parity']]}; int8 mAP@0.5 delta "
        f"{entry['int8_map_50_delta']} ({ok[passed['int8']]}); ONNX batch 1 {entry['onnx_batch_1_ms']} ms "
        f"({ok[passed['onnx_batch_1_ms']]}); toolkit predict x.onnx {entry['predict_onnx_end_to_end_s']} s "
        f"({ok[passed['predict_s']]})",
    ]
    if "run_backbone" in entry:
        lines.append(f"  run: backbone mAP@0.5 {entry['run_backbone']['map_50']:.3f} vs random init "
                     f"{entry['map_50']:.3f} (same epochs)")
    return "\n".join(lines)


if __name__ == "__main__":
    run = sys.argv[1] if len(sys.argv) > 1 else None
    print(json.dumps(bench_detection(run_dir=run), indent=2))
