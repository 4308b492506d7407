import pytest

from toolkit.errors import BackboneError, ToolkitError
from toolkit.registry import Registry


def test_register_and_get():
    registry = Registry("thing")
    registry.register("alpha", 1)
    assert registry.get("alpha") == 1
    assert "alpha" in registry and registry.names() == ["alpha"]


def test_duplicate_is_an_error():
    registry = Registry("thing")
    registry.register("alpha", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("alpha", 2)


def test_unknown_lists_close_matches():
    registry = Registry("thing", BackboneError)
    registry.register("mobilenet_v2", 1)
    registry.register("resnet50_v2", 2)
    with pytest.raises(BackboneError) as error:
        registry.get("mobilenet_v3")
    assert "did you mean 'mobilenet_v2'" in str(error.value)
    assert "registered: mobilenet_v2, resnet50_v2" in str(error.value)
    assert isinstance(error.value, ToolkitError)


def test_decorator_form():
    registry = Registry("function")

    @registry.register("double")
    def double(x):
        return 2 * x

    assert registry.get("double")(3) == 6
