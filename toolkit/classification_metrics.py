"""Single-label classification metrics shared by the classification tasks (images, audio, ...).

Example:

>>> import numpy as np
>>> from toolkit.classification_metrics import classification_metrics, slice_accuracy
>>> metrics = classification_metrics(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]), ["a", "b"])
>>> round(metrics["accuracy"], 3), metrics["confusion_matrix"]
(0.667, [[1, 0], [1, 1]])
>>> slice_accuracy(np.array([0, 1, 0]), np.array([0, 1, 1]), ["x", "y", "y"])
{'x': {'accuracy': 1.0, 'examples': 1}, 'y': {'accuracy': 0.5, 'examples': 2}}
"""

import numpy as np


def classification_metrics(probabilities, labels, class_names):
    """Accuracy, top-5, loss, per-class precision/recall/F1 and the confusion matrix.

    Args:
        probabilities: float array (N, K).
        labels: int array (N,).
        class_names: list of K str.
    """
    count = len(class_names)
    predicted = np.argmax(probabilities, axis=-1)
    confusion = np.bincount(labels * count + predicted, minlength=count * count).reshape(count, count)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    metrics = {
        "examples": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "loss": float(-np.mean(np.log(picked))),
    }
    if count > 5:
        top5 = np.argsort(-probabilities, axis=-1)[:, :5]
        metrics["top5_accuracy"] = float(np.mean(np.any(top5 == labels[:, None], axis=-1)))
    metrics["macro_precision"] = float(np.mean(precision))
    metrics["macro_recall"] = float(np.mean(recall))
    metrics["macro_f1"] = float(np.mean(f1))
    metrics["per_class"] = {
        name: {
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "f1": round(float(f1[i]), 6),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    metrics["class_names"] = list(class_names)
    metrics["confusion_matrix"] = confusion.tolist()
    return metrics


def slice_accuracy(predicted, labels, groups):
    """{group: {"accuracy", "examples"}} of predictions sliced by a per-example group (speaker, language, ...).

    Args:
        predicted: int array (N,). Predicted class indices.
        labels: int array (N,). True class indices.
        groups: list of N str.
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    table = {}
    for group in sorted(set(groups)):
        chosen = np.asarray([g == group for g in groups])
        table[group] = {"accuracy": round(float(np.mean(predicted[chosen] == labels[chosen])), 6),
                        "examples": int(chosen.sum())}
    return table
