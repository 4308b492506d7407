"""The time series of the anomaly detection task: generated NAB-style series, CSV and NAB windows, sliding windows
and step scores, UCR .ts files (fabricated here: no network). NumPy only, each test well under a second."""

import json

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.tasks.anomaly_detection.series import (
    KINDS,
    Series,
    fit_normaliser,
    generate_series,
    labels_to_windows,
    make_windows,
    normalise,
    parse_timestamp,
    read_anomaly_windows,
    read_series_csv,
    read_ts,
    read_ucr,
    step_scores,
    window_labels,
    windows_to_labels,
)

# ----------------------------------------------------------------------------------------------- generated series


def test_generated_series_are_deterministic_and_each_depends_on_its_index_only():
    first, again = generate_series(5, seed=3), generate_series(5, seed=3)
    for a, b in zip(first, again):
        assert a.name == b.name and a.windows == b.windows and a.window_kinds == b.window_kinds
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
    for a, b in zip(generate_series(2, seed=3), first):  # a prefix of a longer set
        np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(generate_series(1, seed=4)[0].values, first[0].values)


def test_generated_windows_and_labels_agree_and_every_kind_appears():
    series = generate_series(8, seed=0)
    kinds = set()
    for s in series:
        assert s.values.shape == (2016, 1) and s.values.dtype == np.float32
        assert s.timestamps.dtype == np.dtype("datetime64[s]")
        assert set(np.diff(s.timestamps).astype(int)) == {300}
        assert s.labels.dtype == np.uint8
        np.testing.assert_array_equal(s.labels, windows_to_labels(s.windows, s.length))
        assert s.windows == labels_to_windows(s.labels)
        assert 1 <= len(s.windows) <= 3 and len(s.window_kinds) == len(s.windows)
        assert all(start >= 2 * 288 for start, _ in s.windows)  # the first two days are normal
        assert all(end + 288 // 8 <= start for (_, end), (start, _) in zip(s.windows, s.windows[1:]))
        kinds.update(s.window_kinds)
    assert kinds == set(KINDS)


def test_generated_anomalies_have_their_shape():
    series = generate_series(16, seed=1, noise=0.1)
    seen = set()
    for s in series:
        x = s.values[:, 0].astype(np.float64)
        sigma = np.std(np.diff(x[:576])) / np.sqrt(2)  # the noise, from the normal first two days
        for (start, end), kind in zip(s.windows, s.window_kinds):
            seen.add(kind)
            before = np.median(x[start - 6:start])
            if kind == "flat_line":
                assert np.all(x[start:end] == x[start - 1]) and end - start >= 36
            elif kind == "jump":
                assert x[start:end].min() - before > 3 * sigma and end - start <= 4
            elif kind == "drop":
                assert before - x[start:end].max() > 3 * sigma and end - start <= 4
            else:
                assert 50 <= end - start <= 150
    assert seen == set(KINDS)


def test_normal_series_for_training():
    for normal in (generate_series(3, seed=2, anomalies_per_series=(0, 0)), generate_series(3, seed=2, kinds=())):
        assert all(s.labels.sum() == 0 and s.windows == [] for s in normal)
    multi = generate_series(2, seed=2, channels=3, length=1000, period=96)
    assert multi[0].values.shape == (1000, 3) and multi[0].windows
    with pytest.raises(DataError, match="unknown anomaly kind"):
        generate_series(1, seed=0, kinds=("spike",))


def test_series_record_derives_and_checks_labels():
    assert Series("s", np.zeros(6), windows=[(1, 2), (2, 4)]).windows == [(1, 4)]  # touching windows merge
    assert Series("s", np.zeros(3)).labels is None
    with pytest.raises(DataError, match="do not match its step labels"):
        Series("s", np.zeros(4), labels=[0, 1, 0, 0], windows=[(2, 3)])
    assert labels_to_windows([1, 1, 0, 1]) == [(0, 2), (3, 4)] and labels_to_windows([0, 0]) == []


# ----------------------------------------------------------------------------------------------- CSV files

NAB = ("timestamp,value\n2014-04-01 00:00:00,10.5\n2014-04-01 00:05:00,11\n2014-04-01 00:10:00,12\n"
       "2014-04-01 00:15:00,13\n2014-04-01 00:20:00,14\n")


def _write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
    return str(path)


def test_reads_a_nab_file(tmp_path):
    path = _write(tmp_path / "cpu.csv", NAB)
    (series,), skipped = read_series_csv(path)
    assert skipped == [] and series.name == "cpu.csv" and series.labels is None
    assert series.values[:, 0].tolist() == [10.5, 11, 12, 13, 14]
    assert str(series.timestamps[0]) == "2014-04-01T00:00:00" and series.timestamps.dtype == "datetime64[s]"
    wide = _write(tmp_path / "wide.csv", "time,host,a,b,is_anomaly\n1396310400,x,1,2,0\n1396310700,y,3,4,1\n")
    (series,), _ = read_series_csv(wide, timestamp_column="time", label_column="is_anomaly")
    assert series.values.tolist() == [[1, 2], [3, 4]] and series.labels.tolist() == [0, 1]  # host: not numeric
    assert str(series.timestamps[1]) == "2014-04-01T00:05:00"  # Unix seconds
    (series,), _ = read_series_csv(wide, timestamp_column=None, value_columns=["b"])
    assert series.values[:, 0].tolist() == [2, 4] and series.timestamps is None
    assert parse_timestamp("2014-04-01T02:00:00+02:00") == np.datetime64("2014-04-01T00:00:00")


def test_bad_rows_are_skipped_and_counted_with_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.csv", b"timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,oops\n"
                  b"yesterday,2\n2014-04-01 00:10:00,3,4\n2014-04-01 00:15:00,\xff\xfe\n2014-04-01 00:20:00,nan\n"
                  b"\n2014-04-01 00:25:00,5\n2014-04-01 00:25:00,6\n2014-04-01 00:30:00,7\n", "wb")
    (series,), skipped = read_series_csv(path)
    assert series.values[:, 0].tolist() == [1, 5, 7]
    assert skipped == [
        f"{path}:3: column 'value': 'oops' is not a number",
        f"{path}:4: timestamp 'yesterday' does not parse (expected ISO 8601 like 2014-04-10 07:15:00, or Unix "
        "seconds)",
        f"{path}:5: 3 columns where the header has 2",
        f"{path}:6: not UTF-8",
        f"{path}:7: column 'value': 'nan' is not a finite number",
        f"{path}:10: timestamp 2014-04-01 00:25:00 repeats that of line 9",
    ]
    with pytest.raises(DataError) as error:
        read_series_csv(path, on_error="fail")
    assert str(error.value) == (f"{path}:3: column 'value': 'oops' is not a number; fix or remove that line, or set "
                                "data.on_error: skip to leave such rows out")


