"""Export a trained model to every format in the table, then verify parity.

The whole export directory is staged in a temporary directory and swapped in
only when every artifact passed verification, so a failed or interrupted
export never replaces a good one. A rejected export is kept in
`export.rejected/` for inspection.

Example (after `toolkit train`):

>>> from toolkit.exporters import export_run  # doctest: +SKIP
>>> report = export_run(run, model, task, ["saved_model", "onnx"])  # doctest: +SKIP
"""

import os
import shutil
import tempfile
import time

from toolkit.atomic import write_json
from toolkit.errors import ExportError, ParityError
from toolkit.exporters.formats import FORMATS, format_options
from toolkit.progress import duration


def export_run(run, model, task, formats, log=print):
    """Exports `model` into `run/export/` in `formats`, verifies, and swaps it in.

    Args:
        run: Run. The run directory.
        model: keras.Model. The trained model (float32).
        task: Task. The task with its recipe and metadata.
        formats: list of str. Format names.
        log: callable(str). Progress lines.

    Returns:
        The verification report (also in `export/verify.json`).
    """
    from toolkit.exporters.verify import failures, verify_directory

    config = task.recipe.export
    final = run.export_dir
    try:
        staging = tempfile.mkdtemp(prefix=".export.tmp-", dir=run.path)
    except OSError as error:
        raise write_error("export", run.path, error) from None
    try:
        old_samples = os.path.join(final, "samples")
        if os.path.isdir(old_samples):
            shutil.copytree(old_samples, os.path.join(staging, "samples"))
        else:
            task.save_samples(task.verification_samples(config.verify_samples), os.path.join(staging, "samples"))
        for name, spec in FORMATS.items():
            previous = os.path.join(final, spec.artifact)
            if name not in formats and os.path.exists(previous):
                copy = shutil.copytree if os.path.isdir(previous) else shutil.copyfile
                copy(previous, os.path.join(staging, spec.artifact))
        for name in formats:
            spec = FORMATS.get(name)
            log(f"exporting {name} ...")
            started = time.perf_counter()
            try:
                spec.resolve("exporter")(model, task, os.path.join(staging, spec.artifact), format_options(config, name))
            except ExportError:
                raise
            except Exception as error:
                if not is_write_error(error):
                    raise
                raise write_error(f"export {name}", run.path, error) from None
            log(f"exported {name} in {duration(time.perf_counter() - started)}")
        log(f"verifying the exports against the Keras model on {config.verify_samples} held-out samples ...")
        report = verify_directory(staging, model, task.predictor, task.model_metadata(), config.parity_tolerance,
                                  config.min_agreement, config.quantized_min_agreement)
        if report["passed"]:
            from toolkit.exporters.verify import quality_report

            report["quality"] = quality_report(staging, model, task, config.quality_samples)
        write_json(os.path.join(staging, "verify.json"), report)
        if not report["passed"]:
            rejected = run.file("export.rejected")
            shutil.rmtree(rejected, ignore_errors=True)
            os.rename(staging, rejected)
            raise ParityError(
                "export failed verification: " + "; ".join(failures(report))
                + f"; the previous export is untouched, the rejected one is in {rejected}"
            )
        from toolkit.atomic import replace_directory

        replace_directory(staging, final)
        return report
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise write_error("export", run.path, error) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


WRITE_FAILURES = ("No space left", "Read-only file system", "Permission denied", "File too large",
                  "Disk quota exceeded")


def is_write_error(error):
    """Whether an exception from a writer (Python, TensorFlow, ONNX) is the file system refusing a write."""
    return isinstance(error, OSError) or any(text in str(error) for text in WRITE_FAILURES)


def write_error(what, directory, error):
    """The one-line ExportError for a write the file system refused (disk full, read-only, permissions)."""
    reason = getattr(error, "strerror", None) or next(
        (text for text in WRITE_FAILURES if text in str(error)), type(error).__name__)
    return ExportError(f"{what}: cannot write into {directory} ({reason}); free disk space or fix the permissions, "
                       "then run toolkit export again; the previous export is untouched")
