"""Text reports shared by the CLI and the Python API: run summary, metrics and parity tables.

Example:

>>> from toolkit.reports import metrics_table
>>> print(metrics_table({"accuracy": 0.9312, "examples": 2000}))
  accuracy         0.9312
  examples         2000
"""

import json
import os


def _diff(value):
    return "n/a" if value is None else f"{value:.2e}"


TIMING_SUFFIXES = ("_seconds", "_per_second", "realtime_factor")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(metrics, indent="  "):
    """The numbers of a metrics dict, one per line: scores first, then nested sections (e.g. validation), the
    per-class table when there is one (its columns are whatever numbers the rows hold), and timings last.

    Example:

    >>> print(metrics_table({"wer": 0.1234, "decoding_seconds": 1.5}))
      wer              0.1234
    <BLANKLINE>
      timings
        decoding_seconds 1.5000
    """
    scores, timings, sections = [], [], []
    for key, value in metrics.items():
        if _is_number(value):
            (timings if key.endswith(TIMING_SUFFIXES) else scores).append(f"{indent}{key:<16} {_number(value)}")
        elif isinstance(value, dict) and key != "per_class" and any(_is_number(v) for v in value.values()):
            sections.append(f"\n{indent}{key}\n" + metrics_table(value, indent + "  "))
    lines = scores + sections
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        columns = []
        for row in per_class.values():
            columns += [key for key, value in row.items() if (_is_number(value) or value is None)
                        and key not in columns]
        lines.append(f"\n{indent}{'class':<20} " + " ".join(f"{column:>9}" for column in columns))
        for name, row in per_class.items():
            cells = [row.get(column) for column in columns]
            lines.append(f"{indent}{str(name)[:20]:<20} " + " ".join(
                f"{'n/a' if cell is None else _number(cell):>9}" for cell in cells))
    if timings:
        lines += [f"\n{indent}timings"] + [f"  {line}" for line in timings]
    return "\n".join(lines)


def verify_table(report):
    """The export parity table of a `verify.json` report."""
    lines = [
        f"Export parity ({report['samples']} held-out test samples, output scale {report['output_scale']:.3g}, "
        f"tolerance {report['tolerance']:.1g}; agreement = {report['agreement_unit']})",
        f"  {'format':<15} {'size MB':>8} {'endpoint':<22} {'max|diff|':>10} {'agreement':>10}  status",
    ]
    for name, entry in report["formats"].items():
        size = f"{entry.get('size_bytes', 0) / 1e6:.2f}"
        for endpoint, figures in entry["endpoints"].items():
            quantised = "" if entry.get("exact", True) else " (quantised: agreement only)"
            lines.append(
                f"  {name:<15} {size:>8} {endpoint:<22} {_diff(figures['max_abs_diff']):>10} "
                f"{figures['agreement']:>10.2%}  {'ok' if figures['passed'] else 'FAILED'}{quantised}"
            )
            size = ""
    lines += [f"  note: {name} holds {entry['note']}" for name, entry in report["formats"].items() if entry.get("note")]
    quality = report.get("quality")
    if quality:
        lines.append(f"  test-split {quality['metric']} on {quality['examples']} examples: Keras "
                     f"{quality['keras']:.4f}; " + "; ".join(
                         f"{name} {figures['value']:.4f} ({figures['delta']:+.4f})"
                         for name, figures in quality["formats"].items()))
    return "\n".join(lines)


def run_summary(run):
    """What `toolkit train` prints at the end: headline test metrics, export parity and the run's files."""
    from toolkit.tasks import predictor_class

    metrics = run.metrics
    lines = [
        "",
        f"Run {run.path}",
        f"  task {metrics.get('task')}, {metrics.get('epochs_completed')} epochs, "
        f"{metrics.get('train_seconds', 0):.0f} s training, {metrics.get('parameters', 0):,} parameters",
        "",
        "Test metrics",
    ]
    for key, value in predictor_class(metrics["task"]).summary_metrics(metrics.get("test", {})).items():
        lines.append(f"  {key:<16} {value:.4f}" if isinstance(value, float) else f"  {key:<16} {value}")
    verify_path = os.path.join(run.export_dir, "verify.json")
    if os.path.isfile(verify_path):
        with open(verify_path, encoding="utf-8") as f:
            lines += ["", verify_table(json.load(f))]
    lines += ["", "Files"]
    for label, name in (("recipe", "recipe.yaml"), ("model", "model.keras"), ("metrics", "metrics.json"),
                        ("model card", "MODEL_CARD.md"), *(("plot", name) for name in run.plots()),
                        ("export", "export"), ("tensorboard", "logs")):
        if os.path.exists(run.file(name)):
            lines.append(f"  {label:<12} {run.file(name)}")
    return "\n".join(lines)
