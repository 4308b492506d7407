"""Time series of the anomaly detection task: the `Series` record, generated NAB-style series, CSV and UCR readers,
and the sliding windows models see (NumPy only; no TensorFlow here).

A series is `values` (T steps x C channels, float32), optional `timestamps` (datetime64[s]) and optional
step labels (1 = anomalous step) that always agree with its labelled anomaly `windows` ((start, end) step
indices, end exclusive). Sources:

- `generate_series`: offline synthetic series in the style of the Numenta Anomaly Benchmark (5-minute samples,
  a daily cycle, a slow trend, noise) with injected jumps, drops, level shifts and flat lines, fully
  deterministic from a seed; `anomalies_per_series=(0, 0)` gives anomaly-free series to train on;
- `read_series_csv`: NAB-style CSV files (`timestamp,value`, any number of value columns, an optional label
  column), with label windows as in NAB's `combined_windows.json` (`read_anomaly_windows`); rows that do not
  parse are skipped and listed as `file:line: reason`;
- `read_ucr`: a UCR/UEA classification set (`.ts` files, as the sktime wheel ships them: `toolkit data fetch
  ucr`) as fixed-length instances, one class normal and every other class anomalous.

Example:

>>> import numpy as np
>>> from toolkit.tasks.anomaly_detection.series import *
>>> series = generate_series(2, seed=0)[0]
>>> series.values.shape, bool(series.labels.any()), series.windows == labels_to_windows(series.labels)
((2016, 1), True, True)
>>> windows, starts = make_windows(series.values, window=64, stride=16)
>>> windows.shape
(123, 64, 1)
>>> step_scores(np.abs(windows[..., 0]), starts, 64, len(series.values)).shape
(2016,)
"""

import csv
import datetime
import json
import os
from dataclasses import dataclass, field

import numpy as np

from toolkit.errors import DataError

KINDS = ("jump", "drop", "level_shift", "flat_line")
START = "2026-01-05T00:00:00"  # a Monday; the first timestamp of generated series
STEP_SECONDS = 300  # 5-minute samples, as in most NAB series
ON_ERROR = ("skip", "fail")


# --------------------------------------------------------------------------- the record


def windows_to_labels(windows, length):
    """Step labels (uint8, 1 = anomalous) of anomaly windows.

    Args:
        windows: list of (start, end) step indices, end exclusive; clipped to [0, length).
        length: int. The number of steps.

    Example:

    >>> windows_to_labels([(1, 3), (5, 6)], 7).tolist()
    [0, 1, 1, 0, 0, 1, 0]
    """
    labels = np.zeros(int(length), np.uint8)
    for start, end in windows:
        start, end = max(int(start), 0), min(int(end), int(length))
        if end > start:
            labels[start:end] = 1
    return labels


def labels_to_windows(labels):
    """The anomaly windows (maximal runs of 1s) of step labels, as (start, end) pairs, end exclusive.

    Example:

    >>> labels_to_windows([0, 1, 1, 0, 0, 1])
    [(1, 3), (5, 6)]
    """
    flags = (np.asarray(labels).reshape(-1) > 0).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(start), int(end)) for start, end in zip(starts, ends)]


@dataclass
class Series:
    """One time series.

    Args:
        name: str. Where it came from (a file name, or `synthetic-<seed>-<index>`).
        values: (T, C) float32 (a 1-D array becomes (T, 1)).
        timestamps: (T,) datetime64[s], increasing, or None.
        labels: (T,) uint8 (1 = anomalous step) or None when unlabelled.
        windows: list of (start, end) step indices, end exclusive: the labelled anomaly windows. Given one of
            labels and windows, the other is derived; given both, they must agree.
        window_kinds: list of str, one per window when known (generated series: "jump", "drop", ...).

    Example:

    >>> Series("s", np.zeros(5), windows=[(1, 3)]).labels.tolist()
    [0, 1, 1, 0, 0]
    """

    name: str
    values: np.ndarray
    timestamps: np.ndarray = None
    labels: np.ndarray = None
    windows: list = field(default_factory=list)
    window_kinds: list = field(default_factory=list)

    def __post_init__(self):
        values = np.asarray(self.values, np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise DataError(f"series {self.name}: values must be (steps, channels), got shape {values.shape}")
        self.values = values
        length = len(values)
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps).astype("datetime64[s]")
            if self.timestamps.shape != (length,):
                raise DataError(f"series {self.name}: {len(self.timestamps)} timestamps for {length} steps")
        self.windows = [(int(start), int(end)) for start, end in self.windows]
        if self.labels is not None:
            self.labels = (np.asarray(self.labels).reshape(-1) > 0).astype(np.uint8)
            if len(self.labels) != length:
                raise DataError(f"series {self.name}: {len(self.labels)} labels for {length} steps")
            derived = labels_to_windows(self.labels)
            if self.windows and self.windows != derived:
                raise DataError(f"series {self.name}: its windows {self.windows[:3]} do not match its step labels "
                                f"(runs of 1s: {derived[:3]}); give one of them")
            self.windows = derived
        elif self.windows:
            self.labels = windows_to_labels(self.windows, length)
            self.windows = labels_to_windows(self.labels)  # merged when they touched, clipped

    @property
    def length(self):
        return len(self.values)

    @property
    def channels(self):
        return self.values.shape[1]


