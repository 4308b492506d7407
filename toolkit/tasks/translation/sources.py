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

import bisect
import dataclasses
import difflib
import html
import json
import math
import os
import re
import time
import unicodedata

import numpy as np

from toolkit.data import user_data
from toolkit.data.skips import describe
from toolkit.data.splits import (
    MAX_SKIPPED_EXAMPLES,
    SPLITS,
    count_skip,
    empty_report,
    finish_splits,
    utf8_lines,
)
from toolkit.errors import DataError
from toolkit.registry import Registry, did_you_mean

describe("no tab", "lines without a tab between source and target")
describe("empty side", "pairs with an empty source or target")
describe("not UTF-8", "lines that are not UTF-8 text")
describe("not in the English text", "verses missing from the English Bible", expected=True)
describe("different verse division", "verses the two Bibles divide differently", expected=True)
describe("length mismatch (different text in the two Bibles)",
         "verses whose two texts differ too much in length to be translations of each other", expected=True)

TRANSLATION_SOURCES = Registry("translation data source", DataError)
TRANSLATION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)


@TRANSLATION_SOURCES.register("tfrecord")
def load_tfrecord(config, seed):
    """Sharded TFRecords written by `toolkit data to-tfrecord` (`data.path`: their directory)."""
    return load_translation_tfrecords(config, seed)


