"""Anomaly scoring: thresholds, detection and event metrics, baselines and plots (NumPy, scikit-learn; no TensorFlow)."""

import doctest
import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from toolkit.errors import DataError, RecipeError
from toolkit.tasks.anomaly_detection import scoring
from toolkit.tasks.anomaly_detection.scoring import (
    aggregate_events,
    baseline_scores,
    best_f1_threshold,
    calibrate,
    detection_metrics,
    event_metrics,
    flags_to_runs,
    plot_score_histogram,
    plot_series,
    plot_worst_reconstructions,
    quantile_threshold,
    run_baselines,
)

PNG = b"\x89PNG\r\n\x1a\n"


def one_line(error):
    text = str(error.value)
    assert "\n" not in text and text
    return text


def test_docstring_examples():
    assert doctest.testmod(scoring).failed == 0


def test_scoring_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, toolkit.tasks.anomaly_detection.scoring; "
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- thresholds


def test_quantile_threshold_flags_exactly_the_rate():
    scores = np.arange(100, dtype=float)
    threshold = quantile_threshold(scores, 0.05)
    assert threshold == 94.0
    assert int(np.sum(scores > threshold)) == 5
    shuffled = np.random.default_rng(1).permutation(scores)
    assert quantile_threshold(shuffled, 0.05) == 94.0
    assert int(np.sum(scores > quantile_threshold(scores, 0.01))) == 1
    assert int(np.sum(scores > quantile_threshold(scores, 0.999))) == 99


def test_quantile_threshold_never_exceeds_the_rate():
    rng = np.random.default_rng(0)
    for count in (7, 50, 333, 1000):
        scores = rng.normal(size=count)
        for rate in (0.01, 0.05, 0.1, 0.5):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flagged = int(np.sum(scores > quantile_threshold(scores, rate)))
            assert flagged == math.floor(rate * count + 1e-9)


def test_quantile_threshold_ties_flag_fewer():
    scores = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1], float)
    assert int(np.sum(scores > quantile_threshold(scores, 0.2))) == 0


def test_quantile_threshold_too_few_scores_warns():
    with pytest.warns(UserWarning, match="needs at least 1000 normal validation scores.*there are 50"):
        threshold = quantile_threshold(np.arange(50.0), 0.001)
    assert threshold == 49.0
    record = calibrate("quantile", np.arange(50.0), target_false_positive_rate=0.001)
    assert "larger validation split" in record["warning"]
    assert calibrate("quantile", np.arange(50.0), target_false_positive_rate=0.1)["warning"] is None


@pytest.mark.parametrize("rate", [0, 1, 1.5, -0.1, "0.1", None, True, float("nan")])
def test_quantile_threshold_rejects_bad_rates(rate):
    with pytest.raises(RecipeError) as error:
        quantile_threshold(np.arange(10.0), rate)
    assert one_line(error).startswith("threshold.target_false_positive_rate:")


def test_scores_must_be_finite_and_present():
    with pytest.raises(DataError) as error:
        quantile_threshold([1.0, float("nan")], 0.1)
    assert "NaN" in one_line(error)
    with pytest.raises(DataError) as error:
        quantile_threshold([], 0.1)
    assert "no scores" in one_line(error)


def test_best_f1_on_separable_data():
    rng = np.random.default_rng(0)
    normal, anomalous = rng.uniform(0, 1, 200), rng.uniform(2, 3, 20)
    scores = np.concatenate([normal, anomalous])
    labels = np.array([0] * 200 + [1] * 20)
    threshold, f1 = best_f1_threshold(scores, labels)
    assert f1 == 1.0
    assert normal.max() < threshold < anomalous.min()
    assert threshold == pytest.approx((normal.max() + anomalous.min()) / 2)


def test_best_f1_matches_brute_force():
    rng = np.random.default_rng(3)
    labels = (rng.uniform(size=300) < 0.2).astype(int)
    scores = np.round(rng.normal(size=300) + labels * 1.2, 1)  # ties on purpose
    threshold, f1 = best_f1_threshold(scores, labels)
    brute = max(f1_score(labels, (scores >= t).astype(int)) for t in np.unique(scores))
    assert f1 == pytest.approx(brute)
    assert f1_score(labels, (scores > threshold).astype(int)) == pytest.approx(f1)


