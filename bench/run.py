"""`make bench`: speed benchmarks, each measured against a reference in the same run.

1. Training throughput: `toolkit train` (fashion_mnist recipe, a subset) against
   a plain hand-written Keras script training the same model on the same data
   (bench/plain_keras_train.py). Target ratio >= 0.97.
2. Inference latency at batch 1 and 32 (MobileNetV3Small, 224x224, 1000
   classes): bare runtime calls (Keras model.predict, SavedModel signature,
   ONNX Runtime session.run; Keras bare = predict_on_batch, model.predict
   shown beside it) and the toolkit's predict path on the same
   in-memory images. Targets: toolkit path adds < 10% over the bare call;
   ONNX Runtime batch 1 <= 2 ms.
3. Start-up: `toolkit --help` (< 0.3 s, no TensorFlow import) and
   `toolkit predict model.onnx image.png` end to end (< 1 s).
4. Segmentation baselines (bench/segmentation.py): nuclei U-Net vs Otsu
   thresholding; fashion-scenes U-Net with a pretrained (run:) backbone vs
   random init.
5. Translation (bench/translation.py): the Bible en->es recipe vs copy and
   word-for-word dictionary baselines (about an hour of training).
6. Speech (bench/speech.py): the espeak_ctc recipe's WER/CER on held-out voices
   and real pocketsphinx clips, and the exported model's realtime factor at
   batch 1 (about 25 minutes of training).
7. Recommendation (bench/recommendation.py): MovieLens-100k 5-fold RMSE of the
   rating recipe and leave-last-out Recall/NDCG@10 of the retrieval recipe,
   beside most-popular and user/item-bias baselines.
8. Deployment (bench/deployment.py): `toolkit benchmark` of every format of a
   fashion_mnist run (Keras, SavedModel, ONNX, TFLite float/dynamic/int8:
   latency at batch 1 and 32, sizes, test-accuracy deltas) and a bounded
   `toolkit serve` load test over loopback (throughput, p50/p99).
9. Object detection (bench/detection.py): the fashion_detection recipe's COCO mAP, parity after NMS, the
   int8 mAP delta, ONNX latency with NMS and `toolkit predict x.onnx` end to end (about 25 minutes).
10. Speech on real speech (bench/asterisk_speech.py): WER/CER on the held-out Asterisk PBX prompts of the
   espeak_ctc model, of it fine-tuned on the Asterisk training prompts (asterisk_finetune) and of
   pocketsphinx's own English model, greedy and lexicon decoding, with lexicon coverage.
11. Audio classification (bench/audio_classification.py): language identification on the Asterisk prompts with
   held-out speakers, spoken digits trained on espeak-ng and tested on real digits, the realtime factor of every
   export at batch 1 (about an hour).
12. Text classification (bench/text_classification.py): Bible verse genre and fortune categories, each network
   beside a TF-IDF + logistic regression baseline on the same splits, `toolkit predict x.onnx --text` end to end
   and SavedModel throughput at batch 32 (about 20 minutes).
13. Explanations (bench/explain.py): `toolkit explain` on one-item fashion scenes: the pointing game of Grad-CAM
   (and Grad-CAM++, integrated gradients, occlusion) against the random map's, and the deletion AUC of Grad-CAM
   against a random map (about 5 minutes).
14. Anomaly detection (bench/anomaly_detection.py): Fashion-MNIST one-vs-rest, each class normal in turn, beside
   isolation-forest and PCA baselines on the same splits; the synthetic series' labelled windows found and false
   alarms per series (about 15 minutes).
15. Tuning (bench/tune.py): `toolkit tune` on MovieLens-100k rating (20 TPE trials against the shipped recipe's
   validation RMSE) and on Fashion-MNIST (a 15-minute Hyperband search on a proxy, then the tuned recipe trained
   in full against the default's test accuracy); about 50 minutes.
16. Decoding (bench/decoding.py): beam-4 translation of the held-out Bible verses by the toolkit's decoder
   against the KerasHub-sampler decoder it replaced (toolkit.text_generation.reference_generate), on the same
   model: speed-up (target 5x) and identical translations; greedy target tokens/s at batch 64 (target 1,000).
   Uses --translation-run or this run's translation part, else trains bible_en_es for 2 epochs (about 15 minutes).
17. Throughput (bench/throughput.py): `toolkit train` against a plain keras-io-style script (bench/plain/) per task
   (segmentation, translation, speech, recommendation, JPEG-folder classification), same model, data and batch
   size, epochs 2 onward, median of 3; target ratio 0.97 (about 25 minutes).
18. Precision (bench/precision.py): float32 against mixed_bfloat16 (and mixed_float16 for two tasks) per task's
   default model on throughput.py's subsets plus Fashion-MNIST: examples/s, the speed-up and the monitored
   validation metric; which precision each recipe should ship with (>= 1.3x at equal quality; about 25 minutes).

Writes bench/results.json and prints a table. Options: --quick (smaller
runs), --only classification|nuclei|scenes|translation|speech|recommendation|deployment|detection|asterisk_speech|
audio_classification|text_classification|explain|anomaly_detection|tune|decoding|throughput|precision,
--translation-run DIR / --speech-run DIR / --deployment-run DIR / --detection-run DIR (report a
finished bible_en_es / espeak_ctc / fashion_mnist / fashion_detection run instead of training one),
--asterisk-espeak-run DIR / --asterisk-finetune-run DIR (finished espeak_ctc / asterisk_finetune runs),
--detection-backbone-run DIR (also train the detector on that classifier's backbone),
--language-run DIR / --digits-run DIR (finished asterisk_language / spoken_digits runs),
--bible-genre-run DIR / --fortunes-run DIR (finished text classification runs).
"""

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


