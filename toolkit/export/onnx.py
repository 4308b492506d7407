"""ONNX export through `model.export(format="onnx")` (tf2onnx), with the
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
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(path, format="onnx", input_signature=task.onnx_signature(), opset_version=options.opset,
                     verbose=False)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(task.model_metadata())
    onnx.save(proto, path)


def load_onnx(path):
    """Loads an ONNX file in ONNX Runtime (CPU), without TensorFlow."""
    import onnxruntime

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such ONNX file")
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0][:200]}")


def read_onnx_metadata(session, path):
    """Returns the toolkit metadata stored in an ONNX session's model."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(f"{path}: an ONNX model without toolkit metadata; it was not exported by toolkit")
    return json.loads(raw)
