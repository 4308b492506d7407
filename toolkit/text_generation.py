"""Sequence-to-sequence decoding (translation, Whisper speech recognition), in the graph.

A `Translator` wraps the trained encoder-decoder Keras model (teacher-forced
`[encoder_token_ids, decoder_token_ids] -> logits`) and decodes with a
key/value cache in the decoder's self- and cross-attention (as KerasHub's
`BartSeq2SeqLM.generate_step`): greedy, or beam search with all beams kept and
re-ranked with the GNMT length penalty `((5 + length) / 6) ** alpha`. The loop
computes exactly what KerasHub's `GreedySampler` / `BeamSampler` compute (the
same ids; tests/test_translation.py checks it against them) but carries only
what changes: per-layer keys and values apart (no stacking), the encoder's
keys and values never reordered, a beam step gathering only the
self-attention caches (8x faster beam-4 evaluation on the Bible model). A sequence that has emitted the end
token is frozen: it can only continue with padding at log-probability 0, so
finished beams are neither penalised nor extended by text after their end.

Tokenisation is KerasHub's `SentencePieceTokenizer` (TensorFlow Text ops), or
the tokenizer of a pretrained KerasHub seq2seq preset (BART byte-level BPE, T5
SentencePiece), so `translate` runs inside a SavedModel: strings in, strings
out. A model fine-tuned from a preset (`model.pretrained: hub:...`) decodes
through the preset's own `Seq2SeqLM.call_encoder` / `call_decoder_with_cache`
on the same backbone weights. A KerasHub Whisper backbone (speech recognition,
`toolkit>HubWhisper`) decodes through the same samplers with its own cached
decoder layers; its encoder input is log-mel features instead of token ids.

Example:

>>> translator = Translator(model, metadata)  # doctest: +SKIP
>>> translator.translate(["In the beginning"]).numpy()  # doctest: +SKIP
array([b'En el principio'], dtype=object)
"""


import numpy as np

from toolkit.data.text import (  # noqa: F401 - the tokenizers' ids and helpers, importable from here too
    BOS,
    EOS,
    PAD,
    UNK,
    make_tokenizer,
    normalise_strings,
    pack_tokenizer,
    unpack_tokenizer,
)


def special_ids(metadata):
    """Padding, end and start ids of a translation model (older runs: the toolkit's defaults).

    Returns:
        dict with "pad", "eos" (ints) and "encoder_start", "encoder_end",
        "decoder_start" (lists of ids put around the source / before the
        generated target, as the KerasHub preprocessors pack them).
    """
    ids = dict(metadata["tokenizers"].get("special_ids", {}))
    ids.setdefault("pad", PAD)
    ids.setdefault("eos", EOS)
    ids.setdefault("encoder_start", [])
    ids.setdefault("encoder_end", [])
    ids.setdefault("decoder_start", [ids.get("bos", BOS)])
    return ids


def model_tokenizers(metadata):
    """(source, target) KerasHub tokenizers of a translation model, from its metadata."""
    tokenizers = metadata["tokenizers"]
    if tokenizers.get("kind") == "hub":
        tokenizer = unpack_tokenizer(tokenizers["archive"])
        return tokenizer, tokenizer
    return make_tokenizer(tokenizers["source"], "source"), make_tokenizer(tokenizers["target"], "target")


def seq2seq_class(backbone):
    """The KerasHub `Seq2SeqLM` task class of a backbone (BartSeq2SeqLM, T5Seq2SeqLM, ...)."""
    import keras_hub

    pending, found = [keras_hub.models.Seq2SeqLM], []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls, "backbone_cls", None) is type(backbone) and hasattr(cls, "call_decoder_with_cache"):
            found.append(cls)
    if not found:
        raise ValueError(f"{type(backbone).__name__} has no KerasHub Seq2SeqLM with cached decoding; "
                         "use a BART or T5 preset")
    return found[0]


_LAYER_CLASSES = {}


