"""Dense-prediction decoders on a backbone's feature pyramid.

- `unet`: upsample the deepest features and fuse each shallower level
  (skip connections), down to the input resolution, where the preprocessed
  image itself is the last skip.
- `deeplab_v3_plus`: atrous spatial pyramid pooling on the deepest level,
  upsampled and fused with a projected low-level (stride-4) feature map.

Both take `{stride: feature tensor}` and return per-pixel class
probabilities at the input resolution, using only core Keras layers (so the
model saves with safe_mode, exports to SavedModel and converts to ONNX).

Example:

>>> import keras
>>> from toolkit.tasks.segmentation.decoders import unet
>>> image = keras.Input((32, 32, 3))
>>> features = {4: keras.layers.Conv2D(8, 1, strides=4)(image),
...             8: keras.layers.Conv2D(8, 1, strides=8)(image)}
>>> keras.Model(image, unet(features, image, 3)).output.shape
(None, 32, 32, 3)
"""


def _conv(x, filters, name, kernel=3, dilation=1):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _resize_to(x, reference, name):
    from keras import layers

    height, width = reference.shape[1], reference.shape[2]
    if x.shape[1] == height and x.shape[2] == width:
        return x
    return layers.Resizing(height, width, interpolation="bilinear", name=name)(x)


def _classifier(x, image, num_classes, name):
    from keras import layers

    x = _resize_to(x, image, f"{name}_to_input")
    logits = layers.Conv2D(num_classes, 1, name=f"{name}_logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


def unet(features, image, num_classes, filters=(256, 128, 64, 32, 16), dropout=0.0, name="unet"):
    """U-Net decoder.

    Args:
        features: dict of int -> KerasTensor. Feature maps by stride (at
            least one).
        image: KerasTensor. The (preprocessed) input image, the full
            resolution skip.
        num_classes: int. Output classes.
        filters: tuple of int. Decoder widths from the deepest level up; the
            last one is used at full resolution.
        dropout: float. Dropout on the deepest features.

    Returns:
        KerasTensor of per-pixel probabilities (batch, H, W, num_classes).
    """
    from keras import layers

    strides = sorted(features, reverse=True)
    x = features[strides[0]]
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    widths = list(filters) + [filters[-1]] * len(strides)
    x = _conv(x, widths[0], f"{name}_bottom")
    for level, stride in enumerate(strides[1:], start=1):
        skip = features[stride]
        x = _resize_to(x, skip, f"{name}_up{stride}")
        x = layers.Concatenate(name=f"{name}_cat{stride}")([x, skip])
        x = _conv(x, widths[level], f"{name}_s{stride}a")
        x = _conv(x, widths[level], f"{name}_s{stride}b")
    x = _resize_to(x, image, f"{name}_up1")
    x = layers.Concatenate(name=f"{name}_cat1")([x, image])
    x = _conv(x, widths[len(strides)], f"{name}_s1")
    return _classifier(x, image, num_classes, name)


def aspp(x, filters, rates, dropout, name):
    """Atrous spatial pyramid pooling (DeepLabV3) with core Keras layers."""
    from keras import layers

    branches = [_conv(x, filters, f"{name}_1x1", kernel=1)]
    for rate in rates:
        branches.append(_conv(x, filters, f"{name}_rate{rate}", dilation=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = _conv(pooled, filters, f"{name}_pool", kernel=1)
    branches.append(layers.Resizing(x.shape[1], x.shape[2], interpolation="bilinear", name=f"{name}_pool_up")(pooled))
    x = layers.Concatenate(name=f"{name}_cat")(branches)
    x = _conv(x, filters, f"{name}_project", kernel=1)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def deeplab_v3_plus(features, image, num_classes, filters=256, rates=(6, 12, 18), low_level_filters=48,
                    dropout=0.1, name="deeplab"):
    """DeepLabV3+ decoder: ASPP on the deepest level, fused with stride-4 features.

    Args:
        features: dict of int -> KerasTensor. Feature maps by stride; the
            deepest feeds ASPP, the shallowest (ideally stride 4) is the
            low-level skip.
        image: KerasTensor. The input (for the output size).
        num_classes: int. Output classes.
        filters: int. ASPP and decoder width.
        rates: tuple of int. Atrous rates (scale them to the feature size:
            (6, 12, 18) suits 512 px inputs at stride 16).
        low_level_filters: int. Projection width of the low-level skip.
        dropout: float. Dropout after ASPP.
    """
    from keras import layers

    strides = sorted(features)
    high, low = features[strides[-1]], features[strides[0]]
    x = aspp(high, filters, rates, dropout, f"{name}_aspp")
    if strides[0] != strides[-1]:
        skip = _conv(low, low_level_filters, f"{name}_low", kernel=1)
        x = _resize_to(x, skip, f"{name}_up_low")
        x = layers.Concatenate(name=f"{name}_cat")([x, skip])
        x = _conv(x, filters, f"{name}_fuse_a")
        x = _conv(x, filters, f"{name}_fuse_b")
    return _classifier(x, image, num_classes, name)