# --------------------------------------------------------------------- training


def bench_training(limit, epochs, repeats):
    """Images/s over epochs 2..N (epoch 1 includes tracing), toolkit vs plain."""
    plain_rates, toolkit_rates = [], []
    for repeat in range(repeats):
        for kind in ("plain", "toolkit") if repeat % 2 == 0 else ("toolkit", "plain"):
            if kind == "plain":
                result = run([sys.executable, os.path.join(HERE, "plain_keras_train.py"), str(limit), str(epochs)])
                seconds = json.loads(result.stdout.strip().splitlines()[-1])["epoch_seconds"]
                plain_rates.append(limit * (len(seconds) - 1) / sum(seconds[1:]))
            else:
                out = os.path.join(WORK, f"train_{repeat}")
                shutil.rmtree(out, ignore_errors=True)
                run([sys.executable, "-m", "toolkit", "train", "recipes/image_classification/fashion_mnist.yaml",
                     f"data.limit.train={limit}", f"data.limit.validation={limit // 9}", "data.limit.test=1000",
                     f"train.epochs={epochs}", "train.verbose=0", "export.formats=[]", f"output.dir={out}"])
                with open(os.path.join(out, "fashion_mnist", "history.csv")) as f:
                    seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
                toolkit_rates.append(limit * (len(seconds) - 1) / sum(seconds[1:]))
    plain, toolkit = statistics.median(plain_rates), statistics.median(toolkit_rates)
    return {
        "train_images": limit, "epochs": epochs, "repeats": repeats,
        "plain_keras_images_per_s": round(plain, 1), "toolkit_images_per_s": round(toolkit, 1),
        "ratio": round(toolkit / plain, 3), "target_ratio": 0.97, "passed": toolkit / plain >= 0.97,
        "all_plain": [round(r, 1) for r in plain_rates], "all_toolkit": [round(r, 1) for r in toolkit_rates],
    }


# -------------------------------------------------------------------- inference


def timeit(function, repeats, warmup=3):
    """Median wall time of `function` in milliseconds."""
    return timeit_pair(function, function, repeats, warmup)[0]


def timeit_pair(first, second, repeats, warmup=5):
    """Median milliseconds of two functions, called alternately (same conditions for both)."""
    for _ in range(warmup):
        first()
        second()
    times = ([], [])
    for _ in range(repeats):
        for function, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            function()
            bucket.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times[0]), 3), round(statistics.median(times[1]), 3)


