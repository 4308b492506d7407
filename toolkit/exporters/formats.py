"""The table of export formats: name, artifact, exporter, loader and options.

Adding a format is adding a row. Options a format does not take are errors
(in the recipe and on the command line). Nothing here imports TensorFlow.

Example:

>>> from toolkit.exporters.formats import FORMATS, validate_export_settings
>>> FORMATS.get("onnx").artifact
'model.onnx'
>>> validate_export_settings(["onnx"], {"onnx": {"opset": 15}})
{'onnx': {'opset': 15}}
"""

import dataclasses
import importlib

from pydantic import Field, ValidationError

from toolkit.config.base import StrictModel
from toolkit.errors import ExportError
from toolkit.registry import Registry, did_you_mean

FORMATS = Registry("export format", ExportError)


class NoOptions(StrictModel):
    """A format without options."""


class OnnxOptions(StrictModel):
    """Options of the ONNX export."""

    opset: int = Field(17, ge=13, le=21, description="ONNX opset version")


class Int8Options(StrictModel):
    """Options of the int8 TFLite export."""

    representative_samples: int = Field(200, ge=1, le=10000,
                                        description="training examples that calibrate the activation ranges")


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One row of the formats table.

    Args:
        name: str. Format name used in recipes and on the command line.
        artifact: str. File or directory name inside `export/`.
        suffix: str. File suffix ("" for a directory).
        exporter: str. `module:function(model, task, path, options)`.
        loader: str. `module:function(path)` that loads the artifact in its
            own runtime for verification and prediction.
        runtime: str. Runtime that serves it.
        options: type. Pydantic model of its options.
        description: str. One line for `toolkit list formats`.
        exact: bool. Whether verification holds it to `parity_tolerance`
            (False for quantised artifacts: `quantized_min_agreement` only).
    """

    name: str
    artifact: str
    suffix: str
    exporter: str
    loader: str
    runtime: str
    options: type = NoOptions
    description: str = ""
    exact: bool = True

    def resolve(self, attribute):
        module, _, function = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), function)

    def option_names(self):
        return list(self.options.model_fields)


FORMATS.register("saved_model", ExportFormat(
    name="saved_model", artifact="saved_model", suffix="",
    exporter="toolkit.exporters.saved_model:export_saved_model",
    loader="toolkit.exporters.saved_model:load_saved_model",
    runtime="saved_model",
    description="TensorFlow SavedModel with serving signatures (preprocessing inside), for TF Serving",
))
FORMATS.register("onnx", ExportFormat(
    name="onnx", artifact="model.onnx", suffix=".onnx",
    exporter="toolkit.exporters.onnx:export_onnx",
    loader="toolkit.exporters.onnx:load_onnx",
    runtime="onnx",
    options=OnnxOptions,
    description="ONNX (tf2onnx) of the Keras model with a dynamic batch, for ONNX Runtime",
))

FORMATS.register("tflite", ExportFormat(
    name="tflite", artifact="model.tflite", suffix=".tflite",
    exporter="toolkit.exporters.tflite:export_float", loader="toolkit.exporters.tflite:load_tflite", runtime="tflite",
    description="TFLite (LiteRT) float32 network, for mobile and edge (image tasks, CTC speech)",
))
FORMATS.register("tflite_dynamic", ExportFormat(
    name="tflite_dynamic", artifact="model_dynamic.tflite", suffix=".tflite",
    exporter="toolkit.exporters.tflite:export_dynamic", loader="toolkit.exporters.tflite:load_tflite", runtime="tflite",
    exact=False, description="TFLite with dynamic-range quantisation: int8 weights, float activations (~4x smaller)",
))
FORMATS.register("tflite_int8", ExportFormat(
    name="tflite_int8", artifact="model_int8.tflite", suffix=".tflite",
    exporter="toolkit.exporters.tflite:export_int8", loader="toolkit.exporters.tflite:load_tflite", runtime="tflite",
    options=Int8Options, exact=False,
    description="TFLite with int8 weights and activations calibrated on training examples; float input/output",
))


def parse_formats(value):
    """Parses `saved_model,onnx` (or a list) into a list of known format names."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ExportError("no export format given; choose from " + ", ".join(FORMATS.names()))
    for name in names:
        FORMATS.get(name)
    if len(set(names)) != len(names):
        raise ExportError(f"export format listed twice in {', '.join(names)}")
    return names


def validate_export_settings(formats, options):
    """Checks format names and per-format options; returns validated options.

    Raises ValueError (shown by the recipe loader with the field path).
    """
    for name in formats:
        if name not in FORMATS:
            raise ValueError(
                f"formats: unknown export format {name!r}{did_you_mean(name, FORMATS.names())} "
                f"(formats: {', '.join(FORMATS.names())})"
            )
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats: a format is listed twice in {formats}")
    validated = {}
    for name, values in (options or {}).items():
        if name not in FORMATS:
            raise ValueError(
                f"options.{name}: unknown export format{did_you_mean(name, FORMATS.names())} "
                f"(formats: {', '.join(FORMATS.names())})"
            )
        spec = FORMATS.get(name)
        accepted = spec.option_names()
        for key in values or {}:
            if key not in accepted:
                takes = ", ".join(accepted) if accepted else "no options"
                raise ValueError(
                    f"options.{name}.{key}: format {name} takes no option {key!r}"
                    f"{did_you_mean(key, accepted)} (it takes: {takes})"
                )
        try:
            validated[name] = spec.options.model_validate(values or {}).model_dump()
        except ValidationError as error:
            item = error.errors()[0]
            where = ".".join(str(part) for part in item["loc"])
            raise ValueError(f"options.{name}.{where}: {item['msg']}; got {item.get('input')!r}")
    return validated


def format_options(export_config, name):
    """Returns the validated options of one format (defaults filled in)."""
    spec = FORMATS.get(name)
    return spec.options.model_validate(export_config.options.get(name, {}))
