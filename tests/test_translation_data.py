"""Translation data: TSV/TFDS/Bible sources, text normalisation, sacreBLEU
scores and the word-for-word baseline of bench/translation_baselines.py."""

import os
import re
import shutil
import sys
import time
import unicodedata

import pytest

from toolkit.data.bible import BIBLE_CACHE, build_bible, read_bible
from toolkit.data.text import normalize_text
from toolkit.errors import DataError
from toolkit.tasks.translation.config import DEFAULT_TEST_BOOKS, TranslationDataConfig
from toolkit.tasks.translation.sources import TRANSLATION_SOURCES
from toolkit.text_metrics import corpus_scores

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "bench"))
from translation_baselines import copy_baseline, detokenize, dictionary_baseline, run_baselines  # noqa: E402

SWORD = "/usr/share/sword"
MODULE_CONFS = [os.path.join(SWORD, "mods.d", name) for name in ("engWEB2015eb.conf", "spaRV1909eb.conf")]


def tsv_config(path, **fields):
    fields.setdefault("validation_fraction", 0.25)
    fields.setdefault("test_fraction", 0.2)
    return TranslationDataConfig(source="tsv", path=str(path), **fields)


def load(config, seed=0):
    return TRANSLATION_SOURCES.get(config.source)(config, seed)


def good_lines(count, start=0):
    return [f"sentence {i}\tfrase {i}".encode() for i in range(start, start + count)]


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return str(path)


# ---------------------------------------------------------------------- normalise


def test_normalize_text_is_nfc_with_single_spaces():
    decomposed = unicodedata.normalize("NFD", "Señor  está\taquí\n")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert normalize_text("  " + decomposed + " \u00a0 ") == "Señor está aquí"
    assert normalize_text(" \t ") == ""


# ---------------------------------------------------------------------------- TSV


def test_tsv_file_is_split_and_bad_lines_are_counted(tmp_path):
    lines = good_lines(40)
    lines[3] = b"no tab on this line"
    lines[7] = b"only source\t   "
    lines[11] = "caf\u00e9\tcaf\u00e9".encode("latin-1")  # not UTF-8
    lines[15] = b"three\tcolumns\textra"  # kept: first two columns
    lines[19] = b"   "  # blank lines are ignored, not counted
    lines[21] = "  e\u0301l   dijo \t  \u00e9l dijo ".encode()  # normalised: NFC, single spaces
    path = write_lines(tmp_path / "pairs.tsv", lines)
    data = load(tsv_config(path))
    sizes = {name: len(pairs) for name, pairs in data.splits.items()}
    assert sizes == {"train": 22, "validation": 7, "test": 7}  # 36 usable: 20% test, 25% of the rest validation
    report = data.report["train"]
    assert report["skipped"] == 3
    assert report["skipped_reasons"] == {"no tab": 1, "empty side": 1, "not UTF-8": 1}
    assert report["skipped_examples"] == [f"{path}:4: no tab", f"{path}:8: empty side", f"{path}:12: not UTF-8"]
    assert data.report["test"]["examples"] == 7 and data.report["validation"]["skipped"] == 0
    every = [pair for pairs in data.splits.values() for pair in pairs]
    assert len(set(every)) == 36
    assert ("three", "columns") in every
    assert ("él dijo", "él dijo") in every
    assert all(unicodedata.is_normalized("NFC", text) for pair in every for text in pair)
    # Same seed, same split; another seed, another split.
    assert load(tsv_config(path)).splits == data.splits
    assert load(tsv_config(path), seed=1).splits["test"] != data.splits["test"]


@pytest.mark.parametrize("line, reason", [
    (b"no tab here", "no tab"),
    (b"\tonly target", "empty side"),
    (b"\xff\xfe\tbroken", "not UTF-8"),
])
def test_tsv_on_error_fail_names_file_and_line(tmp_path, line, reason):
    lines = good_lines(5)
    lines.insert(2, line)
    path = write_lines(tmp_path / "pairs.tsv", lines)
    with pytest.raises(DataError, match=re.escape(f"{path}:3: {reason}") + ".*data.on_error: skip"):
        load(tsv_config(path, on_error="fail"))
    assert load(tsv_config(path)).report["train"]["skipped_reasons"] == {reason: 1}


