"""Speech recognisers deployed: audio files (any common sample rate, resampled) or float waveforms in,
transcripts out, in every runtime. Outside the graph (ONNX Runtime, TFLite) the features are computed in NumPy
(`toolkit.data.audio_features.log_mel_numpy`) and decoded greedily or through the lexicon in NumPy; verification
outputs (logits and transcripts), the WER of quantised exports and the model card's worst utterances.

Example:

>>> from toolkit.tasks.speech_recognition.predictor import onnx_decoding_note
>>> onnx_decoding_note({"decoding": {"method": "greedy"}}) is None
True
"""

import os
import time

import numpy as np

from toolkit.data.audio_features import features_of, log_mel_numpy, pad_waves
from toolkit.tasks.predictor import Predictor, input_names, is_path
from toolkit.tasks.speech_recognition.decoding import Transcriber, greedy_decode_ids, ids_to_text


class SpeechRecognitionPredictor(Predictor):
    """Speech recognition: a transcript per clip."""

    name = "speech_recognition"
    agreement_unit = "argmax per frame; identical transcripts"
    export_notes = {
        "onnx": "the acoustic network only (log-mel features -> CTC logits; Whisper: features + decoder ids -> "
                "logits): `toolkit predict x.onnx` computes the features and decodes (greedy or lexicon) in NumPy, "
                "outside the graph",
    }
    quality_metric = "wer"

    @classmethod
    def summary_metrics(cls, metrics):
        summary = {key: metrics[key] for key in ("wer", "cer", "examples") if key in metrics}
        if metrics.get("validation"):
            summary["validation_wer"] = metrics["validation"]["wer"]
        for source, figures in (metrics.get("out_of_domain") or {}).items():
            summary[f"{source}_wer"] = figures["wer"]
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        lines = []
        for source, figures in (metrics.get("out_of_domain") or {}).items():
            lines.append(f"Out of domain ({source}): WER {figures['wer']:.2%}, CER {figures['cer']:.2%} "
                         f"on {figures['examples']} utterances.")
        lines += ["", "Worst test utterances:", "", "| id | reference | transcript | WER |", "|---|---|---|---|"]
        for row in metrics.get("worst", [])[:5]:
            lines.append(f"| {row['id']} | {row['reference']} | {row['transcript']} | {row['wer']:.2f} |")
        return lines + [""]

    @classmethod
    def card_limitations(cls, metadata):
        if "whisper" in metadata:
            seconds = metadata["whisper"]["audio_converter"]["max_audio_length"]
            return [
                f"- Whisper preset {metadata['whisper']['preset']}: hears the first {seconds} s of each clip "
                f"(longer audio is cut); transcripts are lower-cased and reduced to {metadata.get('vocabulary')!r}.",
                f"- Data it was evaluated/fine-tuned on: {metadata.get('data_provenance', '')}.",
            ]
        decoding = metadata.get("decoding", {})
        if decoding.get("method") == "lexicon":
            words = len(metadata.get("lexicon", {}).get("words", []))
            language = (f"writes only the {words} words of its lexicon (a word outside it comes out as the closest "
                        f"lexicon words), weighted by a word bigram model of the training transcripts "
                        f"(lm_weight {decoding.get('lm_weight')})")
        else:
            language = "no language model"
        return [
            f"- Transcribes speech like the training data ({metadata.get('data_provenance', '')}) into the "
            f"characters {metadata.get('vocabulary')!r}; {language}; no punctuation or digits.",
            f"- Expects mono audio at {metadata.get('sample_rate')} Hz (`toolkit predict` resamples files).",
        ]

    @classmethod
    def quality_endpoint(cls, metadata):
        return "onnx_lexicon" if metadata["decoding"]["method"] == "lexicon" else "onnx_greedy"

    @classmethod
    def quality(cls, outputs, targets, metadata):
        import jiwer

        return float(jiwer.wer(list(targets), [text if text.strip() else "<empty>" for text in outputs]))

    @classmethod
    def load_samples(cls, directory, metadata):
        from toolkit.data.audio_io import load_audio

        samples = []
        with open(os.path.join(directory, "metadata.csv"), encoding="utf-8") as f:
            for line in f:
                uid, text = line.rstrip("\n").split("|", 1)
                samples.append((load_audio(os.path.join(directory, f"{uid}.wav"), metadata["sample_rate"]), text))
        return samples

    @classmethod
    def predict_inputs(cls, samples):
        return cls._waves(samples)

    @staticmethod
    def _waves(samples):
        return [s.audio if hasattr(s, "audio") else s[0] for s in samples]

    @classmethod
    def reference_key(cls, endpoint):
        return {"logits": "logits", "onnx": "logits", "onnx_greedy": "greedy"}.get(endpoint, "transcribe")

    @staticmethod
    def _texts(samples):
        return [s.text if hasattr(s, "text") else s[1] for s in samples]

    @classmethod
    def network_inputs(cls, samples, metadata):
        """The acoustic network's inputs for verification samples: [features] (CTC) or [features, decoder ids]
        (Whisper, teacher-forced on the reference transcripts), as NumPy."""
        waves = cls._waves(samples)
        if "whisper" not in metadata:
            return [features_of(waves, metadata)]
        from toolkit.tasks.speech_recognition.whisper import features_numpy, label_ids, model_tokenizer
        from toolkit.text_generation import special_ids

        tokenizer, ids = model_tokenizer(metadata), special_ids(metadata)
        rows = [label_ids(tokenizer, text, ids["decoder_start"], ids["eos"], int(metadata["decoding"]["max_tokens"]))[0]
                for text in cls._texts(samples)]
        decoder = np.full((len(rows), max(len(r) for r in rows)), ids["pad"], np.int32)
        for i, row in enumerate(rows):
            decoder[i, : len(row)] = row
        return [features_numpy(waves, metadata), decoder]

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        waves = cls._waves(samples)
        key = cls.reference_key(endpoint)
        if key == "logits":
            inputs = cls.network_inputs(samples, metadata)
            return np.asarray(model(inputs if len(inputs) > 1 else inputs[0], training=False))
        method = "greedy" if key == "greedy" else None
        return make_transcriber(model, metadata).transcribe(waves, method=method)

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        waves = cls._waves(samples)
        inputs = cls.network_inputs(samples, metadata)
        batch, lengths = pad_waves(waves)
        texts = artifact.signatures["transcribe"](waveform=tf.constant(batch),
                                                  lengths=tf.constant(lengths))["transcript"].numpy()
        names = ["features", "decoder_token_ids"][: len(inputs)]
        logits = artifact.signatures["logits"](**{n: tf.constant(v) for n, v in zip(names, inputs)})["logits"]
        return {"transcribe": [t.decode("utf-8") for t in texts], "logits": logits.numpy()}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        waves = cls._waves(samples)
        inputs = cls.network_inputs(samples, metadata)
        outputs = {"onnx": onnx_logits(artifact, *inputs),
                   "onnx_greedy": onnx_transcribe(artifact, waves, metadata, method="greedy")}
        if metadata["decoding"]["method"] == "lexicon":  # what `toolkit predict model.onnx` prints
            outputs["onnx_lexicon"] = onnx_transcribe(artifact, waves, metadata)
        return outputs

    # Prediction: audio files (any common sample rate; resampled) or float waveforms at the model's sample rate
    # -> [{"input", "transcript", "audio_seconds", "realtime_factor"}] ----------------------------------------
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return cls._transcripts(inputs, metadata,
                                lambda waves: make_transcriber(handle, metadata).transcribe(waves, batch_size=1))

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        def transcribe(waves):
            transcripts = []
            for wave in waves:
                answer = handle.signatures["transcribe"](waveform=tf.constant(wave[None].astype(np.float32)),
                                                         lengths=tf.constant([len(wave)], tf.int32))
                transcripts.append(answer["transcript"].numpy()[0].decode("utf-8"))
            return transcripts

        return cls._transcripts(inputs, metadata, transcribe)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return cls._transcripts(inputs, metadata, lambda waves: [onnx_transcribe(handle, [w], metadata)[0]
                                                                 for w in waves],
                                note=onnx_decoding_note(metadata))

    @staticmethod
    def _transcripts(inputs, metadata, transcribe, note=None):
        from toolkit.data.audio_io import load_audio

        rate = int(metadata["sample_rate"])
        waves = [load_audio(str(item), rate) if is_path(item) else np.asarray(item, np.float32).reshape(-1)
                 for item in inputs]
        started = time.time()
        transcripts = transcribe(waves)
        seconds = time.time() - started
        audio = sum(len(w) for w in waves) / rate
        return [{"input": name, "transcript": text, "audio_seconds": round(len(w) / rate, 2),
                 "realtime_factor": round(seconds / max(audio, 1e-9), 4), **({"note": note} if note else {})}
                for name, text, w in zip(input_names(inputs), transcripts, waves)]

    @classmethod
    def format_prediction(cls, result):
        return f"{result['input']}: {result['transcript']}"


