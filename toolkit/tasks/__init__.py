"""The tasks: one package per task under `toolkit/tasks/<task>/`, found here by walking this folder.

A task package's `__init__.py` only registers, by reference (nothing heavy is
imported until a recipe or a model of that task is used; `import toolkit`
runs this module, so every process knows every task):

- `TASKS.register_lazy(name, "toolkit.tasks.<task>.task:<Class>")`: the
  `toolkit.tasks.base.Task` subclass (training; its `config_class` is the recipe schema).
- `PREDICTORS.register_lazy(name, "toolkit.tasks.<task>.predictor:<Class>")`:
  the `toolkit.tasks.predictor.Predictor` subclass (deployment: predict, serve,
  verify, benchmark, the model card), which the `Task` names as `predictor`.
- `register_saved_layer(registered_name, "module:function")`: a Keras layer
  class the task saves in its `.keras` files, registered before a file that
  names it is loaded (`toolkit.model_io.load_keras_file`).

Adding a task is adding a folder; docs/development.md lists the files of one.

Example:

>>> from toolkit.tasks import TASKS
>>> TASKS.names()
['audio_classification', 'image_classification', 'object_detection', 'recommendation', 'segmentation', 'speech_recognition', 'translation']
"""

import importlib
import pkgutil

from toolkit.config.tasks import TASKS
from toolkit.tasks.predictor import PREDICTORS

for _package in pkgutil.iter_modules(__path__):
    if _package.ispkg:
        importlib.import_module(f"{__name__}.{_package.name}")


def make_task(recipe):
    """Returns the task object for a validated recipe."""
    return TASKS.get(recipe.task)(recipe)


def task_class(name):
    """Returns the task class registered as `name` (training)."""
    return TASKS.get(name)


def predictor_class(name):
    """Returns the predictor class of the task `name` (deployment; imports only the task's `predictor.py`)."""
    return PREDICTORS.get(name)
