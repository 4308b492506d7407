"""Checks of what a recipe names outside itself, before any data is read or any model is built.

A recipe names files, earlier runs and KerasHub presets (and tasks name more:
voices, lexicons). A typo in one of them must fail in the first second of
`toolkit train`, not after a corpus was generated or a dataset decoded: each
task's `check_references()` calls these helpers, and `toolkit.api.train` calls
it before it creates the run directory. Every failure is a `RecipeError` naming
the field, what was wrong and the fix. Nothing here imports TensorFlow, and a
check that would need a download only asks whether the host can be reached.

Example:

>>> from toolkit.references import check_file
>>> check_file("decoding.lexicon", "/no/such/words.txt", "a text file with one word per line")
Traceback (most recent call last):
...
toolkit.errors.RecipeError: decoding.lexicon: /no/such/words.txt does not exist; give a text file with one word per line
"""

import json
import os
import zipfile

from toolkit.errors import RecipeError


def check_file(field, path, what):
    """`path` must be an existing file (`what` says what it should be, for the message)."""
    if not os.path.isfile(path):
        problem = "is a directory" if os.path.isdir(path) else "does not exist"
        raise RecipeError(f"{field}: {path} {problem}; give {what}")


def run_metadata(field, directory):
    """The toolkit metadata of a finished run's model.keras (read from the zip, without TensorFlow).

    Raises:
        RecipeError: not a run directory, not finished, or a model.keras without toolkit metadata.
    """
    path = os.path.join(directory, "model.keras")
    if not os.path.isdir(directory):
        raise RecipeError(f"{field}: run:{directory}: no such run directory; give the directory of a finished "
                          "toolkit train run (toolkit writes them under saved_models/)")
    if not os.path.isfile(path):
        finish = (f"resume it with toolkit train --resume {directory}" if os.path.isfile(
            os.path.join(directory, "recipe.yaml")) else "give the directory of a finished toolkit train run")
        raise RecipeError(f"{field}: run:{directory} has no model.keras (did it finish? {finish})")
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("toolkit.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise RecipeError(f"{field}: run:{directory}: its model.keras carries no toolkit metadata (not written by "
                          "toolkit train, or damaged)")


def check_run(field, directory, accept, wanted):
    """`directory` must be a finished run whose metadata passes `accept(metadata)`; `wanted` names what fits."""
    metadata = run_metadata(field, directory)
    if not accept(metadata):
        raise RecipeError(f"{field}: run:{directory} is a {metadata.get('task', 'unknown')} run; {field} takes "
                          f"{wanted}")
    return metadata


def check_preset(field, preset, wanted="a preset"):
    """A KerasHub preset (name, kaggle:// or hf:// handle, or local directory) that can be loaded from here.

    A local directory must hold a preset (`config.json`); a built-in name must be known to KerasHub, and be in
    the local cache unless its host can be reached; other handles are checked when they load.
    """
    from toolkit.errors import preset_error

    looks_local = os.sep in preset or preset.startswith((".", "~")) or os.path.exists(preset)
    if looks_local and "://" not in preset:
        directory = os.path.expanduser(preset)
        if not os.path.isdir(directory):
            raise preset_error(field, preset if os.sep in preset else "." + os.sep + preset,
                               ValueError("Unknown preset identifier"), wanted)
        if not os.path.isfile(os.path.join(directory, "config.json")):
            raise RecipeError(f"{field}: hub:{preset} is not a KerasHub preset directory (no config.json); save one "
                              "with save_to_preset")
        return
    if "://" in preset:
        return
    handles = _builtin_presets()
    if handles is None:  # KerasHub without preset listings: it reports unknown names itself
        return
    if preset not in handles:
        raise preset_error(field, preset, ValueError("Unknown preset identifier"), wanted)
    handle = handles[preset]
    if handle.startswith("kaggle://") and not _kaggle_cached(handle) and not _can_resolve("api.kaggle.com"):
        raise RecipeError(f"{field}: KerasHub preset {preset!r} is not in the local cache and this machine is "
                          "offline; download it on a connected machine (keras_hub.models.Backbone.from_preset"
                          f"({preset!r}).save_to_preset(DIR)) and give hub:DIR")


def _builtin_presets():
    """{preset name: handle} of KerasHub's built-in presets, or None when KerasHub does not list them."""
    try:
        import keras_hub

        presets = {**keras_hub.models.Backbone.presets, **keras_hub.models.Task.presets}
    except Exception:  # noqa: BLE001 - no listing in this KerasHub version
        return None
    return {name: str(entry.get("kaggle_handle", "")) if isinstance(entry, dict) else "" for name, entry in
            presets.items()}


def _kaggle_cached(handle):
    """Whether kagglehub has the model of a `kaggle://org/model/keras/variant/version` handle on disk."""
    try:
        from kagglehub.config import get_cache_folder
    except ImportError:
        return False
    parts = handle.removeprefix("kaggle://").split("/")
    if len(parts) < 4:
        return False
    folder = os.path.join(get_cache_folder(), "models", *parts)
    if len(parts) == 4:  # no version: any version that was downloaded
        return os.path.isdir(folder) and any(os.path.isfile(os.path.join(folder, v, "config.json"))
                                             for v in os.listdir(folder))
    return os.path.isfile(os.path.join(folder, "config.json"))


def _can_resolve(host, timeout=5.0):
    from toolkit.data.tfds import can_resolve

    return can_resolve(host, timeout)


def image_backbone_runs():
    """'an <task> or <task> run (its backbone takes images)': the tasks whose runs `run:` backbones come from."""
    from toolkit.config.tasks import TASKS

    names = [name.replace("_", " ") for name, cls in TASKS.items() if cls.input_kind == "image"]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"an {listed} run (its backbone takes images)"


def check_backbone(field, reference, weights, accept_run=None, wanted_run=None):
    """`model.backbone` (a registry name, hub:, file: or run:) and `model.weights` (file:<path>) point at things
    that exist."""
    if reference.startswith("run:"):
        check_run(field, reference[4:], accept_run or (lambda m: m.get("input") == "image" and "backbone" in m),
                  wanted_run or image_backbone_runs())
    elif reference.startswith("file:"):
        check_file(field, reference[5:], "the path of a .keras model file (saved with model.save)")
    elif reference.startswith("hub:"):
        check_preset(field, reference[4:], "a preset name")
    if weights.startswith("file:"):
        check_file("model.weights", weights[5:], "the path of a .weights.h5 file of this architecture")
