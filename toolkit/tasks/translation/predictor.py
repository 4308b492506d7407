"""Translation models deployed: strings in, strings out, in every runtime. Outside the graph (ONNX Runtime)
the text is tokenised with the `sentencepiece` library (or the preset's tokenizer) and decoded in NumPy with
the model's own decoding; verification outputs (logits and translations) and the model card's samples.

Example:

>>> from toolkit.tasks.translation.predictor import TranslationPredictor
>>> TranslationPredictor.format_prediction({"input": "Hello", "translation": "Hola"})
'Hola'
"""

import base64
import os

import numpy as np

from toolkit.data.text import BOS, normalize_text, pack_ids_numpy, pad_rows
from toolkit.tasks.predictor import Predictor


class TranslationPredictor(Predictor):
    """Machine translation: a translation per text."""

    name = "translation"
    agreement_unit = "argmax per token; identical translations"
    export_notes = {
        "onnx": "the network only (token ids -> logits): tokenisation, the decoding loop and detokenisation are "
                "string ops with no ONNX equivalent; `toolkit predict x.onnx` runs them with sentencepiece and NumPy, "
                "with the model's own decoding (greedy or the same beam search)",
    }

    @classmethod
    def summary_metrics(cls, metrics):
        summary = {key: metrics[key] for key in ("bleu", "chrf", "token_accuracy", "examples") if key in metrics}
        validation = metrics.get("validation")
        if validation:
            summary["validation_bleu"] = validation["bleu"]
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        lines = [f"sacreBLEU signature: `{metrics.get('bleu_signature', '')}`", ""]
        validation = metrics.get("validation")
        if validation:
            lines += [f"Validation (random held-out pairs): BLEU {validation['bleu']:.2f}, "
                      f"chrF {validation['chrf']:.2f}", ""]
        lines += ["Sample test translations:", ""]
        for sample in metrics.get("samples", [])[:4]:
            lines += [f"- source: {sample['source']}", f"  - reference: {sample['reference']}",
                      f"  - translation: {sample['translation']}"]
        return lines + [""]

    @classmethod
    def card_limitations(cls, metadata):
        return [
            f"- Translates {metadata.get('source_language')} to {metadata.get('target_language')} text like the "
            f"training data ({metadata.get('data_provenance', '')}); other domains translate much worse.",
            f"- Inputs longer than {metadata.get('max_length')} subword tokens are truncated.",
            "- BLEU and chrF are corpus scores on the test split named above (sacreBLEU, one reference).",
        ]

    @classmethod
    def load_samples(cls, directory, metadata):
        with open(os.path.join(directory, "pairs.tsv"), encoding="utf-8") as f:
            return [tuple(line.rstrip("\n").split("\t")[:2]) for line in f if "\t" in line]

    @classmethod
    def predict_inputs(cls, samples):
        return [source for source, _ in samples]

    @classmethod
    def reference_key(cls, endpoint):
        return {"logits": "logits", "onnx": "logits"}.get(endpoint, "translate")

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        from toolkit.text_generation import Translator

        key = cls.reference_key(endpoint)
        if key == "logits":
            source, decoder, lengths = sample_ids(samples, metadata)
            logits = np.asarray(model([source, decoder], training=False))
            return [logits[i, :n] for i, n in enumerate(lengths)]
        return Translator(model, metadata).translate([s for s, _ in samples])

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        source, decoder, lengths = sample_ids(samples, metadata)
        translated = artifact.signatures["translate"](text=tf.constant([s for s, _ in samples]))["translation"]
        logits = artifact.signatures["logits"](encoder_token_ids=tf.constant(source),
                                               decoder_token_ids=tf.constant(decoder))["logits"].numpy()
        return {"translate": [t.decode("utf-8") for t in translated.numpy()],
                "logits": [logits[i, :n] for i, n in enumerate(lengths)]}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        source, decoder, lengths = sample_ids(samples, metadata)
        logits = onnx_logits(artifact, source, decoder)
        return {"onnx": [logits[i, :n] for i, n in enumerate(lengths)],
                "onnx_translate": onnx_translate(artifact, metadata, [s for s, _ in samples])}

    # Prediction: strings -> [{"input", "translation"}] ------------------------------------------------
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        from toolkit.text_generation import Translator

        texts = [str(text) for text in inputs]
        return cls._translations(texts, Translator(handle, metadata).translate(texts), metadata)

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        texts = [str(text) for text in inputs]
        answer = handle.signatures["translate"](text=tf.constant(texts))["translation"].numpy()
        return cls._translations(texts, [t.decode("utf-8") for t in answer], metadata)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        texts = [str(text) for text in inputs]
        return cls._translations(texts, onnx_translate(handle, metadata, texts), metadata)

    @staticmethod
    def _translations(texts, translations, metadata):
        results = [{"input": text, "translation": translation} for text, translation in zip(texts, translations)]
        for result, warning in zip(results, truncation_warnings(metadata, texts)):
            if warning:
                result["warning"] = warning
        return results

    @classmethod
    def format_prediction(cls, result):
        return result["translation"]


