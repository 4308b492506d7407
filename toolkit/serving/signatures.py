"""The exported artifact's own signatures, served exactly: named input tensors in, named output tensors out.

`Signatures.of(model)` describes and runs every signature of a SavedModel (as TensorFlow Serving does) or the
graph of an ONNX model (one signature, `serving_default`, named after its graph inputs and outputs, as Triton's
ONNX backend does). Three wire formats meet here:

- TensorFlow Serving REST (`decode_rest`, `encode_rest`): row (`instances`) and columnar (`inputs`) requests,
  named inputs, `{"b64": ...}` for bytes, and responses with the signature's named outputs, as TF Serving's
  `api_rest.md` documents them;
- the Open Inference Protocol v2 of KServe and Triton (`decode_v2`, `encode_v2`), JSON and the binary tensor
  extension;
- TF Serving gRPC `TensorProto`s (`toolkit.serving.grpc_service`), through the same NumPy arrays.

Every request is checked against the signature (names, ranks, fixed sizes, dtypes) before the model runs, and
its decoded work is planned (`planned_bytes`): an encoded image among the string inputs counts as the pixels its
header declares, so a small body of compressed images that would decode to gigabytes is refused unread.
"""

import base64
import io
import json
import os
import struct

import numpy as np

from toolkit.serving.instances import RequestError, decode_b64, load_json

# TensorFlow DataType names, their NumPy dtypes, and the Open Inference Protocol's datatype names.
DTYPES = {
    "DT_FLOAT": ("float32", "FP32"), "DT_DOUBLE": ("float64", "FP64"), "DT_HALF": ("float16", "FP16"),
    "DT_INT8": ("int8", "INT8"), "DT_INT16": ("int16", "INT16"), "DT_INT32": ("int32", "INT32"),
    "DT_INT64": ("int64", "INT64"), "DT_UINT8": ("uint8", "UINT8"), "DT_UINT16": ("uint16", "UINT16"),
    "DT_UINT32": ("uint32", "UINT32"), "DT_UINT64": ("uint64", "UINT64"), "DT_BOOL": ("bool", "BOOL"),
    "DT_STRING": ("object", "BYTES"),
}
V2_TO_DT = {v2: dt for dt, (_, v2) in DTYPES.items()}
ONNX_TO_DT = {"tensor(float)": "DT_FLOAT", "tensor(double)": "DT_DOUBLE", "tensor(float16)": "DT_HALF",
              "tensor(int8)": "DT_INT8", "tensor(int16)": "DT_INT16", "tensor(int32)": "DT_INT32",
              "tensor(int64)": "DT_INT64", "tensor(uint8)": "DT_UINT8", "tensor(uint16)": "DT_UINT16",
              "tensor(uint32)": "DT_UINT32", "tensor(uint64)": "DT_UINT64", "tensor(bool)": "DT_BOOL",
              "tensor(string)": "DT_STRING"}
DEFAULT_SIGNATURE = "serving_default"
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")
_DECODED_BYTES_PER_PIXEL = 16  # float32 RGBA: the most an image tensor takes per pixel once decoded


def numpy_dtype(dt):
    return np.dtype(DTYPES[dt][0])


def dt_of(array):
    """The DataType name of a NumPy array (DT_STRING for bytes and str)."""
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    for dt, (name, _) in DTYPES.items():
        if name == array.dtype.name:
            return dt
    raise RequestError(f"the model returned an array of {array.dtype}, which has no TensorFlow DataType", 500)