# --------------------------------------------------------------------------- generated series

_LENGTHS = {"jump": (1, 4), "drop": (1, 4), "level_shift": (50, 150), "flat_line": (36, 96)}
_MAGNITUDES = {"jump": (6.0, 10.0), "drop": (6.0, 10.0), "level_shift": (4.0, 8.0)}  # noise sigmas


def _normal_signal(rng, length, period, channels, noise):
    """(T, C) daily cycle + slow trend + Gaussian noise, in units of the cycle's amplitude, and the noise-free part."""
    steps = np.arange(length, dtype=np.float64)
    clean = np.empty((length, channels))
    for channel in range(channels):
        cycle = np.zeros(length)
        for harmonic, weight in ((1, 1.0), (2, rng.uniform(0.2, 0.5)), (3, rng.uniform(0.0, 0.25))):
            cycle += weight * np.sin(2 * np.pi * harmonic * steps / period + rng.uniform(0, 2 * np.pi))
        cycle /= np.abs(cycle).max()
        trend = rng.uniform(-0.5, 0.5) * steps / length
        clean[:, channel] = cycle + trend
    return clean + rng.normal(0.0, noise, clean.shape), clean


def _flat_line_visible(clean, start, end, noise):
    """Whether freezing the value at start-1 over [start, end) departs from the normal signal by enough."""
    departure = np.abs(clean[start:end] - clean[start - 1]).max(axis=1)
    return departure.max() >= 6 * noise and departure.mean() >= 3 * noise


def _place(rng, taken, length, size, first, gap):
    """A random start for a window of `size` steps in [first, length) apart from `taken` by `gap`, or None."""
    last = length - size - 1
    if last < first:
        return None
    start = int(rng.integers(first, last + 1))
    if any(start < end + gap and other < start + size + gap for other, end in taken):
        return None
    return start