def test_missing_columns_name_the_columns_and_the_recipe_key(tmp_path):
    path = _write(tmp_path / "cpu.csv", NAB)
    for kwargs, key in (({"timestamp_column": "time"}, "data.timestamp_column"),
                        ({"value_columns": ["cpu"]}, "data.value_columns"),
                        ({"label_column": "label"}, "data.label_column")):
        with pytest.raises(DataError) as error:
            read_series_csv(path, **kwargs)
        message = str(error.value)
        assert "\n" not in message and f"{path}:1: no column" in message and key in message
        assert "the columns are 'timestamp', 'value'" in message
    text = _write(tmp_path / "text.csv", "timestamp,comment\n2014-04-01 00:00:00,hello\n")
    with pytest.raises(DataError, match="no numeric value column.*set data.value_columns"):
        read_series_csv(text)
    with pytest.raises(DataError, match="does not exist"):
        read_series_csv(str(tmp_path / "nothing.csv"))


def test_decreasing_timestamps_name_the_lines(tmp_path):
    path = _write(tmp_path / "cpu.csv", "timestamp,value\n2014-04-01 00:10:00,1\n2014-04-01 00:15:00,2\n"
                  "2014-04-01 00:05:00,3\n")
    with pytest.raises(DataError) as error:
        read_series_csv(path)
    assert str(error.value) == (f"{path}:4: timestamp 2014-04-01 00:05:00 is earlier than 2014-04-01T00:15:00 on "
                                "line 3; timestamps must increase: sort the file by 'timestamp'")


