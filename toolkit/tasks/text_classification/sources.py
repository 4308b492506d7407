"""Text classification data sources: labelled texts per split.

- `csv`: `data.path` is one CSV or TSV file with a header row naming the columns (`data.text_column`,
  `data.label_column`; test and validation cut from it at random, seeded) or a directory holding `train.csv`
  (or `.tsv`, `.tab`) and optionally `validation` (`val`, `dev`) and `test` files. The delimiter is a tab for
  `.tsv`/`.tab` files and a comma otherwise (`data.delimiter`); fields may be quoted and span lines, as Python's
  csv module and pandas read them. With `data.multi_label` the label column holds labels joined by
  `data.label_separator` ("sports|politics").
- `folder`: one folder of `.txt` files per class, each file one text: `<path>/<class>/*.txt`, or
  `<path>/{train,validation|val|dev,test}/<class>/*.txt` (used when `train/` exists). This is the layout of the
  IMDB reviews (`aclImdb`): its `train/unsup` folder holds unlabelled reviews, so set `data.classes: [neg, pos]`;
  class folders not in `data.classes` are left out (and counted in `info["folders_left_out"]`).
- `jsonl`: one JSON object per line (a file, or a directory with `train.jsonl` etc. as for csv); the label may
  be a string, a number or, with `data.multi_label`, a list.
- `tfds`: a TFDS dataset with a text feature and a class label (`data.tfds_name`), e.g. `imdb_reviews`
  (text -> neg/pos) or `ag_news_subset` (description -> World/Sports/Business/Sci/Tech). The text is the
  feature named by `data.text_column` when the dataset has it, else the supervised input (ag_news_subset's
  description; its title is not added); the class names are the label feature's own, in its order.
- `bible_genre`: the verses of one Bible (`data.bible.language`: the World English Bible or the Reina-Valera
  1909, public domain, Debian packages sword-text-web and sword-text-sparv; `toolkit.data.bible`), labelled with
  the genre of their book (`BIBLE_GENRES`: law, history, wisdom, prophets, gospels, letters, apocalyptic); the
  group of a verse is its book. Whole chapters go to one split (a seeded draw per genre), so no chapter, nor a
  verse's neighbours, is in two splits.
- `fortunes`: the fortune cookies of the Debian package fortunes (BSD licence), labelled with their file
  (`data.fortunes.categories`: computers, people, politics, science, men-women); nroff overstrike (bold,
  underline, accents written with backspaces) is resolved, so `_\\bw` reads `w` and `e\\b'` reads `é`.
- `datasets`: Python data given to `toolkit.train(recipe, data=...)` (`text_class_data`).

Every text is normalised (`normalize_text`). A line, file or fortune that is not UTF-8, a text that is empty
(or shorter than `data.min_characters`), an empty label, a label not in `data.classes` and a row without the
expected columns or keys are skipped and counted per split, or fail naming the file and line with
`data.on_error: fail`. Validation and test texts of labels the training split does not have are left out
("label not in the training split"). The class names are `data.classes`, else the TFDS label names or the
user's `class_names`, else the sorted labels of the training split. Everything is deterministic for a seed.
Nothing here imports TensorFlow at module level.

Example:

>>> import os, tempfile
>>> from toolkit.tasks.text_classification.config import TextClassDataConfig
>>> from toolkit.tasks.text_classification.sources import TEXT_CLASS_SOURCES
>>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
>>> rows = "".join(f'"review {i}, {"good" if i % 2 else "bad"}",{"pos" if i % 2 else "neg"}\\n' for i in range(20))
>>> with open(path, "w", encoding="utf-8") as f:
...     _ = f.write("text,label\\n" + rows + ",pos\\n")
>>> data = TEXT_CLASS_SOURCES.get("csv")(TextClassDataConfig(path=path), seed=0)
>>> data.class_names, {name: len(texts) for name, texts in data.splits.items()}
(['neg', 'pos'], {'train': 14, 'validation': 2, 'test': 4})
>>> data.splits["train"][0]
TextExample(id='reviews.csv:2', text='review 0, bad', labels=('neg',), group='')
>>> data.report["train"]["skipped_reasons"]
{'empty text': 1}
"""

import csv
import dataclasses
import json
import os
import re

import numpy as np

from toolkit.data import user_data
from toolkit.data.skips import describe
from toolkit.data.splits import SPLITS, count_skip, empty_report, random_cut, utf8_lines
from toolkit.data.text import normalize_text
from toolkit.errors import DataError
from toolkit.registry import Registry, did_you_mean

SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val", "dev"), "test": ("test",)}
CSV_SUFFIXES = (".csv", ".tsv", ".tab")
NOT_IN_TRAINING = "label not in the training split"
describe("not UTF-8", "lines, files or texts that are not UTF-8")
describe("empty text", "texts that are empty or shorter than data.min_characters")
describe("empty label", "examples without a label")
describe("unknown label", "examples whose label is not in data.classes (or the class names given)")
describe("bad row", "rows without the expected columns or keys")
describe(NOT_IN_TRAINING, "validation and test texts of labels the training split does not have", expected=True)

