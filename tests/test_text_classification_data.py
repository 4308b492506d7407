"""Text classification data: the csv, folder, jsonl, tfds, bible_genre and fortunes sources, user data given
as data=, every bad-input case with its exact count and message, and the recipe's data section."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from pydantic import ValidationError

from toolkit.data.bible import BIBLE_CACHE, build_bible
from toolkit.data.skips import skip_lines
from toolkit.data.user_data import UserData
from toolkit.errors import DataError
from toolkit.tasks.text_classification.config import BIBLE_GENRES, TextClassDataConfig
from toolkit.tasks.text_classification.sources import (
    TEXT_CLASS_SOURCES,
    read_csv,
    strip_overstrike,
    text_class_data,
)

from conftest import REPO

SWORD = "/usr/share/sword"
MODULE_CONFS = [os.path.join(SWORD, "mods.d", name) for name in ("engWEB2015eb.conf", "spaRV1909eb.conf")]
FORTUNES = "/usr/share/games/fortunes"
FORTUNE_COUNTS = {"computers": 1051, "people": 1251, "politics": 703, "science": 625, "men-women": 582}
needs_fortunes = pytest.mark.skipif(not os.path.isfile(os.path.join(FORTUNES, "computers")),
                                    reason="Debian package fortunes not installed")


def load(config, seed=0):
    return TEXT_CLASS_SOURCES.get(config.source)(config, seed)


def config_for(path, **fields):
    return TextClassDataConfig(path=str(path), **fields)


def write(path, data):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def rows(count, start=0, delimiter=","):
    return "".join(f"text number {i}{delimiter}{'pos' if i % 2 else 'neg'}\n" for i in range(start, start + count))


def sizes(data):
    return {name: len(examples) for name, examples in data.splits.items()}


def reasons(data):
    return {name: part["skipped_reasons"] for name, part in data.report.items() if part["skipped_reasons"]}


# --------------------------------------------------------------------------- CSV


def test_csv_file_is_cut_at_random_with_every_bad_row_counted(tmp_path):
    lines = ["text,label", *rows(20).splitlines()]
    lines[3] = '"  spaced \t out ",neg'  # normalised: "spaced out"
    lines.insert(5, ",pos")  # line 6: empty text
    lines.insert(7, "no label here,")  # line 8: empty label
    lines.insert(9, "only one field")  # line 10: too few fields
    lines.insert(11, "a,b,c,d")  # line 12: an unquoted comma
    lines.insert(13, "neutral text,neutral")  # line 14: not in data.classes
    raw = "\n".join(lines).encode() + b"\ncaf\xe9 latin-1,pos\n\n"  # line 27: not UTF-8
    path = write(tmp_path / "reviews.csv", raw)
    data = load(config_for(path, classes=["neg", "pos"]))
    assert sizes(data) == {"train": 14, "validation": 2, "test": 4}
    assert data.class_names == ["neg", "pos"] and data.multi_label is False
    assert reasons(data) == {"train": {"empty text": 1, "empty label": 1, "bad row": 2, "unknown label": 1,
                                       "not UTF-8": 1}}
    assert data.report["train"]["skipped_examples"] == [
        f"{path}:6: empty text", f"{path}:8: empty label", f"{path}:10: bad row: 1 field, the header has 2",
        f"{path}:12: bad row: 4 fields, the header has 2", f"{path}:14: unknown label: 'neutral'",
        f"{path}:27: not UTF-8"]
    everything = [example for examples in data.splits.values() for example in examples]
    assert sorted(example.id for example in everything)[:2] == ["reviews.csv:11", "reviews.csv:13"]
    assert [example.text for example in everything if example.id == "reviews.csv:4"] == ["spaced out"]
    assert all(len(example.labels) == 1 for example in everything)
    assert sum(data.info["class_counts"]["test"].values()) == 4 and data.info["available"]["train"] == 14
    again, other = load(config_for(path, classes=["neg", "pos"])), load(config_for(path, classes=["neg", "pos"]), 1)
    assert again.splits == data.splits and other.splits["test"] != data.splits["test"]


def test_csv_errors_under_on_error_fail_name_file_and_line(tmp_path):
    path = write(tmp_path / "broken.csv", b"text,label\ngood,pos\nbad \xff byte,neg\n")
    with pytest.raises(DataError, match=f"^{path}:3: not UTF-8; save the file as UTF-8 or set data.on_error: skip$"):
        load(config_for(path, on_error="fail"))
    path = write(tmp_path / "empty.csv", "text,label\ngood,pos\n   ,neg\n")
    with pytest.raises(DataError, match=f"^{path}:3: empty text; .*data.on_error: skip$"):
        load(config_for(path, on_error="fail"))


def test_csv_directory_with_train_dev_and_test_files(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(10))
    write(tmp_path / "dev.csv", "text,label\n" + rows(3, 10))
    write(tmp_path / "test.csv", "text,label\n" + rows(4, 20) + "a new kind,surprise\nanother,surprise\n")
    data = load(config_for(tmp_path))
    assert sizes(data) == {"train": 10, "validation": 3, "test": 4}
    assert data.class_names == ["neg", "pos"] and data.info["files"]["validation"].endswith("dev.csv")
    assert reasons(data) == {"test": {"label not in the training split": 2}}
    assert data.report["test"]["skipped_examples"][0] == "test.csv:6: label not in the training split: 'surprise'"
    assert data.splits["test"][0].id == "test.csv:2" and data.info["class_counts"]["test"] == {"neg": 2, "pos": 2}
    assert skip_lines(data.report) == ["note: left out 2 test examples (validation and test texts of labels the "
                                       "training split does not have: 2)"]


def test_tsv_by_extension_and_explicit_delimiter(tmp_path):
    tsv = write(tmp_path / "a.tsv", "label\ttext\n" + "".join(f"{'pos' if i % 2 else 'neg'}\ttext, {i}\n"
                                                            for i in range(10)))
    data = load(config_for(tsv, test_fraction=0.2, validation_fraction=0.0))
    assert sizes(data) == {"train": 8, "validation": 0, "test": 2}
    assert {example.text for example in data.splits["train"] + data.splits["test"]} == {f"text, {i}"
                                                                                        for i in range(10)}
    semicolons = write(tmp_path / "b.csv", "text;label\n" + rows(10, delimiter=";"))
    data = load(config_for(semicolons, delimiter=";"))
    assert sum(sizes(data).values()) == 10 and not reasons(data)
    tab_in_txt = write(tmp_path / "c.txt", "text\tlabel\n" + rows(10, delimiter="\t"))
    assert sum(sizes(load(config_for(tab_in_txt, delimiter="\t"))).values()) == 10
    with pytest.raises(DataError, match=r"no column 'text' \(columns: 'text\\tlabel'\) \(the delimiter is ','"):
        load(config_for(tab_in_txt))


def test_csv_quoted_multi_line_fields_keep_line_numbers(tmp_path):
    path = write(tmp_path / "q.csv", 'text,label\n"first line\nsecond, with comma\nand ""quotes""",pos\n'
                                     + rows(6) + "too,many,fields\n")
    examples, report = read_csv(path, config_for(path))
    assert examples[0].text == 'first line second, with comma and "quotes"' and examples[0].id == "q.csv:2"
    assert [example.id for example in examples[1:3]] == ["q.csv:5", "q.csv:6"]
    assert report["skipped_examples"] == [f"{path}:11: bad row: 3 fields, the header has 2"]


