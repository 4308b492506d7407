"""Saliency maps of Keras image models: Grad-CAM, Grad-CAM++, integrated gradients and occlusion.

Generic: a method takes the model, one image batch at the model size
(float32 0..255) and `score`, a function of the model's outputs returning one
scalar per example (what to explain: a class probability, a class's
probability summed over a mask, a box's score; the task's `Predictor` says
which, `explain_score`). It returns one map per example at the model size,
scaled to 0..1.

Grad-CAM and Grad-CAM++ need the last spatial feature map of the backbone.
The toolkit's models call their backbone (or a feature extractor built from
it) as a nested `keras.Model` layer, where `model.get_layer(name).output` of
an inner layer is not reachable from the outer graph (the failure of the
keras-io Grad-CAM example on nested models). `FeatureTap` finds that layer
through the saved metadata alone (`metadata["backbone"]["layer"]`, and its
`feature_layers` by stride: the deepest present) and runs the outer
functional graph with the nested layer replaced by a two-output model
(backbone input -> [feature map, the backbone's own outputs]), so one forward
pass under a `tf.GradientTape` gives the outputs and the feature map they
depend on. Integrated gradients and occlusion need no layer.

Example:

>>> import numpy as np
>>> from toolkit.explanations import normalise, overlay
>>> normalise(np.array([[0.0, 2.0], [1.0, 4.0]])).tolist()
[[0.0, 0.5], [0.25, 1.0]]
>>> overlay(np.zeros((2, 2, 1), np.uint8), np.ones((2, 2))).shape
(2, 2, 3)
"""

import numpy as np

from toolkit.errors import ModelFileError

METHODS = ("gradcam", "gradcam++", "integrated_gradients", "occlusion")
LAYER_METHODS = ("gradcam", "gradcam++")  # the ones that need the backbone's feature map


def check_method(method):
    if method not in METHODS:
        raise ModelFileError(f"--method {method!r}: unknown explanation method; choose one of {', '.join(METHODS)}")
    return method