def test_nab_windows_json_over_a_directory(tmp_path):
    (tmp_path / "data" / "realKnownCause").mkdir(parents=True)
    _write(tmp_path / "data" / "realKnownCause" / "a.csv", NAB)
    _write(tmp_path / "data" / "b.csv", NAB)
    windows = _write(tmp_path / "combined_windows.json", json.dumps({
        "realKnownCause/a.csv": [["2014-04-01 00:05:00.000000", "2014-04-01 00:10:00.000000"]], "b.csv": []}))
    assert read_anomaly_windows(windows)["realKnownCause/a.csv"] == [("2014-04-01 00:05:00.000000",
                                                                       "2014-04-01 00:10:00.000000")]
    series, skipped = read_series_csv(str(tmp_path / "data"), windows=windows)
    assert [s.name for s in series] == ["b.csv", "a.csv"]  # sorted by relative path
    assert series[0].labels.tolist() == [0] * 5
    assert series[1].labels.tolist() == [0, 1, 1, 0, 0] and series[1].windows == [(1, 3)]  # NAB ends inclusive
    (series,), _ = read_series_csv(str(tmp_path / "data" / "b.csv"), windows=[(3, 5)])  # step indices
    assert series.windows == [(3, 5)]
    broken = _write(tmp_path / "broken.json", '{"a.csv": [["2014-04-01"]]}')
    with pytest.raises(DataError, match="each window must be"):
        read_anomaly_windows(broken)
    with pytest.raises(DataError, match="not a JSON file"):
        read_anomaly_windows(_write(tmp_path / "x.json", "{nope"))


# ----------------------------------------------------------------------------------------------- windows


def test_windows_and_step_scores_round_trip():
    values = np.arange(20, dtype=np.float32)[:, None] * [1, -1]
    windows, starts = make_windows(values, window=6, stride=4)
    assert windows.shape == (5, 6, 2) and windows.dtype == np.float32 and starts.tolist() == [0, 4, 8, 12, 14]
    for window, start in zip(windows, starts):
        np.testing.assert_array_equal(window, values[start:start + 6])
    for reduce in ("mean", "max"):  # per-window-per-step errors that are the values themselves come back as they were
        np.testing.assert_allclose(step_scores(windows[..., 0], starts, 6, 20, reduce=reduce), values[:, 0])
        np.testing.assert_allclose(step_scores(windows, starts, 6, 20, reduce=reduce), 0.0)  # channel mean
    per_window = step_scores(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), starts, 6, 20, reduce="max")
    assert per_window.tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 2 + [5] * 6
    assert np.isnan(step_scores(np.ones(1), np.array([0]), 6, 8))[6:].all()  # a step no window covers
    labels = np.zeros(20, np.uint8)
    labels[9] = 1
    assert window_labels(labels, starts, 6).tolist() == [0, 1, 1, 0, 0]
    with pytest.raises(DataError, match="do not fit in a series of 10 steps"):
        step_scores(np.ones(5), starts, 6, 10)
    with pytest.raises(DataError, match="shorter than the window"):
        make_windows(values[:5], window=6)


def test_normaliser_fits_normal_steps_only():
    a = Series("a", np.array([[0.0, 5.0], [2.0, 5.0], [100.0, 5.0]]), labels=[0, 0, 1])
    mean, std = fit_normaliser([a])
    assert mean.tolist() == [1.0, 5.0] and std.tolist() == [1.0, 1.0]  # a constant channel gets std 1
    assert normalise(a.values, mean, std)[:2].tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    with pytest.raises(DataError, match="different channel counts"):
        fit_normaliser([a, np.zeros((4, 3))])


# ----------------------------------------------------------------------------------------------- UCR sets

TS_HEADER = "# fabricated\n@problemName Tiny\n@timeStamps false\n@missing false\n@univariate {uni}\n{dims}" \
            "@equalLength true\n@seriesLength 4\n@classLabel true {classes}\n@data\n"


def _ts(path, rows, classes="1 2", dimensions=1):
    header = TS_HEADER.format(uni=str(dimensions == 1).lower(), classes=classes,
                              dims="" if dimensions == 1 else f"@dimensions {dimensions}\n")
    return _write(path, header + "".join(rows))