class Signatures:
    """The signatures of one loaded artifact.

    `signatures` maps a signature name to {"inputs": {name: (dt, shape)}, "outputs": {name: (dt, shape)}}, shapes
    as lists with -1 for any size; `describe()` gives TF Serving's `signature_def` JSON."""

    def __init__(self, signatures, definitions, run):
        self.signatures = signatures
        self._definitions = definitions
        self._run = run

    @classmethod
    def of(cls, model):
        """The signatures of a toolkit.inference.LoadedModel (SavedModel or ONNX)."""
        from toolkit.runtimes import RUNTIMES

        if RUNTIMES.get(model.runtime).convention == "onnx":
            return cls._onnx(model.handle)
        return cls._saved_model(model)

    @classmethod
    def _onnx(cls, session):
        def shape(value):
            return [d if isinstance(d, int) and d >= 0 else -1 for d in (value.shape or [])]

        inputs = {i.name: (ONNX_TO_DT.get(i.type, i.type), shape(i)) for i in session.get_inputs()}
        outputs = {o.name: (ONNX_TO_DT.get(o.type, o.type), shape(o)) for o in session.get_outputs()}
        output_names = list(outputs)

        def run(name, feeds):
            return dict(zip(output_names, session.run(output_names, feeds)))

        signature = {"inputs": inputs, "outputs": outputs}
        definition = {"inputs": {n: _tensor_info(n, *v) for n, v in inputs.items()},
                      "outputs": {n: _tensor_info(n, *v) for n, v in outputs.items()},
                      "method_name": "tensorflow/serving/predict"}
        return cls({DEFAULT_SIGNATURE: signature}, {DEFAULT_SIGNATURE: definition}, run)

    @classmethod
    def _saved_model(cls, model):
        from google.protobuf import json_format
        from tensorflow.core.protobuf import saved_model_pb2

        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(model.path, "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        definitions = json_format.MessageToDict(saved.meta_graphs[0], preserving_proto_field_name=True,
                                                always_print_fields_with_no_presence=True)  # as TF Serving prints
        definitions = definitions.get("signature_def", {})
        definitions.pop("__saved_model_init_op", None)
        definitions = {name: definitions[name] for name in sorted(definitions)}

        def spec(info):
            dims = info.get("tensor_shape", {})
            shape = None if dims.get("unknown_rank") else [int(d.get("size", -1)) for d in dims.get("dim", [])]
            return info.get("dtype", "DT_INVALID"), shape

        signatures = {name: {"inputs": {k: spec(v) for k, v in d.get("inputs", {}).items()},
                             "outputs": {k: spec(v) for k, v in d.get("outputs", {}).items()}}
                      for name, d in definitions.items()}
        functions = model.handle.signatures

        def run(name, feeds):
            import tensorflow as tf

            answer = functions[name](**{k: tf.constant(v) for k, v in feeds.items()})
            return {k: v.numpy() for k, v in answer.items()}

        return cls(signatures, definitions, run)

    def describe(self):
        """TF Serving's `signature_def` map (JSON): inputs and outputs with tensor names, DataTypes and shapes."""
        return self._definitions

    def names(self):
        return sorted(self.signatures)

    def get(self, name):
        """The signature called `name` (RequestError 400 naming the ones there are)."""
        if not isinstance(name, str) or name not in self.signatures:
            raise RequestError(f"signature_name {str(name)[:60]!r} is not in this model; its signatures: "
                               f"{', '.join(self.names())}")
        return self.signatures[name]

    def check(self, name, feeds):
        """Converts and checks named inputs (NumPy arrays) against signature `name`; returns them in its dtypes."""
        signature = self.get(name)
        expected = signature["inputs"]
        if set(feeds) != set(expected):
            missing, unknown = sorted(set(expected) - set(feeds)), sorted(set(feeds) - set(expected))
            raise RequestError(f"signature {name!r} takes inputs {sorted(expected)}"
                               + (f"; missing {missing}" if missing else "")
                               + (f"; unknown {[u[:40] for u in unknown]}" if unknown else ""))
        checked = {}
        for key, value in feeds.items():
            dt, shape = expected[key]
            if shape is not None and (value.ndim != len(shape) or
                                      any(s >= 0 and s != d for s, d in zip(shape, value.shape))):
                raise RequestError(f"input {key!r}: expected shape {shape} (-1: any size), got {list(value.shape)}")
            checked[key] = _as_dtype(value, dt, key)
        return checked

    def run(self, name, feeds):
        """Named output arrays of signature `name` on checked `feeds`."""
        return self._run(name, feeds)

    def run_batch(self, name, payloads):
        """Runs several requests' feeds of one signature as one call when each input is a batch along axis 0
        with the same trailing shape; returns one outputs dict per payload (each request's own rows)."""
        if len(payloads) == 1:
            return [self.run(name, payloads[0])]
        rows = [len(next(iter(p.values()))) for p in payloads]
        feeds = {key: np.concatenate([p[key] for p in payloads]) for key in payloads[0]}
        outputs = self.run(name, feeds)
        if any(np.ndim(v) == 0 or len(v) != sum(rows) for v in outputs.values()):
            return [self.run(name, p) for p in payloads]  # outputs not row by row: each request alone
        answers, start = [], 0
        for count in rows:
            answers.append({k: v[start:start + count] for k, v in outputs.items()})
            start += count
        return answers


