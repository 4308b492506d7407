"""Scale: mixed precision training with float32 exports."""

import json

import pytest

from conftest import make_image_folder, run_cli, write_recipe


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_float32(tmp_path, precision):
    data = make_image_folder(tmp_path / "images", per_class=10)
    recipe = write_recipe(tmp_path / "mixed.yaml", data, tmp_path / "runs",
                          train={"epochs": 1, "precision": precision})
    result = run_cli("train", recipe, env={"TOOLKIT_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "mixed"
    with open(run_dir / "export" / "verify.json") as f:
        report = json.load(f)
    assert report["passed"] and report["formats"]["onnx"]["endpoints"]["onnx"]["agreement"] == 1.0
    from toolkit.backbones.build import load_keras_file

    model = load_keras_file(str(run_dir / "model.keras"))  # what is deployed is float32 throughout
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert f"precision {precision}" in (run_dir / "MODEL_CARD.md").read_text()


def test_mixed_policy_keeps_class_scores_float32_and_exports_a_float32_copy(tmp_path):
    import keras
    import numpy as np

    from toolkit.api import float32_model
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task
    from toolkit.training.trainer import configure

    data = make_image_folder(tmp_path / "images", per_class=4)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs",
                                      train={"precision": "mixed_bfloat16"}))
    try:
        configure(recipe.train)
        model = make_task(recipe).build_model()
    finally:
        keras.config.set_dtype_policy("float32")
    backbone = [layer for layer in model.layers if isinstance(layer, keras.Model)][0]
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in backbone.layers)
    copy = float32_model(None, model)
    inner = [layer for layer in copy.layers if isinstance(layer, keras.Model)][0]
    assert {layer.dtype_policy.name for layer in inner.layers} == {"float32"}
    images = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(copy(images).numpy(), model(images).numpy(), atol=0.05)  # bfloat16 rounding
