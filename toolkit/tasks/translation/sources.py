"""Translation data sources: (source, target) sentence pairs per split.

- `tsv`: one UTF-8 file of `source<TAB>target` lines (seeded random
  test/validation split by `data.test_fraction` / `data.validation_fraction`),
  or a directory with `train.tsv` and optionally `validation.tsv` (or
  `val.tsv`, `dev.tsv`) and `test.tsv`; missing splits are cut from train.
  Bad lines ("no tab", "empty side", "not UTF-8") are skipped and counted,
  or fail with `file:line` under `data.on_error: fail`.
- `tfds`: a TFDS translation dataset (`data.tfds_name`, e.g.
  `ted_hrlr_translate/pt_to_en`), read with its supervised keys as
  (source, target) and materialised as Python lists.
- `bible`: the English-Spanish Bible aligned verse by verse, from the SWORD
  modules of the Debian packages sword-text-web (World English Bible,
  engWEB2015eb) and sword-text-sparv (Reina-Valera 1909, spaRV1909eb), both
  public domain. Whole books (`data.test_books`) are the test split, so no
  test verse, nor its context, is seen in training.

Every source normalises text (`normalize_text`) and applies `data.limit`.
Nothing here imports TensorFlow at module level.

Example:

>>> import os, tempfile
>>> from toolkit.tasks.translation.sources import TRANSLATION_SOURCES
>>> from toolkit.tasks.translation.config import TranslationDataConfig
>>> TRANSLATION_SOURCES.names()
['bible', 'datasets', 'tfds', 'tsv']
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.tsv")
>>> with open(path, "w", encoding="utf-8") as f:
...     _ = f.write("".join(f"sentence {i}\\tfrase {i}\\n" for i in range(20)) + "no tab here\\n")
>>> config = TranslationDataConfig(source="tsv", path=path, test_fraction=0.2, validation_fraction=0.25)
>>> data = TRANSLATION_SOURCES.get("tsv")(config, seed=0)
>>> {name: len(pairs) for name, pairs in data.splits.items()}
{'train': 12, 'validation': 4, 'test': 4}
>>> data.report["train"]["skipped_reasons"]
{'no tab': 1}
"""

import dataclasses
import os

from toolkit.data import user_data
from toolkit.data.bible import BIBLE_CACHE, BIBLE_MODULES, BIBLE_TITLES, bible_cache, resolve_books
from toolkit.data.skips import describe
from toolkit.data.splits import (
    MAX_SKIPPED_EXAMPLES,
    SPLITS,
    count_skip,
    empty_report,
    finish_splits,
    utf8_lines,
)
from toolkit.data.text import normalize_text
from toolkit.errors import DataError
from toolkit.registry import Registry

describe("no tab", "lines without a tab between source and target")
describe("empty side", "pairs with an empty source or target")
describe("not UTF-8", "lines that are not UTF-8 text")

TRANSLATION_SOURCES = Registry("translation data source", DataError)
TRANSLATION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)


@TRANSLATION_SOURCES.register("tfrecord")
def load_tfrecord(config, seed):
    """Sharded TFRecords written by `toolkit data to-tfrecord` (`data.path`: their directory)."""
    return load_translation_tfrecords(config, seed)


@dataclasses.dataclass
class ParallelData:
    """What a translation source returns.

    Args:
        splits: dict. "train", "validation", "test" -> list of
            (source, target) str pairs (validation may be empty).
        report: dict. Per split: {"examples", "skipped",
            "skipped_reasons": {reason: count}, "skipped_examples": up to
            10 "file:line: reason" strings}.
        provenance: str. One line: where the data came from (model card).
        info: dict. Source details (languages, test books, how validation
            was chosen, counts before `data.limit`).
    """

    splits: dict
    report: dict
    provenance: str
    info: dict = dataclasses.field(default_factory=dict)


def clean_pair(source, target):
    """Normalised (source, target), or (None, reason) when a side is unusable."""
    source, target = normalize_text(source), normalize_text(target)
    if not source or not target:
        return None, "empty side"
    return (source, target), None


def clean_pairs(items, on_error):
    """(pairs, report) of (where, source, target) items: normalised, unusable ones skipped and counted (or
    raised under on_error: fail)."""
    pairs, report = [], empty_report()
    for where, source, target in items:
        cleaned, problem = clean_pair(source, target)
        if problem:
            count_skip(report, where, problem, on_error)
            continue
        pairs.append(cleaned)
    report["examples"] = len(pairs)
    return pairs, report