def test_best_f1_lowest_score_threshold_flags_everything():
    threshold, f1 = best_f1_threshold([1.0, 1.0, 1.0], [0, 1, 1])
    assert threshold < 1.0
    assert f1 == pytest.approx(0.8)


def test_best_f1_needs_both_classes():
    with pytest.raises(DataError) as error:
        best_f1_threshold([0.1, 0.2], [0, 0])
    assert "all 2 examples are normal" in one_line(error)
    with pytest.raises(DataError) as error:
        best_f1_threshold([0.1, 0.2], [1, 1])
    assert "anomalous" in one_line(error)


def test_labels_are_checked():
    with pytest.raises(DataError) as error:
        best_f1_threshold([0.1, 0.2, 0.3], [0, 1])
    assert "2 labels for 3 scores" in one_line(error)
    with pytest.raises(DataError) as error:
        detection_metrics([0.1, 0.2], [0, 2], 0.1)
    assert "0 (normal) or 1 (anomalous)" in one_line(error)
    assert detection_metrics([0.1, 0.2], [False, True], 0.15)["f1"] == 1.0


def test_calibrate_records():
    scores = np.concatenate([np.arange(100.0), [200.0, 300.0]])
    labels = np.array([0] * 100 + [1, 1])
    quantile = calibrate("quantile", scores, labels, target_false_positive_rate=0.05)
    assert quantile == {"threshold": 94.0, "method": "quantile", "target_false_positive_rate": 0.05,
                        "validation_f1": pytest.approx(2 * (2 / 7) / (2 / 7 + 1)),
                        "validation_false_positive_rate": 0.05, "validation_normal": 100,
                        "validation_anomalous": 2, "warning": None}
    best = calibrate("best_f1", scores, labels)
    assert best["threshold"] == 149.5 and best["validation_f1"] == 1.0
    assert best["validation_false_positive_rate"] == 0.0 and best["target_false_positive_rate"] is None
    unlabelled = calibrate("quantile", np.arange(100.0), target_false_positive_rate=0.1)
    assert unlabelled["validation_f1"] is None and unlabelled["validation_anomalous"] == 0
    for record in (quantile, best, unlabelled):
        assert json.loads(json.dumps(record)) == record


def test_calibrate_errors():
    with pytest.raises(RecipeError) as error:
        calibrate("best-f1", [0.1, 0.2], [0, 1])
    assert "threshold.method" in one_line(error) and "did you mean 'best_f1'" in one_line(error)
    with pytest.raises(DataError) as error:
        calibrate("best_f1", [0.1, 0.2])
    assert "no anomalous examples" in one_line(error) and "quantile" in one_line(error)
    with pytest.raises(DataError) as error:
        calibrate("quantile", [0.1, 0.2], [1, 1])
    assert "no normal examples" in one_line(error)
    with pytest.raises(RecipeError):
        calibrate("quantile", [0.1, 0.2], target_false_positive_rate=2)


# ---------------------------------------------------------------- metrics


def test_detection_metrics_by_hand():
    scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    labels = [0, 0, 1, 1, 0, 1]
    metrics = detection_metrics(scores, labels, 0.3)
    # flagged: 0.4 (fp), 0.35 (tp), 0.8 (tp), 0.9 (tp); not: 0.1 (tn), 0.2 (tn)
    assert (metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]) == (3, 1, 2, 0)
    assert (metrics["normal"], metrics["anomalous"], metrics["flagged"], metrics["examples"]) == (3, 3, 4, 6)
    assert metrics["precision"] == 0.75 and metrics["recall"] == 1.0
    assert metrics["f1"] == pytest.approx(6 / 7)
    assert metrics["false_positive_rate"] == pytest.approx(1 / 3)
    assert metrics["auroc"] == pytest.approx(8 / 9)  # of 9 (normal, anomalous) pairs only (0.4, 0.35) is wrong
    assert json.loads(json.dumps(metrics)) == metrics