def test_csv_multi_label_column(tmp_path):
    path = write(tmp_path / "tags.csv", "text,label\n"
                 + "".join(f"post {i},{['sports|politics', ' sports | ', '', 'politics|gossip'][i % 4]}\n"
                           for i in range(12)))
    config = config_for(path, multi_label=True, classes=["politics", "sports"], test_fraction=0.25,
                        validation_fraction=0.0)
    data = load(config)
    everything = {example.id: example.labels for examples in data.splits.values() for example in examples}
    assert len(everything) == 12 and not reasons(data) and data.multi_label
    assert [everything[f"tags.csv:{line}"] for line in (2, 3, 4, 5)] == [("politics", "sports"), ("sports",), (),
                                                                         ("politics",)]
    assert data.info["labels_dropped"] == {"gossip": 3} and data.class_names == ["politics", "sports"]
    assert sum(data.info["unlabelled"].values()) == 3
    data = load(config_for(path, multi_label=True, label_separator="|"))
    assert data.class_names == ["gossip", "politics", "sports"]


def test_missing_column_and_missing_path_are_one_line_errors(tmp_path):
    path = write(tmp_path / "reviews.csv", "review,sentiment\ngreat,pos\n")
    with pytest.raises(DataError) as error:
        load(config_for(path))
    message = str(error.value)
    assert "\n" not in message and f"{path}:1: no column 'text' (columns: 'review', 'sentiment')" in message
    assert "set data.text_column" in message
    with pytest.raises(DataError, match="no column 'label' .*set data.label_column"):
        load(config_for(path, text_column="review"))
    data = load(config_for(write(tmp_path / "more.csv", "Review,Sentiment\n" + rows(10)), text_column="review",
                           label_column="sentiment"))  # header names match case-insensitively
    assert sum(sizes(data).values()) == 10
    for source in ("csv", "jsonl", "folder"):
        with pytest.raises(DataError, match=f"^data.path {tmp_path}/nowhere does not exist") as error:
            load(TextClassDataConfig(source=source, path=str(tmp_path / "nowhere")))
        assert "\n" not in str(error.value)
        with pytest.raises(DataError, match=f"^data.path: required for data.source: {source}"):
            load(TextClassDataConfig(source=source))
    os.makedirs(tmp_path / "empty_dir")
    with pytest.raises(DataError, match="no train.csv in this directory"):
        load(config_for(tmp_path / "empty_dir"))
    with pytest.raises(DataError, match="gave no usable training texts .*first: .*:2: empty label"):
        load(config_for(write(tmp_path / "nolabels.csv", "text,label\na,\nb,\n")))
    with pytest.raises(DataError, match="one class only \\(pos\\) from source 'csv'"):
        load(config_for(write(tmp_path / "one.csv", "text,label\n" + "a,pos\n" * 6)))


