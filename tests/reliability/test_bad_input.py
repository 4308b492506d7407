"""Issue 9, reliability: every bad input a user can give is a test of its own.

Each one gives ONE clear line on stderr (`toolkit VERB: error: ...`, naming the
field or file and how to fix it) and exit code 2: never a traceback, never
lost data. The CLI is driven in-process (`toolkit.cli.main`) with pytest's
`capsys`, so the whole file runs without a subprocess and trains nothing:
the translation, speech and recommendation models are saved untrained
(`train.epochs: 0`), the image model is the session's `trained_run`.
"""

import copy
import io
import json
import os
import re
import struct
import zlib

import numpy as np
import pytest
import tiny_tasks
import yaml

from toolkit.cli import main
from toolkit.config import load_recipe, recipe_to_yaml
from toolkit.errors import RecipeError

from conftest import REPO, make_image_folder, write_recipe

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

RECIPES = os.path.join(REPO, "recipes")
SHIPPED = sorted(os.path.join(root, name) for root, _, names in os.walk(RECIPES)
                 for name in names if name.endswith(".yaml"))
FASHION = os.path.join(RECIPES, "image_classification", "fashion_mnist.yaml")


def recipe_id(path):
    return os.path.relpath(path, RECIPES)[: -len(".yaml")]


# --------------------------------------------------------------------- helpers


