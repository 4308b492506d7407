"""Anomaly scores: threshold calibration, detection and event metrics, classic baselines and plots.

NumPy and scikit-learn only (matplotlib imported inside the plotting functions); no TensorFlow, so the
predictor, the model card and the tests can use it. Everywhere a higher score means more anomalous, and
an example (or a time step) is flagged when its score is strictly above the threshold.

Example:

>>> import numpy as np
>>> from toolkit.tasks.anomaly_detection.scoring import calibrate, detection_metrics, event_metrics
>>> normal = np.arange(100, dtype=float)
>>> calibration = calibrate("quantile", normal, target_false_positive_rate=0.05)
>>> calibration["threshold"], calibration["validation_false_positive_rate"]
(94.0, 0.05)
>>> metrics = detection_metrics([1, 2, 96, 97, 120], [0, 0, 1, 0, 1], calibration["threshold"])
>>> metrics["recall"], round(metrics["false_positive_rate"], 3), round(metrics["auroc"], 3)
(1.0, 0.333, 0.833)
>>> event_metrics([0, 1, 1, 0, 0, 0, 0, 1, 0, 0], [(1, 3), (5, 6)])["missed"]
1
"""

import math
import time
import warnings

import numpy as np

from toolkit.errors import DataError, RecipeError, did_you_mean

THRESHOLD_METHODS = ("quantile", "best_f1")
BASELINES = ("isolation_forest", "pca")


# --------------------------------------------------------------------------- inputs


def _scores(scores, where="scores"):
    """A 1-D float64 array of finite scores, or a one-line DataError."""
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise DataError(f"{where}: no scores were given; score at least one example")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise DataError(f"{where}: {bad} of {array.size} scores are NaN or infinite; the model's outputs or "
                        "the inputs hold non-finite values (check the data's normalisation and the training loss)")
    return array


def _labels(labels, count, where="labels"):
    """A 1-D int array of 0 (normal) / 1 (anomalous) matching `count` scores, or a one-line DataError."""
    array = np.asarray(labels).reshape(-1)
    if array.size != count:
        raise DataError(f"{where}: {array.size} labels for {count} scores; give one 0/1 label per scored example")
    if array.dtype == bool:
        return array.astype(np.int64)
    values = set(np.unique(array).tolist())
    if not values <= {0, 1}:
        shown = ", ".join(repr(v) for v in sorted(values - {0, 1}, key=str)[:3])
        raise DataError(f"{where}: labels must be 0 (normal) or 1 (anomalous), found {shown}; "
                        "map the data's labels to 0/1 first")
    return array.astype(np.int64)