# ------------------------------------------------------------------------ folder


def make_folder(root, layout):
    for split in ("train", "test") if layout == "split" else ("",):
        for label, count in (("neg", 6), ("pos", 6), ("unsup", 4 if split != "test" else 0)):
            for index in range(count):
                write(os.path.join(root, split, label, f"{index}_{label}.txt"), f"{label} review {index}\n\n")
    return str(root)


def test_folder_flat_with_bad_files(tmp_path):
    root = make_folder(tmp_path / "flat", "flat")
    write(os.path.join(root, "pos", "latin1.txt"), b"caf\xe9")
    write(os.path.join(root, "pos", "blank.txt"), b" \n\t")
    write(os.path.join(root, "pos", "notes.md"), "not a .txt file")
    data = load(config_for(root, source="folder", classes=["neg", "pos"], test_fraction=0.25,
                           validation_fraction=0.0))
    assert sizes(data) == {"train": 9, "validation": 0, "test": 3} and data.class_names == ["neg", "pos"]
    assert data.info["folders_left_out"] == {"train": {"unsup": 4}}
    assert reasons(data) == {"train": {"not UTF-8": 1, "empty text": 1}}
    assert data.report["train"]["skipped_examples"] == [f"{root}/pos/blank.txt: empty text",
                                                        f"{root}/pos/latin1.txt: not UTF-8: byte 3"]
    example = min(data.splits["train"], key=lambda example: example.id)
    assert example.id == os.path.join("neg", "0_neg.txt") and example.text == "neg review 0"
    with pytest.raises(DataError, match=f"^{root}/pos/blank.txt: empty text"):
        load(config_for(root, source="folder", on_error="fail"))
    assert load(config_for(root, source="folder")).class_names == ["neg", "pos", "unsup"]


def test_folder_with_split_folders_excludes_unlisted_classes(tmp_path):
    root = make_folder(tmp_path / "aclImdb", "split")
    data = load(config_for(root, source="folder", classes=["neg", "pos"]))
    assert sizes(data) == {"train": 11, "validation": 1, "test": 12}  # validation: 10% of train
    assert data.info["folders_left_out"] == {"train": {"unsup": 4}}
    assert {example.id.split(os.sep)[0] for example in data.splits["test"]} == {"test"}
    assert data.info["class_counts"]["test"] == {"neg": 6, "pos": 6}


# ------------------------------------------------------------------------- JSONL


