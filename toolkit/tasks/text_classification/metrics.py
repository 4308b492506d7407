"""Metrics of text classifiers: single-label ones are `toolkit.classification_metrics`; multi-label ones here.

Multi-label: precision, recall and F1 at the model's threshold, micro (over every decision) and macro (the mean
over classes), exact-match (subset) accuracy, and mAP: the mean over classes with a positive test example of
scikit-learn's average precision (area under the precision-recall curve, threshold-free).

Example:

>>> import numpy as np
>>> from toolkit.tasks.text_classification.metrics import multi_label_metrics
>>> scores = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4]])
>>> truth = np.array([[1, 0], [1, 1], [0, 1]])
>>> m = multi_label_metrics(scores, truth, ["a", "b"], threshold=0.5)
>>> round(m["micro_f1"], 3), round(m["subset_accuracy"], 3), round(m["mAP"], 3)
(0.857, 0.667, 1.0)
"""

import numpy as np


def multi_label_metrics(probabilities, targets, class_names, threshold=0.5):
    """Micro/macro precision, recall and F1 at `threshold`, subset accuracy, mAP and per-class figures.

    Args:
        probabilities: float array [n, classes] (sigmoid outputs).
        targets: 0/1 array [n, classes].
        class_names: list of str.
        threshold: float. A class is predicted when its probability is at least this.
    """
    from sklearn.metrics import average_precision_score

    scores = np.asarray(probabilities, np.float64)
    truth = np.asarray(targets) > 0.5
    predicted = scores >= threshold
    true_positive = np.sum(predicted & truth, axis=0).astype(np.float64)
    predicted_count = predicted.sum(axis=0)
    support = truth.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_positive / predicted_count, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    micro_precision = true_positive.sum() / max(predicted_count.sum(), 1)
    micro_recall = true_positive.sum() / max(support.sum(), 1)
    micro_f1 = (2 * micro_precision * micro_recall / (micro_precision + micro_recall)
                if micro_precision + micro_recall else 0.0)
    precisions = {}
    for index, name in enumerate(class_names):
        if support[index]:
            precisions[name] = float(average_precision_score(truth[:, index], scores[:, index]))
    return {
        "examples": int(len(scores)),
        "threshold": float(threshold),
        "subset_accuracy": float(np.mean(np.all(predicted == truth, axis=1))) if len(scores) else 0.0,
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
        "micro_f1": float(micro_f1),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "mAP": float(np.mean(list(precisions.values()))) if precisions else 0.0,
        "per_class": {
            name: {"precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                   "f1": round(float(f1[i]), 6), "average_precision": round(precisions.get(name, 0.0), 6),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "class_names": list(class_names),
    }


def headline(metrics, multi_label):
    """The figures a baseline is compared on: accuracy and macro-F1, or micro/macro F1 and mAP."""
    keys = ("micro_f1", "macro_f1", "mAP", "subset_accuracy") if multi_label else ("accuracy", "macro_f1")
    return {key: metrics[key] for key in keys}