def test_detection_metrics_match_sklearn():
    rng = np.random.default_rng(7)
    labels = (rng.uniform(size=500) < 0.15).astype(int)
    scores = rng.normal(size=500) + labels
    threshold = 0.8
    metrics = detection_metrics(scores, labels, threshold)
    flags = (scores > threshold).astype(int)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(labels, scores))
    assert metrics["precision"] == pytest.approx(precision_score(labels, flags))
    assert metrics["recall"] == pytest.approx(recall_score(labels, flags))
    assert metrics["f1"] == pytest.approx(f1_score(labels, flags))
    assert metrics["false_positive_rate"] == pytest.approx(np.mean(flags[labels == 0]))


def test_detection_metrics_one_class_gives_none():
    normal_only = detection_metrics([0.1, 0.5, 0.9], [0, 0, 0], 0.6)
    assert normal_only["auroc"] is None and normal_only["average_precision"] is None
    assert normal_only["recall"] is None and normal_only["f1"] is None
    assert normal_only["false_positive_rate"] == pytest.approx(1 / 3)
    anomalous_only = detection_metrics([0.1, 0.5, 0.9], [1, 1, 1], 0.6)
    assert anomalous_only["auroc"] is None and anomalous_only["false_positive_rate"] is None
    assert anomalous_only["recall"] == pytest.approx(1 / 3) and anomalous_only["precision"] == 1.0
    nothing_flagged = detection_metrics([0.1, 0.9], [0, 1], 5.0)
    assert nothing_flagged["precision"] == 0.0 and nothing_flagged["f1"] == 0.0
    assert "NaN" not in json.dumps([normal_only, anomalous_only, nothing_flagged])


# ---------------------------------------------------------------- events


def test_flags_to_runs():
    assert flags_to_runs([]) == []
    assert flags_to_runs([0, 0]) == []
    assert flags_to_runs([1, 1, 1]) == [(0, 3)]
    assert flags_to_runs([1, 0, 1, 1, 0, 0, 1]) == [(0, 1), (2, 4), (6, 7)]
    assert flags_to_runs(np.array([False, True])) == [(1, 2)]


def test_event_metrics_found_missed_false_alarms():
    flags = np.zeros(30, int)
    flags[12] = 1          # inside window (10, 15): found
    flags[[2, 3, 4]] = 1   # a run far from any window: one false alarm
    flags[24] = 1          # just after window (20, 24) (end exclusive): a false alarm without tolerance
    windows = [(10, 15), (20, 24), (27, 29)]
    metrics = event_metrics(flags, windows)
    assert (metrics["windows"], metrics["found"], metrics["missed"]) == (3, 1, 2)
    assert metrics["found_windows"] == [[10, 15]]
    assert metrics["missed_windows"] == [[20, 24], [27, 29]]
    assert metrics["runs"] == 3 and metrics["false_alarms"] == 2
    assert metrics["false_alarm_runs"] == [[2, 5], [24, 25]]
    assert metrics["flagged_steps"] == 5 and metrics["steps"] == 30
    assert json.loads(json.dumps(metrics)) == metrics


def test_event_metrics_tolerance():
    flags = np.zeros(30, int)
    flags[24] = 1
    flags[7] = 1
    windows = [(10, 15), (20, 24)]
    assert event_metrics(flags, windows, tolerance=0)["found"] == 0
    one = event_metrics(flags, windows, tolerance=1)
    assert (one["found"], one["false_alarms"]) == (1, 1)  # 24 is within 1 of (20, 24); 7 is 3 before 10
    three = event_metrics(flags, windows, tolerance=3)
    assert (three["found"], three["missed"], three["false_alarms"]) == (2, 0, 0)


def test_event_metrics_run_spanning_a_window_is_no_false_alarm():
    flags = np.array([0, 1, 1, 1, 1, 1, 1, 0])
    metrics = event_metrics(flags, [(3, 4)])
    assert (metrics["found"], metrics["runs"], metrics["false_alarms"]) == (1, 1, 0)


def test_event_metrics_no_windows_and_clipping():
    metrics = event_metrics([0, 1, 0, 1], [])
    assert metrics["windows"] == 0 and metrics["false_alarms"] == 2
    clipped = event_metrics([0, 0, 0, 1], [(3, 10)])
    assert clipped["found_windows"] == [[3, 4]]