def generate_series(count, seed, length=2016, period=288, kinds=KINDS, anomalies_per_series=(1, 3), noise=0.1,
                    magnitude=None, channels=1, start=START):
    """Synthetic NAB-style series with labelled anomalies, fully deterministic from `seed`.

    Each series is 5-minute samples from `start`: a daily cycle (three harmonics of `period` steps with random
    weights and phases, peak 1), a slow linear trend, Gaussian noise of standard deviation `noise` (relative to
    the cycle's peak), then scaled and offset at random (so series differ in scale). Anomaly windows are placed at
    random, never in the first `2 * period` steps (normal behaviour to learn from) and never within `period // 8`
    steps of one another:

    - jump / drop: the value rises / falls by 6-10 noise sigmas for 1-4 steps (a single step must stand out of
      the 2016 noise draws of a week, whose largest is about 3.5 sigmas);
    - level_shift: the level moves up or down by 4-8 noise sigmas for 50-150 steps;
    - flat_line: the value freezes at its last value for 36-96 steps (3-8 hours), placed where the daily cycle
      moves by at least 6 noise sigmas within the window (3 on average), and the noise stops.

    An anomaly hits every channel. The first anomaly of series `i` is `kinds[i % len(kinds)]` (so `count >=
    len(kinds)` series hold every kind), the others are drawn at random. Series `i` depends only on `(seed, i)`:
    `generate_series(5, s)[:3]` equals `generate_series(3, s)`.

    Args:
        count: int. How many series.
        seed: int.
        length: int. Steps per series (2016 = one week of 5-minute samples).
        period: int. Steps per day (288 at 5 minutes).
        kinds: tuple of str, among "jump", "drop", "level_shift", "flat_line"; () gives anomaly-free series.
        anomalies_per_series: (min, max) anomalies per series, both inclusive; (0, 0) gives anomaly-free series.
        noise: float. Noise standard deviation relative to the daily cycle's peak.
        magnitude: None, or (min, max) size of jumps, drops and level shifts in noise sigmas (default: 6-10 for
            jumps and drops, 4-8 for level shifts).
        channels: int. Channels per series (each its own daily cycle).
        start: str. The first timestamp (ISO 8601).

    Returns:
        list of Series (labels all 0 for anomaly-free series), named `synthetic-<seed>-<i>`.

    Example:

    >>> normal = generate_series(3, seed=1, anomalies_per_series=(0, 0))
    >>> [int(s.labels.sum()) for s in normal], str(normal[0].timestamps[1] - normal[0].timestamps[0])
    ([0, 0, 0], '300 seconds')
    """
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise DataError(f"unknown anomaly kind(s) {', '.join(map(repr, unknown))}; choose among {', '.join(KINDS)}")
    low, high = int(anomalies_per_series[0]), int(anomalies_per_series[1])
    if low < 0 or high < low:
        raise DataError(f"anomalies_per_series {anomalies_per_series}: give (min, max) with 0 <= min <= max")
    if length < 2 * period + 8:
        raise DataError(f"length {length}: a series needs more than 2 * period ({2 * period}) steps, the normal "
                        "start anomalies are never placed in; lengthen it or shorten the period")
    timestamps = np.datetime64(start, "s") + np.arange(length) * np.timedelta64(STEP_SECONDS, "s")
    out = []
    for index in range(int(count)):
        rng = np.random.default_rng([int(seed), index])
        values, clean = _normal_signal(rng, length, period, channels, noise)
        wanted = int(rng.integers(low, high + 1)) if kinds else 0
        taken, window_kinds = [], []
        for number in range(wanted):
            kind = kinds[index % len(kinds)] if number == 0 else kinds[int(rng.integers(len(kinds)))]
            for _ in range(200):  # placement attempts; a crowded series gets fewer anomalies
                size = int(rng.integers(_LENGTHS[kind][0], _LENGTHS[kind][1] + 1))
                begin = _place(rng, taken, length, size, 2 * period, period // 8)
                if begin is None or (kind == "flat_line" and not _flat_line_visible(clean, begin, begin + size,
                                                                                      noise)):
                    continue
                end = begin + size
                if kind == "flat_line":
                    values[begin:end] = values[begin - 1]
                else:
                    sign = {"jump": 1.0, "drop": -1.0}.get(kind) or float(rng.choice([-1.0, 1.0]))
                    values[begin:end] += sign * rng.uniform(*(magnitude or _MAGNITUDES[kind])) * noise
                taken.append((begin, end))
                window_kinds.append(kind)
                break
        order = np.argsort([begin for begin, _ in taken]).astype(int)
        taken = [taken[i] for i in order]
        scale, offset = rng.uniform(1.0, 10.0), rng.uniform(0.0, 100.0)
        out.append(Series(f"synthetic-{seed}-{index}", (offset + scale * values).astype(np.float32),
                          timestamps.copy(), windows_to_labels(taken, length), windows=taken,
                          window_kinds=[window_kinds[i] for i in order]))
    return out


# --------------------------------------------------------------------------- CSV files


def parse_timestamp(text):
    """datetime64[s] (UTC) of an ISO 8601 date/time (`2014-04-10 07:15:00`, `...T07:15:00Z`, with an offset) or
    of Unix seconds; raises ValueError when it is neither.

    Example:

    >>> parse_timestamp("2014-04-10 07:15:00.000000"), parse_timestamp("2014-04-10T09:15:00+02:00")
    (np.datetime64('2014-04-10T07:15:00'), np.datetime64('2014-04-10T07:15:00'))
    """
    text = str(text).strip()
    if text.lstrip("+-").replace(".", "", 1).isdigit() and not (text.isdigit() and len(text) == 8):
        return np.datetime64(int(float(text)), "s")  # Unix seconds (but 20140410 is a date)
    moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return np.datetime64(moment.replace(microsecond=0), "s")


def read_anomaly_windows(json_path):
    """Label windows as in NAB's `labels/combined_windows.json`: {file: [[start, end], ...]} of timestamps.

    Entries may also be single timestamps (NAB's `combined_labels.json`: point anomalies), which become
    windows of one step, or [start, end] step indices.

    Returns:
        dict {file key as written (e.g. "realKnownCause/nyc_taxi.csv"): list of (start, end)}.

    Example:

    >>> import json, tempfile
    >>> path = tempfile.mktemp(suffix=".json")
    >>> json.dump({"a/x.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]]}, open(path, "w"))
    >>> read_anomaly_windows(path)
    {'a/x.csv': [('2014-04-10 07:15:00.000000', '2014-04-11 16:45:00.000000')]}
    """
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as error:
        raise DataError(f"{json_path}: cannot read the anomaly windows ({error.strerror or error}); check "
                        "data.windows")
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{json_path}: not a JSON file ({str(error)[:120]}); write the windows as "
                        '{"file.csv": [["start", "end"], ...]} (NAB combined_windows.json)')
    if not isinstance(data, dict):
        raise DataError(f"{json_path}: the windows must be a JSON object {{file: [[start, end], ...]}} (NAB "
                        f"combined_windows.json), not a {type(data).__name__}")
    windows = {}
    for key, entries in data.items():
        if not isinstance(entries, list):
            raise DataError(f"{json_path}: entry {key!r} must be a list of [start, end] pairs, not "
                            f"{type(entries).__name__}")
        pairs = []
        for entry in entries:
            if isinstance(entry, (str, int)) and not isinstance(entry, bool):
                pairs.append((entry, entry))
            elif isinstance(entry, list) and len(entry) == 2:
                pairs.append((entry[0], entry[1]))
            else:
                raise DataError(f"{json_path}: entry {key!r} holds {json.dumps(entry)[:60]}; each window must be "
                                "[start, end] (timestamps or step indices) or one timestamp")
        windows[str(key)] = pairs
    return windows