def batch_key(name, feeds, signature):
    """A key under which requests may share one model call (same signature, every input a batch with the same
    trailing shape and dtype), or None when this request must run alone.

    A signature that takes strings (encoded images) and answers with outputs of unknown size beyond the batch
    axis pads each answer to the largest input of the call (a segmenter's masks): its requests run alone, so an
    answer never depends on the requests it was batched with."""
    sizes = {v.shape[0] if v.ndim else None for v in feeds.values()}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        return None
    if any(v.dtype.kind == "O" for v in feeds.values()) and any(
            shape is None or any(d < 0 for d in shape[1:]) for _, shape in signature["outputs"].values()):
        return None
    return (name,) + tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in feeds.items()))


def _tensor_info(name, dt, shape):
    return {"name": name, "dtype": dt, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in shape],
                                                        "unknown_rank": False}}


def _as_dtype(value, dt, key):
    if dt == "DT_STRING":
        if value.dtype.kind not in "OSU" or value.dtype.kind == "O" and not all(
                isinstance(x, bytes) for x in value.ravel()):
            raise RequestError(f"input {key!r}: expected strings (DT_STRING), got {_kind(value)}")
        return value.astype(object)
    if dt not in DTYPES:
        raise RequestError(f"input {key!r}: the model takes {dt}, which this server cannot send", 500)
    target = numpy_dtype(dt)
    if value.dtype.kind in "OSU":
        raise RequestError(f"input {key!r}: expected numbers ({dt}), got {_kind(value)}")
    if target.kind == "b":
        if value.dtype.kind != "b":
            raise RequestError(f"input {key!r}: expected true/false (DT_BOOL), got {_kind(value)}")
        return value
    if value.dtype.kind == "b":
        raise RequestError(f"input {key!r}: expected numbers ({dt}), got true/false")
    if target.kind in "iu":
        if value.dtype.kind == "f" and not (np.all(np.isfinite(value)) and np.all(value == np.round(value))):
            raise RequestError(f"input {key!r}: expected integers ({dt}), got fractions")
        info = np.iinfo(target)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise RequestError(f"input {key!r}: values out of the range of {dt} ({info.min} to {info.max})")
        return value.astype(target)
    with np.errstate(over="ignore"):
        converted = value.astype(target)
    if value.size and not np.all(np.isfinite(converted)[np.isfinite(value.astype(np.float64))]):
        raise RequestError(f"input {key!r}: values out of the range of {dt}")
    return converted


def _kind(value):
    return {"O": "strings", "S": "strings", "U": "strings", "b": "true/false", "f": "numbers",
            "i": "integers", "u": "integers"}.get(value.dtype.kind, str(value.dtype))


def planned_bytes(feeds):
    """The bytes a request's inputs take once decoded: arrays as they are; an encoded image (PNG, JPEG, GIF, BMP)
    among the strings as the pixels its header declares (refused outright over the decoder's pixel cap)."""
    from toolkit.data.image_io import check_image_size
    from toolkit.errors import ToolkitError

    total = 0
    for key, value in feeds.items():
        if value.dtype.kind != "O":
            total += value.nbytes
            continue
        for item in value.ravel():
            total += len(item)
            if item[:4].startswith(_IMAGE_MAGIC):
                try:
                    size = check_image_size(io.BytesIO(item), name=f"input {key!r}")
                except ToolkitError as error:
                    raise RequestError(str(error), 413)
                if size:
                    total += size[0] * size[1] * _DECODED_BYTES_PER_PIXEL
    return total


