"""Backbone registry: strides, preprocessing, weights files, the weights store,
KerasHub presets and earlier runs."""

import numpy as np
import pytest

from toolkit.backbones.build import build_backbone, find_feature_layers
from toolkit.backbones.registry import BACKBONES
from toolkit.backbones.weights import import_weights, stored_weights
from toolkit.errors import BackboneError, WeightsUnavailableError

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                                  "efficientnet_v2_b0", "resnet50_v2", "convnext_tiny", "resnet_mini"])
def test_feature_layers_have_the_declared_strides(name):
    size = 64
    backbone = build_backbone(name, "none", (size, size, 3))
    assert set(backbone.feature_layers) >= {4, 8, 16}
    for stride, layer_name in backbone.feature_layers.items():
        shape = backbone.model.get_layer(layer_name).output.shape
        assert shape[1] == size // stride, (name, stride, layer_name, shape)
    spec = BACKBONES.get(name)
    if spec.feature_layers:  # pinned names agree with the stride rule
        assert find_feature_layers(backbone.model, (size, size, 3)) == spec.feature_layers


def test_preprocessing_is_declared_never_doubled():
    # keras.applications MobileNetV3 rescales inside: the toolkit must not add a Rescaling.
    assert BACKBONES.get("mobilenet_v3_small").rescaling() == (1.0, 0.0)
    scale, offset = BACKBONES.get("mobilenet_v2").rescaling()
    assert np.isclose(255 * scale + offset, 1.0) and offset == -1.0


def test_too_small_input_is_a_clear_error():
    with pytest.raises(BackboneError, match="at least 32x32.*data.image_size"):
        build_backbone("mobilenet_v3_small", "none", (24, 24, 3))


def tensors(model):
    return [np.asarray(w) for w in model.weights]


def test_weights_file_and_store_load_identical_tensors(tmp_path):
    source = build_backbone("mobilenet_v3_small", "none", (32, 32, 3)).model
    for variable in source.weights:  # make the weights distinguishable from any init
        variable.assign(np.random.RandomState(0).normal(size=variable.shape).astype("float32"))
    path = str(tmp_path / "mnv3.weights.h5")
    source.save_weights(path)

    from_file = build_backbone("mobilenet_v3_small", "file:" + path, (32, 32, 3))
    assert from_file.pretrained and path in from_file.weights_source
    for a, b in zip(tensors(source), tensors(from_file.model)):
        np.testing.assert_array_equal(a, b)

    result = run_cli("weights", "import", path, "--backbone", "mobilenet_v3_small")
    assert result.returncode == 0, result.stderr
    assert stored_weights("mobilenet_v3_small")
    from_store = build_backbone("mobilenet_v3_small", "imagenet", (32, 32, 3))
    assert "weights store" in from_store.weights_source
    for a, b in zip(tensors(source), tensors(from_store.model)):
        np.testing.assert_array_equal(a, b)


def test_import_rejects_weights_of_another_architecture(tmp_path):
    other = build_backbone("resnet_tiny", "none", (32, 32, 3)).model
    path = str(tmp_path / "tiny.weights.h5")
    other.save_weights(path)
    with pytest.raises(BackboneError, match="does not fit backbone mobilenet_v3_small"):
        import_weights(path, "mobilenet_v3_small")
    result = run_cli("weights", "import", path, "--backbone", "mobilenet_v3_small")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert stored_weights("mobilenet_v3_small") is None


def test_offline_imagenet_without_store_names_file_and_import_command(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        build_backbone("mobilenet_v3_small", "imagenet", (32, 32, 3))
    message = str(error.value)
    assert "\n" not in message
    assert "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" in message
    assert "toolkit weights import" in message and "--backbone mobilenet_v3_small" in message


def test_native_backbone_has_no_imagenet_weights():
    with pytest.raises(WeightsUnavailableError, match="no published pretrained weights"):
        build_backbone("resnet_mini", "imagenet", (32, 32, 1))


def test_hub_preset_from_local_directory(tmp_path):
    import keras_hub

    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0)
    preset = str(tmp_path / "tiny_resnet_preset")
    backbone.save_to_preset(preset)
    converter.save_to_preset(preset)
    built = build_backbone("hub:" + preset, "pretrained", (32, 32, 3))
    assert built.pretrained and "KerasHub preset" in built.weights_source
    assert np.isclose(built.scale, 1 / 255.0) and built.offset == 0.0
    for a, b in zip(tensors(backbone), tensors(built.model)):
        np.testing.assert_array_equal(a, b)
    assert built.feature_layers  # strides found on the loaded model


def test_missing_hub_preset_is_one_line():
    with pytest.raises(BackboneError, match="KerasHub preset .* could not be loaded"):
        build_backbone("hub:/nonexistent/preset_dir", "pretrained", (32, 32, 3))


def test_run_backbone_reuses_trained_weights(trained_run):
    from toolkit.model_io import load_keras_file, read_toolkit_metadata

    run_dir = trained_run["run_dir"]
    built = build_backbone("run:" + run_dir, "pretrained", (32, 32, 3))
    model = load_keras_file(run_dir + "/model.keras")
    inner = model.get_layer(read_toolkit_metadata(run_dir + "/model.keras")["backbone"]["layer"])
    for a, b in zip(tensors(inner), tensors(built.model)):
        np.testing.assert_array_equal(a, b)
    assert built.pretrained and run_dir in built.weights_source
    reset = build_backbone("run:" + run_dir, "none", (32, 32, 3))
    assert not reset.pretrained


def classifier_with(backbone, weights="pretrained", tmp_path=None, channels=3):
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task

    recipe = load_recipe({
        "task": "image_classification", "name": "t",
        "data": {"source": "folder", "path": str(tmp_path), "image_size": 32, "channels": channels},
        "model": {"backbone": backbone, "weights": weights}, "output": {"dir": str(tmp_path)},
    })
    task = make_task(recipe)
    task.metadata = {"class_names": ["a", "b", "c"]}
    return task.build_model()


def test_classifier_on_hub_and_file_backbones(tmp_path):
    import keras
    import keras_hub

    hub = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block", image_shape=(None, None, 3),
    )
    preset = str(tmp_path / "preset")
    hub.save_to_preset(preset)
    model = classifier_with("hub:" + preset, tmp_path=tmp_path, channels=1)  # gray data, RGB backbone
    assert model.get_layer("gray_to_rgb") is not None
    assert model.predict(np.zeros((2, 32, 32, 1), "float32"), verbose=0).shape == (2, 3)

    saved = str(tmp_path / "backbone.keras")
    build_backbone("resnet_tiny", "none", (32, 32, 3)).model.save(saved)
    model = classifier_with("file:" + saved, tmp_path=tmp_path)
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 3)

    lambda_model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Lambda(lambda x: x * 2)])
    unsafe = str(tmp_path / "unsafe.keras")
    lambda_model.save(unsafe)
    with pytest.raises(Exception, match="could not be loaded safely"):
        classifier_with("file:" + unsafe, tmp_path=tmp_path)
