"""Segmentation baselines for `make bench`, each against a reference trained
or computed in the same run:

- nuclei: the nuclei_unet recipe against Otsu thresholding (scikit-image) on
  the same test tiles (threshold per tile, and one threshold for the whole
  test region); the recipe must beat the better of the two on foreground IoU.
- fashion scenes: the U-Net recipe with the backbone pretrained by the
  fashion_mnist classification recipe (`run:`) against the same recipe from
  random initialisation, same epochs; pretrained must win, target mIoU >= 0.80.
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


def toolkit_train(recipe, output, *overrides):
    """Runs `toolkit train` and returns (run dir, wall seconds, metrics)."""
    started = time.time()
    command = [sys.executable, "-m", "toolkit", "train", recipe, f"output.dir={output}", "train.verbose=0",
               *overrides]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV)
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    seconds = time.time() - started
    name = os.path.splitext(os.path.basename(recipe))[0]
    runs = sorted((os.path.join(output, d) for d in os.listdir(output) if d.startswith(name)), key=os.path.getmtime)
    with open(os.path.join(runs[-1], "metrics.json")) as f:
        return runs[-1], seconds, json.load(f)


def otsu_baseline(recipe_path):
    """Foreground IoU of Otsu thresholding on the recipe's test tiles."""
    import numpy as np
    from skimage.filters import threshold_otsu

    from toolkit.config import load_recipe
    from toolkit.tasks import make_task

    task = make_task(load_recipe(recipe_path))
    test = task.data.splits["test"]
    images, masks = test.images[..., 0].astype(np.float64), test.masks.astype(bool)

    def iou(predicted, truth):
        return float((predicted & truth).sum() / max((predicted | truth).sum(), 1))

    per_tile = np.stack([image > threshold_otsu(image) for image in images])
    region = images > threshold_otsu(images)
    return {"per_tile_iou": iou(per_tile, masks), "region_iou": iou(region, masks), "tiles": int(len(images))}


def bench_nuclei(quick=False):
    recipe = os.path.join(REPO, "recipes", "segmentation", "nuclei_unet.yaml")
    output = os.path.join(WORK, "nuclei")
    overrides = ["train.epochs=3"] if quick else []
    run_dir, seconds, metrics = toolkit_train(recipe, output, *overrides)
    otsu = otsu_baseline(recipe)
    best = max(otsu["per_tile_iou"], otsu["region_iou"])
    ours = metrics["test"]["foreground_iou"]
    return {
        "run": run_dir, "seconds": round(seconds, 1), "recipe_foreground_iou": round(ours, 4),
        "recipe_dice": round(metrics["test"]["dice"], 4), "recipe_mean_iou": round(metrics["test"]["mean_iou"], 4),
        "otsu_per_tile_iou": round(otsu["per_tile_iou"], 4), "otsu_region_iou": round(otsu["region_iou"], 4),
        "test_tiles": otsu["tiles"], "margin_over_best_otsu": round(ours - best, 4), "passed": ours > best,
    }


def bench_scenes(quick=False):
    classifier = os.path.join(REPO, "recipes", "image_classification", "fashion_mnist.yaml")
    recipe = os.path.join(REPO, "recipes", "segmentation", "fashion_scenes_unet.yaml")
    output = os.path.join(WORK, "scenes")
    os.makedirs(output, exist_ok=True)
    small = ["train.epochs=1", "data.limit.train=2000"] if quick else []
    pre_run, pre_seconds, pre_metrics = toolkit_train(classifier, output, *small)
    scenes_small = ["train.epochs=1", "data.scenes.count.train=1000", "data.scenes.count.test=200"] if quick else []
    pretrained_run, pretrained_seconds, pretrained = toolkit_train(
        recipe, output, f"model.backbone=run:{pre_run}", *scenes_small)
    random_run, random_seconds, random = toolkit_train(
        recipe, output, "model.backbone=resnet_mini", "model.weights=none", "train.fine_tune.frozen_epochs=0",
        *scenes_small)
    return {
        "classifier_run": pre_run, "classifier_accuracy": round(pre_metrics["test"]["accuracy"], 4),
        "pretrained_mean_iou": round(pretrained["test"]["mean_iou"], 4), "pretrained_seconds": round(pretrained_seconds, 1),
        "random_init_mean_iou": round(random["test"]["mean_iou"], 4), "random_init_seconds": round(random_seconds, 1),
        "pretrained_per_class_iou": {k: v["iou"] for k, v in pretrained["test"]["per_class"].items()},
        "target_mean_iou": 0.80, "target_seconds": 1200,
        "passed": pretrained["test"]["mean_iou"] > random["test"]["mean_iou"]
                  and pretrained["test"]["mean_iou"] >= 0.80 and pretrained_seconds <= 1200,
    }


def table(results):
    lines = []
    n = results.get("nuclei")
    if n:
        lines.append(
            f"nuclei foreground IoU: recipe {n['recipe_foreground_iou']:.3f} (Dice {n['recipe_dice']:.3f}) vs Otsu "
            f"{n['otsu_per_tile_iou']:.3f} per tile / {n['otsu_region_iou']:.3f} whole test region on "
            f"{n['test_tiles']} test tiles: +{n['margin_over_best_otsu']:.3f} {'ok' if n['passed'] else 'MISSED'}"
        )
    s = results.get("scenes")
    if s:
        lines.append(
            f"fashion scenes mIoU: pretrained backbone {s['pretrained_mean_iou']:.3f} ({s['pretrained_seconds']:.0f} s) "
            f"vs random init {s['random_init_mean_iou']:.3f} ({s['random_init_seconds']:.0f} s); target >= 0.80 "
            f"in <= 1200 s and pretrained wins: {'ok' if s['passed'] else 'MISSED'}"
        )
    return "\n".join(lines)
