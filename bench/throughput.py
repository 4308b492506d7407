"""Training throughput of `toolkit train` against plain Keras scripts, task by task (issue 26).

For each task, `toolkit train <recipe>` on a subset (`data.limit.*`, `train.epochs=N`, no exports, quiet) and
a plain keras-io-style script that trains the same model on the same data with the same batch size
(bench/plain/<task>.py: `tf.data` + `compile` + `fit`, nothing else; each script's docstring says what is the
same and what differs) run alternately in the same session, `repeats` times each. Throughput is units per
second over epochs 2..N (epoch 1 includes tracing): images, target tokens, utterances or ratings.

Two figures per side:
- `epoch_seconds`: the epochs' own time (steps and validation), on the toolkit side the `epoch_seconds` column
  of the run's history.csv, written by its first callback, `EpochTimer` (the figure bench/run.py's Fashion-MNIST
  training benchmark reads);
- `wall`: epoch end to epoch end, which on the toolkit side also holds the end-of-epoch callbacks that run after
  `EpochTimer` (best checkpoint, atomic backup, CSV log, run state, TensorBoard), read from the wall times of
  the run's TensorBoard epoch events; on the plain side, the clock at each `on_epoch_end`.
Each figure is the median over the repeats; `ratio` = toolkit / plain (target >= 0.97), `passed` asks both;
`toolkit_after_epoch_seconds` is the toolkit's median time per epoch between the two (wall - epoch_seconds).
The toolkit run's parameter count and training example count (metrics.json) are checked against the plain
script's: a mismatch means the two sides did not train the same thing, and is reported in `mismatches`.

Usage: python bench/throughput.py [--quick] [--task NAME ...] [--repeats N]
    (quick: smaller subsets and one repeat, a smoke test; tasks: segmentation, translation, speech_recognition,
    recommendation, image_classification). Writes bench/_work/throughput/results.json and prints a table.
"""

import argparse
import csv
import glob
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAIN = os.path.join(HERE, "plain")
WORK = os.path.join(HERE, "_work", "throughput")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
TARGET = 0.97
TIMEOUT = 1200  # seconds per run: a hung run fails the task instead of the whole benchmark


def _image_overrides(limit):
    sys.path.insert(0, PLAIN)
    try:
        import image_classification
    finally:
        sys.path.remove(PLAIN)
    image_classification.make_jpeg_folder()
    return image_classification.toolkit_overrides(limit) + ["data.limit.test=16"]


def _validation(limit):
    return f"data.limit.validation={max(limit // 9, 1)}"


# Per task: the recipe, its toolkit overrides for a training subset of `limit` examples (the same the plain script
# applies; the test-split limits and decoding settings only shorten the evaluation after training, outside the
# measured epochs), and (limit, epochs) in full and quick mode. Full sizes keep a task's 3 x 2 runs near 4-5 min
# on 2 idle CPU cores (each run pays 10-15 s of start-up and, in translation, speech and image classification,
# 30-45 s of tracing in epoch 1); quick runs measure two epochs once and are noisy.
TASKS = {
    "segmentation": {
        "recipe": "recipes/segmentation/nuclei_unet.yaml",
        "overrides": lambda limit: [f"data.limit.train={limit}"],  # 8 validation tiles: all
        "full": (493, 3), "quick": (128, 3),  # 493: every training tile
    },
    "translation": {
        "recipe": "recipes/translation/bible_en_es.yaml",
        "overrides": lambda limit: [f"data.limit.train={limit}", _validation(limit), "data.limit.test=8",
                                    "decoding.method=greedy", "decoding.max_length=16"],
        "full": (640, 3), "quick": (200, 3),
    },
    "speech_recognition": {
        "recipe": "recipes/speech_recognition/espeak_ctc.yaml",
        "overrides": lambda limit: [f"data.limit.train={limit}", _validation(limit), "data.limit.test=8",
                                    "extra_tests=[]", "decoding.method=greedy"],
        "full": (192, 3), "quick": (64, 3),
    },
    "recommendation": {
        "recipe": "recipes/recommendation/movielens_rating.yaml",
        "overrides": lambda limit: [f"data.limit.train={limit}", _validation(limit), "evaluation.baselines=false"],
        "full": (76000, 5), "quick": (76000, 3),  # 76,000: all of fold 0's training ratings
    },
    "image_classification": {
        "recipe": "recipes/image_classification/image_folder.yaml",
        "overrides": _image_overrides,
        "full": (192, 3), "quick": (64, 3),
    },
}