TEXT_CLASS_SOURCES = Registry("text classification data source", DataError)
TEXT_CLASS_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)


@dataclasses.dataclass
class TextExample:
    """One labelled text.

    Args:
        id: str. Where it came from ("reviews.csv:12", a file path, "imdb_reviews/test:17", "Gen 1:1",
            "computers:#35").
        text: str. The normalised text (never empty).
        labels: tuple of str. Its class names: exactly one for single-label data; none or several with
            `data.multi_label`.
        group: str. A slice the metrics report separately (the book of a Bible verse; "" when none).
    """

    id: str
    text: str
    labels: tuple
    group: str = ""


@dataclasses.dataclass
class TextClassData:
    """What a text classification source returns.

    Args:
        splits: dict. "train", "validation", "test" -> list of `TextExample` (validation may be empty).
        report: dict. Per split: examples, skipped, skipped_reasons, skipped_examples (`toolkit.data.splits`).
        provenance: str. One line: where the data came from (model card).
        class_names: list of str. Class names in index order.
        multi_label: bool. Whether a text may have several labels (sigmoid outputs).
        info: dict. Source details: the split rule, "class_counts" ({split: {class: texts}}), counts before
            `data.limit` ("available"), what was left out.
    """

    splits: dict
    report: dict
    provenance: str
    class_names: list
    multi_label: bool
    info: dict = dataclasses.field(default_factory=dict)


def split_labels(value, config):
    """The labels of one label cell: one (single-label) or split by data.label_separator (multi_label)."""
    if not config.multi_label:
        return [value]
    return value.split(config.label_separator)


def make_example(uid, text, labels, config, report, where, group="", dropped=None):
    """Normalises and checks one text; returns its `TextExample`, or None after counting why it was skipped.

    Args:
        uid: str. The example's id.
        text: str. The raw text.
        labels: list of str. Its raw labels (one for single-label data).
        config: TextClassDataConfig.
        report: dict. The split's report.
        where: str. File and line (or another place) for the report and errors.
        group: str. The example's group.
        dropped: optional dict. multi_label: counts labels left out because they are not in data.classes.
    """
    text = normalize_text(text)
    if len(text) < max(config.min_characters, 1):
        count_skip(report, where, "empty text", config.on_error,
                   detail=f"{len(text)} characters < data.min_characters {config.min_characters}" if text else None,
                   fix="write a text or remove the example")
        return None
    labels = [label for label in (normalize_text(str(label)) for label in labels) if label]
    if config.multi_label:
        if config.classes is not None:
            for label in labels:
                if label not in config.classes and dropped is not None:
                    dropped[label] = dropped.get(label, 0) + 1
            labels = [label for label in labels if label in config.classes]
        return TextExample(str(uid), text, tuple(sorted(set(labels))), str(group))
    if not labels:
        count_skip(report, where, "empty label", config.on_error, fix="give every text a label")
        return None
    if config.classes is not None and labels[0] not in config.classes:
        count_skip(report, where, "unknown label", config.on_error, detail=repr(labels[0]),
                   fix=f"use one of data.classes ({', '.join(config.classes)}) or add it there")
        return None
    return TextExample(str(uid), text, (labels[0],), str(group))


def _limited(examples, limit, seed):
    """A random subset of at most `limit` examples (seeded), in their original order."""
    if limit is None or len(examples) <= limit:
        return examples
    chosen = np.sort(np.random.RandomState(seed).permutation(len(examples))[:limit])
    return [examples[index] for index in chosen]


