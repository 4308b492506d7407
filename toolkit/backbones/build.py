"""Builds backbones from registry names, KerasHub presets, files and runs.

Example:

>>> from toolkit.backbones.build import build_backbone
>>> backbone = build_backbone("mobilenet_v3_small", "none", (32, 32, 3))
>>> backbone.model.output.shape[-1], backbone.pretrained
(576, False)
"""

import dataclasses
import importlib
import os

from toolkit.backbones.registry import BACKBONES
from toolkit.backbones.weights import stored_weights
from toolkit.errors import BackboneError, RunError, WeightsUnavailableError, first_line, preset_error
from toolkit.model_io import load_keras_file, read_toolkit_metadata

FEATURE_STRIDES = (4, 8, 16, 32)


@dataclasses.dataclass
class Backbone:
    """A built backbone and what the model around it needs to know.

    Args:
        model: keras.Model. Image (H, W, channels) -> feature map (4-D).
        reference: str. The backbone as named in the recipe.
        scale: float or list. Multiplies 0..255 pixels before the backbone.
        offset: float or list. Added after scaling.
        channels: int or None. Input channels the backbone needs.
        min_input_size: int. Smallest input height/width.
        feature_layers: dict of int -> str. Feature layer names by stride.
        weights_source: str. Where the weights came from (for the model card).
        pretrained: bool. Whether the weights are pretrained (not random).
    """

    model: object
    reference: str
    scale: object = 1.0
    offset: object = 0.0
    channels: object = 3
    min_input_size: int = 32
    feature_layers: dict = dataclasses.field(default_factory=dict)
    weights_source: str = "random initialisation"
    pretrained: bool = False

    def metadata(self):
        """Returns a JSON-able description stored with the trained model."""
        return {
            "reference": self.reference,
            "layer": self.model.name,
            "scale": self.scale,
            "offset": self.offset,
            "channels": self.channels,
            "min_input_size": self.min_input_size,
            "feature_layers": {str(k): v for k, v in self.feature_layers.items()},
            "weights_source": self.weights_source,
            "pretrained": self.pretrained,
        }


def _import_attr(path):
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def build_registered(spec, input_shape, weights):
    """Builds a registered architecture with `weights` (None, "imagenet" or a path)."""
    constructor = _import_attr(spec.constructor)
    # Keep the constructor's own model name: EfficientNetV2 looks its block
    # arguments up by name. The name is recorded in the model's metadata.
    return constructor(input_shape=tuple(input_shape), include_top=False, weights=weights, **spec.kwargs)


def load_weights_file(model, path, what):
    """Loads a weights file into `model`, with a clear error when it does not fit.

    Keras only warns when parts of a file do not match (and keeps random
    weights there); here any such warning is an error: never silently fall
    back to random weights.
    """
    import warnings

    if not os.path.isfile(path):
        raise BackboneError(f"model.weights: weights file {path} does not exist (for backbone {what}); give the path "
                            "of a .weights.h5 file, or model.weights: none")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            problem = next(
                (str(w.message) for w in caught if "Skipping" in str(w.message) or "freshly-initialized" in str(w.message)),
                None,
            )
        except Exception as error:  # noqa: BLE001 - Keras raises many types here
            problem = str(error).strip() or type(error).__name__
    if problem:
        raise BackboneError(
            f"weights file {path} does not fit backbone {what}: {problem.splitlines()[0][:300]}; "
            "use the no-top weights file of this exact architecture"
        )


def build_backbone(reference, weights, input_shape):
    """Builds the backbone a recipe names.

    Args:
        reference: str. Registry name, `hub:<preset or dir>`, `file:<.keras>`
            or `run:<run dir>`.
        weights: str. `imagenet`/`pretrained` (pretrained weights: the
            weights store, then download; for hub/file/run the weights that
            come with it), `none` (random) or `file:<path.weights.h5>`.
        input_shape: (int, int, int). Height, width, channels the backbone
            receives (after the model adapts grayscale to RGB if needed).

    Returns:
        A `Backbone`.
    """
    if reference.startswith("hub:"):
        backbone = _build_hub(reference[4:], weights)
    elif reference.startswith("file:"):
        backbone = _build_file(reference[5:], weights)
    elif reference.startswith("run:"):
        backbone = _build_run(reference[4:], weights)
    else:
        backbone = _build_registry(BACKBONES.get(reference), weights, input_shape)
    backbone.reference = reference
    backbone.model = _at_input_size(backbone.model, input_shape)
    if not backbone.feature_layers:
        backbone.feature_layers = find_feature_layers(backbone.model, input_shape)
    return backbone


def _at_input_size(model, input_shape):
    """Rebuilds a fixed-size functional backbone for another input size (same weights)."""
    import keras

    shape = model.input_shape
    if not isinstance(shape, tuple) or shape[1] is None or tuple(shape[1:3]) == tuple(input_shape[:2]):
        return model
    if shape[-1] != input_shape[-1]:
        raise BackboneError(
            f"backbone {model.name} takes {shape[-1]}-channel images, the recipe gives {input_shape[-1]}; "
            "set data.channels to match"
        )
    clone = keras.models.clone_model(model, input_tensors=keras.Input(tuple(input_shape), name="pixels"))
    clone.set_weights(model.get_weights())
    return clone


