"""Parity verification: every export is reloaded in its own runtime and
compared with the Keras model on real held-out samples.

The figures (max abs difference, output scale, top-1 agreement) go into
`export/verify.json`; an export outside tolerance fails the command.
"""

import os

import numpy as np

from toolkit.export.formats import FORMATS


def verify_directory(export_dir, model, task_class, metadata, tolerance, min_agreement):
    """Compares every artifact in `export_dir` with the Keras model.

    Args:
        export_dir: str. Directory with artifacts and `samples/`.
        model: keras.Model. The reference model.
        task_class: type. The task (samples I/O, reference and export outputs).
        metadata: dict. The model's toolkit metadata.
        tolerance: float. Max abs output difference allowed.
        min_agreement: float. Min share of samples whose top-1 must agree.

    Returns:
        The report dict written to verify.json (`passed` says it all).
    """
    samples = task_class.load_samples(os.path.join(export_dir, "samples"), metadata)
    if not samples:
        raise ValueError(f"{export_dir}/samples holds no verification samples")
    reference = np.asarray(task_class.reference_outputs(model, samples, metadata))
    report = {
        "samples": len(samples),
        "sample_source": "held-out test split",
        "reference": "Keras model.keras",
        "output_scale": float(np.max(np.abs(reference))),
        "tolerance": tolerance,
        "min_top1_agreement": min_agreement,
        "formats": {},
    }
    passed = True
    for name, spec in FORMATS.items():
        artifact = os.path.join(export_dir, spec.artifact)
        if not os.path.exists(artifact):
            continue
        handle = spec.resolve("loader")(artifact)
        endpoints = {}
        for endpoint, outputs in task_class.export_outputs(name, handle, samples, metadata).items():
            outputs = np.asarray(outputs)
            if outputs.shape != reference.shape:
                diff, agreement = float("inf"), 0.0
            else:
                diff = float(np.max(np.abs(outputs.astype(np.float64) - reference)))
                agreement = task_class.agreement(reference, outputs)
            ok = diff <= tolerance and agreement >= min_agreement
            passed &= ok
            endpoints[endpoint] = {"max_abs_diff": diff, "top1_agreement": agreement, "passed": ok}
        report["formats"][name] = {
            "artifact": spec.artifact,
            "runtime": spec.runtime,
            "size_bytes": _size(artifact),
            "endpoints": endpoints,
            "passed": all(e["passed"] for e in endpoints.values()),
        }
    report["passed"] = passed and bool(report["formats"])
    return report


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def failures(report):
    """Returns one-line descriptions of the endpoints that failed."""
    lines = []
    for name, entry in report["formats"].items():
        for endpoint, figures in entry["endpoints"].items():
            if not figures["passed"]:
                lines.append(
                    f"{name}/{endpoint}: max abs diff {figures['max_abs_diff']:.3g} "
                    f"(tolerance {report['tolerance']:.3g}), top-1 agreement {figures['top1_agreement']:.1%}"
                )
    return lines