def make_transcriber(model, metadata):
    """The `Transcriber` of a CTC model, or the `WhisperTranscriber` of a Whisper one."""
    if "whisper" in metadata:
        from toolkit.tasks.speech_recognition.whisper import WhisperTranscriber

        return WhisperTranscriber(model, metadata)
    return Transcriber(model, metadata)


def onnx_logits(session, features, decoder_ids=None):
    """Runs the ONNX acoustic network: features (and Whisper's decoder ids) -> logits."""
    names = [i.name for i in session.get_inputs()]
    feeds = {names[0]: np.asarray(features, np.float32)}
    if decoder_ids is not None:
        feeds[names[1]] = np.asarray(decoder_ids, np.int32)
    return session.run(None, feeds)[0]


def onnx_decoding_note(metadata):
    """What ONNX prediction does differently from the model's own decoding (beam search runs only in the
    TensorFlow formats), or None when it decodes the same way."""
    method = metadata["decoding"].get("method")
    if method != "beam":
        return None
    return ("decoded greedily (best path): the model's beam search runs only in its TensorFlow formats (the run "
            "directory, .keras, SavedModel); transcripts may differ from theirs")


def onnx_transcribe(session, waves, metadata, method=None):
    """Transcripts from the ONNX network with NumPy features: CTC best path, lexicon decoding (`method` or the
    model's `decoding.method` is lexicon; NumPy, the same as the graph's), or Whisper's greedy token loop."""
    if "whisper" in metadata:
        from toolkit.tasks.speech_recognition.whisper import features_numpy, greedy_texts

        return greedy_texts(lambda f, d: onnx_logits(session, f, d), features_numpy(waves, metadata), metadata)
    logits = onnx_logits(session, log_mel_numpy(waves, metadata))
    if (method or metadata["decoding"]["method"]) == "lexicon":
        from toolkit.tasks.speech_recognition.lexicon import DecodingGraph, decode_numpy

        return decode_numpy(DecodingGraph.from_metadata(metadata), logits)
    return [ids_to_text(ids, metadata["vocabulary"]) for ids in greedy_decode_ids(logits)]