def bench_inference(repeats):
    import numpy as np
    import tensorflow as tf

    from toolkit.config import load_recipe
    from toolkit.exporters.formats import OnnxOptions
    from toolkit.exporters.onnx import export_onnx, load_onnx
    from toolkit.exporters.saved_model import export_saved_model, load_saved_model
    from toolkit.inference import LoadedModel
    from toolkit.tasks import make_task

    recipe = load_recipe({
        "task": "image_classification", "name": "bench_mnv3",
        "data": {"source": "folder", "path": WORK, "image_size": 224, "channels": 3},
        "model": {"backbone": "mobilenet_v3_small", "weights": "none"},
        "output": {"dir": WORK},
    })
    task = make_task(recipe)
    task.metadata = {"task": "image_classification", "input": "image", "image_size": [224, 224], "channels": 3,
                     "class_names": [f"class_{i}" for i in range(1000)], "top_k": 5, "backbone": None}
    model = task.build_model()
    saved_model_dir, onnx_path = os.path.join(WORK, "mnv3_saved_model"), os.path.join(WORK, "mnv3.onnx")
    shutil.rmtree(saved_model_dir, ignore_errors=True)
    model.predict(np.zeros((1, 224, 224, 3), "float32"), verbose=0)
    export_saved_model(model, task, saved_model_dir, None)
    export_onnx(model, task, onnx_path, OnnxOptions())
    loaded, session = load_saved_model(saved_model_dir), load_onnx(onnx_path)
    serve = loaded.signatures["serve_image"]
    wrappers = {
        "keras": LoadedModel(onnx_path, "keras", model, task.metadata),
        "saved_model": LoadedModel(saved_model_dir, "saved_model", loaded, task.metadata),
        "onnx": LoadedModel(onnx_path, "onnx", session, task.metadata),
    }
    rng = np.random.RandomState(0)
    results = {}
    for batch in (1, 32):
        images = rng.randint(0, 256, (batch, 224, 224, 3)).astype(np.uint8)
        floats = images.astype(np.float32)
        name = session.get_inputs()[0].name
        bare = {
            "keras": lambda: model.predict_on_batch(floats),
            "saved_model": lambda: serve(images=tf.constant(images)),
            "onnx": lambda: session.run(None, {name: floats}),
        }
        row = {}
        for runtime in ("keras", "saved_model", "onnx"):
            listed = list(images)
            bare_ms, toolkit_ms = timeit_pair(bare[runtime], lambda: wrappers[runtime].predict(listed, 5), repeats)
            row[runtime] = {"bare_ms": bare_ms, "toolkit_ms": toolkit_ms,
                            "overhead": round(toolkit_ms / bare_ms - 1, 3)}
        row["keras"]["model_predict_ms"] = timeit(lambda: model.predict(floats, verbose=0), repeats)
        results[f"batch_{batch}"] = row
    results["targets"] = {"toolkit_overhead_below": 0.10, "onnx_batch_1_ms_at_most": 2.0}
    results["onnx_batch_1_passed"] = results["batch_1"]["onnx"]["bare_ms"] <= 2.0
    results["overhead_passed"] = all(
        results[f"batch_{b}"][r]["overhead"] < 0.10 for b in (1, 32) for r in ("keras", "saved_model", "onnx")
    )
    return results, onnx_path


# ---------------------------------------------------------------------- startup


def bench_startup(onnx_path, repeats):
    import numpy as np
    from PIL import Image

    image = os.path.join(WORK, "cat.png")
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (300, 400, 3)).astype(np.uint8)).save(image)
    toolkit = os.path.join(os.path.dirname(sys.executable), "toolkit")

    def wall(command):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(command)
            times.append(time.perf_counter() - start)
        return round(statistics.median(times), 3)

    help_s = wall([toolkit, "--help"])
    predict_s = wall([toolkit, "predict", onnx_path, image])
    tensorflow_s = wall([sys.executable, "-c", "import tensorflow"])
    return {
        "toolkit_help_s": help_s, "help_target_s": 0.3, "help_passed": help_s < 0.3,
        "predict_onnx_end_to_end_s": predict_s, "predict_target_s": 1.0, "predict_passed": predict_s < 1.0,
        "import_tensorflow_s": tensorflow_s,
    }