def _rate(rate, field="threshold.target_false_positive_rate"):
    """Checks 0 < rate < 1 (a number, not a bool); returns it as float."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(rate)) or not 0 < float(rate) < 1:
        raise RecipeError(f"{field}: {rate!r} is not a rate between 0 and 1 (exclusive); give the share of normal "
                          "examples you accept to flag, e.g. 0.01 for 1%")
    return float(rate)


def _flag(scores, threshold):
    return scores > threshold


# --------------------------------------------------------------------------- thresholds


def _quantile(normal_scores, rate):
    """(threshold, warning or None): the score of rank n - floor(rate * n), so at most that many are above it."""
    scores = np.sort(_scores(normal_scores, "validation normal scores"))
    count = scores.size
    allowed = int(math.floor(rate * count + 1e-9))
    threshold = float(scores[count - allowed - 1]) if allowed < count else float(scores[0])
    warning = None
    if allowed == 0:
        needed = int(math.ceil(1.0 / rate))
        warning = (f"threshold.target_false_positive_rate {rate:g} needs at least {needed} normal validation "
                   f"scores to be measured and there are {count}; the threshold is the highest normal score "
                   "(no normal validation example flagged): give a larger validation split or a larger rate")
    return threshold, warning


def quantile_threshold(normal_scores, target_false_positive_rate):
    """The threshold that flags at most `target_false_positive_rate` of the normal (validation) scores.

    The threshold is a normal score itself: the one with floor(rate * n) scores strictly above it, so
    `score > threshold` flags exactly that many when the scores are distinct (fewer on ties). With fewer
    than 1 / rate scores nothing may be flagged; the highest score is returned and a warning says so.

    Args:
        normal_scores: float array (N,). Scores of normal validation examples.
        target_false_positive_rate: float in (0, 1).

    Returns:
        float.

    Example:

    >>> quantile_threshold(range(100), 0.05)
    94.0
    >>> int(np.sum(np.arange(100) > quantile_threshold(range(100), 0.05)))
    5
    """
    threshold, warning = _quantile(normal_scores, _rate(target_false_positive_rate))
    if warning:
        warnings.warn(warning, stacklevel=2)
    return threshold


def _strict_threshold(at_least, distinct):
    """Turns 'flag score >= t' (t one of `distinct`, sorted ascending) into a threshold for 'flag score > threshold'.

    The midpoint between t and the next lower distinct score (just below t when t is the lowest).
    """
    index = int(np.searchsorted(distinct, at_least))
    if index == 0:
        return float(np.nextafter(at_least, -np.inf))
    lower = float(distinct[index - 1])
    middle = lower + (float(at_least) - lower) / 2
    return middle if middle < at_least else lower


def best_f1_threshold(scores, labels):
    """The threshold of highest F1 on a labelled (validation) split, exact over all distinct scores.

    Among thresholds of equal F1 the highest (fewest flags) wins; the threshold returned lies midway
    between two consecutive distinct scores, so it separates them for unseen scores too.

    Args:
        scores: float array (N,).
        labels: int array (N,). 0 normal, 1 anomalous; both must occur.

    Returns:
        (threshold float, f1 float).

    Example:

    >>> best_f1_threshold([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1])
    (0.55, 1.0)
    """
    from sklearn.metrics import precision_recall_curve

    scores = _scores(scores)
    labels = _labels(labels, scores.size)
    anomalous = int(labels.sum())
    if anomalous == 0 or anomalous == labels.size:
        present = "normal" if anomalous == 0 else "anomalous"
        raise DataError(f"validation labels: all {labels.size} examples are {present}, so no F1 can be measured; "
                        "the best_f1 threshold needs normal and anomalous validation examples (or use "
                        "threshold.method: quantile)")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = float(np.max(f1))
    index = int(np.flatnonzero(f1 >= best - 1e-12)[-1])  # thresholds ascend: the last is the highest
    threshold = _strict_threshold(float(thresholds[index]), np.unique(scores))
    return threshold, best


def calibrate(method, scores, labels=None, target_false_positive_rate=0.01):
    """Chooses the threshold on the validation split; a JSON-able record for the metadata and model card.

    Args:
        method: "quantile" (from normal scores alone: flag at most `target_false_positive_rate` of them) or
            "best_f1" (highest F1; needs both labels in `labels`).
        scores: float array (N,). Validation scores.
        labels: int array (N,) or None. 0 normal, 1 anomalous; None means every score is normal.
        target_false_positive_rate: float in (0, 1). Used by "quantile".

    Returns:
        {"threshold", "method", "target_false_positive_rate" (None for best_f1), "validation_f1" (None
        without anomalous validation examples), "validation_false_positive_rate", "validation_normal",
        "validation_anomalous", "warning" (str or None)}.

    Example:

    >>> record = calibrate("best_f1", [0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1])
    >>> record["threshold"], record["validation_f1"], record["validation_false_positive_rate"]
    (0.55, 1.0, 0.0)
    """
    if method not in THRESHOLD_METHODS:
        raise RecipeError(f"threshold.method: unknown method {method!r}; give one of "
                          f"{', '.join(THRESHOLD_METHODS)}{did_you_mean(method, THRESHOLD_METHODS)}")
    scores = _scores(scores, "validation scores")
    labels = np.zeros(scores.size, np.int64) if labels is None else _labels(labels, scores.size, "validation labels")
    normal = scores[labels == 0]
    anomalous = int(labels.sum())
    warning = None
    if method == "quantile":
        rate = _rate(target_false_positive_rate)
        if normal.size == 0:
            raise DataError("validation split: no normal examples to calibrate the quantile threshold on; "
                            "give a validation split with normal examples")
        threshold, warning = _quantile(normal, rate)
    else:
        rate = None
        if anomalous == 0:
            raise DataError("threshold.method best_f1: the validation split has no anomalous examples; "
                            "give labelled anomalies in the validation split or use threshold.method: quantile")
        threshold, _ = best_f1_threshold(scores, labels)
    flags = _flag(scores, threshold)
    f1 = None
    if anomalous and normal.size:
        f1 = detection_metrics(scores, labels, threshold)["f1"]
    return {
        "threshold": float(threshold),
        "method": method,
        "target_false_positive_rate": rate,
        "validation_f1": f1,
        "validation_false_positive_rate": float(np.mean(flags[labels == 0])) if normal.size else None,
        "validation_normal": int(normal.size),
        "validation_anomalous": anomalous,
        "warning": warning,
    }


# --------------------------------------------------------------------------- metrics


def detection_metrics(scores, labels, threshold):
    """AUROC, average precision, and precision / recall / F1 / false-positive rate at a threshold.

    AUROC and average precision (scikit-learn) do not depend on the threshold and are None (not NaN)
    when a class is missing. Precision is 0.0 when nothing is flagged; recall and F1 are None without
    anomalous examples, the false-positive rate None without normal ones.

    Args:
        scores: float array (N,).
        labels: int array (N,). 0 normal, 1 anomalous.
        threshold: float. Flag = score > threshold.

    Returns:
        dict of float / int / None, JSON-able.

    Example:

    >>> m = detection_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.3)
    >>> m["precision"], m["recall"], m["tp"], m["fp"], m["auroc"]
    (0.6666666666666666, 1.0, 2, 1, 0.75)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = _scores(scores)
    labels = _labels(labels, scores.size)
    threshold = float(threshold)
    flags = _flag(scores, threshold)
    tp = int(np.sum(flags & (labels == 1)))
    fp = int(np.sum(flags & (labels == 0)))
    fn = int(np.sum(~flags & (labels == 1)))
    tn = int(np.sum(~flags & (labels == 0)))
    normal, anomalous = tn + fp, tp + fn
    both = normal > 0 and anomalous > 0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / anomalous if anomalous else None
    f1 = None
    if recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "auroc": float(roc_auc_score(labels, scores)) if both else None,
        "average_precision": float(average_precision_score(labels, scores)) if both else None,
        "threshold": threshold,
        "precision": float(precision),
        "recall": None if recall is None else float(recall),
        "f1": None if f1 is None else float(f1),
        "false_positive_rate": fp / normal if normal else None,
        "flagged": tp + fp,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "normal": normal, "anomalous": anomalous, "examples": int(scores.size),
    }


