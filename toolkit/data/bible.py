"""The English-Spanish Bible as local text: the World English Bible and the Reina-Valera 1909, aligned verse by verse.

Read from the SWORD modules of the Debian packages sword-text-web (engWEB2015eb) and sword-text-sparv
(spaRV1909eb), both public domain, with `pysword`; built once and cached as a TSV (`bible_cache`). Translation reads
it as (source, target) verse pairs; text classification reads one side with each verse's book (its genre).

Example:

>>> from toolkit.data.bible import clean_osis
>>> clean_osis('<w lemma="x">God</w><note placement="foot">1:1 Elohim</note><w>created</w> it .')
'God created it.'
"""

import bisect
import difflib
import html
import json
import math
import os
import re
import time

import numpy as np

from toolkit.data.skips import describe
from toolkit.data.text import normalize_text
from toolkit.errors import DataError
from toolkit.registry import did_you_mean

describe("not in the English text", "verses missing from the English Bible", expected=True)
describe("different verse division", "verses the two Bibles divide differently", expected=True)
describe("length mismatch (different text in the two Bibles)",
         "verses whose two texts differ too much in length to be translations of each other", expected=True)


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