PARTS = ["classification", "nuclei", "scenes", "translation", "speech", "recommendation", "deployment", "detection",
         "asterisk_speech", "audio_classification", "text_classification", "explain",
         "anomaly_detection", "tune", "decoding", "throughput", "precision"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the benchmark)")
    parser.add_argument("--skip-training", action="store_true", help="keep the training figures of the last run")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only these parts (repeatable); default: all")
    parser.add_argument("--translation-run", help="a finished bible_en_es run to report instead of training one")
    parser.add_argument("--speech-run", help="a finished espeak_ctc run to report instead of training one")
    parser.add_argument("--deployment-run", help="a finished fashion_mnist run to export (TFLite too), benchmark "
                                                 "and serve instead of training one")
    parser.add_argument("--detection-run", help="a finished fashion_detection run to report instead of training one")
    parser.add_argument("--asterisk-espeak-run", help="a finished espeak_ctc run for asterisk_speech (default: train "
                                                      "one, or reuse --speech-run)")
    parser.add_argument("--asterisk-finetune-run", help="a finished asterisk_finetune run for asterisk_speech "
                                                        "(default: fine-tune the espeak_ctc run)")
    parser.add_argument("--language-run", help="a finished asterisk_language run for audio_classification")
    parser.add_argument("--digits-run", help="a finished spoken_digits run for audio_classification")
    parser.add_argument("--bible-genre-run", help="a finished bible_genre run for text_classification")
    parser.add_argument("--fortunes-run", help="a finished fortunes run for text_classification")
    parser.add_argument("--detection-backbone-run", help="a finished fashion_mnist classifier run: also train the "
                                                         "detector on its backbone (run:)")
    args = parser.parse_args()
    parts = set(args.only or PARTS)
    os.makedirs(WORK, exist_ok=True)
    started = time.time()
    previous = os.path.join(HERE, "results.json")
    results = {}
    if os.path.isfile(previous):
        with open(previous) as f:
            results = json.load(f)
    results.update({"machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d")})
    if "classification" in parts:
        if not (args.skip_training and "training" in results):
            results["training"] = bench_training(limit=2000 if args.quick else 12000, epochs=3 if args.quick else 4,
                                                 repeats=1 if args.quick else 3)
        results["inference"], onnx_path = bench_inference(repeats=5 if args.quick else 30)
        results["startup"] = bench_startup(onnx_path, repeats=2 if args.quick else 5)
    sys.path.insert(0, HERE)
    import segmentation

    if "nuclei" in parts:
        results["nuclei"] = segmentation.bench_nuclei(args.quick)
    if "scenes" in parts:
        results["scenes"] = segmentation.bench_scenes(args.quick)
    if "translation" in parts:
        import translation

        results["translation"] = translation.bench_translation(args.quick, args.translation_run)
    if "speech" in parts:
        import speech

        results["speech"] = speech.bench_speech(args.quick, args.speech_run)
    if "recommendation" in parts:
        import recommendation

        results["recommendation"] = recommendation.bench_recommendation(args.quick)
    if "deployment" in parts:
        import deployment

        results["deployment"] = deployment.bench_deployment(args.quick, args.deployment_run)
    if "detection" in parts:
        import detection

        results["detection"] = detection.bench_detection(args.quick, args.detection_run, args.detection_backbone_run)
    if "asterisk_speech" in parts:
        import asterisk_speech

        results["asterisk_speech"] = asterisk_speech.bench_asterisk_speech(
            args.quick, args.asterisk_espeak_run or args.speech_run, args.asterisk_finetune_run)
    if "audio_classification" in parts:
        import audio_classification

        results["audio_classification"] = audio_classification.bench_audio_classification(
            args.quick, args.language_run, args.digits_run)
    if "text_classification" in parts:
        import text_classification

        results["text_classification"] = text_classification.bench_text_classification(
            args.quick, args.bible_genre_run, args.fortunes_run)
    if "explain" in parts:
        import explain

        results["explain"] = explain.bench_explain(args.quick)
    if "anomaly_detection" in parts:
        import anomaly_detection

        results["anomaly_detection"] = anomaly_detection.bench_anomaly_detection()
    if "tune" in parts:
        import tune

        results["tune"] = tune.bench_tune()
    if "decoding" in parts:
        import decoding

        run_dir = args.translation_run or (results.get("translation") or {}).get("run")
        if not run_dir or not os.path.isfile(os.path.join(run_dir, "model.keras")):
            # an under-trained model decodes longer (slower) sentences than the finished one: the harder case
            run_dir, _, _ = segmentation.toolkit_train(
                "recipes/translation/bible_en_es.yaml", os.path.join(WORK, "decoding"), "train.epochs=2",
                "data.limit.validation=256", "data.limit.test=64", "export.formats=[]")
        results["decoding"] = decoding.bench_decoding(run_dir, 128 if args.quick else None)
        print(decoding.summary(results["decoding"]))
    if "throughput" in parts:
        import throughput

        results["throughput"] = throughput.bench_throughput(quick=args.quick)
        print(throughput.table(results["throughput"]))
    if "precision" in parts:
        import precision

        results["precision"] = precision.bench_precision(quick=args.quick)
        print(precision.table(results["precision"]))
    results["seconds"] = round(time.time() - started, 1)
    with open(previous, "w") as f:
        json.dump(results, f, indent=2)
    if "training" in results and "inference" in results:
        print(table(results))
    print(segmentation.table(results))
    import recommendation
    import speech
    import translation

    print(translation.table(results))
    print(speech.table(results))
    print(recommendation.table(results))
    import deployment

    print(deployment.table(results))
    import detection

    print(detection.table(results))
    import asterisk_speech

    print(asterisk_speech.table(results))
    import audio_classification

    print(audio_classification.table(results))
    import text_classification

    print(text_classification.table(results))
    import explain

    print(explain.table(results))
    import anomaly_detection

    print(anomaly_detection.table(results))
    import tune

    print(tune.table(results.get("tune", {})))