def feature_extractor(backbone, input_shape, strides=FEATURE_STRIDES, extra_strides=(2,)):
    """A model from the backbone input to its feature maps, in ascending stride.

    Args:
        backbone: Backbone. Built at `input_shape`.
        input_shape: (int, int, int). The backbone input shape.
        strides: tuple of int. Registry feature strides to take.
        extra_strides: tuple of int. More strides found by the stride rule
            when the backbone has them (stride 2 sharpens U-Net edges).

    Returns:
        (keras.Model with one output per stride, list of strides).
    """
    import keras

    layers = {k: v for k, v in backbone.feature_layers.items() if k in strides}
    found = find_feature_layers(backbone.model, input_shape, strides=tuple(extra_strides))
    for stride, name in found.items():
        if stride not in layers and stride < min(layers or [stride + 1]):
            layers[stride] = name
    if not layers:
        raise BackboneError(f"backbone {backbone.reference}: no feature layers at strides {strides}")
    ordered = sorted(layers)
    model = backbone.model
    outputs = [model.get_layer(layers[stride]).output for stride in ordered]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features"), ordered


def _check_size(spec, input_shape):
    height, width = input_shape[:2]
    if min(height, width) < spec.min_input_size:
        raise BackboneError(
            f"backbone {spec.name} needs images of at least {spec.min_input_size}x{spec.min_input_size}, "
            f"the recipe gives {height}x{width}; raise data.image_size"
        )


def _build_registry(spec, weights, input_shape):
    _check_size(spec, input_shape)
    scale, offset = spec.rescaling()
    common = dict(
        reference=spec.name, scale=scale, offset=offset, channels=spec.channels,
        min_input_size=spec.min_input_size, feature_layers=dict(spec.feature_layers),
    )
    if weights == "none":
        return Backbone(build_registered(spec, input_shape, None), **common)
    if weights.startswith("file:"):
        path = weights[5:]
        model = build_registered(spec, input_shape, None)
        load_weights_file(model, path, spec.name)
        return Backbone(model, weights_source=f"file {path}", pretrained=True, **common)
    if spec.weights_url is None:
        raise WeightsUnavailableError(
            f"backbone {spec.name} has no published pretrained weights; set model.weights: none "
            f"or model.weights: file:<path.weights.h5>"
        )
    stored = stored_weights(spec.name)
    if stored:
        model = build_registered(spec, input_shape, None)
        load_weights_file(model, stored, spec.name)
        return Backbone(model, weights_source=f"ImageNet, weights store {stored}", pretrained=True, **common)
    try:
        model = build_registered(spec, input_shape, "imagenet")
    except Exception as error:  # noqa: BLE001 - keras raises a bare Exception for URL failures
        raise WeightsUnavailableError(
            f"backbone {spec.name}: ImageNet weights are not in the weights store and the download failed "
            f"({first_line(error)}); on a connected machine download {spec.weights_url} and run: "
            f"toolkit weights import {spec.weights_file} --backbone {spec.name} "
            f"(or set model.weights: none to train from random weights)"
        )
    return Backbone(model, weights_source=f"ImageNet, {spec.weights_url}", pretrained=True, **common)


def _build_hub(preset, weights):
    import keras_hub

    if weights.startswith("file:"):
        raise BackboneError("model.weights: file: does not apply to hub: presets; the preset holds the weights")
    load = weights != "none"
    try:
        model = keras_hub.models.Backbone.from_preset(preset, load_weights=load)
    except Exception as error:  # noqa: BLE001
        raise preset_error("model.backbone", preset, error, "a preset name", cls=BackboneError)
    scale, offset = 1.0, 0.0
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
        scale = _plain(converter.scale) if converter.scale is not None else 1.0
        offset = _plain(converter.offset) if converter.offset is not None else 0.0
    except Exception:  # noqa: BLE001 - a preset without an image converter takes raw pixels
        pass
    shape = model.input_shape
    channels = shape[-1] if isinstance(shape, tuple) else None
    # KerasHub feature-pyramid backbones name their levels P2..P5 (strides 4..32).
    features = {}
    for key, tensor in (getattr(model, "pyramid_outputs", None) or {}).items():
        history = getattr(tensor, "_keras_history", None)
        if key.startswith("P") and key[1:].isdigit() and 2 ** int(key[1:]) in FEATURE_STRIDES and history:
            features[2 ** int(key[1:])] = history.operation.name
    source = f"KerasHub preset {preset}" if load else f"KerasHub preset {preset} architecture, random weights"
    return Backbone(
        model, preset, scale=scale, offset=offset, channels=channels, min_input_size=32,
        feature_layers=features, weights_source=source, pretrained=load,
    )


