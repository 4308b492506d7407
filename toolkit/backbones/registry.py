"""The backbone registry: names -> how to build them and what they expect.

Entries are plain data (no TensorFlow import): the constructor path, the
input range the backbone expects (several keras.applications models rescale
inside and want raw 0..255 pixels; never normalise twice), the minimum input
size, the feature layers at strides 4/8/16/32, and where its pretrained
weights come from.

Besides registered names, a backbone can be given as:

- `hub:<preset name or local preset dir>`: a KerasHub backbone preset;
- `file:<path.keras>`: a saved Keras backbone model;
- `run:<run dir>`: the backbone of an earlier toolkit run (pretrain on one
  recipe, fine-tune on another).

Example:

>>> from toolkit.backbones.registry import BACKBONES
>>> spec = BACKBONES.get("mobilenet_v3_small")
>>> spec.input_range, spec.min_input_size
((0.0, 255.0), 32)
"""

import dataclasses
from typing import Optional

from toolkit.errors import BackboneError
from toolkit.registry import Registry, did_you_mean

BACKBONES = Registry("backbone", BackboneError)
PREFIXES = ("hub:", "file:", "run:")

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What the toolkit knows about one backbone architecture.

    Args:
        name: str. Registry name.
        constructor: str. Dotted path of the function that builds it, called
            as `constructor(input_shape=..., include_top=False, weights=...,
            **kwargs)`.
        kwargs: dict. Extra constructor arguments.
        input_range: (float, float). Pixel range the backbone expects at its
            input. `(0, 255)` means it rescales inside.
        min_input_size: int. Smallest height/width it accepts.
        feature_layers: dict of int -> str. Layer names of the feature maps
            at strides 4, 8, 16 and 32.
        weights_file: str or None. File name of the ImageNet no-top weights
            that `keras.applications` downloads (for the offline message).
        weights_url: str or None. Where that file is downloaded from.
        channels: int or None. Input channels it needs (None: any).
        family: str. Where the architecture comes from.
        description: str. One line for `toolkit list backbones`.
    """

    name: str
    constructor: str
    input_range: tuple
    min_input_size: int
    feature_layers: dict
    kwargs: dict = dataclasses.field(default_factory=dict)
    weights_file: Optional[str] = None
    weights_url: Optional[str] = None
    channels: Optional[int] = 3
    family: str = "keras.applications"
    description: str = ""
    params: str = ""

    def rescaling(self):
        """Returns (scale, offset) mapping 0..255 pixels to `input_range`."""
        low, high = self.input_range
        scale = (high - low) / 255.0
        return scale, low


def _keras_app(name, constructor, input_range, feature_layers, weights_file, url_dir, **extra):
    BACKBONES.register(
        name,
        BackboneSpec(
            name=name,
            constructor=f"keras.applications.{constructor}",
            input_range=input_range,
            min_input_size=32,
            feature_layers=feature_layers,
            weights_file=weights_file,
            weights_url=KERAS_WEIGHTS_URL + url_dir + weights_file,
            **extra,
        ),
    )


RAW = (0.0, 255.0)
SIGNED = (-1.0, 1.0)

_keras_app(
    "mobilenet_v2", "MobileNetV2", SIGNED,
    {4: "block_3_expand_relu", 8: "block_6_expand_relu", 16: "block_13_expand_relu", 32: "out_relu"},
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", "mobilenet_v2/",
    description="MobileNetV2 1.0 (ImageNet 71.3% top-1)", params="2.3M",
)
_keras_app(
    "mobilenet_v3_small", "MobileNetV3Small", RAW,
    {},  # layer names are auto-generated in keras.applications: found by stride
    "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", "mobilenet_v3/",
    kwargs={"include_preprocessing": True},
    description="MobileNetV3-Small 1.0 (ImageNet 68.1%), rescales inside", params="0.9M",
)
_keras_app(
    "mobilenet_v3_large", "MobileNetV3Large", RAW,
    {},
    "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", "mobilenet_v3/",
    kwargs={"include_preprocessing": True},
    description="MobileNetV3-Large 1.0 (ImageNet 75.6%), rescales inside", params="3.0M",
)
_keras_app(
    "efficientnet_v2_b0", "EfficientNetV2B0", RAW,
    {4: "block2b_add", 8: "block4a_expand_activation", 16: "block6a_expand_activation", 32: "top_activation"},
    "efficientnetv2-b0_notop.h5", "efficientnet_v2/",
    kwargs={"include_preprocessing": True},
    description="EfficientNetV2-B0 (ImageNet 78.7%), rescales inside", params="5.9M",
)
_keras_app(
    "resnet50_v2", "ResNet50V2", SIGNED,
    {4: "conv2_block3_1_relu", 8: "conv3_block4_1_relu", 16: "conv4_block6_1_relu", 32: "post_relu"},
    "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet/",
    description="ResNet50V2 (ImageNet 76.0%)", params="23.6M",
)
_keras_app(
    "convnext_tiny", "ConvNeXtTiny", RAW,
    {
        4: "convnext_tiny_stage_0_block_2_identity",
        8: "convnext_tiny_stage_1_block_2_identity",
        16: "convnext_tiny_stage_2_block_8_identity",
        32: "layer_normalization",
    },
    "convnext_tiny_notop.h5", "convnext/",
    kwargs={"include_preprocessing": True},
    description="ConvNeXt-Tiny (ImageNet 81.3%), normalises inside", params="27.8M",
)


def _native(name, widths, blocks, description, params):
    BACKBONES.register(
        name,
        BackboneSpec(
            name=name,
            constructor="toolkit.backbones.native.ResNetMini",
            input_range=SIGNED,
            min_input_size=16,
            feature_layers={
                4: "stage2_block%d_out" % blocks[1],
                8: "stage3_block%d_out" % blocks[2],
                16: "stage4_block%d_out" % blocks[3],
            },
            kwargs={"widths": widths, "blocks": blocks, "name": name},
            channels=None,
            family="toolkit",
            description=description,
            params=params,
        ),
    )


_native("resnet_mini", (32, 64, 128, 256), (1, 1, 1, 1),
        "toolkit ResNet for small images (28-64 px), no pretrained weights: train it or use run:", "1.2M")
# 16 channels at least: TF 2.21's oneDNN weight gradient of a 1x1 stride-2
# convolution with <= 8 input channels corrupts memory on odd batch sizes.
_native("resnet_tiny", (16, 32, 64, 128), (1, 1, 1, 1),
        "toolkit ResNet, tiny (tests, smoke runs)", "0.3M")


def check_backbone_name(value):
    """Validates a backbone string (registry name or prefixed reference)."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a backbone name, hub:<preset>, file:<path.keras> or run:<run dir>")
    if value.startswith(PREFIXES):
        prefix, _, rest = value.partition(":")
        if not rest:
            raise ValueError(f"{value!r} names no {prefix}; e.g. {prefix}:{_EXAMPLES[prefix]}")
        if prefix == "file" and rest.endswith(".h5"):
            raise ValueError(
                f"{value!r} is a weights file and has no architecture; set model.backbone to an "
                f"architecture name and model.weights: file:{rest}"
            )
        return value
    if value not in BACKBONES:
        raise ValueError(
            f"unknown backbone {value!r}{did_you_mean(value, BACKBONES.names())} "
            f"(registered: {', '.join(BACKBONES.names())}; or hub:, file:, run:)"
        )
    return value


_EXAMPLES = {"hub": "resnet_18_imagenet", "file": "backbone.keras", "run": "saved_models/fashion_mnist"}
