"""Typed errors a user can cause, and how the CLI shows them.

Every error here carries a message that names what was wrong (a recipe field,
a file, a backbone), what was expected, and how to fix it. The CLI prints the
message as one line on stderr and exits with `exit_code` (2 for user errors),
never with a traceback.
"""


class ToolkitError(Exception):
    """Base class of all errors a user can cause and fix.

    Args:
        message: str. One line: what was wrong, where, and the fix.
    """

    exit_code = 2

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


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