def _plain(value):
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        flat = [float(v) for v in _flatten(value)]
        return flat[0] if len(set(flat)) == 1 else flat
    return float(value)


def _flatten(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flatten(value)
        else:
            yield value


def rebuilt_copy(model, config=None):
    """A new model from `model`'s serialized config (or `config`, e.g. with its dtype policies changed) with the
    same weights, built in the current scope (plain variables outside a tf.distribute strategy)."""
    import keras

    copy = keras.saving.deserialize_keras_object(config or keras.saving.serialize_keras_object(model))
    copy.set_weights(model.get_weights())
    return copy


def _build_file(path, weights):
    if weights.startswith("file:"):
        raise BackboneError("model.weights: file: does not apply to a file: backbone; the .keras file holds the weights")
    if not path.endswith(".keras"):
        raise BackboneError(f"model.backbone: file:{path}: expected a .keras model file")
    if not os.path.isfile(path):
        raise BackboneError(f"model.backbone: file:{path} does not exist; give the path of a .keras model file "
                            "(saved with model.save) or a registered backbone name")
    model = load_keras_file(path)
    metadata = read_toolkit_metadata(path).get("backbone")
    if metadata:  # a whole toolkit model: take its backbone
        return _backbone_from_model(model, metadata, f"file {path}", weights)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.output.shape) != 4:
        raise BackboneError(
            f"file:{path}: a backbone takes one image and returns one feature map (4-D); this model has "
            f"inputs {[tuple(t.shape) for t in model.inputs]} and outputs {[tuple(t.shape) for t in model.outputs]}"
        )
    shape = model.input_shape
    return _maybe_reset(
        Backbone(
            model, path, channels=shape[-1], min_input_size=32, weights_source=f"file {path}", pretrained=True,
        ),
        weights,
    )


def _build_run(run_dir, weights):
    if weights.startswith("file:"):
        raise BackboneError("model.weights: file: does not apply to a run: backbone; the run holds the weights")
    path = os.path.join(run_dir, "model.keras")
    if not os.path.isdir(run_dir):
        raise RunError(f"model.backbone: run:{run_dir}: no such run directory; give the directory of a finished "
                       "toolkit train run")
    if not os.path.isfile(path):
        raise RunError(f"run:{run_dir}: the run has no model.keras (did it finish? resume it with toolkit train --resume {run_dir})")
    metadata = read_toolkit_metadata(path)
    if metadata and (metadata.get("input") != "image" or "backbone" not in metadata):
        from toolkit.references import image_backbone_runs

        raise RunError(f"run:{run_dir} is a {metadata.get('task', 'non-image')} run; model.backbone: run: takes "
                       f"{image_backbone_runs()}")
    if "backbone" not in metadata:
        raise RunError(f"run:{run_dir}: model.keras carries no toolkit metadata; it was not written by toolkit train")
    model = load_keras_file(path)
    return _backbone_from_model(model, metadata["backbone"], f"run {run_dir} ({metadata.get('task')})", weights)


def _backbone_from_model(model, metadata, source, weights):
    import keras

    try:
        inner = model.get_layer(metadata["layer"])
    except ValueError:
        raise RunError(f"{source}: backbone layer {metadata['layer']!r} not found in the model")
    if len(inner.outputs) > 1:  # a dense-prediction run keeps a feature extractor: its backbone ends at the deepest
        inner = keras.Model(inner.inputs, inner.outputs[-1], name=metadata.get("backbone_name", inner.name))
    backbone = Backbone(
        inner, source, scale=metadata["scale"], offset=metadata["offset"], channels=metadata["channels"],
        min_input_size=metadata["min_input_size"],
        feature_layers={int(k): v for k, v in metadata["feature_layers"].items()},
        weights_source=f"{source}, initialised from {metadata.get('weights_source')}", pretrained=True,
    )
    return _maybe_reset(backbone, weights)


def _maybe_reset(backbone, weights):
    if weights != "none":
        return backbone
    import keras

    backbone.model = keras.models.clone_model(backbone.model)
    backbone.weights_source = "random initialisation (architecture of " + backbone.reference + ")"
    backbone.pretrained = False
    return backbone


def find_feature_layers(model, input_shape, strides=FEATURE_STRIDES):
    """Returns {stride: layer name} for the last layer at each of `strides` (default 4/8/16/32).

    A layer counts at stride s when its 4-D output has spatial size
    ceil(input / s); padding layers and squeeze-and-excitation branches (1x1)
    never match.
    """
    import keras

    height = input_shape[0]
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.ZeroPadding2D):
            continue  # padding changes the size without being a feature map
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) != 4 or not shape[1]:
            continue
        for stride in strides:
            if shape[1] == -(-height // stride) and height // stride >= 1 and (stride == 1 or shape[1] != height):
                found[stride] = layer.name
    return {stride: found[stride] for stride in strides if stride in found}
