"""Load any model the toolkit makes and predict with it.

MODEL can be a run directory, a `.keras` file, an exported SavedModel
directory, an `.onnx` or a `.tflite` file; `toolkit.runtimes` says which
runtime loads it. ONNX models run on ONNX Runtime alone: TensorFlow is not
imported on that path.

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
    def predictor(self):
        """The task's `Predictor` (`toolkit.tasks.predictor`): pre- and post-processing for this model."""
        from toolkit.tasks import predictor_class

        return predictor_class(self.metadata["task"])

    def predict(self, inputs, top_k=None, output_dir=None, errors=None, min_score=None):
        """Predicts for a list of inputs (image paths or uint8 arrays for image tasks).

        Args:
            inputs: list. Inputs as the task takes them.
            top_k: int or None. Ranked answers per input (classification;
                default: the model's top_k).
            output_dir: str or None. Where tasks that write files (masks) put
                them; None: results stay in memory.
            errors: list or None. None: an unreadable input fails the call. A
                list: the readable inputs are predicted and each unreadable
                one is appended to it as (input, one-line message).
            min_score: float or None. Answers scored below it are left out (tasks whose predictor takes
                `min_score`, e.g. boxes).

        Returns:
            A list with one result dict per (readable) input.
        """
        if not inputs:
            raise ModelFileError("predict: give at least one input")
        from toolkit.runtimes import RUNTIMES

        convention = RUNTIMES.get(self.runtime).convention  # a TFLite session answers like an ONNX Runtime one

        def run(items):
            return self.predictor.predict(convention, self.handle, self.metadata, list(items), top_k=top_k,
                                           output_dir=output_dir, min_score=min_score)

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
        return self.predictor.format_prediction(result)

    def describe(self):
        return f"{self.metadata['task']} model ({self.runtime}) from {self.path}"


def load(path):
    """Loads a run directory, `.keras` file, SavedModel directory, `.onnx` or `.tflite` file in its runtime
    (`toolkit.runtimes`)."""
    from toolkit.data.files import check_input_file, check_name
    from toolkit.model_io import MAX_MODEL_BYTES
    from toolkit.runtimes import runtime_of

    path = check_name(os.fspath(path), ModelFileError)
    if os.path.lexists(path) and not os.path.isdir(path):  # a model file: regular, of a plausible size, unopened
        check_input_file(path, MAX_MODEL_BYTES, ModelFileError, "model file")
    runtime = runtime_of(path)
    if os.path.isdir(path) and runtime.name == "keras":  # a run directory stands for its model.keras
        from toolkit.runs import RunDirectory

        path = RunDirectory.open(path, need_model=True).model_path
    if runtime.tensorflow:
        import_tensorflow()
    handle, metadata = runtime.load(path)
    return LoadedModel(path, runtime.name, handle, metadata)


# Loaders of the runtime table: (handle, toolkit metadata) of an artifact.


def load_keras_model(path):
    from toolkit.model_io import check_keras_archive, load_keras_file, read_toolkit_metadata

    check_keras_archive(path)  # a FIFO, a device, a zip bomb: one line before any member is read
    metadata = read_toolkit_metadata(path)
    if not metadata:
        raise ModelFileError(f"{path}: a .keras file without toolkit metadata; it was not saved by toolkit train")
    return load_keras_file(path), metadata


def load_saved_model_artifact(path):
    from toolkit.exporters.saved_model import load_saved_model, read_saved_model_metadata

    metadata = read_saved_model_metadata(path)
    return load_saved_model(path), metadata


def load_tflite_artifact(path):
    from toolkit.exporters.tflite import load_tflite, read_tflite_metadata

    return load_tflite(path), read_tflite_metadata(path)


def load_onnx_artifact(path):
    from toolkit.exporters.onnx import load_onnx, read_onnx_metadata

    session = load_onnx(path)
    return session, read_onnx_metadata(session, path)
