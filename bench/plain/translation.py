"""Plain Keras reference for the translation training throughput: the Transformer of
recipes/translation/bible_en_es.yaml (KerasHub TransformerEncoder/Decoder layers) trained with `model.fit`
and nothing else.

Usage: python bench/plain/translation.py LIMIT EPOCHS   (LIMIT: training verse pairs)
Prints one JSON line: {"epoch_seconds": [...], "examples": N, "unit": "tokens", ...}; N is the target tokens
of one epoch (the decoder's labels, end token included, padding not).

The same as `toolkit train recipes/translation/bible_en_es.yaml data.limit.train=LIMIT
data.limit.validation=LIMIT//9`:
- data: the same verse pairs (the toolkit's Bible loader through the recipe with the same limits: the same
  seeded training subset, the first LIMIT//9 validation verses), SentencePiece unigram vocabularies of 4000
  learned on the training pairs with the toolkit's `learn_sentencepiece` and applied by KerasHub's
  SentencePieceTokenizer (`make_tokenizer`), sources cut to 96 tokens, targets to 95 plus the start token;
  a generator dataset, cached, shuffled (buffer = all pairs, seed 42), bucketed by length (boundaries 12, 20,
  28, 40, 56, 80; batches of 64 padded to their own longest sequence), padding weighted 0 in the loss;
- model: the same network, written out here from KerasHub layers (TokenAndPositionEmbedding, 3
  TransformerEncoder and 3 TransformerDecoder blocks of width 128, 4 heads, feed-forward 512, dropout 0.1,
  a Dense to the target vocabulary);
- loss, optimizer, metric: sparse categorical cross-entropy on logits; AdamW (weight decay 0.01, clipnorm 1.0),
  cosine decay after 1 epoch of linear warmup to 0.001 (steps counted as the toolkit counts them,
  ceil(pairs / 64) per epoch); token accuracy; the validation split evaluated after every epoch; seed 42.
Differs: nothing in the training graph or the pipeline (both declare the number of bucketed batches to
tf.data); only the toolkit's callbacks around `fit()`.
"""

import bisect
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from _common import arguments, epoch_timer, recipe_task, report

from toolkit.data.text import encode_proto, learn_sentencepiece, make_tokenizer  # tokenisation

MAX_LENGTH, BATCH, PAD, START, END = 96, 64, 0, 2, 3
BOUNDARIES = [12, 20, 28, 40, 56, 80]


def load_pairs(limit):
    """The recipe's verse pairs (the toolkit's data loader: same normalisation, split and subset)."""
    recipe, task = recipe_task("translation/bible_en_es.yaml",
                         [f"data.limit.train={limit}", f"data.limit.validation={max(limit // 9, 1)}"])
    splits = task.data.splits
    return splits["train"], splits["validation"]


def as_lists(ids):
    return ids.to_list() if hasattr(ids, "to_list") else [list(row) for row in ids]


def main():
    limit, epochs = arguments(__doc__)
    keras.utils.set_random_seed(42)
    train, validation = load_pairs(limit)
    source_tokenizer = make_tokenizer(encode_proto(learn_sentencepiece([s for s, _ in train], 4000, "source")),
                                      "source")
    target_tokenizer = make_tokenizer(encode_proto(learn_sentencepiece([t for _, t in train], 4000, "target")),
                                      "target")

    def token_ids(pairs):
        sources = as_lists(source_tokenizer(tf.constant([s for s, _ in pairs])))
        targets = as_lists(target_tokenizer(tf.constant([t for _, t in pairs])))
        return [s[:MAX_LENGTH] for s in sources], [t[:MAX_LENGTH - 1] for t in targets]

    def pipeline(pairs, training):
        sources, targets = token_ids(pairs)

        def generator():
            for source, target in zip(sources, targets):
                yield (np.asarray(source, np.int32), np.asarray([START] + target, np.int32),
                       np.asarray(target + [END], np.int32))

        spec = tf.TensorSpec([None], tf.int32)
        dataset = tf.data.Dataset.from_generator(generator, output_signature=(spec, spec, spec)).cache()
        if training:
            dataset = dataset.shuffle(min(len(pairs), 10000), seed=42)
        dataset = dataset.map(lambda s, d, t: ((s, d), t, tf.cast(tf.not_equal(t, PAD), tf.float32)))
        dataset = dataset.bucket_by_sequence_length(
            lambda inputs, target, weight: tf.maximum(tf.shape(inputs[0])[0], tf.shape(target)[0]),
            bucket_boundaries=BOUNDARIES, bucket_batch_sizes=[BATCH] * (len(BOUNDARIES) + 1),
            padding_values=((PAD, PAD), PAD, 0.0))
        # The number of batches (bucket membership does not depend on the shuffle): without it Keras learns the
        # epoch's length by running out of data in the first epoch.
        lengths = [max(len(source), len(target) + 1) for source, target in zip(sources, targets)]
        buckets = np.bincount([bisect.bisect_right(BOUNDARIES, n) for n in lengths], minlength=len(BOUNDARIES) + 1)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(int(sum(-(-c // BATCH) for c in buckets))))
        return dataset.prefetch(tf.data.AUTOTUNE), sum(len(t) + 1 for t in targets)

    train_data, tokens = pipeline(train, True)
    validation_data, _ = pipeline(validation, False)

    source_vocabulary = int(source_tokenizer.vocabulary_size())
    target_vocabulary = int(target_tokenizer.vocabulary_size())
    encoder_ids = keras.Input((None,), dtype="int32")
    decoder_ids = keras.Input((None,), dtype="int32")
    encoder_mask = keras.ops.not_equal(encoder_ids, PAD)
    x = keras_hub.layers.TokenAndPositionEmbedding(source_vocabulary, MAX_LENGTH, 128)(encoder_ids)
    for _ in range(3):
        x = keras_hub.layers.TransformerEncoder(512, 4, dropout=0.1)(x, padding_mask=encoder_mask)
    y = keras_hub.layers.TokenAndPositionEmbedding(target_vocabulary, MAX_LENGTH, 128)(decoder_ids)
    decoder_mask = keras.ops.not_equal(decoder_ids, PAD)
    for _ in range(3):
        y = keras_hub.layers.TransformerDecoder(512, 4, dropout=0.1)(
            y, x, decoder_padding_mask=decoder_mask, encoder_padding_mask=encoder_mask)
    logits = keras.layers.Dense(target_vocabulary)(y)
    model = keras.Model([encoder_ids, decoder_ids], logits)

    per_epoch = math.ceil(len(train) / BATCH)
    steps, warmup = per_epoch * epochs, min(per_epoch, per_epoch * epochs - 1)
    model.compile(
        optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(
            0.0, max(steps - warmup, 1), warmup_target=1e-3, warmup_steps=warmup), weight_decay=0.01, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )
    timer = epoch_timer()
    model.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=[timer], verbose=0)
    report(timer, tokens, "tokens", len(train), model)


if __name__ == "__main__":
    main()