# --------------------------------------------------------------------------- events (time series)


def flags_to_runs(flags):
    """The maximal runs of flagged steps as [(start, end), ...], end exclusive.

    Example:

    >>> flags_to_runs([0, 1, 1, 0, 1, 0, 0, 1])
    [(1, 3), (4, 5), (7, 8)]
    """
    flags = np.asarray(flags).reshape(-1).astype(bool)
    if flags.size == 0:
        return []
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def _windows(windows, length):
    """[(start, end)] as ints, clipped to [0, length); a one-line DataError on an empty or outside window."""
    result = []
    for window in [] if windows is None else list(windows):
        try:
            start, end = (int(v) for v in window)
        except (TypeError, ValueError):
            raise DataError(f"labelled windows: {window!r} is not a (start, end) pair of step indices; "
                            "give windows as (start, end) with end exclusive") from None
        if end <= start:
            raise DataError(f"labelled windows: window ({start}, {end}) is empty (end is exclusive and must be "
                            "greater than start); fix the labels")
        if start >= length or end <= 0:
            raise DataError(f"labelled windows: window ({start}, {end}) lies outside the series of {length} steps; "
                            "fix the labels or the series they belong to")
        result.append((max(start, 0), min(end, length)))
    return result


def event_metrics(flags, windows, length=None, tolerance=0):
    """Labelled windows found and missed, and false-alarm runs, in one series.

    A window (start, end) (end exclusive) is found when a flagged step lies in
    [start - tolerance, end + tolerance); a false alarm is a maximal run of flagged steps that touches
    no widened window.

    Args:
        flags: 0/1 array (T,). Per-step flags of one series.
        windows: list of (start, end). The labelled anomalous windows (clipped to the series).
        length: int or None. The series length (default len(flags)); must match the flags.
        tolerance: int >= 0. Steps by which each window is widened on both sides.

    Returns:
        {"steps", "flagged_steps", "windows", "found", "missed", "runs", "false_alarms",
        "found_windows", "missed_windows", "false_alarm_runs"} (lists of [start, end]).

    Example:

    >>> m = event_metrics([0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0], [(3, 5), (6, 8)], tolerance=1)
    >>> m["found"], m["missed"], m["false_alarms"]
    (2, 0, 0)
    >>> event_metrics([0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0], [(3, 5), (6, 8)])["false_alarm_runs"]
    [[2, 3], [8, 10]]
    """
    flags = np.asarray(flags).reshape(-1).astype(bool)
    length = flags.size if length is None else int(length)
    if flags.size != length:
        raise DataError(f"event metrics: {flags.size} per-step flags for a series of {length} steps; "
                        "give one flag per step")
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 0:
        raise RecipeError(f"tolerance: {tolerance!r} is not a whole number of steps >= 0; give e.g. 0 or 10")
    tolerance = int(tolerance)
    labelled = _windows(windows, length)
    widened = [(max(0, s - tolerance), min(length, e + tolerance)) for s, e in labelled]
    found, missed = [], []
    for window, (s, e) in zip(labelled, widened):
        (found if flags[s:e].any() else missed).append([window[0], window[1]])
    covered = np.zeros(length, bool)
    for s, e in widened:
        covered[s:e] = True
    runs = flags_to_runs(flags)
    alarms = [[s, e] for s, e in runs if not covered[s:e].any()]
    return {
        "steps": length,
        "flagged_steps": int(flags.sum()),
        "windows": len(labelled),
        "found": len(found),
        "missed": len(missed),
        "runs": len(runs),
        "false_alarms": len(alarms),
        "found_windows": found,
        "missed_windows": missed,
        "false_alarm_runs": alarms,
    }


