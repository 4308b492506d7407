"""Plain Keras reference for the recommendation training throughput: the DCN rating model of
recipes/recommendation/movielens_rating.yaml trained with `model.fit` and nothing else.

Usage: python bench/plain/recommendation.py LIMIT EPOCHS   (LIMIT: training ratings; fold 0 has 76,000)
Prints one JSON line: {"epoch_seconds": [...], "examples": N, "unit": "ratings", ...}

The same as `toolkit train recipes/recommendation/movielens_rating.yaml data.limit.train=LIMIT
data.limit.validation=LIMIT//9`:
- data: the same ratings (the toolkit's MovieLens-100k loader through the recipe with the same limits: fold 0
  of 5, the same seeded training subset, users and items indexed over it, the same validation rows) and the
  same user/item feature tables (`feature_columns`); (user, item) -> rating slices, shuffled over all rows
  (seed 42), batches of 256;
- model: the same network: the toolkit's `build_tower` (a plain Keras function: id embedding of 32 with L2
  0.001, frozen feature-table lookups, categorical embeddings and multi-hot projections of 8, a ReLU layer of
  64) for users and items, then written out here: 2 keras_rs FeatureCross layers beside a ReLU layer of 64, a
  Dense rating head starting at the training mean, a dot product of separate 32-wide user and item factors
  and user/item biases (L2 0.001);
- loss, optimizer, metric: mean squared error; Adam, cosine decay from 0.001 to 0 (no warmup); RMSE; the
  validation split evaluated after every epoch; seed 42.
Differs: nothing in the training graph or the pipeline; only the toolkit's callbacks around `fit()`.
"""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import keras_rs
import numpy as np
import tensorflow as tf
from _common import arguments, epoch_timer, recipe_task, report
from keras import layers, ops

from toolkit.tasks.recommendation.task import build_tower, feature_columns  # Keras / NumPy

BATCH = 256


def load_ratings(limit):
    """The recipe's ratings and feature tables (the toolkit's data loader: same fold, subset and indices)."""
    recipe, task = recipe_task("recommendation/movielens_rating.yaml",
                         [f"data.limit.train={limit}", f"data.limit.validation={max(limit // 9, 1)}"])
    return task.data, recipe.model


def main():
    limit, epochs = arguments(__doc__)
    keras.utils.set_random_seed(42)
    data, config = load_ratings(limit)
    train, validation = data.splits["train"], data.splits["validation"]

    def pipeline(rows, training):
        dataset = tf.data.Dataset.from_tensor_slices(((rows.users, rows.items), rows.ratings))
        if training:
            dataset = dataset.shuffle(len(rows), seed=42)
        return dataset.batch(BATCH).prefetch(tf.data.AUTOTUNE)

    user_table, user_spec = feature_columns(data.user_features, True)
    item_table, item_spec = feature_columns(data.item_features, True)
    user_tower = build_tower("user", data.num_users, user_table, user_spec, config, "user_tower", False)
    item_tower = build_tower("item", data.num_items, item_table, item_spec, config, "item_tower", False)
    user = keras.Input((), dtype="int32")
    item = keras.Input((), dtype="int32")
    x0 = layers.Concatenate()([user_tower(user), item_tower(item)])
    cross = x0
    for _ in range(2):
        cross = keras_rs.layers.FeatureCross()(x0, cross)
    deep = layers.Dense(64, activation="relu")(x0)
    head = layers.Dense(1, bias_initializer=keras.initializers.Constant(float(np.mean(train.ratings))))(
        layers.Concatenate()([cross, deep]))
    l2 = keras.regularizers.L2(0.001)
    user_factors = layers.Embedding(data.num_users, 32, embeddings_regularizer=l2)(user)
    item_factors = layers.Embedding(data.num_items, 32, embeddings_regularizer=l2)(item)
    dot = ops.sum(user_factors * item_factors, axis=-1, keepdims=True)
    user_bias = layers.Embedding(data.num_users, 1, embeddings_initializer="zeros", embeddings_regularizer=l2)(user)
    item_bias = layers.Embedding(data.num_items, 1, embeddings_initializer="zeros", embeddings_regularizer=l2)(item)
    rating = layers.Add()([head, dot, user_bias, item_bias])[:, 0]
    model = keras.Model([user, item], rating)

    steps = math.ceil(len(train) / BATCH) * epochs
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                  loss=keras.losses.MeanSquaredError(), metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])
    timer = epoch_timer()
    model.fit(pipeline(train, True), validation_data=pipeline(validation, False), epochs=epochs, callbacks=[timer],
              verbose=0)
    report(timer, len(train), "ratings", len(train), model)


if __name__ == "__main__":
    main()
