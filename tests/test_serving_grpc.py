"""`toolkit serve`'s TensorFlow Serving gRPC API (`toolkit.serving.grpc_service`), driven by TF Serving's own
client stubs (`tensorflow-serving-api`) over loopback: Predict on every signature gives what calling the
SavedModel's signature in TensorFlow gives (and the ONNX graph what onnxruntime gives), GetModelMetadata sends the
SavedModel's SignatureDefs, errors are TF Serving's status codes with one path-free line, and input TensorProtos are
checked against the request budget before anything is allocated."""

import io
import os
import sys
import threading

import numpy as np
import pytest

from conftest import REPO, run_cli

if os.path.join(REPO, "tests", "reliability") not in sys.path:
    sys.path.append(os.path.join(REPO, "tests", "reliability"))
import tiny_tasks  # noqa: E402

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

import grpc  # noqa: E402 - setup.cfg installs both (tensorflow-serving-api)
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def png_bytes(array):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def images(count, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 255, (32, 32, 3)).astype(np.uint8) for _ in range(count)]


def proto(value, dtype=None):
    import tensorflow as tf

    return tf.make_tensor_proto(value, dtype=dtype)


def ndarray(tensor):
    import tensorflow as tf

    return tf.make_ndarray(tensor)


def request(name="tiny", signature=None, **inputs):
    message = predict_pb2.PredictRequest()
    message.model_spec.name = name
    if signature:
        message.model_spec.signature_name = signature
    for key, value in inputs.items():
        message.inputs[key].CopyFrom(value if not isinstance(value, (np.ndarray, list)) else proto(value))
    return message


def refused(call, *args):
    """(code, details) of an RPC that must fail."""
    with pytest.raises(grpc.RpcError) as error:
        call(*args, timeout=60)
    return error.value.code(), error.value.details()


class Served:
    """One Server with HTTP and gRPC started, and the client stubs of its gRPC port."""

    def __init__(self, path, name, **options):
        from toolkit.inference import load
        from toolkit.serving.grpc_service import start_grpc
        from toolkit.serving.server import Server

        self.path = path
        self.server = Server(load(path), name=name, **options).start(port=0)
        self.grpc = start_grpc(self.server, port=0)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc.port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self):
        from toolkit.serving.grpc_service import stop_grpc

        self.channel.close()
        stop_grpc(self.grpc, 5)
        self.server.stop()


@pytest.fixture(scope="module")
def served(trained_run):
    """The tiny image classifier's SavedModel and ONNX exports, each behind its own server."""
    export = os.path.join(trained_run["run_dir"], "export")
    servers = {"saved_model": Served(os.path.join(export, "saved_model"), "tiny", batch_timeout_ms=20),
               "onnx": Served(os.path.join(export, "model.onnx"), "tiny", batch_timeout_ms=20)}
    yield servers
    for each in servers.values():
        each.close()


@pytest.fixture(scope="module")
def other_tasks(tmp_path_factory):
    """SavedModels of a recommender and a translator: the session's shared tiny baseline runs (tiny_tasks.baseline,
    trained through the CLI once for this module, the protocol tests and the fault tests)."""
    paths = {}
    for task in ("recommendation", "translation"):
        run = tiny_tasks.baseline(task, tmp_path_factory)
        assert run["rc"] == 0, run["stderr"][-3000:]
        paths[task] = os.path.join(run["export"], "saved_model")
    return paths


