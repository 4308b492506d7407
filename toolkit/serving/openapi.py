"""The OpenAPI 3.0 description of `toolkit serve`'s REST surface for the one model it serves (`GET /openapi.json`).

`openapi(server)` is a pure function of the server's model name, signatures and metadata (no runtime import, the
same for SavedModel and ONNX models): every route with the model name written into the path (no path parameters,
so a client generator or a fuzzer such as schemathesis stays on routes that exist), the request bodies of TF
Serving's predict (row `instances` or columnar `inputs`, `signature_name` one of the model's signatures or
"toolkit") and of the Open Inference Protocol v2 infer (input names, the protocol's datatypes), the answer of every
route, and the status codes each route can answer: 400 (a bad request), 413 (a body or its decoded inputs over the
server's limits), 415 (a Content-Encoding other than gzip or deflate), 503 (busy, or draining on shutdown). Every error is `{"error": "one line"}`. Any other path is a
404 and any other method a 405 with `Allow` (components `NotFound`, `MethodNotAllowed`); those never answer the
operations listed, so no operation lists them.

Request examples (`examples` of each request body) are valid requests built from the signatures: numbers as zeros
and ones, strings as what the task takes (a tiny PNG, a sentence, a known user id), free dimensions as 1.

>>> doc = openapi(server)  # doctest: +SKIP
>>> sorted(doc["paths"])[:2]  # doctest: +SKIP
['/healthz', '/metrics']
"""

from urllib.parse import quote

from toolkit.serving.instances import INSTANCE_HELP, TOOLKIT_SIGNATURE
from toolkit.serving.signatures import DEFAULT_SIGNATURE, DTYPES

OPENAPI_VERSION = "3.0.3"
# The Open Inference Protocol's tensor datatypes this server reads and writes.
V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                "FP64", "BYTES"]
_DT_TO_V2 = {dt: v2 for dt, (_, v2) in DTYPES.items()}
_TENSOR_DEPTH = 4  # nested JSON lists a tensor value may have in the schema (an image batch is 4 deep)
_MAX_EXAMPLE_VALUES = 4096  # a signature whose smallest request holds more values gets no example
# An 8x8 red PNG (78 bytes): the example image of image models.
_TINY_PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFUlEQVR42mM8ISfHgA0wMeAAg1MCANDKARQfGKMRAAAAAElFTkSu"
                 "QmCC")


def _ref(name, kind="schemas"):
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema_name):
    return {"application/json": {"schema": _ref(schema_name)}}


def _error(description, retry_after=False):
    response = {"description": description, "content": _json("Error")}
    if retry_after:
        response["headers"] = {"Retry-After": {
            "description": "seconds to wait before retrying (when the server is busy; absent while draining)",
            "schema": {"type": "integer", "minimum": 0}}}
    return response


def _signatures(server):
    """{name: {"inputs": {tensor: (dt, shape)}, "outputs": {...}}} of the server, names sorted."""
    table = server.signatures.signatures
    return {name: table[name] for name in sorted(table)}


def _default_signature(signatures):
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    return next(iter(signatures), None)


def _shape_text(shape):
    return "any shape" if shape is None else "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def _signature_table(signatures):
    """Markdown lines describing each signature's inputs and outputs."""
    lines = []
    for name, signature in signatures.items():
        lines.append(f"- `{name}`:")
        for side in ("inputs", "outputs"):
            tensors = ", ".join(f"`{k}` {dt} {_shape_text(shape)}" for k, (dt, shape) in signature[side].items())
            lines.append(f"  {side} {tensors or '(none)'}")
    return "\n".join(lines)


# ------------------------------------------------------------------ schemas


def _tensor_schemas():
    """JSON values of a tensor: a scalar (number, string, boolean or {"b64": ...} bytes) or lists of them nested up
    to `_TENSOR_DEPTH` deep."""
    scalar = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, _ref("Bytes")]}
    nested, value = [], _ref("Scalar")
    for _ in range(_TENSOR_DEPTH):
        value = {"type": "array", "items": value}
        nested.append(value)
    return {
        "Bytes": {"type": "object", "required": ["b64"], "additionalProperties": False,
                  "properties": {"b64": {"type": "string", "format": "byte"}},
                  "description": "bytes (an encoded image, a WAV file, any binary string), base64-encoded"},
        "Scalar": dict(scalar, description="one value of a tensor"),
        "Tensor": {"anyOf": [_ref("Scalar")] + nested,
                   "description": "a tensor as nested JSON lists (one level per dimension), or a scalar"},
    }


