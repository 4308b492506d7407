"""Property-based tests (hypothesis): whatever a user or a client sends, the
recipe loader and the serving request parser answer with a result or with one
clear line (a ToolkitError / a 4xx RequestError), never another exception."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.config import load_recipe
from toolkit.errors import ToolkitError
from toolkit.serving import RequestError, parse_instances

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, width=32)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=24,
)
METADATA = [
    {"task": "image_classification", "input": "image", "channels": 3},
    {"task": "segmentation", "input": "image", "channels": 1},
    {"task": "translation", "input": "text"},
    {"task": "speech_recognition", "input": "audio", "sample_rate": 16000},
    {"task": "recommendation", "input": "user"},
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line_request_error(body, metadata):
    try:
        inputs, columnar = parse_instances(body, metadata)
    except RequestError as error:
        assert 400 <= error.status < 500, error.status
        assert str(error) and "\n" not in str(error) and "Traceback" not in str(error)
        return None
    assert isinstance(inputs, list) and inputs and isinstance(columnar, bool)
    return inputs


@pytest.mark.parametrize("metadata", METADATA, ids=[m["task"] for m in METADATA])
@SETTINGS
@given(instances=JSON)
def test_any_json_instances_parse_or_get_a_4xx(metadata, instances):
    for key in ("instances", "inputs"):
        _one_line_request_error(json.dumps({key: instances}).encode(), metadata)


@SETTINGS
@given(body=st.binary(max_size=64) | JSON.map(lambda value: json.dumps(value).encode()))
def test_any_body_parses_or_gets_a_4xx(body):
    for metadata in METADATA:
        _one_line_request_error(body, metadata)


# Signatures of the wire-format tests: the dtypes and shapes the five tasks' exports take (strings, floats of
# fixed and free sizes, ints, a scalar), run by a fake runtime that returns its inputs.
SIGNATURES = {
    "serving_default": {"inputs": {"image_bytes": ("DT_STRING", [-1])},
                        "outputs": {"probabilities": ("DT_FLOAT", [-1, 3])}},
    "serve_image": {"inputs": {"images": ("DT_UINT8", [-1, -1, -1, 3])}, "outputs": {"mask": ("DT_INT32", [-1, -1, -1])}},
    "transcribe": {"inputs": {"waveform": ("DT_FLOAT", [-1, -1]), "lengths": ("DT_INT32", [-1])},
                   "outputs": {"transcript": ("DT_STRING", [-1])}},
    "recommend": {"inputs": {"user_id": ("DT_STRING", [-1]), "k": ("DT_INT32", [])},
                  "outputs": {"item_ids": ("DT_STRING", [-1, -1])}},
    "flags": {"inputs": {"x": ("DT_BOOL", [-1]), "y": ("DT_INT64", [-1, 2])}, "outputs": {"z": ("DT_HALF", [-1])}},
}


def _signatures():
    from toolkit.serving.signatures import Signatures

    return Signatures(SIGNATURES, {}, lambda name, feeds: dict(feeds))


def _one_line_or_checked(decode):
    try:
        name, feeds = decode()[:2]
    except RequestError as error:
        assert 400 <= error.status < 500, error.status
        assert str(error) and "\n" not in str(error) and "Traceback" not in str(error)
        return
    expected = SIGNATURES[name]["inputs"]
    assert set(feeds) == set(expected)
    for key, value in feeds.items():
        dt, shape = expected[key]
        assert value.ndim == len(shape) and all(s < 0 or s == d for s, d in zip(shape, value.shape))
        assert (value.dtype == object) == (dt == "DT_STRING")


NAMES = st.sampled_from(sorted(SIGNATURES) + ["toolkit", "nope"])
INPUT_NAMES = st.sampled_from(["image_bytes", "images", "waveform", "lengths", "user_id", "k", "x", "y", "b64"])
TENSOR_JSON = JSON | st.dictionaries(INPUT_NAMES, JSON, max_size=3) | st.lists(
    st.dictionaries(INPUT_NAMES, JSON, max_size=3), max_size=3)


@SETTINGS
@given(name=st.none() | NAMES, key=st.sampled_from(["instances", "inputs"]), value=TENSOR_JSON)
def test_any_tf_serving_request_is_checked_against_the_signature_or_gets_a_4xx(name, key, value):
    from toolkit.serving.signatures import decode_rest

    request = {key: value} if name is None else {"signature_name": name, key: value}
    _one_line_or_checked(lambda: decode_rest(json.loads(json.dumps(request)), _signatures()))


V2_TENSOR = st.fixed_dictionaries({"name": INPUT_NAMES, "shape": st.lists(st.integers(-1, 3), max_size=3),
                                   "datatype": st.sampled_from(["FP32", "INT32", "BYTES", "BOOL", "UINT8", "FP64",
                                                                "INT64", "FP16", "X"]),
                                   "data": JSON})


@SETTINGS
@given(tensors=st.lists(V2_TENSOR, max_size=3), name=st.none() | NAMES, binary=st.binary(max_size=24),
       header=st.none() | st.integers(-2, 400))
def test_any_v2_inference_request_is_checked_or_gets_a_4xx(tensors, name, binary, header):
    from toolkit.serving.signatures import decode_v2

    request = {"inputs": tensors}
    if name is not None:
        request["parameters"] = {"signature_name": name}
    if tensors and binary:
        tensors[0] = {**tensors[0], "parameters": {"binary_data_size": len(binary)}}
        tensors[0].pop("data")
    head = json.dumps(request).encode()
    body = head + binary if header is not None else head
    length = None if header is None else str(len(head) if header % 2 else header)
    _one_line_or_checked(lambda: decode_v2(body, length, _signatures()))


PATHS = ["data.image_size", "data.channels", "data.source", "data.validation_fraction", "train.epochs",
         "train.batch_size", "train.optimizer.learning_rate", "train.optimizer.name", "train.strategy",
         "train.precision", "train.fine_tune.frozen_epochs", "model.backbone", "model.head.dropout",
         "export.formats", "export.options.onnx.opset", "export.parity_tolerance", "train.devices", "name"]
KEYS = st.sampled_from(PATHS) | st.lists(st.text("abcdefghij_", min_size=1, max_size=6), min_size=1,
                                         max_size=3).map(".".join)
VALUES = st.sampled_from(["0", "-1", "1e9", "3", "[]", "[1, 2]", "{a: 1}", "null", "true", "'x'", "nan",
                          "[64, 64]", "onnx", "[saved_model, onnx]", "[tflite, tflite]", "mirrored", ":", "{",
                          "mixed_float16", "resnet_mini", "'[/cpu:0]'"]) | st.text(max_size=8)


@SETTINGS
@given(overrides=st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_any_overrides_load_or_fail_in_one_line(overrides):
    try:
        recipe = load_recipe("recipes/image_classification/fashion_mnist.yaml",
                             overrides=[f"{key}={value}" for key, value in overrides])
    except ToolkitError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message
        assert error.exit_code == 2
        return
    assert recipe.task == "image_classification"


@SETTINGS
@given(section=st.sampled_from(["data", "model", "train", "export", "output", "decoding", "features"]),
       body=JSON)
def test_any_recipe_section_loads_or_fails_in_one_line(section, body):
    for task in ("image_classification", "segmentation", "translation", "speech_recognition", "recommendation"):
        try:
            load_recipe({"task": task, section: body})
        except ToolkitError as error:
            assert str(error) and "\n" not in str(error)
