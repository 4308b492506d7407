"""Anomaly detection for `make bench` (`--only anomaly_detection`): Fashion-MNIST one-vs-rest (each of the ten
classes normal in turn, the shipped recipe through `toolkit train`) beside the isolation-forest and PCA baselines
fitted on the same splits in the same run; the synthetic NAB-style series (event-level detection on held-out
series).

Targets (issue 24): mean AUROC at least 0.92 over the ten splits within 10 minutes in all, above both baselines on
every split; every injected window found with at most one false-alarm window per series.

Run alone: `python bench/anomaly_detection.py` (writes bench/_work/anomaly_detection.json).
"""

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work", "anomaly_detection")
RECIPES = os.path.join(REPO, "recipes", "anomaly_detection")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def train(recipe, name, *overrides):
    """Trains a recipe through the CLI; returns (run dir, wall seconds)."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "toolkit", "train", recipe, f"output.dir={WORK}", f"name={name}",
                    *overrides], check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL)
    return os.path.join(WORK, name), time.time() - started


def metrics_of(run_dir):
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def bench_fashion(classes=range(10)):
    rows, total = [], 0.0
    for index in classes:
        run_dir, seconds = train(os.path.join(RECIPES, "fashion_mnist.yaml"), f"fashion_{index}",
                                 f"data.normal_class={index}", "export.formats=[]")
        total += seconds
        metrics = metrics_of(run_dir)
        test = metrics["test"]
        rows.append({"normal_class": CLASSES[index], "auroc": round(test["auroc"], 4),
                     "isolation_forest": round(test["baselines"]["isolation_forest"]["auroc"], 4),
                     "pca": round(test["baselines"]["pca"]["auroc"], 4), "f1": round(test["f1"], 4),
                     "false_positive_rate": round(test["false_positive_rate"], 4),
                     "train_seconds": metrics["train_seconds"], "wall_seconds": round(seconds, 1)})
        print(f"  {CLASSES[index]:<12} AUROC {rows[-1]['auroc']:.4f}  isolation forest {rows[-1]['isolation_forest']:.4f}"
              f"  PCA {rows[-1]['pca']:.4f}  ({seconds:.0f} s)", flush=True)
    mean = statistics.mean(row["auroc"] for row in rows)
    above = all(row["auroc"] > max(row["isolation_forest"], row["pca"]) for row in rows)
    return {"splits": rows, "mean_auroc": round(mean, 4),
            "mean_isolation_forest": round(statistics.mean(r["isolation_forest"] for r in rows), 4),
            "mean_pca": round(statistics.mean(r["pca"] for r in rows), 4),
            "wall_seconds": round(total, 1), "above_both_baselines_on_every_split": above,
            "target_met": bool(mean >= 0.92 and above and total <= 600)}


def bench_series():
    run_dir, seconds = train(os.path.join(RECIPES, "synthetic_series.yaml"), "synthetic_series")
    metrics = metrics_of(run_dir)
    test = metrics["test"]
    events = test["events"]
    result = {"run": run_dir, "wall_seconds": round(seconds, 1), "train_seconds": metrics["train_seconds"],
              "step_auroc": round(test["auroc"], 4), "step_f1": test["f1"], "events": events,
              "baselines": {name: {"step_auroc": figures["auroc"], "events": figures.get("events")}
                            for name, figures in test["baselines"].items()},
              "target_met": bool(events["missed"] == 0 and events["false_alarms_per_series_max"] <= 1)}
    print(f"  synthetic series: {events['found']}/{events['windows']} windows found, false alarms per series "
          f"{events['false_alarms_per_series_mean']:.2f} (max {events['false_alarms_per_series_max']}), step AUROC "
          f"{result['step_auroc']:.4f}", flush=True)
    return result


def bench_anomaly_detection():
    os.makedirs(WORK, exist_ok=True)
    return {"fashion_mnist": bench_fashion(), "synthetic_series": bench_series()}


def table(results):
    part = results.get("anomaly_detection")
    if not part:
        return ""
    fashion = part["fashion_mnist"]
    lines = ["Anomaly detection, Fashion-MNIST one-vs-rest (test AUROC)",
             f"  {'normal class':<12} {'autoencoder':>11} {'iso forest':>10} {'PCA':>7}"]
    for row in fashion["splits"]:
        lines.append(f"  {row['normal_class']:<12} {row['auroc']:>11.4f} {row['isolation_forest']:>10.4f} "
                     f"{row['pca']:>7.4f}")
    lines.append(f"  {'mean':<12} {fashion['mean_auroc']:>11.4f} {fashion['mean_isolation_forest']:>10.4f} "
                 f"{fashion['mean_pca']:>7.4f}   ({fashion['wall_seconds']:.0f} s in all; target met: "
                 f"{fashion['target_met']})")
    series = part["synthetic_series"]
    events = series["events"]
    lines.append(f"Synthetic series: {events['found']}/{events['windows']} windows found, "
                 f"{events['false_alarms_per_series_mean']:.2f} false alarms per series (max "
                 f"{events['false_alarms_per_series_max']}); target met: {series['target_met']}")
    return "\n".join(lines)


if __name__ == "__main__":
    results = {"anomaly_detection": bench_anomaly_detection()}
    with open(os.path.join(WORK, "anomaly_detection.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(table(results))