class FeatureTap:
    """Runs a functional model's graph with the nested backbone layer replaced by (feature map, backbone outputs),
    and a final softmax left out.

    Scores are explained before a final softmax (a `Dense(activation="softmax")` or a softmax `Activation` that
    gives a model output): on the logits, as in the Grad-CAM paper; a saturated probability (1.0 in float32)
    has no gradient and does not drop when a patch is occluded.

    Args:
        model: keras.Model. A functional model; with `features`, one that calls its backbone as a nested layer.
        metadata: dict. The model's toolkit metadata (`backbone.layer`, `backbone.feature_layers`).
        features: bool. Tap the backbone's feature map (Grad-CAM); False: only leave the softmax out.

    Attributes:
        layer: str. The nested backbone layer's name.
        feature: str. The feature layer inside it (the deepest stride the metadata names).
        stride: int. That layer's stride.
    """

    def __init__(self, model, metadata, features=True):
        import keras

        self.model = model
        self.layer = self.feature = self.stride = self.nested = None
        if not hasattr(model, "_run_through_graph") or not hasattr(model, "_nodes_by_depth") or \
                _operation_fn() is None:  # not functional, or a Keras without the graph runner relied on here
            if features:
                raise ModelFileError(f"{model.name} is not a functional Keras model (or this Keras cannot run one "
                                     "layer by layer); Grad-CAM needs one, use --method integrated_gradients or "
                                     "occlusion")
            self.functional = False
            return
        self.functional = True
        self.final = {id(tensor._keras_history[0]) for tensor in model.outputs
                      if getattr(tensor, "_keras_history", None)}
        if features:
            self._find_features(model, metadata)
            outputs = list(self.nested.outputs)
            self.multiple = len(outputs) > 1
            self.extractor = keras.Model(self.nested.inputs,
                                         [self.nested.get_layer(self.feature).output, *outputs],
                                         name=f"{self.layer}_tap")

    def _find_features(self, model, metadata):
        backbone = metadata.get("backbone") or {}
        self.layer = backbone.get("layer")
        if not self.layer:
            raise ModelFileError("the model's metadata names no backbone layer, which Grad-CAM needs; use "
                                 "--method integrated_gradients or occlusion")
        try:
            self.nested = model.get_layer(self.layer)
        except ValueError:
            raise ModelFileError(f"backbone layer {self.layer!r} (from the model's metadata) is not in the model; "
                                 "use --method integrated_gradients or occlusion")
        if not hasattr(self.nested, "get_layer"):
            raise ModelFileError(f"backbone layer {self.layer!r} is not a nested model; use --method "
                                 "integrated_gradients or occlusion")
        named = backbone.get("feature_layers") or {}
        for stride, name in sorted(((int(k), v) for k, v in named.items()), reverse=True):
            try:
                tensor = self.nested.get_layer(name).output
            except (ValueError, AttributeError):
                continue
            if len(tensor.shape) == 4:
                self.feature, self.stride = name, stride
                return
        raise ModelFileError(f"backbone layer {self.layer!r}: none of the feature layers in the model's metadata "
                             f"({', '.join(map(str, named.values())) or 'none'}) is a spatial layer of it; use "
                             "--method integrated_gradients or occlusion")

    def __call__(self, images, scale=None):
        """(feature map or None, model outputs before a final softmax) of a batch, differentiable under a
        GradientTape.

        Args:
            images: the model's input batch.
            scale: (layer name, alphas [batch, 1, 1], tape, list) or None. Multiplies that layer's output by
                the alphas (integrated gradients over embeddings); the scaled tensor is watched by the tape and
                appended to the list with the unscaled one, as (scaled, full).
        """
        if not self.functional:
            if scale is not None:
                raise ModelFileError(f"{self.model.name} is not a functional Keras model; its embeddings cannot "
                                     "be reached")
            return None, self.model(images, training=False)
        import keras

        operation_fn = _operation_fn()

        captured = []

        def tapped(*args, **kwargs):
            values = self.extractor(args[0], training=False)
            captured.append(values[0])
            rest = list(values[1:])
            return rest if self.multiple else rest[0]

        def without_softmax(op):
            def call(*args, **kwargs):
                kept = op.activation
                op.activation = keras.activations.linear
                try:
                    return operation_fn(op, training=False)(*args, **kwargs)
                finally:
                    op.activation = kept
            return call

        def scaled(op):
            name, alphas, tape, found = scale

            def call(*args, **kwargs):
                full = operation_fn(op, training=False)(*args, **kwargs)
                value = full * keras.ops.cast(alphas, full.dtype)
                tape.watch(value)
                found.append((value, full))
                return value
            return call

        def operation(op):
            if self.nested is not None and op is self.nested:
                return tapped
            if scale is not None and getattr(op, "name", None) == scale[0]:
                return scaled(op)
            if id(op) in self.final and _is_softmax(getattr(op, "activation", None)):
                if isinstance(op, keras.layers.Activation):
                    return lambda *args, **kwargs: args[0]
                return without_softmax(op)
            if id(op) in self.final and isinstance(op, keras.layers.Softmax):
                return lambda *args, **kwargs: args[0]
            return operation_fn(op, training=False)

        outputs = self.model._run_through_graph([images], operation_fn=operation)
        if self.nested is not None and not captured:
            raise ModelFileError(f"backbone layer {self.layer!r} was not called by the model; use --method "
                                 "integrated_gradients or occlusion")
        if scale is not None and not scale[3]:
            raise ModelFileError(f"embedding layer {scale[0]!r} is not in the model")
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        return (captured[0] if captured else None), outputs


