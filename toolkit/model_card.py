"""MODEL_CARD.md of a run: data and provenance, backbone and weights,
metrics, export parity, intended use and limitations."""

import datetime

from toolkit.atomic import write_text


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_model_card(run, recipe, metadata, metrics, verify_report, predictor):
    """Writes `run/MODEL_CARD.md` from the run's facts (the task's `predictor` adds its own metric sections)."""
    backbone = metadata.get("backbone") or {}
    data_report = metrics.get("data", {})
    headline = {k: v for k, v in metrics.get("test", {}).items() if isinstance(v, (int, float))}
    lines = [
        f"# Model card: {run.name}",
        "",
        f"{recipe.description or 'A ' + recipe.task.replace('_', ' ') + ' model trained with the toolkit.'}",
        "",
        "## Model",
        "",
        table(["", ""], [
            ["task", recipe.task],
            ["backbone", f"`{backbone.get('reference')}`"],
            ["backbone weights", backbone.get("weights_source", "n/a")],
            ["input", _input_text(metadata)],
            ["classes", len(metadata.get("class_names", []))],
            ["parameters", f"{metrics['parameters']:,}" if "parameters" in metrics else "n/a"],
            ["trained", metrics.get("finished", datetime.date.today().isoformat())],
            ["training time", f"{metrics.get('train_seconds', 0):.0f} s on {metrics.get('device', 'CPU')}"],
        ]),
        "",
        "## Data",
        "",
        f"Source: {metadata.get('data_provenance', 'unknown')}.",
        "",
        table(["split", "examples", "skipped (unreadable)"], [
            [split, entry.get("examples"), entry.get("skipped", 0)] for split, entry in data_report.items()
        ]),
        "",
        "## Training",
        "",
        f"{recipe.train.epochs} epochs ({recipe.train.fine_tune.frozen_epochs} with the backbone frozen), "
        f"batch size {recipe.train.batch_size}, {recipe.train.optimizer.name} at learning rate "
        f"{recipe.train.optimizer.learning_rate:g} with a {recipe.train.schedule.name} schedule, "
        f"label smoothing {recipe.train.label_smoothing:g}, precision {recipe.train.precision}, seed {recipe.train.seed}. "
        "The full resolved recipe is `recipe.yaml`; per-epoch figures are in `history.csv` and `training_curves.png`.",
        "",
        "## Test metrics",
        "",
        table(["metric", "value"], [[k, number(v)] for k, v in headline.items()]),
        "",
    ]
    lines += predictor.card_metrics(metrics.get("test", {}))
    lines += ["## Export parity", ""]
    if verify_report:
        lines += [
            f"Each export was reloaded in its own runtime and compared with the Keras model on "
            f"{verify_report['samples']} held-out test samples (output scale {verify_report['output_scale']:.3g}, "
            f"tolerance {verify_report['tolerance']:.1g}; agreement = {verify_report['agreement_unit']}).",
            "",
            table(["format", "endpoint", "max abs diff", "agreement", "size", "status"], [
                [name, endpoint, _diff(figures["max_abs_diff"]), f"{figures['agreement']:.2%}",
                 f"{entry['size_bytes'] / 1e6:.1f} MB", "ok" if figures["passed"] else "FAILED"]
                for name, entry in verify_report["formats"].items()
                for endpoint, figures in entry["endpoints"].items()
            ]),
            "",
            *[f"Note: {name} holds {entry['note']}.\n" for name, entry in verify_report["formats"].items()
              if entry.get("note")],
        ]
    else:
        lines += ["Not exported.", ""]
    lines += [
        "## Intended use and limitations",
        "",
        *predictor.card_limitations(metadata),
        "- Not evaluated for fairness, robustness to adversarial inputs, or safety-critical use.",
        "",
        "## Use",
        "",
        "```",
        f"toolkit predict {run.path} image.jpg",
        f"toolkit predict {run.path}/export/model.onnx image.jpg   # ONNX Runtime only",
        "```",
        "",
    ]
    write_text(run.file("MODEL_CARD.md"), "\n".join(lines))


def _input_text(metadata):
    if "image_size" in metadata:
        kind = "RGB" if metadata.get("channels") == 3 else "grayscale"
        return f"{kind} image, resized to {metadata['image_size'][0]}x{metadata['image_size'][1]}, pixels 0..255"
    return metadata.get("input", "")


def _diff(value):
    return "n/a (text)" if value is None else f"{value:.2e}"
