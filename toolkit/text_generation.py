"""Sequence-to-sequence decoding for the translation task, in the graph.

A `Translator` wraps the trained encoder-decoder Keras model (teacher-forced
`[encoder_token_ids, decoder_token_ids] -> logits`) and decodes with a
key/value cache in the decoder's self- and cross-attention (as KerasHub's
`BartSeq2SeqLM.generate_step`), using KerasHub samplers: `GreedySampler`, or
`BeamSampler` with all beams returned and re-ranked with the GNMT length
penalty `((5 + length) / 6) ** alpha`. A sequence that has emitted the end
token is frozen: it can only continue with padding at log-probability 0, so
finished beams are neither penalised nor extended by text after their end.

Tokenisation is KerasHub's `SentencePieceTokenizer` (TensorFlow Text ops), so
`translate` runs inside a SavedModel: strings in, strings out.

Example:

>>> translator = Translator(model, metadata)  # doctest: +SKIP
>>> translator.translate(["In the beginning"]).numpy()  # doctest: +SKIP
array([b'En el principio'], dtype=object)
"""

import base64

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def proto_bytes(encoded):
    """SentencePiece model bytes from the base64 text stored in metadata."""
    return base64.b64decode(encoded.encode("ascii"))


def make_tokenizer(encoded_proto, side):
    """A KerasHub SentencePiece tokenizer (int32 ids, ragged) from a base64 proto.

    Args:
        encoded_proto: str. The base64 SentencePiece model.
        side: str. "source" or "target": names the TensorFlow Text resource.
            Two unnamed `tf_text.SentencepieceTokenizer`s in one SavedModel
            collapse into one after loading (both detokenise with the first
            model; reproduced with TF 2.21 / TF Text 2.21), so each gets its
            own name.
    """
    import keras_hub
    import tensorflow as tf
    import tensorflow_text as tf_text

    proto = proto_bytes(encoded_proto)
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto, dtype="int32", name=f"{side}_tokenizer")
    tokenizer._sentence_piece = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32,
                                                               name=f"{side}_sentencepiece")
    if not tokenizer.built:  # a SavedModel export tracks it, and Keras exports only built layers
        tokenizer.build(None)
    return tokenizer