def finish_parallel(splits, reports, config, seed, provenance, info):
    """Cuts missing test/validation splits from train, applies `data.limit`, fills the reports."""
    splits, reports, info = finish_splits(splits, reports, config, seed, provenance, info)
    return ParallelData(splits, reports, provenance, info)


# --------------------------------------------------------------------------- TSV

TSV_SPLIT_FILES = {"train": ("train.tsv",), "validation": ("validation.tsv", "val.tsv", "dev.tsv"),
                   "test": ("test.tsv",)}


def read_tsv(path, on_error="skip"):
    """Reads `source<TAB>target` lines of a UTF-8 file; returns (pairs, report).

    Lines are decoded one by one, so one bad line is skipped (and counted)
    without losing the file; blank lines are ignored. A line with more than
    two columns keeps the first two.

    Args:
        path: str. The TSV file.
        on_error: str. "skip" counts bad lines, "fail" raises DataError at
            the first one with `path:line`.
    """
    pairs, report = [], empty_report()
    for where, line in utf8_lines(path, report, on_error):
        if "\t" not in line:
            count_skip(report, where, "no tab", on_error)
            continue
        columns = line.split("\t")
        pair, reason = clean_pair(columns[0], columns[1])
        if pair is None:
            count_skip(report, where, reason, on_error)
            continue
        pairs.append(pair)
    return pairs, report


@TRANSLATION_SOURCES.register("tsv")
def load_tsv(config, seed):
    """`source<TAB>target` pairs from `data.path`: one file (random test/validation split) or a directory with
    train.tsv and optionally validation.tsv (val.tsv, dev.tsv) and test.tsv."""
    path = config.path
    if not path:
        raise DataError("data.path: required for data.source: tsv (a source<TAB>target file, or a directory "
                        "with train.tsv and optionally validation.tsv and test.tsv)")
    if not os.path.exists(path):
        raise DataError(f"data.path {path} does not exist; set data.path to a TSV file or a directory with train.tsv")
    files = {}
    if os.path.isdir(path):
        for split, names in TSV_SPLIT_FILES.items():
            for name in names:
                if os.path.isfile(os.path.join(path, name)):
                    files[split] = os.path.join(path, name)
                    break
        if "train" not in files:
            raise DataError(f"data.path {path}: no train.tsv in this directory (source<TAB>target lines)")
    else:
        files["train"] = path
    splits, reports = {}, {}
    for split, file in files.items():
        splits[split], reports[split] = read_tsv(file, config.on_error)
    if not splits["train"]:
        raise DataError(f"{files['train']}: no usable source<TAB>target line "
                        f"({reports['train']['skipped']} skipped); check the file or data.path")
    info = {"files": files, "validation": "validation file" if "validation" in files else "random pairs"}
    return finish_parallel(splits, reports, config, seed, f"parallel text {path}", info)


# -------------------------------------------------------------------------- TFDS


@TRANSLATION_SOURCES.register("tfds")
def load_tfds_translation(config, seed):
    """A TFDS translation dataset (`data.tfds_name`, e.g. ted_hrlr_translate/pt_to_en) read as
    (source, target) by its supervised keys, from `data.tfds_data_dir` or downloaded when `data.download`."""
    from toolkit.data.tfds import prepare_tfds, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. ted_hrlr_translate/pt_to_en)")
    builder, info = prepare_tfds(name, config)
    if not info.supervised_keys:
        raise DataError(f"TFDS dataset {name} has no supervised keys (source, target); choose a translation dataset")
    splits, reports = {}, {}
    for split, spec in tfds_split_names(info, config).items():
        dataset = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False)
        pairs, report = [], empty_report()
        for index, (source, target) in enumerate(dataset.as_numpy_iterator()):
            where = f"{info.full_name}/{spec}:{index}"
            try:
                source, target = user_data.text(source), user_data.text(target)
            except UnicodeDecodeError:
                count_skip(report, where, "not UTF-8", config.on_error)
                continue
            pair, reason = clean_pair(source, target)
            if pair is None:
                count_skip(report, where, reason, config.on_error)
                continue
            pairs.append(pair)
        splits[split], reports[split] = pairs, report
    keys = info.supervised_keys
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'}), {keys[0]} -> {keys[1]}"
    details = {"tfds_splits": tfds_split_names(info, config), "supervised_keys": list(keys[:2])}
    return finish_parallel(splits, reports, config, seed, provenance, details)


# ------------------------------------------------------------------------- Bible