def _run(command):
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def _rate(units, seconds):
    """Units per second over epochs 2..N from the per-epoch seconds."""
    return units * (len(seconds) - 1) / sum(seconds[1:])


def _rate_between(units, ends):
    """Units per second over epochs 2..N from the clock at each epoch's end."""
    return units * (len(ends) - 1) / (ends[-1] - ends[0])


def tensorboard_epoch_ends(log_dir):
    """Wall time of each epoch's `epoch_loss` event in a run's TensorBoard train log, by epoch (the Keras
    TensorBoard callback writes it in its `on_epoch_end`, after the toolkit's other epoch-end callbacks)."""
    from tensorboard.compat.proto.event_pb2 import Event

    ends = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "train", "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            if any(value.tag == "epoch_loss" for value in event.summary.value):
                ends[event.step] = event.wall_time
    return [ends[epoch] for epoch in sorted(ends)]


def run_plain(name, limit, epochs):
    result = _run([sys.executable, os.path.join(PLAIN, f"{name}.py"), str(limit), str(epochs)])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_dir_of(spec, out):
    """The run directory `toolkit train` makes for the task's recipe under `output.dir=out`."""
    return os.path.join(out, os.path.splitext(os.path.basename(spec["recipe"]))[0])


def run_toolkit(spec, limit, epochs, out):
    """Trains the recipe with `toolkit train`; returns (epoch seconds, epoch end times, metrics.json)."""
    shutil.rmtree(out, ignore_errors=True)
    _run([sys.executable, "-m", "toolkit", "train", spec["recipe"], *spec["overrides"](limit),
          f"train.epochs={epochs}", "train.verbose=0", "export.formats=[]", f"output.dir={out}"])
    run_dir = run_dir_of(spec, out)
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return seconds, tensorboard_epoch_ends(os.path.join(run_dir, "logs")), metrics


