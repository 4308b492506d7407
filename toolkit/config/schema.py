"""The recipe schema: one typed source of truth for every setting.

A recipe is a YAML file validated by the pydantic models below. Unknown keys
are errors at every level; every field has a default, a type and a one-line
description. Task modules extend `Recipe` with their own `data` and `model`
sections (see `toolkit.tasks`).

Example:

>>> from toolkit.config.schema import TrainConfig
>>> TrainConfig(epochs=3).optimizer.name
'adam'
"""

from typing import Any, Literal, Optional, Union

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from toolkit.config.base import StrictModel  # noqa: F401 - the base of every section, importable from here too
from toolkit.config.tune import TrackConfig, TuneConfig

# --------------------------------------------------------------------------- data


class AugmentConfig(StrictModel):
    """Training-time augmentation (Keras preprocessing layers, train split only)."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "none", description="random flips"
    )
    rotation: float = Field(0.0, ge=0.0, le=0.5, description="max rotation, fraction of a full turn")
    zoom: float = Field(0.0, ge=0.0, lt=1.0, description="max zoom in/out, fraction of the size")
    translation: float = Field(0.0, ge=0.0, lt=1.0, description="max shift, fraction of the size")
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="max contrast change, fraction")


class SampleLimits(StrictModel):
    """Caps on the number of examples per split (for quick runs and tests)."""

    train: Optional[PositiveInt] = Field(None, description="at most this many training examples")
    validation: Optional[PositiveInt] = Field(None, description="at most this many validation examples")
    test: Optional[PositiveInt] = Field(None, description="at most this many test examples")


class DataConfig(StrictModel):
    """Where the data comes from and how it is split; shared by all tasks."""

    source: str = Field(
        "folder", description="data source of the task: folder, tfds or a named dataset (toolkit list sources)"
    )
    path: Optional[str] = Field(None, description="directory or file the source reads")
    tfds_name: Optional[str] = Field(None, description="TFDS dataset name, for source: tfds")
    tfds_data_dir: Optional[str] = Field(None, description="TFDS data directory (default ~/tensorflow_datasets)")
    download: bool = Field(True, description="allow downloading (TFDS, keras.datasets) when not on disk")
    validation_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of train held out for validation when the source has none"
    )
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="share held out for test when the source has no test split"
    )
    on_error: Literal["skip", "fail"] = Field(
        "skip", description="unreadable example: skip and count it, or fail"
    )
    limit: SampleLimits = Field(default_factory=SampleLimits, description="per-split example caps")
    cache: bool = Field(True, description="cache decoded examples in memory after the first epoch")
    shuffle_buffer: PositiveInt = Field(10000, description="shuffle buffer size (examples)")


def _square(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return value


class ImageDataConfig(DataConfig):
    """Image data: decoding, size and augmentation."""

    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (224, 224), description="model input height and width (an int means square)"
    )
    channels: Literal[1, 3] = Field(3, description="1 = grayscale, 3 = RGB")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="training augmentation")

    _square_size = field_validator("image_size", mode="before")(_square)


# -------------------------------------------------------------------------- model


class HeadConfig(StrictModel):
    """The classification head on top of the pooled backbone features."""

    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before each dense layer")
    hidden_units: list[PositiveInt] = Field(
        default_factory=list, description="sizes of hidden dense layers (ReLU) before the output"
    )


class BackboneModelConfig(StrictModel):
    """A pretrained backbone and where its weights come from."""

    backbone: str = Field(
        ...,
        description="registry name (toolkit list backbones), hub:<preset or dir>, file:<path.keras> or run:<run dir>",
    )
    weights: str = Field(
        "imagenet",
        description=(
            "imagenet/pretrained (weights store, then download; for hub:/file:/run: the weights that come "
            "with it), none (random init) or file:<path.weights.h5>"
        ),
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _check_weights(cls, value):
        if value is None:
            return "none"
        if isinstance(value, str) and (value in ("imagenet", "pretrained", "none") or value.startswith("file:")):
            return value
        from toolkit.registry import did_you_mean

        hint = did_you_mean(value, ["imagenet", "pretrained", "none"]) if isinstance(value, str) else ""
        raise ValueError(f"expected imagenet, pretrained, none or file:<path>; got {value!r}{hint}")

    @field_validator("backbone")
    @classmethod
    def _check_backbone(cls, value):
        from toolkit.backbones.registry import check_backbone_name

        return check_backbone_name(value)


class ClassifierModelConfig(BackboneModelConfig):
    """Backbone plus classification head."""

    head: HeadConfig = Field(default_factory=HeadConfig, description="classification head")


# -------------------------------------------------------------------------- train


class OptimizerConfig(StrictModel):
    """Optimizer and base learning rate."""

    name: Literal["adam", "adamw", "sgd", "rmsprop"] = Field("adam", description="optimizer")
    learning_rate: PositiveFloat = Field(1e-3, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled weight decay (adamw, sgd)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="momentum (sgd, rmsprop)")
    clipnorm: Optional[PositiveFloat] = Field(None, description="clip each gradient to this norm")


class ScheduleConfig(StrictModel):
    """Learning-rate schedule over each training phase."""

    name: Literal["constant", "cosine"] = Field("cosine", description="decay after warmup")
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warmup from 0, in epochs")
    final_factor: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final lr as a share of the peak")


class FineTuneConfig(StrictModel):
    """Two-phase transfer learning: frozen backbone, then partial unfreezing."""

    frozen_epochs: NonNegativeInt = Field(
        0, description="epochs with the backbone frozen (0: train everything from the start)"
    )
    unfreeze: Union[Literal["all"], NonNegativeInt] = Field(
        "all", description="after the frozen epochs: 'all' or the number of top backbone layers to unfreeze"
    )
    learning_rate_factor: float = Field(
        0.1, gt=0.0, le=1.0, description="fine-tune learning rate = learning_rate * factor"
    )


class TrainConfig(StrictModel):
    """Training schedule and regularisation."""

    epochs: NonNegativeInt = Field(
        10, description="total epochs, frozen epochs included (0: evaluate and export the initial, e.g. pretrained, "
                        "model without training)")
    batch_size: PositiveInt = Field(32, description="examples per step")
    steps_per_epoch: Optional[PositiveInt] = Field(
        None, description="steps per epoch (default: one pass over the training data); when set, the training data "
                          "repeats, so an epoch may cover part of a pass or several, and the next epoch goes on "
                          "where it stopped")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="optimizer")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="learning-rate schedule")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on trainable kernels")
    early_stopping_patience: Optional[PositiveInt] = Field(
        None, description="stop after this many epochs without improvement of `monitor`"
    )
    monitor: Optional[str] = Field(
        None, description="metric for the best checkpoint and early stopping (default: the task's, e.g. val_accuracy)"
    )
    seed: int = Field(42, description="seed for weights, shuffling, splits and augmentation")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32", description="Keras dtype policy (exports are always float32)"
    )
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker", "tpu"] = Field(
        "auto", description="tf.distribute strategy: auto (mirrored over all GPUs when there are several, else one "
                            "device), one_device, mirrored (all GPUs, or train.devices), multi_worker (reads "
                            "TF_CONFIG), tpu (train.tpu); batch_size is the global batch, split across replicas")
    devices: Optional[list[str]] = Field(
        None, description="mirrored: the devices to use, e.g. [/gpu:0, /gpu:1] (default: all GPUs, else the CPU)")
    tpu: str = Field("", description="tpu: the TPU name or grpc:// address (empty: the local or Colab TPU)")
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig, description="transfer-learning phases")
    verbose: Literal[0, 1, 2, "auto"] = Field("auto", description="Keras progress output")

    @model_validator(mode="after")
    def _check_phases(self):
        if self.fine_tune.frozen_epochs > self.epochs:
            raise ValueError(
                f"fine_tune.frozen_epochs ({self.fine_tune.frozen_epochs}) is more than epochs ({self.epochs})"
            )
        return self


# ------------------------------------------------------------------------- export


class ExportConfig(StrictModel):
    """Export formats, their options, and parity verification."""

    formats: list[str] = Field(
        default_factory=lambda: ["saved_model", "onnx"], description="formats to export (toolkit list formats)"
    )
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-format options, e.g. {onnx: {opset: 17}}"
    )
    parity_tolerance: PositiveFloat = Field(
        1e-4, description="max abs difference of outputs allowed between an export and the Keras model"
    )
    min_agreement: float = Field(
        1.0, ge=0.0, le=1.0,
        description="share of verification decisions that must agree (top-1 per image; argmax per pixel)",
    )
    quantized_min_agreement: float = Field(
        0.9, ge=0.0, le=1.0,
        description="share of decisions a quantised artifact (tflite_dynamic, tflite_int8) must agree on; its max "
                    "abs difference is reported, not held to parity_tolerance",
    )
    verify_samples: PositiveInt = Field(64, description="held-out test examples used for verification")
    quality_samples: PositiveInt = Field(
        500, description="test examples on which TFLite artifacts' task metric is compared with the Keras model's")
    top_k: PositiveInt = Field(5, description="top-k classes returned by the serving signature")

    @model_validator(mode="after")
    def _check_formats(self):
        from toolkit.exporters.formats import validate_export_settings

        self.__dict__["options"] = validate_export_settings(self.formats, self.options)
        return self


class OutputConfig(StrictModel):
    """Where runs are written."""

    dir: str = Field("saved_models", description="parent directory of run directories")


class Recipe(StrictModel):
    """Fields every task recipe has; tasks add `data` and `model` sections."""

    task: str = Field(..., description="task name (toolkit list tasks)")
    name: Optional[str] = Field(None, description="run name (default: the recipe file name)")
    description: str = Field("", description="one line about what this recipe is for")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training")
    export: ExportConfig = Field(default_factory=ExportConfig, description="export and verification")
    output: OutputConfig = Field(default_factory=OutputConfig, description="outputs")
    track: TrackConfig = Field(default_factory=TrackConfig, description="experiment tracking (MLflow, W&B, TensorBoard)")
    tune: Optional[TuneConfig] = Field(
        None, description="hyperparameter search of toolkit tune (toolkit train ignores it)")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value):
        if value is not None and (not value or "/" in value or value.startswith(".")
                                  or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise ValueError(f"a run name must be a plain directory name (no '/', no control characters); "
                             f"got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_source(self):
        from toolkit.config.tasks import TASKS
        from toolkit.registry import did_you_mean

        data = getattr(self, "data", None)
        if data is None or self.task not in TASKS:
            return self
        sources = TASKS.get(self.task).sources
        if data.source not in sources:
            raise ValueError(
                f"data.source: unknown {self.task} data source {data.source!r}"
                f"{did_you_mean(data.source, sources.names())} (sources: {', '.join(sources.names())})"
            )
        return self

    @model_validator(mode="after")
    def _check_tune_space(self):
        from toolkit.config.tune import check_space

        check_space(self)  # every searched value through this schema, before any trial starts
        return self


class ImageRecipe(Recipe):
    """Checks every image-task recipe shares: the backbone fits the image size,
    and a frozen phase only with pretrained weights."""

    @model_validator(mode="after")
    def _check_image_backbone(self):
        from toolkit.backbones.registry import BACKBONES

        if self.model.backbone in BACKBONES:
            minimum = BACKBONES.get(self.model.backbone).min_input_size
            if min(self.data.image_size) < minimum:
                raise ValueError(
                    f"data.image_size: backbone {self.model.backbone} needs images of at least {minimum}x{minimum}, "
                    f"the recipe gives {self.data.image_size[0]}x{self.data.image_size[1]}; raise data.image_size"
                )
        if self.model.weights == "none" and self.train.fine_tune.frozen_epochs > 0:
            raise ValueError(
                "train.fine_tune.frozen_epochs: a frozen backbone with model.weights: none (random weights) "
                "learns nothing; set frozen_epochs: 0 or use pretrained weights"
            )
        return self