def finish_text(splits, reports, config, seed, provenance, info, class_names=None, dropped=None):
    """Cuts missing splits from train, applies data.limit and the class list, fills reports and counts.

    Args:
        splits: dict. Split name -> list of `TextExample`; "train" is required, a missing "test" or
            "validation" is cut from it at random (`data.test_fraction`, `data.validation_fraction`, seeded).
        reports: dict. Split name -> report (missing ones are empty).
        config: TextClassDataConfig.
        seed: int. Seeds the cuts and the random subsets of `data.limit`.
        provenance: str. One line for the model card.
        info: dict. Source details (copied; counts added).
        class_names: optional list of str. The classes when the source knows them (TFDS label names, the
            user's `class_names`); `data.classes` wins over them.
        dropped: optional dict. multi_label labels left out by `make_example` (label -> count).

    Returns:
        TextClassData, every split present.
    """
    reports = {name: reports.get(name) or empty_report() for name in SPLITS}
    splits = dict(splits)
    if "test" not in splits:
        if config.test_fraction <= 0:
            raise DataError(f"data: source {config.source!r} has no test split; set data.test_fraction > 0")
        splits["train"], splits["test"] = random_cut(splits["train"], config.test_fraction, seed)
    if "validation" not in splits:
        splits["train"], splits["validation"] = (random_cut(splits["train"], config.validation_fraction, seed + 1)
                                                 if config.validation_fraction > 0 else (splits["train"], []))
    info = dict(info, available={name: len(splits[name]) for name in SPLITS})
    splits["train"] = _limited(splits["train"], config.limit.train, seed + 2)
    if not splits["train"]:
        first = reports["train"]["skipped_examples"][:1]
        raise DataError(f"data: source {config.source!r} gave no usable training texts ({provenance}; "
                        f"{reports['train']['skipped']} skipped{', first: ' + first[0] if first else ''}); check "
                        "data.path and the columns")
    if config.classes:
        names = list(config.classes)
    elif class_names is not None:
        names = [str(name) for name in class_names]
    else:
        names = sorted({label for example in splits["train"] for label in example.labels})
    dropped = dict(dropped or {})
    known = set(names)
    for name in SPLITS if config.classes or class_names is not None else ():
        kept = []  # labels outside a given class list (the user's class_names) have no output unit
        for example in splits[name]:
            extra = [label for label in example.labels if label not in known]
            if extra and not config.multi_label:
                count_skip(reports[name], example.id, "unknown label", config.on_error, detail=repr(extra[0]),
                           fix=f"use one of the class names ({', '.join(names)})")
                continue
            for label in extra:
                dropped[label] = dropped.get(label, 0) + 1
            kept.append(dataclasses.replace(example, labels=tuple(label for label in example.labels
                                                                  if label in known)) if extra else example)
        splits[name] = kept
    trained = {label for example in splits["train"] for label in example.labels}
    for name in ("validation", "test"):
        kept = []
        for example in splits[name]:
            unseen = [label for label in example.labels if label not in trained]
            if unseen:
                count_skip(reports[name], example.id, NOT_IN_TRAINING, "skip", detail=repr(unseen[0]))
                continue
            kept.append(example)
        splits[name] = _limited(kept, getattr(config.limit, name), seed + 2)
    if not config.multi_label and len(names) < 2:
        raise DataError(f"data: one class only ({', '.join(names) or 'none'}) from source {config.source!r}; a "
                        "classifier needs two or more (check data.classes and the labels of the training split)")
    if not trained:
        raise DataError(f"data: no training text of source {config.source!r} has a label; check "
                        "data.label_column, data.label_separator and data.classes")
    for name in SPLITS:
        reports[name]["examples"] = len(splits[name])
    info["class_counts"] = {name: {label: sum(label in example.labels for example in splits[name])
                                   for label in names} for name in SPLITS}
    missing = [label for label in names if label not in trained]
    if missing:
        info["classes_without_training_texts"] = missing
    if config.multi_label:
        info["unlabelled"] = {name: sum(not example.labels for example in splits[name]) for name in SPLITS}
        info["labels_per_text"] = {name: round(sum(len(example.labels) for example in splits[name]) /
                                               max(len(splits[name]), 1), 3) for name in SPLITS}
        if dropped:
            info["labels_dropped"] = dict(sorted(dropped.items()))
    training_texts = {example.text for example in splits["train"]}
    info["texts_also_in_train"] = {name: sum(example.text in training_texts for example in splits[name])
                                   for name in ("validation", "test")}
    return TextClassData({name: splits[name] for name in SPLITS}, reports, provenance, names,
                         bool(config.multi_label), info)


def data_files(path, suffixes, source):
    """{split: file} of `data.path`: the file itself as train, or a directory's train/validation/test files."""
    if not path:
        raise DataError(f"data.path: required for data.source: {source} (a {source} file, or a directory with "
                        f"train{suffixes[0]} and optionally validation{suffixes[0]} and test{suffixes[0]})")
    if not os.path.exists(path):
        raise DataError(f"data.path {path} does not exist; set data.path to a {source} file or a directory with "
                        f"train{suffixes[0]}")
    if not os.path.isdir(path):
        return {"train": path}
    files = {}
    for split, stems in SPLIT_NAMES.items():
        for stem in stems:
            for suffix in suffixes:
                if split not in files and os.path.isfile(os.path.join(path, stem + suffix)):
                    files[split] = os.path.join(path, stem + suffix)
    if "train" not in files:
        present = sorted(os.listdir(path))[:10]
        raise DataError(f"data.path {path}: no train{suffixes[0]} in this directory (it holds: "
                        f"{', '.join(present) or 'nothing'}); name the training file train{suffixes[0]}")
    return files


def _read_files(files, reader, config, seed, source):
    splits, reports, dropped = {}, {}, {}
    for split, file in files.items():
        splits[split], reports[split] = reader(file, config, dropped)
    info = {"files": files, "validation": "validation file" if "validation" in files else "random texts",
            "test": "test file" if "test" in files else "random texts"}
    path = os.path.abspath(config.path)
    return finish_text(splits, reports, config, seed, f"{source} {path}", info, dropped=dropped)


# --------------------------------------------------------------------------- CSV