def aggregate_events(per_series_list):
    """Totals of `event_metrics` over several series.

    Returns:
        {"series", "windows", "found", "missed", "runs", "false_alarms", "window_recall" (found / windows,
        None without windows), "alarm_precision" (share of flagged runs touching a labelled window, None
        without runs), "false_alarms_per_series_mean", "false_alarms_per_series_max"}.

    Example:

    >>> a = event_metrics([0, 1, 0, 0, 1], [(1, 2)])
    >>> b = event_metrics([0, 0, 0, 0, 0], [(2, 4)])
    >>> t = aggregate_events([a, b])
    >>> t["window_recall"], t["false_alarms_per_series_mean"], t["false_alarms_per_series_max"]
    (0.5, 0.5, 1)
    """
    items = list(per_series_list)
    total = {key: int(sum(item[key] for item in items)) for key in ("windows", "found", "missed", "runs", "false_alarms")}
    alarms = [int(item["false_alarms"]) for item in items]
    return {
        "series": len(items),
        **total,
        "window_recall": total["found"] / total["windows"] if total["windows"] else None,
        "alarm_precision": (total["runs"] - total["false_alarms"]) / total["runs"] if total["runs"] else None,
        "false_alarms_per_series_mean": float(np.mean(alarms)) if alarms else None,
        "false_alarms_per_series_max": max(alarms) if alarms else None,
    }


