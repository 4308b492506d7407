"""Plots written into run directories (PNG, matplotlib Agg backend)."""

import csv
import os

import numpy as np

from toolkit.atomic import atomic_path


def _pyplot():
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_history(path):
    """Reads history.csv into {column: [float, ...]} (empty dict if missing)."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_history(history_csv, path, phase_boundaries=()):
    """Plots each metric and its val_ twin per epoch, one panel per metric.

    Args:
        history_csv: str. The run's history.csv.
        path: str. PNG to write.
        phase_boundaries: iterable of int. Epochs where a new training phase
            (e.g. fine-tuning) starts; drawn as dashed lines.
    """
    history = read_history(history_csv)
    if not history or "epoch" not in history:
        return False
    plt = _pyplot()
    epochs = np.asarray(history["epoch"]) + 1
    names = [k for k in history if k not in ("epoch", "learning_rate", "epoch_seconds") and not k.startswith("val_")]
    figure, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        axis.plot(epochs, history[name], marker="o", label="train")
        if "val_" + name in history:
            axis.plot(epochs, history["val_" + name], marker="o", label="validation")
        for boundary in phase_boundaries:
            axis.axvline(boundary + 0.5, linestyle="--", color="gray", linewidth=1)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return True


def plot_confusion_matrix(matrix, class_names, path):
    """Plots a row-normalised confusion matrix with counts."""
    plt = _pyplot()
    count = len(class_names)
    size = max(4.0, 0.55 * count + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, np.maximum(totals, 1))
    axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    if count <= 30:
        for i in range(count):
            for j in range(count):
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                          color="white" if normalised[i, j] > 0.5 else "black")
        axis.set_xticks(range(count), class_names, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(count), class_names, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("confusion matrix (test)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def plot_mask_grid(rows, colours, class_names, path):
    """One row per test image: the image, its true mask and the predicted mask, masks already coloured.

    Args:
        rows: list of (image float32 (H, W, C) 0..255, true mask (H, W, 3) uint8, predicted mask (H, W, 3)).
        colours: list of RGB per class.
        class_names: list of str (legend).
        path: str. PNG to write.
    """
    plt = _pyplot()
    count = max(1, len(rows))
    legend_rows = -(-len(class_names) // 6)
    height = 2.4 * count + 0.3 * legend_rows + 0.2
    figure, axes = plt.subplots(count, 3, figsize=(7.5, height), squeeze=False)
    for row, (image, truth, predicted) in zip(axes, rows):
        shown = np.clip(image, 0, 255).astype(np.uint8)
        row[0].imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray")
        row[1].imshow(truth)
        row[2].imshow(predicted)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, title in zip(axes[0], ("test image", "ground truth", "prediction")):
        axis.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(c) / 255.0) for c in colours]
    figure.legend(handles, class_names, loc="lower center", ncol=min(6, len(class_names)), fontsize=8)
    figure.tight_layout(rect=(0, (0.3 * legend_rows + 0.2) / height, 1, 1))
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)


class Picture:
    """A PNG file that a notebook shows inline (`_repr_png_`); `str()` is its path.

    Args:
        path: str. The PNG file.
    """

    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path

    def __str__(self):
        return self.path

    def __repr__(self):
        return f"Picture({self.path!r})"

    def _repr_png_(self):
        with open(self.path, "rb") as f:
            return f.read()
