"""Explanations (`toolkit explain`) for `make bench`: do the maps point at the object that decides the class?

A small classifier (resnet_tiny, random init) is trained on fashion scenes holding one Fashion-MNIST item
(the segmentation source's `compose_scenes`: 64x64 black canvases, the item at a random place, its pixels
labelled by the mask), then on held-out scenes:

- pointing game (Zhang et al. 2016): the share of maps whose peak (`toolkit.explanations.peak`) lies on the
  true item, explaining the predicted class: within the paper's tolerance (15 pixels at 224, i.e. 4 pixels of
  the 64-pixel canvas) of the item's mask pixels, and strictly on them. The random-map baseline is where a
  random peak lands: the share of the canvas within the tolerance of the item (strictly: the item's area share).
  Target: Grad-CAM >= 0.85 (with the tolerance). Grad-CAM++ and, on a subset, integrated gradients and occlusion
  are scored the same way.
- deletion curve: accuracy (against the true class) as the most salient pixels (by the Grad-CAM map) are set
  to black, at 0..100% of the pixels, against a random map; deletion AUC (trapezoid over the fraction removed)
  of both. Target: Grad-CAM's AUC lower than the random map's.

Run alone: .venv/bin/python bench/run.py --only explain (or python bench/explain.py [--quick]).
"""

import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
TOLERANCE = 4  # pixels: 15 / 224 of the 64-pixel canvas
FRACTIONS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)


def scenes(split, count, seed):
    """(uint8 canvases (n, 64, 64, 1), item masks (n, 64, 64) bool, labels (n,)) with one item each."""
    from toolkit.tasks.image.sources import FASHION_MNIST_DIR, _find, read_idx
    from toolkit.tasks.segmentation.sources import compose_scenes

    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte"))
    canvases, masks = compose_scenes(images, labels, count, 64, (1, 1), 10, seed)
    keep = masks.reshape(len(masks), -1).max(axis=1) > 0
    canvases, masks = canvases[keep], masks[keep]
    return canvases, masks > 0, masks.reshape(len(masks), -1).max(axis=1).astype(np.int64) - 1


def bench_explain(quick=False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO)
    import toolkit
    from toolkit.explanations import peak
    from toolkit.tasks.image.sources import FASHION_MNIST_CLASSES

    started = time.time()
    train_count, test_count, subset = (1500, 100, 30) if quick else (6000, 300, 100)
    train_x, _, train_y = scenes("train", train_count, 1)
    test_x, test_masks, test_y = scenes("test", test_count, 2)
    Recipe = toolkit.recipe_class("image_classification")
    recipe = Recipe(task="image_classification", name="explain_scenes",
                    data={"source": "fashion_mnist", "image_size": 64, "channels": 1, "validation_fraction": 0.0},
                    model={"backbone": "resnet_tiny", "weights": "none", "head": {"dropout": 0.0}},
                    train={"epochs": 2 if quick else 6, "batch_size": 64, "verbose": 0,
                           "fine_tune": {"frozen_epochs": 0}, "optimizer": {"learning_rate": 0.003}},
                    export={"formats": ["onnx"], "verify_samples": 2},
                    output={"dir": os.path.join(WORK, "explain")})
    run = toolkit.train(recipe, data={"train": (train_x, train_y), "test": (test_x, test_y),
                                      "class_names": list(FASHION_MNIST_CLASSES)}, log=lambda line: None)
    train_seconds = time.time() - started
    model = toolkit.load(run.path)
    area = float(test_masks.mean())

    near = np.stack([grown(mask, TOLERANCE) for mask in test_masks])

    def pointing(method, count):
        begun = time.time()
        results = toolkit.explain(model, list(test_x[:count]), method=method, steps=16)
        peaks = [peak(result["explanations"][0]["map"]) for result in results]
        maps = np.stack([result["explanations"][0]["map"] for result in results])
        return {"pointing": round(float(np.mean([n[p] for n, p in zip(near, peaks)])), 4),
                "pointing_strict": round(float(np.mean([m[p] for m, p in zip(test_masks, peaks)])), 4),
                "images": count, "seconds_per_image": round((time.time() - begun) / count, 3)}, maps

    methods = {}
    methods["gradcam"], gradcam_maps = pointing("gradcam", len(test_x))
    methods["gradcam++"], _ = pointing("gradcam++", len(test_x))
    methods["integrated_gradients"], _ = pointing("integrated_gradients", min(subset, len(test_x)))
    methods["occlusion"], _ = pointing("occlusion", min(subset, len(test_x)))
    random_maps = np.random.RandomState(0).rand(*gradcam_maps.shape)
    curves = {name: deletion_curve(model.handle, test_x, test_y, maps)
              for name, maps in (("gradcam", gradcam_maps), ("random", random_maps))}
    aucs = {name: round(float(np.trapezoid(curve, FRACTIONS)), 4) for name, curve in curves.items()}
    entry = {
        "test_scenes": int(len(test_x)), "train_scenes": int(len(train_x)),
        "accuracy": round(float(run.metrics["test"]["accuracy"]), 4),
        "layer": _layer(model),
        "methods": methods,
        "random_map_pointing": round(float(near.mean()), 4), "item_area_share": round(area, 4),
        "tolerance_pixels": TOLERANCE,
        "deletion_fractions": list(FRACTIONS),
        "deletion_accuracy": {name: [round(float(v), 4) for v in curve] for name, curve in curves.items()},
        "deletion_auc": aucs,
        "train_seconds": round(train_seconds, 1), "seconds": round(time.time() - started, 1),
    }
    entry["passed"] = {"pointing": methods["gradcam"]["pointing"] >= 0.85,
                       "deletion": aucs["gradcam"] < aucs["random"]}
    return entry


