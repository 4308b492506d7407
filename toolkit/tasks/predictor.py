"""The Predictor interface: what a task does with a trained model and its saved metadata only.

A task is two objects (after KerasHub's Task/Preprocessor split): the `Task`
(`toolkit.tasks.base`) needs the recipe and trains; its `Predictor` needs only
the metadata saved with the model and deploys: pre- and post-processing of
user inputs, running a loaded model in each runtime, the outputs that
`toolkit verify` compares, the quality of quantised exports, the lines of the
model card and of reports. `toolkit predict`, `serve`, `benchmark` and `verify`
use the predictor alone; they never import a task's training code.

Each task package has a `predictor.py` with a subclass, registered by
reference (`PREDICTORS.register_lazy(name, "toolkit.tasks.<task>.predictor:<Class>")`),
and its `Task` names it (`Task.predictor`). A predictor module imports no
TensorFlow and no training module: ONNX Runtime and TFLite prediction run
without TensorFlow; the Keras and SavedModel conventions import it when called.

Example:

>>> from toolkit.tasks import predictor_class
>>> predictor_class("image_classification").quality_metric
'accuracy'
"""

import os

from toolkit.errors import ModelFileError, RecipeError
from toolkit.registry import Registry

PREDICTORS = Registry("task", RecipeError)


