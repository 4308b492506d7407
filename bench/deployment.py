"""Deployment benchmark: every export format of a classifier timed by `toolkit benchmark`, and a bounded load
test of `toolkit serve` over loopback (fixed number of requests from concurrent clients).

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


def load_test(export_dir, requests, concurrency, batch):
    """Starts `toolkit serve` (ONNX and SavedModel), sends `requests` predict requests of `batch` images."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, REPO)
    from toolkit.benchmark import load_test as drive

    samples = os.path.join(export_dir, "samples")
    images = [np.asarray(Image.open(os.path.join(samples, name))).tolist()
              for name in sorted(os.listdir(samples))[:batch]]
    results = {}
    for runtime in ("onnx", "saved_model", "tflite"):
        process = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", export_dir, "--runtime", runtime,
                                    "--port", "0", "--name", "bench"], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            if " on http" not in line:
                raise SystemExit(f"toolkit serve did not start: {line}{process.stderr.read()[-2000:]}")
            url = line.split(" on ")[1].split("/v1/")[0].strip()
            drive(url, "bench", images, requests=min(20, requests), concurrency=concurrency)  # warm-up
            results[runtime] = drive(url, "bench", images, requests=requests, concurrency=concurrency)
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
    serving = {f"batch_{batch}": load_test(os.path.join(run_dir, "export"), 50 if quick else 400, 8, batch)
               for batch in (1, 8)}
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
    lines.append(f"{'toolkit serve load test':<28}{'requests':>9}{'clients':>8}{'req/s':>8}{'p50 ms':>9}"
                 f"{'p99 ms':>9}{'errors':>7}")
    for batch, runtimes in entry["serving"].items():
        for runtime, figures in runtimes.items():
            lines.append(f"{runtime + ', ' + batch.replace('_', ' ') + ' images':<28}{figures['requests']:>9}"
                         f"{figures['concurrency']:>8}{figures['requests_per_s']:>8}{figures['p50_ms']:>9}"
                         f"{figures['p99_ms']:>9}{figures['errors']:>7}")
    return "\n".join(lines)