def table(results):
    t, i, s = results["training"], results["inference"], results["startup"]
    ok = {True: "ok", False: "MISSED"}
    lines = [
        f"machine: {results['machine']}",
        "",
        f"training images/s   plain Keras {t['plain_keras_images_per_s']:>8}   toolkit {t['toolkit_images_per_s']:>8}   "
        f"ratio {t['ratio']:.3f} (target >= 0.97) {ok[t['passed']]}",
        "",
        f"{'inference (ms)':<22}{'batch 1 bare':>14}{'toolkit':>10}{'overhead':>10}{'batch 32 bare':>15}{'toolkit':>10}{'overhead':>10}",
    ]
    for runtime in ("keras", "saved_model", "onnx"):
        one, many = i["batch_1"][runtime], i["batch_32"][runtime]
        lines.append(f"{runtime:<22}{one['bare_ms']:>14.2f}{one['toolkit_ms']:>10.2f}{one['overhead']:>10.1%}"
                     f"{many['bare_ms']:>15.2f}{many['toolkit_ms']:>10.2f}{many['overhead']:>10.1%}")
    lines += [
        f"{'keras model.predict':<22}{i['batch_1']['keras']['model_predict_ms']:>14.2f}{'':>20}"
        f"{i['batch_32']['keras']['model_predict_ms']:>15.2f}",
        f"targets: toolkit overhead < 10% {ok[i['overhead_passed']]}; ONNX batch 1 <= 2 ms {ok[i['onnx_batch_1_passed']]}",
        "",
        f"toolkit --help {s['toolkit_help_s']:.3f} s (< 0.3) {ok[s['help_passed']]};  "
        f"toolkit predict x.onnx {s['predict_onnx_end_to_end_s']:.3f} s (< 1.0) {ok[s['predict_passed']]};  "
        f"import tensorflow {s['import_tensorflow_s']:.3f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