def _named_inputs(names, description):
    return {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {name: _ref("Tensor") for name in names}, "description": description}


def _v1_schemas(signatures, metadata):
    names = list(signatures) + ([TOOLKIT_SIGNATURE] if TOOLKIT_SIGNATURE not in signatures else [])
    signature_name = {"type": "string", "enum": names,
                      "description": f"the signature to run; \"{TOOLKIT_SIGNATURE}\" takes the task-level instances "
                                     "of `toolkit predict` and answers its results"}
    default = _default_signature(signatures)
    if default == DEFAULT_SIGNATURE:
        signature_name["default"] = DEFAULT_SIGNATURE
    input_names = sorted({k for s in signatures.values() for k in s["inputs"]})
    kind = metadata.get("input")
    instance = [_ref("Tensor"), _ref("NamedInputs")]
    if kind == "user":
        instance.append(_ref("UserItemPair"))
    schemas = {
        "NamedInputs": _named_inputs(input_names, "the signature's inputs by name (each a tensor value)"),
        "Instance": {"anyOf": instance,
                     "description": "one example: the value of the signature's only input, or an object of its "
                                    "named inputs"
                                    + (f"; for signature_name \"{TOOLKIT_SIGNATURE}\": {INSTANCE_HELP[kind]}"
                                       if kind in INSTANCE_HELP else "")},
        "RowPredictRequest": {
            "type": "object", "required": ["instances"], "additionalProperties": False,
            "properties": {"signature_name": signature_name,
                           "instances": {"type": "array", "minItems": 1, "items": _ref("Instance"),
                                         "description": "one entry per example, all of one shape"}},
            "description": "TF Serving's row format"},
        "ColumnarPredictRequest": {
            "type": "object", "required": ["inputs"], "additionalProperties": False,
            "properties": {"signature_name": signature_name,
                           "inputs": {"anyOf": [_ref("Tensor"), _ref("NamedInputs")],
                                      "description": "the whole batch of the only input, or an object of named "
                                                     "inputs (each a whole batch)"}},
            "description": "TF Serving's columnar format"},
        "PredictRequest": {"oneOf": [_ref("RowPredictRequest"), _ref("ColumnarPredictRequest")]},
        "PredictResponse": {"oneOf": [
            {"type": "object", "required": ["predictions"], "additionalProperties": False,
             "properties": {"predictions": {"type": "array", "description": "one entry per instance: the only "
                                            "output's value, or an object of named outputs"}},
             "description": "the answer to a row-format request"},
            {"type": "object", "required": ["outputs"], "additionalProperties": False,
             "properties": {"outputs": {"description": "the only output's whole batch, or an object of named "
                                                       "outputs"}},
             "description": "the answer to a columnar request"}]},
        "ModelStatus": {
            "type": "object", "required": ["model_version_status"], "additionalProperties": False,
            "properties": {"model_version_status": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["version", "state", "status"],
                "properties": {"version": {"type": "string"}, "state": {"type": "string"},
                               "status": {"type": "object", "required": ["error_code"],
                                          "properties": {"error_code": {"type": "string"},
                                                         "error_message": {"type": "string"}}}}}}}},
        "TensorInfo": {"type": "object", "required": ["dtype"],
                       "properties": {"name": {"type": "string"}, "dtype": {"type": "string"},
                                      "tensor_shape": {"type": "object"}}},
        "SignatureDef": {"type": "object",
                         "properties": {"inputs": {"type": "object", "additionalProperties": _ref("TensorInfo")},
                                        "outputs": {"type": "object", "additionalProperties": _ref("TensorInfo")},
                                        "method_name": {"type": "string"}}},
        "ModelMetadata": {
            "type": "object", "required": ["model_spec", "metadata"],
            "properties": {
                "model_spec": {"type": "object", "required": ["name", "version"],
                               "properties": {"name": {"type": "string"}, "signature_name": {"type": "string"},
                                              "version": {"type": "string"}}},
                "metadata": {"type": "object", "required": ["signature_def"], "properties": {"signature_def": {
                    "type": "object", "required": ["signature_def"], "properties": {"signature_def": {
                        "type": "object", "required": list(signatures),
                        "additionalProperties": _ref("SignatureDef")}}}}},
                "toolkit": {"type": "object", "properties": {
                    "task": {"type": "string", "nullable": True}, "runtime": {"type": "string"},
                    "input": {"type": "string", "nullable": True},
                    "signature_name": {"type": "string", "enum": [TOOLKIT_SIGNATURE]},
                    "instance": {"type": "string"}}}}},
    }
    if kind == "user":
        identifier = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
        schemas["UserItemPair"] = {"type": "object", "required": ["user"], "additionalProperties": False,
                                   "properties": {"user": identifier, "item": identifier},
                                   "description": "a (user, item) pair to score (signature_name \"toolkit\")"}
    return schemas