def test_predict_gives_what_the_saved_model_signatures_give(served):
    import tensorflow as tf

    model = served["saved_model"]
    pictures = images(3)
    encoded = [png_bytes(p) for p in pictures]
    answer = model.predict.Predict(request(image_bytes=proto(encoded, tf.string)), timeout=60)
    assert (answer.model_spec.name, answer.model_spec.version.value, answer.model_spec.signature_name) == \
        ("tiny", 1, "serving_default")
    outputs = {k: ndarray(v) for k, v in answer.outputs.items()}
    signatures = tf.saved_model.load(model.path).signatures
    direct = {k: v.numpy() for k, v in signatures["serving_default"](image_bytes=tf.constant(encoded)).items()}
    assert set(outputs) == set(direct) == {"probabilities", "top_k_indices", "top_k_classes", "top_k_probabilities"}
    for key, value in direct.items():
        assert outputs[key].dtype == value.dtype and outputs[key].shape == value.shape, key
        if value.dtype.kind == "f":
            np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(outputs[key], value)
    assert set(outputs["top_k_classes"].ravel()) == {b"red", b"green", b"blue"}

    # Another signature, uint8 pixels in tensor_content; output_filter keeps only what is asked for.
    message = request(signature="serve_image", images=np.stack(pictures))
    message.output_filter.append("probabilities")
    answer = model.predict.Predict(message, timeout=60)
    assert list(answer.outputs) == ["probabilities"] and answer.model_spec.signature_name == "serve_image"
    expected = signatures["serve_image"](images=tf.constant(np.stack(pictures)))["probabilities"].numpy()
    np.testing.assert_allclose(ndarray(answer.outputs["probabilities"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected, direct["probabilities"], atol=1e-5)  # PNG is lossless

    # The version may be named; the metrics count gRPC requests like the REST ones.
    message = request(image_bytes=proto(encoded[:1], tf.string))
    message.model_spec.version.value = 1
    assert model.predict.Predict(message, timeout=60).outputs["probabilities"].tensor_shape.dim[0].size == 1
    assert 'endpoint="grpc_predict"' in model.server.metrics.text().decode()


def test_onnx_export_answers_its_float_input(served):
    model = served["onnx"]
    session = model.server.model.handle
    pictures = np.stack(images(4, seed=1)).astype(np.float32)
    (input_name,), (output_name,) = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    answer = model.predict.Predict(request(**{input_name: pictures}), timeout=60)
    expected = session.run([output_name], {input_name: pictures})[0]
    np.testing.assert_allclose(ndarray(answer.outputs[output_name]), expected, rtol=1e-5, atol=1e-6)
    # int_val of a float input: numbers are converted to the signature's dtype, as over REST.
    answer = model.predict.Predict(request(**{input_name: pictures.astype(np.int32)}), timeout=60)
    np.testing.assert_allclose(ndarray(answer.outputs[output_name]), expected, rtol=1e-5, atol=1e-6)

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "tiny"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert model.predict.GetModelMetadata(metadata, timeout=60).metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert list(signature.inputs) == [input_name] and list(signature.outputs) == [output_name]
    assert [d.size for d in signature.inputs[input_name].tensor_shape.dim] == [-1, 32, 32, 3]
    assert signature.method_name == "tensorflow/serving/predict"


def test_metadata_is_the_saved_models_signature_defs(served):
    from tensorflow.core.protobuf import saved_model_pb2

    model = served["saved_model"]
    message = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    message.model_spec.name = "tiny"
    answer = model.predict.GetModelMetadata(message, timeout=60)
    assert answer.model_spec.name == "tiny" and answer.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert answer.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "serve_image"}
    assert list(signatures.signature_def["serving_default"].inputs) == ["image_bytes"]
    assert list(signatures.signature_def["serve_image"].inputs) == ["images"]
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(model.path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    for name, definition in signatures.signature_def.items():
        assert definition == saved.meta_graphs[0].signature_def[name], name  # exactly what TF Serving sends

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "tiny"
    (version,) = model.models.GetModelStatus(status, timeout=60).model_version_status
    assert version.version == 1 and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE

    message.ClearField("metadata_field")
    assert refused(model.predict.GetModelMetadata, message)[0] == grpc.StatusCode.INVALID_ARGUMENT
    status.model_spec.name = "other"
    assert refused(model.models.GetModelStatus, status)[0] == grpc.StatusCode.NOT_FOUND


def test_errors_are_status_codes_with_one_path_free_line(served, trained_run):
    import tensorflow as tf

    model = served["saved_model"]
    png = proto([png_bytes(images(1)[0])], tf.string)
    versioned = request(image_bytes=png)
    versioned.model_spec.version.value = 2
    filtered = request(image_bytes=png)
    filtered.output_filter.append("logits")
    empty_shape = predict_pb2.PredictRequest()
    empty_shape.model_spec.name = "tiny"
    bomb = empty_shape.inputs["images"]  # one value declared as 4 GB of pixels: refused unallocated
    bomb.dtype = tf.uint8.as_datatype_enum
    for size in (1000, 1000, 1000, 3):
        bomb.tensor_shape.dim.add(size=size)
    bomb.int_val.append(7)
    empty_shape.model_spec.signature_name = "serve_image"
    cases = [
        (request(name="other", image_bytes=png), grpc.StatusCode.NOT_FOUND, "not served here"),
        (versioned, grpc.StatusCode.NOT_FOUND, "the only version is 1"),
        (request(image=png), grpc.StatusCode.INVALID_ARGUMENT, "takes inputs ['image_bytes']"),
        (request(signature="classify", image_bytes=png), grpc.StatusCode.INVALID_ARGUMENT, "serve_image"),
        (request(image_bytes=np.zeros(1, np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "expected strings"),
        (request(image_bytes=proto([[b"x"]], tf.string)), grpc.StatusCode.INVALID_ARGUMENT, "expected shape"),
        (request(image_bytes=proto([b"GIF89a junk"], tf.string)), grpc.StatusCode.INVALID_ARGUMENT, "refused"),
        (request(signature="serve_image", images=np.full((1, 8, 8, 3), 300, np.int32)),
         grpc.StatusCode.INVALID_ARGUMENT, "out of the range of DT_UINT8"),
        (filtered, grpc.StatusCode.INVALID_ARGUMENT, "not outputs of signature"),
        (empty_shape, grpc.StatusCode.RESOURCE_EXHAUSTED, "--max-request-mb"),
        (request(), grpc.StatusCode.INVALID_ARGUMENT, "no inputs"),
    ]
    for message, code, words in cases:
        got, details = refused(model.predict.Predict, message)
        assert got == code and words in details, (got, details)
        assert "\n" not in details and "Traceback" not in details and trained_run["run_dir"] not in details
        assert REPO not in details and "/" not in details.replace("tensorflow/serving", ""), details
    from tensorflow_serving.apis import classification_pb2

    assert refused(model.predict.Classify, classification_pb2.ClassificationRequest())[0] == \
        grpc.StatusCode.UNIMPLEMENTED

    # A message over the size limit is refused by gRPC itself.
    from toolkit.serving.grpc_service import start_grpc, stop_grpc

    small = start_grpc(model.server, port=0, max_message_bytes=10_000)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{small.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            big = request(signature="serve_image", images=np.zeros((4, 32, 32, 3), np.uint8))
            assert refused(stub.Predict, big)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
            answer = stub.Predict(request(signature="serve_image", images=np.zeros((1, 8, 8, 3), np.uint8)),
                                  timeout=60)
            assert ndarray(answer.outputs["probabilities"]).shape == (1, 3)
    finally:
        stop_grpc(small, 1)
    # A port in use is an error, not silently shared (gRPC's default SO_REUSEPORT is off).
    from toolkit.errors import ToolkitError

    with pytest.raises(ToolkitError, match="--grpc-port"):
        start_grpc(model.server, port=model.grpc.port)


def test_concurrent_predicts_share_batches_and_each_gets_its_own_answer(served):
    model = served["onnx"]
    session = model.server.model.handle
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    pictures = [p.astype(np.float32)[None] for p in images(12, seed=2)]
    expected = [session.run([output_name], {input_name: p})[0] for p in pictures]
    before = model.server.batcher.batches
    answers = [None] * len(pictures)

    def client(i):
        answers[i] = ndarray(model.predict.Predict(request(**{input_name: pictures[i]}), timeout=60)
                             .outputs[output_name])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(pictures))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answer, want in zip(answers, expected):
        np.testing.assert_allclose(answer, want, rtol=1e-4, atol=1e-5)
    assert model.server.batcher.batches - before < len(pictures)  # some requests shared a model call
    assert model.grpc.service.answered <= model.grpc.service.received


def test_recommendation_and_translation_signatures(other_tasks):
    import tensorflow as tf

    cases = {"recommendation": {"user_id": np.array([b"u0", b"u1"], object), "k": np.array(3, np.int32)},
             "translation": {"text": np.array([b"hello world", b"a b c"], object)}}
    for task, feeds in cases.items():
        path = other_tasks[task]
        model = Served(path, task)
        try:
            answer = model.predict.Predict(request(name=task, **feeds), timeout=60)
            direct = tf.saved_model.load(path).signatures["serving_default"](
                **{k: tf.constant(v) for k, v in feeds.items()})
            assert set(answer.outputs) == set(direct), task
            for key, value in direct.items():
                got, want = ndarray(answer.outputs[key]), value.numpy()
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
                else:
                    np.testing.assert_array_equal(got, want)
            if task == "recommendation":
                assert ndarray(answer.outputs["item_ids"]).shape == (2, 3)
                message = request(name=task, user_id=np.array([b"nobody"], object), k=np.array(3, np.int32))
                code, details = refused(model.predict.Predict, message)
                assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown user id" in details
            else:
                assert ndarray(answer.outputs["translation"]).dtype == object
        finally:
            model.close()


@pytest.mark.parametrize("value, dtype", [
    (np.arange(6, dtype=np.float32).reshape(2, 3) / 7, None), (np.array([1.5, -2.25]), None),
    (np.array([[1, -2]], np.int8), None), (np.array([0, 255], np.uint8), None), (np.array([7], np.int16), None),
    (np.array([2 ** 40, -1], np.int64), None), (np.array([2 ** 31], np.uint32), None),
    (np.array([2 ** 63], np.uint64), None), (np.array([True, False]), None), (np.array([0.5, 2], np.float16), None),
    (np.array(3, np.int32), None), ([b"a", b"\xff\x00"], "string"), ([[b"x"] * 3] * 2, "string"),
    (np.zeros((0, 4), np.float32), None),
])
def test_tensor_protos_round_trip_like_tensorflow(value, dtype):
    """Inputs as TensorFlow's make_tensor_proto writes them (typed values or tensor_content) read back as
    make_ndarray reads them; outputs written here read back by make_ndarray."""
    from toolkit.serving.grpc_service import array_to_tensor, tensor_to_array

    written = proto(value, dtype)
    array = tensor_to_array(written, "x", 1 << 20)
    want = ndarray(written)
    assert array.shape == want.shape and array.dtype == want.dtype
    np.testing.assert_array_equal(array, want)
    back = ndarray(array_to_tensor(array))
    assert back.dtype == want.dtype
    np.testing.assert_array_equal(back, want)


def test_tensor_protos_are_checked_before_anything_is_allocated():
    from tensorflow.core.framework import tensor_pb2, types_pb2

    from toolkit.serving.grpc_service import tensor_to_array
    from toolkit.serving.instances import RequestError

    def tensor(dt, shape, **values):
        message = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dt), **values)
        for size in shape:
            message.tensor_shape.dim.add(size=size)
        return message

    # TensorFlow's rule: fewer values than elements repeat the last one (within the budget).
    np.testing.assert_array_equal(tensor_to_array(tensor("DT_FLOAT", [2, 2], float_val=[1, 2]), "x", 100),
                                  [[1, 2], [2, 2]])
    np.testing.assert_array_equal(tensor_to_array(tensor("DT_STRING", [3], string_val=[b"a"]), "x", 100),
                                  np.array([b"a"] * 3, object))
    unknown_rank = tensor("DT_FLOAT", [])
    unknown_rank.tensor_shape.unknown_rank = True
    cases = [
        (tensor("DT_FLOAT", [1 << 20, 1 << 20], float_val=[1]), 413, "decodes to"),
        (tensor("DT_STRING", [1 << 30], string_val=[b"x" * 100]), 413, "decodes to"),
        (tensor("DT_FLOAT", [2], tensor_content=b"\0" * 7), 400, "tensor_content has 7 bytes"),
        (tensor("DT_FLOAT", [2], float_val=[1, 2, 3]), 400, "3 values for shape [2]"),
        (tensor("DT_FLOAT", [-1], float_val=[1]), 400, "negative size"),
        (tensor("DT_UINT8", [1], int_val=[256]), 400, "out of the range of DT_UINT8"),
        (tensor("DT_COMPLEX64", [1]), 400, "DT_COMPLEX64 is not supported"),
        (tensor("DT_STRING", [1], tensor_content=b"abc"), 400, "string_val"),
        (unknown_rank, 400, "unknown_rank"),
    ]
    for message, status, words in cases:
        with pytest.raises(RequestError) as error:
            tensor_to_array(message, "x", 1 << 20)
        assert error.value.status == status and words in str(error.value), str(error.value)


def test_cli_serves_grpc_beside_http_and_drains_on_sigterm(trained_run):
    """`toolkit serve --grpc-port 0`: the stub's Predict gets the same top class as the REST API, SIGTERM exits 0."""
    import json
    import re
    import signal
    import subprocess
    import urllib.request

    export = os.path.join(trained_run["run_dir"], "export")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", **trained_run["env"])
    process = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", export, "--port", "0", "--grpc-port", "0",
                                "--name", "tiny"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=REPO)
    try:
        url = process.stdout.readline().split(" on ")[1].strip()
        line = process.stdout.readline()
        port = re.match(r"gRPC PredictionService on 127\.0\.0\.1:(\d+)$", line.strip())
        assert port, line + process.stderr.read()
        png = png_bytes(images(1)[0])
        with grpc.insecure_channel(f"127.0.0.1:{port.group(1)}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answer = stub.Predict(request(image_bytes=proto([png])), timeout=60)
        top = ndarray(answer.outputs["top_k_classes"])[0][0]
        import base64

        body = json.dumps({"instances": [{"b64": base64.b64encode(png).decode()}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as http:
            assert json.loads(http.read())["predictions"][0]["top_k_classes"][0] == top.decode()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0 and "stopped:" in out, err
    finally:
        if process.poll() is None:
            process.kill()
    result = run_cli("serve", export, "--grpc-port", "70000")
    assert result.returncode == 2 and "--grpc-port 70000" in result.stderr
