"""`toolkit serve` against the clients of the protocols it speaks, for every task.

The acceptance test of the serving issue: `tritonclient.http` and plain `requests` with the examples of TF
Serving's REST documentation (api_rest.md) all get correct answers from the same `toolkit serve` for an image
classifier, a segmenter, a translator, a speech recogniser and a recommender.

The five tiny tasks (tests/reliability/tiny_tasks.py) are the session's shared baseline runs (trained once, for
this module, the gRPC tests and the fault tests), exported as SavedModel and ONNX. "Correct" is what the artifact
itself answers on the same inputs: a SavedModel signature called directly in TensorFlow
(`tf.saved_model.load(path).signatures[name](**tensors)`), the ONNX graph run by ONNX Runtime, and for
the toolkit's own format (`signature_name: "toolkit"`) the loaded model's `predict` — each laid out as the protocol
lays it out (TF Serving: `predictions` per instance, one object of named outputs per instance when there are
several, `outputs` for columnar requests; v2: named tensors with datatype and shape).
"""

import base64
import concurrent.futures
import glob
import io
import os
import sys
import tempfile
import threading

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
import tiny_tasks  # noqa: E402  (tests/reliability is not a package)

pytestmark = pytest.mark.slow  # trains five tiny models: `make test-fast` leaves this module out

NAME = "tiny"  # the model name in every URL
IMAGE_TASKS = ("image_classification", "segmentation")
V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
                "bool": "BOOL", "string": "BYTES"}


# ------------------------------------------------------------------ the five trained and exported tasks


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{task: export directory (saved_model/ and model.onnx)} of the five tiny tasks: the session's shared baseline
    runs (tiny_tasks.baseline, trained through `toolkit train` once for this module and the fault tests, two at a
    time); a task this machine cannot run maps to the reason."""

    def train(task):
        if tiny_tasks.available(task):
            return task, tiny_tasks.available(task)
        run = tiny_tasks.baseline(task, tmp_path_factory)
        assert run["rc"] == 0, run["stderr"][-3000:]
        return task, run["export"]

    longest_first = ["translation", "speech_recognition", "segmentation", "image_classification", "recommendation"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(pool.map(train, longest_first))


def export_of(exports, task):
    path_or_reason = exports[task]
    if not os.path.isdir(path_or_reason):  # a Debian package is missing (make test installs it as root)
        pytest.skip(f"{task} cannot run here: {path_or_reason}")
    return path_or_reason


@pytest.fixture(scope="module")
def servers(exports):
    """`server(task, runtime)`: one started `Server` per task and runtime for the whole module."""
    import toolkit
    from toolkit.serving import Server, resolve_model

    started = {}

    def server(task, runtime="saved_model"):
        if (task, runtime) not in started:
            model = toolkit.load(resolve_model(export_of(exports, task), runtime))
            started[task, runtime] = Server(model, name=NAME).start(port=0)
        return started[task, runtime]

    yield server
    for running in started.values():
        running.stop()


@pytest.fixture(scope="module")
def saved_models(exports):
    """`saved_model(task)`: the SavedModel loaded by TensorFlow itself, the reference of every answer."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops of the translator's graph)

    loaded = {}

    def saved_model(task):
        if task not in loaded:
            loaded[task] = tf.saved_model.load(os.path.join(export_of(exports, task), "saved_model"))
        return loaded[task]

    return saved_model