def test_jsonl_labels_as_strings_numbers_and_lists(tmp_path):
    label_values = ['"a"', "1", '["a"]']
    lines = [f'{{"text": "item {i}", "label": {label_values[i % 3]}}}' for i in range(12)]
    lines += ['{"text": "no label key"}', "not json", '["a list"]', '{"text": "x", "label": ["a", "1"]}',
              '{"text": {"nested": 1}, "label": "a"}', '{"text": null, "label": "a"}']
    path = write(tmp_path / "train.jsonl", "\n".join(lines) + "\n")
    data = load(config_for(path, source="jsonl", test_fraction=0.25, validation_fraction=0.0))
    assert sizes(data) == {"train": 9, "validation": 0, "test": 3} and data.class_names == ["1", "a"]
    assert reasons(data) == {"train": {"bad row": 5, "empty text": 1}}
    assert data.report["train"]["skipped_examples"] == [
        f"{path}:13: bad row: no 'label' key (keys: text)", f"{path}:14: bad row: not JSON (Expecting value)",
        f"{path}:15: bad row: a JSON list, not an object",
        f"{path}:16: bad row: 2 labels; set data.multi_label: true for several labels per text",
        f"{path}:17: bad row: the text is a dict", f"{path}:18: empty text"]
    multi = load(config_for(path, source="jsonl", multi_label=True, validation_fraction=0.0))
    labels = {example.id: example.labels for examples in multi.splits.values() for example in examples}
    assert labels["train.jsonl:16"] == ("1", "a") and labels["train.jsonl:2"] == ("1",)
    write(tmp_path / "dir" / "train.jsonl", "\n".join(lines[:12]))
    write(tmp_path / "dir" / "test.jsonl", '{"text": "t", "label": "a"}\n{"text": "u", "label": 2}\n')
    data = load(config_for(tmp_path / "dir", source="jsonl"))
    assert sizes(data) == {"train": 11, "validation": 1, "test": 1}
    assert reasons(data) == {"test": {"label not in the training split": 1}}


# -------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize("name, feature, classes", [
    ("imdb_reviews", "text", ["neg", "pos"]),
    ("ag_news_subset", "description", ["World", "Sports", "Business", "Sci/Tech"]),
])
def test_tfds_by_name_through_mock_data(tmp_path, monkeypatch, name, feature, classes):
    """tfds.testing.mock_data (random texts and labels, no stored split metadata: the on-disk check of prepare_tfds
    is bypassed); everything after it runs as for the real datasets."""
    import tensorflow_datasets as tfds

    import toolkit.data.tfds

    def mocked(dataset, config):
        builder = tfds.builder(dataset, data_dir=config.tfds_data_dir)
        return builder, builder.info

    monkeypatch.setattr(toolkit.data.tfds, "prepare_tfds", mocked)
    config = TextClassDataConfig(source="tfds", tfds_name=name, tfds_data_dir=str(tmp_path), limit={"train": 7})
    with tfds.testing.mock_data(num_examples=10, data_dir=str(tmp_path)):
        data = load(config)
        with pytest.raises(DataError, match=f"data.text_column 'title_and_body': TFDS dataset {name} has no such"):
            load(config.model_copy(update={"text_column": "title_and_body"}))
    assert data.class_names == classes and data.info["text_feature"] == feature
    assert len(data.splits["train"]) == 7 and len(data.splits["test"]) == 10 - data.report["test"]["skipped"]
    assert all(example.labels[0] in classes and example.text for example in data.splits["train"])
    assert data.splits["train"][0].id == f"{name}/train[:72%]:0" and f"{feature} -> label" in data.provenance
    with pytest.raises(DataError, match="data.tfds_name: required"):
        load(TextClassDataConfig(source="tfds"))


# ------------------------------------------------------------------------- Bible


@pytest.fixture(scope="module")
def bible_cache_file(tmp_path_factory):
    """The aligned Bible TSV, built once for this module (about 5 s)."""
    if not all(os.path.isfile(path) for path in MODULE_CONFS):
        pytest.skip("Debian packages sword-text-web/sword-text-sparv not installed")
    path = str(tmp_path_factory.mktemp("bible") / BIBLE_CACHE)
    build_bible(SWORD, path)
    return path


