"""A pretrained KerasHub Whisper preset as the speech recognition model (`model.pretrained: hub:...`).

The preset's backbone is wrapped as `[features, decoder_token_ids] -> logits`
(`toolkit>HubWhisper`), so it trains with the same trainer (teacher-forced
cross-entropy on the preset's byte-level BPE tokens) and saves as one
`.keras` file. Features are the preset's own `WhisperAudioConverter` log-mels
(30 s windows, zero-padded), called inside the graph (training data,
SavedModel `transcribe`) and eagerly for ONNX prediction.
Decoding is the translation task's `Translator` (KerasHub greedy / beam
samplers with key/value caches) started from Whisper's prompt
(`<|startoftranscript|>`, plus `<|en|><|transcribe|>` for multilingual
presets, then `<|notimestamps|>`). Transcripts are lower-cased and reduced to
the recipe's vocabulary, so WER/CER compare like with like.

Example:

>>> from toolkit.tasks.speech_recognition.whisper import vocabulary_pattern
>>> vocabulary_pattern("ab' ")
"[^ab' ]"
"""

import numpy as np

from toolkit.errors import RecipeError, preset_error
from toolkit.tasks.speech_recognition.decoding import Transcriber

CONVERTER_KEYS = ("num_mels", "num_fft_bins", "stride", "sampling_rate", "max_audio_length")


def _preset_error(preset, error):
    return preset_error("model.pretrained", preset, error, "a Whisper preset (e.g. hub:whisper_tiny_en)")


def load_whisper(preset):
    """(backbone, tokenizer, audio converter config) of a KerasHub Whisper preset name or directory."""
    import keras_hub

    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:  # noqa: BLE001 - any loading failure becomes one recipe error
        raise _preset_error(preset, error)
    if not isinstance(backbone, keras_hub.models.WhisperBackbone):
        raise RecipeError(f"model.pretrained: preset {preset!r} is a {type(backbone).__name__}, not Whisper; "
                          "speech recognition presets are KerasHub Whisper ones (e.g. hub:whisper_tiny_en)")
    try:
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    except Exception as error:  # noqa: BLE001
        raise _preset_error(preset, error)
    try:
        converter = keras_hub.layers.AudioConverter.from_preset(preset)
        config = {key: converter.get_config()[key] for key in CONVERTER_KEYS}
    except Exception:  # noqa: BLE001 - presets without an audio_converter.json: Whisper's defaults
        config = {"num_mels": int(backbone.num_mels), "num_fft_bins": 400, "stride": 160, "sampling_rate": 16000,
                  "max_audio_length": 30}
    if not tokenizer.built:
        tokenizer.build(None)
    return backbone, tokenizer, config


def prompt_ids(tokenizer):
    """Whisper's decoder prompt for English transcription without timestamps."""
    start = [int(tokenizer.bos_token_id)]
    languages = getattr(tokenizer, "language_tokens", None)
    if languages:
        if "<|en|>" not in languages:
            raise RecipeError("model.pretrained: the Whisper tokenizer has language tokens but no <|en|>")
        start += [int(languages["<|en|>"]), int(tokenizer.transcribe_token_id)]
    return start + [int(tokenizer.no_timestamps_token_id)]


def whisper_metadata(preset, tokenizer, converter_config, max_tokens):
    """The metadata entries a Whisper model adds: its tokenizer (zipped), special ids and audio settings."""
    from toolkit.data.text import pack_tokenizer

    eos = int(tokenizer.eos_token_id)
    return {
        "whisper": {"preset": preset, "audio_converter": dict(converter_config)},
        "tokenizers": {"kind": "hub", "network": "whisper", "preset": preset, "archive": pack_tokenizer(tokenizer),
                       "special_ids": {"pad": int(tokenizer.pad_token_id), "eos": eos, "encoder_start": [],
                                       "encoder_end": [], "decoder_start": prompt_ids(tokenizer)}},
        "max_length": int(max_tokens) + 1,  # as in translation: generated tokens + 1
    }


def build_whisper_model(backbone, name):
    """The backbone as a Keras model `[features, decoder_token_ids] -> logits`."""
    import keras

    from toolkit.text_generation import hub_whisper_layer_class

    features = keras.Input((None, int(backbone.num_mels)), name="features")
    decoder_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
    logits = hub_whisper_layer_class()(backbone, name="whisper")([features, decoder_ids])
    return keras.Model([features, decoder_ids], logits, name=f"{name}_whisper")


_CONVERTERS = {}


