"""Text classification networks: token ids in, class probabilities out.

- `transformer`: `keras_hub.layers.TokenAndPositionEmbedding`, `TransformerEncoder` blocks with the padding mask,
  masked mean pooling;
- `cnn`: embeddings, 1-D convolutions (stride 1, "same"), masked max pooling (keras-io "text classification from
  scratch", without its fixed 500-token padding);
- `bag`: fastText (Joulin et al., 2016, "Bag of Tricks for Efficient Text Classification"): the mean of the
  embeddings of the tokens and of their hashed n-grams (`model.ngrams`, `model.ngram_buckets`), then the output
  layer;
- `hub:<preset>`: a KerasHub `TextClassifier` preset (BERT, DistilBERT, RoBERTa, DeBERTaV3, ...) with its own
  head; the network takes only token ids and derives the padding mask (ids != the preset's pad id) and zero
  segment ids, so every export has one int32 input.

Padding never changes an answer: padded positions are zeroed before every convolution and left out of every
pooling, so a text scores the same alone or in a batch of longer texts (verification compares both).

Example:

>>> from toolkit.config import load_recipe
>>> from toolkit.tasks.text_classification.model import build_network
>>> recipe = load_recipe({"task": "text_classification", "model": {"encoder": "cnn", "embed_dim": 16}})
>>> build_network(recipe, vocabulary_size=50, num_classes=3).output.shape  # doctest: +SKIP
(None, 3)
"""

from toolkit.data.text import PAD
from toolkit.errors import preset_error


def _head(x, config, num_classes, multi_label):
    import keras

    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    for index, units in enumerate(config.hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{index}")(x)
        x = keras.layers.Dropout(config.dropout)(x)
    activation = "sigmoid" if multi_label else "softmax"
    return keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="probabilities")(x)


def build_network(recipe, vocabulary_size, num_classes, multi_label=False):
    """A from-scratch network (`model.encoder`: transformer or cnn): `token_ids [batch, length] -> probabilities`.

    Args:
        recipe: the text classification recipe.
        vocabulary_size: int. Token ids are below it (the SentencePiece vocabulary).
        num_classes: int.
        multi_label: bool. Sigmoid outputs (independent classes) instead of a softmax.
    """
    import keras
    import keras_hub
    from keras import ops

    config = recipe.model
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = ops.not_equal(ids, PAD)
    weights = ops.expand_dims(ops.cast(mask, "float32"), -1)  # [batch, length, 1]: 1 for tokens, 0 for padding
    if config.encoder == "transformer":
        x = keras_hub.layers.TokenAndPositionEmbedding(vocabulary_size, recipe.tokenizer.max_length, config.embed_dim,
                                                       name="embedding")(ids)
        x = keras.layers.Dropout(config.dropout)(x)
        for index in range(config.layers):
            x = keras_hub.layers.TransformerEncoder(config.intermediate_dim, config.num_heads, dropout=config.dropout,
                                                    name=f"encoder_layer_{index}")(x, padding_mask=mask)
        pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    elif config.encoder == "bag":
        vectors = [keras.layers.Embedding(vocabulary_size, config.embed_dim, name="embedding")(ids)]
        masks = [weights]
        if config.ngram_buckets and config.ngrams > 1:
            # Each n-gram (2 <= n <= model.ngrams) hashed into one shared table, as fastText does: ids folded
            # below the bucket count first so every product stays inside int32 in every runtime; n-grams that
            # touch padding are masked out.
            table = keras.layers.Embedding(config.ngram_buckets, config.embed_dim, name="ngram_embedding")
            for n in range(2, config.ngrams + 1):
                parts = [ids[:, k:k - (n - 1)] if k < n - 1 else ids[:, k:] for k in range(n)]
                pieces = [weights[:, k:k - (n - 1)] if k < n - 1 else weights[:, k:] for k in range(n)]
                hashed = (parts[0] + 104729 * n) % config.ngram_buckets
                ngram_weights = pieces[0]
                for part, piece in zip(parts[1:], pieces[1:]):
                    hashed = (hashed * 7919 + part % config.ngram_buckets) % config.ngram_buckets
                    ngram_weights = ngram_weights * piece
                vectors.append(table(hashed))
                masks.append(ngram_weights)
        x, mask = ops.concatenate(vectors, axis=1), ops.concatenate(masks, axis=1)  # [batch, items, dim], [.., 1]
        if config.pooling == "attention":
            # A learned weight per token / n-gram (a learned IDF), softmax over the text's items.
            scores = keras.layers.Dense(1, name="item_score")(x)
            scores = ops.where(ops.greater(mask, 0.0), scores, -1e9)
            attention = ops.exp(scores - ops.max(scores, axis=1, keepdims=True)) * mask
            pooled = ops.sum(x * attention, axis=1) / ops.maximum(ops.sum(attention, axis=1), 1e-9)
        else:
            pooled = ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
    else:
        x = keras.layers.Embedding(vocabulary_size, config.embed_dim, name="embedding")(ids) * weights
        x = keras.layers.Dropout(config.dropout)(x)
        for index in range(config.layers):
            x = keras.layers.Conv1D(config.filters, config.kernel_size, padding="same", activation="relu",
                                    name=f"conv_{index}")(x) * weights
        pooled = ops.max(ops.where(ops.greater(weights, 0.0), x, -1e9), axis=1)
        pooled = ops.where(ops.greater(ops.sum(weights, axis=1), 0.0), pooled, 0.0)  # an empty text: zeros
    outputs = _head(pooled, config, num_classes, multi_label)
    return keras.Model(ids, outputs, name=f"{recipe.name or 'text'}_{config.encoder}")