@TRANSLATION_SOURCES.register("bible")
def load_bible(config, seed):
    """English-Spanish Bible verse pairs (WEB and Reina-Valera 1909, public domain) from the Debian packages
    sword-text-web and sword-text-sparv; `data.test_books` are the test split, a random
    `data.validation_fraction` of the other verses the validation split.

    The aligned corpus is built on first use (about 5 s: pysword reads both
    modules in 1-2 s with its decompressed book kept, 80 s without; the
    verse alignment takes 3-4 s) and cached as
    `$TOOLKIT_HOME/data/bible/bible_en_es.tsv`; later calls read the cache
    in about 0.1 s. Verses are aligned by number, except where the RV1909
    numbers them differently (Numbers 13, Jonah 2, ...): there a length-based
    alignment shifts or merges verses; verses only one Bible has, pairs whose
    lengths disagree far beyond chance and Job 39:27-41:15 are left out
    (counted in the report).
    """
    languages = sorted(BIBLE_MODULES)
    for field in ("source_language", "target_language"):
        if getattr(config, field) not in BIBLE_MODULES:
            raise DataError(f"data.{field} {getattr(config, field)!r}: the bible source has "
                            f"{' and '.join(languages)}; set it to one of them")
    source, target = config.source_language, config.target_language
    if source == target:
        raise DataError(f"data.source_language and data.target_language are both {source!r}; set one to the other "
                        "language (en, es)")
    if not config.test_books:
        raise DataError("data.test_books: empty; the bible source holds out whole books as the test split "
                        "(e.g. [Ruth, Jonah, Mark, Titus, Jas])")
    meta, rows = bible_cache(config)
    test_books = resolve_books(config.test_books, meta["books"])
    held = set(test_books)
    column = {"en": 3, "es": 4}
    train, test = [], []
    for row in rows:
        (test if row[0] in held else train).append((row[column[source]], row[column[target]]))
    reports = {name: empty_report() for name in SPLITS}
    for book, reference, reason in meta.get("left_out", []):
        report = reports["test" if book in held else "train"]
        report["skipped"] += 1
        report["skipped_reasons"][reason] = report["skipped_reasons"].get(reason, 0) + 1
        if len(report["skipped_examples"]) < MAX_SKIPPED_EXAMPLES:
            report["skipped_examples"].append(f"{book} {reference}: {reason}")
    splits = {"train": train, "test": test}
    modules = meta["modules"]
    provenance = (
        f"Bible {source}->{target}, verse-aligned: {BIBLE_TITLES['en']} (SWORD module {modules['en']['module']} "
        f"{modules['en']['version']}, Debian package {modules['en']['package']}) and {BIBLE_TITLES['es']} "
        f"(SWORD module {modules['es']['module']} {modules['es']['version']}, Debian package "
        f"{modules['es']['package']}), both public domain; test books {', '.join(test_books)}"
    )
    info = {"languages": f"{source}-{target}", "test_books": test_books,
            "validation": f"random verses ({config.validation_fraction:.0%} of the non-test books, seed {seed})",
            "alignment": meta.get("alignment", {}), "cache": os.path.join("data", "bible", BIBLE_CACHE)}
    return finish_parallel(splits, reports, config, seed, provenance, info)


# --------------------------------------------------- data= (Python datasets)


def translation_data(user, config, seed):
    """`ParallelData` of (source, target) text pairs (normalised; empty sides skipped and counted)."""
    def items(name):
        for index, example in enumerate(user.examples(name, batched_rank=1)):
            source, target = user_data.pair(example, name, index, "(source text, target text)")
            yield f"data['{name}'] example {index}", user_data.text(source), user_data.text(target)

    splits, reports = {}, {}
    for name in user.splits:
        splits[name], reports[name] = clean_pairs(items(name), config.on_error)
    return finish_parallel(splits, reports, config, seed, "Python datasets given to toolkit.train",
                           {"validation": "given" if "validation" in splits else "random pairs"})


def load_translation_tfrecords(config, seed):
    """`ParallelData` from translation TFRecords (pairs normalised and checked like the TSV source)."""
    import tensorflow as tf

    from toolkit.data.tfrecord import read_meta, split_records

    meta = read_meta(config.path, "translation")
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in ("source", "target")}
    splits, reports = {}, {}
    for split in meta["splits"]:
        items = ((f"{split} record {index}", record["source"].decode("utf-8", "replace"),
                  record["target"].decode("utf-8", "replace"))
                 for index, record in enumerate(split_records(config.path, split, spec)))
        splits[split], reports[split] = clean_pairs(items, config.on_error)
    return finish_parallel(splits, reports, config, seed, meta["provenance"],
                           {"validation": "given" if "validation" in splits else "random pairs"})