def test_tsv_directory_with_dev_and_test_files(tmp_path):
    write_lines(tmp_path / "train.tsv", good_lines(30))
    write_lines(tmp_path / "dev.tsv", good_lines(4, start=100) + [b"bad line"])
    write_lines(tmp_path / "test.tsv", good_lines(6, start=200))
    data = load(tsv_config(tmp_path))
    assert {name: len(pairs) for name, pairs in data.splits.items()} == {"train": 30, "validation": 4, "test": 6}
    assert data.splits["test"][0] == ("sentence 200", "frase 200")  # files keep their order
    assert data.report["validation"]["skipped_examples"] == [f"{tmp_path / 'dev.tsv'}:5: no tab"]
    assert data.info["validation"] == "validation file"


def test_tsv_directory_with_train_only_cuts_test_and_validation(tmp_path):
    write_lines(tmp_path / "train.tsv", good_lines(50))
    data = load(tsv_config(tmp_path, test_fraction=0.1, validation_fraction=0.2))
    assert {name: len(pairs) for name, pairs in data.splits.items()} == {"train": 36, "validation": 9, "test": 5}
    assert not set(data.splits["test"]) & set(data.splits["train"])


def test_tsv_limits(tmp_path):
    path = write_lines(tmp_path / "pairs.tsv", good_lines(100))
    full = load(tsv_config(path))
    limited = load(tsv_config(path, limit={"train": 10, "validation": 3, "test": 2}))
    assert {name: len(pairs) for name, pairs in limited.splits.items()} == {"train": 10, "validation": 3, "test": 2}
    assert set(limited.splits["train"]) <= set(full.splits["train"])
    assert limited.splits["train"] != full.splits["train"][:10]  # a seeded random subset
    assert limited.splits["test"] == full.splits["test"][:2] and limited.splits["validation"] == full.splits[
        "validation"][:3]
    assert limited.report["train"]["examples"] == 10 and limited.info["available"]["train"] == len(full.splits["train"])