def cli(capsys, *argv):
    """(exit code, stdout, stderr) of `toolkit ARGV` run in this process."""
    code = main([str(item) for item in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv, keywords=(), code=2):
    """Runs `toolkit ARGV`; asserts exit `code` and one `toolkit VERB: error:` line holding each keyword."""
    status, out, err = cli(capsys, *argv)
    lines = err.splitlines()
    assert status == code, f"exit {status}, stderr: {err!r}"
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got {err!r}"
    line = lines[0]
    assert line.startswith(f"toolkit {argv[0]}: error: "), line
    for keyword in keywords:
        assert keyword.lower() in line.lower(), f"{keyword!r} not in {line!r}"
    return line


def nothing_left(directory):
    """No run directory, no half-written staging directory left in `directory`."""
    return not os.path.exists(directory) or os.listdir(directory) == []


# ====================================================================== recipes


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("task: image_classification\ndata:\n  image_size: [32, 32\nmodel: {backbone: resnet_mini}\n")
    refused(capsys, "config", path, keywords=("malformed YAML", "line 4", str(path)))
    refused(capsys, "train", path, keywords=("malformed YAML", "line 4"))


def test_recipe_that_is_not_utf8_or_not_a_mapping(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("task: image_classification\ndescription: caf\u00e9\n".encode("latin-1"))
    refused(capsys, "config", latin, keywords=("not UTF-8", "save the recipe as UTF-8"))
    listing = tmp_path / "list.yaml"
    listing.write_text("- task: image_classification\n")
    refused(capsys, "config", listing, keywords=("must be a YAML mapping",))
    refused(capsys, "config", tmp_path / "absent.yaml", keywords=("does not exist", "toolkit list recipes"))


FREE_FORM = {("track", "tags"), ("tune", "space")}  # mappings whose keys are not a schema's field names


def _sections(data, path=()):
    """Dotted paths of every mapping in a recipe, the top level included."""
    yield path
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _sections(value, path + (key,))


def _unknown_key_cases():
    """(recipe, section) for every section of every shipped recipe, resolved with all its defaults."""
    cases = []
    for path in SHIPPED:
        resolved = yaml.safe_load(recipe_to_yaml(load_recipe(path)))
        for section in _sections(resolved):
            cases.append(pytest.param(path, resolved, section, id=f"{recipe_id(path)}:{'.'.join(section) or 'top'}"))
    return cases


@pytest.mark.parametrize("path, resolved, section", _unknown_key_cases())
def test_unknown_key_at_every_level_of_every_shipped_recipe(path, resolved, section):
    data = copy.deepcopy(resolved)
    node = data
    for part in section:
        node = node[part]
    node["colour_depth"] = {}
    with pytest.raises(RecipeError) as error:
        load_recipe(data)
    message = str(error.value)
    assert "\n" not in message and error.value.exit_code == 2
    if section in FREE_FORM:  # its keys are the user's (tags) or recipe keys (a search space): the bad entry is named
        assert f"{'.'.join(section)}.colour_depth" in message, message
        return
    assert "colour_depth" in message and ("unknown" in message or "takes no option" in message), message
    if section and section[-1] != "options":  # export.options: "unknown export format 'colour_depth'"
        assert f"{section[-1]}.colour_depth" in message, message


@pytest.mark.parametrize("recipe, override, suggestion", [
    ("image_classification/fashion_mnist", "train.optimizer.learning_rat=0.1", "learning_rate"),
    ("segmentation/nuclei_unet", "model.decoder.filtres=[8]", "filters"),
    ("translation/bible_en_es", "tokenizer.max_lenght=32", "max_length"),
    ("speech_recognition/espeak_ctc", "data.espeak.utterances.tset=3", "test"),
    ("recommendation/movielens_rating", "evaluation.kk=[5]", "k"),
], ids=["image", "segmentation", "translation", "speech", "recommendation"])
def test_unknown_key_through_the_cli_suggests_the_closest(recipe, override, suggestion, capsys, tmp_path):
    path = os.path.join(RECIPES, recipe + ".yaml")
    refused(capsys, "config", path, override, keywords=(override.split("=")[0], "unknown key", "did you mean",
                                                        f"'{suggestion}'"))
    refused(capsys, "train", path, override, f"output.dir={tmp_path}", keywords=("unknown key",))
    assert nothing_left(tmp_path)


BAD_VALUES = [
    # (id, recipe, override, keywords in the message)
    ("image-epochs-not-int", "image_classification/fashion_mnist", "train.epochs=ten", ("train.epochs", "integer")),
    ("image-size-not-tuple", "image_classification/fashion_mnist", "data.image_size=big", ("data.image_size", "tuple")),
    ("image-head-not-section", "image_classification/fashion_mnist", "model.head=3", ("model.head", "dictionary")),
    ("image-channels-enum", "image_classification/fashion_mnist", "data.channels=2", ("data.channels", "one of 1, 3")),
    ("image-batch-zero", "image_classification/fashion_mnist", "train.batch_size=0", ("train.batch_size", "greater than 0")),
    ("image-fraction-above-1", "image_classification/fashion_mnist", "data.validation_fraction=1.5",
     ("data.validation_fraction", "less than 1")),
    ("image-lr-negative", "image_classification/fashion_mnist", "train.optimizer.learning_rate=-1",
     ("train.optimizer.learning_rate", "greater than 0")),
    ("image-weights-typo", "image_classification/fashion_mnist", "model.weights=imagenett",
     ("model.weights", "did you mean 'imagenet'")),
    ("image-frozen-above-epochs", "image_classification/tf_flowers_mobilenet_v3", "train.epochs=2",
     ("frozen_epochs", "more than epochs")),
    ("segmentation-filters-not-list", "segmentation/nuclei_unet", "model.decoder.filters=sixteen",
     ("model.decoder.filters", "list")),
    ("segmentation-dropout-above-1", "segmentation/nuclei_unet", "model.decoder.dropout=2",
     ("model.decoder.dropout", "less than 1")),
    ("segmentation-decoder-typo", "segmentation/nuclei_unet", "model.decoder.name=unett", ("did you mean 'unet'",)),
    ("segmentation-stride-zero", "segmentation/nuclei_unet", "data.tiles.stride=0", ("data.tiles.stride",)),
    ("translation-vocabulary-not-int", "translation/bible_en_es", "tokenizer.source_vocabulary=lots",
     ("tokenizer.source_vocabulary", "integer")),
    ("translation-max-length-negative", "translation/bible_en_es", "tokenizer.max_length=-3",
     ("tokenizer.max_length", "greater than 0")),
    ("translation-decoding-beyond-positions", "translation/bible_en_es", "decoding.max_length=500",
     ("decoding.max_length", "lower it")),
    ("translation-beam-zero", "translation/bible_en_es", "decoding.beam_width=0", ("decoding.beam_width",)),
    ("speech-rate-not-int", "speech_recognition/espeak_ctc", "data.sample_rate=fast", ("data.sample_rate", "integer")),
    ("speech-max-seconds-negative", "speech_recognition/espeak_ctc", "data.max_seconds=-1",
     ("data.max_seconds", "greater than 0")),
    ("speech-rnn-layers-zero", "speech_recognition/espeak_ctc", "model.rnn_layers=0", ("model.rnn_layers",)),
    ("speech-rnn-typo", "speech_recognition/espeak_ctc", "model.rnn=lstmm", ("did you mean 'lstm'",)),
    ("speech-no-train-utterances", "speech_recognition/espeak_ctc", "data.espeak.utterances.train=0",
     ("data.espeak.utterances.train",)),
    ("recommendation-embedding-not-int", "recommendation/movielens_rating", "model.embedding_dim=[1]",
     ("model.embedding_dim", "integer")),
    ("recommendation-fold-beyond-folds", "recommendation/movielens_rating", "data.fold=7", ("fold", "0 to 4")),
    ("recommendation-one-fold", "recommendation/movielens_rating", "data.folds=1", ("data.folds",)),
    ("recommendation-split-typo", "recommendation/movielens_rating", "data.split=randm", ("did you mean 'random'",)),
    ("recommendation-temperature-zero", "recommendation/movielens_retrieval", "model.temperature=0",
     ("model.temperature", "greater than 0")),
    ("override-not-key-value", "image_classification/fashion_mnist", "train.epochs", ("key.path=value",)),
    ("override-into-a-scalar", "image_classification/fashion_mnist", "train.epochs.max=3", ("not a section",)),
]


@pytest.mark.parametrize("recipe, override, keywords", [case[1:] for case in BAD_VALUES],
                         ids=[case[0] for case in BAD_VALUES])
def test_wrong_type_or_out_of_range_value(recipe, override, keywords, capsys):
    refused(capsys, "config", os.path.join(RECIPES, recipe + ".yaml"), override, keywords=keywords)


def test_unknown_backbone_lists_close_matches(capsys, tmp_path):
    refused(capsys, "config", FASHION, "model.backbone=mobilenet_v3_smal",
            keywords=("model.backbone", "did you mean 'mobilenet_v3_small'"))
    nuclei = os.path.join(RECIPES, "segmentation", "nuclei_unet.yaml")
    refused(capsys, "train", nuclei, "model.backbone=resnet_mni", f"output.dir={tmp_path}",
            keywords=("model.backbone", "did you mean 'resnet_mini'"))
    refused(capsys, "config", FASHION, "model.backbone=file:weights.h5", keywords=("model.weights: file:",))


def _minimum_sizes():
    from toolkit.backbones.registry import BACKBONES

    return [(name, spec.min_input_size) for name, spec in BACKBONES.items() if spec.min_input_size > 1]


@pytest.mark.parametrize("backbone, minimum", _minimum_sizes(), ids=[name for name, _ in _minimum_sizes()])
@pytest.mark.parametrize("task_recipe", ["image_classification/fashion_mnist", "segmentation/nuclei_unet"],
                         ids=["classification", "segmentation"])
def test_backbone_minimum_input_size_above_the_image_size(task_recipe, backbone, minimum, capsys):
    small = minimum - 1
    refused(capsys, "config", os.path.join(RECIPES, task_recipe + ".yaml"), f"model.backbone={backbone}",
            f"data.image_size=[{small},{small}]", "data.channels=3", "model.weights=none",
            keywords=("data.image_size", f"at least {minimum}x{minimum}", "raise data.image_size"))


# ------------------------------------------------- recipes that need the data or a file


@pytest.fixture
def image_recipe(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=3)
    return write_recipe(tmp_path / "tiny.yaml", data, tmp_path / "runs", train={"epochs": 1},
                        export={"formats": []})


@pytest.mark.parametrize("override, keywords", [
    ("data.path=/nonexistent/images", ("data.path", "/nonexistent/images", "does not exist")),
    ("model.weights=file:/nonexistent/resnet.weights.h5", ("model.weights", "/nonexistent/resnet.weights.h5",
                                                           "does not exist")),
    ("model.backbone=file:/nonexistent/backbone.keras", ("model.backbone", "/nonexistent/backbone.keras",
                                                         "does not exist")),
    ("model.backbone=run:/nonexistent/run", ("run:/nonexistent/run", "no such run directory")),
    ("model.backbone=hub:resnet_18_imagenett", ("model.backbone", "unknown KerasHub preset",
                                                "did you mean 'resnet_18_imagenet'")),
], ids=["data-path", "weights-file", "backbone-file", "backbone-run", "hub-preset-typo"])
def test_missing_file_or_unknown_preset_named_by_the_recipe(image_recipe, override, keywords, capsys, tmp_path):
    refused(capsys, "train", image_recipe, override, keywords=keywords)
    assert nothing_left(tmp_path / "runs")  # the run directory made for it is gone again


@pytest.mark.parametrize("task, source", [
    ("segmentation", "folder"),
    ("translation", "tsv"),
    ("speech_recognition", "folder"),
    ("recommendation", "csv"),
])
def test_missing_data_path_of_every_task(task, source, tmp_path, capsys):
    path = tiny_tasks.write(task, tmp_path, epochs=1)
    refused(capsys, "train", path, f"data.source={source}", "data.path=/nonexistent/data",
            keywords=("data.path", "/nonexistent/data"))
    assert nothing_left(tmp_path / "runs")


def test_unknown_hub_preset_of_translation_and_speech(tmp_path, capsys):
    translation = tiny_tasks.write("translation", tmp_path / "translation", epochs=1)
    refused(capsys, "train", translation, "model.pretrained=hub:bart_base_enn",
            keywords=("model.pretrained", "unknown KerasHub preset", "did you mean 'bart_base_en'"))
    assert nothing_left(tmp_path / "translation" / "runs")
    refused(capsys, "config", translation, "model.pretrained=bart_base_en", keywords=("model.pretrained", "hub:"))
    if tiny_tasks.available("speech_recognition") is None:
        speech = tiny_tasks.write("speech_recognition", tmp_path / "speech", epochs=1)
        refused(capsys, "train", speech, "model.pretrained=hub:whisper_tiny_enn", "decoding.method=greedy",
                keywords=("model.pretrained", "unknown KerasHub preset", "did you mean 'whisper_tiny_en'"))
        assert nothing_left(tmp_path / "speech" / "runs")


@pytest.mark.parametrize("task, overrides, keywords", [
    ("speech_recognition", ["data.source=espeak", "data.espeak.test_voices=[en-martian]"],
     ("data.espeak voice 'en-martian'", "no voice")),
    ("speech_recognition", ["decoding.lexicon=/nonexistent/words.txt"], ("decoding.lexicon", "/nonexistent/words.txt")),
    ("segmentation", ["model.backbone=run:saved_models/fashion_mnistt"], ("model.backbone",
                                                                         "saved_models/fashion_mnistt:")),
    ("recommendation", ["model.towers=run:/nonexistent/run"], ("model.towers", "no such run directory")),
    ("translation", ["model.pretrained=hub:/nonexistent/bart"], ("model.pretrained", "no such preset directory")),
], ids=["espeak-voice", "lexicon-file", "run-backbone", "run-towers", "preset-dir"])
def test_outside_references_are_checked_before_any_data_is_read(task, overrides, keywords, tmp_path, capsys,
                                                                monkeypatch):
    """A voice, lexicon, run or preset that does not exist fails at once: no corpus is spoken, no data read, no
    model loaded, no run directory left."""
    if tiny_tasks.available(task) is not None:
        pytest.skip(tiny_tasks.available(task))
    from toolkit.tasks.base import Task

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the recipe's references were checked")

    monkeypatch.setattr(Task, "read_data", no_data)
    for module, name in (("toolkit.tasks.speech_recognition.sources", "synthesize_corpus"),
                         ("toolkit.backbones.build", "build_backbone")):
        monkeypatch.setattr(module + "." + name, no_data)
    path = tiny_tasks.write(task, tmp_path, epochs=1)
    refused(capsys, "train", path, *overrides, keywords=keywords)
    assert nothing_left(tmp_path / "runs")
    assert not os.path.exists(os.path.join(os.environ["TOOLKIT_HOME"], "data", "speech"))


# ------------------------------------------------------------ runs as backbones


def _untrained_run(task, root, **recipe_changes):
    """A finished run of `task` whose model was never trained (train.epochs: 0): the files a real run has, in a
    second or two."""
    import toolkit

    recipe = tiny_tasks.recipe(task, root, epochs=0)
    recipe.export.formats = []
    for dotted, value in recipe_changes.items():
        section, _, field = dotted.rpartition(".")
        setattr(recipe if not section else _dig(recipe, section), field, value)
    return toolkit.train(recipe, log=lambda line: None).path


def _dig(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Untrained runs (train.epochs: 0) of translation, speech recognition and recommendation."""
    root = tmp_path_factory.mktemp("bad_input_runs")
    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOOLKIT_HOME", str(root / "home"))
        for task in ("recommendation", "translation", "speech_recognition"):
            if tiny_tasks.available(task) is None:
                made[task] = _untrained_run(task, root / task)
    return made


def _need(runs, task):
    if task not in runs:
        pytest.skip(tiny_tasks.available(task))
    return runs[task]


@pytest.mark.parametrize("task", ["recommendation", "translation", "speech_recognition"])
def test_run_backbone_of_another_task(task, runs, image_recipe, capsys, tmp_path):
    other = _need(runs, task)
    refused(capsys, "train", image_recipe, f"model.backbone=run:{other}",
            keywords=(f"run:{other}", f"is a {task} run", "image classification, object detection or segmentation run"))
    assert nothing_left(tmp_path / "runs")


# ========================================================================= data


def _corrupt(path, data=b"\xff\xd8\xff\xe0 this is not really a jpeg"):
    with open(path, "wb") as f:
        f.write(data)


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    _corrupt(path, data[: len(data) // 2])


def test_corrupt_and_truncated_images_are_skipped_with_a_warning_and_counted(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", per_class=6)
    _corrupt(os.path.join(data, "red", "red_000.jpg"))
    _truncate(os.path.join(data, "green", "green_001.png"))
    _truncate(os.path.join(data, "blue", "blue_000.jpg"))
    recipe = write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs")
    out_dir = tmp_path / "records"
    status, out, err = cli(capsys, "data", "to-tfrecord", recipe, out_dir, "--shards", "1")
    assert status == 0 and not err, err
    warnings = [line for line in out.splitlines() if "warning: " in line]  # one line per split that lost files
    assert warnings and sum(int(line.split("skipped ")[1].split()[0]) for line in warnings) == 3, out
    with open(out_dir / "tfrecord.json", encoding="utf-8") as f:
        assert sum(json.load(f)["splits"].values()) == 18 - 3
    # The training pipeline skips and counts the same files (README: metrics.json -> data).
    from toolkit.tasks import make_task

    task = make_task(load_recipe(recipe))
    for split in ("train", "validation", "test"):
        task.build_inputs(split)
    assert sum(report["skipped"] for report in task.data_report().values()) == 3


def test_training_says_in_one_line_that_it_skipped_corrupt_images(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", per_class=4, corrupt=2)
    recipe = write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs", train={"epochs": 1},
                          export={"formats": []})
    status, out, err = cli(capsys, "train", recipe)
    assert status == 0, err
    warnings = [line for line in out.splitlines() if "warning: skipped" in line]
    assert len(warnings) == 1 and "could not be used" in warnings[0] and "metrics.json" in warnings[0], out
    counts = [int(count) for count in re.findall(r"(\d+) \w+ examples? \(", warnings[0])]  # "2 train examples ("
    with open(tmp_path / "runs" / "r" / "metrics.json", encoding="utf-8") as f:
        report = json.load(f)["data"]
    # the line names the training splits (read before training); the test split is read at evaluation
    assert sum(counts) == sum(report[split]["skipped"] for split in ("train", "validation") if split in report) >= 1
    assert sum(part.get("skipped", 0) for part in report.values() if isinstance(part, dict)) == 2


def test_corrupt_images_fail_under_on_error_fail(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", per_class=4, corrupt=1)
    recipe = write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs", data={"on_error": "fail"})
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records",
            keywords=("broken_0.jpg", "data.on_error: skip"))
    assert not os.path.exists(tmp_path / "records") and [n for n in os.listdir(tmp_path) if "tfrecord" in n] == []


def test_a_folder_of_only_corrupt_images_is_an_error(tmp_path, capsys):
    data = tmp_path / "images"
    for name in ("cats", "dogs"):
        os.makedirs(data / name)
        for index in range(3):
            _corrupt(data / name / f"{name}{index}.jpg")
    recipe = write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs")
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", keywords=("could be", "images"))
    refused(capsys, "train", recipe, keywords=("none of the", "could be decoded"))
    assert nothing_left(tmp_path / "runs") and not os.path.exists(tmp_path / "records")


def test_to_tfrecord_never_replaces_a_directory_it_did_not_write(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", per_class=3)
    recipe = write_recipe(tmp_path / "r.yaml", data, tmp_path / "runs")
    mine = tmp_path / "my_documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    refused(capsys, "data", "to-tfrecord", recipe, mine, "--shards", "1",
            keywords=(str(mine), "not a toolkit TFRecord directory", "choose an empty or new directory"))
    assert sorted(os.listdir(mine)) == ["thesis.txt"] and (mine / "thesis.txt").read_text() == "years of work"
    assert sorted(os.listdir(tmp_path)) == ["images", "my_documents", "r.yaml"]  # no staging directory left


def _segmentation_recipe(tmp_path, problems=(), **data):
    from test_segmentation import make_mask_folder, seg_recipe

    folder = make_mask_folder(tmp_path / "seg", count=6, problems=problems)
    recipe = seg_recipe(tmp_path, folder, data=data, export={"formats": []})
    path = tmp_path / "seg.yaml"
    path.write_text(recipe_to_yaml(recipe))
    return str(path)


def test_segmentation_mask_of_the_wrong_size(tmp_path, capsys):
    recipe = _segmentation_recipe(tmp_path, problems=("wrong_size",), on_error="fail")
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records",
            keywords=("small.png", "mask is 40x30, its image is 40x40"))
    status, out, err = cli(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", "data.on_error=skip")
    assert status == 0 and not err and "skipped 1" in out, out + err


def test_segmentation_mask_with_a_class_index_beyond_the_classes(tmp_path, capsys):
    recipe = _segmentation_recipe(tmp_path, problems=("bad_index",), on_error="fail")
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", keywords=("odd.png", "data.classes"))


def _translation_recipe(tmp_path, lines, name="train.tsv"):
    recipe = tiny_tasks.write("translation", tmp_path, epochs=1)
    folder = os.path.join(str(tmp_path), "pairs")
    with open(os.path.join(folder, name), "ab") as f:
        f.write(b"".join(lines))
    return recipe, folder


@pytest.mark.parametrize("line, keywords", [
    (b"caf\xe9 au lait\tun caf\xe9\n", ("not UTF-8",)),
    (b"just one column\n", ("no tab",)),
    (b"\ta target without a source\n", ("empty side",)),
], ids=["not-utf8", "no-tab", "empty-side"])
def test_translation_bad_line_fails_naming_file_and_line(line, keywords, tmp_path, capsys):
    recipe, folder = _translation_recipe(tmp_path, [line])
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", "data.on_error=fail",
            keywords=(os.path.join(folder, "train.tsv") + ":241", "data.on_error: skip") + keywords)
    status, out, err = cli(capsys, "data", "to-tfrecord", recipe, tmp_path / "records")  # skip: counted
    assert status == 0 and not err, err


def test_translation_file_that_is_not_utf8_at_all(tmp_path, capsys):
    recipe, folder = _translation_recipe(tmp_path, [])
    with open(os.path.join(folder, "train.tsv"), "wb") as f:
        f.write("\n".join("caf\u00e9 %d\tun caf\u00e9 %d" % (i, i) for i in range(20)).encode("utf-16"))
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records",
            keywords=("train.tsv", "no usable", "skipped"))


def _speech_recipe(tmp_path, extra_lines=(), raw_lines=b""):
    from test_speech_data import make_speech_folder

    folder = make_speech_folder(tmp_path / "speech", count=8, rate=16000, seconds=0.2, extra_lines=extra_lines)
    if raw_lines:
        with open(os.path.join(folder, "metadata.csv"), "ab") as f:
            f.write(raw_lines)
    recipe = tiny_tasks.recipe("speech_recognition", tmp_path, epochs=1)
    recipe.data.source, recipe.data.path = "folder", folder
    path = tmp_path / "speech.yaml"
    path.write_text(recipe_to_yaml(recipe))
    return str(path), folder


def test_speech_transcript_not_utf8(tmp_path, capsys):
    from toolkit.data.audio_io import write_wav

    recipe, folder = _speech_recipe(tmp_path, raw_lines=b"latin|caf\xe9 noir\n")
    write_wav(os.path.join(folder, "wavs", "latin.wav"), np.zeros(1600), 16000)
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", "data.on_error=fail",
            keywords=("metadata.csv:9", "not UTF-8"))


def test_speech_empty_transcript(tmp_path, capsys):
    from toolkit.data.audio_io import write_wav

    recipe, folder = _speech_recipe(tmp_path, extra_lines=["quiet|"])
    write_wav(os.path.join(folder, "wavs", "quiet.wav"), np.zeros(1600), 16000)
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", "data.on_error=fail",
            keywords=("metadata.csv:9", "empty transcript", "fix the transcript"))


def test_speech_zero_length_audio(tmp_path, capsys):
    from toolkit.data.audio_io import write_wav

    recipe, folder = _speech_recipe(tmp_path, extra_lines=["hush|not a sound"])
    write_wav(os.path.join(folder, "wavs", "hush.wav"), np.zeros(0), 16000)
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records", "data.on_error=fail",
            keywords=("hush.wav", "no audio samples"))


def test_speech_folder_without_one_usable_utterance(tmp_path, capsys):
    from toolkit.data.audio_io import write_wav

    recipe, folder = _speech_recipe(tmp_path)
    for name in os.listdir(os.path.join(folder, "wavs")):
        write_wav(os.path.join(folder, "wavs", name), np.zeros(0), 16000)
    refused(capsys, "data", "to-tfrecord", recipe, tmp_path / "records",
            keywords=("metadata.csv", "no usable utterance", "unreadable audio: 8"))


def _interactions(tmp_path, extra="", users=8, items=6):
    rows = [f"u{u},i{(u + i) % items},{1 + (u * i) % 5},{u * 100 + i}" for u in range(users) for i in range(4)]
    path = tmp_path / "plays.csv"
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n" + extra)
    return str(path)


def _recommendation_data(table, **data):
    import toolkit

    recipe = load_recipe({"task": "recommendation", "data": {"source": "csv", "path": table,
                                                             "columns": {"user": "user", "item": "item"}, **data},
                          "model": {"kind": "rating", "embedding_dim": 4, "hidden": [4]}})
    return toolkit.load_data(recipe)


def test_recommendation_duplicate_rows_keep_the_latest_and_are_counted(tmp_path):
    table = _interactions(tmp_path, extra="u0,i0,1,1\nu0,i0,5,999999\n")
    data = _recommendation_data(table, split="random", test_fraction=0.2, validation_fraction=0.0)
    report = data.report["train"]
    assert report["skipped_reasons"].get("duplicate") == 2, report  # u0,i0 was already rated at time 0
    assert any("duplicate: user u0 item i0" in line for line in report["skipped_examples"])
    assert data.info["rows"]["read"] == 34


def test_recommendation_duplicate_ids_in_a_feature_table_are_counted(tmp_path):
    table = _interactions(tmp_path)
    items = tmp_path / "items.csv"
    items.write_text("item,title\n" + "".join(f"i{i},Item {i}\n" for i in range(6)) + "i2,Item two again\n")
    data = _recommendation_data(table, split="random", item_features=str(items))
    report = data.report["train"]
    assert report["skipped_reasons"].get("duplicate_id") == 1, report
    assert any("items.csv:4: duplicate_id: id i2 again on line 8" in line for line in report["skipped_examples"])
    assert "Item two again" in data.item_titles.tolist()  # the last row wins, as documented


def test_recommendation_unknown_ids_of_held_out_rows_are_counted(tmp_path):
    table = _interactions(tmp_path, extra="stranger,i1,4,5\n")
    counted = 0
    for fold in range(5):
        data = _recommendation_data(table, split="kfold", fold=fold, validation_fraction=0.0)
        counted += data.report["test"]["skipped_reasons"].get("unknown_user", 0)
        assert data.report["test"]["rows_read"] == data.report["test"]["examples"] + data.report["test"]["skipped"]
    assert counted == 1


def test_recommendation_table_with_no_usable_row(tmp_path, capsys):
    recipe = tiny_tasks.write("recommendation", tmp_path, epochs=1)
    table = tmp_path / "bad_plays.csv"
    table.write_text("user,item,rating,timestamp\nu1,,4,1\n,i2,4,2\nu3,i3,abc,3\n")
    refused(capsys, "train", recipe, f"data.path={table}", keywords=(str(table),))
    assert nothing_left(tmp_path / "runs")


# =================================================================== prediction


def _png_header_bomb(path, size, bit_depth=1):
    """A valid grayscale PNG of size x size pixels (all black) that compresses to a few kilobytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * (-(-size * bit_depth // 8))
    compressor, parts = zlib.compressobj(9), []
    for _ in range(size):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", size, size, bit_depth, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return str(path)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bombs")
    return {"30000px": _png_header_bomb(root / "bomb_30000.png", 30000),
            "12000px": _png_header_bomb(root / "bomb_12000.png", 12000)}


@pytest.fixture
def inputs(tmp_path):
    from PIL import Image

    files = {}
    files["txt"] = tmp_path / "notes.txt"
    files["txt"].write_text("not an image\n")
    files["random.png"] = tmp_path / "random.png"
    files["random.png"].write_bytes(np.random.RandomState(0).bytes(2000))
    files["truncated.png"] = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray((np.random.RandomState(1).rand(48, 48, 3) * 255).astype(np.uint8)).save(buffer, "PNG")
    files["truncated.png"].write_bytes(buffer.getvalue()[:600])
    files["empty.jpg"] = tmp_path / "empty.jpg"
    files["empty.jpg"].write_bytes(b"")
    files["directory"] = tmp_path / "a_folder.png"
    files["directory"].mkdir()
    files["missing"] = tmp_path / "missing.png"
    files["image"] = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(files["image"])
    files["wav"] = tmp_path / "clip.wav"
    from toolkit.data.audio_io import write_wav

    write_wav(files["wav"], np.zeros(1600), 16000)
    files["empty.wav"] = tmp_path / "empty.wav"
    write_wav(files["empty.wav"], np.zeros(0), 16000)
    files["random.keras"] = tmp_path / "random.keras"
    files["random.keras"].write_bytes(np.random.RandomState(2).bytes(3000))
    files["random.onnx"] = tmp_path / "random.onnx"
    files["random.onnx"].write_bytes(np.random.RandomState(3).bytes(3000))
    files["random.tflite"] = tmp_path / "random.tflite"
    files["random.tflite"].write_bytes(np.random.RandomState(4).bytes(3000))
    return {name: str(path) for name, path in files.items()}


IMAGE_INPUTS = [
    ("txt", ("notes.txt", "not a readable image")),
    ("random.png", ("random.png", "not a readable image")),
    ("truncated.png", ("truncated.png", "not a readable image")),
    ("empty.jpg", ("empty.jpg", "not a readable image")),
    ("directory", ("a_folder.png", "directory")),
    ("missing", ("missing.png", "no such file")),
    ("wav", ("clip.wav", "not a readable image")),
]


@pytest.mark.parametrize("name, keywords", IMAGE_INPUTS, ids=[name for name, _ in IMAGE_INPUTS])
@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_image_model_refuses_a_wrong_input_file(runtime, name, keywords, trained_run, inputs, capsys):
    model = os.path.join(trained_run["run_dir"], "export", "model.onnx") if runtime == "onnx" else \
        trained_run["run_dir"]
    refused(capsys, "predict", model, inputs["image"], inputs[name], keywords=keywords)


@pytest.mark.parametrize("bomb", ["30000px", "12000px"])
@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_decompression_bomb_is_refused_quickly_without_allocating_it(runtime, bomb, bombs, trained_run, capsys):
    import resource
    import time

    model = os.path.join(trained_run["run_dir"], "export", "model.onnx") if runtime == "onnx" else \
        trained_run["run_dir"]
    if runtime == "keras":
        cli(capsys, "predict", model, os.path.join(trained_run["run_dir"], "export", "samples", "000.png"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.time()
    refused(capsys, "predict", model, bombs[bomb], keywords=(os.path.basename(bombs[bomb]), "too large",
                                                             "pixels"))
    assert time.time() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 300 * 1024  # never the 0.4-2.7 GB image


MODEL_PATHS = [
    ("random-bytes.keras", "random.keras", ("random.keras", "not a Keras .keras file")),
    ("random-bytes.onnx", "random.onnx", ("random.onnx", "not")),
    ("random-bytes.tflite", "random.tflite", ("random.tflite", "not")),
    ("an-image", "image", ("photo.png", "MODEL must be")),
    ("a-plain-directory", "directory", ("a_folder.png", "neither a run directory")),
    ("missing", "missing", ("missing.png", "no such model")),
]


@pytest.mark.parametrize("name, keywords", [case[1:] for case in MODEL_PATHS], ids=[case[0] for case in MODEL_PATHS])
def test_model_path_that_is_not_a_model(name, keywords, inputs, capsys):
    refused(capsys, "predict", inputs[name], inputs["image"], keywords=keywords)


@pytest.fixture
def unreadable_files(tmp_path):
    """Inputs that are not plain files of a sane size: a character device, a FIFO and a 3 GB sparse file."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as f:
        f.truncate(3 << 30)  # 3 GB of zeros that take no disk space
    return {"dev-zero": ("/dev/zero", "character device"), "fifo": (str(fifo), "FIFO"),
            "sparse-3gb": (str(sparse), "more than")}


@pytest.mark.parametrize("which", ["dev-zero", "fifo", "sparse-3gb"])
@pytest.mark.parametrize("runtime", ["keras", "saved_model", "onnx"])
def test_predict_refuses_devices_fifos_and_huge_files_within_two_seconds(runtime, which, unreadable_files,
                                                                        trained_run, capsys):
    """Checked with one stat before the model is loaded: never read, never a hang, never gigabytes of memory."""
    import resource
    import time

    model = {"keras": trained_run["run_dir"], "saved_model": os.path.join(trained_run["run_dir"], "export",
                                                                          "saved_model"),
             "onnx": os.path.join(trained_run["run_dir"], "export", "model.onnx")}[runtime]
    path, keyword = unreadable_files[which]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.time()
    refused(capsys, "predict", model, path, keywords=(path, keyword))
    assert time.time() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024


@pytest.mark.parametrize("runtime", ["keras", "saved_model", "onnx"])
def test_a_device_among_readable_inputs_is_one_error_line_and_the_rest_is_predicted(runtime, unreadable_files,
                                                                                    trained_run, capsys):
    import toolkit

    model = toolkit.load({"keras": trained_run["run_dir"],
                          "saved_model": os.path.join(trained_run["run_dir"], "export", "saved_model"),
                          "onnx": os.path.join(trained_run["run_dir"], "export", "model.onnx")}[runtime])
    sample = os.path.join(trained_run["run_dir"], "export", "samples", "000.png")
    errors = []
    results = model.predict([sample, unreadable_files["fifo"][0], "/dev/zero"], errors=errors)
    assert [r["input"] for r in results] == [sample]
    assert [item for item, _ in errors] == [unreadable_files["fifo"][0], "/dev/zero"]
    assert "FIFO" in errors[0][1] and "character device" in errors[1][1]


def test_a_keras_file_that_is_a_zip_bomb_or_a_device_is_refused_before_a_member_is_read(tmp_path, capsys):
    """A 1 MB archive whose member expands to 1 GB, and a .keras path that is /dev/zero: one line, no memory."""
    import resource
    import zipfile

    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(1024):
                member.write(block)
    assert bomb.stat().st_size < 2 << 20
    device = tmp_path / "zero.keras"
    device.symlink_to("/dev/zero")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(capsys, "predict", bomb, image, keywords=("bomb.keras", "would expand to 1,024 MB"))
    refused(capsys, "predict", device, image, keywords=("zero.keras", "not a regular file"))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024


def test_a_run_name_with_a_nul_byte_is_one_line(tmp_path, capsys):
    """YAML's "\\0" escape puts a NUL in the name; a run directory cannot hold it."""
    recipe = tmp_path / "nul.yaml"
    recipe.write_text(open(FASHION, encoding="utf-8").read() + '\nname: "run\\0x"\n', encoding="utf-8")
    refused(capsys, "config", recipe, keywords=("name", "control characters", "run\\x00x"))


def test_image_given_to_a_speech_model_and_empty_audio(runs, inputs, capsys):
    speech = _need(runs, "speech_recognition")
    refused(capsys, "predict", speech, inputs["image"], keywords=("photo.png", "unreadable audio"))
    refused(capsys, "predict", speech, inputs["empty.wav"], keywords=("empty.wav", "no audio samples"))
    refused(capsys, "predict", speech, inputs["txt"], keywords=("notes.txt", "unreadable audio"))
    refused(capsys, "predict", speech, "--text", "hello", keywords=("--text", "speech_recognition model"))


def test_translation_model_refuses_files_that_are_not_utf8_text(runs, inputs, capsys):
    translation = _need(runs, "translation")
    refused(capsys, "predict", translation, inputs["image"], keywords=("photo.png", "not UTF-8"))
    refused(capsys, "predict", translation, inputs["missing"], keywords=("missing.png", "no such file"))
    refused(capsys, "predict", translation, "--user", "u1", keywords=("--user", "not a recommender"))


def test_text_longer_than_the_model_is_truncated_with_a_warning(runs, capsys):
    import toolkit

    translation = _need(runs, "translation")
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 30)
    status, out, err = cli(capsys, "predict", translation, "--text", long_text, "--text", "a short one")
    assert status == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("toolkit predict: warning: ") and "truncated" in lines[0], err
    assert "Traceback" not in err and len(out.splitlines()) == 2
    results = toolkit.load(translation).predict([long_text, "a short one"])
    assert "truncated" in results[0]["warning"] and "warning" not in results[1]


def test_recommender_unknown_user_and_item(runs, capsys):
    recommender = _need(runs, "recommendation")
    refused(capsys, "predict", recommender, "--user", "nobody",
            keywords=("user id 'nobody'", "training users", "data.unknown_ids: popular"))
    refused(capsys, "predict", recommender, "--user", "u1", "--item", "no_such_item",
            keywords=("item id 'no_such_item'", "training items"))
    refused(capsys, "predict", recommender, "--user", "u1", "--item", "i1", "--item", "i2",
            keywords=("--item", "one --item per --user"))
    refused(capsys, "predict", recommender, "photo.png", keywords=("--user",))
