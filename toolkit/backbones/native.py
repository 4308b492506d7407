"""The toolkit's own compact ResNets for small images (28..64 px), where
ImageNet backbones neither fit nor have weights offline.

They follow the `keras.applications` calling convention, so the registry
builds them like any other backbone: basic residual blocks (two 3x3 conv +
BatchNorm), a stride-2 stem and one stride-2 stage after the first.

Example:

>>> from toolkit.backbones.native import ResNetMini
>>> model = ResNetMini(input_shape=(32, 32, 1), widths=(16, 32, 64, 128))
>>> model.output.shape
(None, 2, 2, 128)
"""


# PyTorch's default (0.1 there): moving statistics settle within tens of steps,
# which matters for short fine-tuning runs on small data.
BN_MOMENTUM = 0.9


def _block(x, filters, stride, name):
    import keras
    from keras import layers

    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def ResNetMini(
    input_shape=(32, 32, 1),
    include_top=False,
    weights=None,
    widths=(32, 64, 128, 256),
    blocks=(1, 1, 1, 1),
    name="resnet_mini",
    **kwargs,
):
    """Builds a compact ResNet feature extractor (no top).

    Args:
        input_shape: (int, int, int). Height, width, channels.
        include_top: bool. Must be False (the toolkit adds the head).
        weights: None or str. None for random initialisation, or a
            `.weights.h5` path.
        widths: tuple of int. Filters of each stage.
        blocks: tuple of int. Residual blocks per stage.
        name: str. Model name.

    Returns:
        A functional `keras.Model` mapping images in -1..1 to a feature map
        at stride 16 (stages at strides 2, 4, 8, 16).
    """
    import keras
    from keras import layers

    if include_top:
        raise ValueError("ResNetMini is a backbone; include_top must be False")
    if weights == "imagenet":
        raise ValueError("ResNetMini has no ImageNet weights")
    if kwargs:
        raise TypeError(f"unexpected arguments {sorted(kwargs)}")
    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (filters, count) in enumerate(zip(widths, blocks)):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            x = _block(x, filters, stride, f"stage{stage + 1}_block{index + 1}")
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model