def converter(metadata):
    """The model's `WhisperAudioConverter` (cached per settings)."""
    import keras_hub

    config = metadata["whisper"]["audio_converter"]
    key = tuple(config[k] for k in CONVERTER_KEYS)
    if key not in _CONVERTERS:
        _CONVERTERS[key] = keras_hub.layers.WhisperAudioConverter(**config)
    return _CONVERTERS[key]


def features(waves, metadata):
    """Whisper log-mels of zero-padded float32 waveforms [batch, samples] (the converter's TensorFlow path inside
    graphs: it pads or cuts each clip to the preset's window)."""
    return converter(metadata)(waves)


def features_numpy(waves, metadata):
    """The same features for a list of waveforms of any lengths, as NumPy (eager)."""
    return np.asarray(converter(metadata)([np.asarray(w, np.float32) for w in waves]), np.float32)


def vocabulary_pattern(vocabulary):
    """RE2 character class matching every character outside `vocabulary`."""
    escaped = "".join("\\" + c if c in "\\]^-[" else c for c in vocabulary)
    return f"[^{escaped}]"


def to_vocabulary(texts, vocabulary):
    """Whisper text -> the recipe's characters: lower case, hyphens to spaces, other characters dropped."""
    import tensorflow as tf

    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"[-_/]", " ")
    texts = tf.strings.regex_replace(texts, vocabulary_pattern(vocabulary), "")
    texts = tf.strings.regex_replace(texts, r"\s+", " ")
    return tf.strings.strip(texts)


class WhisperTranscriber(Transcriber):
    """Features, Whisper decoding and text normalisation as one tf.function: waveforms + lengths -> strings."""

    def __init__(self, model, metadata):
        from toolkit.text_generation import Translator

        super().__init__(model, metadata)
        self.translator = Translator(model, metadata)

    def function(self, method=None, beam_width=None):
        import tensorflow as tf

        decoding = self.metadata["decoding"]
        settings = (method or decoding["method"], int(beam_width or decoding["beam_width"]))
        if settings not in self._functions:
            @tf.autograph.experimental.do_not_convert  # the loops are the samplers' while_loop
            def transcribe(waveforms, lengths):
                del lengths  # Whisper listens to zero-padded 30 s windows
                ids = self.translator.generate(features(waveforms, self.metadata), *settings)
                return to_vocabulary(self.translator.decode_target(ids), self.metadata["vocabulary"])

            self._functions[settings] = tf.function(transcribe, input_signature=[
                tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])
        return self._functions[settings]

    def resources(self):
        return [self.translator.target_tokenizer]


def label_ids(tokenizer, text, start, eos, max_tokens):
    """Teacher forcing for one transcript: (decoder input, labels, weights); the prompt's own ids are given."""
    ids = [int(i) for i in np.asarray(tokenizer(" " + text))][: max_tokens - 1]
    decoder = start + ids
    labels = start[1:] + ids + [eos]
    weights = [0.0] * (len(start) - 1) + [1.0] * (len(ids) + 1)
    return np.asarray(decoder, np.int32), np.asarray(labels, np.int32), np.asarray(weights, np.float32)


def greedy_texts(logits_of, features_batch, metadata):
    """Greedy transcripts around any `logits_of(features, decoder_ids)` (e.g. the ONNX network), no TensorFlow
    graph: NumPy loop, the preset tokenizer run eagerly, then the vocabulary normalisation."""
    from toolkit.text_generation import greedy_ids_numpy, special_ids

    ids = special_ids(metadata)
    start, eos = ids["decoder_start"], ids["eos"]
    rows = greedy_ids_numpy(logits_of, features_batch, start, ids["pad"], eos, int(metadata["max_length"]) - 1)
    tokenizer = model_tokenizer(metadata)
    texts = []
    for row in rows:
        generated = [int(t) for t in row[len(start):]]
        generated = generated[: generated.index(eos)] if eos in generated else generated
        texts.append(_first(tokenizer.detokenize(np.asarray([generated], np.int32))) if generated else "")
    return [t.decode("utf-8") for t in np.asarray(to_vocabulary(np.asarray(texts, object), metadata["vocabulary"]))]


_TOKENIZERS = {}


def model_tokenizer(metadata):
    """The Whisper tokenizer stored in a model's metadata (unzipped once per model)."""
    from toolkit.text_generation import model_tokenizers

    archive = metadata["tokenizers"]["archive"]
    if archive not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[archive] = model_tokenizers(metadata)[1]
    return _TOKENIZERS[archive]


def _first(value):
    value = np.asarray(value).reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


__all__ = ["load_whisper", "build_whisper_model", "WhisperTranscriber", "features", "features_numpy"]
