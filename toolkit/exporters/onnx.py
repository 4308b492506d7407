"""ONNX export with tf2onnx (of a tf.function of the Keras model), with the
toolkit metadata stored in the model's `metadata_props`."""

import contextlib
import io
import json
import logging
import os

from toolkit.errors import ExportError, ModelFileError

METADATA_KEY = "toolkit"


def export_onnx(model, task, path, options):
    """Writes an ONNX file of the Keras model (dynamic batch, recipe opset).

    Args:
        model: keras.Model. The trained model (float32 dtype policy).
        task: Task. Provides `onnx_signature()` and `model_metadata()`.
        path: str. The `.onnx` file to write.
        options: OnnxOptions. `opset`.
    """
    import onnx

    policy = getattr(model, "dtype_policy", None)
    if policy is not None and getattr(policy, "name", "float32") != "float32":
        raise ExportError(f"ONNX export needs a float32 model; this one uses {policy.name}")
    import tensorflow as tf
    import tf2onnx

    try:  # numpy 2 compatibility patches that Keras applies before calling tf2onnx
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()
    except ImportError:
        pass
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    register_missing_ops()
    # tf2onnx on a plain tf.function of the model. `model.export(format="onnx")`
    # goes through an ExportArchive concrete function and, for a model with a
    # nested multi-output feature extractor (a dense-prediction decoder), produced a wrong
    # graph (max abs diff 0.6 against Keras) where this path is exact.
    signature = task.onnx_signature()
    model = task.onnx_model(model)
    function = tf.function(lambda *inputs: model(inputs[0] if len(inputs) == 1 else list(inputs), training=False),
                           input_signature=signature)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            with _optimizers_in_place():
                tf2onnx.convert.from_function(function, input_signature=signature, opset=options.opset,
                                              output_path=path)
        except Exception:  # noqa: BLE001 - an optimizer failed: convert again, skipping what fails (tf2onnx default)
            tf2onnx.convert.from_function(function, input_signature=signature, opset=options.opset, output_path=path)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(task.model_metadata())
    onnx.save(proto, path)


@contextlib.contextmanager
def _optimizers_in_place():
    """tf2onnx's graph optimizers without their safety copies. By default tf2onnx deep-copies the whole graph before
    each of its ~12 optimizers in every pass (to carry on without one that raises): 3.6 of the 9 s that the tiny
    translation model's export took. Set, TF2ONNX_CATCH_ERRORS runs them in place, to the same graph; the caller
    converts again the default way if an optimizer raises."""
    key, before = "TF2ONNX_CATCH_ERRORS", os.environ.get("TF2ONNX_CATCH_ERRORS")
    os.environ[key] = "false"  # tf2onnx reads the variable's presence (constants.py compares the name, not the value)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


_REGISTERED = []


def register_missing_ops():
    """Teaches tf2onnx the TensorFlow ops it lacks that toolkit models use (once per process).

    - `Erfc` (exact GELU, `0.5 * x * erfc(-x / sqrt(2))`, in KerasHub BART/T5
      presets): written as `1 - Erf(x)`.
    """
    if _REGISTERED:
        return
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 - registered by the decorator
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            erf = ctx.make_node("Erf", [node.input[0]], name=utils.make_name(f"{node.name}_erf"))
            outputs, shapes, dtypes = node.output, [ctx.get_shape(node.output[0])], [ctx.get_dtype(node.output[0])]
            ctx.remove_node(node.name)
            ctx.make_node("Sub", [one.output[0], erf.output[0]], outputs=outputs, name=node.name,
                          shapes=shapes, dtypes=dtypes)

    _REGISTERED.append(True)


def load_onnx(path, spinning=True):
    """Loads an ONNX file in ONNX Runtime (CPU), without TensorFlow.

    spinning: bool. Whether idle intra-op threads busy-wait for the next call (ONNX Runtime's default: lowest
        latency for back-to-back calls). A server turns it off: on few cores the spinning threads take the CPU
        its HTTP loop needs (on 2 cores, 398 -> 592 requests/s)."""
    import onnxruntime

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such ONNX file")
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0][:200]}")


def read_onnx_metadata(session, path):
    """Returns the toolkit metadata stored in an ONNX session's model."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(f"{path}: an ONNX model without toolkit metadata; it was not exported by toolkit")
    return json.loads(raw)