def _backbone_layer_base():
    """A Keras layer that owns a KerasHub backbone (serialised inside its config) and outputs logits over the
    backbone's vocabulary for the decoder positions of its second input."""
    if "base" in _LAYER_CLASSES:
        return _LAYER_CLASSES["base"]
    import keras

    class BackboneLayer(keras.layers.Layer):
        def __init__(self, backbone, **kwargs):
            super().__init__(**kwargs)
            self.backbone = backbone

        def logits(self, outputs):
            return self.backbone.token_embedding(outputs["decoder_sequence_output"], reverse=True)

        def compute_output_shape(self, input_shape):
            return (*input_shape[1][:2], self.backbone.vocabulary_size)

        def get_config(self):
            return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone)}

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
            return cls(**config)

    _LAYER_CLASSES["base"] = BackboneLayer
    return BackboneLayer


def hub_seq2seq_layer_class():
    """`toolkit>HubSeq2Seq`: a KerasHub BART/T5 backbone as `[encoder_token_ids, decoder_token_ids] -> logits`.

    One layer owns the backbone, so a `.keras` file stores its weights once
    (calling `backbone.token_embedding` as a second layer of the outer model
    made the tied embedding fail to load). Padding masks come from the pad
    id; the first decoder position is always attended (T5 starts decoding
    with the pad token). Logits use the backbone's output embedding, as its
    `Seq2SeqLM` does. Registered on first use (and by `load_keras_file`).
    """
    if "hub" in _LAYER_CLASSES:
        return _LAYER_CLASSES["hub"]
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class HubSeq2Seq(_backbone_layer_base()):
        def __init__(self, backbone, pad_id, **kwargs):
            super().__init__(backbone, **kwargs)
            self.pad_id = int(pad_id)

        def call(self, inputs):
            from keras import ops

            encoder_ids, decoder_ids = inputs
            encoder_mask = ops.cast(ops.not_equal(encoder_ids, self.pad_id), "int32")
            decoder_mask = ops.cast(ops.not_equal(decoder_ids, self.pad_id), "int32")
            decoder_mask = ops.concatenate([ops.ones_like(decoder_mask[:, :1]), decoder_mask[:, 1:]], axis=1)
            outputs = self.backbone({"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask,
                                     "decoder_token_ids": decoder_ids, "decoder_padding_mask": decoder_mask})
            return self.logits(outputs)

        def get_config(self):
            return {**super().get_config(), "pad_id": self.pad_id}

    _LAYER_CLASSES["hub"] = HubSeq2Seq
    return HubSeq2Seq


def hub_whisper_layer_class():
    """`toolkit>HubWhisper`: a KerasHub Whisper backbone as `[features, decoder_token_ids] -> logits`.

    `features` are Whisper log-mels `[batch, frames, mels]`; the decoder
    sees every position (Whisper pads with its end id, and the causal mask
    already hides later positions). Logits use the tied token embedding, as
    Whisper does. Registered on first use (and by `load_keras_file`).
    """
    if "whisper" in _LAYER_CLASSES:
        return _LAYER_CLASSES["whisper"]
    import keras

    @keras.saving.register_keras_serializable(package="toolkit")
    class HubWhisper(_backbone_layer_base()):
        def call(self, inputs):
            from keras import ops

            features, decoder_ids = inputs
            outputs = self.backbone({"encoder_features": features, "decoder_token_ids": decoder_ids,
                                     "decoder_padding_mask": ops.ones_like(decoder_ids)})
            return self.logits(outputs)

    _LAYER_CLASSES["whisper"] = HubWhisper
    return HubWhisper


class _ToolkitNetwork:
    """Cached encoder/decoder calls of the toolkit's own Transformer (layers by name)."""

    def __init__(self, model, dims):
        layers = {layer.name: layer for layer in model.layers}
        self.dims = dims
        self.encoder_embedding = layers["encoder_embedding"]
        self.encoder_layers = [layers[f"encoder_layer_{i}"] for i in range(dims["encoder_layers"])]
        self.decoder_embedding = layers["decoder_embedding"]
        self.decoder_layers = [layers[f"decoder_layer_{i}"] for i in range(dims["decoder_layers"])]
        self.output_layer = layers["logits"]

    def padding(self, source_ids, pad):
        from keras import ops

        return ops.not_equal(source_ids, pad)

    def encode(self, source_ids, padding):
        x = self.encoder_embedding(source_ids)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding)
        return x

    def empty_caches(self, source_ids, hidden, prompt):
        return _empty_caches(hidden, prompt, self.decoder_layers, self.dims["num_heads"], self.dims["embed_dim"])

    def call_decoder(self, token_ids, hidden, padding, self_cache, cross_cache, index, cross_index):
        x = self.decoder_embedding(token_ids, start_index=index)
        x, self_cache, cross_cache = _cached_decoder_layers(self.decoder_layers, x, hidden, padding, self_cache,
                                                            cross_cache, index, cross_index)
        return self.output_layer(x), self_cache, cross_cache


