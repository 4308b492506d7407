"""Deployment benchmark: every export format of a classifier timed by `toolkit benchmark`, and a load test of
`toolkit serve` over loopback: wrk (a compiled client, one thread, so it leaves the server its cores) with 16
keep-alive connections for 20 s per runtime and request format, beside the bare runtimes' images/s at batch 32.

Uses a finished fashion_mnist run (`--deployment-run DIR`, e.g. saved_models/fashion_mnist after `make demo`)
or trains a short one; the TFLite formats are exported into it first.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
FORMATS = "saved_model,onnx,tflite,tflite_dynamic,tflite_int8"


def _toolkit(*args, timeout=3600):
    result = subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, cwd=REPO,
                            env=ENV, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"toolkit {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def _run_dir(quick, run):
    if run:
        return os.path.abspath(run)
    out = os.path.join(WORK, "deployment")
    _toolkit("train", "recipes/image_classification/fashion_mnist.yaml", f"output.dir={out}", "train.verbose=0",
             *(["data.limit.train=3000", "data.limit.validation=500", "data.limit.test=1000", "train.epochs=2"]
               if quick else []))
    return os.path.join(out, "fashion_mnist")


def _serve(export_dir, runtime, *options):
    """Starts `toolkit serve` on a free port; returns (process, predict URL)."""
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", export_dir, "--runtime", runtime,
                                "--port", "0", "--name", "bench", *options], cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " on http" not in line:
        process.kill()
        raise SystemExit(f"toolkit serve did not start: {line}{process.stderr.read()[-2000:]}")
    return process, line.split(" on ")[1].strip()


def _samples(export_dir, count):
    samples = os.path.join(export_dir, "samples")
    files = [os.path.join(samples, name) for name in sorted(os.listdir(samples))]
    return (files * count)[:count]


def _onnx_pixels(export_dir, files):
    """(ONNX session, its input's name, the images of `files` as the float pixel batch that input takes)."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, REPO)
    from toolkit.inference import load

    session = load(os.path.join(export_dir, "model.onnx")).handle
    spec = session.get_inputs()[0]
    height, width, channels = spec.shape[1:]
    pixels = [np.asarray(Image.open(f).convert("L" if channels == 1 else "RGB").resize((width, height)),
                         np.float32).reshape(height, width, channels) for f in files]
    return session, spec.name, np.stack(pixels)


def request_bodies(export_dir):
    """One-image predict bodies of each format: TF Serving's own for each runtime's serving_default (the
    SavedModel takes encoded image bytes, the ONNX graph float pixels) and the toolkit format (a PNG, both)."""
    import base64

    sample = _samples(export_dir, 1)
    with open(sample[0], "rb") as f:
        png = {"b64": base64.b64encode(f.read()).decode("ascii")}
    pixels = _onnx_pixels(export_dir, sample)[2]
    return {("saved_model", "tf_serving"): {"instances": [png]},
            ("saved_model", "toolkit"): {"signature_name": "toolkit", "instances": [png]},
            ("onnx", "tf_serving"): {"instances": pixels.tolist()},
            ("onnx", "toolkit"): {"signature_name": "toolkit", "instances": [png]}}


def wrk(url, body, seconds, connections=16):
    """wrk (one thread, `connections` keep-alive connections) POSTing `body` for `seconds`, after a 3 s warm-up."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    env = dict(ENV, WRK_BODY=f.name)
    script = os.path.join(HERE, "wrk_post.lua")
    try:
        for duration in (3, seconds):
            result = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script, url],
                                    capture_output=True, text=True, env=env, timeout=duration + 60)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(f.name)
    figures["requests_per_s"] = round(figures["requests"] / figures["seconds"], 1)
    figures["errors"] = figures["non_2xx"] + figures["socket_errors"]
    figures["concurrency"] = connections
    return figures


def bare_images_per_second(export_dir, batch=32, repeats=30):
    """The runtimes alone at `batch` images: the SavedModel's serving_default on the PNG bytes a request sends,
    and the ONNX session on float pixels (what each server does per image, minus HTTP, JSON and batching)."""
    import statistics

    sys.path.insert(0, REPO)
    from toolkit.benchmark import _times
    from toolkit.inference import load

    files = _samples(export_dir, batch)

    def rate(run):
        return round(batch / statistics.median(_times(run, repeats, warmup=1)), 1)

    session, name, pixels = _onnx_pixels(export_dir, files)
    figures = {"onnx": rate(lambda: session.run(None, {name: pixels}))}
    import tensorflow as tf

    signature = load(os.path.join(export_dir, "saved_model")).handle.signatures["serving_default"]
    data = []
    for path in files:
        with open(path, "rb") as f:
            data.append(f.read())
    images = tf.constant(data)
    figures["saved_model"] = rate(lambda: signature(image_bytes=images))
    return figures


def load_test(export_dir, seconds):
    """wrk against `toolkit serve` (SavedModel and ONNX, each request format), beside the bare runtimes' images/s at
    batch 32 in the same run. Without wrk (apt-get install wrk), the Python client of toolkit.benchmark."""
    import shutil

    bodies = request_bodies(export_dir)
    bare = bare_images_per_second(export_dir)
    results = {"bare_images_per_s_batch_32": bare, "client": "wrk" if shutil.which("wrk") else "python", "rows": {}}
    for runtime in ("saved_model", "onnx"):
        process, url = _serve(export_dir, runtime)
        try:
            for kind in ("tf_serving", "toolkit"):
                body = bodies[(runtime, kind)]
                if results["client"] == "wrk":
                    figures = wrk(url, body, seconds)
                else:
                    from toolkit.benchmark import load_test as drive

                    base = url.split("/v1/")[0]
                    signature = body.get("signature_name")
                    drive(base, "bench", body["instances"], requests=50, concurrency=16, signature_name=signature)
                    figures = drive(base, "bench", body["instances"], requests=seconds * 50, concurrency=16,
                                    signature_name=signature)
                figures["share_of_bare"] = round(figures["requests_per_s"] / bare[runtime], 3)
                results["rows"][f"{runtime}, {kind}"] = figures
        finally:
            process.terminate()
            process.wait(timeout=60)
    return results


def bench_deployment(quick, run=None):
    run_dir = _run_dir(quick, run)
    _toolkit("export", run_dir, "--format", FORMATS)
    with open(os.path.join(run_dir, "export", "verify.json")) as f:
        verify = json.load(f)
    started = time.time()
    figures = json.loads(_toolkit("benchmark", run_dir, "--batch-sizes", "1,32", "--repeats",
                                  "5" if quick else "20", "--json"))
    serving = load_test(os.path.join(run_dir, "export"), 10 if quick else 20)
    return {"run": run_dir, "benchmark": figures, "serving": serving, "quality": verify.get("quality"),
            "sizes_mb": {name: round(entry["size_bytes"] / 1e6, 2) for name, entry in verify["formats"].items()},
            "seconds": round(time.time() - started, 1)}


def table(results):
    entry = results.get("deployment")
    if not entry:
        return ""
    sys.path.insert(0, REPO)
    from toolkit.benchmark import format_table

    lines = [format_table(entry["benchmark"]), ""]
    quality = entry.get("quality")
    if quality:
        lines.append(f"test-split {quality['metric']} ({quality['examples']} examples): Keras {quality['keras']:.4f}; "
                     + "; ".join(f"{name} {v['value']:.4f} ({v['delta']:+.4f})"
                                 for name, v in quality["formats"].items()))
    serving = entry["serving"]
    bare = serving["bare_images_per_s_batch_32"]
    lines.append(f"toolkit serve load test ({serving['client']}, 16 connections, one image per request, loopback); "
                 f"bare runtimes at batch 32: SavedModel {bare['saved_model']} img/s, ONNX {bare['onnx']} img/s")
    lines.append(f"{'runtime, request format':<28}{'requests':>9}{'req/s':>8}{'of bare':>8}{'p50 ms':>9}{'p99 ms':>9}"
                 f"{'errors':>7}")
    for row, figures in serving["rows"].items():
        lines.append(f"{row:<28}{figures['requests']:>9}{figures['requests_per_s']:>8}"
                     f"{figures['share_of_bare']:>8.0%}{figures['p50_ms']:>9.1f}{figures['p99_ms']:>9.1f}"
                     f"{figures['errors']:>7}")
    return "\n".join(lines)
