"""Lexicon-constrained CTC decoding with a word bigram language model.

`decoding.method: lexicon` finds the best CTC path that spells a sequence of
lexicon words separated by spaces, scored by the acoustic model's
log-probabilities plus `lm_weight` x the log-probability of a word bigram
model (and `word_bonus` per word): Viterbi decoding over one graph built from
the lexicon, like the lexicon decoders of wav2letter/flashlight or a
DeepSpeech2 scorer, but exact and without beams.

The graph: each word is a CTC chain `c1 _ c2 _ ... cn _ space _` (`_` is the
blank after each label). A state is entered from itself, from the state
before it, or skipping a blank when the labels differ; a word's first label
is entered from the space states of any word (plus the bigram score) or from
the leading silence (plus the start score). An utterance ends in a word's last
label, its blank or its space (plus the end score), or is all blank (empty).

The lexicon and the bigram counts come from the training transcripts
(`decoding.lexicon: train`) or a word list file plus those counts; they are
stored in the model's metadata, so the SavedModel (`LexiconDecoder.decode`,
TensorFlow ops inside the `transcribe` signature) and `toolkit predict
x.onnx` (`decode_numpy`, NumPy) decode exactly as evaluation did.

Example:

>>> import numpy as np
>>> lexicon = build_lexicon(["a cab", "a bab"], "ab c'")
>>> graph = DecodingGraph(lexicon, "ab c'", lm_weight=0.0)
>>> logits = np.full((6, 6), -9.0); logits[[0, 1, 2, 3, 4, 5], [1, 3, 4, 1, 2, 0]] = 0  # "a cab" spelt "a cab"
>>> decode_numpy(graph, logits[None])
['a cab']
"""

from __future__ import annotations

import collections
import os

import numpy as np

from toolkit.errors import DataError

NEG = -1e30
INTERPOLATION = 0.7  # bigram vs unigram share of the word probability


def build_lexicon(texts, vocabulary, words_file=None):
    """The lexicon metadata: {"words", "unigrams", "bigrams"} from transcripts (and a word list file).

    `words` are the distinct words of `texts` (or of `words_file`, one or more
    per line); `unigrams` their counts in `texts`; `bigrams` [[a, b, count]]
    over word indices, with len(words) standing for the utterance start (as a)
    and end (as b).
    """
    counts = collections.Counter(word for text in texts for word in text.split())
    if words_file:
        if not os.path.isfile(words_file):
            raise DataError(f"decoding.lexicon: {words_file} is not a file; give a word list (one word per line) "
                            "or 'train' for the words of the training transcripts")
        with open(words_file, encoding="utf-8", errors="replace") as f:
            words = sorted({word for line in f for word in line.lower().split()})
    else:
        words = sorted(counts)
    allowed = set(vocabulary) - {" "}
    for word in words:
        if set(word) - allowed:
            where = words_file or "the training transcripts"
            raise DataError(f"decoding.lexicon: the word {word!r} in {where} has characters outside the vocabulary "
                            f"{vocabulary!r}; remove it or add the characters to `vocabulary`")
    if not words:
        raise DataError("decoding.lexicon: no words; the training transcripts (or the word list) are empty")
    index = {word: i for i, word in enumerate(words)}
    edge = len(words)
    bigrams = collections.Counter()
    for text in texts:
        ids = [edge] + [index.get(word, -1) for word in text.split()] + [edge]
        for a, b in zip(ids, ids[1:]):
            if a >= 0 and b >= 0:
                bigrams[a, b] += 1
    return {"words": words, "unigrams": [counts.get(word, 0) for word in words],
            "bigrams": [[a, b, n] for (a, b), n in sorted(bigrams.items())]}


def bigram_log_probs(lexicon):
    """log P(b | a) as a [W + 1, W + 1] array: rows a (last row: start), columns b (last column: end).

    Interpolated: 0.7 x bigram relative frequency + 0.3 x add-one unigram."""
    words = len(lexicon["words"])
    unigram = np.asarray(list(lexicon["unigrams"]) + [0], np.float64) + 1.0
    ends = sum(n for a, b, n in lexicon["bigrams"] if b == words)
    unigram[words] += ends
    unigram /= unigram.sum()
    counts = np.zeros((words + 1, words + 1))
    for a, b, n in lexicon["bigrams"]:
        counts[a, b] = n
    totals = counts.sum(axis=1, keepdims=True)
    relative = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    share = np.where(totals > 0, INTERPOLATION, 0.0)
    return np.log(share * relative + (1 - share) * unigram[None]).astype(np.float32)