# ------------------------------------------------------------------ TF Serving REST


def _strings(value, key):
    """JSON values of a DT_STRING tensor -> nested lists of bytes ({"b64": ...} decoded, text UTF-8 encoded)."""
    if isinstance(value, list):
        return [_strings(v, key) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RequestError(f"input {key!r}: bytes are {{\"b64\": \"<base64>\"}}, got keys {sorted(value)[:5]}")
        return decode_b64(value["b64"], f"input {key!r}")
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError(f"input {key!r}: expected strings (DT_STRING; bytes as {{\"b64\": \"<base64>\"}}), got "
                       f"{type(value).__name__}")


def _array(value, dt, key):
    """A JSON value of input `key` (DataType `dt`) as a NumPy array (RequestError when ragged or mixed)."""
    if dt == "DT_STRING":
        nested = _strings(value, key)
        try:
            array = np.array(nested, dtype=object)
        except ValueError:
            array = None
        if array is None or any(not isinstance(x, bytes) for x in array.ravel()):
            raise RequestError(f"input {key!r}: lists must be of one shape (every row the same length)")
        return array
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        raise RequestError(f"input {key!r}: lists must be of one shape (every row the same length), of numbers")
    if array.dtype.kind not in "biuf":
        if array.dtype.kind == "O" and array.size and all(isinstance(x, int) for x in array.ravel()):
            raise RequestError(f"input {key!r}: an integer is too large for {dt}")
        raise RequestError(f"input {key!r}: expected numbers ({dt}) in lists of one shape")
    return array


def decode_rest(request, signatures):
    """A TF Serving REST predict request (parsed JSON) -> (signature name, checked feeds, columnar).

    Row format: `instances` is a list with one entry per example: the value of the only input, or an object with
    every named input (all examples of one shape, stacked). Columnar: `inputs` is the value of the only input, or an
    object of named inputs, each a whole batch (batch sizes may differ, e.g. a scalar `k`)."""
    if not isinstance(request, dict):
        raise RequestError('the body must be a JSON object like {"instances": [...]}')
    keys = set(request) - {"signature_name"}
    if keys not in ({"instances"}, {"inputs"}):
        raise RequestError('give exactly one of "instances" (row format) or "inputs" (columnar), '
                           f"got keys {sorted(request)[:5]}")
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    signature = signatures.get(name)
    inputs = signature["inputs"]
    only = next(iter(inputs)) if len(inputs) == 1 else None
    if "inputs" in request:
        value = request["inputs"]
        if isinstance(value, dict) and not (only and set(value) == {"b64"}):
            columns = value
        elif only:
            columns = {only: value}
        else:
            raise RequestError(f"signature {name!r} takes named inputs {sorted(inputs)}: send "
                               '{"inputs": {"<name>": value, ...}}')
        feeds = {key: _array(v, inputs.get(key, ("DT_FLOAT", None))[0], key) for key, v in columns.items()}
        return name, signatures.check(name, feeds), True
    rows = request["instances"]
    if not isinstance(rows, list) or not rows:
        raise RequestError('"instances" must be a non-empty list')
    named = [isinstance(r, dict) and not (only and set(r) == {"b64"}) for r in rows]
    if any(named) and not all(named):
        raise RequestError("instances: mix of named-input objects and plain values; use one form for all")
    if not named[0]:
        if not only:
            raise RequestError(f"signature {name!r} takes named inputs {sorted(inputs)}: send "
                               '{"instances": [{"<name>": value, ...}, ...]}')
        rows = [{only: r} for r in rows]
    feeds = {}
    for key in rows[0]:
        if not all(key in r for r in rows) or len({len(r) for r in rows}) != 1:
            raise RequestError("instances: every instance must name the same inputs")
        feeds[key] = _array([r[key] for r in rows], inputs.get(key, ("DT_FLOAT", None))[0], key)
    return name, signatures.check(name, feeds), False


def _json_value(array, name):
    """An output array as JSON: strings as text, or {"b64": ...} when the output's name ends in `_bytes` (TF
    Serving's rule) or the bytes are not UTF-8."""
    if array.dtype.kind in "OS":
        binary = name.endswith("_bytes")

        def convert(x):
            if isinstance(x, list):
                return [convert(v) for v in x]
            data = x if isinstance(x, bytes) else str(x).encode("utf-8")
            if not binary:
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(data).decode("ascii")}

        return convert(array.tolist())
    return array.tolist()


