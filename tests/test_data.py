"""Data sources and the image pipeline."""

import gzip
import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import DataError
from toolkit.tasks import make_task
from toolkit.tasks.image.sources import CLASSIFICATION_SOURCES as SOURCES
from toolkit.tasks.image.sources import read_idx, split_indices

from conftest import make_image_folder, write_recipe


def recipe_for(tmp_path, data_path, **data):
    path = write_recipe(tmp_path / "r.yaml", data_path, tmp_path / "runs")
    return load_recipe(path, overrides={f"data.{k}": v for k, v in data.items()})


def test_folder_source_splits_by_seed(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=10)
    recipe = recipe_for(tmp_path, folder)
    data = SOURCES.get("folder")(recipe.data, seed=1)
    assert data.class_names == ["blue", "green", "red"]
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sum(sizes.values()) == 30 and sizes["test"] == 6 and sizes["validation"] > 0  # round(2.5) per class
    again = SOURCES.get("folder")(recipe.data, seed=1)
    assert again.splits["test"].paths == data.splits["test"].paths
    other = SOURCES.get("folder")(recipe.data, seed=2)
    assert other.splits["test"].paths != data.splits["test"].paths
    train_files = set(data.splits["train"].paths)
    assert not train_files & set(data.splits["test"].paths)


def test_split_folders_are_used(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=9, layout="split")
    recipe = recipe_for(tmp_path, folder)
    data = SOURCES.get("folder")(recipe.data, seed=0)
    assert all("/test/" in path for path in data.splits["test"].paths)
    assert all("/train/" in path for path in data.splits["train"].paths)


def test_stratified_split_keeps_every_class():
    labels = np.repeat([0, 1, 2], [50, 5, 2])
    kept, held = split_indices(labels, 0.2, seed=0)
    assert set(labels[held]) == {0, 1, 2} and set(labels[kept]) == {0, 1, 2}
    assert len(kept) + len(held) == len(labels)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=8, corrupt=2)
    recipe = recipe_for(tmp_path, folder, validation_fraction=0.0, test_fraction=0.2)
    task = make_task(recipe)
    batches = list(task.build_inputs("train"))
    report = task.data_report()["train"]
    test_report = None
    task.build_inputs("test")
    test_report = task.data_report()["test"]
    assert report["skipped"] + test_report["skipped"] == 2
    assert all("broken_" in path for path in report["skipped_files"] + test_report["skipped_files"])
    assert sum(len(y) for _, y in batches) == report["examples"]
    assert batches[0][0].shape[1:] == (32, 32, 3)


def test_corrupt_image_fails_when_asked(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=8, corrupt=1)
    recipe = recipe_for(tmp_path, folder, on_error="fail", validation_fraction=0.0, test_fraction=0.0001)
    task = make_task(recipe)
    with pytest.raises(DataError, match=r"cannot decode image .*broken_0\.jpg .*data\.on_error: skip"):
        task.build_inputs("train")
        task.build_inputs("test")


