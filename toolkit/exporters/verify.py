"""Parity verification: every export is reloaded in its own runtime and
compared with the Keras model on real held-out samples.

The figures (max abs difference, output scale, argmax agreement: what each
task counts, e.g. top-1 per image or per pixel) go into
`export/verify.json`; an export outside tolerance fails the command.
"""

import os

import numpy as np

from toolkit.exporters.formats import FORMATS
from toolkit.progress import Progress


def compare(reference, outputs):
    """Max abs difference and argmax agreement of two outputs.

    Args:
        reference: array or list of arrays (one per sample), class scores on
            the last axis.
        outputs: the same structure from an export.

    Returns:
        (max_abs_diff, agreement, decisions): agreement is the share of
        positions (images, or pixels) whose argmax is equal. Text outputs
        (lists of str) agree when identical; their max_abs_diff is None.
    """
    references = reference if isinstance(reference, list) else [reference]
    candidates = outputs if isinstance(outputs, list) else [outputs]
    if len(references) != len(candidates):
        return float("inf"), 0.0, 0
    if references and isinstance(references[0], str):  # text outputs: identical strings agree
        equal = sum(1 for ref, out in zip(references, candidates) if ref == out)
        return None, equal / len(references), len(references)
    diff, equal, total = 0.0, 0, 0
    for ref, out in zip(references, candidates):
        ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
        if ref.shape != out.shape:
            return float("inf"), 0.0, 0
        diff = max(diff, float(np.max(np.abs(ref - out))) if ref.size else 0.0)
        equal += int(np.sum(np.argmax(ref, -1) == np.argmax(out, -1)))
        total += int(np.prod(ref.shape[:-1]))
    return diff, (equal / total if total else 0.0), total


def _scale(reference):
    values = reference if isinstance(reference, list) else [reference]
    if values and isinstance(values[0], str):
        return 0.0
    return float(max(np.max(np.abs(np.asarray(v))) for v in values))


def artifact_outputs(name, spec, predictor, handle, samples, metadata):
    """{endpoint: (outputs, reference endpoint)} of one artifact; a TFLite session answers like an ONNX Runtime
    one, so it runs the task's ONNX outputs (endpoints renamed onnx* -> <format>*)."""
    from toolkit.runtimes import RUNTIMES

    convention = RUNTIMES.get(spec.runtime).convention
    outputs = predictor.export_outputs(convention, handle, samples, metadata)
    if name == convention:
        return {endpoint: (value, endpoint) for endpoint, value in outputs.items()}
    return {endpoint.replace(convention, name, 1): (value, endpoint) for endpoint, value in outputs.items()}