def embedding_attributions(tap, ids, score, layer, steps=32, batch_size=32):
    """Integrated gradients over the output of an embedding layer (Sundararajan et al. 2017, section 6.3: zero
    vectors as the baseline) for one example.

    Args:
        tap: FeatureTap (features=False) of the model.
        ids: int array [1, length]. The example as the model takes it (token ids).
        score: callable. Model outputs -> one scalar per example.
        layer: str. The embedding layer's name.
        steps: int. Riemann midpoints from the zero embeddings to the example's.

    Returns:
        (attributions [length] float64: the sum over embedding dimensions of embedding x the mean gradient at
        each position; the score at the example minus the score at the baseline, which the attributions add up
        to within the Riemann error).
    """
    import tensorflow as tf

    steps = max(1, int(steps))
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    total, full = None, None
    for start in range(0, steps, batch_size):
        chunk = alphas[start:start + batch_size]
        batch = np.repeat(np.asarray(ids), len(chunk), axis=0)
        found = []
        with tf.GradientTape() as tape:
            _, outputs = tap(batch, scale=(layer, chunk[:, None, None], tape, found))
            target = tf.reduce_sum(score(outputs))
        value, unscaled = found[0]
        gradient = tape.gradient(target, value)
        if gradient is None:
            raise ModelFileError(f"the explained score does not depend on embedding layer {layer!r}")
        summed = tf.reduce_sum(tf.cast(gradient, tf.float32), axis=0).numpy()
        total = summed if total is None else total + summed
        full = tf.cast(unscaled[0], tf.float32).numpy()
    attributions = (full * total / steps).sum(axis=-1).astype(np.float64)
    ends = []
    for alpha in (0.0, 1.0):
        found = []
        with tf.GradientTape() as tape:
            _, outputs = tap(np.asarray(ids), scale=(layer, np.full((1, 1, 1), alpha, np.float32), tape, found))
        ends.append(float(np.asarray(score(outputs))[0]))
    return attributions, ends[1] - ends[0]


def _operation_fn():
    """Keras 3's `Functional` per-operation wrapper (private: `keras.src.models.functional.operation_fn`), or
    None when this Keras has none."""
    try:
        from keras.src.models.functional import operation_fn
    except ImportError:
        return None
    return operation_fn


def _is_softmax(activation):
    import keras

    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def explain_batch(method, tap, images, score, steps=32, patch=None, batch_size=32):
    """Maps (batch, H, W) in 0..1 at the model size of one method.

    Args:
        method: str. One of `METHODS`.
        images: float32 array (batch, H, W, C), 0..255 at the model size.
        score: callable. Model outputs (before a final softmax) -> one scalar per example (shape [batch]).
        tap: FeatureTap. Runs the model (with the feature map for Grad-CAM and Grad-CAM++).
        steps: int. Integrated gradients: steps from the black baseline to the image.
        patch: int or None. Occlusion: the patch side in model pixels (default: an eighth of the shorter side,
            at least 2); it slides by half its side.
        batch_size: int. Perturbed images per forward pass.
    """
    check_method(method)
    images = np.asarray(images, np.float32)
    if method in LAYER_METHODS:
        maps = _cam(tap, images, score, plus=method == "gradcam++")
    elif method == "integrated_gradients":
        maps = np.stack([_integrated_gradients(tap, image, score, steps, batch_size) for image in images])
    else:
        maps = np.stack([_occlusion(tap, image, score, patch, batch_size) for image in images])
    return np.stack([normalise(m) for m in maps])


def _cam(tap, images, score, plus=False):
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        features, outputs = tap(images)
        target = tf.reduce_sum(score(outputs))
    grads = tape.gradient(target, features)
    if grads is None:
        raise ModelFileError(f"the explained score does not depend on feature layer {tap.feature!r}")
    features, grads = tf.cast(features, tf.float32), tf.cast(grads, tf.float32)
    if plus:  # Chattopadhay et al. 2018: pixel-wise weights of the positive gradients
        second, third = grads ** 2, grads ** 3
        total = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
        denominator = 2.0 * second + total * third
        alpha = second / tf.where(tf.abs(denominator) > 1e-12, denominator, tf.ones_like(denominator))
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
    else:
        weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(features * weights[:, None, None, :], axis=-1))
    size = images.shape[1:3]
    return tf.image.resize(cam[..., None], size, method="bilinear")[..., 0].numpy()