class Predictor:
    """Deployment of one task's models: every method is a classmethod of (model or artifact, metadata, inputs).

    Class attributes:
        name: str. The task's registry name (as its `Task.name`).
        agreement_unit: str. What `toolkit verify`'s agreement counts.
        export_notes: dict. {format: what this task's artifact holds when it is not the whole pipeline}.
        quality_metric: str or None. Name of `quality` (e.g. "accuracy"); None: no quality delta is reported.
        options: tuple of str. Keyword options of `predict` besides top_k and output_dir that this task takes
            (e.g. "min_score"); others are refused with one line.
    """

    name = None
    agreement_unit = "top-1 per sample"
    export_notes = {}
    quality_metric = None
    options = ()

    # Reports and the model card -------------------------------------------------------------------
    @classmethod
    def summary_metrics(cls, metrics):
        """Returns the few headline metrics printed after training."""
        return {}

    @classmethod
    def card_metrics(cls, metrics):
        """Returns Markdown lines for the model card's metrics section."""
        return []

    @classmethod
    def card_limitations(cls, metadata):
        """Returns Markdown bullet lines on intended use and limitations."""
        return []

    # Verification (`toolkit verify`) and the benchmark ---------------------------------------------
    @classmethod
    def load_samples(cls, directory, metadata):
        """Reads raw samples written by the task's `save_samples`."""
        raise NotImplementedError

    @classmethod
    def predict_inputs(cls, samples):
        """The `predict` inputs of samples read by `load_samples` (what `toolkit benchmark` feeds each format)."""
        return list(samples)

    @classmethod
    def reference_key(cls, endpoint):
        """Endpoints whose Keras reference is the same share a key (computed once)."""
        return "model"

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        """Returns the Keras model's outputs on raw samples, comparable with `endpoint`.

        An array, or a list with one array per sample; class scores on the
        last axis.
        """
        raise NotImplementedError

    @classmethod
    def compare(cls, reference, outputs, exact=True):
        """(max abs difference, agreement, decisions) of an export's outputs against the reference
        (`toolkit.exporters.verify.compare`: argmax agreement of class scores; tasks with other outputs override it).
        `exact` is False for quantised artifacts."""
        from toolkit.exporters.verify import compare

        return compare(reference, outputs)

    @classmethod
    def export_outputs(cls, convention, artifact, samples, metadata):
        """Returns {endpoint: outputs} of a loaded export on raw samples (as reference_outputs), through
        `outputs_<convention>` (`toolkit.runtimes`: "saved_model" or "onnx")."""
        return _by_convention(cls, "outputs", convention)(artifact, samples, metadata)

    # Test-split quality of quantised artifacts (toolkit.exporters.verify.quality_report) -------------
    @classmethod
    def quality_endpoint(cls, metadata):
        """The ONNX-like endpoint whose outputs `quality` scores."""
        return "onnx"

    @classmethod
    def quality(cls, outputs, targets, metadata):
        """The task metric of outputs (as `export_outputs` gives them) against targets; a float."""
        raise NotImplementedError

    # Prediction ---------------------------------------------------------------------------------
    @classmethod
    def predict(cls, convention, handle, metadata, inputs, top_k=None, output_dir=None, **options):
        """Runs a loaded model on user inputs; returns a list of result dicts, through `predict_<convention>`.

        Args:
            convention: str. How `handle` is called (`toolkit.runtimes`): "keras", "saved_model" or "onnx".
            handle: the loaded model (Keras model, loaded SavedModel, or an
                onnxruntime / TFLite session).
            metadata: dict. The model's toolkit metadata.
            inputs: list. User inputs (file paths or arrays for images).
            top_k: int or None. How many ranked answers to return.
            output_dir: str or None. Where tasks that write files (masks)
                write them.
            options: the task's own options (`options`), e.g. min_score; None values are left out.
        """
        options = {key: value for key, value in options.items() if value is not None}
        for key in options:
            if key not in cls.options:
                raise ModelFileError(f"{key.replace('_', '-')}: {cls.name} models take no such option")
        return _by_convention(cls, "predict", convention)(handle, metadata, inputs, top_k=top_k,
                                                          output_dir=output_dir, **options)

    @classmethod
    def format_prediction(cls, result):
        """Returns one human-readable line (or block) for a result dict."""
        raise NotImplementedError

    # Explanation (`toolkit explain`, `toolkit.explanations`) ------------------------------------------
    # A task whose models can be explained overrides `explain_targets` and `explain_score` (and, when its input
    # is not one image, `explain_inputs`); the others refuse `toolkit explain` in one line.
    @classmethod
    def explain_inputs(cls, inputs, metadata):
        """(the inputs as read: uint8 images, texts; the batch the Keras model takes) of user inputs."""
        raise ModelFileError(f"{cls.name} models cannot be explained (the task declares no explain hook); "
                             "docs/explain.md lists the tasks it takes")

    @classmethod
    def explain_targets(cls, outputs, metadata, class_index=None, image_size=None, **options):
        """What to explain in one example, from the Keras model's outputs on it (NumPy, no batch axis).

        Args:
            outputs: array. The model's output for one example.
            metadata: dict. The model's toolkit metadata.
            class_index: int or None. The class asked for (`--class`); None: the task's default (the top-1
                class for a classifier; every class present for a segmenter; every kept box for a detector).
            image_size: (height, width) of the original input, for targets with coordinates (boxes).
            options: the task's own `options` given to explain (e.g. min_score).

        Returns:
            A list of dicts, one per map to draw: `class_index` (int), `label` (str), `score` (float, the
            probability shown) and what `explain_score` needs (a mask, a cell) or shows (`box`, in the input's
            pixels). An empty list: nothing to explain (no box found).
        """
        raise ModelFileError(f"{cls.name} models cannot be explained (the task declares no explain hook); "
                             "docs/explain.md lists the tasks it takes")

    @classmethod
    def explain_score(cls, outputs, target, metadata):
        """The scalar to explain per example: a function of the model's batch outputs (Keras tensors, taken before
        a final softmax; use `keras.ops`) returning shape [batch]; differentiable for the gradient methods."""
        raise NotImplementedError

    @classmethod
    def explain_embedding(cls, metadata):
        """Token models: the name of the embedding layer whose outputs integrated gradients attribute (the
        maps are then per token, not per pixel); None: the model's input itself (images)."""
        return None

    @classmethod
    def explain_tokens(cls, text, ids, metadata):
        """Token models: [(position in `ids`, token text)] of one input's tokens, for the attributions shown."""
        raise NotImplementedError

    @classmethod
    def explainable(cls):
        """Whether the task declares the explain hooks."""
        return getattr(cls.explain_targets, "__func__", None) is not Predictor.explain_targets.__func__


def is_path(item):
    """Whether a `predict` input is a file path (else an in-memory value: an array, a string of text, an id)."""
    return isinstance(item, (str, os.PathLike))


def input_names(inputs):
    """What results call each input: its path, or `array[i]`."""
    return [str(item) if is_path(item) else f"array[{i}]" for i, item in enumerate(inputs)]


def _by_convention(cls, kind, convention):
    """The predictor's `<kind>_<convention>` method, or a one-line error when it does not run in that runtime."""
    method = getattr(cls, f"{kind}_{convention}", None)
    if method is None:
        raise ModelFileError(f"{cls.name} models do not run in the {convention} runtime")
    return method