def _csv_files(path):
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist; set data.path to a CSV file or a directory of CSV files")
    if not os.path.isdir(path):
        return [path]
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                   if name.lower().endswith((".csv", ".tsv")))
    if not files:
        present = sorted(os.listdir(path))[:10]
        raise DataError(f"{path}: no .csv file in this directory (it holds: {', '.join(present) or 'nothing'}); "
                        "set data.path to a CSV file or a directory of them")
    return sorted(files, key=lambda file: os.path.relpath(file, path))


def _decoded_rows(path, delimiter):
    """Yields (line number, row or None, reason) of a CSV file read line by line (a non-UTF-8 line costs its row)."""
    try:
        with open(path, "rb") as f:
            raw_lines = f.read().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}); check data.path")
    for number, raw in enumerate(raw_lines, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None, "not UTF-8"
            continue
        yield number, [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))], None


def _find_column(header, name, path, line, key, what):
    if name in header:
        return header.index(name)
    folded = [column.lower() for column in header]
    if str(name).lower() in folded:
        return folded.index(str(name).lower())
    raise DataError(f"{path}:{line}: no column {name!r} (the columns are {', '.join(map(repr, header))}); set "
                    f"data.{key} to the column holding the {what}")


def _is_number(text):
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def _windows_for(windows, path, root):
    """The windows of one file: a list applies to every file; a dict is looked up by relative path or name."""
    if windows is None:
        return None
    if isinstance(windows, str):
        windows = read_anomaly_windows(windows)
    if not isinstance(windows, dict):
        return list(windows)
    relative = os.path.relpath(path, root).replace(os.sep, "/") if root else os.path.basename(path)
    for key in (relative, os.path.basename(path)):
        if key in windows:
            return windows[key]
    by_name = {os.path.basename(key): value for key, value in windows.items()}
    return by_name.get(os.path.basename(path), [])


def _step_window(window, timestamps, path):
    """(start, end) step indices, end exclusive, of a window of step indices or of timestamps (end inclusive)."""
    start, end = window
    if isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer)):
        return int(start), int(end)
    if timestamps is None:
        raise DataError(f"{path}: anomaly window {window} is given by timestamps but the file has no timestamp "
                        "column; set data.timestamp_column, or give the windows as step indices")
    try:
        first, last = parse_timestamp(start), parse_timestamp(end)
    except ValueError:
        raise DataError(f"{path}: anomaly window {list(window)} has a timestamp that does not parse; write ISO "
                        "8601 timestamps (2014-04-10 07:15:00) as in NAB's combined_windows.json")
    return int(np.searchsorted(timestamps, first, "left")), int(np.searchsorted(timestamps, last, "right"))