def verify_directory(export_dir, model, predictor, metadata, tolerance, min_agreement, quantized_min_agreement=0.9):
    """Compares every artifact in `export_dir` with the Keras model.

    Args:
        export_dir: str. Directory with artifacts and `samples/`.
        model: keras.Model. The reference model.
        predictor: type. The task's `Predictor` (samples I/O, reference and export outputs).
        metadata: dict. The model's toolkit metadata.
        tolerance: float. Max abs output difference allowed.
        min_agreement: float. Min share of argmax decisions that must agree.
        quantized_min_agreement: float. The same for quantised formats
            (`exact` False), which are not held to `tolerance`.

    Returns:
        The report dict written to verify.json (`passed` says it all).
    """
    samples = predictor.load_samples(os.path.join(export_dir, "samples"), metadata)
    if not samples:
        raise ValueError(f"{export_dir}/samples holds no verification samples")
    references = {}

    def reference_for(endpoint):
        key = predictor.reference_key(endpoint)
        if key not in references:
            references[key] = predictor.reference_outputs(model, samples, metadata, endpoint)
        return references[key]

    report = {
        "samples": len(samples),
        "sample_source": "held-out test split",
        "reference": "Keras model.keras",
        "agreement_unit": predictor.agreement_unit,
        "tolerance": tolerance,
        "min_agreement": min_agreement,
        "quantized_min_agreement": quantized_min_agreement,
        "formats": {},
    }
    scales, passed = [], True
    present = [(name, spec) for name, spec in FORMATS.items() if os.path.exists(os.path.join(export_dir, spec.artifact))]
    progress = Progress("verifying", total=len(present), unit="formats")
    for name, spec in present:
        progress.update(0)
        artifact = os.path.join(export_dir, spec.artifact)
        handle = spec.resolve("loader")(artifact)
        endpoints = {}
        for endpoint, (outputs, like) in artifact_outputs(name, spec, predictor, handle, samples, metadata).items():
            reference = reference_for(like)
            scales.append(_scale(reference))
            diff, agreement, decisions = predictor.compare(reference, outputs, exact=spec.exact)
            if spec.exact:
                ok = (diff is None or diff <= tolerance) and agreement >= min_agreement
            else:
                ok = agreement >= quantized_min_agreement
            passed &= ok
            endpoints[endpoint] = {"max_abs_diff": diff, "agreement": agreement, "decisions": decisions, "passed": ok}
        notes = predictor.export_notes.get(name)
        report["formats"][name] = {
            **({"note": notes} if notes else {}),
            "artifact": spec.artifact,
            "runtime": spec.runtime,
            "exact": spec.exact,
            "size_bytes": artifact_size(artifact),
            "endpoints": endpoints,
            "passed": all(e["passed"] for e in endpoints.values()),
        }
        progress.update(1)
    progress.close()
    report["output_scale"] = max(scales) if scales else 0.0
    report["passed"] = passed and bool(report["formats"])
    return report


def quality_report(export_dir, model, task, count):
    """The task's test-split metric (its predictor's `quality`) of the Keras model and of each TFLite artifact in
    `export_dir`, on up to `count` test examples: {"metric", "examples", "keras", "formats": {name: {"value",
    "delta"}}}, or None when the task has no such metric or no TFLite artifact is present."""
    cls = task.predictor
    present = [(name, spec) for name, spec in FORMATS.items()
               if spec.runtime == "tflite" and os.path.exists(os.path.join(export_dir, spec.artifact))]
    if cls.quality_metric is None or not present:
        return None
    samples, targets = task.quality_samples(count)
    if not samples:
        return None
    metadata = task.model_metadata()
    endpoint = cls.quality_endpoint(metadata)
    keras = cls.quality(cls.reference_outputs(model, samples, metadata, endpoint), targets, metadata)
    formats = {}
    for name, spec in present:
        handle = spec.resolve("loader")(os.path.join(export_dir, spec.artifact))
        outputs = {like: value for value, like in artifact_outputs(name, spec, cls, handle, samples, metadata).values()}
        value = cls.quality(outputs[endpoint], targets, metadata)
        formats[name] = {"value": value, "delta": value - keras}
    return {"metric": cls.quality_metric, "examples": len(samples), "keras": keras, "formats": formats}


def artifact_size(path):
    """Bytes of an artifact file or directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def failures(report):
    """Returns one-line descriptions of the endpoints that failed."""
    lines = []
    for name, entry in report["formats"].items():
        for endpoint, figures in entry["endpoints"].items():
            if not figures["passed"]:
                diff = figures["max_abs_diff"]
                if not entry.get("exact", True):
                    lines.append(f"{name}/{endpoint}: {report['agreement_unit']} agreement {figures['agreement']:.2%} "
                                 f"(quantised; minimum {report.get('quantized_min_agreement', 0.9):.2%})")
                    continue
                lines.append(
                    f"{name}/{endpoint}: max abs diff {'n/a' if diff is None else format(diff, '.3g')} "
                    f"(tolerance {report['tolerance']:.3g}), {report['agreement_unit']} agreement "
                    f"{figures['agreement']:.2%} (minimum {report['min_agreement']:.2%})"
                )
    return lines
