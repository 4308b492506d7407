"""Recipe schema of anomaly detection: the data (images or time series), the network, the threshold and the
classic baselines.

Example:

>>> from toolkit.tasks.anomaly_detection.config import AnomalyRecipe
>>> recipe = AnomalyRecipe(task="anomaly_detection", data={"source": "fashion_mnist", "normal_class": "Sneaker"},
...                        model={"network": "conv_autoencoder"})
>>> recipe.data.kind, recipe.threshold.method, recipe.threshold.target_false_positive_rate
('image', 'quantile', 0.05)
"""

from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from toolkit.config.schema import DataConfig, ExportConfig, Recipe, StrictModel

IMAGE_SOURCES = ("fashion_mnist", "folder")
SERIES_SOURCES = ("synthetic_series", "csv", "ucr")


class SyntheticSeriesConfig(StrictModel):
    """`data.source: synthetic_series`: NAB-style 5-minute series (daily seasonality, trend, noise) with labelled
    jump, drop, level-shift and flat-line windows, deterministic from `train.seed`."""

    train_series: PositiveInt = Field(8, description="anomaly-free series to train on")
    validation_series: PositiveInt = Field(4, description="labelled series to calibrate the threshold on")
    test_series: PositiveInt = Field(8, description="labelled held-out series")
    length: PositiveInt = Field(2016, description="steps per series (2016 = one week of 5-minute samples)")
    period: PositiveInt = Field(288, description="steps per day (the seasonality)")
    kinds: list[Literal["jump", "drop", "level_shift", "flat_line"]] = Field(
        default_factory=lambda: ["jump", "drop", "level_shift", "flat_line"], description="anomaly kinds injected")


class UcrConfig(StrictModel):
    """`data.source: ucr`: a UCR time-series classification set (`toolkit data fetch ucr`), one class normal."""

    name: str = Field("GunPoint", description="the UCR set (toolkit data fetch ucr lists them)")
    normal_class: str = Field("1", description="the class that is normal; every other class is an anomaly")


class AnomalyDataConfig(DataConfig):
    """Normal data to train on; normal and anomalous data to calibrate and test on."""

    source: str = Field("fashion_mnist", description="data source: fashion_mnist, folder (images); "
                                                     "synthetic_series, csv, ucr (time series)")
    normal_class: Union[int, str, None] = Field(
        None, description="fashion_mnist: the class (name or index) that is normal; the nine others are anomalies")
    validation_anomalies: NonNegativeInt = Field(
        0, description="fashion_mnist: anomalies (other classes' training images) added to the validation split "
                       "(needed by threshold.method: best_f1; 0: as many as validation normals when it is set)")
    normal_folders: list[str] = Field(
        default_factory=lambda: ["normal", "good"],
        description="folder: names of the folders holding normal images (test/ and validation/ folders with other "
                    "names hold anomalies: the MVTec AD layout)")
    image_size: tuple[PositiveInt, PositiveInt] = Field((28, 28), description="images are resized to (height, width)")
    channels: Literal[1, 3] = Field(1, description="1 = grayscale, 3 = RGB")
    # time series
    window: PositiveInt = Field(64, description="time series: steps per window the network sees")
    stride: PositiveInt = Field(8, description="time series: steps between training windows")
    score_stride: Optional[PositiveInt] = Field(
        None, description="time series: steps between scored windows (default window / 4); each step's score is "
                          "the mean error of the windows covering it")
    timestamp_column: str = Field("timestamp", description="csv: the timestamp column")
    value_columns: Optional[list[str]] = Field(None, description="csv: value columns (default: every numeric column "
                                                                 "but the timestamp and label)")
    label_column: Optional[str] = Field(None, description="csv: a 0/1 column marking anomalous steps")
    windows_file: Optional[str] = Field(None, description="csv: a JSON file of labelled anomaly windows per file "
                                                          "(NAB's combined_windows.json layout)")
    synthetic: SyntheticSeriesConfig = Field(default_factory=SyntheticSeriesConfig,
                                             description="synthetic_series settings")
    ucr: UcrConfig = Field(default_factory=UcrConfig, description="ucr settings")

    @property
    def kind(self):
        """"image" or "series": what the source yields."""
        return "series" if self.source in SERIES_SOURCES else "image"


