"""`toolkit runs list` and `toolkit runs compare`: run directories side by side, read from their files only.

Nothing here imports TensorFlow or Keras: a run is its recipe.yaml, state.json, metrics.json, history.csv
and export/verify.json (`toolkit.runs` describes them), so listing a hundred tune trials takes a moment.
Only `compare_runs` imports matplotlib, for its PNG.

Example:

>>> from toolkit.run_table import list_runs, format_runs, compare_runs
>>> print(format_runs(list_runs(["saved_models"], sort="accuracy")))  # doctest: +SKIP
>>> comparison = compare_runs(["saved_models/tiny", "saved_models/tiny-2"], output="cmp.png")  # doctest: +SKIP
>>> comparison["differences"], comparison["plot"]  # doctest: +SKIP
"""

import datetime
import json
import math
import os
import re

from toolkit.errors import RunError, did_you_mean
from toolkit.runs import RunDirectory

MAX_DEPTH = 3  # <dir>/tune-<name>/trials/trial-NNN
SKIP_DIRS = frozenset({"export", "checkpoints", "logs", "_backup", "wandb", "mlartifacts", "mlruns", "samples",
                       "__pycache__", "node_modules"})
IGNORED_KEYS = ("name", "output.dir")  # differ between any two runs by construction
SHOWN_DIFFERENCES = 3
RUN_TOKEN = "<run>"  # a run's own path inside a recipe value


class RunRows(list):
    """The rows of `list_runs` (a plain list to JSON), remembering the directories searched."""

    def __init__(self, rows, dirs):
        super().__init__(rows)
        self.dirs = list(dirs)


# ----------------------------------------------------------------------------------------------- reading a run


def is_run_dir(path):
    """Whether `path` is a run directory (it holds recipe.yaml and state.json)."""
    return os.path.isfile(os.path.join(path, "recipe.yaml")) and os.path.isfile(os.path.join(path, "state.json"))


def find_runs(directory, depth=MAX_DEPTH):
    """The run directories at or under `directory`, up to `depth` levels down, in name order.

    A run directory is not searched further, nor are hidden folders and the folders a run or a tracker
    writes (export/, checkpoints/, logs/, _backup/, wandb/, mlartifacts/).
    """
    if is_run_dir(directory):
        return [directory]
    found = []

    def walk(path, level):
        try:
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                continue
            try:
                if not entry.is_dir():
                    continue
            except OSError:
                continue
            if is_run_dir(entry.path):
                found.append(entry.path)
            elif level < depth:
                walk(entry.path, level + 1)

    walk(directory, 1)
    return found


def _read(path, problems, kind="json"):
    """A JSON or YAML file as a dict: {} when missing; {} and a note in `problems` when unreadable."""
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            if kind == "json":
                data = json.load(f)
            else:
                import yaml

                data = yaml.safe_load(f)
    except Exception as error:  # noqa: BLE001 - bad JSON/YAML, unreadable: noted, the rest of the run still shows
        problems.append(f"{os.path.basename(path)} is unreadable ({_first_line(error)})")
        return {}
    if not isinstance(data, dict):
        if data is not None:
            problems.append(f"{os.path.basename(path)} does not hold a mapping")
        return {}
    return data


def _section(recipe, key):
    """A recipe section as a dict ({} when absent or not a mapping)."""
    value = recipe.get(key)
    return value if isinstance(value, dict) else {}


def _first_line(error):
    from toolkit.errors import first_line

    return first_line(error, 120)


