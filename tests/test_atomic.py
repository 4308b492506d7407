import os

import pytest

from toolkit.atomic import atomic_path, write_json, write_text


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.9})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write('{"accuracy": 0.')  # half-written
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "accuracy": 0.9\n}\n'
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_directory_is_swapped_whole(tmp_path):
    target = tmp_path / "export"
    with atomic_path(target, directory=True) as tmp:
        (open(os.path.join(tmp, "a.txt"), "w")).close()
    with pytest.raises(OSError):
        with atomic_path(target, directory=True) as tmp:
            (open(os.path.join(tmp, "b.txt"), "w")).close()
            raise OSError("disk full")
    assert os.listdir(target) == ["a.txt"]
    with atomic_path(target, directory=True) as tmp:
        (open(os.path.join(tmp, "c.txt"), "w")).close()
    assert os.listdir(target) == ["c.txt"]
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_temporary_path_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.endswith("model.keras")
        write_text(tmp, "x")
    assert (tmp_path / "model.keras").read_text() == "x"