class HubText:
    """A KerasHub text classifier preset's tokenizer and packing: what turns strings into its token ids.

    Args:
        tokenizer: the preset's KerasHub tokenizer.
        start: list of int. Ids before the tokens ([CLS]).
        end: list of int. Ids after them ([SEP]).
        pad: int. The padding id.
    """

    def __init__(self, tokenizer, start, end, pad):
        self.tokenizer, self.start, self.end, self.pad = tokenizer, list(start), list(end), int(pad)


def _ids(value):
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _token_id(tokenizer, value):
    """An id of the packer's start/end value, which is an id or a token string."""
    if isinstance(value, str):
        return [int(tokenizer.token_to_id(value))]
    return _ids(value)


def load_hub_text(preset):
    """The `HubText` of a KerasHub `TextClassifier` preset (its preprocessor's tokenizer and packer)."""
    import keras_hub

    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
    except Exception as error:  # noqa: BLE001 - any loading failure becomes one recipe error
        raise preset_error("model.encoder", preset, error, "a text classifier preset (BERT, RoBERTa, DeBERTaV3, ...)")
    tokenizer = preprocessor.tokenizer
    packer = getattr(preprocessor, "packer", None)
    if packer is None:
        preprocessor.build(None)
        packer = preprocessor.packer
    start = _token_id(tokenizer, getattr(packer, "start_value", None))
    end = _token_id(tokenizer, getattr(packer, "end_value", None))
    pad_value = getattr(packer, "pad_value", None)
    pad = _token_id(tokenizer, pad_value)[0] if pad_value is not None else int(getattr(tokenizer, "pad_token_id", 0))
    return HubText(tokenizer, start, end, pad)


def build_hub_network(preset, num_classes, multi_label, pad, dropout, name):
    """A KerasHub `TextClassifier` preset (its backbone and head, the head sized to `num_classes`) as
    `token_ids [batch, length] -> probabilities`; the padding mask and segment ids are made from the ids."""
    import keras
    import keras_hub
    from keras import ops

    activation = "sigmoid" if multi_label else "softmax"
    try:
        classifier = keras_hub.models.TextClassifier.from_preset(preset, num_classes=num_classes,
                                                                 activation=activation, preprocessor=None,
                                                                 dropout=dropout)
    except TypeError:  # a classifier class without a dropout argument
        classifier = keras_hub.models.TextClassifier.from_preset(preset, num_classes=num_classes,
                                                                 activation=activation, preprocessor=None)
    except Exception as error:  # noqa: BLE001
        raise preset_error("model.encoder", preset, error, "a text classifier preset (BERT, RoBERTa, DeBERTaV3, ...)")
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    feeds = {}
    for key in classifier.backbone.input:
        if key == "token_ids":
            feeds[key] = ids
        elif key == "padding_mask":
            feeds[key] = ops.not_equal(ids, pad)
        elif key == "segment_ids":
            feeds[key] = ops.zeros_like(ids)
        else:
            raise preset_error("model.encoder", preset, ValueError(f"its backbone takes an input {key!r}"),
                               "a text classifier preset whose backbone takes token ids (and a padding mask)")
    probabilities = classifier(feeds)
    return keras.Model(ids, probabilities, name=f"{name}_{classifier.backbone.name}")


def hub_backbone(model):
    """The KerasHub backbone inside a network made by `build_hub_network` (what fine-tuning freezes)."""
    import keras_hub

    for layer in model.layers:
        if isinstance(layer, keras_hub.models.TextClassifier):
            return layer.backbone
    raise ValueError(f"{model.name} holds no KerasHub text classifier")
