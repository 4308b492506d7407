"""CTC decoding: best path in NumPy, and `Transcriber`, the SavedModel's and the Keras model's whole pipeline
(waveforms -> log-mel features -> network -> greedy, beam or lexicon decoding -> strings) as one tf.function.
Character ids are 1-based indices into the model's vocabulary; 0 is the CTC blank.

Example:

>>> from toolkit.tasks.speech_recognition.decoding import greedy_decode_ids, ids_to_text
>>> import numpy as np
>>> logits = np.eye(3)[[1, 1, 0, 2, 2, 0, 1]][None]  # a a _ b b _ a
>>> ids_to_text(greedy_decode_ids(logits)[0], "ab")
'aba'
"""

import numpy as np

from toolkit.data.audio_features import log_mel, pad_waves

BLANK = 0


def greedy_decode_ids(logits):
    """Best path per utterance (NumPy): argmax, merge repeats, drop blanks; returns lists of ids."""
    best = np.argmax(np.asarray(logits), axis=-1)
    results = []
    for row in best:
        ids, previous = [], BLANK
        for token in row:
            if token != previous and token != BLANK:
                ids.append(int(token))
            previous = token
        results.append(ids)
    return results


def ids_to_text(ids, vocabulary):
    return "".join(vocabulary[i - 1] for i in ids if 0 < i <= len(vocabulary))


def text_to_ids(text, vocabulary):
    index = {c: i + 1 for i, c in enumerate(vocabulary)}
    return [index[c] for c in text]


class Transcriber:
    """Features, network and CTC decoding as one tf.function: waveforms + lengths -> strings."""

    def __init__(self, model, metadata):
        self.model = model
        self.metadata = metadata
        self._functions = {}

    def decode(self, logits, method, beam_width):
        import tensorflow as tf
        from keras import ops

        if method == "lexicon":
            from toolkit.tasks.speech_recognition.lexicon import DecodingGraph, LexiconDecoder

            return LexiconDecoder(DecodingGraph.from_metadata(self.metadata)).decode(logits)
        batch, frames = tf.shape(logits)[0], tf.shape(logits)[1]
        lengths = tf.fill([batch], frames)
        strategy = "beam_search" if method == "beam" else "greedy"
        kwargs = {"beam_width": beam_width, "top_paths": 1} if method == "beam" else {}
        decoded, _ = ops.ctc_decode(logits, lengths, strategy=strategy, mask_index=BLANK, **kwargs)
        ids = tf.cast(decoded[0], tf.int32)  # [batch, length], padded with -1
        characters = tf.constant([""] + list(self.metadata["vocabulary"]))
        ids = tf.where(ids < 0, 0, ids)
        return tf.strings.reduce_join(tf.gather(characters, ids), axis=1)

    def function(self, method=None, beam_width=None):
        import tensorflow as tf

        decoding = self.metadata["decoding"]
        settings = (method or decoding["method"], int(beam_width or decoding["beam_width"]))
        if settings not in self._functions:
            @tf.autograph.experimental.do_not_convert
            def transcribe(waveforms, lengths):
                features = log_mel(waveforms, lengths, self.metadata)
                return self.decode(self.model(features, training=False), *settings)

            self._functions[settings] = tf.function(transcribe, input_signature=[
                tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])
        return self._functions[settings]

    def resources(self):
        """Objects the SavedModel must track for `function` (tokenizers)."""
        return []

    def transcribe(self, waves, batch_size=16, on_batch=None, **settings):
        """Transcribes a list of float32 waveforms (at the model's sample rate); returns a list of str.

        `on_batch(count)` is called after each batch (progress)."""
        function = self.function(**settings)
        results = []
        for start in range(0, len(waves), batch_size):
            batch, lengths = pad_waves(waves[start:start + batch_size])
            results.extend(t.decode("utf-8") for t in function(batch, lengths).numpy())
            if on_batch is not None:
                on_batch(len(lengths))
        return results
