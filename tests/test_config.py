"""Recipe schema and loader: every class of bad input gives its one-line error."""

import os

import pytest

from toolkit.config import load_recipe, parse_overrides, recipe_to_yaml
from toolkit.errors import RecipeError

from conftest import REPO, write_recipe

FASHION = os.path.join(REPO, "recipes", "image_classification", "fashion_mnist.yaml")


@pytest.fixture
def recipe_file(tmp_path):
    return write_recipe(tmp_path / "r.yaml", tmp_path / "data", tmp_path / "runs")


def error_of(path, overrides=None):
    with pytest.raises(RecipeError) as error:
        load_recipe(path, overrides=overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("path", sorted(
    os.path.join(root, name)
    for root, _, names in os.walk(os.path.join(REPO, "recipes")) for name in names if name.endswith(".yaml")
))
def test_every_shipped_recipe_is_valid(path):
    recipe = load_recipe(path)
    assert recipe.description


def test_readme_recipe_example_is_valid(tmp_path):
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    assert load_recipe(str(path)).model.backbone == "mobilenet_v3_small"


def test_shipped_recipe_loads_with_defaults():
    recipe = load_recipe(FASHION)
    assert recipe.task == "image_classification"
    assert recipe.name == "fashion_mnist"
    assert recipe.train.monitor == "val_accuracy"
    assert recipe.export.formats == ["saved_model", "onnx"]


@pytest.mark.parametrize("key, suggestion", [
    ("train.epochz", "epochs"),
    ("trian", "train"),
    ("train.optimizer.learning_rat", "learning_rate"),
    ("data.augment.flipp", "flip"),
    ("model.head.dropuot", "dropout"),
    ("export.formatz", "formats"),
])
def test_unknown_key_at_every_level_suggests_closest(recipe_file, key, suggestion):
    message = error_of(recipe_file, [f"{key}=1"])
    assert f"{key}: unknown key" in message
    assert f"did you mean '{suggestion}'" in message


def test_wrong_type_names_field_and_value(recipe_file):
    message = error_of(recipe_file, ["train.epochs=many"])
    assert "train.epochs: expected a valid integer" in message and "'many'" in message


def test_bad_enum_lists_allowed_values(recipe_file):
    message = error_of(recipe_file, ["train.optimizer.name=adamm"])
    assert "train.optimizer.name: expected one of adam, adamw, sgd, rmsprop; got 'adamm'" in message
    assert "did you mean 'adam'" in message


def test_out_of_range_value(recipe_file):
    message = error_of(recipe_file, ["model.head.dropout=1.5"])
    assert "model.head.dropout" in message and "1.5" in message


def test_unknown_backbone_suggests(recipe_file):
    message = error_of(recipe_file, ["model.backbone=mobilenet_v3_smal"])
    assert "model.backbone: unknown backbone 'mobilenet_v3_smal'" in message
    assert "did you mean 'mobilenet_v3_small'" in message


def test_weights_file_as_backbone_is_explained(recipe_file):
    message = error_of(recipe_file, ["model.backbone=file:x.weights.h5"])
    assert "has no architecture" in message and "model.weights: file:x.weights.h5" in message


def test_unknown_source_and_export_format(recipe_file):
    assert "did you mean 'folder'" in error_of(recipe_file, ["data.source=foldr"])
    assert "did you mean 'onnx'" in error_of(recipe_file, ["export.formats=[saved_model, onx]"])


def test_export_option_a_format_does_not_take(recipe_file):
    message = error_of(recipe_file, ["export.options={saved_model: {opset: 13}}"])
    assert "format saved_model takes no option 'opset'" in message
    message = error_of(recipe_file, ["export.options={onnx: {opst: 13}}"])
    assert "did you mean 'opset'" in message
    recipe = load_recipe(recipe_file, ["export.options={onnx: {opset: 15}}"])
    assert recipe.export.options == {"onnx": {"opset": 15}}


def test_inconsistent_phases(recipe_file):
    assert "more than epochs" in error_of(recipe_file, ["train.epochs=2", "train.fine_tune.frozen_epochs=3"])
    message = error_of(recipe_file, ["train.fine_tune.frozen_epochs=1"])  # weights: none
    assert "model.weights: none" in message


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: image_classification\ndata: [unclosed\n")
    message = error_of(str(path))
    assert "malformed YAML" in message and "line" in message


def test_missing_file_and_non_mapping(tmp_path):
    assert "does not exist" in error_of(str(tmp_path / "nope.yaml"))
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert "must be a YAML mapping" in error_of(str(path))


def test_unknown_and_missing_task(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("task: image_clasification\n")
    assert "did you mean 'image_classification'" in error_of(str(path))
    path.write_text("model: {backbone: resnet_tiny}\n")
    assert "task: required" in error_of(str(path))


def test_overrides_are_yaml_values():
    assert parse_overrides(["a.b=3", "c=[64, 64]", "d=none", "e=~", "f=0.5"]) == {
        "a.b": 3, "c": [64, 64], "d": "none", "e": None, "f": 0.5,
    }
    with pytest.raises(RecipeError, match="key.path=value"):
        parse_overrides(["train.epochs"])
    with pytest.raises(RecipeError, match="not valid YAML"):
        parse_overrides(["a=[1,"])


def test_scientific_notation_reaches_float_fields(recipe_file):
    # YAML 1.1 reads 1e-3 as a string; the schema still parses it as a float.
    assert load_recipe(recipe_file, ["train.optimizer.learning_rate=1e-3"]).train.optimizer.learning_rate == 0.001


def test_override_into_a_scalar_is_an_error(recipe_file):
    assert "is a int, not a section" in error_of(recipe_file, ["train.epochs.value=3"])


def test_image_size_int_means_square_and_round_trip(recipe_file, tmp_path):
    recipe = load_recipe(recipe_file, ["data.image_size=48"])
    assert recipe.data.image_size == (48, 48)
    again = tmp_path / "again.yaml"
    again.write_text(recipe_to_yaml(recipe))
    assert load_recipe(str(again)).model_dump() == recipe.model_dump()


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_recipe(tmp_path / "r.yaml", "data", "runs")
    recipe = load_recipe(path, ["model.weights=file:w.weights.h5"])
    assert recipe.data.path == str(tmp_path / "data")
    assert recipe.model.weights == "file:" + str(tmp_path / "w.weights.h5")
    assert recipe.output.dir == str(tmp_path / "runs")


def test_image_size_below_backbone_minimum(recipe_file):
    message = error_of(recipe_file, ["model.backbone=mobilenet_v3_small", "data.image_size=24"])
    assert "needs images of at least 32x32" in message and "24x24" in message