def test_missing_path_empty_class_and_single_class(tmp_path):
    recipe = recipe_for(tmp_path, tmp_path / "nowhere")
    with pytest.raises(DataError, match="does not exist"):
        SOURCES.get("folder")(recipe.data, 0)
    root = tmp_path / "one"
    make_image_folder(root, per_class=4)
    for name in ("green", "blue"):
        for file in os.listdir(root / name):
            os.remove(root / name / file)
        os.rmdir(root / name)
    with pytest.raises(DataError, match="at least 2"):
        SOURCES.get("folder")(recipe_for(tmp_path, root).data, 0)
    os.makedirs(root / "empty")
    with pytest.raises(DataError, match=r"class folder .*empty has no images"):
        SOURCES.get("folder")(recipe_for(tmp_path, root).data, 0)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.randint(0, 255, (40, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(40) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.randint(0, 255, (20, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    recipe = recipe_for(tmp_path, folder, source="fashion_mnist", channels=1, validation_fraction=0.25)
    data = SOURCES.get("fashion_mnist")(recipe.data, 0)
    assert data.class_names[0] == "T-shirt/top" and len(data.class_names) == 10
    assert len(data.splits["test"]) == 20 and len(data.splits["train"]) == 30
    assert data.splits["train"].images.shape[1:] == (28, 28, 1)
    assert "Fashion-MNIST" in data.provenance and str(folder) in data.provenance


def test_idx_reader_rejects_truncated_files(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match="truncated"):
        read_idx(str(path))


def test_fashion_mnist_offline_without_files_is_one_clear_line(tmp_path):
    recipe = recipe_for(tmp_path, tmp_path / "empty", source="fashion_mnist", channels=1, download=False)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        SOURCES.get("fashion_mnist")(recipe.data, 0)


def test_tfds_source_with_mocked_dataset(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import toolkit.data.tfds as sources

    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: True)  # mock_data plays the download

    recipe = recipe_for(tmp_path, tmp_path, source="tfds", tfds_name="tf_flowers", limit={"train": 12, "test": 6},
                        tfds_data_dir=str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=20):
        task = make_task(recipe)
        assert task.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
        assert set(task.data.splits) == {"train", "validation", "test"}
        images, labels = next(iter(task.build_inputs("train")))
        assert images.shape[1:] == (32, 32, 3) and labels.shape[-1] == 5
        assert task.data_report()["train"]["examples"] == 12


def test_tfds_offline_failure_is_one_clear_line(tmp_path):
    recipe = recipe_for(tmp_path, tmp_path, source="tfds", tfds_name="tf_flowers", download=False,
                        tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match="tfds build tf_flowers"):
        SOURCES.get("tfds")(recipe.data, 0)


def test_numpy_resize_matches_tensorflow():
    import tensorflow as tf

    from toolkit.data.image_io import resize_bilinear

    rng = np.random.RandomState(0)
    for shape, size in [((28, 28, 1), (32, 32)), ((97, 61, 3), (32, 48)), ((12, 12, 3), (64, 40))]:
        image = rng.randint(0, 256, shape).astype(np.uint8)
        expected = tf.image.resize(image, size).numpy()
        np.testing.assert_allclose(resize_bilinear(image, size), expected, atol=1e-3)


def test_tfds_download_offline_fails_fast(tmp_path, monkeypatch):
    import toolkit.data.tfds as sources

    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: False)
    recipe = recipe_for(tmp_path, tmp_path, source="tfds", tfds_name="tf_flowers", download=True,
                        tfds_data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match="this machine is offline"):
        SOURCES.get("tfds")(recipe.data, 0)


def test_each_skip_reason_is_worded_on_its_own_and_normal_filtering_is_a_note():
    import toolkit.tasks.recommendation.sources  # noqa: F401 - registers the words of its reasons
    import toolkit.tasks.translation.sources  # noqa: F401
    from toolkit.data.skips import skip_lines

    lines = skip_lines({
        "train": {"skipped": 3, "skipped_reasons": {"different verse division": 2, "no tab": 1}},
        "validation": {"skipped": 11, "skipped_reasons": {"unknown_item": 11}},
        "test": {"skipped": 2, "skipped_files": ["a.png: not a readable image", "b.png: not a readable image"]},
    })
    assert len(lines) == 2
    warning, note = lines
    assert warning.startswith("warning: skipped examples that could not be used: ")
    assert "1 train example (lines without a tab between source and target: 1)" in warning
    assert "2 test examples (unreadable or invalid: 2)" in warning
    assert "verse" not in warning and "training split" not in warning
    assert note.startswith("note: left out ")
    assert "2 train examples (verses the two Bibles divide differently: 2)" in note
    assert "11 validation examples (ratings of items not in the training split, which a model cannot score: 11)" \
        in note
    assert "unreadable" not in note
    assert skip_lines({"train": {"skipped": 0, "skipped_reasons": {}}}) == []