@pytest.fixture
def bible_home(toolkit_home, bible_cache_file):
    target = os.path.join(str(toolkit_home), "data", "bible", BIBLE_CACHE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(bible_cache_file, target)
    return target


def chapters_of(examples):
    return {example.id.rsplit(":", 1)[0] for example in examples}


def test_bible_genre_splits_whole_chapters(bible_home):
    data = load(TextClassDataConfig(source="bible_genre"), seed=3)
    counts = sizes(data)
    total = sum(counts.values())
    assert data.class_names == sorted(BIBLE_GENRES) and len(data.class_names) == 7
    assert total == data.info["available"]["train"] + data.info["available"]["validation"] + counts["test"]
    assert 30000 < total < 31102 and not reasons(data)  # 31,102 verses less those the alignment left out
    assert 0.17 < counts["test"] / total < 0.23 and 0.08 < counts["validation"] / total < 0.12
    train, validation, test = (chapters_of(data.splits[name]) for name in ("train", "validation", "test"))
    assert not train & test and not train & validation and not validation & test
    assert len(train | validation | test) == 1189 - 1  # every chapter but Job 40 (left out by the alignment)
    assert data.info["chapters"] == {"train": len(train), "validation": len(validation), "test": len(test)}
    genre_of = {book: genre for genre, books in BIBLE_GENRES.items() for book in books}
    for name in ("train", "validation", "test"):
        assert all(example.group == example.id.split()[0] and example.labels == (genre_of[example.group],)
                   for example in data.splits[name])
        assert all(data.info["class_counts"][name][genre] > 0 for genre in BIBLE_GENRES)
    first = data.splits["train"][0] if data.splits["train"][0].id == "Gen 1:1" else None
    assert first is None or first.text.startswith("In the beginning")
    assert "public domain" in data.provenance and "sword-text-web" in data.provenance
    assert load(TextClassDataConfig(source="bible_genre"), seed=3).splits == data.splits


def test_bible_genre_spanish_classes_and_limit(bible_home):
    config = TextClassDataConfig(source="bible_genre", bible={"language": "es"}, classes=["gospels", "letters"],
                                 limit={"train": 50, "test": 20})
    data = load(config)
    assert data.class_names == ["gospels", "letters"] and sizes(data)["train"] == 50 and sizes(data)["test"] == 20
    assert {example.group for example in data.splits["test"]} <= set(BIBLE_GENRES["gospels"] +
                                                                       BIBLE_GENRES["letters"])
    assert "Reina-Valera 1909" in data.provenance and "law" in data.info["verses_of_other_genres"]
    assert not chapters_of(data.splits["train"]) & chapters_of(data.splits["test"])
    with pytest.raises(DataError, match="data.classes: 'gospel' is not a Bible genre; did you mean 'gospels'"):
        load(config.model_copy(update={"classes": ["gospel", "letters"]}))


# ---------------------------------------------------------------------- fortunes


@needs_fortunes
def test_fortunes_from_the_debian_package():
    data = load(TextClassDataConfig(source="fortunes"))
    counts = sizes(data)
    assert data.class_names == sorted(FORTUNE_COUNTS) and data.info["fortunes"] == FORTUNE_COUNTS
    assert sum(counts.values()) == sum(FORTUNE_COUNTS.values()) == 4212 and not reasons(data)
    assert counts["test"] == 842 and counts["validation"] == 337
    texts = [example.text for examples in data.splits.values() for example in examples]
    assert not any("\b" in text or "\n" in text for text in texts)
    assert any("*friends*: cooperative classes" in text for text in texts)  # overstruck underline resolved
    assert any(text.endswith("-- H. Poincar\u00e9") for text in texts)  # accent struck over a letter
    assert {example.id.split(":#")[0] for example in data.splits["test"]} == set(FORTUNE_COUNTS)
    assert "Debian package fortunes (BSD licence" in data.provenance


def test_fortunes_fake_directory(tmp_path):
    write(tmp_path / "cats", b"A cat.\n%\n\x08Another cat, _\x08b_\x08o_\x08l_\x08d.\n%\nBad \xff cat\n%\n%\n")
    write(tmp_path / "cats.dat", b"\x00index")
    write(tmp_path / "dogs", "".join(f"Dog number {i}.\n%\n" for i in range(6)))
    config = TextClassDataConfig(source="fortunes", fortunes={"path": str(tmp_path), "categories": ["cats", "dogs"]},
                                 test_fraction=0.25, validation_fraction=0.0)
    data = load(config)
    assert sizes(data) == {"train": 6, "validation": 0, "test": 2} and data.class_names == ["cats", "dogs"]
    assert data.report["train"]["skipped_examples"] == [f"{tmp_path}/cats:#3: not UTF-8: byte 4"]
    texts = {example.id: example.text for examples in data.splits.values() for example in examples}
    assert texts["cats:#2"] == "Another cat, bold." and texts["dogs:#6"] == "Dog number 5."
    with pytest.raises(DataError, match=f"^{tmp_path}/cats:#3: not UTF-8: byte 4; "):
        load(config.model_copy(update={"on_error": "fail"}))
    with pytest.raises(DataError) as error:
        load(TextClassDataConfig(source="fortunes", fortunes={"path": str(tmp_path), "categories": ["cat"]}))
    assert str(error.value) == (f"data.fortunes.categories: no fortune file 'cat' in {tmp_path}; did you mean "
                                "'cats'? (available: cats, dogs)")
    with pytest.raises(DataError, match="sudo apt-get install fortunes .*or set data.fortunes.path"):
        load(TextClassDataConfig(source="fortunes", fortunes={"path": str(tmp_path / "none")}))


def test_strip_overstrike():
    assert strip_overstrike("*____\b\b\b\bknew* it") == "*knew* it"
    assert strip_overstrike("_\bI and I\bI\n_\b_\bto") == "I and I\nto"
    assert strip_overstrike("Jos'\be") == "Jose\u0301" and strip_overstrike("\b\bx") == "x"


# ------------------------------------------------------------------ data= (Python)


def user_config(**fields):
    return TextClassDataConfig(source="datasets", test_fraction=0.25, validation_fraction=0.0, **fields)


def test_user_data_with_names_indices_and_multi_hot():
    texts = [f"text {i}" for i in range(8)]
    data = text_class_data(UserData.of([(text, "pos" if i % 2 else "neg") for i, text in enumerate(texts)]),
                           user_config(), 0)
    assert sizes(data) == {"train": 6, "validation": 0, "test": 2} and data.class_names == ["neg", "pos"]
    assert min(data.splits["train"], key=lambda example: example.id).id == "train:0"
    user = UserData.of({"train": (np.array(texts), np.array([0, 1, 2, 1, 0, 2, 1, 2])),
                        "test": [("test one", np.int64(2)), (b"test two", 0), (b"\xff", 1), ("  ", 1)]},
                       extras=("class_names",))
    data = text_class_data(user, user_config(), 0, class_names=["cat", "dog", "eel"])
    assert data.class_names == ["cat", "dog", "eel"] and sizes(data) == {"train": 8, "validation": 0, "test": 2}
    assert [example.labels for example in data.splits["test"]] == [("eel",), ("cat",)]
    assert reasons(data) == {"test": {"not UTF-8": 1, "empty text": 1}}
    assert text_class_data(user, user_config(), 0).class_names == ["0", "1", "2"]
    with pytest.raises(DataError, match="class index 2 but only 2 class names"):
        text_class_data(user, user_config(), 0, class_names=["cat", "dog"])
    multi = UserData.of({"train": [("a", ["x", "y"]), ("b", []), ("c", "y|z"), ("d", [0, 2])] * 2,
                         "test": (np.array(["e", "f"]), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))})
    data = text_class_data(multi, user_config(multi_label=True), 0, class_names=["x", "y", "z"])
    assert [example.labels for example in data.splits["train"][:4]] == [("x", "y"), (), ("y", "z"), ("x", "z")]
    assert [example.labels for example in data.splits["test"]] == [("x", "z"), ("y",)]
    with pytest.raises(DataError, match="2 labels; set data.multi_label: true"):
        text_class_data(UserData.of([("a", ["x", "y"])]), user_config(), 0)
    with pytest.raises(DataError, match="a vector label with 2 classes set"):
        text_class_data(UserData.of({"train": (np.array(["a"]), np.array([[1, 1]]))}), user_config(), 0)