def read_series_csv(path, timestamp_column="timestamp", value_columns=None, label_column=None, windows=None,
                    on_error="skip", delimiter=None):
    """Reads NAB-style CSV files (a header row, then one row per step) into Series.

    Rows that do not parse (a value that is not a finite number, a timestamp that does not parse, a wrong
    number of columns, a line that is not UTF-8, a repeated timestamp) are skipped and listed as
    `file:line: reason`, or with `on_error="fail"` raise a DataError saying so. Timestamps must increase (a row
    earlier than the one before raises, naming both lines: sort the file).

    Args:
        path: str. A CSV file, or a directory of them (every `.csv`/`.tsv` below it, one Series per file, sorted
            by relative path).
        timestamp_column: str or None. The column of ISO 8601 timestamps or Unix seconds; None when there is none.
        value_columns: list of str or None. The value channels; None takes every column (other than the
            timestamp and label columns) whose values are mostly numbers.
        label_column: str or None. A column of 0/1 step labels (any number > 0 is anomalous).
        windows: None, a list of (start, end) (timestamp strings, end inclusive as in NAB, or step indices, end
            exclusive) applied to every file, a dict {file: windows} as `read_anomaly_windows` returns (looked up by
            path relative to `path`, then by file name; a file not in it has no anomaly), or the path of such a
            JSON file. With a label column too, a step is anomalous when either says so.
        on_error: "skip" or "fail".
        delimiter: str or None. None: tab for .tsv files, else comma.

    Returns:
        (list of Series, list of str "file:line: reason" of the skipped rows). Without labels and windows a
        Series' labels are None.

    Example:

    >>> import tempfile
    >>> path = tempfile.mktemp(suffix=".csv")
    >>> _ = open(path, "w").write("timestamp,value\\n2014-04-01 00:00:00,1.5\\n2014-04-01 00:05:00,oops\\n"
    ...                           "2014-04-01 00:10:00,2.5\\n")
    >>> series, skipped = read_series_csv(path, windows=[("2014-04-01 00:10:00", "2014-04-01 00:10:00")])
    >>> series[0].values[:, 0].tolist(), series[0].labels.tolist(), skipped[0].split(":", 1)[1]
    ([1.5, 2.5], [0, 1], "3: column 'value': 'oops' is not a number")
    """
    if on_error not in ON_ERROR:
        raise DataError(f"data.on_error: {on_error!r} is not one of {', '.join(ON_ERROR)}")
    root = path if os.path.isdir(path) else None
    out, skipped = [], []
    for file in _csv_files(path):
        series, bad = _read_one_csv(file, timestamp_column, value_columns, label_column,
                                    _windows_for(windows, file, root), on_error, delimiter)
        out.append(series)
        skipped.extend(bad)
    return out, skipped


def _read_one_csv(path, timestamp_column, value_columns, label_column, windows, on_error, delimiter):
    delimiter = delimiter or ("\t" if path.lower().endswith(".tsv") else ",")
    rows, skipped = [], []

    def skip(line, reason):
        where = f"{path}:{line}: {reason}"
        if on_error == "fail":
            raise DataError(f"{where}; fix or remove that line, or set data.on_error: skip to leave such rows out")
        skipped.append(where)

    header, header_line = None, None
    for number, row, reason in _decoded_rows(path, delimiter):
        if header is None:
            if row is None:
                raise DataError(f"{path}:{number}: the header row is not UTF-8; save the file as UTF-8")
            header, header_line = row, number
        elif row is None:
            rows.append((number, None, reason))
        elif len(row) != len(header):
            rows.append((number, None, f"{len(row)} columns where the header has {len(header)}"))
        else:
            rows.append((number, row, None))
    if header is None:
        raise DataError(f"{path}: empty file; a series file needs a header row (e.g. timestamp,value) and rows")
    time_index = (None if timestamp_column is None else
                  _find_column(header, timestamp_column, path, header_line, "timestamp_column",
                               "timestamps (or null when the file has none)"))
    label_index = (None if label_column is None else
                   _find_column(header, label_column, path, header_line, "label_column", "0/1 step labels"))
    parsed = [item for item in rows if item[1] is not None]
    if value_columns is None:
        candidates = [i for i in range(len(header)) if i not in (time_index, label_index)]
        value_indices = [i for i in candidates
                         if sum(_is_number(row[i]) for _, row, _ in parsed) * 2 > len(parsed)]
        if not value_indices:
            raise DataError(f"{path}:{header_line}: no numeric value column (the columns are "
                            f"{', '.join(map(repr, header))}); set data.value_columns to the columns holding the "
                            "values (and data.timestamp_column, data.label_column)")
    else:
        value_columns = [value_columns] if isinstance(value_columns, str) else list(value_columns)
        value_indices = [_find_column(header, name, path, header_line, "value_columns", "values")
                         for name in value_columns]
    values, stamps, labels, lines = [], [], [], []
    for number, row, reason in rows:
        if row is None:  # not UTF-8, or a wrong column count: skipped in file order with the others
            skip(number, reason)
            continue
        try:
            stamp = None
            if time_index is not None:
                try:
                    stamp = parse_timestamp(row[time_index])
                except (ValueError, OverflowError):
                    raise ValueError(f"timestamp {row[time_index][:40]!r} does not parse (expected ISO 8601 like "
                                     "2014-04-10 07:15:00, or Unix seconds)")
            numbers = []
            for i in value_indices:
                try:
                    number_value = float(row[i])
                except ValueError:
                    raise ValueError(f"column {header[i]!r}: {row[i][:40]!r} is not a number")
                if not np.isfinite(number_value):
                    raise ValueError(f"column {header[i]!r}: {row[i][:40]!r} is not a finite number")
                numbers.append(number_value)
            label = 0
            if label_index is not None:
                try:
                    label = int(float(row[label_index]) > 0)
                except ValueError:
                    raise ValueError(f"label column {header[label_index]!r}: {row[label_index][:40]!r} is not 0 "
                                     "or 1")
        except ValueError as error:
            skip(number, str(error))
            continue
        if stamp is not None and stamps:
            if stamp == stamps[-1]:
                skip(number, f"timestamp {row[time_index]} repeats that of line {lines[-1]}")
                continue
            if stamp < stamps[-1]:
                raise DataError(f"{path}:{number}: timestamp {row[time_index]} is earlier than {stamps[-1]} on line "
                                f"{lines[-1]}; timestamps must increase: sort the file by "
                                f"{header[time_index]!r}")
        values.append(numbers)
        stamps.append(stamp)
        labels.append(label)
        lines.append(number)
    if not values:
        first = f" (first: {skipped[0].split(': ', 1)[1]})" if skipped else ""
        raise DataError(f"{path}: no usable row ({len(skipped)} skipped{first}); check the file and data.value_columns")
    timestamps = np.array(stamps, "datetime64[s]") if time_index is not None else None
    step_labels = np.array(labels, np.uint8) if label_index is not None else None
    if windows is not None:
        spans = [_step_window(window, timestamps, path) for window in windows]
        marked = windows_to_labels(spans, len(values))
        step_labels = marked if step_labels is None else np.maximum(step_labels, marked)
    name = os.path.basename(path)
    return Series(name, np.array(values, np.float32), timestamps, step_labels), skipped