def _column(header, name, path, line, key, what, delimiter):
    if name in header:
        return header.index(name)
    folded = [column.lower() for column in header]
    if name.lower() in folded:
        return folded.index(name.lower())
    hint = ""
    if len(header) == 1 and any(other in header[0] for other in ",\t;|" if other != delimiter):
        hint = f" (the delimiter is {delimiter!r}: set data.delimiter if the file uses another)"
    raise DataError(f"{path}:{line}: no column {name!r} (columns: {', '.join(map(repr, header))}){hint}; set data.{key} to "
                    f"the column holding the {what}")


def read_csv(path, config, dropped=None):
    """Reads the labelled texts of one CSV/TSV file with a header row; returns (examples, report).

    Lines are decoded one by one, so a line that is not UTF-8 costs only its row (counted with `path:line`, or
    raised under on_error: fail); quoted fields may hold delimiters, quotes ("") and line breaks.

    Args:
        path: str. The file.
        config: TextClassDataConfig. Columns, delimiter, labels, on_error.
        dropped: optional dict. multi_label labels left out by data.classes (counted here).
    """
    report = empty_report()
    delimiter = config.delimiter or ("\t" if path.lower().endswith((".tsv", ".tab")) else ",")
    try:
        with open(path, "rb") as f:
            raw_lines = f.read().splitlines(keepends=True)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}); check data.path")
    lines, bad = [], set()
    for number, raw in enumerate(raw_lines, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("utf-8", "surrogateescape"))  # kept for the parser; its row is skipped
            bad.add(number)
    name = os.path.basename(path)
    reader = csv.reader(lines, delimiter=delimiter)
    header, examples, last = None, [], 0
    try:
        for row in reader:
            first, last = last + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            bad_lines = [number for number in range(first, last + 1) if number in bad] if bad else []
            where = f"{path}:{bad_lines[0] if bad_lines else first}"
            if header is None:
                if bad_lines:
                    raise DataError(f"{where}: the header row is not UTF-8; save the file as UTF-8")
                header = [cell.strip() for cell in row]
                text_at = _column(header, config.text_column, path, first, "text_column", "text", delimiter)
                label_at = _column(header, config.label_column, path, first, "label_column", "label(s)", delimiter)
                continue
            if bad_lines:
                count_skip(report, where, "not UTF-8", config.on_error, fix="save the file as UTF-8")
                continue
            extra = len(row) > len(header) and any(cell.strip() for cell in row[len(header):])
            if len(row) <= max(text_at, label_at) or extra:
                count_skip(report, where, "bad row", config.on_error,
                           detail=f"{len(row)} field{'' if len(row) == 1 else 's'}, the header has {len(header)}",
                           fix=f"write {len(header)} fields separated by {delimiter!r} (quote a field that holds "
                               "it)")
                continue
            example = make_example(f"{name}:{first}", row[text_at], split_labels(row[label_at], config), config,
                                   report, where, dropped=dropped)
            if example is not None:
                examples.append(example)
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: {error}; check the quoting of this row (a field holding the "
                        "delimiter, a quote or a line break goes in double quotes, a quote inside doubled)")
    if header is None:
        raise DataError(f"{path}: empty; write a header row ({config.text_column}{delimiter}{config.label_column}) "
                        "and one row per text")
    return examples, report


@TEXT_CLASS_SOURCES.register("csv")
def load_csv(config, seed):
    """Labelled texts of a CSV/TSV file with a header (data.text_column, data.label_column), or of a directory
    with train.csv (.tsv) and optionally validation.csv (val, dev) and test.csv."""
    return _read_files(data_files(config.path, CSV_SUFFIXES, "csv"), read_csv, config, seed, "CSV")


# ------------------------------------------------------------------------- JSONL


def _json_labels(value, config):
    """(labels, problem) of a JSON label value."""
    if value is None:
        return [], None
    if isinstance(value, (str, int, float)):
        return split_labels(value, config) if isinstance(value, str) else [str(value)], None
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        if not config.multi_label and len(value) > 1:
            return None, f"{len(value)} labels; set data.multi_label: true for several labels per text"
        return [str(item) for item in value], None
    return None, f"the label is a {type(value).__name__}, not a string, a number or a list of them"


def read_jsonl(path, config, dropped=None):
    """Reads one JSON object per line (data.text_column and data.label_column keys); returns (examples, report).

    Args:
        path: str. The file.
        config: TextClassDataConfig.
        dropped: optional dict. multi_label labels left out by data.classes (counted here).
    """
    report, examples = empty_report(), []
    name = os.path.basename(path)
    fix = "write one JSON object per line"
    for where, line in utf8_lines(path, report, config.on_error):
        try:
            record = json.loads(line)
        except ValueError as error:
            count_skip(report, where, "bad row", config.on_error, detail=f"not JSON ({error.msg})", fix=fix)
            continue
        if not isinstance(record, dict):
            count_skip(report, where, "bad row", config.on_error,
                       detail=f"a JSON {type(record).__name__}, not an object", fix=fix)
            continue
        missing = [key for key in (config.text_column, config.label_column) if key not in record]
        if missing:
            count_skip(report, where, "bad row", config.on_error,
                       detail=f"no {missing[0]!r} key (keys: {', '.join(map(str, record))})",
                       fix="set data.text_column and data.label_column to the keys of the text and label")
            continue
        text = record[config.text_column]
        labels, problem = _json_labels(record[config.label_column], config)
        if isinstance(text, (dict, list)):
            problem = f"the text is a {type(text).__name__}"
        if problem:
            count_skip(report, where, "bad row", config.on_error, detail=problem, fix=fix)
            continue
        example = make_example(f"{name}:{where.rsplit(':', 1)[1]}", "" if text is None else str(text), labels,
                               config, report, where, dropped=dropped)
        if example is not None:
            examples.append(example)
    return examples, report


