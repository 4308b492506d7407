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