class DecodingGraph:
    """The CTC word graph of a lexicon as NumPy arrays, shared by the TensorFlow and NumPy decoders."""

    def __init__(self, lexicon, vocabulary, lm_weight=0.5, word_bonus=0.0):
        index = {c: i + 1 for i, c in enumerate(vocabulary)}
        if " " not in index:
            raise DataError("decoding.method lexicon: the vocabulary needs a space between words")
        self.words = list(lexicon["words"])
        labels, skip, heads, owner, exits, finals = [], [], [], [], [], []
        for word_id, word in enumerate(self.words):
            sequence = [index[c] for c in word] + [index[" "]]
            base = len(labels)
            for k, label in enumerate(sequence):
                labels += [label, 0]
                skip += [k > 0 and sequence[k - 1] != label, False]
                heads += [k == 0, False]
                owner += [word_id, word_id]
            end = base + 2 * len(sequence)
            exits.append([end - 2, end - 1])
            finals += [end - 4, end - 3, end - 2, end - 1]
        self.labels = np.asarray(labels, np.int32)
        self.heads = np.asarray(heads)
        self.follows = ~self.heads  # entered from the state before it (same word)
        self.skips = np.asarray(skip)
        self.owner = np.asarray(owner, np.int32)
        self.exits = np.asarray(exits, np.int32)
        self.finals = np.asarray(finals, np.int32)
        language = lm_weight * bigram_log_probs(lexicon)
        count = len(self.words)
        self.transitions = language[:count, :count] + word_bonus  # [from word, to word]
        self.start = language[count, :count] + word_bonus
        self.end = language[:count, count][self.owner[self.finals]]

    @classmethod
    def from_metadata(cls, metadata):
        """The graph of a model's metadata, built once per lexicon (`toolkit predict x.onnx` decodes clip by
        clip)."""
        decoding, lexicon = metadata["decoding"], metadata.get("lexicon")
        if not lexicon:
            raise ValueError("decoding.method lexicon: this model's metadata has no lexicon (trained before "
                             "lexicon decoding existed, or a Whisper model); use method greedy or beam")
        settings = (metadata["vocabulary"], float(decoding.get("lm_weight", 0.5)),
                    float(decoding.get("word_bonus", 0.0)))
        cached = _GRAPHS.get(id(lexicon))
        if cached is None or cached[0] is not lexicon or cached[1] != settings:
            cached = _GRAPHS[id(lexicon)] = (lexicon, settings, cls(lexicon, *settings))
        return cached[2]


_GRAPHS = {}  # id(lexicon dict) -> (the dict, settings, DecodingGraph)


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def decode_numpy(graph, logits):
    """Lexicon Viterbi decoding of CTC logits [batch, frames, classes] in NumPy; returns a list of str."""
    return [_decode_one(graph, _log_softmax(np.asarray(row, np.float32))) for row in logits]


def _decode_one(graph, log_probs):
    frames, states = len(log_probs), len(graph.labels)
    head_ids = np.flatnonzero(graph.heads)
    delta = np.full(states, NEG, np.float32)
    delta[head_ids] = log_probs[0, graph.labels[head_ids]] + graph.start[graph.owner[head_ids]]
    silence = log_probs[0, 0]
    choice = np.zeros((frames, states), np.int8)
    entry_from = np.zeros((frames, len(graph.words)), np.int32)
    exit_state = np.zeros((frames, len(graph.words)), np.int32)
    for t in range(1, frames):
        options = np.full((4, states), NEG, np.float32)
        options[0] = delta
        options[1, 1:] = np.where(graph.follows[1:], delta[:-1], NEG)
        options[2, 2:] = np.where(graph.skips[2:], delta[:-2], NEG)
        leaving = delta[graph.exits]  # [words, 2]
        exit_state[t] = graph.exits[np.arange(len(graph.words)), leaving.argmax(axis=1)]
        entering = leaving.max(axis=1)[:, None] + graph.transitions
        entry, entry_from[t] = entering.max(axis=0), entering.argmax(axis=0)
        from_silence = silence + graph.start
        entry_from[t] = np.where(from_silence > entry, -1, entry_from[t])
        entry = np.maximum(entry, from_silence)
        options[3, head_ids] = entry[graph.owner[head_ids]]
        choice[t] = options.argmax(axis=0)
        delta = options.max(axis=0) + log_probs[t, graph.labels]
        silence += log_probs[t, 0]
    ending = delta[graph.finals] + graph.end
    if silence >= ending.max():
        return ""
    state, words = graph.finals[ending.argmax()], []
    for t in range(frames - 1, 0, -1):
        step = choice[t, state]
        if step == 3:
            words.append(graph.words[graph.owner[state]])
            previous = entry_from[t, graph.owner[state]]
            if previous < 0:
                return " ".join(reversed(words))
            state = exit_state[t, previous]
        else:
            state -= step
    words.append(graph.words[graph.owner[state]])
    return " ".join(reversed(words))