# --------------------------------------------------------------------------- baselines


def _features(array, where):
    array = np.asarray(array)
    if array.ndim == 0 or array.shape[0] == 0:
        raise DataError(f"{where}: no examples for the baseline; give at least one example")
    flat = array.reshape(array.shape[0], -1).astype(np.float32)
    if not np.all(np.isfinite(flat)):
        raise DataError(f"{where}: the features hold NaN or infinite values; clean or normalise the data first")
    return flat


def _same_features(train, flat, where):
    expected = int(np.prod(np.asarray(train).shape[1:]))
    if flat.shape[1] != expected:
        raise DataError(f"{where}: {flat.shape[1]} features per example, the training data has {expected}; "
                        "give every split the same example shape")


def _check_method(method):
    if method not in BASELINES:
        raise RecipeError(f"baselines: unknown baseline {method!r}; give one of {', '.join(BASELINES)}"
                          f"{did_you_mean(method, BASELINES)}")


def _components(components, train):
    """The PCA size: an int, or the fewest components keeping a share of the variance (float in (0, 1))."""
    count, features = train.shape
    limit = max(1, min(count - 1, features))
    if isinstance(components, bool) or not isinstance(components, (int, float, np.integer, np.floating)) \
            or components <= 0 or (isinstance(components, (float, np.floating)) and components >= 1):
        raise RecipeError(f"baselines.pca_components: {components!r} is neither a number of components (an int "
                          ">= 1) nor a share of variance to keep (a float between 0 and 1); give e.g. 0.9 or 32")
    return components, limit


def _fit_baseline(method, train, seed=0, components=0.9):
    """Fits a baseline on flattened normal training features; returns a function features -> scores."""
    _check_method(method)
    train = _features(train, "baseline training data")
    if method == "isolation_forest":
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=100, max_samples=min(256, train.shape[0]), random_state=seed, n_jobs=1)
        forest.fit(train)
        return lambda x: -forest.score_samples(x).astype(np.float64), {"trees": 100}
    from sklearn.decomposition import PCA

    if train.shape[0] < 2:
        raise DataError(f"baseline training data: {train.shape[0]} example; the PCA baseline needs at least 2 "
                        "normal training examples")
    wanted, limit = _components(components, train)
    if isinstance(wanted, (int, np.integer)):
        wanted = int(min(wanted, limit))
    if train.shape[1] <= 2048:
        # exact and fastest for few features (28x28 images: one 784x784 covariance): the eigenvectors of the
        # covariance matrix; a float keeps the fewest components reaching that share of the variance
        pca = PCA(n_components=wanted, svd_solver="covariance_eigh").fit(train)
        size = int(pca.n_components_)
    elif isinstance(wanted, int):
        pca = PCA(n_components=wanted, svd_solver="randomized", random_state=seed).fit(train)
        size = wanted
    else:
        # randomized SVD up to 256 components; keep the fewest reaching the wanted variance share
        pca = PCA(n_components=min(256, limit), svd_solver="randomized", random_state=seed).fit(train)
        cumulative = np.cumsum(pca.explained_variance_ratio_)
        size = int(min(np.searchsorted(cumulative, float(wanted) - 1e-9) + 1, cumulative.size))
    basis = pca.components_[:size].astype(np.float32)
    mean = pca.mean_.astype(np.float32)
    kept = float(np.sum(pca.explained_variance_ratio_[:size]))

    def score(x):
        centred = x - mean
        residual = centred - (centred @ basis.T) @ basis
        return np.mean(np.square(residual, dtype=np.float64), axis=1)

    return score, {"components": size, "variance_kept": round(kept, 4)}


