"""Lexicon decoding of CTC logits: hand-made logits where greedy misspells, the
bigram model breaking an acoustic near-tie, the TensorFlow and NumPy decoders
agreeing on random logits, and the lexicon's errors."""

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import DataError, ToolkitError
from toolkit.tasks.speech_recognition.decoding import greedy_decode_ids, ids_to_text
from toolkit.tasks.speech_recognition.lexicon import DecodingGraph, LexiconDecoder, build_lexicon, decode_numpy

VOCABULARY = "abcdefghijklmnopqrstuvwxyz' "


def logits_of(frames):
    """Logits from per-frame {character or "_" (blank): probability}; the rest of each frame's mass is spread."""
    classes = len(VOCABULARY) + 1
    logits = np.zeros((1, len(frames), classes), np.float32)
    for t, frame in enumerate(frames):
        probs = np.full(classes, (1 - sum(frame.values())) / (classes - len(frame)))
        for char, p in frame.items():
            probs[0 if char == "_" else VOCABULARY.index(char) + 1] = p
        logits[0, t] = np.log(probs)
    return logits


def both(graph, logits):
    """Transcripts of the NumPy decoder, after checking the TensorFlow one gives the same."""
    numpy = decode_numpy(graph, logits)
    graph_ops = [t.decode() for t in LexiconDecoder(graph).decode(logits).numpy()]
    assert numpy == graph_ops
    return numpy


def test_lexicon_fixes_a_misspelling_greedy_makes():
    graph = DecodingGraph(build_lexicon(["duck", "dark", "the duck"], VOCABULARY), VOCABULARY, lm_weight=0.0)
    # d, u, then a frame that is mostly blank but could be c, then k: greedy writes "duk".
    logits = logits_of([{"d": 0.9}, {"u": 0.6, "a": 0.1}, {"_": 0.6, "c": 0.3}, {"k": 0.9}, {"_": 0.9}])
    assert ids_to_text(greedy_decode_ids(logits)[0], VOCABULARY) == "duk"
    assert both(graph, logits) == ["duck"]


def test_words_split_at_spaces_and_repeated_letters_need_a_blank():
    graph = DecodingGraph(build_lexicon(["a cab", "a bab", "all"], VOCABULARY), VOCABULARY, lm_weight=0.0)
    a, b, c, space = ({ch: 0.95} for ch in "abc ")
    assert both(graph, logits_of([a, space, c, a, b])) == ["a cab"]
    # "all" needs a blank between its l's; "al" is not a word, so the path keeps two l's.
    ell, blank = {"l": 0.95}, {"_": 0.95}
    assert both(graph, logits_of([a, ell, blank, ell, blank])) == ["all"]
    assert both(graph, logits_of([blank, blank, blank])) == [""]  # all blank: nothing said


def test_bigram_model_breaks_an_acoustic_near_tie():
    lexicon = build_lexicon(["the cat", "the cat", "the cat", "a hat"], VOCABULARY)
    # "the ?at" where the acoustics lean slightly to h.
    frames = [{"t": 0.9}, {"h": 0.9}, {"e": 0.9}, {" ": 0.9}, {"h": 0.5, "c": 0.45}, {"a": 0.9}, {"t": 0.9}]
    assert both(DecodingGraph(lexicon, VOCABULARY, lm_weight=0.0), logits_of(frames)) == ["the hat"]
    assert both(DecodingGraph(lexicon, VOCABULARY, lm_weight=1.0), logits_of(frames)) == ["the cat"]


def test_tensorflow_and_numpy_decoders_agree_on_random_batches():
    texts = ["one two three", "two to too", "three tree", "a an and", "see sea", "no know now", "oh owe"]
    graph = DecodingGraph(build_lexicon(texts, VOCABULARY), VOCABULARY, lm_weight=0.5, word_bonus=0.5)
    rng = np.random.RandomState(0)
    letters = [VOCABULARY.index(c) + 1 for c in "onetwhrsaknd "]
    for _ in range(6):
        logits = rng.randn(4, rng.randint(1, 30), len(VOCABULARY) + 1).astype(np.float32)
        logits[:, :, letters] += 3 * rng.rand(len(letters))  # mass on the lexicon's letters
        logits[:, :, 0] += 2.0
        transcripts = both(graph, logits)
        assert all(set(t.split()) <= set(graph.words) for t in transcripts), transcripts


def test_lexicon_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="'caf.' in the training transcripts has characters outside"):
        build_lexicon(["caf\u00e9 au lait"], VOCABULARY)
    with pytest.raises(DataError, match="is not a file"):
        build_lexicon(["a"], VOCABULARY, str(tmp_path / "missing.txt"))
    words = tmp_path / "words.txt"
    words.write_text("Alpha beta\ngamma\n", encoding="utf-8")
    lexicon = build_lexicon(["alpha gamma"], VOCABULARY, str(words))
    assert lexicon["words"] == ["alpha", "beta", "gamma"] and lexicon["unigrams"] == [1, 0, 1]
    with pytest.raises(ToolkitError, match="Whisper .* decodes tokens"):
        load_recipe({"task": "speech_recognition", "model": {"pretrained": "hub:whisper_tiny_en"},
                     "decoding": {"method": "lexicon"}})
    with pytest.raises(ValueError, match="has no lexicon"):
        DecodingGraph.from_metadata({"decoding": {"method": "lexicon"}, "vocabulary": VOCABULARY})