def grown(mask, pixels):
    """The mask grown by `pixels` (Chebyshev distance): where a peak counts as on the item."""
    out = mask.copy()
    height, width = mask.shape
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            shifted = np.zeros_like(mask)
            shifted[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
                mask[max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
            out |= shifted
    return out


def _layer(model):
    from toolkit.explanations import FeatureTap

    tap = FeatureTap(model.handle, model.metadata)
    return f"{tap.layer}/{tap.feature} (stride {tap.stride})"


def deletion_curve(network, images, labels, maps):
    """Accuracy at each of FRACTIONS of the pixels set to black, the most salient first."""
    order = np.argsort(-maps.reshape(len(maps), -1), axis=1, kind="stable")
    pixels = order.shape[1]
    accuracy = []
    for fraction in FRACTIONS:
        batch = images.astype(np.float32).reshape(len(images), pixels, -1).copy()
        removed = order[:, :int(round(fraction * pixels))]
        np.put_along_axis(batch, removed[..., None], 0.0, axis=1)
        batch = batch.reshape(images.shape)
        predicted = np.concatenate([np.argmax(np.asarray(network(batch[i:i + 128], training=False)), axis=-1)
                                    for i in range(0, len(batch), 128)])
        accuracy.append(float(np.mean(predicted == labels)))
    return accuracy


def table(results):
    entry = results.get("explain")
    if not entry:
        return ""
    ok = {True: "ok", False: "MISSED"}
    methods = entry["methods"]
    shown = ", ".join(f"{name} {value['pointing']:.3f} (strict {value['pointing_strict']:.3f}; {value['images']} "
                      f"scenes, {value['seconds_per_image']} s each)" for name, value in methods.items())
    return "\n".join([
        "",
        f"explain (one-item fashion scenes, classifier accuracy {entry['accuracy']:.3f}, Grad-CAM on "
        f"{entry['layer']}): pointing game {shown}; random map {entry['random_map_pointing']:.3f} (strict: the item "
        f"area {entry['item_area_share']:.3f}); tolerance {entry['tolerance_pixels']} px; Grad-CAM >= 0.85 {ok[entry['passed']['pointing']]}",
        f"  deletion AUC Grad-CAM {entry['deletion_auc']['gradcam']:.3f} vs random map "
        f"{entry['deletion_auc']['random']:.3f} (lower is better) {ok[entry['passed']['deletion']]}; "
        f"{entry['seconds']} s in all",
    ])


if __name__ == "__main__":
    import json

    result = {"explain": bench_explain("--quick" in sys.argv)}
    print(json.dumps(result, indent=2))
    print(table(result))