def normalise_strings(texts):
    """In-graph text normalisation: Unicode NFC, whitespace runs to one space, stripped."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    texts = tf_text.normalize_utf8(texts, "NFC")
    texts = tf.strings.regex_replace(texts, r"\s+", " ")
    return tf.strings.strip(texts)


class Translator:
    """Greedy / beam-search decoding of a toolkit translation model.

    Args:
        model: keras.Model. The teacher-forced encoder-decoder (layers named
            `encoder_embedding`, `encoder_layer_<i>`, `decoder_embedding`,
            `decoder_layer_<i>`, `logits`).
        metadata: dict. The model's toolkit metadata (tokenizers, sizes,
            decoding settings).
    """

    def __init__(self, model, metadata):
        self.model = model
        self.metadata = metadata
        self.dims = metadata["model"]
        self.max_length = int(metadata["max_length"])
        self.source_tokenizer = make_tokenizer(metadata["tokenizers"]["source"], "source")
        self.target_tokenizer = make_tokenizer(metadata["tokenizers"]["target"], "target")
        layers = {layer.name: layer for layer in model.layers}
        self.encoder_embedding = layers["encoder_embedding"]
        self.encoder_layers = [layers[f"encoder_layer_{i}"] for i in range(self.dims["encoder_layers"])]
        self.decoder_embedding = layers["decoder_embedding"]
        self.decoder_layers = [layers[f"decoder_layer_{i}"] for i in range(self.dims["decoder_layers"])]
        self.output_layer = layers["logits"]
        self._functions = {}

    # ----------------------------------------------------------------- tokens
    def encode_source(self, texts):
        """Strings -> int32 [batch, length] source ids (padded with 0, truncated)."""
        import tensorflow as tf

        ids = self.source_tokenizer(normalise_strings(texts))
        ids = ids[:, : self.max_length]
        ids = ids.to_tensor(default_value=PAD) if isinstance(ids, tf.RaggedTensor) else ids
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])  # empty input: one padding column

    def decode_target(self, ids):
        """Generated ids [batch, length] (BOS first) -> detokenised strings."""
        import tensorflow as tf

        ids = tf.cast(ids[:, 1:], tf.int32)
        ended = tf.cumsum(tf.cast(tf.equal(ids, EOS), tf.int32), axis=1) > 0
        keep = tf.logical_and(tf.logical_not(ended), ids > EOS)
        return self.target_tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))

    # ---------------------------------------------------------------- network
    def encode(self, source_ids):
        from keras import ops

        padding = ops.not_equal(source_ids, PAD)
        x = self.encoder_embedding(source_ids)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding)
        return x, padding

    def call_decoder(self, token_ids, hidden, padding, self_cache, cross_cache, index, cross_index):
        from keras import ops

        x = self.decoder_embedding(token_ids, start_index=index)
        self_caches, cross_caches = [], []
        for i, layer in enumerate(self.decoder_layers):
            x, next_self, next_cross = layer(
                decoder_sequence=x, encoder_sequence=hidden, encoder_padding_mask=padding,
                self_attention_cache=self_cache[:, i], self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[:, i], cross_attention_cache_update_index=cross_index,
            )
            self_caches.append(next_self)
            cross_caches.append(next_cross)
        cross = ops.stack(cross_caches, axis=1) if cross_index is not None else cross_cache
        return self.output_layer(x), ops.stack(self_caches, axis=1), cross

    def generate(self, source_ids, method="greedy", beam_width=4, length_penalty=0.0, max_length=None):
        """Decodes int32 source ids [batch, length]; returns ids [batch, max_length] starting with BOS."""
        import keras_hub
        import tensorflow as tf
        from keras import ops

        length = int(max_length or self.max_length)
        batch = tf.shape(source_ids)[0]
        hidden, padding = self.encode(source_ids)
        heads, head_dim = self.dims["num_heads"], self.dims["embed_dim"] // self.dims["num_heads"]
        layers = self.dims["decoder_layers"]
        self_cache = tf.zeros([batch, layers, 2, length, heads, head_dim], hidden.dtype)
        cross_cache = tf.zeros([batch, layers, 2, tf.shape(source_ids)[1], heads, head_dim], hidden.dtype)
        prompt = tf.concat([tf.fill([batch, 1], BOS), tf.zeros([batch, length - 1], tf.int32)], axis=1)
        _, self_cache, cross_cache = self.call_decoder(prompt[:, :1], hidden, padding, self_cache, cross_cache, 0, 0)
        vocabulary = int(self.output_layer.units)
        frozen = tf.one_hot(PAD, vocabulary, on_value=0.0, off_value=-1e9)

        def next_step(prompt, cache, index):
            self_cache, hidden, padding, cross_cache = cache
            token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
            logits, self_cache, _ = self.call_decoder(token, hidden, padding, self_cache, cross_cache, index - 1, None)
            logits = logits[:, 0, :]
            done = tf.reduce_any(tf.equal(prompt[:, :index], EOS), axis=1)
            logits = tf.where(done[:, None], frozen[None, :], logits)
            return logits, None, (self_cache, hidden, padding, cross_cache)

        cache = (self_cache, hidden, padding, cross_cache)
        if method == "greedy":
            sampler = keras_hub.samplers.GreedySampler()
            return sampler(next_step, prompt, cache=cache, index=1, stop_token_ids=[EOS])
        sampler = keras_hub.samplers.BeamSampler(num_beams=beam_width, return_all_beams=True)
        beams, log_probs = sampler(next_step, prompt, cache=cache, index=1, stop_token_ids=[EOS])
        if length_penalty:
            generated = tf.cast(tf.logical_and(beams[:, :, 1:] > PAD, tf.logical_not(
                tf.cumsum(tf.cast(tf.equal(beams[:, :, 1:], EOS), tf.int32), axis=2, exclusive=True) > 0)), tf.float32)
            lengths = tf.reduce_sum(generated, axis=2)
            log_probs = log_probs / tf.pow((5.0 + lengths) / 6.0, length_penalty)
        best = tf.argmax(log_probs, axis=1, output_type=tf.int32)
        return tf.gather(beams, best, batch_dims=1)

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

    def translate(self, texts, batch_size=64, **settings):
        """Translates a list of strings (batched); returns a list of str."""
        import tensorflow as tf

        function = self.translate_function(**settings)
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = tf.constant(list(texts[start:start + batch_size]), tf.string)
            results.extend(value.decode("utf-8") for value in function(chunk).numpy())
        return results
