"""Load any model the toolkit makes and predict with it; explain Keras models (`explain`, `toolkit explain`).

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

import numpy as np

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


# Explanation (`toolkit explain`): saliency maps and token attributions of Keras models ---------------------


def explain(model, inputs, method=None, class_=None, output_dir=None, steps=32, patch=None, errors=None,
            min_score=None):
    """Saliency maps of a Keras model on image inputs (`toolkit.explanations`): one map per class explained
    (classifiers: the top-1 or asked class; segmenters: each class present, or the asked one; detectors: each
    kept box, or those of the asked class). Models that read tokens (`Predictor.explain_embedding`) get
    integrated gradients per token instead of a map.

    Args:
        model: str or LoadedModel. A run directory or `.keras` file (exports hold no gradients to follow and
            are refused), or a model `load` returned.
        inputs: list. Image paths or uint8 arrays (H, W, C); texts for token models.
        method: str or None. "gradcam" (the default for images), "gradcam++", "integrated_gradients" (the default
            and only method for token models) or "occlusion".
        class_: int, str or None. The class to explain, by index or name; None: the task's default.
        output_dir: str or None. Where to write, per map, `<stem>_<method>_<class>.png` (the map over the
            image) and `.npy` (the raw map, float32 0..1 at the image's size); None: nothing is written.
        steps: int. Integrated gradients: interpolation steps.
        patch: int or None. Occlusion: the patch side in model pixels.
        errors: list or None. As in `LoadedModel.predict`: None: an unreadable input fails the call; a list:
            each unreadable input is appended to it as (input, one-line message) and the others are explained.
        min_score: float or None. Detectors: boxes scored below it are not explained (default: predict's).

    Returns:
        One dict per readable input: `input`, `method`, `explanations` (a list of dicts: `class`, `class_index`,
        `score`, task extras such as `box` or `area`, `map` (float32 array 0..1 in the input's pixels), and with
        `output_dir` the `overlay` and `npy` paths). For token models `map` is replaced by `tokens` (a list of
        {"token", "attribution"}: the score's share of each token, in the score's units before a final softmax)
        and `delta` (the score at the text minus at the zero-embedding baseline, which the attributions add up
        to); nothing is written.
    """
    from toolkit.explanations import check_method

    if method is not None:
        check_method(method)
    if not inputs:
        raise ModelFileError("explain: give at least one input")
    loaded = model if isinstance(model, LoadedModel) else _load_explainable(model)
    if loaded.runtime != "keras":
        raise ModelFileError(_export_refusal(loaded.path, loaded.runtime))
    predictor = loaded.predictor
    if not predictor.explainable():
        raise ModelFileError(f"{loaded.path}: {loaded.metadata['task']} models cannot be explained (the task "
                             "declares no explain hook); docs/explain.md lists the tasks it takes")
    class_index = class_number(class_, loaded.metadata.get("class_names") or [])
    options = {"min_score": min_score} if min_score is not None and "min_score" in predictor.options else {}
    if min_score is not None and not options:
        raise ModelFileError(f"--min-score: {loaded.metadata['task']} models take no such option")
    embedding = predictor.explain_embedding(loaded.metadata)
    if embedding is not None and method not in (None, "integrated_gradients"):
        raise ModelFileError(f"--method {method}: {loaded.metadata['task']} models are explained per token with "
                             "integrated_gradients; leave --method out")
    method = method or ("integrated_gradients" if embedding is not None else "gradcam")
    explainer = _Explainer(loaded, method, steps, patch, embedding)
    results = []
    for name, item in zip(_names(inputs), inputs):
        try:
            images, batch = predictor.explain_inputs([item], loaded.metadata)
        except DataError as error:
            if errors is None:
                raise
            errors.append((item, str(error)))
            continue
        results.append(explainer.one(name, images[0], batch, class_index, output_dir, options))
    return results


def _names(inputs):
    from toolkit.tasks.predictor import input_names

    return input_names(inputs)


def _export_refusal(path, runtime):
    return (f"{path} is an export ({runtime}); explain needs the Keras model's layers and gradients: give the run "
            "directory or its model.keras")


def explain_metadata(path):
    """The toolkit metadata of a run directory or `.keras` file, read without TensorFlow; {} when there is none."""
    from toolkit.model_io import read_toolkit_metadata

    if os.path.isdir(path):
        from toolkit.runs import RunDirectory

        path = RunDirectory.open(path, need_model=True).model_path
    return read_toolkit_metadata(path)


def _load_explainable(path):
    """`load` of a run directory or `.keras` file; exports are refused in one line before anything loads."""
    from toolkit.data.files import check_name
    from toolkit.runtimes import runtime_of

    path = check_name(os.fspath(path), ModelFileError)
    runtime = runtime_of(path)
    if runtime.name != "keras":
        raise ModelFileError(_export_refusal(path, runtime.name))
    metadata_path = path
    if os.path.isdir(path):
        from toolkit.runs import RunDirectory

        metadata_path = RunDirectory.open(path, need_model=True).model_path
    from toolkit.model_io import read_toolkit_metadata
    from toolkit.tasks import PREDICTORS, predictor_class

    task = read_toolkit_metadata(metadata_path).get("task")
    if task in PREDICTORS.names() and not predictor_class(task).explainable():  # before TensorFlow loads
        raise ModelFileError(f"{path}: {task} models cannot be explained (the task declares no explain hook); "
                             "docs/explain.md lists the tasks it takes")
    return load(path)


def class_number(value, class_names):
    """The class index of `--class` (an index or a name, exact or case-insensitive), or None."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        index = int(value)
        if not 0 <= index < len(class_names):
            raise ModelFileError(f"--class {value}: out of range; this model has classes 0..{len(class_names) - 1}"
                                 f" ({_listed(class_names)})")
        return index
    text = str(value)
    if text in class_names:
        return class_names.index(text)
    folded = [i for i, name in enumerate(class_names) if str(name).lower() == text.lower()]
    if len(folded) == 1:
        return folded[0]
    raise ModelFileError(f"--class {text!r}: not a class of this model; give a name or an index of: "
                         f"{_listed(class_names)}")


def _listed(names, limit=20):
    shown = ", ".join(f"{i} {name}" for i, name in enumerate(names[:limit]))
    return shown + (f", ... ({len(names)} classes)" if len(names) > limit else "")


class _Explainer:
    """Maps of one loaded Keras model, with its feature tap built once."""

    def __init__(self, loaded, method, steps, patch, embedding=None):
        from toolkit.explanations import LAYER_METHODS, FeatureTap

        self.loaded, self.method, self.steps, self.patch, self.embedding = loaded, method, steps, patch, embedding
        self.predictor = loaded.predictor
        self.tap = FeatureTap(loaded.handle, loaded.metadata, features=method in LAYER_METHODS)

    def one(self, name, image, batch, class_index, output_dir, options):
        from toolkit.explanations import explain_batch, resize_map

        model, metadata = self.loaded.handle, self.loaded.metadata
        outputs = np.asarray(model(batch, training=False))
        size = None if self.embedding is not None else image.shape[:2]
        targets = self.predictor.explain_targets(outputs[0], metadata, class_index, image_size=size, **options)
        explanations = []
        for number, target in enumerate(targets):
            def score(values, target=target):
                return self.predictor.explain_score(values, target, metadata)

            entry = {"class": target["label"], "class_index": int(target["class_index"]),
                     "score": float(target["score"])}
            if self.embedding is not None:  # a token model: attributions per token, no picture
                entry.update(self._tokens(image, batch, score))
                explanations.append(entry)
                continue
            values = explain_batch(self.method, self.tap, batch, score, steps=self.steps, patch=self.patch)[0]
            entry.update({key: value for key, value in target.items()
                          if key in ("box", "area")})
            entry["map"] = resize_map(values, image.shape[:2])
            if output_dir is not None:
                entry.update(_write_map(output_dir, name, self.method, entry, image,
                                        number if "box" in target else None))
            explanations.append(entry)
        result = {"input": str(name), "method": self.method, "explanations": explanations}
        if self.tap.feature is not None:
            result["layer"] = f"{self.tap.layer}/{self.tap.feature} (stride {self.tap.stride})"
        return result

    def _tokens(self, text, batch, score):
        from toolkit.explanations import embedding_attributions

        attributions, delta = embedding_attributions(self.tap, batch, score, self.embedding, steps=self.steps)
        return _token_entry(attributions, delta, self.predictor.explain_tokens(text, batch[0], self.loaded.metadata))


def _token_entry(attributions, delta, tokens):
    return {"tokens": [{"token": piece, "attribution": round(float(attributions[position]), 6)}
                       for position, piece in tokens],
            "delta": round(float(delta), 6)}


def _write_map(output_dir, name, method, entry, image, box_number):
    """Writes `<stem>_<method>[_box<n>]_<class>.png` (the map over the image) and `.npy`; returns their paths."""
    import re

    from PIL import Image

    from toolkit.atomic import atomic_path
    from toolkit.explanations import overlay

    os.makedirs(output_dir, exist_ok=True)
    stem = name.replace("[", "_").replace("]", "") if name.startswith("array[") else \
        os.path.splitext(os.path.basename(name))[0]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(entry["class"])).strip("-") or str(entry["class_index"])
    tag = method.replace("++", "pp")
    box = "" if box_number is None else f"_box{box_number}"
    base = os.path.join(output_dir, f"{stem}_{tag}{box}_{label}")
    with atomic_path(base + ".png") as tmp:
        Image.fromarray(overlay(image, entry["map"])).save(tmp, format="PNG")
    with atomic_path(base + ".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, entry["map"].astype(np.float32))
    return {"overlay": base + ".png", "npy": base + ".npy"}


def default_explain_dir(model_path):
    """Where `toolkit explain` writes by default: `<run>/explain/` for a run directory or the model.keras inside
    one; `./explain/` for a loose `.keras` file."""
    path = os.path.abspath(os.fspath(model_path))
    if os.path.isdir(path):
        return os.path.join(path, "explain")
    folder = os.path.dirname(path)
    if os.path.isfile(os.path.join(folder, "recipe.yaml")):
        return os.path.join(folder, "explain")
    return os.path.join(os.getcwd(), "explain")