@TEXT_CLASS_SOURCES.register("jsonl")
def load_jsonl(config, seed):
    """Labelled texts of a JSON Lines file (data.text_column, data.label_column keys), or of a directory with
    train.jsonl and optionally validation.jsonl (val, dev) and test.jsonl."""
    return _read_files(data_files(config.path, (".jsonl",), "jsonl"), read_jsonl, config, seed, "JSON Lines")


# ------------------------------------------------------------------------ folder


def _text_files(folder):
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        found += [os.path.join(directory, name) for name in sorted(files) if name.lower().endswith(".txt")]
    return found


def _read_class_folders(folder, config, left_out):
    examples, report = [], empty_report()
    for label in sorted(name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))
                        and not name.startswith(".")):
        files = _text_files(os.path.join(folder, label))
        if config.classes is not None and normalize_text(label) not in config.classes:
            left_out[label] = left_out.get(label, 0) + len(files)
            continue
        for path in files:
            with open(path, "rb") as f:
                raw = f.read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                count_skip(report, path, "not UTF-8", config.on_error, detail=f"byte {error.start}",
                           fix="save the file as UTF-8")
                continue
            example = make_example(os.path.relpath(path, config.path), text, [label], config, report, path)
            if example is not None:
                examples.append(example)
    return examples, report


@TEXT_CLASS_SOURCES.register("folder")
def load_folder(config, seed):
    """One folder of .txt files per class (each file one text): <path>/<class>/*.txt, or train/, validation/
    (val/, dev/) and test/ subfolders each holding class folders (the aclImdb layout)."""
    path = config.path
    if not path:
        raise DataError("data.path: required for data.source: folder (a directory with one folder of .txt files "
                        "per class)")
    if not os.path.isdir(path):
        raise DataError(f"data.path {path} does not exist or is not a directory; set it to a folder with one "
                        "sub-folder of .txt files per class")
    folders = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if split not in folders and os.path.isdir(os.path.join(path, name)):
                folders[split] = os.path.join(path, name)
    if "train" not in folders:
        folders = {"train": path}
    splits, reports, left_out = {}, {}, {}
    for split, folder in folders.items():
        left_out[split] = {}
        splits[split], reports[split] = _read_class_folders(folder, config, left_out[split])
    if not splits["train"] and not reports["train"]["skipped"]:
        raise DataError(f"data.path {folders['train']}: no .txt files in class folders; lay them out as "
                        "<class>/<file>.txt")
    info = {"folders": folders, "validation": "validation folder" if "validation" in folders else "random texts",
            "folders_left_out": {split: counts for split, counts in left_out.items() if counts}}
    return finish_text(splits, reports, config, seed, f"text folder {os.path.abspath(path)}", info)


# -------------------------------------------------------------------------- TFDS


def _tfds_keys(info, config):
    """(text key, label key) of a TFDS dataset: data.text_column / data.label_column when it has them, else its
    supervised keys (or its first text and class label features)."""
    import tensorflow_datasets as tfds

    features = info.features
    texts = [key for key, feature in features.items() if isinstance(feature, tfds.features.Text)]
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    supervised = tuple(info.supervised_keys or ())[:2]
    listing = ", ".join(features.keys())
    if config.text_column in texts:
        text_key = config.text_column
    elif config.text_column != "text":
        raise DataError(f"data.text_column {config.text_column!r}: TFDS dataset {info.name} has no such text "
                        f"feature (features: {listing}); set it to one of {', '.join(texts) or 'none'}")
    elif supervised and supervised[0] in texts:
        text_key = supervised[0]
    elif texts:
        text_key = texts[0]
    else:
        raise DataError(f"TFDS dataset {info.name} has no text feature (features: {listing}); choose a text "
                        "classification dataset such as imdb_reviews or ag_news_subset")
    if config.label_column in labels:
        label_key = config.label_column
    elif config.label_column != "label":
        raise DataError(f"data.label_column {config.label_column!r}: TFDS dataset {info.name} has no such class "
                        f"label (features: {listing}); set it to one of {', '.join(labels) or 'none'}")
    elif len(supervised) == 2 and supervised[1] in labels:
        label_key = supervised[1]
    elif labels:
        label_key = labels[0]
    else:
        raise DataError(f"TFDS dataset {info.name} has no class label (features: {listing}); choose a text "
                        "classification dataset such as imdb_reviews or ag_news_subset")
    return text_key, label_key