def baseline_scores(method, train, test, seed=0, components=0.9):
    """Anomaly scores of a classic baseline fitted on (normal) training examples.

    "isolation_forest": scikit-learn's IsolationForest (100 trees, 256 samples each), score =
    -score_samples. "pca": the mean squared reconstruction error from the principal components keeping
    `components` of the variance (a float) or that many components (an int): exact (covariance
    eigenvectors) up to 2,048 features, randomized SVD (at most 256 components for a float) above.

    Args:
        method: "isolation_forest" or "pca".
        train: array (N, ...). Normal training examples, flattened to (N, features).
        test: array (M, ...). Examples to score, same feature shape.
        seed: int.
        components: float in (0, 1) or int >= 1. PCA only.

    Returns:
        float64 array (M,).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(size=(200, 5))
    >>> scores = baseline_scores("pca", normal, np.vstack([normal[:3], normal[:3] + 6]), components=2)
    >>> bool(scores[3:].min() > scores[:3].max())
    True
    """
    test = _features(test, "baseline test data")
    _same_features(train, test, "baseline test data")
    scorer, _ = _fit_baseline(method, train, seed, components)
    return scorer(test)


def run_baselines(train, validation, test, test_labels, methods=BASELINES, validation_labels=None,
                  threshold_method="quantile", target_false_positive_rate=0.01, seed=0, components=0.9):
    """Each baseline fitted on `train`, its threshold calibrated on `validation`, evaluated on `test`.

    Args:
        train: array (N, ...). Normal training examples.
        validation: array (V, ...). Validation examples (all normal unless `validation_labels` says).
        test: array (M, ...).
        test_labels: int array (M,). 0 normal, 1 anomalous.
        methods: iterable of baseline names.
        validation_labels: int array (V,) or None.
        threshold_method, target_false_positive_rate: as in `calibrate`.
        seed: int.
        components: PCA size, as in `baseline_scores`.

    Returns:
        {method: {"metrics": detection_metrics on test, "calibration": calibrate's record, "fit_seconds",
        "score_seconds", plus "components" and "variance_kept" for PCA}}.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> train, validation = rng.normal(size=(300, 4)), rng.normal(size=(100, 4))
    >>> test = np.vstack([rng.normal(size=(50, 4)), rng.normal(size=(10, 4)) + 5])
    >>> results = run_baselines(train, validation, test, [0] * 50 + [1] * 10, methods=["isolation_forest"])
    >>> results["isolation_forest"]["metrics"]["auroc"]
    1.0
    """
    methods = list(methods)
    for method in methods:
        _check_method(method)
    validation_flat = _features(validation, "baseline validation data")
    test_flat = _features(test, "baseline test data")
    _same_features(train, validation_flat, "baseline validation data")
    _same_features(train, test_flat, "baseline test data")
    results = {}
    for method in methods:
        started = time.perf_counter()
        scorer, details = _fit_baseline(method, train, seed, components)
        fitted = time.perf_counter()
        validation_scores, test_scores = scorer(validation_flat), scorer(test_flat)
        scored = time.perf_counter()
        calibration = calibrate(threshold_method, validation_scores, validation_labels, target_false_positive_rate)
        results[method] = {
            "metrics": detection_metrics(test_scores, test_labels, calibration["threshold"]),
            "calibration": calibration,
            "fit_seconds": round(fitted - started, 3),
            "score_seconds": round(scored - fitted, 3),
            **details,
        }
    return results


# --------------------------------------------------------------------------- plots


def _save(figure, plt, path, dpi=100):
    from toolkit.atomic import atomic_path

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    plt.close(figure)


