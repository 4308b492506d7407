"""SavedModel export: Keras `ExportArchive` with the task's serving signatures."""

import json
import os

from toolkit.errors import ModelFileError

METADATA_PATH = os.path.join("assets.extra", "toolkit.json")


def export_saved_model(model, task, path, options):
    """Writes a SavedModel with the task's signatures (preprocessing inside).

    Args:
        model: keras.Model. The trained float32 model.
        task: Task. Provides `serving_signatures(model)` and `model_metadata()`.
        path: str. Directory to write (it must not exist).
        options: the format's validated options.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    signatures = task.serving_signatures(model)
    for resource in task.serving_resources():  # e.g. tokenizers used inside the signatures
        archive.track(resource)
    for name, (function, signature) in signatures.items():
        archive.add_endpoint(name=name, fn=function, input_signature=signature)
    archive.write_out(path, verbose=False)
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, METADATA_PATH), "w", encoding="utf-8") as f:
        json.dump(task.model_metadata(), f, indent=2)


def read_saved_model_metadata(path):
    """Returns the toolkit metadata of an exported SavedModel directory."""
    metadata_path = os.path.join(path, METADATA_PATH)
    if not os.path.isfile(metadata_path):
        raise ModelFileError(f"{path}: a SavedModel without {METADATA_PATH}; it was not exported by toolkit")
    with open(metadata_path, encoding="utf-8") as f:
        return json.load(f)


def load_saved_model(path):
    """Loads a SavedModel in TensorFlow's own runtime (no Keras objects)."""
    import tensorflow as tf

    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModelFileError(f"{path} is not a SavedModel directory (no saved_model.pb)")
    try:  # registers TensorFlow Text ops (SentencePiece, NormalizeUTF8) that text models use
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    try:
        return tf.saved_model.load(path)
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(f"{path}: SavedModel could not be loaded: {str(error).splitlines()[0][:200]}")