@TEXT_CLASS_SOURCES.register("tfds")
def load_tfds(config, seed):
    """A TFDS dataset with a text feature and a class label (data.tfds_name, e.g. imdb_reviews or ag_news_subset),
    from data.tfds_data_dir or downloaded when data.download; data.limit caps the texts read per split."""
    from toolkit.data.tfds import prepare_tfds, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. imdb_reviews or ag_news_subset)")
    builder, info = prepare_tfds(name, config)
    text_key, label_key = _tfds_keys(info, config)
    names = [str(label) for label in info.features[label_key].names]
    specs = tfds_split_names(info, config)
    splits, reports = {}, {}
    for split, spec in specs.items():
        limit = getattr(config.limit, split, None)
        examples, report = [], empty_report()
        for index, example in enumerate(builder.as_dataset(split=spec, shuffle_files=False).as_numpy_iterator()):
            if limit is not None and len(examples) >= limit:
                break
            where = f"{name}/{spec}:{index}"
            try:
                text = user_data.text(example[text_key])
            except UnicodeDecodeError:
                count_skip(report, where, "not UTF-8", config.on_error, fix="fix the dataset")
                continue
            item = make_example(where, text, [names[int(example[label_key])]], config, report, where)
            if item is not None:
                examples.append(item)
        splits[split], reports[split] = examples, report
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'}), {text_key} -> {label_key}"
    details = {"tfds_splits": specs, "text_feature": text_key, "label_feature": label_key}
    return finish_text(splits, reports, config, seed, provenance, details, class_names=names)


# ------------------------------------------------------------------------- Bible


def _assign_chapters(chapters, fractions, random):
    """{chapter key: split} of one genre: about `fractions` ("test", "validation") of its verses in whole
    chapters drawn at random, the rest train."""
    total = sum(chapters.values())
    keys = list(chapters)
    order = random.permutation(len(keys))
    assigned, taken = {}, {name: 0 for name in fractions}
    for index in order:
        key = keys[index]
        split = "train"
        for name, fraction in fractions.items():
            target = fraction * total
            if fraction > 0 and (taken[name] == 0 or taken[name] + chapters[key] / 2 <= target):
                if taken[name] < target:
                    split = name
                    break
        if split != "train":
            taken[split] += chapters[key]
        assigned[key] = split
    return assigned


@TEXT_CLASS_SOURCES.register("bible_genre")
def load_bible_genre(config, seed):
    """Verses of the World English Bible or the Reina-Valera 1909 (data.bible.language; public domain, Debian
    packages sword-text-web and sword-text-sparv) labelled with the genre of their book (BIBLE_GENRES); whole
    chapters per split, about data.test_fraction and data.validation_fraction of each genre's verses.

    The aligned Bible of `toolkit.data.bible` is built on first use (about 5 s) and cached under
    `$TOOLKIT_HOME/data/bible`; verses its alignment left out are not used (counted in info).
    """
    from toolkit.data.bible import BIBLE_CACHE, BIBLE_TITLES, bible_cache
    from toolkit.tasks.text_classification.config import BIBLE_GENRES

    if config.test_fraction <= 0:
        raise DataError("data.test_fraction: 0 leaves the bible_genre source without a test split; set it above 0 "
                        "(e.g. 0.2)")
    genres = list(config.classes) if config.classes else list(BIBLE_GENRES)
    for genre in genres:
        if genre not in BIBLE_GENRES:
            raise DataError(f"data.classes: {genre!r} is not a Bible genre{did_you_mean(genre, list(BIBLE_GENRES))} "
                            f"(genres: {', '.join(BIBLE_GENRES)})")
    genre_of = {book: genre for genre, books in BIBLE_GENRES.items() for book in books}
    language = config.bible.language
    meta, rows = bible_cache(config.bible)
    column = {"en": 3, "es": 4}[language]
    chapters, unmapped, other_genres = {}, {}, {}
    for row in rows:
        genre = genre_of.get(row[0])
        if genre is None:
            unmapped[row[0]] = unmapped.get(row[0], 0) + 1
        elif genre not in genres:
            other_genres[genre] = other_genres.get(genre, 0) + 1
        else:
            chapters.setdefault(genre, {}).setdefault((row[0], row[1]), 0)
            chapters[genre][(row[0], row[1])] += 1
    random = np.random.RandomState(seed)
    split_of = {}
    for genre in genres:
        split_of.update(_assign_chapters(chapters.get(genre, {}), {"test": config.test_fraction,
                                                                   "validation": config.validation_fraction},
                                         random))
    splits = {name: [] for name in SPLITS}
    reports = {name: empty_report() for name in SPLITS}
    for row in rows:
        split = split_of.get((row[0], row[1]))
        if split is None:
            continue
        reference = f"{row[0]} {row[1]}:{row[2]}"
        example = make_example(reference, row[column], [genre_of[row[0]]], config, reports[split], reference,
                               group=row[0])
        if example is not None:
            splits[split].append(example)
    module = meta["modules"][language]
    provenance = (f"Bible verses labelled by the genre of their book: {BIBLE_TITLES[language]} (SWORD module "
                  f"{module['module']} {module['version']}, Debian package {module['package']}), public domain; "
                  f"genres of toolkit.tasks.text_classification.config.BIBLE_GENRES; whole chapters per split")
    info = {
        "language": language,
        "split_rule": (f"whole chapters drawn at random per genre (seed {seed}): about {config.test_fraction:.0%} "
                       f"of each genre's verses test, {config.validation_fraction:.0%} validation"),
        "chapters": {name: sum(split == name for split in split_of.values()) for name in SPLITS},
        "books": {genre: [book for book in BIBLE_GENRES[genre] if book in meta["books"]] for genre in genres},
        "verses_left_out_by_the_alignment": len(meta.get("left_out", [])),
        "cache": os.path.join("data", "bible", BIBLE_CACHE),
    }
    if unmapped:
        info["books_without_a_genre"] = unmapped
    if other_genres:
        info["verses_of_other_genres"] = other_genres
    return finish_text(splits, reports, config, seed, provenance, info)