def plot_score_histogram(scores, labels, threshold, path, title=None, log_counts=False, bins=50):
    """Histograms of normal and anomalous scores on shared bins, with the threshold as a vertical line.

    Args:
        scores: float array (N,).
        labels: int array (N,) or None (all drawn as one histogram).
        threshold: float or None.
        path: str. PNG to write.
        title: str or None.
        log_counts: bool. Log-scaled counts (rare anomalies stay visible).
        bins: int.
    """
    from toolkit.plots import _pyplot

    scores = _scores(scores)
    plt = _pyplot()
    low, high = float(scores.min()), float(scores.max())
    if threshold is not None and math.isfinite(float(threshold)):
        low, high = min(low, float(threshold)), max(high, float(threshold))
    edges = np.histogram_bin_edges(scores, bins=bins, range=(low, high) if high > low else (low - 0.5, low + 0.5))
    figure, axis = plt.subplots(figsize=(7, 4))
    if labels is None:
        axis.hist(scores, bins=edges, color="tab:blue", alpha=0.7, label=f"all ({scores.size})")
    else:
        labels = _labels(labels, scores.size)
        for value, name, colour in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:red")):
            chosen = scores[labels == value]
            if chosen.size:
                axis.hist(chosen, bins=edges, color=colour, alpha=0.55, label=f"{name} ({chosen.size})")
    if threshold is not None:
        axis.axvline(float(threshold), color="black", linestyle="--", linewidth=1.2,
                     label=f"threshold {float(threshold):.4g}")
    if log_counts:
        axis.set_yscale("log")
    axis.set_xlabel("anomaly score (higher = more anomalous)")
    axis.set_ylabel("examples")
    axis.set_title(title or "Anomaly scores")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, plt, path)


