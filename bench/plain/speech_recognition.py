"""Plain Keras reference for the speech recognition training throughput: the DeepSpeech2-style CTC model of
recipes/speech_recognition/espeak_ctc.yaml trained with `model.fit` and nothing else.

Usage: python bench/plain/speech_recognition.py LIMIT EPOCHS   (LIMIT: training utterances)
Prints one JSON line: {"epoch_seconds": [...], "examples": N, "unit": "utterances", ...}

The same as `toolkit train recipes/speech_recognition/espeak_ctc.yaml data.limit.train=LIMIT
data.limit.validation=LIMIT//9`:
- data: the same utterances (the toolkit's espeak-ng corpus loader through the recipe with the same limits: the
  cached synthetic corpus, the same seeded training subset, the first LIMIT//9 validation utterances) and
  transcripts as character ids (`text_to_ids`); a generator dataset, 80-band log-mel features computed in
  tf.data by the toolkit's `log_mel` (TensorFlow ops: 25 ms window, 10 ms hop, FFT 512, per-utterance
  normalisation), cached, shuffled (buffer = all utterances, seed 42), padded batches of 32;
- model: the same network, written out here (SpecAugment with 2 frequency masks of <= 10 bands and 2 time masks
  of <= 12 frames, the toolkit's SpecAugment layer; two Conv2D (32 filters, kernels 5x11 then 5x5, strides 2x2)
  with BatchNorm and ReLU; 3 bidirectional GRU layers of 160 units with dropout 0.1; a Dense to 28 characters
  plus the blank; padding frames forced to the blank);
- loss, optimizer: Keras CTC loss; Adam (clipnorm 5.0), cosine decay after 1 epoch of linear warmup to 0.002;
  no metrics; the validation split evaluated after every epoch; seed 42.
Differs: nothing in the training graph or the pipeline; only the toolkit's callbacks around `fit()`.
"""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
from _common import arguments, epoch_timer, recipe_task, report
from keras import layers, ops

from toolkit.data.audio_features import log_mel  # features: TensorFlow ops
from toolkit.tasks.audio.layers import spec_augment_class  # a plain Keras layer
from toolkit.tasks.speech_recognition.decoding import text_to_ids

BATCH = 32


def load_utterances(limit):
    """The recipe's utterances (the toolkit's data loader: same corpus, split and subset) and feature settings."""
    recipe, task = recipe_task("speech_recognition/espeak_ctc.yaml",
                         [f"data.limit.train={limit}", f"data.limit.validation={max(limit // 9, 1)}"])
    splits = task.data.splits
    features = {"sample_rate": recipe.data.sample_rate, "features": recipe.features.model_dump()}
    return splits["train"], splits["validation"], features, recipe.vocabulary


def main():
    limit, epochs = arguments(__doc__)
    keras.utils.set_random_seed(42)
    train, validation, settings, vocabulary = load_utterances(limit)

    def pipeline(utterances, training):
        def generator():
            for utterance in utterances:
                yield utterance.audio.astype(np.float32), np.asarray(text_to_ids(utterance.text, vocabulary), np.int32)

        dataset = tf.data.Dataset.from_generator(generator, output_signature=(
            tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)))
        dataset = dataset.map(lambda wave, label: (log_mel(wave[None], tf.shape(wave)[:1], settings)[0], label),
                              num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            dataset = dataset.shuffle(min(len(utterances), 10000), seed=42)
        dataset = dataset.padded_batch(BATCH, padded_shapes=([None, None], [None]))
        return dataset.apply(tf.data.experimental.assert_cardinality(-(-len(utterances) // BATCH))).prefetch(
            tf.data.AUTOTUNE)

    bins, filters, kernel = 80, 32, (5, 11)
    features = keras.Input((None, bins))
    speech = ops.cast(ops.any(ops.not_equal(features, 0.0), axis=-1), "float32")[:, :, None]
    speech = layers.MaxPooling1D(2, strides=2, padding="same")(speech)
    speech = layers.MaxPooling1D(2, strides=2, padding="same")(speech)
    x = spec_augment_class()(2, 10, 2, 12, seed=42)(features)
    x = layers.Reshape((-1, bins, 1))(x)
    x = layers.Conv2D(filters, kernel, strides=(2, 2), padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(filters, (kernel[0], kernel[1] // 2), strides=(2, 2), padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Reshape((-1, math.ceil(math.ceil(bins / 2) / 2) * filters))(x)
    for _ in range(3):
        x = layers.Bidirectional(layers.GRU(160, return_sequences=True))(x)
        x = layers.Dropout(0.1)(x)
    logits = layers.Dense(len(vocabulary) + 1)(x)
    blank = ops.one_hot(ops.cast(speech[:, :, 0] * 0.0, "int32"), len(vocabulary) + 1)
    logits = ops.where(speech > 0, logits, (blank - 1.0) * 1e4)
    model = keras.Model(features, logits)

    per_epoch = math.ceil(len(train) / BATCH)
    steps, warmup = per_epoch * epochs, min(per_epoch, per_epoch * epochs - 1)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            0.0, max(steps - warmup, 1), warmup_target=0.002, warmup_steps=warmup), clipnorm=5.0),
        loss=keras.losses.CTC(),
    )
    timer = epoch_timer()
    model.fit(pipeline(train, True), validation_data=pipeline(validation, False), epochs=epochs, callbacks=[timer],
              verbose=0)
    seconds = sum(len(u.audio) for u in train) / settings["sample_rate"]
    report(timer, len(train), "utterances", len(train), model, audio_seconds=round(seconds, 1))


if __name__ == "__main__":
    main()