def encode_rest(outputs, columnar):
    """TF Serving's response of named outputs: row format -> {"predictions": [...]} (one value per example, or one
    object of named outputs per example), columnar -> {"outputs": value or {name: value}}."""
    if columnar:
        if len(outputs) == 1:
            name, value = next(iter(outputs.items()))
            return {"outputs": _json_value(np.asarray(value), name)}
        return {"outputs": {k: _json_value(np.asarray(v), k) for k, v in outputs.items()}}
    arrays = {k: np.asarray(v) for k, v in outputs.items()}
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        raise RequestError("the outputs of this signature are not one row per instance; use the columnar "
                           '"inputs" form')
    if len(arrays) == 1:
        name, value = next(iter(arrays.items()))
        return {"predictions": _json_value(value, name)}
    columns = {k: _json_value(v, k) for k, v in arrays.items()}
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(sizes.pop())]}


# ------------------------------------------------------------------ Open Inference Protocol v2


def v2_metadata(name, signatures, platform):
    """`GET /v2/models/NAME`: the default signature's tensors in the protocol's datatypes."""
    signature = signatures.signatures.get(DEFAULT_SIGNATURE) or signatures.signatures[signatures.names()[0]]

    def tensors(specs):
        return [{"name": k, "datatype": DTYPES.get(dt, (None, dt))[1], "shape": shape if shape is not None else [-1]}
                for k, (dt, shape) in specs.items()]

    return {"name": name, "versions": ["1"], "platform": platform, "inputs": tensors(signature["inputs"]),
            "outputs": tensors(signature["outputs"])}