def normalize_text(text):
    """Unicode NFC, every whitespace run as one space, stripped.

    Args:
        text: str.

    Example:

    >>> normalize_text("  caf\\u0065\\u0301 \\t au\\n lait ")
    'café au lait'
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


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

BIBLE_MODULES = {"en": "engWEB2015eb", "es": "spaRV1909eb"}
BIBLE_PACKAGES = {"en": "sword-text-web", "es": "sword-text-sparv"}
BIBLE_TITLES = {"en": "World English Bible with Deuterocanon", "es": "Reina-Valera 1909"}
BIBLE_CACHE = "bible_en_es.tsv"
BIBLE_FORMAT = 1  # bump when cleaning or alignment changes: cached files are rebuilt

_NOTE = re.compile(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", re.S)
# Song of Songs speaker labels ("Beloved") are editorial, absent from the Spanish.
_SPEAKER = re.compile(r"<speaker\b[^>]*>.*?</speaker>", re.S)
# The last verse of a book carries the book end, and in the WEB the whole glossary.
_CHAPTER_END = re.compile(r"<chapter\b[^>]*\beID=")
_CLITICS = "lo|la|le|los|las|les|me|te|se|nos|os"
# RV1909 marks added words with <transChange>, written flush against <w>: a
# following word needs a space, a preceding one only unless it is an enclitic
# pronoun ("díjo</w><transChange>le" is "díjole").
_AFTER_ADDED = re.compile(r"</transChange>(?=<w\b)")
_BEFORE_ADDED = re.compile(rf"</w>(?=<transChange\b[^>]*>(?!(?:{_CLITICS})</transChange>))")
_BLOCK = re.compile(r"</?(?:div|l|lg|lb|p|list|item|title|chapter|milestone|verse|head)\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?)])")


def clean_osis(markup):
    """Plain text of one verse of OSIS markup.

    Footnotes (`<note>`) and speaker labels are dropped with a space in their
    place, block elements (lines, paragraphs, titles) become spaces, the text
    of other elements is kept (psalm titles, words); then entities are
    unescaped, text normalised and spaces before , . ; : ! ? ) removed.

    Args:
        markup: str. The verse as pysword returns it with `clean=False`.

    Example:

    >>> clean_osis('<w lemma="x">God</w><note placement="foot">1:1 Elohim</note><w>created</w> it .')
    'God created it.'
    """
    end = _CHAPTER_END.search(markup)
    if end:
        markup = markup[:end.start()]
    markup = _SPEAKER.sub(" ", _NOTE.sub(" ", markup))
    markup = _BEFORE_ADDED.sub("</w> ", _AFTER_ADDED.sub("</transChange> ", markup))
    text = html.unescape(_TAG.sub("", _BLOCK.sub(" ", markup)))
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", normalize_text(text))


def read_sword_conf(path):
    """Reads `key=value` lines of a SWORD module .conf file (first value of each key)."""
    values = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values.setdefault(key.strip(), value.strip())
    return values


def bible_modules(sword_path):
    """Returns {language: conf dict} of the two SWORD modules, or raises DataError naming the packages."""
    confs, missing = {}, []
    for language, module in BIBLE_MODULES.items():
        conf = os.path.join(sword_path, "mods.d", f"{module.lower()}.conf")
        if not os.path.isfile(conf):
            conf = os.path.join(sword_path, "mods.d", f"{module}.conf")
        if os.path.isfile(conf):
            confs[language] = read_sword_conf(conf)
        else:
            missing.append(language)
    if missing:
        packages = " ".join(BIBLE_PACKAGES[language] for language in missing)
        modules = ", ".join(BIBLE_MODULES[language] for language in missing)
        raise DataError(
            f"data.sword_path {sword_path}: SWORD module(s) {modules} not found; install them with: "
            f"sudo apt-get install sword-text-web sword-text-sparv (missing: {packages}; `make setup` does it "
            "when run as root), or set data.sword_path to a SWORD library holding them"
        )
    return confs


def _read_verses(bible):
    """{book OSIS name: [((chapter, verse), text), ...]} of non-empty cleaned verses, and the book order."""
    # With BlockType=BOOK, pysword decompresses the whole book for every verse
    # (about 80 s for both Bibles); keeping the last block makes it about 2 s.
    if hasattr(bible, "_decompressed_text"):
        cache = {}
        decompress = bible._decompressed_text

        def cached(testament, block):
            if (testament, block) not in cache:
                cache.clear()
                cache[(testament, block)] = decompress(testament, block)
            return cache[(testament, block)]

        bible._decompressed_text = cached
    books, empty = {}, {}
    for testament_books in bible.get_structure().get_books().values():
        for book in testament_books:
            verses, blanks = [], set()
            for chapter, length in enumerate(book.chapter_lengths, 1):
                texts = list(bible.get_iter(books=book.osis_name, chapters=chapter, clean=False))
                if len(texts) != length:  # pysword leaves out unreadable verses: read them one by one
                    texts = [bible.get(books=book.osis_name, chapters=chapter, verses=verse, clean=False)
                             for verse in range(1, length + 1)]
                for verse, markup in enumerate(texts, 1):
                    text = clean_osis(markup or "")
                    if text:
                        verses.append(((chapter, verse), text))
                    else:
                        blanks.add((chapter, verse))
            books[book.osis_name], empty[book.osis_name] = verses, blanks
    return books, empty


# Verse alignment (Gale & Church 1993 length model with a verse-number prior).
# Most verses match by number; where the RV1909 follows the Hebrew/Vulgate
# verse order squeezed into KJV numbering (Numbers 13, Jonah 2, ...) the
# content is shifted by one verse and the overflow merged into a neighbour,
# leaving an empty Spanish verse. The dynamic programme below allows 1-1,
# 2-1 and 1-2 verse beads and charges a small cost per 1-1 bead whose verse
# numbers differ, so it follows the numbers unless lengths say otherwise.
_ONE_TO_ONE, _MERGE, _CROSS_CHAPTER, _SHIFT, _LENGTH_CAP, _BAND = 0.12, 4.0, 2.0, 0.15, 6.0, 8
_MAX_DELTA = 5.0  # a pair whose lengths differ by more standard deviations is dropped
# Passages (English numbering, inclusive) whose verse division differs too much
# to align verse by verse: the RV1909 puts Job 39:27-40:5 in one verse and
# divides Job 40-41 like the Vulgate.
UNALIGNABLE = {"Job": ((39, 27), (41, 15))}


def _length_delta(english, spanish, ratio, variance):
    mean = (english + spanish / ratio) / 2
    return (spanish - english * ratio) / math.sqrt(variance * max(mean, 1.0))


def _length_cost(english, spanish, ratio, variance):
    delta = abs(_length_delta(english, spanish, ratio, variance))
    return min(-math.log(max(math.erfc(delta / math.sqrt(2)), 1e-300)), _LENGTH_CAP)


def align_book(english, spanish, dropped_english, ratio, variance):
    """Aligns the verses of one book; returns beads (english indices, spanish indices).

    Args:
        english: list of ((chapter, verse), text). Non-empty verses in order.
        spanish: list of ((chapter, verse), text). Non-empty verses in order.
        dropped_english: set of (chapter, verse) empty in the English; a
            Spanish verse with such a number may be left out at no cost
            (the WEB omits verses such as Acts 8:37).
        ratio: float. Spanish characters per English character.
        variance: float. Variance of the length difference per character.

    A Spanish verse can only be left out that way; every other verse is in
    exactly one bead.
    """
    n, m = len(english), len(spanish)
    english_lengths = [len(text) for _, text in english]
    spanish_lengths = [len(text) for _, text in spanish]
    spanish_refs = [ref for ref, _ in spanish]
    center = [bisect.bisect_left(spanish_refs, ref) for ref, _ in english] + [m]
    free_skip = [ref in dropped_english for ref in spanish_refs]
    costs, back = {(0, 0): 0.0}, {}
    for i in range(n + 1):
        for j in range(max(0, center[i] - _BAND), min(m, center[i] + _BAND) + 1):
            if i == 0 and j == 0:
                continue
            best, previous = math.inf, None
            for di, dj in ((1, 1), (2, 1), (1, 2), (0, 1)):
                pi, pj = i - di, j - dj
                if pi < 0 or pj < 0 or (pi, pj) not in costs:
                    continue
                if di == 0:
                    if not free_skip[pj]:
                        continue
                    cost = 0.0
                else:
                    if di == 1 and dj == 1:
                        cost = _ONE_TO_ONE + (0.0 if english[pi][0] == spanish[pj][0] else _SHIFT)
                    else:
                        chapters = {ref[0] for ref, _ in english[pi:i]} | {ref[0] for ref, _ in spanish[pj:j]}
                        cost = _MERGE + (_CROSS_CHAPTER if len(chapters) > 1 else 0.0)
                    cost += _length_cost(sum(english_lengths[pi:i]), sum(spanish_lengths[pj:j]), ratio, variance)
                cost += costs[(pi, pj)]
                if cost < best:
                    best, previous = cost, (pi, pj)
            if previous is not None:
                costs[(i, j)], back[(i, j)] = best, previous
    if (n, m) not in costs:
        raise DataError("bible: verse alignment failed (the two modules differ more than expected)")
    beads, position = [], (n, m)
    while position != (0, 0):
        previous = back[position]
        beads.append((list(range(previous[0], position[0])), list(range(previous[1], position[1]))))
        position = previous
    return beads[::-1]


def _reference(refs):
    """'9' or '9-10' or '30-40:1' (the chapter is written in its own column)."""
    (first_chapter, first_verse), (last_chapter, last_verse) = refs[0], refs[-1]
    if len(refs) == 1:
        return str(first_verse)
    if last_chapter == first_chapter:
        return f"{first_verse}-{last_verse}"
    return f"{first_verse}-{last_chapter}:{last_verse}"


def build_bible(sword_path, path):
    """Reads both modules, aligns them verse by verse and writes the TSV cache at `path` (atomically).

    Columns: book (OSIS name), chapter, verse (English numbering, NRSVA;
    a range such as `9-10` where verses were merged), en, es. The first
    line is `#` + JSON metadata (module versions, alignment counts, verses
    left out and why). Takes about 5 s (reading 1-2 s, alignment 3-4 s, on one core).

    Args:
        sword_path: str. SWORD library with both modules.
        path: str. Where to write the TSV.

    Returns:
        dict. The metadata written in the first line.
    """
    from pysword.modules import SwordModules

    from toolkit.atomic import atomic_path

    confs = bible_modules(sword_path)
    started = time.time()
    modules = SwordModules(sword_path)
    modules.parse_modules()
    verses, empty = {}, {}
    for language, module in BIBLE_MODULES.items():
        try:
            bible = modules.get_bible_from_module(module)
        except (KeyError, ValueError, OSError) as error:
            raise DataError(f"data.sword_path {sword_path}: cannot open SWORD module {module} ({error}); reinstall "
                            f"it with: sudo apt-get install --reinstall {BIBLE_PACKAGES[language]}")
        verses[language], empty[language] = _read_verses(bible)
    read_seconds = time.time() - started
    books = [book for book in verses["es"] if book in verses["en"]]
    # Length model from verses matched by number.
    english_lengths, spanish_lengths = [], []
    for book in books:
        spanish_text = dict(verses["es"][book])
        for ref, text in verses["en"][book]:
            if ref in spanish_text:
                english_lengths.append(len(text))
                spanish_lengths.append(len(spanish_text[ref]))
    english_lengths, spanish_lengths = np.asarray(english_lengths, float), np.asarray(spanish_lengths, float)
    ratio = float(spanish_lengths.sum() / english_lengths.sum())
    spread = np.median(np.abs(spanish_lengths - ratio * english_lengths) / np.sqrt(english_lengths)) / 0.6745
    variance = float(max(spread ** 2, 0.5)) * 1.7  # heavier tails than the Gaussian fit (Gale & Church use 6.8)
    rows, left_out = [], []
    counts = {"pairs": 0, "by_number": 0, "shifted": 0, "merged": 0, "length_mismatch": 0, "unalignable": 0,
              "es_only": 0}
    for book in books:
        english, spanish = verses["en"][book], verses["es"][book]
        beads = align_book(english, spanish, empty["en"][book], ratio, variance)
        for english_indices, spanish_indices in beads:
            english_refs = [english[i][0] for i in english_indices]
            spanish_refs = [spanish[j][0] for j in spanish_indices]
            if not english_indices:
                counts["es_only"] += len(spanish_refs)
                left_out.extend([book, f"{c}:{v}", "not in the English text"] for c, v in spanish_refs)
                continue
            chapter, verse = english_refs[0][0], _reference(english_refs)
            passage = UNALIGNABLE.get(book)
            if passage and any(passage[0] <= ref <= passage[1] for ref in english_refs):
                counts["unalignable"] += 1
                left_out.append([book, f"{chapter}:{verse}", "different verse division"])
                continue
            english_text = " ".join(english[i][1] for i in english_indices)
            spanish_text = " ".join(spanish[j][1] for j in spanish_indices)
            delta = _length_delta(len(english_text), len(spanish_text), ratio, variance)
            if abs(delta) > _MAX_DELTA:
                counts["length_mismatch"] += 1
                left_out.append([book, f"{chapter}:{verse}", "length mismatch (different text in the two Bibles)"])
                continue
            counts["pairs"] += 1
            if len(english_refs) == len(spanish_refs) == 1:
                counts["by_number" if english_refs == spanish_refs else "shifted"] += 1
            else:
                counts["merged"] += 1
            rows.append((book, str(chapter), verse, english_text, spanish_text))
    meta = {
        "format": BIBLE_FORMAT,
        "sword_path": os.path.abspath(sword_path),
        "modules": {language: {"module": BIBLE_MODULES[language], "version": confs[language].get("Version", "?"),
                               "versification": confs[language].get("Versification", "?"),
                               "package": BIBLE_PACKAGES[language]} for language in BIBLE_MODULES},
        "books": books,
        "alignment": dict(counts, spanish_per_english_character=round(ratio, 4)),
        "left_out": left_out,
        "seconds": {"read": round(read_seconds, 1), "total": round(time.time() - started, 1)},
    }
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("#" + json.dumps(meta, ensure_ascii=False) + "\n")
            f.write("book\tchapter\tverse\ten\tes\n")
            for row in rows:
                f.write("\t".join(row) + "\n")
    return meta


def read_bible(path):
    """Reads the Bible TSV cache; returns (metadata, rows of (book, chapter, verse, en, es))."""
    rows = []
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if not first.startswith("#"):
            raise DataError(f"{path}: not a Bible cache written by the toolkit; delete it to rebuild")
        meta = json.loads(first[1:])
        header = f.readline().rstrip("\n").split("\t")
        if header != ["book", "chapter", "verse", "en", "es"]:
            raise DataError(f"{path}: unexpected columns {header}; delete it to rebuild")
        for line_number, line in enumerate(f, 3):
            columns = line.rstrip("\n").split("\t")
            if len(columns) != 5:
                raise DataError(f"{path}:{line_number}: expected 5 columns; delete the file to rebuild it")
            rows.append(tuple(columns))
    return meta, rows


def bible_cache(config):
    """Returns (metadata, rows) of the aligned Bible, building the cache on first use or when stale."""
    from toolkit.data.fetch import data_cache

    path = os.path.join(data_cache("bible"), BIBLE_CACHE)
    confs = None
    if os.path.isfile(path):
        meta, rows = read_bible(path)
        try:
            confs = bible_modules(config.sword_path)
        except DataError:
            return meta, rows  # modules gone but the cache is there: use it
        current = {language: confs[language].get("Version", "?") for language in BIBLE_MODULES}
        cached = {language: meta.get("modules", {}).get(language, {}).get("version") for language in BIBLE_MODULES}
        if meta.get("format") == BIBLE_FORMAT and current == cached:
            return meta, rows
    build_bible(config.sword_path, path)
    return read_bible(path)


def canonical_books():
    """{lowercase name, OSIS name or abbreviation: OSIS name} of the 66 books both Bibles hold."""
    from pysword.canons import canons

    names = {}
    for testament in ("ot", "nt"):
        for name, osis, abbreviation, _ in canons["kjv"][testament]:
            for key in (name, osis, abbreviation):
                names[key.lower()] = osis
    return names


def resolve_books(names, available):
    """Maps book names (OSIS, English name or abbreviation, any case) to the OSIS names in `available`."""
    known = canonical_books()
    resolved = []
    for name in names:
        osis = known.get(str(name).strip().lower())
        if osis is None or osis not in available:
            close = difflib.get_close_matches(str(name), list(available), n=3, cutoff=0.4)
            hint = did_you_mean(name, available) or (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
            raise DataError(f"data.test_books: unknown book {name!r}{hint} (OSIS names: {', '.join(available)})")
        resolved.append(osis)
    return resolved


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
