"""`toolkit benchmark`: latency and throughput of every format of an export, and a serving load test.

`benchmark(path)` loads the run's Keras model and each artifact in its
`export/` (SavedModel, ONNX, TFLite...) in its own runtime and times the same
`predict` a user calls (`toolkit predict`, the Python API: preprocessing,
network and decoding) on the export's held-out samples, at each batch size:
median and 90th percentile latency over `repeats` calls after a warm-up, and
throughput (examples per second at the median).

`load_test(url, name, instances)` sends a fixed number of predict requests to
a running `toolkit serve` from concurrent clients over loopback and reports
throughput and p50/p99 latency.

Example:

>>> from toolkit.benchmark import benchmark, format_table  # doctest: +SKIP
>>> print(format_table(benchmark("saved_models/fashion_mnist")))  # doctest: +SKIP
"""

import json
import math
import os
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request

from toolkit.errors import ModelFileError


def _export_dir(path):
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(os.path.join(path, "recipe.yaml")):
        path = os.path.join(path, "export")
    if not os.path.isdir(os.path.join(path, "samples")):
        raise ModelFileError(f"{path}: not a toolkit export directory (no samples/); give RUN_DIR or RUN_DIR/export")
    return path


def artifacts(export_dir):
    """[(format, path)]: the run's model.keras (when the export sits in its run) and each artifact present."""
    from toolkit.exporters.formats import FORMATS

    found = []
    run_dir = os.path.dirname(export_dir)
    if os.path.isfile(os.path.join(run_dir, "model.keras")):
        found.append(("keras", os.path.join(run_dir, "model.keras")))
    for name, spec in FORMATS.items():
        artifact = os.path.join(export_dir, spec.artifact)
        if os.path.exists(artifact):
            found.append((name, artifact))
    return found


def _times(function, repeats, warmup):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def _percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def benchmark(path, batch_sizes=(1, 32), repeats=10, warmup=2, formats=None, log=None):
    """Times `predict` of each format in a run's export; returns {"task", "samples", "rows": [...]}.

    Args:
        path: str. A run directory or its export directory.
        batch_sizes: tuple of int. Inputs per `predict` call.
        repeats: int. Timed calls per batch size (after `warmup` calls).
        formats: list of str or None. Only these formats ("keras" included).
        log: callable(str) or None. Progress lines.
    """
    from toolkit.exporters.verify import artifact_size
    from toolkit.inference import load

    export_dir = _export_dir(path)
    found = [(name, p) for name, p in artifacts(export_dir) if formats is None or name in formats]
    if not found:
        raise ModelFileError(f"{export_dir}: no model to benchmark" + (f" in formats {formats}" if formats else ""))
    rows, task = [], None
    for name, artifact in found:
        model = load(artifact)
        task = model.metadata["task"]
        samples = model.predictor.load_samples(os.path.join(export_dir, "samples"), model.metadata)
        inputs = model.predictor.predict_inputs(samples)
        row = {"format": name, "runtime": model.runtime, "size_mb": round(artifact_size(artifact) / 1e6, 2)}
        for batch in batch_sizes:
            batch_inputs = (inputs * math.ceil(batch / len(inputs)))[:batch]
            with tempfile.TemporaryDirectory() as output_dir:
                times = _times(lambda m=model, x=batch_inputs, o=output_dir: m.predict(x, output_dir=o), repeats,
                               warmup)
            median = statistics.median(times)
            row[f"batch_{batch}"] = {"median_ms": round(median * 1000, 2),
                                     "p90_ms": round(_percentile(times, 0.9) * 1000, 2),
                                     "per_second": round(batch / median, 1)}
        if log:
            log(f"{name}: " + ", ".join(f"batch {b} {row[f'batch_{b}']['median_ms']} ms" for b in batch_sizes))
        rows.append(row)
    return {"export_dir": export_dir, "task": task, "samples": len(samples), "batch_sizes": list(batch_sizes),
            "repeats": repeats, "rows": rows}


def format_table(result):
    """The benchmark as one text table: a row per format."""
    sizes = result["batch_sizes"]
    header = f"{'format':<16}{'size MB':>9}" + "".join(
        f"{f'batch {b} ms':>14}{'p90':>8}{'per s':>9}" for b in sizes)
    lines = [f"{result['task']} ({result['samples']} held-out samples repeated; median of {result['repeats']} "
             "predict calls)", header]
    for row in result["rows"]:
        cells = "".join(f"{row[f'batch_{b}']['median_ms']:>14.2f}{row[f'batch_{b}']['p90_ms']:>8.2f}"
                        f"{row[f'batch_{b}']['per_second']:>9.1f}" for b in sizes)
        lines.append(f"{row['format']:<16}{row['size_mb']:>9.2f}{cells}")
    return "\n".join(lines)


def load_test(url, name, instances, requests=200, concurrency=8, timeout=120, signature_name=None):
    """Sends `requests` predict requests (each with `instances`, for `signature_name`: default serving_default,
    "toolkit" for the toolkit format) from `concurrency` client threads to a `toolkit serve` at `url`; returns
    throughput and latency percentiles (errors counted, not raised)."""
    request = {"instances": instances} if signature_name is None else {"signature_name": signature_name,
                                                                       "instances": instances}
    body = json.dumps(request).encode("utf-8")
    endpoint = f"{url}/v1/models/{name}:predict"
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(requests))

    def client():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            request = urllib.request.Request(endpoint, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=timeout) as answer:
                    answer.read()
                ok = True
            except (urllib.error.URLError, OSError) as error:
                ok, reason = False, str(error)
            elapsed = time.perf_counter() - start
            with lock:
                (latencies.append(elapsed) if ok else errors.append(reason))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"requests": requests, "concurrency": concurrency, "instances_per_request": len(instances),
            "errors": len(errors), "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(_percentile(latencies, 0.5) * 1000, 1) if latencies else None,
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1) if latencies else None}


__all__ = ["benchmark", "format_table", "load_test", "artifacts"]