class _Codec:
    """Text <-> ids of a translation model outside the graph: the `sentencepiece` library (no TensorFlow),
    or the preset's KerasHub tokenizer run eagerly."""

    def __init__(self, metadata):
        from toolkit.text_generation import special_ids

        self.ids = special_ids(metadata)
        self.limit = int(metadata["max_length"])
        tokenizers = metadata["tokenizers"]
        if tokenizers.get("kind") == "hub":
            from toolkit.data.text import unpack_tokenizer

            tokenizer = unpack_tokenizer(tokenizers["archive"])
            self._encode = [lambda text: [int(i) for i in np.asarray(tokenizer(text))]] * 2
            self._decode = lambda ids: _first_text(tokenizer.detokenize(np.asarray([ids], np.int32))) if ids else ""
            self._drop = set(self.ids["encoder_start"] + self.ids["decoder_start"])
        else:
            import sentencepiece

            processors = []
            for side in ("source", "target"):
                processor = sentencepiece.SentencePieceProcessor()
                processor.LoadFromSerializedProto(base64.b64decode(tokenizers[side]))
                processors.append(processor)
            self._encode = [processor.EncodeAsIds for processor in processors]
            self._decode = processors[1].DecodeIds
            self._drop = {1, BOS}  # unk and bos, as the in-graph detokenizer drops them

    def source(self, text):
        return pack_ids_numpy(self._encode[0](normalize_text(text)), self.ids["encoder_start"],
                              self.ids["encoder_end"], self.limit)

    def decoder_input(self, text):
        start = self.ids["decoder_start"]
        return start + self._encode[1](normalize_text(text))[: self.limit - len(start)]

    def decode(self, ids):
        """Generated ids after the start ids -> text (up to the end id)."""
        kept = []
        for token in ids:
            if token in (self.ids["eos"], self.ids["pad"]):
                break
            if int(token) not in self._drop:
                kept.append(int(token))
        return self._decode(kept)

    def pad(self, sequences):
        return pad_rows(sequences, self.ids["pad"])


def truncation_warnings(metadata, texts):
    """One warning (or None) per text: a source longer than the model's `max_length` tokens is translated from its
    first tokens only (as in training), and the answer says so."""
    codec = _Codec(metadata)
    room = codec.limit - len(codec.ids["encoder_start"]) - len(codec.ids["encoder_end"])
    warnings = []
    for text in texts:
        tokens = len(codec._encode[0](normalize_text(text)))
        warnings.append(f"input truncated to its first {room} of {tokens} tokens (the model's max_length is "
                        f"{codec.limit}); split long text into sentences" if tokens > room else None)
    return warnings


def _first_text(value):
    """The first string of a detokenised batch (a tensor, an array or a list; bytes or str)."""
    value = value.numpy() if hasattr(value, "numpy") else value
    value = value[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def sample_ids(samples, metadata):
    """Token ids of verification pairs: (source [n, Ls], decoder input [n, Lt], decoder lengths)."""
    codec = _Codec(metadata)
    sources = [codec.source(s) for s, _ in samples]
    targets = [codec.decoder_input(t) for _, t in samples]
    return codec.pad(sources), codec.pad(targets), [len(t) for t in targets]


def onnx_logits(session, source, decoder):
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {names[0]: source.astype(np.int32), names[1]: decoder.astype(np.int32)})[0]


def onnx_translate(session, metadata, texts, batch_size=32, method=None):
    """Translates with the ONNX network and the model's own decoding (`metadata["decoding"]`: greedy, or beam
    search with its width and length penalty), in NumPy without a cache: the prefix is re-run at each step."""
    from toolkit.text_generation import beam_ids_numpy, greedy_ids_numpy

    codec = _Codec(metadata)
    decoding = metadata["decoding"]
    method = method or decoding["method"]
    start_ids = codec.ids["decoder_start"]
    steps = int(decoding["max_length"]) - 1
    beams = int(decoding.get("beam_width", 4)) if method == "beam" else 1
    rows = max(1, batch_size // beams)  # about batch_size sequences per network call, beams included
    results = []
    for start in range(0, len(texts), rows):
        chunk = texts[start:start + rows]
        source = codec.pad([codec.source(t) for t in chunk])

        def logits_of(encoder, decoder):
            return onnx_logits(session, encoder, decoder)

        if method == "beam":
            decoder = beam_ids_numpy(logits_of, source, start_ids, codec.ids["pad"], codec.ids["eos"], steps, beams,
                                     float(decoding.get("length_penalty", 0.0)))
        else:
            decoder = greedy_ids_numpy(logits_of, source, start_ids, codec.ids["pad"], codec.ids["eos"], steps)
        results.extend(codec.decode(row[len(start_ids):]) for row in decoder)
    return results