def test_tsv_missing_or_empty_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="data.path: required"):
        load(TranslationDataConfig(source="tsv"))
    with pytest.raises(DataError, match="data.path .*missing.tsv does not exist"):
        load(tsv_config(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="no train.tsv"):
        load(tsv_config(tmp_path))
    path = write_lines(tmp_path / "bad.tsv", [b"no tab", b"source only\t "])
    with pytest.raises(DataError, match="no usable source<TAB>target line .2 skipped"):
        load(tsv_config(path))


# --------------------------------------------------------------------------- TFDS


def test_tfds_source_with_mocked_dataset(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import toolkit.data.tfds as sources

    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: True)  # mock_data plays the download
    config = TranslationDataConfig(source="tfds", tfds_name="ted_hrlr_translate/pt_to_en", limit={"train": 5},
                                   tfds_data_dir=str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=12):
        data = load(config)
    assert len(data.splits["train"]) == 5 and len(data.splits["test"]) == 12
    assert all(isinstance(text, str) and text == normalize_text(text) for text in data.splits["train"][0])
    assert data.info["supervised_keys"] == ["pt", "en"] and "pt -> en" in data.provenance


def test_tfds_without_a_name_is_a_clear_error():
    with pytest.raises(DataError, match="data.tfds_name: required"):
        load(TranslationDataConfig(source="tfds"))


# -------------------------------------------------------------------------- Bible

needs_sword = pytest.mark.skipif(
    not all(os.path.isfile(path) for path in MODULE_CONFS),
    reason="Debian packages sword-text-web/sword-text-sparv not installed",
)


@pytest.fixture(scope="module")
def bible_cache_file(tmp_path_factory):
    """The aligned Bible TSV, built once for this module."""
    if not all(os.path.isfile(path) for path in MODULE_CONFS):
        pytest.skip("Debian packages sword-text-web/sword-text-sparv not installed")
    path = str(tmp_path_factory.mktemp("bible") / BIBLE_CACHE)
    started = time.time()
    meta = build_bible(SWORD, path)
    print(f"\nbible cache built in {time.time() - started:.1f} s: {meta['alignment']}")
    return path


@pytest.fixture
def bible_home(toolkit_home, bible_cache_file):
    """This test's toolkit home with the prebuilt cache in place."""
    target = os.path.join(str(toolkit_home), "data", "bible", BIBLE_CACHE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(bible_cache_file, target)
    return target


@pytest.fixture
def bible(bible_home):
    return load(TranslationDataConfig(), seed=42)


def rows_by_reference(path):
    _, rows = read_bible(path)
    return {(book, int(chapter), verse): (en, es) for book, chapter, verse, en, es in rows}


@needs_sword
def test_bible_aligns_known_verses(bible_cache_file):
    rows = rows_by_reference(bible_cache_file)
    assert rows[("Gen", 1, "1")] == ("In the beginning, God created the heavens and the earth.",
                                     "EN el principio crió Dios los cielos y la tierra.")
    john = rows[("John", 3, "16")]
    assert john[0] == ("For God so loved the world, that he gave his only born Son, that whoever believes in him "
                       "should not perish, but have eternal life.")
    assert john[1].startswith("Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito,")
    # Psalm titles are verse text in both Bibles.
    assert rows[("Ps", 3, "1")][0].startswith("A Psalm by David, when he fled from Absalom his son. Yahweh,")
    assert rows[("Ps", 3, "1")][1].startswith("Salmo de David, cuando huía de delante de Absalom su hijo.")
    # RV1909 numbers Jonah 1:17 as 2:1 (Hebrew order): aligned by content, not by number.
    assert rows[("Jonah", 1, "17")][1].startswith("MAS Jehová había prevenido un gran pez")
    assert rows[("Jonah", 2, "1")][1].startswith("Y oró Jonás desde el vientre del pez")
    assert rows[("Jonah", 2, "9-10")][1].endswith("Y mandó Jehová al pez, y vomitó á Jonás en tierra.")
    # Words added by the translators (<transChange>) keep their spaces; enclitics stay attached.
    assert "y díjole Dios:" in rows[("1Kgs", 3, "5")][1]


@needs_sword
def test_bible_text_has_no_markup_or_glued_words(bible_cache_file):
    _, rows = read_bible(bible_cache_file)
    assert len(rows) > 30000
    glued = re.compile(r"\w[a-záéíóúñ][A-ZÁÉÍÓÚÑ]|[a-z][.,;:!?][A-Za-z]|\s[,.;:!?)]|[<>]|&\w+;|  ")
    problems = [(row[:3], match.group()) for row in rows for text in row[3:] for match in [glued.search(text)] if match]
    assert problems == []
    assert not any("bornSon" in row[3] or "Godcreated" in row[3] for row in rows)


@needs_sword
def test_bible_splits_hold_out_whole_books(bible, bible_home):
    sizes = {name: len(pairs) for name, pairs in bible.splits.items()}
    print(f"\nbible splits: {sizes}, test books {bible.info['test_books']}")
    assert bible.info["test_books"] == DEFAULT_TEST_BOOKS
    assert 900 <= sizes["test"] <= 1000
    non_test = sizes["train"] + sizes["validation"]
    assert 0.045 <= sizes["validation"] / non_test <= 0.055 and sizes["train"] > 28000
    _, rows = read_bible(bible_home)
    test_rows = [(en, es) for book, _, _, en, es in rows if book in DEFAULT_TEST_BOOKS]
    other_rows = {(en, es) for book, _, _, en, es in rows if book not in DEFAULT_TEST_BOOKS}
    assert sorted(bible.splits["test"]) == sorted(test_rows)
    assert all(pair in other_rows for pair in bible.splits["train"] + bible.splits["validation"])
    assert bible.splits["train"][0][0].startswith("In the beginning")  # en -> es
    assert "public domain" in bible.provenance and "sword-text-sparv" in bible.provenance
    assert "engWEB2015eb" in bible.provenance and "spaRV1909eb" in bible.provenance
    assert bible.report["train"]["skipped_reasons"].get("not in the English text", 0) >= 1  # e.g. Acts 8:37


@needs_sword
def test_bible_direction_book_names_and_limits(bible_home):
    data = load(TranslationDataConfig(source_language="es", target_language="en", test_books=["james", "Ruth"],
                                      limit={"train": 50, "validation": 5, "test": 7}), seed=1)
    assert data.info["test_books"] == ["Jas", "Ruth"] and data.info["languages"] == "es-en"
    assert {name: len(pairs) for name, pairs in data.splits.items()} == {"train": 50, "validation": 5, "test": 7}
    assert data.splits["test"][0] == (  # Ruth 1:1 (test pairs keep the Bible's order)
        "Y ACONTECIÓ en los días que gobernaban los jueces, que hubo hambre en la tierra. Y un varón de Beth-lehem "
        "de Judá, fué á peregrinar en los campos de Moab, él y su mujer, y dos hijos suyos.",
        "In the days when the judges judged, there was a famine in the land. A certain man of Bethlehem Judah went "
        "to live in the country of Moab with his wife and his two sons.")


@needs_sword
def test_bible_errors_name_the_field(bible_home):
    with pytest.raises(DataError, match=r"data.test_books: unknown book 'Jonas'; did you mean 'Jonah'"):
        load(TranslationDataConfig(test_books=["Ruth", "Jonas"]))
    with pytest.raises(DataError, match="data.target_language 'fr'.*en and es"):
        load(TranslationDataConfig(target_language="fr"))
    with pytest.raises(DataError, match="both 'en'"):
        load(TranslationDataConfig(target_language="en"))
    with pytest.raises(DataError, match="data.test_books: empty"):
        load(TranslationDataConfig(test_books=[]))


@needs_sword
def test_bible_cache_is_reused(bible_home):
    modified = os.path.getmtime(bible_home)
    started = time.time()
    load(TranslationDataConfig())
    assert time.time() - started < 2.0
    assert os.path.getmtime(bible_home) == modified


def test_bible_without_sword_modules_says_what_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install sword-text-web sword-text-sparv.*make setup"):
        load(TranslationDataConfig(sword_path=str(tmp_path)))


# ------------------------------------------------------------------------ metrics


def test_corpus_scores_match_sacrebleu():
    import sacrebleu

    hypotheses = ["the cat sat on the mat", "there is a dog in the garden", "hello world", "it rained all day"]
    references = ["the cat sat on a mat", "a dog is in the garden", "hello there world", "it was raining all day"]
    scores = corpus_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert 0 < scores["bleu"] < 100 and 0 < scores["chrf"] < 100
    assert "nrefs:1" in scores["bleu_signature"] and "tok:13a" in scores["bleu_signature"]
    assert "nrefs:1" in scores["chrf_signature"]
    details = scores["bleu_details"]
    assert len(details["precisions"]) == 4 and details["sys_len"] == 19 and details["ref_len"] == 20
    assert 0 < details["brevity_penalty"] < 1
    assert corpus_scores(references, references)["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_scores(["a", "b"], ["a"])


# ---------------------------------------------------------------------- baselines


def test_dictionary_baseline_learns_word_table():
    pairs = [
        ("the house", "la casa"), ("the book", "el libro"), ("a book", "un libro"), ("a house", "una casa"),
        ("the green house", "la casa verde"), ("the red book", "el libro rojo"), ("a green book", "un libro verde"),
        ("the dog", "el perro"), ("a red dog", "un perro rojo"), ("the dog sleeps", "el perro duerme"),
    ]
    translator = dictionary_baseline(pairs)
    for source, target in {"house": "casa", "book": "libro", "dog": "perro", "green": "verde", "red": "rojo",
                           "sleeps": "duerme"}.items():
        assert translator.table[source] == target
    assert translator(["The dog, the book!"]) == ["El perro, el libro!"]  # capitals and punctuation kept
    assert translator(["Zebra sleeps."]) == ["Zebra duerme."]  # unknown words are copied
    assert copy_baseline(pairs[:2]) == ["the house", "the book"]
    assert detokenize(["¿", "Qué", "?", "(", "sí", ")", "“", "no", "”", "."]) == "¿Qué? (sí) “no”."


def test_run_baselines_on_a_tiny_split(tmp_path):
    lines = [f"the {word}\tla {word}a".encode() for word in ("casa", "mesa", "silla", "puerta", "ventana")] * 4
    data = load(tsv_config(write_lines(tmp_path / "pairs.tsv", lines), test_fraction=0.25, validation_fraction=0.2))
    results = run_baselines(data)
    assert set(results) == {"copy", "dictionary"}
    assert set(results["copy"]["test"]) >= {"bleu", "chrf", "bleu_signature"}
    assert results["dictionary"]["test"]["chrf"] >= results["copy"]["test"]["chrf"]
    assert results["dictionary"]["train_seconds"] >= 0