# ------------------------------------------------------------------------ config


def test_config_checks_are_one_line():
    cases = [({"classes": ["a", "b", "a"]}, "class listed twice: 'a'"),
             ({"label_separator": ""}, "label_separator\n  Value error, empty"),
             ({"delimiter": "ab"}, "expected one character"),
             ({"text_column": "x", "label_column": "x"}, "text_column and label_column are both 'x'"),
             ({"fortunes": {"categories": []}}, "name at least two fortune files"),
             ({"bible": {"language": "fr"}}, "Input should be 'en' or 'es'")]
    for fields, message in cases:
        with pytest.raises(ValidationError, match=message):
            TextClassDataConfig(**fields)
    assert TextClassDataConfig(classes=[" a ", "b  c"]).classes == ["a", "b c"]
    fields = TextClassDataConfig.model_fields
    assert all(field.description and "\n" not in field.description for field in fields.values())
    assert list(BIBLE_GENRES) == ["law", "history", "wisdom", "prophets", "gospels", "letters", "apocalyptic"]
    assert sum(len(books) for books in BIBLE_GENRES.values()) == 66


def test_sources_do_not_import_tensorflow():
    started = time.time()
    code = ("import sys; import toolkit.tasks.text_classification.sources, toolkit.tasks.text_classification.config; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert time.time() - started < 30
    assert {"bible_genre", "csv", "datasets", "folder", "fortunes", "jsonl", "tfds"} <= set(TEXT_CLASS_SOURCES.names())
