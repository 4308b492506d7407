"""TFLite (LiteRT) export of the task's network, float32 or quantised.

The artifact holds the same network as the ONNX export (`task.onnx_model`,
inputs `task.onnx_signature()`: images or log-mel features in, class scores
or CTC logits out), converted from a SavedModel of that signature with
`tf.lite.TFLiteConverter`; the toolkit metadata is stored in the flatbuffer's
metadata table. Three rows of the formats table use it:

- `tflite`: float32;
- `tflite_dynamic`: dynamic-range quantisation (int8 weights, float
  activations): about 4x smaller, no calibration data;
- `tflite_int8`: int8 weights and activations, calibrated on
  `representative_samples` training examples (`task.representative_inputs`);
  float32 input and output, so callers feed the same arrays.

Inputs follow `task.tflite_signature()`: a dynamic batch for image networks;
batch 1 with a dynamic time axis for the CTC speech network, whose GRU/LSTM
loops convert to builtin ops only with a static batch (the converter's other
route needs the Flex delegate, which the pip interpreter lacks), and whose
recurrent layers the int8 calibrator cannot handle (tflite_int8 is refused).

`load_tflite` wraps the interpreter in `TfliteSession`, which answers like an
ONNX Runtime session (`get_inputs`, `get_outputs`, `run`), so every task's
ONNX prediction and verification code runs TFLite unchanged.

Example:

>>> from toolkit.exporters.formats import FORMATS
>>> [FORMATS.get(name).artifact for name in ("tflite", "tflite_dynamic", "tflite_int8")]
['model.tflite', 'model_dynamic.tflite', 'model_int8.tflite']
"""

import dataclasses
import json
import os
import warnings

import numpy as np

from toolkit.errors import ExportError, ModelFileError

METADATA_NAME = "toolkit"


def export_float(model, task, path, options):
    _export(model, task, path, "none", options)


def export_dynamic(model, task, path, options):
    _export(model, task, path, "dynamic", options)


def export_int8(model, task, path, options):
    _export(model, task, path, "int8", options)


def _export(model, task, path, quantization, options):
    if not getattr(task, "tflite_supported", False):  # declared on Task (default False)
        reason = getattr(task, "tflite_unsupported_reason", "its network does not convert")
        raise ExportError(f"export tflite: {task.name} models have no TFLite export ({reason}); remove it from "
                          "export.formats")
    if quantization == "int8" and not getattr(task, "tflite_int8_supported", True):
        raise ExportError(f"export tflite_int8: the TFLite converter cannot calibrate this {task.name} model's "
                          "recurrent layers; use tflite_dynamic (int8 weights, float activations)")
    import tensorflow as tf

    signature = task.tflite_signature()
    network = task.onnx_model(model)
    function = tf.function(lambda *inputs: network(inputs[0] if len(inputs) == 1 else list(inputs), training=False),
                           input_signature=signature)
    # Variables become constants first: a converted graph that still reads resource variables gives NaN (they
    # are never initialised in the interpreter) and cannot be calibrated.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    examples = None
    if quantization == "int8":
        examples = task.representative_inputs(options.representative_samples)
        if not examples:
            raise ExportError("export tflite_int8: the training split has no examples to calibrate with")
    import absl.logging

    verbosity = absl.logging.get_verbosity()
    # "deprecated conversion path", logged when the converter is made: the frozen graph is intended
    absl.logging.set_verbosity(absl.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
            if quantization in ("dynamic", "int8"):
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if examples is not None:
                dtype = signature[0].dtype.as_numpy_dtype  # float features, or int32 token ids
                converter.representative_dataset = lambda: ([np.asarray(e, dtype)] for e in examples)
            flatbuffer = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many types
            raise ExportError(f"export tflite: the converter failed ({str(error).splitlines()[0][:200]}); "
                              "remove tflite from export.formats")
        finally:
            absl.logging.set_verbosity(verbosity)
    with open(path, "wb") as f:
        f.write(_with_metadata(flatbuffer, task.model_metadata()))


def _with_metadata(flatbuffer, metadata):
    """The flatbuffer with {"toolkit": JSON metadata} added to its metadata table."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _unreadable(path, error):
    from toolkit.errors import first_line

    return ModelFileError(f"{path}: not a readable TFLite model ({first_line(error, 120)}); give the model.tflite "
                          "that toolkit export wrote")


def read_tflite_metadata(path):
    """The toolkit metadata stored in a .tflite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    with open(path, "rb") as f:
        data = bytearray(f.read())
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(data)
    except Exception as error:  # noqa: BLE001 - the flatbuffer reader raises many types on a corrupt file
        raise _unreadable(path, error) from None
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf-8"))
    raise ModelFileError(f"{path}: a .tflite file without toolkit metadata; it was not exported by toolkit")


@dataclasses.dataclass
class _Tensor:
    name: str
    shape: list
    type: str = "tensor(float)"


class TfliteSession:
    """A TFLite interpreter with ONNX Runtime's session interface (`get_inputs`, `get_outputs`, `run`).

    Inputs are resized to each call's shapes (dynamic batch and time axes). Not thread-safe, like the interpreter.
    """

    def __init__(self, path):
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interpreter = tf.lite.Interpreter(model_path=path)
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self._shapes = None

    def get_inputs(self):
        return [_Tensor(d["name"], [None if s < 0 else int(s) for s in d["shape_signature"]]) for d in self._inputs]

    def get_outputs(self):
        return [_Tensor(d["name"], [None if s < 0 else int(s) for s in d["shape_signature"]]) for d in self._outputs]

    def run(self, output_names, feeds):
        arrays = [np.asarray(feeds[d["name"]], d["dtype"]) for d in self._inputs]
        if len(arrays[0]) > 1 and self._inputs[0]["shape_signature"][0] == 1:  # a batch-1 network: row by row
            rows = [self.run(output_names, {d["name"]: a[i:i + 1] for d, a in zip(self._inputs, arrays)})
                    for i in range(len(arrays[0]))]
            return [np.concatenate(parts) for parts in zip(*rows)]
        shapes = [a.shape for a in arrays]
        if shapes != self._shapes:
            for detail, shape in zip(self._inputs, shapes):
                self.interpreter.resize_tensor_input(detail["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
            self._shapes = shapes
        for detail, array in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._outputs]


def load_tflite(path):
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such .tflite file")
    try:
        return TfliteSession(path)
    except Exception as error:  # noqa: BLE001 - the interpreter raises ValueError, RuntimeError, UnicodeDecodeError
        raise _unreadable(path, error) from None