@pytest.fixture(scope="module")
def inputs(exports, servers):
    """`inputs(task)`: real inputs of each task, from the run's export samples (and its data for known ids)."""
    from PIL import Image

    from toolkit.data.audio_io import load_audio

    made = {}

    def of(task):
        if task in made:
            return made[task]
        samples = os.path.join(export_of(exports, task), "samples")
        data = {}
        if task in IMAGE_TASKS:
            data["pngs"] = []
            for path in sorted(glob.glob(os.path.join(samples, "*.png")))[:2]:
                with open(path, "rb") as f:
                    data["pngs"].append(f.read())
            images = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in data["pngs"]]
            assert len(images) == 2 and images[0].shape != images[1].shape  # two sizes: padding is exercised
            height, width = (min(i.shape[k] for i in images) for k in (0, 1))
            data["images"] = images
            data["pixels"] = np.stack([i[:height, :width] for i in images]).astype(np.uint8)  # [2, H, W, 3]
        elif task == "translation":
            with open(os.path.join(samples, "pairs.tsv"), encoding="utf-8") as f:
                data["sentences"] = [line.split("\t")[0] for line in f.read().splitlines() if line.strip()][:2]
            data["token_ids"] = {"encoder_token_ids": np.array([[5, 9, 7, 3], [6, 8, 3, 0]], np.int32),
                                 "decoder_token_ids": np.array([[2, 5, 6], [2, 7, 7]], np.int32)}
        elif task == "speech_recognition":
            rate = int(servers(task).model.metadata["sample_rate"])
            waves = [load_audio(path, rate) for path in sorted(glob.glob(os.path.join(samples, "*.wav")))[:2]]
            longest = max(len(w) for w in waves)
            data["waves"] = waves
            data["padded"] = np.stack([np.pad(w, (0, longest - len(w))) for w in waves]).astype(np.float32)
            data["lengths"] = np.array([len(w) for w in waves], np.int32)
            data["features"] = np.random.default_rng(0).standard_normal((2, 24, 40)).astype(np.float32)
        elif task == "recommendation":
            with open(os.path.join(samples, "pairs.tsv"), encoding="utf-8") as f:
                rows = [line.split("\t") for line in f.read().splitlines()[1:] if line.strip()]
            data["users"] = [row[0] for row in rows[:3]]
            data["items"] = [row[1] for row in rows[:3]]
            known = servers(task).model.metadata
            assert set(data["users"]) <= set(known["user_ids"]) and set(data["items"]) <= set(known["item_ids"])
        made[task] = data
        return data

    return of


# ------------------------------------------------------------------ references and comparisons


def b64(data):
    return base64.b64encode(data).decode("ascii")


def strings(values):
    return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=object)