class AnomalyModelConfig(StrictModel):
    """The network. Autoencoders score by reconstruction error; svdd by the distance of an embedding to a centre."""

    network: Literal["conv_autoencoder", "series_autoencoder", "svdd"] = Field(
        "conv_autoencoder", description="conv_autoencoder (images), series_autoencoder (time-series windows), "
                                        "svdd (deep SVDD on model.backbone, images)")
    filters: list[PositiveInt] = Field(default_factory=lambda: [32, 64],
                                       description="autoencoders: filters per stride-2 encoder stage")
    latent: PositiveInt = Field(32, description="autoencoders: bottleneck size; svdd: embedding size")
    standardise: Literal["noise", "window", "global"] = Field(
        "noise", description="series_autoencoder: each window minus its own mean, over its mean absolute "
                             "step-to-step change (noise: errors in units of the series' own noise, whatever its "
                             "level and scale), or over its standard deviation (window), or the training data's "
                             "mean and standard deviation (global)")
    layer: Literal["conv1d", "lstm"] = Field("conv1d", description="series_autoencoder: convolutional or LSTM")
    backbone: str = Field("mobilenet_v3_small", description="svdd: registry name, hub:, file: or run:")
    weights: str = Field("none", description="svdd: imagenet/pretrained, none or file:<path.weights.h5>")
    score: Literal["combined", "reconstruction", "latent"] = Field(
        "combined", description="conv_autoencoder: reconstruction (mean squared error), latent (Mahalanobis distance "
                                "of the bottleneck code to the training codes) or combined (the sum of both, each "
                                "standardised in log scale on the validation normals)")
    score_blur: NonNegativeInt = Field(
        0, description="autoencoders: average the error map over 2 * score_blur + 1 pixels (steps) around each "
                       "before scoring (0: plain squared error)")


class ThresholdConfig(StrictModel):
    """How the anomaly threshold is set, after training, on the validation split (recorded in the model)."""

    method: Literal["quantile", "best_f1"] = Field(
        "quantile", description="quantile: of the validation normal scores (threshold.target_false_positive_rate); "
                                "best_f1: the best F1 on a labelled validation split")
    target_false_positive_rate: float = Field(0.05, gt=0.0, lt=1.0,
                                              description="quantile: share of normal examples flagged")


class AnomalyBaselineConfig(StrictModel):
    """Classic detectors (scikit-learn) trained and tested on the same splits in the same run."""

    methods: list[Literal["isolation_forest", "pca"]] = Field(
        default_factory=lambda: ["isolation_forest", "pca"], description="baselines reported beside the network")


class AnomalyExportConfig(ExportConfig):
    """Export settings of anomaly detectors."""

    parity_tolerance: PositiveFloat = Field(
        1e-3, description="max difference of anomaly scores allowed: absolute within 1 of the threshold, relative "
                          "beyond (scores span orders of magnitude; float32 rounding alone reaches 1e-4)")


class AnomalyRecipe(Recipe):
    """Recipe of an anomaly detection run."""

    task: Literal["anomaly_detection"] = Field(..., description="task name")
    data: AnomalyDataConfig = Field(default_factory=AnomalyDataConfig, description="data")
    model: AnomalyModelConfig = Field(default_factory=AnomalyModelConfig, description="network")
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig, description="anomaly threshold")
    baseline: AnomalyBaselineConfig = Field(default_factory=AnomalyBaselineConfig, description="classic baselines")
    export: AnomalyExportConfig = Field(default_factory=AnomalyExportConfig, description="export and verification")

    @model_validator(mode="after")
    def _check(self):
        data, model = self.data, self.model
        series = data.kind == "series"
        if series and model.network != "series_autoencoder":
            raise ValueError(f"model.network: data.source {data.source} gives time series; set model.network: "
                             "series_autoencoder")
        if not series and model.network == "series_autoencoder":
            raise ValueError(f"model.network: series_autoencoder takes time series but data.source {data.source} "
                             "gives images; use conv_autoencoder or svdd")
        if model.network == "conv_autoencoder":
            factor = 2 ** len(model.filters)
            if any(size % factor for size in data.image_size):
                raise ValueError(f"data.image_size: {list(data.image_size)} must be divisible by {factor} "
                                 f"(2 to the number of model.filters, {len(model.filters)}); e.g. "
                                 f"{[-(-s // factor) * factor for s in data.image_size]}")
        if series and model.layer == "conv1d" and data.source != "ucr" and data.window % 2 ** len(model.filters):
            raise ValueError(f"data.window: {data.window} must be divisible by {2 ** len(model.filters)} "
                             "(2 to the number of model.filters)")
        if model.network != "svdd" and self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: only model.network: svdd has a backbone to freeze; "
                             "set it to 0")
        if model.network == "svdd" and model.weights == "none" and self.train.fine_tune.frozen_epochs:
            raise ValueError("train.fine_tune.frozen_epochs: a frozen backbone with model.weights: none learns "
                             "nothing; set frozen_epochs: 0 or use pretrained weights")
        if data.source == "fashion_mnist" and data.normal_class is None:
            raise ValueError("data.normal_class: required for data.source: fashion_mnist (a class name such as "
                             "Sneaker, or its index 0-9)")
        return self
