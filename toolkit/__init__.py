"""Keras 3 / TensorFlow task recipes: train on pretrained backbones, evaluate,
export to SavedModel and ONNX, and verify that the exports match.

The top-level names are loaded lazily, so `import toolkit` (and
`toolkit --help`) does not import TensorFlow.

Example:

>>> import toolkit  # doctest: +SKIP
>>> run = toolkit.train("recipes/image_classification/fashion_mnist.yaml",
...                     overrides={"train.epochs": 1})  # doctest: +SKIP
>>> run.metrics["test"]["accuracy"], run.plot_history()  # doctest: +SKIP
>>> toolkit.load(run.path).predict(["shoe.png"])  # doctest: +SKIP
>>> run = toolkit.open_run("saved_models/fashion_mnist")  # doctest: +SKIP
>>> run.metrics["test"], run.history(), run.load("onnx")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from toolkit import tasks as _tasks  # noqa: E402,F401 - registers every task by reference (imports none)

_API = {
    "load_recipe": "toolkit.config",
    "train": "toolkit.api",
    "evaluate": "toolkit.api",
    "export": "toolkit.api",
    "verify": "toolkit.api",
    "load": "toolkit.api",
    "predict": "toolkit.api",
    "explain": "toolkit.api",
    "recipe_class": "toolkit.api",
    "load_data": "toolkit.api",
    "Run": "toolkit.api",
    "open_run": "toolkit.api",
    "tune": "toolkit.tuning",
    "open_study": "toolkit.tuning",
    "ToolkitError": "toolkit.errors",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