def measure(name, quick=False, repeats=3):
    """One task: plain and toolkit runs alternately, `repeats` times each; returns the task's result dict."""
    spec = TASKS[name]
    limit, epochs = spec["quick" if quick else "full"]
    started = time.time()
    rates = {"plain": [], "toolkit": [], "plain_wall": [], "toolkit_wall": []}
    plain, toolkit_runs, mismatches, gaps, plain_seconds = None, [], [], [], []
    for repeat in range(repeats):
        for kind in ("plain", "toolkit") if repeat % 2 == 0 else ("toolkit", "plain"):
            if kind == "plain":
                plain = run_plain(name, limit, epochs)
                plain_seconds.append(plain["epoch_seconds"])
                rates["plain"].append(_rate(plain["examples"], plain["epoch_seconds"]))
                rates["plain_wall"].append(_rate_between(plain["examples"], plain["epoch_ends"]))
            else:
                toolkit_runs.append(run_toolkit(spec, limit, epochs, os.path.join(WORK, name, f"toolkit_{repeat}")))
    # The units of an epoch (images, target tokens, ...) are the plain script's count: the same data, checked below.
    units = plain["examples"]
    for seconds, ends, metrics in toolkit_runs:
        if len(seconds) != epochs:
            mismatches.append(f"toolkit ran {len(seconds)} epochs, not {epochs}")
        checks = {"parameters": (plain["parameters"], metrics.get("parameters")),
                  "train_examples": (plain["train_examples"], metrics.get("data", {}).get("train", {}).get("examples"))}
        mismatches += [f"{key}: plain {mine}, toolkit {theirs}" for key, (mine, theirs) in checks.items()
                       if mine != theirs]
        rates["toolkit"].append(_rate(units, seconds))
        if len(ends) == epochs:
            rates["toolkit_wall"].append(_rate_between(units, ends))
            gaps.append(statistics.mean((after - before) - own
                                        for before, after, own in zip(ends, ends[1:], seconds[1:])))
        else:
            mismatches.append(f"TensorBoard log has {len(ends)} epoch events, not {epochs}")
    median = {key: statistics.median(values) if values else None for key, values in rates.items()}
    ratio = median["toolkit"] / median["plain"]
    wall_ratio = median["toolkit_wall"] / median["plain_wall"] if median["toolkit_wall"] else None
    return {
        "recipe": spec["recipe"], "unit": plain["unit"], "units_per_epoch": units,
        "train_examples": plain["train_examples"], "parameters": plain["parameters"], "epochs": epochs,
        "repeats": repeats,
        "plain_per_s": round(median["plain"], 1), "toolkit_per_s": round(median["toolkit"], 1),
        "ratio": round(ratio, 3),
        "plain_wall_per_s": round(median["plain_wall"], 1),
        "toolkit_wall_per_s": round(median["toolkit_wall"], 1) if median["toolkit_wall"] else None,
        "wall_ratio": round(wall_ratio, 3) if wall_ratio else None,
        # Seconds per epoch the toolkit spends after its EpochTimer (end-of-epoch callbacks): wall - epoch_seconds.
        "toolkit_after_epoch_seconds": round(statistics.median(gaps), 3) if gaps else None,
        "target_ratio": TARGET,
        "passed": ratio >= TARGET and wall_ratio is not None and wall_ratio >= TARGET and not mismatches,
        "mismatches": sorted(set(mismatches)),
        "all": {key: [round(value, 1) for value in values] for key, values in rates.items()},
        "epoch_seconds": {"plain": [[round(x, 2) for x in run] for run in plain_seconds],
                          "toolkit": [[round(x, 2) for x in run[0]] for run in toolkit_runs]},
        "seconds": round(time.time() - started, 1),
    }


def bench_throughput(quick=False, only=None, repeats=3):
    """Throughput of every task (or `only`: a task name or a list of them), toolkit against plain Keras.

    Args:
        quick: bool. Smaller subsets and a single repeat (a smoke test; `repeats` is then ignored).
        only: None, str or list of str. The tasks to measure (default: all of TASKS).
        repeats: int. Runs of each side per task (alternating); medians are reported.

    Returns:
        {task: result dict (see `measure`), or {"error": message} when a run failed}.
    """
    names = list(TASKS) if only is None else [only] if isinstance(only, str) else list(only)
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    os.makedirs(WORK, exist_ok=True)
    results = {}
    for name in names:
        try:
            results[name] = measure(name, quick, 1 if quick else repeats)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            results[name] = {"error": str(error)[-3000:]}
    return results


def table(results):
    lines = [f"{'task':<21} {'unit':<10} {'plain/s':>9} {'toolkit/s':>9} {'ratio':>6} "
             f"{'wall plain/s':>12} {'wall toolkit/s':>14} {'wall ratio':>10} {'after epoch s':>13}  passed"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"{name:<21} error: {result['error'].splitlines()[0]}")
            continue
        lines.append(
            f"{name:<21} {result['unit']:<10} {result['plain_per_s']:>9} {result['toolkit_per_s']:>9} "
            f"{result['ratio']:>6} {result['plain_wall_per_s']:>12} {str(result['toolkit_wall_per_s']):>14} "
            f"{str(result['wall_ratio']):>10} {str(result['toolkit_after_epoch_seconds']):>13}  {result['passed']}"
            + (f"  MISMATCH: {'; '.join(result['mismatches'])}" if result["mismatches"] else ""))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller subsets, one repeat (a smoke test)")
    parser.add_argument("--task", action="append", choices=list(TASKS), help="only this task (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per task (default 3)")
    args = parser.parse_args()
    save_and_print(bench_throughput(args.quick, args.task, args.repeats), WORK, table)


def save_and_print(results, work, table_of):
    """Writes `results` to WORK/results.json and prints `table_of(results)` (the scripts' command-line ending)."""
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(table_of(results))


if __name__ == "__main__":
    main()