def test_event_metrics_errors():
    with pytest.raises(DataError) as error:
        event_metrics([0, 1], [(1, 1)])
    assert "empty" in one_line(error)
    with pytest.raises(DataError) as error:
        event_metrics([0, 1], [(5, 8)])
    assert "outside the series of 2 steps" in one_line(error)
    with pytest.raises(DataError) as error:
        event_metrics([0, 1], [(0, 1)], length=3)
    assert "2 per-step flags for a series of 3 steps" in one_line(error)
    with pytest.raises(DataError):
        event_metrics([0, 1], [(0,)])
    with pytest.raises(RecipeError):
        event_metrics([0, 1], [(0, 1)], tolerance=-1)


def test_aggregate_events():
    series = [
        event_metrics([0, 1, 0, 0, 1, 1, 0], [(1, 2), (3, 4)]),   # found 1, missed 1, one false alarm
        event_metrics([0, 0, 0, 0], [(0, 2)]),                     # missed 1
        event_metrics([1, 0, 1, 0, 1], []),                        # three false alarms
    ]
    total = aggregate_events(series)
    assert total["series"] == 3
    assert (total["windows"], total["found"], total["missed"]) == (3, 1, 2)
    assert total["window_recall"] == pytest.approx(1 / 3)
    assert (total["runs"], total["false_alarms"]) == (5, 4)
    assert total["alarm_precision"] == pytest.approx(1 / 5)
    assert total["false_alarms_per_series_mean"] == pytest.approx(4 / 3)
    assert total["false_alarms_per_series_max"] == 3
    empty = aggregate_events([])
    assert empty["window_recall"] is None and empty["false_alarms_per_series_max"] is None


# ---------------------------------------------------------------- baselines


