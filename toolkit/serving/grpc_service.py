"""TensorFlow Serving's gRPC API for `toolkit serve`: `tensorflow.serving.PredictionService` (Predict,
GetModelMetadata) and `tensorflow.serving.ModelService` (GetModelStatus), on their own port, answered by the same
`toolkit.serving.server.Server` as the HTTP API (same signatures, checks, budgets and micro-batches).

Any TF Serving client works unchanged, e.g. with `tensorflow-serving-api`:

>>> channel = grpc.insecure_channel("127.0.0.1:8500")  # doctest: +SKIP
>>> stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)  # doctest: +SKIP
>>> request = predict_pb2.PredictRequest()  # doctest: +SKIP
>>> request.model_spec.name = "fashion"  # doctest: +SKIP
>>> request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([png], dtype=tf.string))  # doctest: +SKIP
>>> tf.make_ndarray(stub.Predict(request, timeout=10).outputs["probabilities"])  # doctest: +SKIP

Errors are TF Serving's status codes with a one-line message (never a traceback or a file path): a bad request is
INVALID_ARGUMENT, another model or version NOT_FOUND, inputs over the per-request budget (or a message over the
size limit, or more RPCs at once than the server takes) RESOURCE_EXHAUSTED, a busy or stopping server UNAVAILABLE.

Input TensorProtos are converted here, not by `tf.make_ndarray`: their declared shape is checked against the
request budget before anything is allocated (a TensorProto of one value may declare billions of elements, which
`tf.make_ndarray` would fill in).

Usage: `grpc_server = start_grpc(server, port=8500)` once `server.start()` has run; on shutdown
`stop_grpc(grpc_server, server.drain_seconds)` (answers the RPCs in flight), then `server.stop()`.
"""

import concurrent.futures
import json
import logging
import sys
import threading
import time

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.serving.batcher import _no_paths
from toolkit.serving.instances import RequestError
from toolkit.serving.signatures import DEFAULT_SIGNATURE, DTYPES, dt_of, numpy_dtype

LOG = logging.getLogger("toolkit.serve")
DEFAULT_MAX_MESSAGE_BYTES = 16 << 20
_VALUE_FIELDS = {  # TensorProto field of the values of each DataType (when not in tensor_content)
    "DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_HALF": "half_val", "DT_INT8": "int_val",
    "DT_INT16": "int_val", "DT_INT32": "int_val", "DT_UINT8": "int_val", "DT_UINT16": "int_val",
    "DT_INT64": "int64_val", "DT_UINT32": "uint32_val", "DT_UINT64": "uint64_val", "DT_BOOL": "bool_val",
    "DT_STRING": "string_val",
}
_PATHS = {"predict": "/tensorflow.serving.PredictionService/Predict",
          "metadata": "/tensorflow.serving.PredictionService/GetModelMetadata",
          "status": "/tensorflow.serving.ModelService/GetModelStatus"}
_POINTER_BYTES = 8  # each string of a DT_STRING tensor also costs a Python object reference


def _codes():
    import grpc

    return {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
            413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE}