def _pixel_scale(images):
    """255.0 for uint8 or 0..255 floats, 1.0 for 0..1 floats; decided once for a whole array, from its 99th
    percentile, so a reconstruction overshooting 1 here and there is not taken for 0..255."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return 255.0
    return 255.0 if images.size and float(np.nanpercentile(images, 99)) > 2.0 else 1.0


def _displayable(image, scale):
    """An (H, W) or (H, W, 3) float image in 0..1 (1 or 3 channels; more are cut to 3)."""
    image = np.asarray(image).astype(np.float32) / scale
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] > 3:
        image = image[..., :3]
    return np.clip(image, 0.0, 1.0)


def plot_worst_reconstructions(images, reconstructions, error_maps, scores, path, count=8):
    """Rows of input / reconstruction / error heat map for the `count` highest-scoring examples.

    Args:
        images: array (N, H, W[, C]). uint8, floats 0..1 or 0..255; grayscale or RGB.
        reconstructions: same shape as images.
        error_maps: array (N, H, W[, C]) or None (then the squared difference, averaged over channels).
        scores: float array (N,).
        path: str. PNG to write.
        count: int.
    """
    from toolkit.plots import _pyplot

    scores = _scores(scores)
    images, reconstructions = np.asarray(images), np.asarray(reconstructions)
    if images.shape[:3] != reconstructions.shape[:3] or images.shape[0] != scores.size \
            or images.size != reconstructions.size:
        raise DataError(f"worst reconstructions: images {images.shape}, reconstructions {reconstructions.shape} "
                        f"and {scores.size} scores do not match; give one reconstruction and score per image")
    reconstructions = reconstructions.reshape(images.shape)  # (N, H, W) against (N, H, W, 1)
    order = np.argsort(-scores, kind="stable")[:max(1, int(count))]
    scale, rescale = _pixel_scale(images), _pixel_scale(reconstructions)
    if error_maps is None:
        maps = [np.square(images[i].astype(np.float32) / scale - reconstructions[i].astype(np.float32) / rescale)
                for i in order]
    else:
        maps = [np.asarray(error_maps[i], dtype=np.float32) for i in order]
    maps = [m.mean(axis=-1) if m.ndim == 3 else m for m in maps]
    top = max(max(float(np.max(m)) for m in maps), 1e-12)  # one colour scale: rows compare
    plt = _pyplot()
    rows = len(order)
    figure, axes = plt.subplots(rows, 3, figsize=(6.6, 2.0 * rows + 0.4), squeeze=False, layout="constrained")
    for row, index, error in zip(axes, order, maps):
        for axis, picture, divisor in zip(row[:2], (images[index], reconstructions[index]), (scale, rescale)):
            shown = _displayable(picture, divisor)
            axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        heat = row[2].imshow(error, cmap="inferno", vmin=0, vmax=top)
        row[0].set_ylabel(f"#{int(index)}\nscore {scores[index]:.4g}", fontsize=8)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, name in zip(axes[0], ("input", "reconstruction", "error")):
        axis.set_title(name)
    figure.colorbar(heat, ax=axes[:, 2].tolist(), shrink=min(1.0, 0.3 + 0.1 * rows), label="error")
    _save(figure, plt, path, dpi=90)


def plot_series(values, scores, threshold, windows, flags, path, timestamps=None, title=None):
    """A series with its labelled windows shaded and flagged steps marked, and its score below.

    Args:
        values: array (T,) or (T, C). All channels are drawn, thin when there are several.
        scores: float array (T,). Per-step scores; NaN where a step has none.
        threshold: float or None.
        windows: list of (start, end) step indices, end exclusive (the labelled anomalies), or None.
        flags: 0/1 array (T,) or None.
        path: str. PNG to write.
        timestamps: array (T,) or None (step numbers). Numbers or datetime64.
        title: str or None.
    """
    from toolkit.plots import _pyplot

    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values.reshape(values.shape[0], -1)
    length = values.shape[0]
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size != length:
        raise DataError(f"series plot: {scores.size} scores for {length} steps; give one score per step "
                        "(NaN where a step has none)")
    x = np.arange(length) if timestamps is None else np.asarray(timestamps)
    if x.shape[0] != length:
        raise DataError(f"series plot: {x.shape[0]} timestamps for {length} steps; give one per step")

    def span(start, end):  # steps [start, end) -> x from start to the step after the last (or the last)
        return x[start], x[min(end, length - 1)]

    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    thin = values.shape[1] > 1
    for channel in range(values.shape[1]):
        top.plot(x, values[:, channel], linewidth=0.6 if thin else 0.9, alpha=0.8 if thin else 1.0,
                 color=None if thin else "tab:blue")
    labelled = _windows(windows, length) if windows is not None else []
    for number, (start, end) in enumerate(labelled):
        for axis in (top, bottom):
            axis.axvspan(*span(start, end), color="tab:orange", alpha=0.25, linewidth=0,
                         label="labelled anomaly" if number == 0 and axis is top else None)
    if flags is not None:
        flags = np.asarray(flags).reshape(-1).astype(bool)
        if flags.size != length:
            raise DataError(f"series plot: {flags.size} flags for {length} steps; give one flag per step")
        steps = np.flatnonzero(flags)
        if steps.size:
            top.scatter(x[steps], values[steps, 0], s=6, color="tab:red", zorder=3, label=f"flagged ({steps.size} steps)")
            for start, end in flags_to_runs(flags):
                top.axvspan(*span(start, end), ymin=0, ymax=0.04, color="tab:red", linewidth=0)
    bottom.plot(x, scores, color="tab:purple", linewidth=0.8, label="score")
    if threshold is not None:
        bottom.axhline(float(threshold), color="black", linestyle="--", linewidth=1,
                       label=f"threshold {float(threshold):.4g}")
    top.set_title(title or "Series, labelled anomalies and flags")
    top.set_ylabel("value")
    bottom.set_ylabel("anomaly score")
    bottom.set_xlabel("step" if timestamps is None else "time")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        handles, _ = axis.get_legend_handles_labels()
        if handles:
            axis.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    _save(figure, plt, path)