# ---------------------------------------------------------------------- fortunes

_FORTUNE_SEPARATOR = re.compile(rb"^%[ \t\r]*(?:\n|\Z)", re.M)
# An accent struck over a letter (nroff writes "e<BS>'" or "'<BS>e" for é): the combining accent.
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", ",": "\u0327"}


def _strike(old, new):
    if new == "_" or new == old:
        return old
    if old == "_":
        return new
    if old in _ACCENTS and new.isalpha():
        return new + _ACCENTS[old]
    if new in _ACCENTS and old[:1].isalpha():
        return old + _ACCENTS[new]
    return new


def strip_overstrike(text):
    """Resolves nroff overstrike: a backspace steps back one column and the next character strikes the one there.

    Underlined (`_<BS>w`) and bold (`w<BS>w`) letters read as the letter, also for whole words written as
    `____<BS><BS><BS><BS>word`; an accent struck over a letter (`'<BS>e`) becomes the accented letter (é after
    NFC normalisation).

    Args:
        text: str.

    Example:

    >>> strip_overstrike("_\\bI say *____\\b\\b\\b\\bthis*")
    'I say *this*'
    >>> normalize_text(strip_overstrike("Ren'\\be")) == "Ren\\u00e9"
    True
    """
    if "\b" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        cells, cursor = [], 0
        for char in line:
            if char == "\b":
                cursor = max(cursor - 1, 0)
                continue
            if cursor < len(cells):
                cells[cursor] = _strike(cells[cursor], char)
            else:
                cells.append(char)
            cursor += 1
        lines.append("".join(cells))
    return "\n".join(lines)


def read_fortunes(path, category, config, report):
    """The fortunes of one file (texts between lines holding only `%`) as examples labelled `category`.

    Args:
        path: str. The fortune file.
        category: str. Its label.
        config: TextClassDataConfig.
        report: dict. Where skipped fortunes are counted (`path:#index`, the first fortune being #1).
    """
    try:
        with open(path, "rb") as f:
            chunks = _FORTUNE_SEPARATOR.split(f.read())
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}); check data.fortunes.path")
    examples = []
    for index, chunk in enumerate(chunks, 1):
        if not chunk.strip():
            continue
        where = f"{path}:#{index}"
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            count_skip(report, where, "not UTF-8", config.on_error, detail=f"byte {error.start}",
                       fix="save the file as UTF-8")
            continue
        example = make_example(f"{category}:#{index}", strip_overstrike(text), [category], config, report, where)
        if example is not None:
            examples.append(example)
    return examples


def fortune_files(directory):
    """The fortune files of a directory (not the strfile indexes .dat nor the .u8 links)."""
    return sorted(name for name in os.listdir(directory) if not name.startswith(".")
                  and not name.endswith((".dat", ".u8")) and os.path.isfile(os.path.join(directory, name)))


@TEXT_CLASS_SOURCES.register("fortunes")
def load_fortunes(config, seed):
    """Fortune cookies of the Debian package fortunes (BSD licence) labelled with their file
    (data.fortunes.categories in data.fortunes.path); random test and validation texts (seeded)."""
    settings = config.fortunes
    root = settings.path
    if not os.path.isdir(root):
        raise DataError(f"data.fortunes.path {root}: no such directory; install the fortune files with: sudo apt-get "
                        "install fortunes (`make setup` does it when run as root), or set data.fortunes.path to a "
                        "directory of fortune files")
    available = fortune_files(root)
    for category in settings.categories:
        if category not in available:
            raise DataError(f"data.fortunes.categories: no fortune file {category!r} in {root}"
                            f"{did_you_mean(category, available)} (available: {', '.join(available) or 'none'})")
    categories = list(settings.categories)
    if config.classes:
        extra = [name for name in config.classes if name not in categories]
        if extra:
            raise DataError(f"data.classes: {extra[0]!r} is not in data.fortunes.categories ({', '.join(categories)}); "
                            "add it there or remove it from data.classes")
        categories = [name for name in categories if name in config.classes]
    examples, report, counts = [], empty_report(), {}
    for category in categories:
        found = read_fortunes(os.path.join(root, category), category, config, report)
        counts[category] = len(found)
        examples += found
    provenance = (f"fortune cookies of the Debian package fortunes (BSD licence, from BSD fortune(6)) in "
                  f"{os.path.abspath(root)}: {', '.join(categories)}")
    info = {"fortunes": counts, "validation": "random texts", "test": "random texts"}
    return finish_text({"train": examples}, {"train": report}, config, seed, provenance, info)


