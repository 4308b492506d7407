"""The runtimes a toolkit model runs in: one row per runtime, one way to find, load and call each.

`toolkit predict`, `toolkit serve`, `toolkit benchmark` and verification load
models through this table: which runtime a path is (a run directory or a
`.keras` file: Keras; a directory with `saved_model.pb`: TensorFlow; `.onnx`:
ONNX Runtime, without TensorFlow; `.tflite`: the TFLite interpreter), which
artifact of an export directory `serve` picks, and which `--runtime` values
exist. Export formats (`toolkit.exporters.formats`) name the runtime that loads
them.

A task's `predict(convention, handle, metadata, inputs, ...)` is called with
the runtime's call `convention`: "keras" (a Keras model), "saved_model" (a
loaded SavedModel's signatures) or "onnx" (a session answering
`run(output_names, {input name: array})`: ONNX Runtime, and the toolkit's
TFLite session, which answers the same way).

Example:

>>> from toolkit.runtimes import RUNTIMES, runtime_of
>>> runtime_of("export/model.onnx").name, RUNTIMES.get("tflite").convention
('onnx', 'onnx')
>>> [name for name, runtime in RUNTIMES.items() if runtime.servable]
['onnx', 'saved_model', 'tflite']
"""

import dataclasses
import os

from toolkit.errors import ModelFileError
from toolkit.registry import Registry, resolve

RUNTIMES = Registry("runtime", ModelFileError)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """One row of the runtime table.

    Args:
        name: str. "keras", "saved_model", "onnx" or "tflite" (`LoadedModel.runtime`, `--runtime`).
        loader: str. "module:function(path)" returning (handle, metadata).
        convention: str. How tasks call a loaded handle (see the module docstring).
        suffix: str or None. File suffix of its artifacts; None for a directory.
        marker: str or None. A file inside a directory artifact that identifies it.
        artifact: str or None. The artifact `serve` picks in an export directory; None: not served.
        serve_order: int. Which artifact `serve` picks first when none is asked for (lower first).
        tensorflow: bool. Whether loading it imports TensorFlow.
        description: str. One line (docs and `--help`).
    """

    name: str
    loader: str
    convention: str
    suffix: str = None
    marker: str = None
    artifact: str = None
    serve_order: int = 0
    tensorflow: bool = True
    description: str = ""

    @property
    def servable(self):
        return self.artifact is not None

    def matches(self, path):
        """Whether `path` (an existing file or directory) is an artifact of this runtime."""
        if self.marker is not None:
            return os.path.isdir(path) and os.path.isfile(os.path.join(path, self.marker))
        return self.suffix is not None and os.path.isfile(path) and path.endswith(self.suffix)

    def load(self, path):
        """(handle, toolkit metadata) of the artifact at `path`."""
        return resolve(self.loader)(path)


RUNTIMES.register("keras", Runtime(
    name="keras", loader="toolkit.inference:load_keras_model", convention="keras", suffix=".keras",
    description="the trained Keras model (a run directory or its model.keras)"))
RUNTIMES.register("saved_model", Runtime(
    name="saved_model", loader="toolkit.inference:load_saved_model_artifact", convention="saved_model",
    marker="saved_model.pb", artifact="saved_model", serve_order=0,
    description="TensorFlow SavedModel (its serving signatures)"))
RUNTIMES.register("onnx", Runtime(
    name="onnx", loader="toolkit.inference:load_onnx_artifact", convention="onnx", suffix=".onnx",
    artifact="model.onnx", serve_order=1, tensorflow=False, description="ONNX Runtime (no TensorFlow)"))
RUNTIMES.register("tflite", Runtime(
    name="tflite", loader="toolkit.inference:load_tflite_artifact", convention="onnx", suffix=".tflite",
    artifact="model.tflite", serve_order=2, description="the TFLite (LiteRT) interpreter"))


def runtime_of(path):
    """The `Runtime` of an artifact path (file or directory; a run directory is "keras"), or a one-line error."""
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "recipe.yaml")):
        return RUNTIMES.get("keras")
    for _, runtime in RUNTIMES.items():
        if runtime.matches(path):
            return runtime
    if os.path.isdir(path):
        raise ModelFileError(
            f"{path} is neither a run directory (recipe.yaml + model.keras) nor a SavedModel (saved_model.pb)")
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such model file or directory")
    raise ModelFileError(
        f"{path}: MODEL must be a run directory, a .keras file, a SavedModel directory, a .onnx or a .tflite file")


def servable_runtimes():
    """Names of the runtimes `serve` takes, in the order it picks them."""
    return [name for name, runtime in sorted(RUNTIMES.items(), key=lambda item: item[1].serve_order)
            if runtime.servable]