def _v2_schemas(signatures):
    input_names = sorted({k for s in signatures.values() for k in s["inputs"]})
    output_names = sorted({k for s in signatures.values() for k in s["outputs"]})
    datatype = {"type": "string", "enum": V2_DATATYPES}
    shape = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    parameters = {"type": "object", "properties": {
        "signature_name": {"type": "string", "enum": list(signatures),
                           "description": "the signature to run (default: serving_default)"},
        "binary_data_output": {"type": "boolean",
                               "description": "every output as binary data after the JSON header"}}}
    return {
        "InferInputTensor": {
            "type": "object", "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string", "enum": input_names},
                "shape": shape, "datatype": datatype,
                "parameters": {"type": "object", "properties": {"binary_data_size": {
                    "type": "integer", "minimum": 0,
                    "description": "the tensor is this many bytes of the binary part of the body"}}},
                "data": {"allOf": [_ref("Tensor")],
                         "description": "the values in row-major order, flat or nested (absent with "
                                        "binary_data_size)"}}},
        "InferRequestedOutput": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "enum": output_names},
                           "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}},
        "InferRequest": {
            "type": "object", "required": ["inputs"],
            "properties": {"id": {"type": "string", "description": "echoed in the response"},
                           "parameters": parameters,
                           "inputs": {"type": "array", "minItems": 1, "items": _ref("InferInputTensor")},
                           "outputs": {"type": "array", "items": _ref("InferRequestedOutput"),
                                       "description": "the outputs to return (default: all)"}}},
        "InferOutputTensor": {
            "type": "object", "required": ["name", "datatype", "shape"],
            "properties": {"name": {"type": "string", "enum": output_names}, "datatype": datatype, "shape": shape,
                           "data": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "string"},
                                                                         {"type": "boolean"}]}},
                           "parameters": {"type": "object", "properties": {
                               "binary_data_size": {"type": "integer", "minimum": 0}}}}},
        "InferResponse": {
            "type": "object", "required": ["model_name", "model_version", "outputs"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "id": {"description": "the request's id, as sent"},
                           "outputs": {"type": "array", "items": _ref("InferOutputTensor")}}},
        "TensorMetadata": {
            "type": "object", "required": ["name", "datatype", "shape"],
            "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                           "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}}}},
        "V2ModelMetadata": {
            "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"},
                           "inputs": {"type": "array", "items": _ref("TensorMetadata")},
                           "outputs": {"type": "array", "items": _ref("TensorMetadata")}}},
        "V2ServerMetadata": {
            "type": "object", "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}}},
        "V2Live": {"type": "object", "required": ["live"], "additionalProperties": False,
                   "properties": {"live": {"type": "boolean"}}},
        "V2Ready": {"type": "object", "required": ["ready"], "additionalProperties": False,
                    "properties": {"ready": {"type": "boolean"}}},
        "V2ModelReady": {"type": "object", "required": ["name", "ready"], "additionalProperties": False,
                         "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}},
    }


# ------------------------------------------------------------------ examples


def _string_sample(metadata):
    kind = metadata.get("input")
    if kind == "image":
        return {"b64": _TINY_PNG_B64}
    if kind == "user":
        users = metadata.get("user_ids")
        return str(users[0]) if isinstance(users, list) and users else "1"
    return "hello"


def _scalar_sample(dt, metadata):
    if dt == "DT_STRING":
        return _string_sample(metadata)
    if dt == "DT_BOOL":
        return False
    if dt in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF"):
        return 0.0
    return 1  # integers: a size, a count (k), a token id, a length


def _sample(dt, shape, metadata):
    """A nested-list value of `shape` (free dimensions 1), or None when the shape is unknown or too large."""
    if shape is None or dt not in _DT_TO_V2:
        return None
    dims = [1 if d < 0 else d for d in shape]
    count = 1
    for d in dims:
        count *= d
    if count > _MAX_EXAMPLE_VALUES:
        return None
    value = _scalar_sample(dt, metadata)
    for d in reversed(dims):
        value = [value] * d
    return value


def _flat(value):
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def _v1_examples(signatures, metadata):
    examples = {}
    default = _default_signature(signatures)
    for name, signature in signatures.items():
        inputs = signature["inputs"]
        values = {k: _sample(dt, shape, metadata) for k, (dt, shape) in inputs.items()}
        if not values or any(v is None for v in values.values()):
            continue
        if name == default and all(shape for _, shape in inputs.values()):
            rows = {k: v[0] for k, v in values.items()}
            instance = next(iter(rows.values())) if len(rows) == 1 else rows
            examples[f"{name}_rows"] = {"summary": f"signature {name}, row format (one instance)",
                                        "value": {"signature_name": name, "instances": [instance]}}
        columns = next(iter(values.values())) if len(values) == 1 else values
        examples[f"{name}_columns"] = {"summary": f"signature {name}, columnar format",
                                       "value": {"signature_name": name, "inputs": columns}}
    kind = metadata.get("input")
    instance = {"image": {"b64": _TINY_PNG_B64}, "text": "hello", "user": _string_sample(metadata)}.get(kind)
    if kind == "audio":
        instance = [0.0] * max(1, int(metadata.get("sample_rate") or 16000) // 10)  # 0.1 s of silence
    if instance is not None:
        examples[TOOLKIT_SIGNATURE] = {"summary": f"the toolkit format: one {kind} instance",
                                       "value": {"signature_name": TOOLKIT_SIGNATURE, "instances": [instance]}}
    return examples


def _v2_examples(signatures, metadata):
    examples = {}
    for name, signature in signatures.items():
        tensors = []
        for key, (dt, shape) in signature["inputs"].items():
            value = _sample(dt, shape, metadata)
            if value is None:
                break
            tensors.append({"name": key, "shape": [1 if d < 0 else d for d in shape], "datatype": _DT_TO_V2[dt],
                            "data": _flat(value)})
        else:
            if not tensors:
                continue
            request = {"id": "example", "inputs": tensors}
            if name != DEFAULT_SIGNATURE:
                request["parameters"] = {"signature_name": name}
            examples[name] = {"summary": f"signature {name}", "value": request}
    return examples


# ------------------------------------------------------------------ the document


def _get(operation_id, summary, tag, responses, description=None):
    operation = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        operation["description"] = description
    return {"get": operation}


def _ok(description, schema_name):
    return {"description": description, "content": _json(schema_name)}


def openapi(server):
    """The OpenAPI 3.0.3 document (a dict) of `server`'s REST routes for its model.

    Args:
        server: toolkit.serving.Server (reads `name`, `signatures.signatures`, `model.metadata`, `model.runtime`).
    """
    name = server.name
    model = quote(str(name), safe="-._~")
    signatures = _signatures(server)
    metadata = dict(getattr(server.model, "metadata", None) or {})
    runtime = getattr(server.model, "runtime", None)
    task = metadata.get("task") or "model"
    v1_tag, v2_tag, own_tag = "TF Serving REST", "Open Inference Protocol v2", "Server"

    bad_request = _error("a bad request: not JSON, a wrong shape, name, dtype or value, an unknown signature, or "
                         "inputs the model refused")
    too_large = _error("the body, or the inputs it decodes to, is over the server's limit (--max-body-mb, "
                       "--max-request-mb)")
    unavailable = _error("the server is busy (too many requests in flight, or the model queue is full: retry after "
                         "Retry-After seconds), draining on shutdown, or the model did not answer in time",
                         retry_after=True)
    unsupported = _error("a Content-Encoding other than gzip, deflate or identity")
    draining = _error("the server is shutting down (draining)")
    post_errors = {"400": bad_request, "413": too_large, "415": unsupported, "503": unavailable}
    content_encoding = {"name": "Content-Encoding", "in": "header", "required": False,
                        "description": "a gzip or deflate body is inflated (within --max-body-mb) before it is read",
                        "schema": {"type": "string", "enum": ["identity", "gzip", "deflate"]}}
    instance_help = INSTANCE_HELP.get(metadata.get("input"), "none for this model")

    predict = {
        "operationId": None, "tags": [v1_tag],
        "summary": f"predict with {name} (TF Serving REST)",
        "description": "Runs one signature of the model on a row (`instances`) or columnar (`inputs`) request, as "
                       "TensorFlow Serving does; strings are text or {\"b64\": base64}. signature_name "
                       f"\"{TOOLKIT_SIGNATURE}\" takes task-level instances ({instance_help}) and answers "
                       "`toolkit predict --json`'s results.\n\nSignatures:\n"
                       + _signature_table(signatures),
        "parameters": [content_encoding],
        "requestBody": _ref("PredictRequest", "requestBodies"),
        "responses": {"200": _ok("the outputs: `predictions` for a row request, `outputs` for a columnar one",
                                 "PredictResponse"), **post_errors},
    }
    infer = {
        "operationId": None, "tags": [v2_tag],
        "summary": f"infer with {name} (Open Inference Protocol v2)",
        "description": "Runs a signature (parameters.signature_name, default serving_default) on named input "
                       "tensors. With the binary tensor extension, the body is the JSON header followed by the "
                       "tensors' bytes and the header's length goes in Inference-Header-Content-Length; binary "
                       "outputs (parameters.binary_data_output, or outputs[].parameters.binary_data) come back the "
                       "same way.\n\nSignatures:\n" + _signature_table(signatures),
        "parameters": [{"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                        "description": "the length of the JSON header when binary tensor data follows it",
                        "schema": {"type": "integer", "minimum": 0}}, content_encoding],
        "requestBody": _ref("InferRequest", "requestBodies"),
        "responses": {"200": {
            "description": "the output tensors (JSON, or the JSON header then binary data when binary outputs "
                           "were asked for)",
            "headers": {"Inference-Header-Content-Length": {
                "description": "the length of the JSON header (binary outputs only)",
                "schema": {"type": "integer", "minimum": 0}}},
            "content": {"application/json": {"schema": _ref("InferResponse")},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            **post_errors},
    }

    def post(operation, operation_id):
        return {"post": dict(operation, operationId=operation_id)}

    v1 = f"/v1/models/{model}"
    v2 = f"/v2/models/{model}"
    status = ("the model's version status (TF Serving)", "ModelStatus")
    meta = ("every signature of the model (TF Serving SignatureDefs) and the toolkit's task, runtime and instance "
            "format", "ModelMetadata")
    v2_meta = ("the model's default signature in v2 datatypes", "V2ModelMetadata")
    model_ready = {"200": _ok("the model is ready", "V2ModelReady"), "503": draining}
    paths = {
        "/healthz": _get("healthz", "readiness", own_tag, {
            "200": {"description": "ready", "content": {"application/json": {"schema": {
                "type": "object", "required": ["status", "model"], "additionalProperties": False,
                "properties": {"status": {"type": "string", "enum": ["ok"]},
                               "model": {"type": "string", "enum": [name]}}}}}},
            "503": draining}),
        "/metrics": _get("metrics", "Prometheus metrics", own_tag, {"200": {
            "description": "requests by endpoint and code, latency and batch-size histograms (text format 0.0.4)",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}),
        "/openapi.json": _get("openapi", "this document", own_tag, {"200": {
            "description": "the OpenAPI document of this server",
            "content": {"application/json": {"schema": {"type": "object",
                                                        "required": ["openapi", "info", "paths"]}}}}}),
        v1: _get("tfServingModelStatus", status[0], v1_tag, {"200": _ok(*status)}),
        f"{v1}/versions/1": _get("tfServingModelStatusVersion1", status[0], v1_tag, {"200": _ok(*status)}),
        f"{v1}/metadata": _get("tfServingModelMetadata", meta[0], v1_tag, {"200": _ok(*meta)}),
        f"{v1}/versions/1/metadata": _get("tfServingModelMetadataVersion1", meta[0], v1_tag, {"200": _ok(*meta)}),
        f"{v1}:predict": post(predict, "tfServingPredict"),
        f"{v1}/versions/1:predict": post(predict, "tfServingPredictVersion1"),
        "/v2": _get("v2ServerMetadata", "server metadata", v2_tag, {"200": _ok("the server", "V2ServerMetadata")}),
        "/v2/health/live": _get("v2ServerLive", "liveness", v2_tag, {"200": _ok("the server is live", "V2Live")}),
        "/v2/health/ready": _get("v2ServerReady", "readiness", v2_tag, {
            "200": _ok("the server is ready", "V2Ready"), "503": draining}),
        v2: _get("v2ModelMetadata", v2_meta[0], v2_tag, {"200": _ok(*v2_meta)}),
        f"{v2}/versions/1": _get("v2ModelMetadataVersion1", v2_meta[0], v2_tag, {"200": _ok(*v2_meta)}),
        f"{v2}/ready": _get("v2ModelReady", "model readiness", v2_tag, model_ready),
        f"{v2}/versions/1/ready": _get("v2ModelReadyVersion1", "model readiness", v2_tag, model_ready),
        f"{v2}/infer": post(infer, "v2ModelInfer"),
        f"{v2}/versions/1/infer": post(infer, "v2ModelInferVersion1"),
    }

    schemas = {"Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                         "properties": {"error": {"type": "string", "description": "what was wrong, in one line"}}}}
    schemas.update(_tensor_schemas())
    schemas.update(_v1_schemas(signatures, metadata))
    schemas.update(_v2_schemas(signatures))

    predict_body = {"required": True, "description": "a TF Serving predict request",
                    "content": {"application/json": {"schema": _ref("PredictRequest")}}}
    v1_examples = _v1_examples(signatures, metadata)
    if v1_examples:
        predict_body["content"]["application/json"]["examples"] = v1_examples
    infer_body = {"required": True, "description": "an inference request: JSON, or with the binary tensor "
                                                   "extension a JSON header followed by the tensors' bytes",
                  "content": {"application/json": {"schema": _ref("InferRequest")},
                              "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    v2_examples = _v2_examples(signatures, metadata)
    if v2_examples:
        infer_body["content"]["application/json"]["examples"] = v2_examples

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"toolkit serve: {name}",
            "version": "1",
            "description": f"The {task} model `{name}` ({runtime}) behind TensorFlow Serving's REST API, the Open "
                           "Inference Protocol v2 (KServe, Triton) and the toolkit's own task-level format "
                           f"(signature_name \"{TOOLKIT_SIGNATURE}\"). Every error is {{\"error\": \"one line\"}}; "
                           "any other path answers 404 and any other method 405 with Allow.",
        },
        "tags": [{"name": own_tag, "description": "health, metrics and this document"},
                 {"name": v1_tag, "description": "TensorFlow Serving's REST API"},
                 {"name": v2_tag, "description": "the Open Inference Protocol v2 of KServe and Triton"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "requestBodies": {"PredictRequest": predict_body, "InferRequest": infer_body},
            "responses": {
                "NotFound": _error("no such route, model or version (any path not listed here)"),
                "MethodNotAllowed": _error("a method the route does not take; `Allow` names the ones it does"),
            },
        },
    }
