"""`GET /openapi.json` of `toolkit serve`: the document is valid OpenAPI and describes this model's routes and request
formats; its request examples are answered 200 as documented; other methods and paths get the documented 405 and
404; and a schemathesis fuzz of every route against a live server (SavedModel and ONNX) gets no 5xx, only documented
status codes and content types, and answers that match the documented schemas."""

import copy
import http.client
import json
import os
import subprocess
import sys
import types
import urllib.parse
import urllib.request

import pytest

from toolkit.serving import Server, resolve_model
from toolkit.serving.openapi import V2_DATATYPES, openapi
from toolkit.serving.signatures import V2_TO_DT

from conftest import REPO

pytestmark = pytest.mark.slow  # serves the session's trained model: `make test-fast` leaves this module out

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

RUNTIMES = ["saved_model", "onnx"]
NAME = "m"
FUZZ_EXAMPLES = 25  # generated requests per POST operation and runtime (a GET route without parameters: one)
OPERATIONS = [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
              ("GET", f"/v1/models/{NAME}"), ("GET", f"/v1/models/{NAME}/versions/1"),
              ("GET", f"/v1/models/{NAME}/metadata"), ("GET", f"/v1/models/{NAME}/versions/1/metadata"),
              ("POST", f"/v1/models/{NAME}:predict"), ("POST", f"/v1/models/{NAME}/versions/1:predict"),
              ("GET", "/v2"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"),
              ("GET", f"/v2/models/{NAME}"), ("GET", f"/v2/models/{NAME}/versions/1"),
              ("GET", f"/v2/models/{NAME}/ready"), ("GET", f"/v2/models/{NAME}/versions/1/ready"),
              ("POST", f"/v2/models/{NAME}/infer"), ("POST", f"/v2/models/{NAME}/versions/1/infer")]
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance"]


@pytest.fixture(scope="module", params=RUNTIMES)
def live_server(request, trained_run):
    from toolkit.inference import load

    model = load(resolve_model(os.path.join(trained_run["run_dir"], "export"), request.param))
    server = Server(model, name=NAME, max_batch_size=8, batch_timeout_ms=1).start(port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(live_server):
    """The live server's document, loaded by schemathesis (which requests go to that server)."""
    return schemathesis.openapi.from_url(live_server.url + "/openapi.json")


def check_functions(*names):
    from schemathesis import checks

    return [getattr(checks, name) for name in names]


def test_the_document_is_valid_openapi_for_this_model(live_server):
    with urllib.request.urlopen(live_server.url + "/openapi.json", timeout=60) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
        doc = json.loads(answer.read())
    assert doc == json.loads(json.dumps(openapi(live_server)))
    schemathesis.openapi.from_dict(copy.deepcopy(doc)).validate()  # the OpenAPI 3.0 meta-schema
    broken = copy.deepcopy(doc)
    broken["paths"]["/healthz"]["get"]["responses"] = {"two hundred": {"description": "ok"}}
    with pytest.raises(ValueError):  # the validator does look (jsonschema_rs.ValidationError)
        schemathesis.openapi.from_dict(broken).validate()
    try:
        from openapi_spec_validator import validate
    except ImportError:
        pass
    else:
        validate(copy.deepcopy(doc))

    paths = doc["paths"]
    assert sorted((m.upper(), p) for p, item in paths.items() for m in item) == sorted(OPERATIONS)
    for path, item in paths.items():
        method = "post" if path.endswith((":predict", "/infer")) else "get"
        codes = set(item[method]["responses"])
        assert "200" in codes and not codes & {"500", "default"}, path
        if method == "post":
            assert codes == {"200", "400", "413", "415", "503"}, path
        for code, response in item[method]["responses"].items():
            if code != "200":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"] and schemas["Error"]["properties"]["error"]["type"] == "string"
    signatures = live_server.signatures.signatures
    names = sorted(signatures)
    assert schemas["RowPredictRequest"]["properties"]["signature_name"]["enum"] == names + ["toolkit"]
    assert schemas["ColumnarPredictRequest"]["properties"]["signature_name"]["enum"] == names + ["toolkit"]
    assert schemas["PredictRequest"]["oneOf"] == [{"$ref": "#/components/schemas/RowPredictRequest"},
                                                  {"$ref": "#/components/schemas/ColumnarPredictRequest"}]
    tensor = schemas["InferInputTensor"]["properties"]
    assert tensor["datatype"]["enum"] == V2_DATATYPES and sorted(V2_DATATYPES) == sorted(V2_TO_DT)
    assert tensor["name"]["enum"] == sorted({k for s in signatures.values() for k in s["inputs"]})
    assert schemas["InferRequest"]["properties"]["parameters"]["properties"]["signature_name"]["enum"] == names


def test_every_request_example_is_answered_200_as_documented(api_schema):
    """The examples in the document are real requests: each runs the model (both request formats, every
    signature, the toolkit format) and its answer matches the documented schema."""
    bodies = api_schema.raw_schema["components"]["requestBodies"]
    answered = []
    for path, body in ((f"/v1/models/{NAME}:predict", "PredictRequest"), (f"/v2/models/{NAME}/infer", "InferRequest")):
        operation = api_schema[path]["POST"]
        for label, example in bodies[body]["content"]["application/json"]["examples"].items():
            case = operation.Case(body=example["value"], media_type="application/json")
            response = case.call_and_validate(checks=check_functions(*CHECKS), timeout=60)
            assert response.status_code == 200, (label, response.text[:300])
            answered.append(next(iter(response.json())))
    assert {"predictions", "outputs", "model_name"} <= set(answered)


def test_other_methods_and_paths_get_the_documented_405_and_404(live_server):
    """What the document leaves out: any other method of a route is a 405 naming the allowed ones, any other path
    a 404; both with the JSON error body."""
    host, port = live_server.address

    def ask(method, path):
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request(method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
            answer = connection.getresponse()
            return answer.status, answer.headers.get("Allow"), json.loads(answer.read())
        finally:
            connection.close()

    for method, path in OPERATIONS:
        for other in ("POST", "PUT", "DELETE", "PATCH") if method == "GET" else ("GET", "PUT", "DELETE"):
            status, allow, body = ask(other, path)
            assert status == 405 and method in allow.split(", ") and set(body) == {"error"}, (other, path)
    for path in ("/", "/v1/models/other:predict", f"/v1/models/{NAME}:classify",
                 f"/v1/models/{NAME}/versions/2/metadata", f"/v2/models/{NAME}/versions/2/infer",
                 "/v2/models/other/ready", f"/v2/models/{NAME}/explain"):
        status, _, body = ask("GET", path)
        assert status == 404 and set(body) == {"error"}, path


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_get_documented_answers_and_never_a_5xx(api_schema, method, path):
    """Schema-valid and schema-violating requests (schemathesis' positive and negative modes), a bounded,
    derandomized number per operation: every answer has a documented status code and content type, is JSON of the
    documented schema, and is never a 5xx."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    operation = api_schema[path][method]
    checks = check_functions(*CHECKS)
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    statuses = []

    @hypothesis.given(case=strategy)
    @hypothesis.settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def fuzz(case):
        statuses.append(case.call_and_validate(checks=checks, timeout=60).status_code)

    fuzz()
    assert statuses


TENSOR = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
FOUND_BY_FUZZING = {  # requests a longer fuzz run made the server answer 500: each is a bad request, a 400
    "parameters not an object": {"parameters": [1], "inputs": [TENSOR]},
    "parameters a string": {"parameters": "fast", "inputs": [TENSOR]},
    "tensor parameters not an object": {"inputs": [dict(TENSOR, parameters=[1])]},
    "output parameters not an object": {"inputs": [TENSOR], "outputs": [{"name": "OUTPUT", "parameters": [1]}]},
    "no values, a dimension past int64": {"inputs": [dict(TENSOR, shape=[0, 2 ** 63], data=[])]},
    "no values, dimensions overflowing int64": {"inputs": [dict(TENSOR, shape=[2 ** 32, 2 ** 32], data=[])]},
}


@pytest.mark.parametrize("label", list(FOUND_BY_FUZZING))
def test_requests_found_by_fuzzing_get_documented_400s(api_schema, live_server, label):
    body = json.loads(json.dumps(FOUND_BY_FUZZING[label]).replace("OUTPUT", next(iter(
        live_server.signatures.signatures["serving_default"]["outputs"]))))
    case = api_schema[f"/v2/models/{NAME}/infer"]["POST"].Case(body=body, media_type="application/json")
    response = case.call_and_validate(checks=check_functions(*CHECKS), timeout=60)
    assert response.status_code == 400 and set(response.json()) == {"error"}


def test_the_document_is_a_pure_function_of_the_signatures():
    """No runtime is imported, and any signatures give a valid document: an ONNX-like recommender served under a
    name that needs escaping, and a signature of unknown rank and dtype (no example then)."""
    code = """if True:
        import json, sys, types
        from toolkit.serving.openapi import openapi
        signatures = types.SimpleNamespace(signatures={"serving_default": {
            "inputs": {"user": ("DT_INT32", [-1]), "item": ("DT_INT32", [-1])},
            "outputs": {"Identity:0": ("DT_FLOAT", [-1])}}})
        model = types.SimpleNamespace(metadata={"task": "recommendation", "input": "user", "user_ids": ["u7"]},
                                      runtime="onnx")
        doc = openapi(types.SimpleNamespace(name="my model{1}", signatures=signatures, model=model))
        assert not {"tensorflow", "onnxruntime", "keras"} & set(sys.modules), sorted(sys.modules)
        print(json.dumps(doc))
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads(result.stdout)
    schemathesis.openapi.from_dict(doc).validate()
    model = urllib.parse.quote("my model{1}", safe="")
    assert {f"/v1/models/{model}:predict", f"/v2/models/{model}/infer"} <= set(doc["paths"])
    assert all("{" not in path for path in doc["paths"])
    examples = doc["components"]["requestBodies"]["PredictRequest"]["content"]["application/json"]["examples"]
    assert examples["toolkit"]["value"] == {"signature_name": "toolkit", "instances": ["u7"]}
    assert examples["serving_default_columns"]["value"] == {"signature_name": "serving_default",
                                                            "inputs": {"user": [1], "item": [1]}}
    assert "UserItemPair" in doc["components"]["schemas"]

    signatures = types.SimpleNamespace(signatures={"serving_default": {
        "inputs": {"x": ("DT_FLOAT", None), "y": ("DT_BFLOAT16", [-1])}, "outputs": {"z": ("DT_FLOAT", None)}}})
    doc = openapi(types.SimpleNamespace(name="n", signatures=signatures,
                                        model=types.SimpleNamespace(metadata={}, runtime="saved_model")))
    schemathesis.openapi.from_dict(json.loads(json.dumps(doc))).validate()
    assert "examples" not in doc["components"]["requestBodies"]["InferRequest"]["content"]["application/json"]
