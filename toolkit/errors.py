"""Typed errors a user can cause, and how the CLI shows them.

Every error here carries a message that names what was wrong (a recipe field,
a file, a backbone), what was expected, and how to fix it. The CLI prints the
message as one line on stderr and exits with `exit_code` (2 for user errors),
never with a traceback.
"""

import difflib


def close_matches(name, candidates, count=3):
    """Returns up to `count` names from `candidates` that look like `name`.

    Args:
        name: str. The name that was given.
        candidates: iterable of str. The valid names.
        count: int. How many matches at most.
    """
    return difflib.get_close_matches(str(name), list(candidates), n=count, cutoff=0.5)


def did_you_mean(name, candidates):
    """Returns '; did you mean 'x'?' or '' when nothing is close."""
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


class ToolkitError(Exception):
    """Base class of all errors a user can cause and fix.

    Args:
        message: str. One line: what was wrong, where, and the fix.
    """

    exit_code = 2

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


def first_line(error, limit=200):
    """The first line of an exception's message (its type name when the message is empty), cut to `limit`."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def preset_error(field, preset, error, wanted="a preset", cls=None):
    """The one-line error for a KerasHub preset that failed to load.

    Args:
        field: str. The recipe field that named it (e.g. "model.pretrained").
        preset: str. The preset name or directory.
        error: Exception. What KerasHub raised.
        wanted: str. What kind of preset the field takes, e.g. "a BART/T5 preset".
        cls: the error class (default RecipeError).
    """
    import os

    unknown = "Unknown preset identifier" in str(error)
    if unknown and os.sep in str(preset) and "://" not in str(preset):
        return (cls or RecipeError)(
            f"{field}: KerasHub preset {preset!r} could not be loaded (no such preset directory); give {wanted} "
            "or a local preset directory saved with save_to_preset")
    if unknown:  # a name KerasHub does not know: no download was tried
        return (cls or RecipeError)(
            f"{field}: unknown KerasHub preset {preset!r}; give {wanted} (a KerasHub preset name, a kaggle:// or "
            f"hf:// handle) or a local preset directory saved with save_to_preset{_close_presets(preset)}")
    return (cls or RecipeError)(
        f"{field}: KerasHub preset {preset!r} could not be loaded ({first_line(error)}); give {wanted} that is "
        "cached or downloadable, or a local preset directory saved with save_to_preset")


def _close_presets(preset):
    """'; did you mean ...?' over KerasHub's built-in preset names, or ''."""
    try:
        import keras_hub

        names = set(keras_hub.models.Backbone.presets) | set(keras_hub.models.Task.presets)
    except Exception:  # noqa: BLE001 - no KerasHub, or one without preset listings: no hint
        return ""
    return did_you_mean(preset, sorted(names))


class RecipeError(ToolkitError):
    """A recipe is malformed, has an unknown key, a wrong type or value."""


class DataError(ToolkitError):
    """Data is missing, empty, unreadable or inconsistent."""


class BackboneError(ToolkitError):
    """A backbone name, preset or file cannot be resolved."""


class WeightsUnavailableError(BackboneError):
    """Pretrained weights are neither in the weights store nor downloadable."""


class RunError(ToolkitError):
    """A run directory is missing, incomplete or of the wrong kind."""


class ModelFileError(ToolkitError):
    """A model file cannot be loaded (wrong type, corrupt, or unsafe)."""


class ExportError(ToolkitError):
    """An export format or option is unknown, or exporting failed."""


class ParityError(ToolkitError):
    """An exported model disagrees with the Keras model beyond tolerance.

    Exit code 1: the inputs were fine, the artifact is not.
    """

    exit_code = 1


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; carries the run directory to resume.

    Args:
        run_dir: str. The interrupted run.
    """

    def __init__(self, run_dir):
        super().__init__(run_dir)
        self.run_dir = run_dir