class LexiconDecoder:
    """The same Viterbi decoding as `decode_numpy`, in TensorFlow ops (exported inside `transcribe`)."""

    def __init__(self, graph):
        self.graph = graph

    def decode(self, logits):
        """logits [batch, frames, classes] -> transcripts [batch] (tf.string)."""
        import tensorflow as tf

        g = self.graph
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        emit = tf.gather(log_probs, g.labels, axis=2)  # [batch, frames, states]
        blank = log_probs[:, :, 0]
        batch, frames = tf.shape(emit)[0], tf.shape(emit)[1]
        heads, follows, skips = tf.constant(g.heads), tf.constant(g.follows), tf.constant(g.skips)
        owner, exits = tf.constant(g.owner), tf.constant(g.exits)
        transitions, start = tf.constant(g.transitions), tf.constant(g.start)
        neg = tf.constant(NEG, tf.float32)

        delta = tf.where(heads[None], emit[:, 0] + tf.gather(start, owner)[None], neg)
        arrays = [tf.TensorArray(tf.int32, size=frames) for _ in range(3)]

        def step(t, delta, silence, choices, entries, leaves):
            shifted1 = tf.concat([tf.fill([batch, 1], neg), delta[:, :-1]], axis=1)
            shifted2 = tf.concat([tf.fill([batch, 2], neg), delta[:, :-2]], axis=1)
            leaving = tf.gather(delta, exits, axis=1)  # [batch, words, 2]
            exit_state = tf.where(leaving[:, :, 1] > leaving[:, :, 0], exits[None, :, 1], exits[None, :, 0])
            entering = tf.reduce_max(leaving, axis=2)[:, :, None] + transitions[None]
            entry = tf.reduce_max(entering, axis=1)
            entry_from = tf.argmax(entering, axis=1, output_type=tf.int32)
            from_silence = silence[:, None] + start[None]
            entry_from = tf.where(from_silence > entry, -1, entry_from)
            entry = tf.maximum(entry, from_silence)
            options = tf.stack([delta, tf.where(follows[None], shifted1, neg), tf.where(skips[None], shifted2, neg),
                                tf.where(heads[None], tf.gather(entry, owner, axis=1), neg)], axis=2)
            new_delta = tf.reduce_max(options, axis=2) + emit[:, t]
            return (t + 1, new_delta, silence + blank[:, t],
                    choices.write(t, tf.argmax(options, axis=2, output_type=tf.int32)),
                    entries.write(t, entry_from), leaves.write(t, exit_state))

        _, delta, silence, choices, entries, leaves = tf.while_loop(
            lambda t, *_: t < frames, step, (tf.constant(1), delta, blank[:, 0], *arrays))
        # Frame 0 holds no back-pointers; write zeros so the arrays stack.
        choices = choices.write(0, tf.zeros_like(delta, tf.int32)).stack()  # [frames, batch, states]
        entries = entries.write(0, tf.zeros([batch, len(g.words)], tf.int32)).stack()
        leaves = leaves.write(0, tf.zeros([batch, len(g.words)], tf.int32)).stack()

        ending = tf.gather(delta, g.finals, axis=1) + tf.constant(g.end)[None]
        state = tf.gather(tf.constant(g.finals), tf.argmax(ending, axis=1, output_type=tf.int32))
        done = silence >= tf.reduce_max(ending, axis=1)  # all blank: empty transcript
        found = tf.TensorArray(tf.int32, size=frames)

        def back(t, state, done, found):
            step = tf.gather(choices[t], state, batch_dims=1)
            word = tf.gather(owner, state)
            entered = tf.logical_and(tf.equal(step, 3), tf.logical_not(done))
            found = found.write(t, tf.where(entered, word, -1))
            previous = tf.gather(entries[t], word, batch_dims=1)
            jumped = tf.gather(leaves[t], tf.maximum(previous, 0), batch_dims=1)
            state = tf.where(entered, jumped, state - tf.where(tf.equal(step, 3), 0, step))
            return t - 1, state, tf.logical_or(done, tf.logical_and(entered, previous < 0)), found

        _, state, done, found = tf.while_loop(lambda t, *_: t > 0, back, (frames - 1, state, done, found))
        found = found.write(0, tf.where(done, -1, tf.gather(owner, state)))
        ids = tf.transpose(found.stack())  # [batch, frames], one word id where a word starts, else -1
        words = tf.ragged.boolean_mask(ids, ids >= 0)
        return tf.strings.reduce_join(tf.gather(tf.constant(g.words), words), axis=1, separator=" ")