def metric_mode(name):
    """'max' for accuracy-like metric names, 'min' for losses and errors (the trainer's rule, which imports no
    Keras)."""
    from toolkit.config.tune import monitor_mode

    return monitor_mode(str(name))


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def flatten(data, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are values."""
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _test_scalars(test):
    """The finite numbers of a metrics["test"] dict, nested ones as dotted keys (per-class tables left out)."""
    flat = flatten({key: value for key, value in test.items() if key != "per_class"})
    return {key: value for key, value in flat.items() if _finite(value)}


_SUMMARIES = {}


def headline_metrics(task, test):
    """The task's headline test metrics (`Predictor.summary_metrics`); else the first few finite scalars."""
    if not test:
        return {}
    if task not in _SUMMARIES:
        try:
            from toolkit.tasks import predictor_class

            _SUMMARIES[task] = predictor_class(task).summary_metrics
        except Exception:  # noqa: BLE001 - an unknown or unloadable task: its scalars stand in
            _SUMMARIES[task] = None
    summary = _SUMMARIES[task]
    if summary is not None:
        try:
            picked = dict(summary(test))
        except Exception:  # noqa: BLE001 - metrics written by another version of the task
            picked = {}
        picked = {key: (value if _finite(value) else None) for key, value in picked.items()
                  if _finite(value) or value is None}
        if any(value is not None for value in picked.values()):
            return picked
    scalars = [(key, value) for key, value in _test_scalars(test).items() if not key.endswith("_seconds")]
    return dict(scalars[:4])


def _best(history, metric):
    """{"metric", "value", "epoch"} of the best epoch of a history column, or None."""
    values = history.get(metric) or []
    points = [(value, index) for index, value in enumerate(values) if _finite(value)]
    if not points:
        return None
    pick = max if metric_mode(metric) == "max" else min
    value, index = pick(points, key=lambda point: point[0])
    epochs = history.get("epoch") or []
    epoch = int(epochs[index]) + 1 if index < len(epochs) and _finite(epochs[index]) else index + 1
    return {"metric": metric, "value": value, "epoch": epoch}


def _export_status(path, recipe, problems):
    """The formats exported into the run and their parity verdict."""
    from toolkit.exporters.formats import FORMATS

    export_dir = os.path.join(path, "export")
    if not os.path.isdir(export_dir):
        return {"formats": [], "parity": None, "failed": []}
    wanted = _section(recipe, "export").get("formats") or []
    wanted = wanted if isinstance(wanted, list) else []
    order = [name for name in wanted if name in FORMATS.names()] + \
            [name for name in FORMATS.names() if name not in wanted]
    present = [name for name in order if os.path.exists(os.path.join(export_dir, FORMATS.get(name).artifact))]
    verify = _read(os.path.join(export_dir, "verify.json"), problems)
    formats = verify.get("formats") if isinstance(verify.get("formats"), dict) else {}
    failed = [name for name, entry in formats.items() if isinstance(entry, dict) and entry.get("passed") is False]
    if not verify:
        parity = None
    elif "passed" in verify:
        parity = "ok" if verify["passed"] and not failed else "FAILED"
    else:
        parity = "FAILED" if failed else "ok"
    return {"formats": present, "parity": parity, "failed": failed}


def _timestamp(text):
    try:
        moment = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _family(path, recipe):
    """Runs of one recipe: `fashion_mnist-3` goes with `fashion_mnist`, and a tune study's trials
    (<study>/trials/trial-NNN) and final run (<study>/final) with the recipe it tuned (study tune-<recipe>)."""
    parts = os.path.abspath(path).split(os.sep)
    study = None
    if len(parts) >= 3 and parts[-2] == "trials":
        study = parts[-3]
    elif len(parts) >= 2 and parts[-1] == "final" and (
            parts[-2].startswith("tune-") or os.path.isdir(os.path.join(os.path.dirname(path), "trials"))):
        study = parts[-2]
    if study:
        return study[5:] if study.startswith("tune-") and len(study) > 5 else study
    return re.sub(r"-\d+$", "", str(recipe.get("name") or parts[-1]))


def normalized_recipe(recipe, run_path):
    """The flattened recipe without the keys that differ by construction, the run's own path as <run>."""
    flat = flatten(recipe)
    for key in IGNORED_KEYS:
        flat.pop(key, None)
    run_path = os.path.abspath(run_path)
    for key, value in flat.items():
        if isinstance(value, str) and run_path in value:
            flat[key] = value.replace(run_path, RUN_TOKEN)
    return flat


def read_run(path, name=None):
    """One run's row: everything `toolkit runs list` shows of it (JSON-serialisable), from its files.

    Args:
        path: str. The run directory.
        name: str. How the run is named in the table (default: its directory name).
    """
    from toolkit.plots import read_history

    path = os.path.abspath(path)
    problems = []
    recipe = _read(os.path.join(path, "recipe.yaml"), problems, kind="yaml")
    state = _read(os.path.join(path, "state.json"), problems)
    metrics = _read(os.path.join(path, "metrics.json"), problems)
    try:
        history = read_history(os.path.join(path, "history.csv"))
    except Exception as error:  # noqa: BLE001 - a damaged history: noted, the rest of the run still shows
        problems.append(f"history.csv is unreadable ({_first_line(error)})")
        history = {}
    task = metrics.get("task") or recipe.get("task")
    task = task if isinstance(task, str) else None
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    monitor = state.get("monitor") or _section(recipe, "train").get("monitor")
    monitor = monitor if isinstance(monitor, str) and monitor in history else None
    epochs = metrics.get("epochs_completed", state.get("epoch"))
    if epochs is None and history:
        epochs = len(next(iter(history.values())))
    seconds = metrics.get("train_seconds", state.get("train_seconds"))
    try:
        updated = os.path.getmtime(os.path.join(path, "state.json"))
    except OSError:
        updated = None
    finished = metrics.get("finished")
    return {
        "name": name or os.path.basename(path),
        "path": path,
        "task": task,
        "status": state.get("status") or ("complete" if metrics else "unknown"),
        "metrics": headline_metrics(task, test),
        "best": _best(history, monitor) if monitor else None,
        "epochs": epochs if isinstance(epochs, int) else None,
        "epochs_planned": _section(recipe, "train").get("epochs"),
        "train_seconds": round(float(seconds), 1) if _finite(seconds) else None,
        "export": _export_status(path, recipe, problems),
        "finished": finished,
        "updated": (datetime.datetime.fromtimestamp(updated, datetime.timezone.utc).isoformat(timespec="seconds")
                    if updated is not None else None),
        "monitor": state.get("monitor") if isinstance(state.get("monitor"), str) else None,
        "problems": problems,
        "_time": _timestamp(finished) if finished else updated,
        "_test": _test_scalars(test),
        "_recipe": normalized_recipe(recipe, path),
        "_family": (task, _family(path, recipe)),
        "_history": history,
    }


def _public(row):
    return {key: value for key, value in row.items() if not key.startswith("_")}


# ------------------------------------------------------------------------------------------------- runs list


def list_runs(dirs, sort=None):
    """One row per run directory at or under each of `dirs` (up to three levels down: tune trials show too).

    Rows are newest first (finished time, else the last state change); with `sort`, by that test metric, best
    first (higher is better for accuracy-like names, lower for losses and errors), runs without it last. Each
    row's `differs` holds the recipe keys whose values differ from the first complete run of the same recipe in
    the table (same task, same recipe name up to a `-N` suffix, a tune study's trials with the recipe they
    tuned; its first run when none is complete).

    Args:
        dirs: list of str. Directories holding runs (or run directories).
        sort: str or None. A test metric name, e.g. "accuracy" (nested ones dotted, e.g. "validation.bleu").

    Returns:
        RunRows: a list of JSON-serialisable dicts (name, path, task, status, metrics, best, epochs,
        epochs_planned, train_seconds, export, finished, updated, monitor, reference, differs, problems).
    """
    dirs = list(dirs) or ["saved_models"]
    rows = []
    for directory in dirs:
        if not os.path.exists(directory):
            raise RunError(f"{directory}: no such directory")
        if not os.path.isdir(directory):
            raise RunError(f"{directory} is not a directory; give a directory holding run directories")
        for path in find_runs(directory):
            relative = os.path.relpath(path, directory)
            name = os.path.basename(os.path.abspath(path)) if relative == "." else relative.replace(os.sep, "/")
            if len(dirs) > 1:
                name = os.path.normpath(os.path.join(directory, name if relative != "." else "")).replace(
                    os.sep, "/")
            rows.append(read_run(path, name))
    rows.sort(key=lambda row: -(row["_time"] or 0.0))
    if sort:
        sort = sort.removeprefix("test.")
        known = sorted({key for row in rows for key in row["_test"]})
        if rows and sort not in known:
            where = " or ".join(dirs)
            have = f"their test metrics: {', '.join(known[:12])}" if known else "no run there has test metrics yet"
            raise RunError(f"--sort {sort}: no run under {where} has a test metric {sort!r}; "
                           f"{have}{did_you_mean(sort, known)}")
        sign = -1.0 if metric_mode(sort) == "max" else 1.0
        rows.sort(key=lambda row: (0, sign * row["_test"][sort]) if sort in row["_test"] else (1, 0.0))
        for row in rows:
            if sort in row["_test"]:
                row["metrics"] = {sort: row["_test"][sort], **row["metrics"]}
    _mark_differences(rows)
    return RunRows([_public(row) for row in rows], dirs)


def _mark_differences(rows):
    """Sets each row's `reference` (the first complete run of its recipe family in the table, else its first
    run) and `differs` ({key: value} that differ from the reference's recipe)."""
    first = {}
    for row in rows:  # the first complete run of each family, else its first run
        if row["status"] == "complete":
            first.setdefault(row["_family"], row)
    for row in rows:
        first.setdefault(row["_family"], row)
    for row in rows:
        reference = first[row["_family"]]
        if reference is row:
            row["reference"] = None
            row["differs"] = {}
            continue
        row["reference"] = reference["name"]
        row["differs"] = _differences(row["_recipe"], reference["_recipe"])


def _differences(recipe, reference):
    """{key: value in recipe} for the keys whose value differs from `reference` (None where unset)."""
    keys = list(recipe) + [key for key in reference if key not in recipe]
    return {key: recipe.get(key) for key in keys if recipe.get(key, _UNSET) != reference.get(key, _UNSET)}


_UNSET = object()


# ----------------------------------------------------------------------------------------------- formatting


def _number(value):
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def value_text(value, limit=40):
    """A recipe value as short text: null, true, 0.001, [32, 32], a string cut to `limit`."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(value_text(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{}" if not value else json.dumps(value, default=str)
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def duration(seconds):
    """12 s, 3.5 min, 1.2 h ('-' when unknown)."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _when(text):
    """An ISO time as local 'YYYY-MM-DD HH:MM' ('-' when none)."""
    if not text:
        return "-"
    stamp = _timestamp(text)
    if stamp is None:
        return str(text)
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _metrics_cell(row, count=2):
    shown = [(key, value) for key, value in row["metrics"].items() if key != "examples" and value is not None]
    if shown:
        return "  ".join(f"{key} {_number(value)}" for key, value in shown[:count])
    best = row.get("best")
    if best:
        return f"best {best['metric']} {_number(best['value'])} (epoch {best['epoch']})"
    return "-"


def _epochs_cell(row):
    epochs = "-" if row["epochs"] is None else str(row["epochs"])
    planned = row.get("epochs_planned")
    if row["status"] != "complete" and isinstance(planned, int) and row["epochs"] != planned:
        return f"{epochs}/{planned}"
    return epochs


def _export_cell(export):
    formats = ",".join(export["formats"])
    if export["parity"] == "ok":
        return f"{formats} parity ok".strip()
    if export["parity"] == "FAILED":
        failed = f" ({','.join(export['failed'])})" if export["failed"] else ""
        return f"{formats} parity FAILED{failed}".strip()
    return f"{formats} (not verified)" if formats else "-"


def _differs_cell(row, is_reference):
    differs = row.get("differs") or {}
    if not differs:
        return "(reference)" if is_reference else ("(same recipe)" if row.get("reference") else "")
    items = [f"{key}={value_text(value, 24)}" for key, value in differs.items()]
    more = f" +{len(items) - SHOWN_DIFFERENCES} more" if len(items) > SHOWN_DIFFERENCES else ""
    return " ".join(items[:SHOWN_DIFFERENCES]) + more


def text_table(header, rows):
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(str(line[index])) for line in [header, *rows]) for index in range(len(header))]
    lines = []
    for line in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_runs(rows):
    """The text table of `list_runs`: one line per run, then notes."""
    if not rows:
        dirs = getattr(rows, "dirs", None)
        where = f" under {', '.join(dirs)}" if dirs else ""
        return (f"no runs{where} (a run directory holds recipe.yaml and state.json; searched {MAX_DEPTH} "
                f"levels down)")
    references = {row.get("reference") for row in rows}
    table = [[row["name"], row.get("task") or "?", row["status"], _metrics_cell(row), _epochs_cell(row),
              duration(row.get("train_seconds")), _export_cell(row["export"]), _when(row.get("finished")),
              _differs_cell(row, row["name"] in references)] for row in rows]
    header = ["run", "task", "status", "test metrics", "epochs", "time", "export", "finished", "differs"]
    lines = [text_table(header, table)]
    if any(row.get("differs") for row in rows):
        lines.append("differs: recipe keys whose value differs from the (reference) run of the same recipe, "
                     "its first complete run in this table (--json has them all)")
    for row in rows:
        lines += [f"note: {row['name']}: {problem}" for problem in row.get("problems") or []]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- runs compare


