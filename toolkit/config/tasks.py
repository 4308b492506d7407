"""The task registry, owned by the config layer so that loading a recipe never imports a task.

Each task package registers a lazy reference to its `Task` class here (see
`toolkit.tasks`); the loader looks up the recipe class (`config_class`), the
default monitor and the data sources of a task name only when a recipe of that
task is read. A task may also add verbs to `toolkit data` (`DATA_VERBS`):
their arguments are declared here, their handler is imported when one runs.

Example:

>>> import toolkit.tasks  # registers the tasks (imports none of them)
>>> from toolkit.config.tasks import TASKS
>>> "translation" in TASKS
True
"""

import dataclasses

from toolkit.errors import RecipeError
from toolkit.registry import Registry

TASKS = Registry("task", RecipeError)
DATA_VERBS = Registry("data verb")


@dataclasses.dataclass
class DataVerb:
    """A `toolkit data NAME` verb a task adds.

    Args:
        name: str. The verb.
        help: str. One line for `toolkit data --help`.
        description: str. Its own `--help` text.
        epilog: str. An example.
        arguments: list of (flags, argparse keyword arguments).
        handler: str. "module:function" called with (argparse namespace, log); returns the exit code or None.
    """

    name: str
    help: str
    description: str
    epilog: str
    arguments: list
    handler: str


def register_data_verb(verb):
    """Adds `verb` (a `DataVerb`) to `toolkit data`."""
    DATA_VERBS.register(verb.name, verb)
