"""Load any model the toolkit makes and predict with it.

MODEL can be a run directory, a `.keras` file, an exported SavedModel
directory or an `.onnx` file. ONNX models run on ONNX Runtime alone:
TensorFlow is not imported on that path.

Example:

>>> import toolkit  # doctest: +SKIP
>>> model = toolkit.load("saved_models/fashion_mnist/export/model.onnx")  # doctest: +SKIP
>>> model.predict(["shoe.png"], top_k=3)  # doctest: +SKIP
[{'input': 'shoe.png', 'top_k': [{'index': 7, 'label': 'Sneaker', 'probability': 0.97}, ...]}]
"""

import dataclasses
import os

from toolkit.errors import DataError, ModelFileError
from toolkit.quiet import import_tensorflow


@dataclasses.dataclass
class LoadedModel:
    """A model loaded in one runtime, with its toolkit metadata.

    Args:
        path: str. What was loaded.
        runtime: str. "keras", "saved_model", "onnx" or "tflite".
        handle: the runtime's model object.
        metadata: dict. Task, class names, input size, ...
    """

    path: str
    runtime: str
    handle: object
    metadata: dict

    @property
    def task_class(self):
        from toolkit.tasks import task_class

        return task_class(self.metadata["task"])

    def predict(self, inputs, top_k=None, output_dir=None, errors=None):
        """Predicts for a list of inputs (image paths or uint8 arrays for image tasks).

        Args:
            inputs: list. Inputs as the task takes them.
            top_k: int or None. Ranked answers per input (classification;
                default: the model's top_k).
            output_dir: str or None. Where tasks that write files (masks for
                segmentation) put them; None: results stay in memory.
            errors: list or None. None: an unreadable input fails the call. A
                list: the readable inputs are predicted and each unreadable
                one is appended to it as (input, one-line message).

        Returns:
            A list with one result dict per (readable) input.
        """
        if not inputs:
            raise ModelFileError("predict: give at least one input")
        # A TFLite session answers like an ONNX Runtime one (toolkit.export.tflite.TfliteSession).
        runtime = "onnx" if self.runtime == "tflite" else self.runtime

        def run(items):
            return self.task_class.predict(runtime, self.handle, self.metadata, list(items), top_k=top_k,
                                           output_dir=output_dir)

        try:
            return run(inputs)
        except DataError:
            if errors is None or len(inputs) == 1:
                raise
        results = []  # one input at a time, to tell the unreadable ones from the rest
        for item in inputs:
            try:
                results.extend(run([item]))
            except DataError as error:
                errors.append((item, str(error)))
        return results

    def format(self, result):
        """One result dict of `predict` as the text `toolkit predict` prints."""
        return self.task_class.format_prediction(result)

    def describe(self):
        return f"{self.metadata['task']} model ({self.runtime}) from {self.path}"


def load(path):
    """Loads a run directory, `.keras` file, SavedModel directory or `.onnx` file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "recipe.yaml")):
            from toolkit.runs import RunDirectory

            return _load_keras(RunDirectory.open(path, need_model=True).model_path)
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return _load_saved_model(path)
        raise ModelFileError(
            f"{path} is neither a run directory (recipe.yaml + model.keras) nor a SavedModel (saved_model.pb)"
        )
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such model file or directory")
    if path.endswith(".keras"):
        return _load_keras(path)
    if path.endswith(".onnx"):
        return _load_onnx(path)
    if path.endswith(".tflite"):
        return _load_tflite(path)
    raise ModelFileError(
        f"{path}: MODEL must be a run directory, a .keras file, a SavedModel directory, a .onnx or a .tflite file"
    )


def _load_keras(path):
    import zipfile

    from toolkit.model_io import load_keras_file, read_toolkit_metadata

    import_tensorflow()

    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a Keras .keras file (not a zip archive); give a run directory or the "
                             "model.keras that toolkit train wrote")
    metadata = read_toolkit_metadata(path)
    if not metadata:
        raise ModelFileError(f"{path}: a .keras file without toolkit metadata; it was not saved by toolkit train")
    return LoadedModel(path, "keras", load_keras_file(path), metadata)


def _load_saved_model(path):
    from toolkit.export.saved_model import load_saved_model, read_saved_model_metadata

    import_tensorflow()

    metadata = read_saved_model_metadata(path)
    return LoadedModel(path, "saved_model", load_saved_model(path), metadata)


def _load_tflite(path):
    from toolkit.export.tflite import load_tflite, read_tflite_metadata

    import_tensorflow()

    return LoadedModel(path, "tflite", load_tflite(path), read_tflite_metadata(path))


def _load_onnx(path):
    from toolkit.export.onnx import load_onnx, read_onnx_metadata

    session = load_onnx(path)
    return LoadedModel(path, "onnx", session, read_onnx_metadata(session, path))