def blobs(seed=0):
    """Normal: a Gaussian blob near a 3-D subspace of 20-D; anomalies: points shifted off it."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(3, 20))

    def normal(count):
        return rng.normal(size=(count, 3)) @ basis + 0.1 * rng.normal(size=(count, 20))

    anomalies = normal(40) + rng.normal(size=(40, 20)) * 1.5 + 2.0
    test = np.vstack([normal(200), anomalies])
    return normal(1000), normal(200), test, np.array([0] * 200 + [1] * 40)


@pytest.mark.parametrize("method", ["isolation_forest", "pca"])
def test_baselines_separate_planted_anomalies(method):
    train, _, test, labels = blobs()
    scores = baseline_scores(method, train, test)
    assert scores.shape == (240,) and scores.dtype == np.float64
    assert roc_auc_score(labels, scores) > 0.9


def test_baselines_take_images_and_are_seeded():
    rng = np.random.default_rng(0)
    train = rng.uniform(size=(300, 8, 8, 1)).astype(np.float32)
    test = rng.uniform(size=(5, 8, 8, 1)).astype(np.float32)
    first = baseline_scores("isolation_forest", train, test, seed=3)
    assert np.array_equal(first, baseline_scores("isolation_forest", train, test, seed=3))
    assert baseline_scores("pca", train, test, components=4).shape == (5,)


def test_pca_many_features_uses_randomized_svd():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 2100))  # above 2,048 features: randomized SVD

    def normal(count):
        return rng.normal(size=(count, 2)) @ basis + 0.05 * rng.normal(size=(count, 2100))

    train, test = normal(120), np.vstack([normal(10), normal(10) + rng.normal(size=(10, 2100))])
    labels = [0] * 10 + [1] * 10
    scorer, details = scoring._fit_baseline("pca", train, components=0.9)
    assert details["components"] == 2 and details["variance_kept"] >= 0.9
    assert roc_auc_score(labels, scorer(test.astype(np.float32))) == 1.0
    assert scoring._fit_baseline("pca", train, components=5)[1]["components"] == 5


def test_run_baselines():
    train, validation, test, labels = blobs(1)
    results = run_baselines(train, validation, test, labels, target_false_positive_rate=0.05)
    assert set(results) == {"isolation_forest", "pca"}
    for result in results.values():
        assert result["metrics"]["auroc"] > 0.9 and result["metrics"]["average_precision"] > 0.7
        assert result["calibration"]["method"] == "quantile"
        assert result["calibration"]["validation_false_positive_rate"] <= 0.05
        assert result["fit_seconds"] >= 0
    assert results["pca"]["components"] == 3  # the 3-D subspace holds > 90% of the variance
    assert results["pca"]["variance_kept"] >= 0.9
    assert json.loads(json.dumps(results)) == results


def test_baseline_errors():
    train, validation, test, labels = blobs()
    with pytest.raises(RecipeError) as error:
        baseline_scores("isolation-forest", train, test)
    assert "did you mean 'isolation_forest'" in one_line(error)
    with pytest.raises(RecipeError) as error:
        run_baselines(train, validation, test, labels, methods=["pca", "knn"])
    assert "unknown baseline 'knn'" in one_line(error)
    with pytest.raises(RecipeError) as error:
        baseline_scores("pca", train, test, components=1.5)
    assert "pca_components" in one_line(error)
    with pytest.raises(DataError) as error:
        baseline_scores("pca", train, test[:, :10])
    assert "10 features per example, the training data has 20" in one_line(error)


# ---------------------------------------------------------------- plots


def assert_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == PNG
    assert path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_plot_score_histogram(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(size=300), rng.normal(3, 1, 20)])
    labels = [0] * 300 + [1] * 20
    plot_score_histogram(scores, labels, 2.0, str(tmp_path / "h.png"), title="test split", log_counts=True)
    assert_png(tmp_path / "h.png")
    plot_score_histogram(np.ones(5), None, None, str(tmp_path / "flat.png"))
    assert_png(tmp_path / "flat.png")


@pytest.mark.parametrize("shape,dtype", [((6, 12, 12), np.uint8), ((6, 12, 12, 1), np.float32),
                                         ((6, 12, 12, 3), np.float32), ((6, 12, 12, 3), np.uint8)])
def test_plot_worst_reconstructions(tmp_path, shape, dtype):
    rng = np.random.default_rng(0)
    scale = 255 if dtype == np.uint8 else 1.0
    images = (rng.uniform(size=shape) * scale).astype(dtype)
    reconstructions = (rng.uniform(size=shape) * scale).astype(dtype)
    errors = rng.uniform(size=shape[:3])
    plot_worst_reconstructions(images, reconstructions, errors, rng.uniform(size=6), str(tmp_path / "w.png"), count=3)
    assert_png(tmp_path / "w.png")
    plot_worst_reconstructions(images, reconstructions, None, rng.uniform(size=6), str(tmp_path / "n.png"), count=20)
    assert_png(tmp_path / "n.png")


def test_plot_worst_reconstructions_mixed_ranges(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 10, 10), dtype=np.uint8)       # uint8 inputs
    reconstructions = rng.uniform(-0.2, 1.3, size=(4, 10, 10, 1))           # float model outputs, overshooting
    plot_worst_reconstructions(images, reconstructions, None, [3, 1, 2, 0], str(tmp_path / "m.png"), count=2)
    assert_png(tmp_path / "m.png")
    assert scoring._pixel_scale(images) == 255.0 and scoring._pixel_scale(reconstructions) == 1.0
    assert scoring._pixel_scale(images.astype(np.float32)) == 255.0


def test_plot_worst_reconstructions_checks_shapes(tmp_path):
    with pytest.raises(DataError) as error:
        plot_worst_reconstructions(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), None, [1, 2], str(tmp_path / "x.png"))
    assert "do not match" in one_line(error)


def test_plot_series(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 3))
    values[200:220] += 5
    scores = np.abs(values).mean(axis=1)
    scores[:10] = np.nan  # steps without a score
    flags = np.nan_to_num(scores) > 2.5
    plot_series(values, scores, 2.5, [(200, 220), (400, 410)], flags, str(tmp_path / "s.png"), title="machine 1")
    assert_png(tmp_path / "s.png")
    stamps = np.datetime64("2026-01-01T00:00") + np.arange(500) * np.timedelta64(1, "m")
    plot_series(values[:, 0], scores, None, None, None, str(tmp_path / "t.png"), timestamps=stamps)
    assert_png(tmp_path / "t.png")
    with pytest.raises(DataError) as error:
        plot_series(values, scores[:10], 1.0, [], None, str(tmp_path / "bad.png"))
    assert "10 scores for 500 steps" in one_line(error)
