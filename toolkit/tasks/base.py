"""The Task interface: training (after TF Model Garden's `base_task.Task` and KerasHub's
Backbone/Task/Preprocessor split).

The trainer, exporter, CLI and notebooks know tasks only through this
interface and the task's `Predictor` (`toolkit.tasks.predictor`: what runs
with a trained model and its metadata only). Adding a task is adding one
package under `toolkit/tasks/` (docs/development.md).

Task modules must not import TensorFlow at module level: the CLI lists tasks
and loads recipes without it.
"""


class Task:
    """One machine-learning task: data, model, losses, metrics, evaluation and the serving signatures.

    Class attributes:
        name: str. Registry name (the recipe's `task:`).
        config_class: type. The pydantic recipe class (a `Recipe` subclass).
        input_kind: str. What the model eats ("image", "text", ...); a
            `run:` backbone must come from a run of the same input kind.
        default_monitor: str. Metric for the best checkpoint when the recipe
            keeps the default.
        predictor: type. The task's `Predictor` subclass (deployment).

    Args:
        recipe: the task's recipe object.
    """

    name = None
    config_class = None
    sources = None  # Registry of the task's data sources (`data.source`)
    input_kind = None
    default_monitor = "val_loss"
    predictor = None
    path_source = "folder"  # the data.source that reads `toolkit.train(recipe, data="<path>")`
    user_data_extras = ()  # keys of `data={...}` besides the splits (e.g. class_names)

    def __init__(self, recipe):
        self.recipe = recipe
        self.user_data = None

    def use_data(self, data):
        """Takes Python datasets (`toolkit.train(recipe, data=...)`) instead of the recipe's source."""
        from toolkit.data.user_data import UserData

        self.user_data = UserData.of(data, self.user_data_extras)

    def read_data(self, *extra):
        """Reads the recipe's data source (with `extra` arguments), or the datasets given to `use_data`."""
        if self.user_data is not None:
            return self.data_from_user(self.user_data)
        return self.sources.get(self.recipe.data.source)(self.recipe.data, self.recipe.train.seed, *extra)

    def data_from_user(self, user):
        """Returns the task's data object (as its sources return) from a `UserData`."""
        raise NotImplementedError

    # TFRecords (`toolkit data to-tfrecord`): a task that writes them sets `tfrecord_note` to None and
    # implements the two methods; its "tfrecord" data source reads them back.
    tfrecord_note = "its data is not written to TFRecord"  # why not, for the error message

    def tfrecord_examples(self, split, skipped):
        """Serialized `tf.train.Example`s of one split of the loaded data (unreadable files appended to
        `skipped` as "file: reason")."""
        raise NotImplementedError

    def tfrecord_metadata(self):
        """What `tfrecord.json` records besides counts and provenance (class names, channels, sample rate)."""
        return {}

    # TFLite (`export.formats: tflite*`): a task whose network converts sets `tflite_supported` (an attribute or
    # a property) and gives `tflite_signature()`; int8 also needs `representative_inputs()`.
    tflite_supported = False
    tflite_int8_supported = True  # False: the converter cannot calibrate the network (e.g. recurrent layers)
    tflite_unsupported_reason = "its network does not convert to TFLite builtin ops"

    def representative_inputs(self, count):
        """Up to `count` training inputs as the network takes them, for int8 calibration."""
        raise NotImplementedError

    def check_references(self):
        """Checks what the recipe names outside itself (files, earlier runs, presets, voices) before any data is
        read or model built; raises a one-line RecipeError (helpers in `toolkit.references`)."""

    def finish_training(self, model):
        """Called once training is over, before the model and its metadata are saved: tasks that learn something
        from the trained model (an anomaly threshold calibrated on validation scores) do it here."""

    def attach_run(self, run):
        """Called before training with the run directory (new or resumed): tasks
        that learn something from the data before the model (tokenizers) keep it there."""

    # Data ---------------------------------------------------------------
    def build_inputs(self, split, training=False):
        """Returns the batched `tf.data.Dataset` of (inputs, targets) of a split."""
        raise NotImplementedError

    def data_report(self):
        """Returns {split: {examples, skipped, ...}} after `build_inputs`."""
        raise NotImplementedError

    def build_preprocessor(self):
        """Returns the in-graph function raw input -> model input (used in serving)."""
        raise NotImplementedError

    # Model --------------------------------------------------------------
    def build_model(self):
        """Builds the Keras model (functional) around a pretrained backbone."""
        raise NotImplementedError

    def backbone_layer(self, model):
        """Returns the backbone layer inside `model` (for freezing)."""
        raise NotImplementedError

    def build_losses(self):
        """Returns the Keras loss."""
        raise NotImplementedError

    def build_metrics(self):
        """Returns the Keras metrics tracked during training."""
        raise NotImplementedError

    def model_metadata(self):
        """Returns the JSON-able facts stored with the model and its exports."""
        raise NotImplementedError

    # Evaluation ---------------------------------------------------------
    def evaluate(self, model, split="test"):
        """Returns the task's metrics (a JSON-able dict) on a whole split."""
        raise NotImplementedError

    def plot(self, model, metrics, run_dir):
        """Writes the task's plots (PNG) into `run_dir`; returns their names."""
        return []

    # Serving and export -------------------------------------------------
    def serving_signatures(self, model):
        """Returns {name: (tf.function, input_signature)} for the SavedModel."""
        raise NotImplementedError

    def serving_resources(self):
        """Objects the serving signatures use besides the model (tracked into the SavedModel)."""
        return []

    def onnx_model(self, model):
        """Returns the Keras network the ONNX file holds (default: the trained model itself)."""
        return model

    def onnx_signature(self):
        """Returns the input signature of the ONNX export of the Keras model."""
        raise NotImplementedError

    def tflite_signature(self):
        """The input signature of the TFLite export (default: the ONNX one)."""
        return self.onnx_signature()

    def verification_samples(self, count):
        """Returns `count` raw held-out test inputs for parity checks."""
        raise NotImplementedError

    def save_samples(self, samples, directory):
        """Writes raw samples into `directory` (so `toolkit verify` can reuse them)."""
        raise NotImplementedError

    # Test-split quality of quantised artifacts (toolkit.exporters.verify.quality_report) -------------
    def quality_samples(self, count):
        """(raw samples, targets) of up to `count` test examples for the predictor's `quality`."""
        raise NotImplementedError
