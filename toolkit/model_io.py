"""Reading and writing `.keras` model files, with the toolkit's metadata inside.

A `.keras` file is a zip archive; `save_model` adds a `toolkit.json` entry
(Keras ignores it, the toolkit reads it without TensorFlow), and
`load_keras_file` loads with Keras `safe_mode` after registering the layer
classes the file names. Layer classes that a task defines are declared by
the task (`SAVED_LAYERS`, filled from `toolkit.tasks`): registered name ->
"module:function" that registers the class, imported only when a file names it.

Example:

>>> from toolkit.model_io import read_toolkit_metadata
>>> read_toolkit_metadata("/no/such/model.keras")
{}
"""

import json
import os
import zipfile

from toolkit.atomic import atomic_path
from toolkit.errors import ModelFileError
from toolkit.registry import resolve

# Registered Keras name ("toolkit>SpecAugment") -> "module:function" registering the class (see toolkit.tasks).
SAVED_LAYERS = {}

MAX_MODEL_BYTES = 32 << 30  # a model file larger than this is refused before it is opened
MAX_JSON_MEMBER_BYTES = 64 << 20  # config.json, metadata.json, toolkit.json
MAX_EXPANSION = 50  # a member above 64 MB that expands more than this from its compressed size is not weights


def check_keras_archive(path):
    """Checks a `.keras` file before any member is read: a regular file, a zip archive, and members whose
    declared sizes are plausible (the JSON ones at most 64 MB; none a 1 KB -> 1 GB zip bomb). Raises a one-line
    ModelFileError; returns the archive's member names."""
    from toolkit.data.files import check_input_file

    check_input_file(path, MAX_MODEL_BYTES, ModelFileError, "model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a Keras .keras file (not a zip archive); give a run directory or the "
                             "model.keras that toolkit train wrote")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path} is not a readable .keras archive ({error})")
    for member in members:
        size, packed = member.file_size, max(member.compress_size, 1)
        json_member = member.filename.endswith(".json")
        if (json_member and size > MAX_JSON_MEMBER_BYTES) or (size > 64 << 20 and size > MAX_EXPANSION * packed):
            raise ModelFileError(f"{path}: its member {member.filename[:80]!r} would expand to "
                                 f"{size / (1 << 20):,.0f} MB from {packed / (1 << 20):,.1f} MB; this is not a model "
                                 "file Keras wrote, and it is not read")
    return [member.filename for member in members]


def register_saved_layer(name, reference):
    """Declares that a `.keras` file naming `name` needs `reference` ("module:function") called before loading."""
    SAVED_LAYERS[name] = reference


def load_keras_file(path):
    """Loads a `.keras` file safely (safe_mode=True; no Lambda, no unknown classes)."""
    import keras

    if not os.path.lexists(path):
        raise ModelFileError(f"model file {path} does not exist")
    check_keras_archive(path)
    if _mentions(path, b'"keras_hub'):
        import keras_hub  # noqa: F401 - registers KerasHub layers for deserialisation
    if _mentions(path, b'"keras_rs'):
        import keras_rs  # noqa: F401 - registers keras-rs layers (FeatureCross, ...)
    for name, reference in SAVED_LAYERS.items():
        if _mentions(path, f'"{name}"'.encode()):
            resolve(reference)()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(
            f"{path} could not be loaded safely ({_load_problem(error)}); .keras files are loaded with Keras "
            "safe_mode: no Python lambdas, no classes Keras or the toolkit do not register; use a model saved by "
            "toolkit train, or rebuild yours from registered layers")


def _load_problem(error):
    """The telling part of a Keras loading error: the nested cause ("Could not locate class 'X'") when Keras
    wraps it, up to its first sentence."""
    text = " ".join(str(error).split())
    if "Exception encountered: " in text:
        text = text.split("Exception encountered: ", 1)[1]
    sentence = text.split(". ", 1)[0].rstrip(".")
    return sentence[:200] or type(error).__name__


def _mentions(path, marker):
    """Whether the model config inside a `.keras` file contains `marker` (bytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return marker in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def read_toolkit_metadata(path):
    """Returns the toolkit metadata stored inside a `.keras` file, or {}."""
    try:
        if check_keras_archive(path).count("toolkit.json") == 0:
            return {}
    except ModelFileError:
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            if "toolkit.json" in archive.namelist():
                return json.loads(archive.read("toolkit.json"))
    except (OSError, zipfile.BadZipFile, ValueError):
        return {}
    return {}


def save_model(model, path, metadata):
    """Saves a Keras model atomically with toolkit metadata inside the archive.

    The `.keras` file is a zip; `toolkit.json` is an extra entry that Keras
    ignores when loading and the toolkit reads without TensorFlow.
    """
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr("toolkit.json", json.dumps(metadata, indent=2))