def decode_v2(body, header_length, signatures):
    """An inference request (JSON, or JSON + binary tensors when `header_length` is given) -> (signature name,
    checked feeds, requested outputs: {name: binary?} or None for all, request id)."""
    if header_length is not None:
        try:
            header_length = int(header_length)
        except ValueError:
            header_length = -1
        if not 0 <= header_length <= len(body):
            raise RequestError("Inference-Header-Content-Length is not a length within the body")
        header, binary = body[:header_length], body[header_length:]
    else:
        header, binary = body, b""
    request = load_json(header)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise RequestError('an inference request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    parameters = _parameters(request, "the request")
    name = parameters.get("signature_name", DEFAULT_SIGNATURE)
    if request.get("id") is not None and not isinstance(request["id"], str):
        raise RequestError('"id" must be a string')
    signature = signatures.get(name)
    feeds, offset = {}, 0
    for i, tensor in enumerate(request["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise RequestError(f"inputs[{i}]: a tensor is {{\"name\", \"shape\", \"datatype\", \"data\"}}")
        key = tensor["name"]
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31
                                                  for d in shape):
            raise RequestError(f"input {key[:40]!r}: \"shape\" must be a list of sizes (0 to 2^31 - 1)")
        if datatype not in V2_TO_DT:
            raise RequestError(f"input {key[:40]!r}: unknown datatype {str(datatype)[:20]!r}; one of "
                               f"{', '.join(V2_TO_DT)}")
        dt = V2_TO_DT[datatype]
        count = 1
        for d in shape:  # Python integers: np.prod would wrap around past int64
            count *= d
        size = _parameters(tensor, f"input {key[:40]!r}").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(f"input {key[:40]!r}: binary_data_size runs past the body")
            array = _from_binary(binary[offset:offset + size], dt, count, key)
            offset += size
        elif "data" in tensor:
            data = tensor["data"]
            if dt == "DT_STRING":
                flat = np.array(_strings(_flatten(data), key), dtype=object).ravel()
            else:
                flat = _array(_flatten(data), dt, key).ravel()
            if flat.size != count:
                raise RequestError(f"input {key[:40]!r}: {flat.size} values for shape {shape}")
            array = flat
        else:
            raise RequestError(f"input {key[:40]!r}: no \"data\" and no binary_data_size")
        if array.size != count:
            raise RequestError(f"input {key[:40]!r}: {array.size} values for shape {shape}")
        feeds[key] = array.reshape(shape)
        if dt != signature["inputs"].get(key, (dt, None))[0]:
            raise RequestError(f"input {key[:40]!r}: the model takes {DTYPES[signature['inputs'][key][0]][1]}, "
                               f"got {datatype}")
    outputs = request.get("outputs")
    requested = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                    for o in outputs):
            raise RequestError('"outputs" is a list of {"name": ...}')
        unknown = [o["name"][:40] for o in outputs if o["name"] not in signature["outputs"]]
        if unknown:
            raise RequestError(f"outputs {unknown}: not outputs of this model; it has {sorted(signature['outputs'])}")
        requested = {o["name"]: bool(_parameters(o, f"output {o['name'][:40]!r}").get("binary_data", False))
                     for o in outputs}
    if parameters.get("binary_data_output") and requested is None:
        requested = {k: True for k in signature["outputs"]}
    return name, signatures.check(name, feeds), requested, request.get("id")


def _parameters(message, where):
    """The "parameters" object of a request, tensor or output ({} when absent)."""
    parameters = message.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise RequestError(f"{where}: \"parameters\" must be an object")
    return parameters


def _flatten(data):
    if isinstance(data, list) and any(isinstance(d, list) for d in data):
        return [x for d in data for x in (_flatten(d) if isinstance(d, list) else [d])]
    return data


def _from_binary(data, dt, count, key):
    if dt == "DT_STRING":
        items, offset = [], 0
        while offset < len(data):
            if offset + 4 > len(data):
                raise RequestError(f"input {key[:40]!r}: BYTES data is cut short")
            (length,) = struct.unpack_from("<I", data, offset)
            items.append(bytes(data[offset + 4:offset + 4 + length]))
            offset += 4 + length
            if offset > len(data):
                raise RequestError(f"input {key[:40]!r}: BYTES data is cut short")
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array
    dtype = numpy_dtype(dt)
    if len(data) != count * dtype.itemsize:
        raise RequestError(f"input {key[:40]!r}: {len(data)} bytes for {count} values of {DTYPES[dt][1]}")
    return np.frombuffer(data, dtype="<" + dtype.str[1:] if dtype.itemsize > 1 else dtype).astype(dtype)


def encode_v2(model_name, outputs, requested, request_id=None):
    """The inference response: (JSON header bytes, binary tail bytes); the tail is empty unless binary outputs
    were asked for (then the header's length goes in Inference-Header-Content-Length)."""
    names = list(outputs) if requested is None else list(requested)
    tensors, tail = [], []
    for name in names:
        array = np.asarray(outputs[name])
        dt = dt_of(array)
        tensor = {"name": name, "datatype": DTYPES[dt][1], "shape": list(array.shape)}
        if requested and requested.get(name):
            data = (b"".join(struct.pack("<I", len(_bytes(x))) + _bytes(x) for x in array.ravel())
                    if dt == "DT_STRING" else np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
            tensor["parameters"] = {"binary_data_size": len(data)}
            tail.append(data)
        else:
            flat = array.ravel()
            tensor["data"] = ([_text_or_b64(x) for x in flat] if dt == "DT_STRING" else flat.tolist())
        tensors.append(tensor)
    response = {"model_name": model_name, "model_version": "1", "outputs": tensors}
    if request_id is not None:
        response["id"] = request_id
    return dumps(response), b"".join(tail)


def _bytes(x):
    return x if isinstance(x, bytes) else str(x).encode("utf-8")


def _text_or_b64(x):
    try:
        return _bytes(x).decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(_bytes(x)).decode("ascii")


# ------------------------------------------------------------------ JSON


def dumps(payload):
    """JSON bytes of an answer; NaN and infinities are written as TF Serving writes them (NaN, Infinity)."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=True, separators=(",", ":")).encode("utf-8")