# ------------------------------------------------------------------ data= (Python)


def _user_labels(label, config, where):
    """(labels, width) of one user example's label: names (str) or class indices (int), and the length of a
    one-hot / multi-hot vector (0 when none)."""
    if label is None:
        return [], 0
    if isinstance(label, (str, bytes, np.str_, np.bytes_)):
        return split_labels(user_data.text(label), config), 0
    array = np.asarray(label)
    vector = isinstance(label, np.ndarray) and array.ndim == 1 and array.size > 1 and array.dtype.kind in "biuf"
    if array.ndim > 1 or array.dtype.kind not in "biufSUO":
        raise DataError(f"{where}: a label of shape {array.shape} and type {array.dtype}; give a class name, a "
                        "class index, " + ("a list of them or a multi-hot vector" if config.multi_label else
                                           "or a one-hot vector"))
    if vector:  # a multi-hot (or one-hot) NumPy row
        hot = np.flatnonzero(array > 0.5)
        if not config.multi_label and hot.size != 1:
            raise DataError(f"{where}: a vector label with {hot.size} classes set; give one class per text or set "
                            "data.multi_label: true")
        return [int(index) for index in hot], int(array.size)
    values = []  # names or class indices (a scalar, a list, an array of strings)
    for value in array.reshape(-1).tolist():
        if isinstance(value, (str, bytes)):
            values.append(user_data.text(value))
        elif isinstance(value, (bool, int, float)) and float(value) == int(value):
            values.append(int(value))
        else:
            raise DataError(f"{where}: label {value!r} is neither a class name nor a class index")
    if not config.multi_label and len(values) > 1:
        raise DataError(f"{where}: {len(values)} labels; set data.multi_label: true for several labels per text")
    return values, 0


def text_class_data(user, config, seed, class_names=None):
    """`TextClassData` of (text, label) pairs given to `toolkit.train(recipe, data=...)`.

    A label is a class name, a class index (into `class_names`, else `data.classes`, else the dataset's
    `class_names` attribute as `keras.utils.text_dataset_from_directory` sets it, else "0", "1", ...) or a
    one-hot vector; with `data.multi_label`, a list of names or indices, a multi-hot vector (a NumPy row), a
    string of names joined by `data.label_separator`, or None / an empty list for a text without labels.

    Args:
        user: UserData. The datasets by split.
        config: TextClassDataConfig.
        seed: int. Seeds the missing splits and `data.limit`.
        class_names: optional list of str. Names of the class indices (the user's `class_names`).
    """
    raw, width = {}, 0
    for name in user.splits:
        items = []
        for index, example in enumerate(user.examples(name, batched_rank=1)):
            text, label = user_data.pair(example, name, index, "(text, label)")
            where = f"data['{name}'] example {index}"
            labels, vector = _user_labels(label, config, where)
            width = max([width, vector] + [value + 1 for value in labels if isinstance(value, int)])
            items.append((where, text, labels))
        raw[name] = items
    names = list(class_names) if class_names is not None else None
    if width:  # class indices: they need names
        if names is None:
            names = list(config.classes) if config.classes else user_data.class_names(user, width, "data=")
        if len(names) < width:
            raise DataError(f"data=: class index {width - 1} but only {len(names)} class names; give every class a "
                            "name (class_names=[...])")
        names = [str(label) for label in names]
    splits, reports, dropped = {}, {}, {}
    for name, items in raw.items():
        examples, report = [], empty_report()
        for where, text, labels in items:
            try:
                text = user_data.text(text)
            except UnicodeDecodeError:
                count_skip(report, where, "not UTF-8", config.on_error, fix="give str or UTF-8 bytes")
                continue
            labels = [names[value] if isinstance(value, int) else value for value in labels]
            example = make_example(where.replace("data['", "").replace("'] example ", ":"), text, labels, config,
                                   report, where, dropped=dropped)
            if example is not None:
                examples.append(example)
        splits[name], reports[name] = examples, report
    info = {"validation": "given" if "validation" in splits else "random texts"}
    return finish_text(splits, reports, config, seed, "Python datasets given to toolkit.train", info,
                       class_names=names, dropped=dropped)
