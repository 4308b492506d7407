"""Mixed precision against float32, task by task, on this machine's CPU (issue 26).

For each task's default model, `toolkit train <recipe> train.precision=P` on the same subset, epochs and seed
for P in float32, mixed_bfloat16 (and mixed_float16 where asked), run one after another in the same session.
Reported per precision: training throughput over epochs 2..N (the `epoch_seconds` column of history.csv, as in
bench/throughput.py; epoch 1 holds tracing), its ratio to float32, and the validation metric the recipe
monitors at the last epoch, beside float32's (the same steps on the same data: a quality check, not the
full recipe's result). A recipe switches to a mixed policy only where the speed-up is at least 1.3x at equal
quality (issue 26); `decision` says which precision each task should ship with by that rule.

The subsets are bench/throughput.py's (the same models and batch sizes as the shipped recipes) plus the
Fashion-MNIST demo recipe on 12,000 training images. mixed_float16 has no native float16 math on this CPU
(AVX-512 has bf16 dot products, not fp16 ones) and measured about 4x slower than float32, so by default it runs
for two tasks only (a convolutional and a Transformer model); `--precisions` chooses.

Usage: python bench/precision.py [--quick] [--task NAME ...] [--precisions float32,mixed_bfloat16,...]
    Writes bench/_work/precision/results.json and prints a table.
"""

import argparse
import csv
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import throughput  # noqa: E402  (bench/throughput.py: the task subsets and the toolkit runner)

WORK = os.path.join(HERE, "_work", "precision")
SPEED_UP = 1.3  # a mixed policy must be this much faster than float32 ...
QUALITY_DROP = 0.01  # ... and lose at most this much (relative) of the monitored validation metric
PRECISIONS = ["float32", "mixed_bfloat16", "mixed_float16"]
FLOAT16_TASKS = ["image_classification_fashion_mnist", "translation"]  # mixed_float16 by default (see above)

TASKS = dict(throughput.TASKS)
TASKS["image_classification_fashion_mnist"] = {
    "recipe": "recipes/image_classification/fashion_mnist.yaml",
    "overrides": lambda limit: [f"data.limit.train={limit}", f"data.limit.validation={limit // 4}",
                                "data.limit.test=64"],
    "full": (12000, 3), "quick": (2000, 2),
}
# The metric each recipe monitors for its best checkpoint (the tasks' default_monitor) and whether higher is better.
MONITOR = {
    "segmentation": ("val_mean_iou", True), "translation": ("val_token_accuracy", True),
    "speech_recognition": ("val_loss", False), "recommendation": ("val_loss", False),
    "image_classification": ("val_accuracy", True), "image_classification_fashion_mnist": ("val_accuracy", True),
}


def run(name, precision, quick=False):
    """One toolkit run of task `name` at `precision`: {per_s, epoch_seconds, monitor value}."""
    spec = dict(TASKS[name])
    limit, epochs = spec["quick" if quick else "full"]
    overrides = spec["overrides"]
    spec["overrides"] = lambda n: overrides(n) + [f"train.precision={precision}"]
    started = time.time()
    seconds, _, metrics = throughput.run_toolkit(spec, limit, epochs, os.path.join(WORK, name, precision))
    with open(os.path.join(throughput.run_dir_of(spec, os.path.join(WORK, name, precision)), "history.csv"),
              newline="") as f:
        last = list(csv.DictReader(f))[-1]
    metric, _ = MONITOR[name]
    examples = metrics["data"]["train"]["examples"]
    measured = seconds[1:] or seconds
    return {"examples_per_s": round(examples * len(measured) / sum(measured), 1),
            "epoch_seconds": [round(s, 2) for s in seconds], "monitor": metric,
            "value": round(float(last[metric]), 4), "run_seconds": round(time.time() - started, 1)}


def decide(name, results):
    """The precision a task should ship with: the fastest mixed policy that is >= SPEED_UP x float32 and loses at
    most QUALITY_DROP (relative) of the monitored metric; float32 otherwise."""
    base = results.get("float32")
    if not base or "error" in base:
        return "float32"
    best = ("float32", 1.0)
    for precision, result in results.items():
        if precision == "float32" or "error" in result:
            continue
        worse = (base["value"] - result["value"]) if MONITOR[name][1] else (result["value"] - base["value"])
        if result["speed_up"] >= SPEED_UP and worse <= QUALITY_DROP * abs(base["value"]) and \
                result["speed_up"] > best[1]:
            best = (precision, result["speed_up"])
    return best[0]


def bench_precision(quick=False, only=None, precisions=None):
    """Every task (or `only`) at each precision; returns {task: {precision: result, ..., "decision": str}}."""
    names = list(TASKS) if not only else [only] if isinstance(only, str) else list(only)
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    results = {}
    for name in names:
        chosen = precisions or [p for p in PRECISIONS if p != "mixed_float16" or name in FLOAT16_TASKS]
        task = {}
        for precision in chosen:
            try:
                task[precision] = run(name, precision, quick)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                task[precision] = {"error": str(error)[-2000:]}
        base = task.get("float32", {})
        for result in task.values():
            if "error" not in result and "examples_per_s" in base:
                result["speed_up"] = round(result["examples_per_s"] / base["examples_per_s"], 3)
        task["decision"] = decide(name, task)
        results[name] = task
    return results


def table(results):
    lines = [f"{'task':<35} {'precision':<15} {'examples/s':>10} {'x float32':>9}  {'monitored metric (last epoch)'}"]
    for name, task in results.items():
        for precision, result in task.items():
            if precision == "decision":
                continue
            if "error" in result:
                lines.append(f"{name:<35} {precision:<15} error: {result['error'].strip().splitlines()[-1]}")
                continue
            lines.append(f"{name:<35} {precision:<15} {result['examples_per_s']:>10} "
                         f"{result.get('speed_up', ''):>9}  {result['monitor']} {result['value']}")
        lines.append(f"{name:<35} ships: {task['decision']}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller subsets (a smoke test)")
    parser.add_argument("--task", action="append", choices=list(TASKS), help="only this task (repeatable)")
    parser.add_argument("--precisions", help=f"comma-separated, from {','.join(PRECISIONS)} "
                                             f"(default: float32 and mixed_bfloat16 everywhere, mixed_float16 for "
                                             f"{' and '.join(FLOAT16_TASKS)})")
    args = parser.parse_args()
    precisions = args.precisions.split(",") if args.precisions else None
    if precisions and not set(precisions) <= set(PRECISIONS):
        parser.error(f"--precisions {args.precisions}: choose from {','.join(PRECISIONS)}")
    throughput.save_and_print(bench_precision(args.quick, args.task, precisions), WORK, table)


if __name__ == "__main__":
    main()