def _message(error):
    """The one-line, path-free message of a RequestError."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else "bad request"
    return _no_paths(text)[:500]


# ------------------------------------------------------------------ TensorProto <-> NumPy


def tensor_to_array(proto, key, max_bytes):
    """A TensorProto of input `key` as a NumPy array (DT_STRING: an object array of bytes), refused with
    RequestError (400, or 413 past `max_bytes`) before allocating anything when its declared shape is too large."""
    from tensorflow.core.framework import types_pb2

    try:
        dt = types_pb2.DataType.Name(proto.dtype)
    except ValueError:
        dt = f"DataType {proto.dtype}"
    if dt not in DTYPES:
        raise RequestError(f"input {key!r}: dtype {dt} is not supported; send one of {', '.join(DTYPES)}")
    if proto.tensor_shape.unknown_rank:
        raise RequestError(f"input {key!r}: tensor_shape has unknown_rank; give its dims")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise RequestError(f"input {key!r}: tensor_shape {shape} has a negative size")
    count = 1
    for size in shape:
        count *= size  # Python ints: no overflow
    field = _VALUE_FIELDS[dt]
    values = getattr(proto, field)
    if dt == "DT_STRING":
        if proto.tensor_content:
            raise RequestError(f"input {key!r}: DT_STRING values go in string_val, not tensor_content")
        if len(values) > count:
            raise RequestError(f"input {key!r}: {len(values)} values for shape {shape}")
        last = len(values[-1]) if len(values) else 0
        planned = sum(len(v) for v in values) + (count - len(values)) * last + count * _POINTER_BYTES
    else:
        planned = count * numpy_dtype(dt).itemsize
    if planned > max_bytes:
        raise RequestError(f"input {key!r}: shape {shape[:8]} decodes to {planned / (1 << 20):,.0f} MB; the limit "
                           f"per request is {max_bytes / (1 << 20):,.0f} MB (toolkit serve --max-request-mb)", 413)
    if dt == "DT_STRING":
        items = list(values)
        if items and len(items) < count:  # TensorFlow's rule: the last value repeats
            items.extend([items[-1]] * (count - len(items)))
        array = np.empty(count, dtype=object)
        array[:] = items if items else [b""] * count
        return array.reshape(shape)
    dtype = numpy_dtype(dt)
    if proto.tensor_content:
        if len(values):
            raise RequestError(f"input {key!r}: values in both tensor_content and {field}; use one")
        content = proto.tensor_content
        if len(content) != count * dtype.itemsize:
            raise RequestError(f"input {key!r}: tensor_content has {len(content)} bytes; shape {shape} of {dt} "
                               f"takes {count * dtype.itemsize}")
        little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        return np.frombuffer(content, dtype=little).astype(dtype).reshape(shape)
    if len(values) > count:
        raise RequestError(f"input {key!r}: {len(values)} values for shape {shape}")
    if dt == "DT_HALF":
        flat = np.fromiter(values, dtype=np.int64, count=len(values))
        if flat.size and (flat.min() < 0 or flat.max() > 0xFFFF):
            raise RequestError(f"input {key!r}: half_val holds values that are not 16-bit patterns")
        flat = flat.astype(np.uint16).view(np.float16)
    elif field == "int_val":
        flat = np.fromiter(values, dtype=np.int64, count=len(values))
        info = np.iinfo(dtype)
        if flat.size and (flat.min() < info.min or flat.max() > info.max):
            raise RequestError(f"input {key!r}: values out of the range of {dt} ({info.min} to {info.max})")
        flat = flat.astype(dtype)
    else:
        flat = np.fromiter(values, dtype=dtype, count=len(values))
    if flat.size == 0:
        return np.zeros(shape, dtype)
    if flat.size < count:  # TensorFlow's rule: the last value repeats
        flat = np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype)])
    return flat.reshape(shape)


def array_to_tensor(array):
    """A TensorProto of an output array: numbers in tensor_content (little-endian), strings in string_val; what
    `tf.make_ndarray` reads back."""
    from tensorflow.core.framework import tensor_pb2, types_pb2

    array = np.asarray(array)
    dt = dt_of(array)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dt))
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if dt == "DT_STRING":
        proto.string_val.extend(x if isinstance(x, bytes) else str(x).encode("utf-8") for x in array.ravel())
    else:
        dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        proto.tensor_content = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return proto


def signature_def_map(server):
    """`tensorflow.serving.SignatureDefMap` of the served model (every SignatureDef, as TF Serving sends them)."""
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    result = get_model_metadata_pb2.SignatureDefMap()
    for name, definition in server.signatures.describe().items():
        json_format.ParseDict(definition, result.signature_def[name], ignore_unknown_fields=True)
    return result


# ------------------------------------------------------------------ services


class _Abort(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Service:
    """The servicers of one `Server`: Predict, GetModelMetadata and GetModelStatus. Counts the RPCs it received
    and answered (`received`, `answered`), and records each in the server's /metrics as endpoint `grpc_<method>`
    (codes as HTTP statuses, like the REST endpoints)."""

    def __init__(self, server):
        self.server = server
        self.received = 0
        self.answered = 0
        self._lock = threading.Lock()
        self._metadata = None

    def _rpc(self, method, context, answer):
        import grpc

        with self._lock:
            self.received += 1
        metrics = getattr(self.server, "metrics", None)
        started = time.perf_counter()
        status, code, message = 200, None, None
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            response = answer()
        except _Abort as error:
            code, message = error.code, str(error)
        except RequestError as error:
            status = error.status
            code, message = _codes().get(status, grpc.StatusCode.INTERNAL), _message(error)
        except Exception:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("gRPC %s failed", method)
            status, code, message = 500, grpc.StatusCode.INTERNAL, "internal error"
        finally:
            seconds = time.perf_counter() - started
            if metrics is not None:
                metrics.in_flight.dec()
        if code is not None and status == 200:
            status = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
                      grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500}.get(code, 400)
        if metrics is not None:
            metrics.observe(f"grpc_{method}", status, seconds)
        if getattr(self.server, "access_log", False):
            print(json.dumps({"time": round(time.time(), 3), "client": context.peer(), "method": "gRPC",
                              "path": _PATHS[method], "status": status,
                              "ms": round(seconds * 1000, 2)}), file=sys.stderr, flush=True)
        if code is not None:
            context.abort(code, message)  # raises
        with self._lock:
            self.answered += 1
        return response

    def _check_spec(self, spec):
        """The signature name of a ModelSpec for this server's model (NOT_FOUND for another model or version)."""
        import grpc

        if spec.name != self.server.name:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"model {spec.name[:60]!r} is not served here; this server "
                                                    f"serves {self.server.name!r}")
        choice = spec.WhichOneof("version_choice")
        if choice == "version" and spec.version.value != 1:
            raise _Abort(grpc.StatusCode.NOT_FOUND,
                         f"version {spec.version.value} is not served; the only version is 1")
        if choice == "version_label":
            raise _Abort(grpc.StatusCode.NOT_FOUND,
                         f"version label {spec.version_label[:40]!r} is not served; the only version is 1")
        return spec.signature_name or DEFAULT_SIGNATURE

    def _fill_spec(self, spec, signature_name=None):
        spec.name = self.server.name
        spec.version.value = 1
        if signature_name is not None:
            spec.signature_name = signature_name

    # ---------------------------------------------------------------- PredictionService

    def Predict(self, request, context):
        return self._rpc("predict", context, lambda: self._predict(request))

    def _predict(self, request):
        import grpc
        from tensorflow_serving.apis import predict_pb2

        server = self.server
        name = self._check_spec(request.model_spec)
        signature = server.signatures.get(name)  # RequestError 400 naming the signatures there are
        if not request.inputs:
            raise RequestError(f"no inputs; signature {name!r} takes {sorted(signature['inputs'])}")
        budget = getattr(server, "max_request_bytes", 128 << 20)
        feeds = {}
        for key in sorted(request.inputs):
            if key not in signature["inputs"]:
                raise RequestError(f"signature {name!r} takes inputs {sorted(signature['inputs'])}; unknown "
                                   f"{[key[:40]]}")
            array = feeds[key] = tensor_to_array(request.inputs[key], key, budget)
            budget -= array.nbytes if array.dtype.kind != "O" else \
                array.size * _POINTER_BYTES + sum(len(x) for x in array.ravel())
        wanted = list(request.output_filter)
        if wanted:
            unknown = [w[:40] for w in wanted if w not in signature["outputs"]]
            if unknown:
                raise RequestError(f"output_filter {unknown}: not outputs of signature {name!r}; it has "
                                   f"{sorted(signature['outputs'])}")
            if len(set(wanted)) != len(wanted):
                raise RequestError("output_filter names an output twice")
        outputs = server.infer(name, feeds)
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, name)
        for key in wanted or outputs:
            if key not in outputs:
                raise _Abort(grpc.StatusCode.INTERNAL, "internal error")
            response.outputs[key].CopyFrom(array_to_tensor(outputs[key]))
        return response

    def GetModelMetadata(self, request, context):
        return self._rpc("metadata", context, lambda: self._model_metadata(request))

    def _model_metadata(self, request):
        from tensorflow_serving.apis import get_model_metadata_pb2

        self._check_spec(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise RequestError('metadata_field is empty; ask for "signature_def"')
        unknown = [f[:40] for f in fields if f != "signature_def"]
        if unknown:
            raise RequestError(f"metadata_field {unknown} is not supported; the only one is \"signature_def\"")
        if self._metadata is None:
            self._metadata = signature_def_map(self.server)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec)
        response.metadata["signature_def"].Pack(self._metadata)
        return response

    def Classify(self, request, context):
        self._unimplemented("Classify", context)

    def Regress(self, request, context):
        self._unimplemented("Regress", context)

    def MultiInference(self, request, context):
        self._unimplemented("MultiInference", context)

    def _unimplemented(self, method, context):
        import grpc

        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served here; use Predict")

    # ---------------------------------------------------------------- ModelService

    def GetModelStatus(self, request, context):
        return self._rpc("status", context, lambda: self._model_status(request))

    def _model_status(self, request):
        from tensorflow_serving.apis import get_model_status_pb2

        self._check_spec(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = 1
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    def HandleReloadConfigRequest(self, request, context):
        self._unimplemented("HandleReloadConfigRequest", context)


def start_grpc(server, host="127.0.0.1", port=8500, max_workers=8, max_message_bytes=None):
    """Serves TF Serving's gRPC API for `server` (a started toolkit.serving.Server) on host:port.

    Args:
        server: toolkit.serving.server.Server. Its model, signatures, budgets and batcher answer the RPCs.
        host: str. The address to listen on.
        port: int. 0 picks a free port.
        max_workers: int. Threads answering RPCs (each waits for its micro-batch).
        max_message_bytes: int or None. Largest request message; larger ones are refused by gRPC with
            RESOURCE_EXHAUSTED (default: the server's max_body_bytes, `toolkit serve --max-body-mb`).

    Returns the started `grpc.Server`, with `.port` (the bound port) and `.service` (the `Service`, with its
    `received` and `answered` counts). Stop it with `stop_grpc(grpc_server, grace)`.
    """
    try:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
    except ImportError as error:
        raise ToolkitError(f"--grpc-port needs the gRPC API of TensorFlow Serving ({error.name} is missing): "
                           "pip install tensorflow-serving-api==2.21.*") from None

    if max_message_bytes is None:
        max_message_bytes = getattr(server, "max_body_bytes", None) or DEFAULT_MAX_MESSAGE_BYTES
    options = [("grpc.max_receive_message_length", int(max_message_bytes)),
               ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", 0)]  # a port in use is an error, not silently shared
    in_flight = getattr(server, "max_in_flight", None)
    grpc_server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="toolkit-grpc"),
                              options=options, maximum_concurrent_rpcs=in_flight)
    service = Service(server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, grpc_server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = grpc_server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        grpc_server.stop(None)
        raise ToolkitError(f"--grpc-port {port}: cannot listen on {host}:{port}; choose another port "
                           "(0 picks a free one)")
    grpc_server.start()
    grpc_server.port = bound
    grpc_server.service = service
    return grpc_server


def stop_grpc(grpc_server, grace=30.0):
    """Refuses new RPCs at once, lets the ones in flight finish (up to `grace` seconds), then closes the port;
    returns when done. Call it before `server.stop()` so that the batcher still answers them."""
    if grpc_server is not None:
        grpc_server.stop(grace).wait(None if grace is None else grace + 10)