def _labels(paths):
    """Short distinct labels: the directory name, with parent folders added where two would clash."""
    parts = [os.path.abspath(path).split(os.sep) for path in paths]
    depth = {index: 1 for index in range(len(paths))}
    while True:
        labels = ["/".join(part[-depth[index]:]) for index, part in enumerate(parts)]
        clashes = {index for index, label in enumerate(labels) if labels.count(label) > 1}
        grow = [index for index in clashes if depth[index] < len(parts[index])]
        if not grow:
            break
        for index in grow:
            depth[index] += 1
    seen = {}
    for index, label in enumerate(labels):  # the same directory given twice
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[index] = f"{label} #{seen[label]}"
    return labels


def compare_runs(run_paths, metric=None, output="runs_compare.png"):
    """Compares run directories: the recipe keys whose values differ, each run's headline test metrics, time,
    epochs and export status, and one PNG overlaying their per-epoch curves of `metric`.

    Args:
        run_paths: list of str. Run directories (one is allowed).
        metric: str or None. The history column to plot (default: the first run's monitor, else val_loss);
            its training-side twin (accuracy beside val_accuracy) is drawn dashed where the history has it.
        output: str. The PNG to write (a directory: runs_compare.png inside it).

    Returns:
        dict: runs (rows as `list_runs`, with `best` of the plotted metric), differences ({key: {run: value}},
        a run without the key left out),
        metric, train_metric, plot (the PNG's absolute path, or None when no run has the metric), notes.
    """
    run_paths = list(run_paths)
    if not run_paths:
        raise RunError("give at least one run directory to compare")
    runs = [RunDirectory.open(path) for path in run_paths]
    labels = _labels([run.path for run in runs])
    rows = [read_run(run.path, label) for run, label in zip(runs, labels)]
    notes = [f"{row['name']}: {problem}" for row in rows for problem in row["problems"]]

    keys = []
    for row in rows:
        keys += [key for key in row["_recipe"] if key not in keys]
    differences = {}
    for key in keys:
        values = [row["_recipe"].get(key, _UNSET) for row in rows]
        if any(value != values[0] for value in values[1:]):
            differences[key] = {row["name"]: value for row, value in zip(rows, values) if value is not _UNSET}

    given = metric
    metric = metric or rows[0].get("monitor") or "val_loss"
    train_metric = metric[4:] if metric.startswith("val_") else None
    curves = []
    for row in rows:
        history = row["_history"]
        if metric not in history:
            if not os.path.isfile(os.path.join(row["path"], "history.csv")):
                notes.append(f"{row['name']} has no history.csv yet (status {row['status']}): no {metric} curve")
            elif not history:
                if not any(problem.startswith("history.csv") for problem in row["problems"]):
                    notes.append(f"{row['name']}: history.csv has no epochs yet: no {metric} curve")
            else:
                columns = [key for key in history if key != "epoch"]
                notes.append(f"{row['name']} has no history column {metric} (its columns: {', '.join(columns)})")
            continue
        row["best"] = _best(history, metric)
        curves.append((row["name"], history))
    columns = sorted({key for row in rows for key in row["_history"] if key != "epoch"})
    if not curves and given and columns:
        raise RunError(f"--metric {metric}: no run has a history column {metric!r}; their columns: "
                       f"{', '.join(columns)}{did_you_mean(metric, columns)}")
    dashed = bool(train_metric) and any(train_metric in history for _, history in curves)
    plot = _plot_curves(curves, metric, train_metric if dashed else None, output) if curves else None
    if not curves:
        notes.append(f"no run has a history column {metric}: no plot written")
    return {
        "runs": [_public(row) for row in rows],
        "differences": differences,
        "ignored_keys": list(IGNORED_KEYS),
        "metric": metric,
        "train_metric": train_metric if dashed else None,
        "plot": plot,
        "notes": notes,
    }