def _integrated_gradients(tap, image, score, steps, batch_size):
    """|sum over channels of (image - black) x the mean gradient along the straight path| (Sundararajan et al.
    2017, Riemann midpoints)."""
    import tensorflow as tf

    steps = max(1, int(steps))
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    total = np.zeros_like(image, np.float32)
    for start in range(0, steps, batch_size):
        chunk = tf.convert_to_tensor(alphas[start:start + batch_size, None, None, None] * image[None])
        with tf.GradientTape() as tape:
            tape.watch(chunk)
            target = tf.reduce_sum(score(tap(chunk)[1]))
        total += tape.gradient(target, chunk).numpy().sum(axis=0)
    return np.abs((image * total / steps).sum(axis=-1))


def _occlusion(tap, image, score, patch, batch_size):
    """How much the score drops when a black patch covers each pixel (Zeiler and Fergus 2014), averaged over the
    patches covering it; rises are clipped at 0."""
    height, width = image.shape[:2]
    patch = int(patch or max(2, min(height, width) // 8))
    patch = max(1, min(patch, height, width))
    stride = max(1, patch // 2)
    tops = sorted(set(list(range(0, height - patch + 1, stride)) + [height - patch]))
    lefts = sorted(set(list(range(0, width - patch + 1, stride)) + [width - patch]))
    positions = [(top, left) for top in tops for left in lefts]
    base = float(np.asarray(score(tap(image[None])[1]))[0])
    drop = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        batch = np.repeat(image[None], len(chunk), axis=0)
        for index, (top, left) in enumerate(chunk):
            batch[index, top:top + patch, left:left + patch] = 0.0
        scores = np.asarray(score(tap(batch)[1]), np.float64).reshape(-1)
        for (top, left), value in zip(chunk, scores):
            drop[top:top + patch, left:left + patch] += base - value
            count[top:top + patch, left:left + patch] += 1
    return np.maximum(drop / np.maximum(count, 1), 0.0)


# Maps, pictures ---------------------------------------------------------------------------------------


def normalise(values):
    """Scales a map into 0..1 (min to 0, max to 1; a constant map is all 0)."""
    values = np.nan_to_num(np.asarray(values, np.float64))
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.zeros_like(values, np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def resize_map(values, size):
    """A map resized (bilinear) to (height, width) `size`, kept in 0..1."""
    from PIL import Image

    values = np.asarray(values, np.float32)
    if values.shape[:2] == tuple(size):
        return values
    picture = Image.fromarray(values, mode="F").resize((int(size[1]), int(size[0])), Image.BILINEAR)
    return np.clip(np.asarray(picture, np.float32), 0.0, 1.0)


def colours(values):
    """A map in 0..1 as uint8 RGB (the "jet" colour scale: blue low, red high)."""
    x = np.clip(np.asarray(values, np.float32), 0, 1)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * x - np.array([3.0, 2.0, 1.0], np.float32)), 0, 1)
    return (rgb * 255).astype(np.uint8)


def overlay(image, values, alpha=0.45):
    """The image (uint8, 1 or 3 channels) with the map's colours blended over it (uint8 RGB)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    heat = colours(resize_map(values, rgb.shape[:2]))
    return np.clip((1 - alpha) * rgb.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)


def peak(values, within=0.02):
    """(row, column) of a map's peak: the centre of the pixels within `within` of its maximum (a Grad-CAM map
    upsampled from a coarse grid is flat around its top cell; the first maximum would be that flat area's
    corner)."""
    values = np.asarray(values, np.float64)
    rows, columns = np.nonzero(values >= values.max() - within * max(values.max() - values.min(), 1e-12))
    row, column = int(round(rows.mean())), int(round(columns.mean()))
    if values[row, column] >= values.max() - within * max(values.max() - values.min(), 1e-12):
        return row, column
    nearest = int(np.argmin((rows - row) ** 2 + (columns - column) ** 2))  # the centre fell between two peaks
    return int(rows[nearest]), int(columns[nearest])