# --------------------------------------------------------------------------- windows


def make_windows(values, window, stride=1):
    """Sliding windows over a series: every `stride` steps, plus one ending at the last step.

    Args:
        values: (T, C) or (T,) array.
        window: int. Steps per window.
        stride: int. Steps between window starts.

    Returns:
        ((N, window, C) float32 windows, (N,) int64 start indices); every step is in at least one window.

    Example:

    >>> windows, starts = make_windows(np.arange(10.0), 4, 3)
    >>> windows.shape, starts.tolist()
    ((3, 4, 1), [0, 3, 6])
    """
    values = np.asarray(values, np.float32)
    if values.ndim == 1:
        values = values[:, None]
    window, stride = int(window), int(stride)
    if window < 1 or stride < 1:
        raise DataError(f"window {window} and stride {stride}: both must be at least 1")
    if len(values) < window:
        raise DataError(f"a series of {len(values)} steps is shorter than the window ({window} steps); use a "
                        "shorter window or longer series")
    starts = np.arange(0, len(values) - window + 1, stride, dtype=np.int64)
    if starts[-1] != len(values) - window:
        starts = np.append(starts, len(values) - window)
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (T - window + 1, C, window)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1)), starts


def window_labels(labels, starts, window):
    """Per-window labels: 1 when any step of the window is anomalous.

    Example:

    >>> window_labels([0, 0, 1, 0, 0, 0], [0, 2, 3], 2).tolist()
    [0, 1, 0]
    """
    flags = np.concatenate([[0], np.cumsum(np.asarray(labels).reshape(-1) > 0)])
    starts = np.asarray(starts, np.int64)
    return (flags[starts + int(window)] - flags[starts] > 0).astype(np.uint8)


def step_scores(scores, starts, window, length, reduce="mean", fill=np.nan):
    """Per-step anomaly scores from per-window scores or per-window-per-step errors.

    Args:
        scores: (N,) one score per window (spread over its steps), (N, window) one per window and step (an
            autoencoder's reconstruction error), or (N, window, C) (averaged over channels first).
        starts: (N,) window start indices (from `make_windows`).
        window: int. Steps per window.
        length: int. Steps of the series.
        reduce: "mean" or "max" over the windows covering a step.
        fill: the score of a step no window covers.

    Returns:
        (length,) float32.

    Example:

    >>> step_scores(np.array([1.0, 3.0]), np.array([0, 2]), 3, 5).tolist()
    [1.0, 1.0, 2.0, 3.0, 3.0]
    >>> step_scores(np.array([1.0, 3.0]), np.array([0, 2]), 3, 5, reduce="max").tolist()
    [1.0, 1.0, 3.0, 3.0, 3.0]
    """
    scores = np.asarray(scores, np.float64)
    starts = np.asarray(starts, np.int64)
    window = int(window)
    if scores.ndim == 3:
        scores = scores.mean(axis=2)
    if scores.ndim == 1:
        scores = np.repeat(scores[:, None], window, axis=1)
    if scores.shape != (len(starts), window):
        raise DataError(f"scores of shape {scores.shape} for {len(starts)} windows of {window} steps; give (N,), "
                        "(N, window) or (N, window, channels)")
    if len(starts) and (starts.min() < 0 or starts.max() + window > length):
        raise DataError(f"windows of {window} steps starting at {starts.min()}..{starts.max()} do not fit in a "
                        f"series of {length} steps; give the starts make_windows returned for that series")
    steps = (starts[:, None] + np.arange(window)).reshape(-1)
    flat = scores.reshape(-1)
    counts = np.bincount(steps, minlength=length)[:length]
    if reduce == "mean":
        out = np.bincount(steps, weights=flat, minlength=length)[:length] / np.maximum(counts, 1)
    elif reduce == "max":
        out = np.full(length, -np.inf)
        np.maximum.at(out, steps, flat)
    else:
        raise DataError(f"reduce {reduce!r}: choose mean or max")
    out[counts == 0] = fill
    return out.astype(np.float32)