def _plot_curves(curves, metric, train_metric, output):
    """Writes the overlaid curves; returns the PNG's absolute path."""
    from toolkit.atomic import atomic_path
    from toolkit.plots import _pyplot

    path = os.path.abspath(output)
    if os.path.isdir(path):
        path = os.path.join(path, "runs_compare.png")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(8, 4.8))
    for index, (label, history) in enumerate(curves):
        values = history[metric]
        epochs = history.get("epoch")
        x = [value + 1 for value in epochs] if epochs and len(epochs) == len(values) else range(1, len(values) + 1)
        colour = f"C{index % 10}"
        marker = "o" if len(values) <= 30 else None
        axis.plot(x, values, color=colour, marker=marker, markersize=4, label=label)
        if train_metric and train_metric in history:
            axis.plot(x, history[train_metric], color=colour, linestyle="--", alpha=0.7)
    title = f"{metric} per epoch" + (f" (dashed: {train_metric})" if train_metric else "")
    axis.set_title(title)
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    except OSError as error:
        raise RunError(f"--output {output}: cannot write the PNG ({error.strerror or error})")
    finally:
        plt.close(figure)
    return path


def format_comparison(comparison):
    """The text of `compare_runs`: recipe differences, a metrics table, the PNG and notes."""
    rows = comparison["runs"]
    names = [row["name"] for row in rows]
    lines = []
    differences = comparison["differences"]
    ignored = ", ".join(comparison.get("ignored_keys", IGNORED_KEYS))
    if len(rows) < 2:
        lines.append(f"Recipe differences: one run only ({names[0]})")
    elif not differences:
        lines.append(f"Recipe differences: none (besides {ignored})")
    else:
        keys = f"{len(differences)} key{'s' if len(differences) > 1 else ''}"
        lines.append(f"Recipe differences ({keys}; {ignored} left out)")
        table = [[key, *(value_text(values[name]) if name in values else "(unset)" for name in names)]
                 for key, values in differences.items()]
        lines.append(_indent(text_table(["key", *names], table)))
    metric_keys = []
    for row in rows:
        metric_keys += [key for key, value in row["metrics"].items()
                        if key not in metric_keys and key != "examples" and value is not None]
    metric_keys = metric_keys[:5]
    metric = comparison["metric"]
    header = ["run", "status", *metric_keys, f"best {metric}", "epochs", "time", "export"]
    table = []
    for row in rows:
        best = row.get("best") if (row.get("best") or {}).get("metric") == metric else None
        table.append([row["name"], row["status"],
                      *(_number(row["metrics"][key]) if row["metrics"].get(key) is not None else "-"
                        for key in metric_keys),
                      f"{_number(best['value'])} (epoch {best['epoch']})" if best else "-",
                      _epochs_cell(row), duration(row.get("train_seconds")), _export_cell(row["export"])])
    lines += ["", "Test metrics", _indent(text_table(header, table)), ""]
    if comparison["plot"]:
        dashed = f", dashed: {comparison['train_metric']}" if comparison.get("train_metric") else ""
        lines.append(f"Curves ({metric}{dashed}): {comparison['plot']}")
    lines += [f"note: {note}" for note in comparison.get("notes") or []]
    return "\n".join(lines)


def _indent(text, prefix="  "):
    return "\n".join(prefix + line for line in text.splitlines())