def _fast_layer(layer):
    """Whether a decoder layer is KerasHub's `TransformerDecoder` with plain `CachedMultiHeadAttention` (its own
    `call`s, not a subclass's), whose cached step `_decoder_step` replays op for op."""
    from keras_hub.src.layers.modeling.cached_multi_head_attention import CachedMultiHeadAttention
    from keras_hub.src.layers.modeling.transformer_decoder import TransformerDecoder

    attentions = [layer._self_attention_layer, getattr(layer, "_cross_attention_layer", None)]
    return (type(layer).call is TransformerDecoder.call
            and all(a is not None and type(a).call is CachedMultiHeadAttention.call for a in attentions))


def _empty_caches(hidden, prompt, layers, heads, dim):
    """Zero key/value caches for the prompt and the encoder output, per layer (tuples): `(keys, values)`, each
    [batch, length, heads, head_dim], for a layer `_decoder_step` runs; else KerasHub's stacked
    [batch, 2, length, heads, head_dim]. A decoding step copies no cache but its own layer's."""
    import tensorflow as tf

    batch = tf.shape(hidden)[0]

    def zeros(layer, length):
        if _fast_layer(layer):
            return tuple(tf.zeros([batch, length, heads, dim // heads], hidden.dtype) for _ in range(2))
        return tf.zeros([batch, 2, length, heads, dim // heads], hidden.dtype)

    return (tuple(zeros(layer, tf.shape(prompt)[1]) for layer in layers),
            tuple(zeros(layer, tf.shape(hidden)[1]) for layer in layers))


def _decoder_step(layer, x, hidden, padding, self_cache, cross_cache, index, cross_index):
    """`TransformerDecoder.call` with caches, the same ops in the same order on the same values, with keys and
    values kept apart: KerasHub's stacked cache costs two slices and a stack (three copies of the whole
    cache) per attention layer and step. Dropout is the identity at inference and is left out."""
    from keras import ops
    from keras_hub.src.layers.modeling.transformer_layer_utils import (
        compute_causal_mask,
        merge_padding_and_attention_mask,
    )

    attention, cross = layer._self_attention_layer, layer._cross_attention_layer
    keys, values = self_cache
    # Causal over the cache; the decoder's padding mask is not needed: a token is never padding while its row
    # is still generating, and an ended row's logits are replaced.
    mask = compute_causal_mask(ops.shape(x)[0], ops.shape(keys)[1], ops.shape(x)[1], index)
    residual = x
    if layer.normalize_first:
        x = layer._self_attention_layer_norm(x)
    query = attention._query_dense(x)
    start = [0, index, 0, 0]
    keys = ops.slice_update(keys, start, attention._key_dense(x))
    values = ops.slice_update(values, start, attention._value_dense(x))
    x, _ = attention._compute_attention(query=query, key=keys, value=values, attention_mask=mask)
    x = attention._output_dense(x) + residual
    if not layer.normalize_first:
        x = layer._self_attention_layer_norm(x)
    if cross_index is not None:  # the first call computes the encoder output's keys and values
        cross_cache = (cross._key_dense(hidden), cross._value_dense(hidden))
    residual = x
    if layer.normalize_first:
        x = layer._cross_attention_layer_norm(x)
    query = cross._query_dense(x)
    cross_mask = merge_padding_and_attention_mask(hidden, padding, None)
    x, _ = cross._compute_attention(query=query, key=cross_cache[0], value=cross_cache[1], attention_mask=cross_mask)
    x = cross._output_dense(x) + residual
    if not layer.normalize_first:
        x = layer._cross_attention_layer_norm(x)
    residual = x
    if layer.normalize_first:
        x = layer._feedforward_layer_norm(x)
    x = layer._feedforward_output_dense(layer._feedforward_intermediate_dense(x)) + residual
    if not layer.normalize_first:
        x = layer._feedforward_layer_norm(x)
    return x, (keys, values), cross_cache


def _cached_decoder_layers(layers, x, hidden, padding, self_cache, cross_cache, index, cross_index):
    """Runs KerasHub `TransformerDecoder` layers with per-layer key/value caches (tuples); returns
    (x, self caches, cross caches)."""
    self_caches, cross_caches = [], []
    for layer, layer_self, layer_cross in zip(layers, self_cache, cross_cache):
        if isinstance(layer_self, tuple):
            x, next_self, next_cross = _decoder_step(layer, x, hidden, padding, layer_self, layer_cross, index,
                                                     cross_index)
        else:
            x, next_self, next_cross = layer(
                decoder_sequence=x, encoder_sequence=hidden, encoder_padding_mask=padding,
                self_attention_cache=layer_self, self_attention_cache_update_index=index,
                cross_attention_cache=layer_cross, cross_attention_cache_update_index=cross_index,
            )
        self_caches.append(next_self)
        cross_caches.append(next_cross)
    return x, tuple(self_caches), tuple(cross_caches) if cross_index is not None else cross_cache


class _HubNetwork:
    """Cached calls of a pretrained KerasHub seq2seq backbone, through its own `Seq2SeqLM` task."""

    def __init__(self, model):
        backbone = [layer for layer in model.layers if isinstance(layer, hub_seq2seq_layer_class())][0].backbone
        self.lm = seq2seq_class(backbone)(backbone=backbone, preprocessor=None)

    def padding(self, source_ids, pad):
        from keras import ops

        return ops.not_equal(source_ids, pad)

    def encode(self, source_ids, padding):
        return self.lm.call_encoder(source_ids, padding)

    def empty_caches(self, source_ids, hidden, prompt):
        return self.lm._initialize_cache(source_ids, prompt)

    def call_decoder(self, token_ids, hidden, padding, self_cache, cross_cache, index, cross_index):
        logits, _, self_cache, cross_cache = self.lm.call_decoder_with_cache(
            hidden, padding, token_ids, self_cache, index, cross_cache, cross_index)
        return logits, self_cache, cross_cache


class _WhisperNetwork:
    """Cached encoder/decoder calls of a KerasHub Whisper backbone (its layers, in the backbone's order)."""

    def __init__(self, model):
        self.backbone = [layer for layer in model.layers if isinstance(layer, hub_whisper_layer_class())][0].backbone

    def padding(self, features, pad):
        from keras import ops

        # Whisper attends to all (zero-padded, 30 s) audio frames; a placeholder, since the samplers'
        # while_loop cannot carry None.
        return ops.ones_like(features[:, :1, 0])

    def encode(self, features, padding):
        import keras

        b = self.backbone
        x = keras.activations.gelu(b.encoder_conv_layer_1(features), approximate=False)
        x = keras.activations.gelu(b.encoder_conv_layer_2(b.encoder_padder(x)), approximate=False)
        x = b.encoder_embeddings_add((x, b.encoder_position_embedding(x)))
        for layer in b.encoder_transformer_layers:
            x = layer(x)
        return b.encoder_layer_norm(x)

    def empty_caches(self, features, hidden, prompt):
        b = self.backbone
        return _empty_caches(hidden, prompt, b.decoder_transformer_layers, b.num_heads, b.hidden_dim)

    def call_decoder(self, token_ids, hidden, padding, self_cache, cross_cache, index, cross_index):
        b = self.backbone
        x = b.decoder_embeddings(token_ids, start_index=index)
        x, self_cache, cross_cache = _cached_decoder_layers(b.decoder_transformer_layers, x, hidden, None, self_cache,
                                                            cross_cache, index, cross_index)
        return b.token_embedding(b.decoder_layer_norm(x), reverse=True), self_cache, cross_cache


def greedy_ids_numpy(logits_of, encoder_input, start_ids, pad, eos, steps):
    """Greedy decoding without a cache around `logits_of(encoder_input, decoder_ids) -> logits` (an ONNX
    session, say): the whole prefix is re-run at each step.

    Returns:
        int32 [batch, len(start_ids) + at most `steps`] ids, starting with `start_ids`; rows that ended
        continue with `pad`.
    """
    batch = len(encoder_input)
    decoder = np.tile(np.asarray([start_ids], np.int32), (batch, 1))
    done = np.zeros(batch, bool)
    for _ in range(steps):
        logits = np.asarray(logits_of(encoder_input, decoder))[:, -1, :]
        token = np.where(done, pad, np.argmax(logits, axis=-1)).astype(np.int32)
        decoder = np.concatenate([decoder, token[:, None]], axis=1)
        done |= token == eos
        if done.all():
            break
    return decoder


def beam_ids_numpy(logits_of, encoder_input, start_ids, pad, eos, steps, beam_width, length_penalty=0.0):
    """Beam search without a cache around `logits_of(encoder_input, decoder_ids) -> logits` (an ONNX session),
    step for step as `Translator.generate` with KerasHub's `BeamSampler`: log-softmax scores, the top
    `beam_width` continuations of all beams, a finished beam continued with padding at log-probability 0, every
    beam kept, then re-ranked with the GNMT length penalty `((5 + length) / 6) ** length_penalty`.

    Returns:
        int32 [batch, len(start_ids) + at most `steps`] ids of the best beam of each row, starting with `start_ids`.
    """
    batch, first = len(encoder_input), len(start_ids)
    encoder = np.repeat(np.asarray(encoder_input), beam_width, axis=0)
    decoder = np.tile(np.asarray([start_ids], np.int32), (batch * beam_width, 1))
    scores = np.tile(np.asarray([0.0] + [-1e9] * (beam_width - 1), np.float32), batch)
    rows = np.arange(batch)[:, None]
    for _ in range(steps):
        done = np.any(decoder[:, first:] == eos, axis=1)
        if done.all():
            break
        logits = np.asarray(logits_of(encoder, decoder), np.float32)[:, -1, :]
        vocabulary = logits.shape[-1]
        frozen = np.full(vocabulary, -1e9, np.float32)
        frozen[pad] = 0.0
        logits = np.where(done[:, None], frozen[None, :], logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            candidates = (np.log(probabilities) + scores[:, None]).reshape(batch, beam_width * vocabulary)
        best = np.argsort(-candidates, axis=1, kind="stable")[:, :beam_width]
        scores = np.take_along_axis(candidates, best, axis=1).reshape(-1).astype(np.float32)
        decoder = decoder.reshape(batch, beam_width, -1)[rows, best // vocabulary].reshape(batch * beam_width, -1)
        decoder = np.concatenate([decoder, (best % vocabulary).reshape(-1, 1).astype(np.int32)], axis=1)
    scores = scores.reshape(batch, beam_width)
    beams = decoder.reshape(batch, beam_width, -1)
    if length_penalty:
        generated = beams[:, :, first:]
        ended_before = np.cumsum(generated == eos, axis=2) - (generated == eos) > 0
        lengths = np.sum((generated != pad) & ~ended_before, axis=2).astype(np.float32)
        scores = scores / np.power((5.0 + lengths) / 6.0, length_penalty)
    return beams[np.arange(batch), np.argmax(scores, axis=1)]


def reference_generate(translator, source_ids, method="greedy", beam_width=4, length_penalty=0.0):
    """The reference `Translator.generate` is checked against (tests, bench/decoding.py): KerasHub's
    `GreedySampler` / `BeamSampler(return_all_beams=True)` around the decoder layers' own cached calls with
    stacked [batch, layers, 2, length, heads, head_dim] caches, every cache reordered at each beam step (the
    toolkit's decoder until issue 26; several times slower). The toolkit's own Transformer only."""
    import keras_hub
    import tensorflow as tf
    from keras import ops

    network = translator.network
    start, pad, eos = translator.ids["decoder_start"], translator.ids["pad"], translator.ids["eos"]
    length, first = translator.max_length + len(start) - 1, len(start)
    batch = tf.shape(source_ids)[0]
    padding = network.padding(source_ids, pad)
    hidden = network.encode(source_ids, padding)
    prompt = tf.concat([tf.tile(tf.constant([start], tf.int32), [batch, 1]), tf.fill([batch, length - first], pad)],
                       axis=1)
    dims = network.dims
    heads, dim, layers = dims["num_heads"], dims["embed_dim"], dims["decoder_layers"]

    def call_decoder(token_ids, self_cache, cross_cache, index, cross_index):
        x = network.decoder_embedding(token_ids, start_index=index)
        self_caches, cross_caches = [], []
        for i, layer in enumerate(network.decoder_layers):
            x, next_self, next_cross = layer(
                decoder_sequence=x, encoder_sequence=cross_cache[1], encoder_padding_mask=cross_cache[2],
                self_attention_cache=self_cache[:, i], self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[0][:, i], cross_attention_cache_update_index=cross_index)
            self_caches.append(next_self)
            cross_caches.append(next_cross)
        cross = ops.stack(cross_caches, axis=1) if cross_index is not None else cross_cache[0]
        return network.output_layer(x), ops.stack(self_caches, axis=1), cross

    zeros = tf.zeros([batch, layers, 2, length, heads, dim // heads])
    cross_zeros = tf.zeros([batch, layers, 2, tf.shape(hidden)[1], heads, dim // heads])
    _, self_cache, cross_cache = call_decoder(prompt[:, :first], zeros, (cross_zeros, hidden, padding), 0, 0)

    def next_step(prompt, cache, index):
        self_cache, hidden, padding, cross_cache = cache
        token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
        logits, self_cache, _ = call_decoder(token, self_cache, (cross_cache, hidden, padding), index - 1, None)
        logits = logits[:, 0, :]
        done = tf.reduce_any(tf.equal(prompt[:, first:index], eos), axis=1)
        frozen = tf.one_hot(pad, tf.shape(logits)[-1], on_value=0.0, off_value=-1e9, dtype=logits.dtype)
        return tf.where(done[:, None], frozen[None, :], logits), None, (self_cache, hidden, padding, cross_cache)

    cache = (self_cache, hidden, padding, cross_cache)
    given = tf.tile(tf.range(length)[None, :] < first, [batch, 1])
    if method == "greedy":
        return keras_hub.samplers.GreedySampler()(next_step, prompt, cache=cache, index=first, mask=given,
                                                  stop_token_ids=[eos])
    sampler = keras_hub.samplers.BeamSampler(num_beams=beam_width, return_all_beams=True)
    beams, log_probs = sampler(next_step, prompt, cache=cache, index=first, mask=given, stop_token_ids=[eos])
    if length_penalty:
        generated = beams[:, :, first:]
        generated = tf.cast(tf.logical_and(tf.not_equal(generated, pad), tf.logical_not(
            tf.cumsum(tf.cast(tf.equal(generated, eos), tf.int32), axis=2, exclusive=True) > 0)), tf.float32)
        log_probs = log_probs / tf.pow((5.0 + tf.reduce_sum(generated, axis=2)) / 6.0, length_penalty)
    return tf.gather(beams, tf.argmax(log_probs, axis=1, output_type=tf.int32), batch_dims=1)


class Translator:
    """Greedy / beam-search decoding of an encoder-decoder model (translation; Whisper speech recognition).

    Args:
        model: keras.Model. The teacher-forced encoder-decoder
            `[encoder_inputs, decoder_token_ids] -> logits`: the toolkit's
            Transformer (layers named `encoder_embedding`, `encoder_layer_<i>`,
            `decoder_embedding`, `decoder_layer_<i>`, `logits`), a wrapped
            KerasHub BART/T5 backbone, or a wrapped KerasHub Whisper backbone
            (`metadata["tokenizers"]["network"] == "whisper"`; the encoder
            inputs are log-mel features).
        metadata: dict. The model's toolkit metadata (tokenizers, special ids,
            sizes, decoding settings).
    """

    def __init__(self, model, metadata):
        self.model = model
        self.metadata = metadata
        self.max_length = int(metadata["max_length"])
        self.ids = special_ids(metadata)
        self.source_tokenizer, self.target_tokenizer = model_tokenizers(metadata)
        if metadata["tokenizers"].get("network") == "whisper":
            self.network = _WhisperNetwork(model)
        elif metadata["tokenizers"].get("kind") == "hub":
            self.network = _HubNetwork(model)
        else:
            self.network = _ToolkitNetwork(model, metadata["model"])
        self._functions = {}

    # ----------------------------------------------------------------- tokens
    def encode_source(self, texts):
        """Strings -> int32 [batch, length] source ids (start/end ids added, padded, truncated)."""

        from toolkit.data.text import pack_ids

        ids = self.source_tokenizer(normalise_strings(texts))
        return pack_ids(ids, self.ids["encoder_start"], self.ids["encoder_end"], self.max_length, self.ids["pad"])

    def decode_target(self, ids):
        """Generated ids [batch, length] (decoder start ids first) -> detokenised strings."""
        import tensorflow as tf

        ids = tf.cast(ids[:, len(self.ids["decoder_start"]):], tf.int32)
        ended = tf.cumsum(tf.cast(tf.equal(ids, self.ids["eos"]), tf.int32), axis=1) > 0
        drop = set(self.ids["encoder_start"] + self.ids["decoder_start"] + [self.ids["pad"], self.ids["eos"]])
        if self.metadata["tokenizers"].get("kind") != "hub":
            drop |= {PAD, UNK, BOS, EOS}
        keep = tf.logical_not(ended)
        for value in sorted(drop):
            keep = tf.logical_and(keep, tf.not_equal(ids, value))
        return self.target_tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))

    # ---------------------------------------------------------------- network
    def generate(self, source_ids, method="greedy", beam_width=4, length_penalty=0.0, max_length=None):
        """Decodes int32 source ids [batch, length]; returns ids [batch, max_length] starting with the start ids.

        Step for step what KerasHub's `GreedySampler` / `BeamSampler(return_all_beams=True)` compute (the same
        float32 softmax, `top_k` and tie order, so the same ids), in a loop that carries only what changes: the
        encoder output and cross-attention keys/values are computed once and repeated per beam, never reordered;
        a beam step gathers only the self-attention caches of the surviving beams (one cheap row gather per
        layer, not KerasHub's broadcast `take_along_axis` over every cache); decoding stops when every row
        has ended.
        """
        import keras
        import tensorflow as tf
        from keras import ops

        start, pad, eos = self.ids["decoder_start"], self.ids["pad"], self.ids["eos"]
        length = int(max_length or self.max_length) + len(start) - 1
        first = len(start)
        beams = 1 if method == "greedy" else int(beam_width)
        batch = tf.shape(source_ids)[0]
        padding = self.network.padding(source_ids, pad)
        hidden = self.network.encode(source_ids, padding)
        # Positions still to generate hold a filler that is not the end id (Whisper pads with its end id).
        filler = pad if pad != eos else int(eos == 0)
        prompt = tf.concat([tf.tile(tf.constant([start], tf.int32), [batch, 1]),
                            tf.fill([batch, length - first], filler)], axis=1)
        self_cache, cross_cache = self.network.empty_caches(source_ids, hidden, prompt)
        _, self_cache, cross_cache = self.network.call_decoder(
            prompt[:, :first], hidden, padding, self_cache, cross_cache, 0, 0)
        if beams > 1:
            def repeat(x):
                return tf.repeat(x, beams, axis=0)

            prompt, hidden, padding = repeat(prompt), repeat(hidden), repeat(padding)
            self_cache, cross_cache = tf.nest.map_structure(repeat, (self_cache, cross_cache))
        # Only the beam's first copy starts alive, as in BeamSampler.
        scores = tf.tile(tf.constant([0.0] + [-1e9] * (beams - 1), tf.float32), [batch])

        def unfinished(prompt, self_cache, scores, index):
            # The start ids are given, not generated: BART starts with its end id, which must not stop decoding.
            return tf.logical_not(tf.reduce_all(tf.reduce_any(tf.equal(prompt[:, first:], eos), axis=1)))

        def step(prompt, self_cache, scores, index):
            token = prompt[:, index - 1:index]
            logits, self_cache, _ = self.network.call_decoder(token, hidden, padding, self_cache, cross_cache,
                                                              index - 1, None)
            logits = logits[:, 0, :]
            # A row that has ended can only continue with padding, at log-probability 0.
            done = tf.reduce_any(tf.equal(prompt[:, first:index], eos), axis=1)
            frozen = tf.one_hot(pad, tf.shape(logits)[-1], on_value=0.0, off_value=-1e9, dtype=logits.dtype)
            logits = tf.where(done[:, None], frozen[None, :], logits)
            probabilities = keras.activations.softmax(ops.cast(logits, "float32") / 1.0)
            if beams == 1:
                next_token = tf.cast(ops.argmax(probabilities, axis=-1), tf.int32)
            else:
                vocabulary = tf.shape(logits)[-1]
                candidates = tf.reshape(ops.log(probabilities) + scores[:, None], [-1, beams * vocabulary])
                candidates, chosen = ops.top_k(candidates, k=beams, sorted=False)
                scores = tf.reshape(candidates, [-1])
                parents = tf.reshape(chosen // vocabulary + tf.range(batch)[:, None] * beams, [-1])
                next_token = tf.cast(tf.reshape(chosen % vocabulary, [-1]), tf.int32)
                prompt = tf.gather(prompt, parents)
                self_cache = tf.nest.map_structure(lambda cache: tf.gather(cache, parents), self_cache)
            column = tf.one_hot(index, length, on_value=True, off_value=False)
            prompt = tf.where(column[None, :], next_token[:, None], prompt)
            return prompt, self_cache, scores, index + 1

        invariants = tf.nest.map_structure(lambda cache: tf.TensorShape([None] + cache.shape[1:]), self_cache)
        prompt, _, scores, _ = tf.while_loop(
            unfinished, step, (prompt, self_cache, scores, tf.constant(first)),
            shape_invariants=(tf.TensorShape([None, length]), invariants, tf.TensorShape([None]),
                              tf.TensorShape([])),
            maximum_iterations=length - first)
        if beams == 1:
            return prompt
        prompt = tf.reshape(prompt, [batch, beams, length])
        scores = tf.reshape(scores, [batch, beams])
        # BeamSampler(return_all_beams=True) returns the beams sorted by score; the best (penalised) one wins,
        # ties to the first in that order.
        order = ops.argsort(-scores, axis=-1)
        scores = ops.take_along_axis(scores, order, axis=1)
        prompt = ops.take_along_axis(prompt, ops.expand_dims(order, -1), axis=1)
        if length_penalty:
            generated = prompt[:, :, first:]
            generated = tf.cast(tf.logical_and(tf.not_equal(generated, pad), tf.logical_not(
                tf.cumsum(tf.cast(tf.equal(generated, eos), tf.int32), axis=2, exclusive=True) > 0)), tf.float32)
            lengths = tf.reduce_sum(generated, axis=2)
            scores = scores / tf.pow((5.0 + lengths) / 6.0, length_penalty)
        best = tf.argmax(scores, axis=1, output_type=tf.int32)
        return tf.gather(prompt, best, batch_dims=1)

    def translate_function(self, method=None, beam_width=None, length_penalty=None, max_length=None):
        """A tf.function strings [batch] -> translated strings [batch] (cached per setting)."""
        import tensorflow as tf

        decoding = self.metadata["decoding"]
        settings = (method or decoding["method"], int(beam_width or decoding["beam_width"]),
                    float(decoding["length_penalty"] if length_penalty is None else length_penalty),
                    int(max_length or decoding["max_length"]))
        if settings not in self._functions:
            @tf.autograph.experimental.do_not_convert  # plain graph code; the loops are the samplers' while_loop
            def translate(texts):
                ids = self.generate(self.encode_source(texts), *settings)
                return self.decode_target(ids)

            self._functions[settings] = tf.function(translate, input_signature=[tf.TensorSpec([None], tf.string)])
        return self._functions[settings]

    def translate(self, texts, batch_size=64, on_batch=None, sort=True, **settings):
        """Translates a list of strings (batched); returns a list of str in the order of `texts`. `on_batch(count)`
        is called after each batch (progress).

        With `sort`, texts of similar length share a batch (longest first, so the first batch shows the worst
        case): less padding in the encoder, and a batch stops as soon as its longest translation ends.
        """
        import tensorflow as tf

        function = self.translate_function(**settings)
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i])) if sort else list(range(len(texts)))
        results = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            chunk = tf.constant([texts[i] for i in rows], tf.string)
            for i, value in zip(rows, function(chunk).numpy()):
                results[i] = value.decode("utf-8")
            if on_batch is not None:
                on_batch(len(rows))
        return results