def test_read_ucr_univariate_and_multivariate(tmp_path):
    _ts(tmp_path / "Tiny_TRAIN.ts", ["1,2,3,4:1\n", "4,3,2,1:2\n", "1,2,3,5:1\n"])
    _ts(tmp_path / "Tiny_TEST.ts", ["1,2,3,4:1\n", "9,9,9,9:2\n"])
    train, test, labels = read_ucr(str(tmp_path), "Tiny", normal_class=1)
    assert train.shape == (2, 4, 1) and train.dtype == np.float32 and train[1, :, 0].tolist() == [1, 2, 3, 5]
    assert test.shape == (2, 4, 1) and labels.tolist() == [0, 1] and labels.dtype == np.uint8
    assert read_ucr(str(tmp_path), "Tiny", normal_class="2")[0].shape == (1, 4, 1)
    with pytest.raises(DataError, match=r"no class '3' \(its classes: 1, 2\)"):
        read_ucr(str(tmp_path), "Tiny", normal_class=3)
    (tmp_path / "Motion").mkdir()  # the archive's own layout: <name>/<name>_TRAIN.ts, several dimensions
    rows = ["1,2,3,4:5,6,7,8:Standing\n", "0,0,0,0:1,1,1,1:Running\n"]
    _ts(tmp_path / "Motion" / "Motion_TRAIN.ts", rows, classes="Standing Running", dimensions=2)
    _ts(tmp_path / "Motion" / "Motion_TEST.ts", rows, classes="Standing Running", dimensions=2)
    train, test, labels = read_ucr(str(tmp_path), "Motion", normal_class=None)  # the first class listed
    assert train.shape == (1, 4, 2) and train[0].tolist() == [[1, 5], [2, 6], [3, 7], [4, 8]]
    assert labels.tolist() == [0, 1]
    _write(tmp_path / "Flat_TRAIN.tsv", "1\t1.0\t2.0\n2\t3.0\t4.0\n")  # UCR 2018 layout
    _write(tmp_path / "Flat_TEST.tsv", "2\t3.0\t4.0\n")
    train, test, labels = read_ucr(str(tmp_path), "Flat", normal_class=1)
    assert train[:, :, 0].tolist() == [[1.0, 2.0]] and labels.tolist() == [1]


def test_read_ucr_errors_are_one_line(tmp_path):
    with pytest.raises(DataError) as error:
        read_ucr(str(tmp_path), "GunPoint", normal_class=1)
    assert "no GunPoint_TRAIN.ts in" in str(error.value) and "toolkit data fetch ucr" in str(error.value)
    ragged = _ts(tmp_path / "Ragged_TRAIN.ts", ["1,2,3,4:1\n", "1,2,3:2\n"])
    with pytest.raises(DataError, match=r"Ragged_TRAIN.ts:11: an instance of 3 steps"):
        read_ts(ragged)
    regression = _write(tmp_path / "Reg_TRAIN.ts", "@problemName Reg\n@classLabel false\n@targetLabel true\n"
                                                   "@data\n1,2:0.5\n")
    with pytest.raises(DataError, match="Reg_TRAIN.ts:2: this set has no class labels"):
        read_ts(regression)


def test_ucr_fetch_entry_is_pinned_and_names_the_command(tmp_path):
    from toolkit.data.fetch import FETCHABLE, fetch_wheel_members

    spec, folder = FETCHABLE["ucr"]
    assert spec["requirement"] == "sktime==1.2.0" and folder == "ucr"
    assert "GunPoint_TRAIN.ts" in spec["members"] and "ItalyPowerDemand_TEST.ts" in spec["members"]
    assert all(member.startswith("sktime/datasets/data/") for member in spec["members"].values())
    with pytest.raises(DataError, match="toolkit data fetch ucr"):
        fetch_wheel_members(spec, str(tmp_path), download=False)
    with pytest.raises(DataError, match="toolkit data fetch ucr"):
        read_ucr(None, "GunPoint", normal_class=1)  # an empty data cache (conftest's TOOLKIT_HOME)


def test_series_module_needs_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys; import toolkit.tasks.anomaly_detection.series; "
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