def call_signature(saved_model, signature, feeds):
    """Named outputs (NumPy) of a SavedModel signature called directly in TensorFlow."""
    import tensorflow as tf

    function = saved_model.signatures[signature]
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def as_json(value):
    """An output as TF Serving writes it in JSON: strings as UTF-8 text, numbers and booleans as they are."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def tf_serving_answer(outputs, columnar):
    """TF Serving's REST response of named outputs: row format, one value per instance (one object of named
    outputs per instance when there are several); columnar, the value or an object of named values."""
    values = {k: as_json(v) for k, v in outputs.items()}
    if columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    rows = len(next(iter(values.values())))
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(rows)]}


def assert_same(actual, expected, where="answer"):
    """JSON `actual` equals `expected`: same structure, keys, strings, booleans and integers; floats to float32
    rounding."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {str(actual)[:200]}"
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {str(actual)[:200]}"
        numbers = np.asarray(expected, dtype=object)
        if numbers.size and all(isinstance(x, (int, float)) for x in numbers.ravel()):
            got = np.asarray(actual, dtype=object)
            assert got.shape == numbers.shape, f"{where}: shape {got.shape} != {numbers.shape}"
            assert [type(x) is bool for x in got.ravel()] == [type(x) is bool for x in numbers.ravel()], where
            np.testing.assert_allclose(got.astype(np.float64), numbers.astype(np.float64), rtol=1e-5, atol=1e-6,
                                       err_msg=where)
            return
        assert len(actual) == len(expected), f"{where}: {len(actual)} values, expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
        return
    if isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6), f"{where}: {actual} != {expected}"
        return
    assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_arrays(actual, expected, where):
    """A client's NumPy array equals the reference: strings as bytes, numbers to float32 rounding."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "OS":
        as_bytes = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in actual.ravel()]
        assert as_bytes == list(expected.ravel()), f"{where}: {as_bytes[:6]} != {list(expected.ravel())[:6]}"
    elif expected.dtype.kind in "fc":
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
        np.testing.assert_array_equal(actual, expected, err_msg=where)


def post(session, server, payload, path=None):
    answer = session.post(f"{server.url}{path or f'/v1/models/{NAME}:predict'}", json=payload, timeout=120)
    assert answer.status_code == 200, f"{payload if len(str(payload)) < 300 else ''} -> {answer.text[:500]}"
    return answer.json()


# ------------------------------------------------------------------ TF Serving REST, with plain requests


def rest_requests(task, data):
    """(what, request body, signature, feeds, columnar): the request shapes of TF Serving's api_rest.md for each
    task, with the tensors the signature gets from them."""
    if task in IMAGE_TASKS:
        pngs, pixels = data["pngs"], data["pixels"]
        image_bytes = {"image_bytes": np.array(pngs, dtype=object)}
        return [
            ("row, the only input, b64", {"instances": [{"b64": b64(p)} for p in pngs]},
             "serving_default", image_bytes, False),
            ("row, named input", {"instances": [{"image_bytes": {"b64": b64(p)}} for p in pngs]},
             "serving_default", image_bytes, False),
            ("columnar, named input", {"inputs": {"image_bytes": [{"b64": b64(p)} for p in pngs]}},
             "serving_default", image_bytes, True),
            ("columnar, the only input", {"inputs": [{"b64": b64(p)} for p in pngs]},
             "serving_default", image_bytes, True),
            ("row, uint8 pixels, signature_name", {"signature_name": "serve_image", "instances": pixels.tolist()},
             "serve_image", {"images": pixels}, False),
            ("columnar, uint8 pixels, signature_name",
             {"signature_name": "serve_image", "inputs": {"images": pixels[:1].tolist()}},
             "serve_image", {"images": pixels[:1]}, True),
        ]
    if task == "translation":
        sentences, ids = data["sentences"], data["token_ids"]
        text = {"text": strings(sentences)}
        return [
            ("row, the only input", {"instances": sentences}, "serving_default", text, False),
            ("row, named input, signature_name", {"signature_name": "translate",
                                                  "instances": [{"text": s} for s in sentences]},
             "translate", text, False),
            ("columnar, named input", {"inputs": {"text": sentences}}, "serving_default", text, True),
            ("row, b64 of a string input", {"instances": [{"b64": b64(s.encode("utf-8"))} for s in sentences]},
             "serving_default", text, False),
            ("row, two named int inputs, signature_name",
             {"signature_name": "logits", "instances": [{k: v[i].tolist() for k, v in ids.items()} for i in range(2)]},
             "logits", ids, False),
        ]
    if task == "speech_recognition":
        padded, lengths = data["padded"], data["lengths"]
        feeds = {"waveform": padded, "lengths": lengths}
        rows = [{"waveform": padded[i].tolist(), "lengths": int(lengths[i])} for i in range(len(lengths))]
        return [
            ("row, named inputs", {"instances": rows}, "serving_default", feeds, False),
            ("columnar, named inputs", {"inputs": {"waveform": padded.tolist(), "lengths": lengths.tolist()}},
             "serving_default", feeds, True),
            ("row, signature_name", {"signature_name": "transcribe", "instances": rows[:1]},
             "transcribe", {"waveform": padded[:1], "lengths": lengths[:1]}, False),
            ("columnar, float features, signature_name",
             {"signature_name": "logits", "inputs": {"features": data["features"].tolist()}},
             "logits", {"features": data["features"]}, True),
            ("row, the only input, signature_name",
             {"signature_name": "logits", "instances": data["features"].tolist()},
             "logits", {"features": data["features"]}, False),
        ]
    users, items = data["users"], data["items"]
    return [
        ("columnar with a scalar k", {"inputs": {"user_id": users, "k": 3}},
         "serving_default", {"user_id": strings(users), "k": np.array(3, np.int32)}, True),
        ("columnar, signature_name", {"signature_name": "recommend", "inputs": {"user_id": users[:1], "k": 2}},
         "recommend", {"user_id": strings(users[:1]), "k": np.array(2, np.int32)}, True),
        ("row, named inputs, signature_name",
         {"signature_name": "score", "instances": [{"user_id": u, "item_id": i} for u, i in zip(users, items)]},
         "score", {"user_id": strings(users), "item_id": strings(items)}, False),
        ("columnar, named inputs, signature_name",
         {"signature_name": "score", "inputs": {"user_id": users, "item_id": items}},
         "score", {"user_id": strings(users), "item_id": strings(items)}, True),
    ]


@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_tf_serving_rest_requests_get_the_signatures_answers(task, servers, saved_models, inputs):
    import requests

    server, reference = servers(task), saved_models(task)
    with requests.Session() as session:
        for what, payload, signature, feeds, columnar in rest_requests(task, inputs(task)):
            expected = tf_serving_answer(call_signature(reference, signature, feeds), columnar)
            assert_same(post(session, server, payload), expected, f"{task}, {what}")
            versioned = post(session, server, payload, f"/v1/models/{NAME}/versions/1:predict")
            assert_same(versioned, expected, f"{task}, {what}, /versions/1")


def _datatype_name(dtype):
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _dims(shape):
    return None if shape.rank is None else [-1 if d is None else int(d) for d in shape.as_list()]


@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_tf_serving_status_and_metadata_describe_every_signature(task, servers, saved_models):
    import requests

    server, reference = servers(task), saved_models(task)
    available = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                           "status": {"error_code": "OK", "error_message": ""}}]}
    for path in (f"/v1/models/{NAME}", f"/v1/models/{NAME}/versions/1"):
        answer = requests.get(server.url + path, timeout=30)
        assert answer.status_code == 200 and answer.json() == available, (path, answer.text[:300])
    answer = requests.get(f"{server.url}/v1/models/{NAME}/metadata", timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    metadata = answer.json()
    assert metadata["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    described = metadata["metadata"]["signature_def"]["signature_def"]
    assert sorted(described) == sorted(reference.signatures.keys())
    for name, function in reference.signatures.items():
        tensors = {"inputs": function.structured_input_signature[1], "outputs": function.structured_outputs}
        for side, specs in tensors.items():
            got = described[name][side]
            assert sorted(got) == sorted(specs), (name, side)
            for key, spec in specs.items():
                assert got[key]["dtype"] == _datatype_name(spec.dtype), (name, side, key)
                dims = [int(d["size"]) for d in got[key]["tensor_shape"].get("dim", [])]
                assert dims == _dims(spec.shape), (name, side, key, dims)


# ------------------------------------------------------------------ Open Inference Protocol v2, with tritonclient


def triton_requests(task, data):
    """(signature, feeds, JSON allowed): v2 requests of each task. tritonclient sends BYTES as JSON text only, so
    encoded images go as binary tensors only."""
    if task in IMAGE_TASKS:
        return [("serving_default", {"image_bytes": np.array(data["pngs"], dtype=object)}, False),
                ("serve_image", {"images": data["pixels"]}, True)]
    if task == "translation":
        return [("serving_default", {"text": strings(data["sentences"])}, True),
                ("logits", data["token_ids"], True)]
    if task == "speech_recognition":
        return [("serving_default", {"waveform": data["padded"], "lengths": data["lengths"]}, True),
                ("logits", {"features": data["features"]}, True)]
    users, items = strings(data["users"]), strings(data["items"])
    return [("serving_default", {"user_id": users, "k": np.array(3, np.int32)}, True),
            ("score", {"user_id": users, "item_id": items}, True)]


def triton_infer(client, feeds, binary, outputs=None, signature=None, request_id=""):
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in feeds.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    requested = None if outputs is None else [httpclient.InferRequestedOutput(n, binary_data=binary)
                                              for n in outputs]
    parameters = {"signature_name": signature} if signature and signature != "serving_default" else None
    return client.infer(NAME, tensors, outputs=requested, request_id=request_id, parameters=parameters)


def assert_v2_result(result, expected, where):
    response = result.get_response()
    assert response["model_name"] == NAME, where
    assert sorted(o["name"] for o in response["outputs"]) == sorted(expected), where
    for name, value in expected.items():
        output = result.get_output(name)
        assert output["shape"] == list(np.shape(value)), f"{where}: {name} shape"
        kind = "string" if np.asarray(value).dtype.kind in "OS" else np.asarray(value).dtype.name
        assert output["datatype"] == V2_DATATYPES[kind], f"{where}: {name} datatype"
        assert_arrays(result.as_numpy(name), value, f"{where}: {name}")


@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_tritonclient_gets_the_signatures_answers(task, servers, saved_models, inputs):
    import tritonclient.http as httpclient

    server, reference = servers(task), saved_models(task)
    client = httpclient.InferenceServerClient(server.url[len("http://"):])
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
        assert not client.is_model_ready("not_served")
        metadata = client.get_model_metadata(NAME)
        default = reference.signatures["serving_default"]
        assert metadata["name"] == NAME and metadata["platform"] == "tensorflow_savedmodel"
        for side, specs in (("inputs", default.structured_input_signature[1]),
                            ("outputs", default.structured_outputs)):
            described = {t["name"]: t for t in metadata[side]}
            assert sorted(described) == sorted(specs), side
            for key, spec in specs.items():
                assert described[key]["datatype"] == V2_DATATYPES[spec.dtype.name], (side, key)
                assert described[key]["shape"] == _dims(spec.shape), (side, key)
        for signature, feeds, json_ok in triton_requests(task, inputs(task)):
            expected = call_signature(reference, signature, feeds)
            for binary in (True, False) if json_ok else (True,):
                where = f"{task}, {signature}, binary_data={binary}"
                result = triton_infer(client, feeds, binary, list(expected), signature, request_id="r-42")
                assert result.get_response().get("id") == "r-42", where
                assert_v2_result(result, expected, where)
            # no outputs named: every output, binary (tritonclient asks for binary_data_output)
            assert_v2_result(triton_infer(client, feeds, True, signature=signature), expected,
                             f"{task}, {signature}, every output")
            # one output of several, JSON and binary mixed
            if len(expected) > 1:
                first, second = sorted(expected)[:2]
                result = triton_infer(client, feeds, True, [first], signature)
                assert_v2_result(result, {first: expected[first]}, f"{task}, {signature}, only {first}")
    finally:
        client.close()


def test_v2_health_and_server_metadata(servers):
    import requests
    import tritonclient.http as httpclient

    server = servers("recommendation")
    for path, expected in (("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True}),
                           (f"/v2/models/{NAME}/ready", None), (f"/v2/models/{NAME}/versions/1/ready", None)):
        answer = requests.get(server.url + path, timeout=30)
        assert answer.status_code == 200, (path, answer.text[:300])
        if expected:
            assert answer.json() == expected, path
    assert requests.get(f"{server.url}/v2/models/not_served/ready", timeout=30).status_code == 404
    versioned = requests.get(f"{server.url}/v2/models/{NAME}/versions/1", timeout=30)
    assert versioned.status_code == 200 and versioned.json()["name"] == NAME
    # the protocol's server metadata: GET v2 -> {"name", "version", "extensions"}
    answer = requests.get(f"{server.url}/v2", timeout=30)
    assert answer.status_code == 200, f"GET /v2 -> {answer.status_code} {answer.text[:300]}"
    assert {"name", "version", "extensions"} <= set(answer.json())
    client = httpclient.InferenceServerClient(server.url[len("http://"):])
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    finally:
        client.close()


# ------------------------------------------------------------------ the ONNX graph over both protocols


def onnx_feeds(session):
    """Inputs of an ONNX graph from its own input specs: a batch of 2, 8 along other free axes; small ids for
    integer inputs (token ids, user and item indices)."""
    rng = np.random.default_rng(1)
    feeds = {}
    for tensor in session.get_inputs():
        shape = [2 if axis == 0 else (d if isinstance(d, int) and d > 0 else 8) for axis, d in enumerate(tensor.shape)]
        if tensor.type == "tensor(float)":
            feeds[tensor.name] = rng.uniform(0, 1, shape).astype(np.float32)
        else:
            assert tensor.type == "tensor(int32)", tensor.type
            feeds[tensor.name] = rng.integers(0, 3, shape).astype(np.int32)
    return feeds


@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_onnx_graph_over_tf_serving_rest_and_v2(task, exports, servers):
    import onnxruntime
    import requests
    import tritonclient.http as httpclient

    server = servers(task, "onnx")
    session = onnxruntime.InferenceSession(os.path.join(export_of(exports, task), "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    feeds = onnx_feeds(session)
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(names, feeds)))
    if len(feeds) == 1:
        row = {"instances": next(iter(feeds.values())).tolist()}
    else:
        row = {"instances": [{k: v[i].tolist() for k, v in feeds.items()} for i in range(2)]}
    with requests.Session() as http:
        assert_same(post(http, server, row), tf_serving_answer(expected, False), f"{task} onnx, row")
        columnar = {"inputs": {k: v.tolist() for k, v in feeds.items()}}
        assert_same(post(http, server, columnar), tf_serving_answer(expected, True), f"{task} onnx, columnar")
        metadata = http.get(f"{server.url}/v1/models/{NAME}/metadata", timeout=30).json()
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert sorted(signature["inputs"]) == sorted(feeds) and sorted(signature["outputs"]) == sorted(names)
    client = httpclient.InferenceServerClient(server.url[len("http://"):])
    try:
        assert client.is_model_ready(NAME)
        metadata = client.get_model_metadata(NAME)
        assert metadata["platform"] == "onnxruntime_onnx"
        assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [
            (i.name, V2_DATATYPES[{"tensor(float)": "float32", "tensor(int32)": "int32"}[i.type]])
            for i in session.get_inputs()]
        for binary in (True, False):
            assert_v2_result(triton_infer(client, feeds, binary, names), expected, f"{task} onnx, binary={binary}")
    finally:
        client.close()


# ------------------------------------------------------------------ the toolkit's own format on both runtimes


def toolkit_requests(task, data):
    """[(instances, the task inputs `predict` takes)] of the toolkit format."""
    if task in IMAGE_TASKS:
        return [([{"b64": b64(data["pngs"][0])}, data["images"][1].tolist()], data["images"])]
    if task == "translation":
        return [(data["sentences"], data["sentences"])]
    if task == "speech_recognition":
        return [([w.tolist() for w in data["waves"]], data["waves"])]
    pairs = [{"user": u, "item": i} for u, i in zip(data["users"], data["items"])]
    return [(data["users"], data["users"]), (pairs, pairs)]


def comparable(result, output_dir=None):
    """A prediction without what differs between two runs of it (the input's name, the timing) and with each
    written image (a local path, or {"b64": PNG} from the server) as its pixels."""
    from PIL import Image

    answer = {}
    for key, value in result.items():
        if key in ("input", "realtime_factor"):
            continue
        if isinstance(value, dict) and set(value) == {"b64"}:
            value = np.asarray(Image.open(io.BytesIO(base64.b64decode(value["b64"])))).tolist()
        elif isinstance(value, str) and output_dir and value.startswith(output_dir):
            if not value.endswith(".png"):
                continue  # the server drops written files other than images (their JSON is the answer)
            value = np.asarray(Image.open(value)).tolist()
        answer[key] = value
    return answer


@pytest.mark.parametrize("runtime", ["saved_model", "onnx"])
@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_toolkit_signature_answers_like_predict(task, runtime, servers, inputs):
    import requests

    server = servers(task, runtime)
    with requests.Session() as http, tempfile.TemporaryDirectory() as output_dir:
        for instances, task_inputs in toolkit_requests(task, inputs(task)):
            direct = server.model.predict(list(task_inputs), output_dir=output_dir)
            expected = [comparable(r, output_dir) for r in direct]
            answer = post(http, server, {"signature_name": "toolkit", "instances": instances})
            assert sorted(answer) == ["predictions"]
            assert_same([comparable(r) for r in answer["predictions"]], expected, f"{task} {runtime} toolkit")
            answer = post(http, server, {"signature_name": "toolkit", "inputs": instances})
            assert sorted(answer) == ["outputs"]
            assert_same([comparable(r) for r in answer["outputs"]], expected, f"{task} {runtime} toolkit, columnar")


# ------------------------------------------------------------------ micro-batching never changes an answer


@pytest.mark.parametrize("task", ["image_classification", "segmentation", "translation"])
def test_requests_batched_together_get_the_answers_they_get_alone(task, servers, saved_models, inputs):
    """Two clients at once, each with one input of a different size (image, sentence): the server runs them in
    one model call, and each still gets exactly what the signature answers for its request alone."""
    import requests

    from toolkit.serving import Server

    data = inputs(task)
    if task in IMAGE_TASKS:
        bodies = [{"instances": [{"b64": b64(png)}]} for png in data["pngs"]]
        feeds = [{"image_bytes": np.array([png], dtype=object)} for png in data["pngs"]]
    else:
        bodies = [{"instances": [s]} for s in data["sentences"]]
        feeds = [{"text": strings([s])} for s in data["sentences"]]
    expected = [tf_serving_answer(call_signature(saved_models(task), "serving_default", f), False) for f in feeds]
    server = Server(servers(task).model, name=NAME, batch_timeout_ms=3000).start(port=0)
    try:
        barrier = threading.Barrier(len(bodies))

        def send(payload):
            barrier.wait()
            return requests.post(f"{server.url}/v1/models/{NAME}:predict", json=payload, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(send, bodies))
        # Both requests ran in one model call, except the segmenter's: its serving_default pads every answer to
        # the largest image of the call, so requests with encoded images run alone (signatures.batch_key).
        assert server.batcher.batches == (2 if task == "segmentation" else 1)
        for i, (answer, want) in enumerate(zip(answers, expected)):
            assert answer.status_code == 200, answer.text[:300]
            assert_same(answer.json(), want, f"{task}, request {i} batched with another")
    finally:
        server.stop()


# ------------------------------------------------------------------ TF Serving gRPC, with tensorflow-serving-api's stub


@pytest.mark.parametrize("task", tiny_tasks.TASKS)
def test_tf_serving_grpc_stub_gets_the_signatures_answers(task, servers, saved_models, inputs):
    """The same feeds as the v2 test, through `tensorflow-serving-api`'s PredictionService stub on --grpc-port:
    every output equals the signature called in TensorFlow; GetModelMetadata lists every signature."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    from toolkit.serving.grpc_service import start_grpc, stop_grpc

    server, reference = servers(task), saved_models(task)
    grpc_server = start_grpc(server, port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            request.model_spec.name = NAME
            signatures = get_model_metadata_pb2.SignatureDefMap()
            stub.GetModelMetadata(request, timeout=60).metadata["signature_def"].Unpack(signatures)
            assert sorted(signatures.signature_def) == sorted(reference.signatures.keys())
            for signature, feeds, _ in triton_requests(task, inputs(task)):
                expected = call_signature(reference, signature, feeds)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = NAME
                request.model_spec.signature_name = signature
                for key, value in feeds.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                answer = stub.Predict(request, timeout=120)
                assert sorted(answer.outputs) == sorted(expected), (task, signature)
                for key, value in expected.items():
                    assert_arrays(tf.make_ndarray(answer.outputs[key]), value, f"{task}, {signature}, {key} (gRPC)")
    finally:
        stop_grpc(grpc_server, 5)