def fit_normaliser(series_list, normal_only=True):
    """Per-channel (mean, std) over every step of the series (only unlabelled-normal steps with `normal_only`).

    Args:
        series_list: list of Series or of (T, C) arrays.
        normal_only: bool. Leave out steps labelled anomalous.

    Returns:
        ((C,) float32 mean, (C,) float32 std); a constant channel gets std 1.

    Example:

    >>> mean, std = fit_normaliser([Series("a", np.array([1.0, 3.0]))])
    >>> mean.tolist(), std.tolist()
    ([2.0], [1.0])
    """
    parts = []
    for item in series_list:
        values = item.values if isinstance(item, Series) else np.asarray(item, np.float32)
        values = values[:, None] if values.ndim == 1 else values
        if normal_only and isinstance(item, Series) and item.labels is not None:
            values = values[item.labels == 0]
        parts.append(values.astype(np.float64))
    widths = sorted({part.shape[1] for part in parts})
    if len(widths) != 1:
        raise DataError(f"series with different channel counts ({', '.join(map(str, widths))}); give every series "
                        "the same value columns (data.value_columns)")
    data = np.concatenate(parts)
    if not len(data):
        raise DataError("no step to fit the normaliser on (every step is labelled anomalous or the series are "
                        "empty)")
    mean, std = data.mean(axis=0), data.std(axis=0)
    std = np.where(std > 1e-8 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def normalise(values, mean, std):
    """(values - mean) / std as float32 (per channel, broadcast over the last axis).

    Example:

    >>> normalise(np.array([[1.0], [3.0]]), np.array([2.0]), np.array([1.0]))[:, 0].tolist()
    [-1.0, 1.0]
    """
    return ((np.asarray(values, np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(
        np.float32)


# --------------------------------------------------------------------------- UCR sets


def ucr_directory():
    """The data cache folder `toolkit data fetch ucr` fills."""
    from toolkit.data.fetch import FETCHABLE, data_cache

    return data_cache(FETCHABLE["ucr"][1])


def _ucr_file(directory, name, split):
    for candidate in (os.path.join(directory, f"{name}_{split}.ts"),
                      os.path.join(directory, name, f"{name}_{split}.ts"),
                      os.path.join(directory, f"{name}_{split}.tsv"),
                      os.path.join(directory, name, f"{name}_{split}.tsv")):
        if os.path.isfile(candidate):
            return candidate
    present = sorted({entry.split("_TRAIN")[0].split("_TEST")[0] for entry in os.listdir(directory)
                      if "_TRAIN" in entry or "_TEST" in entry or os.path.isdir(os.path.join(directory, entry))}
                     ) if os.path.isdir(directory) else []
    fetched = "" if present else "; fetch the UCR sets with: toolkit data fetch ucr"
    return DataError(f"no {name}_{split}.ts in {directory} (sets there: {', '.join(present) or 'none'}){fetched}; "
                     f"or set data.path to a directory holding {name}_TRAIN.ts and {name}_TEST.ts")


def read_ts(path):
    """Reads a UCR/UEA `.ts` file (sktime's format) of equal-length instances.

    Header lines start with `@` (`@classLabel true 1 2`, `@dimensions 6`, ...), `#` lines are comments; each line
    after `@data` is one instance: its dimensions separated by `:`, each a comma-separated series, then the class
    label. A `.tsv` file is the UCR 2018 layout (label, then the values, tab-separated; univariate).

    Returns:
        ((N, L, C) float32 instances, list of N str class labels, list of str classes as the header lists them).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({getattr(error, 'strerror', None) or error}); fetch the UCR sets "
                        "again with: toolkit data fetch ucr")
    instances, labels, classes, in_data = [], [], [], path.lower().endswith(".tsv")
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not in_data:
            words = text.split()
            key = words[0].lower()
            if key == "@data":
                in_data = True
            elif key == "@classlabel":
                if len(words) < 2 or words[1].lower() != "true":
                    raise DataError(f"{path}:{number}: this set has no class labels (a regression set?); anomaly "
                                    "detection on UCR sets needs a classification set such as GunPoint")
                classes = words[2:]
            elif key == "@timestamps" and len(words) > 1 and words[1].lower() == "true":
                raise DataError(f"{path}:{number}: series with timestamps are not supported; use a set without "
                                "(@timeStamps false)")
            continue
        if path.lower().endswith(".tsv"):
            fields = text.split("\t")
            label, dimensions = fields[0], [fields[1:]]
        else:
            parts = text.split(":")
            label, dimensions = parts[-1].strip(), [part.split(",") for part in parts[:-1]]
        try:
            instance = np.array([[float(value) for value in dimension] for dimension in dimensions], np.float32)
        except ValueError:
            raise DataError(f"{path}:{number}: a value is not a number (missing values `?` are not supported); "
                            "use a set without missing values")
        if instance.ndim != 2 or not instance.size:
            raise DataError(f"{path}:{number}: the dimensions of this instance have different lengths; read_ucr "
                            "takes equal-length sets (e.g. GunPoint, ItalyPowerDemand, ArrowHead, BasicMotions)")
        if instances and instance.shape != instances[0].shape:
            raise DataError(f"{path}:{number}: an instance of {instance.shape[1]} steps x {instance.shape[0]} "
                            f"dimensions after ones of {instances[0].shape[1]} x {instances[0].shape[0]}; read_ucr "
                            "takes equal-length sets (e.g. GunPoint, ItalyPowerDemand, ArrowHead, BasicMotions)")
        instances.append(instance)
        labels.append(label)
    if not instances:
        raise DataError(f"{path}: no instance after @data; fetch the UCR sets again with: toolkit data fetch ucr")
    return np.stack(instances).transpose(0, 2, 1).copy(), labels, classes or sorted(set(labels))


def read_ucr(directory, name, normal_class=None):
    """A UCR/UEA classification set as an anomaly detection problem: one class is normal, the others anomalous.

    The sktime 1.2.0 wheel (`toolkit data fetch ucr`) ships, as equal-length `.ts` train/test files: ArrowHead
    (3 classes, 251 steps), BasicMotions (4 classes, 100 steps, 6 channels), GunPoint (2 classes, 150 steps),
    ItalyPowerDemand (2 classes, 24 steps) and OSULeaf (6 classes, 427 steps).

    Args:
        directory: str or None. Where `<name>_TRAIN.ts` and `<name>_TEST.ts` are (directly or in `<name>/`); None:
            the data cache of `toolkit data fetch ucr`.
        name: str. The set, e.g. "GunPoint".
        normal_class: str or int or None. The normal class label as the file writes it ("1", "Standing"); None:
            the first class the header lists.

    Returns:
        (train normal instances (N, L, C) float32, test instances (M, L, C) float32, test labels (M,) uint8 with
        0 normal and 1 anomalous (any class other than `normal_class`)).

    Example (after `toolkit data fetch ucr`):

    >>> train, test, labels = read_ucr(None, "GunPoint", normal_class=1)   # doctest: +SKIP
    >>> train.shape, test.shape, labels.mean()                             # doctest: +SKIP
    ((24, 150, 1), (150, 150, 1), 0.5)
    """
    directory = ucr_directory() if directory is None else directory
    files = {}
    for split in ("TRAIN", "TEST"):
        found = _ucr_file(directory, name, split)
        if isinstance(found, DataError):
            raise found
        files[split] = found
    train, train_labels, classes = read_ts(files["TRAIN"])
    test, test_labels, _ = read_ts(files["TEST"])
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{files['TEST']}: instances of shape {test.shape[1:]} where the training ones are "
                        f"{train.shape[1:]}; the two files must be of the same set")
    normal = classes[0] if normal_class is None else str(normal_class)
    known = sorted(set(classes) | set(train_labels))
    if normal not in known:
        raise DataError(f"{name}: no class {normal!r} (its classes: {', '.join(known)}); set the normal class to "
                        "one of them")
    keep = np.array([label == normal for label in train_labels])
    if not keep.any():
        raise DataError(f"{files['TRAIN']}: no training instance of class {normal!r}; choose another normal class "
                        f"among {', '.join(known)}")
    anomalous = np.array([label != normal for label in test_labels], np.uint8)
    return train[keep], test, anomalous
