"""The reference for the training-throughput benchmark: a plain, hand-written
Keras script that trains the same model on the same data as the
fashion_mnist recipe (same tf.data steps, augmentation, optimizer, loss,
metrics and validation), with no toolkit machinery around `fit()`.

Usage: python bench/plain_keras_train.py TRAIN_LIMIT EPOCHS
Prints one JSON line: {"epoch_seconds": [...], "train_images": N}
"""

import gzip
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from toolkit.backbones.native import ResNetMini  # noqa: E402  (a plain Keras function)

DATA = "/usr/share/datasets/fashion-mnist"


def load(kind):
    with gzip.open(f"{DATA}/{kind}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(f"{DATA}/{kind}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def main():
    limit, epochs = int(sys.argv[1]), int(sys.argv[2])
    keras.utils.set_random_seed(42)
    images, labels = load("train")
    rng = np.random.RandomState(0)
    order = rng.permutation(len(images))
    train_index, validation_index = order[:limit], order[limit:limit + limit // 9]

    def pipeline(index, training):
        dataset = tf.data.Dataset.from_tensor_slices((images[index], labels[index]))
        dataset = dataset.map(lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (32, 32)), y),
                              num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            dataset = dataset.shuffle(10000, seed=42)
        dataset = dataset.batch(128)
        if training:
            augment = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=42),
                                        keras.layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=42)])
            dataset = dataset.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, 10)), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = ResNetMini(input_shape=(32, 32, 1))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    steps = epochs * -(-limit // 128)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=2e-3, warmup_steps=steps // 20),
            weight_decay=0.05),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy")],
    )

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    model.fit(pipeline(train_index, True), validation_data=pipeline(validation_index, False), epochs=epochs,
              callbacks=[timer], verbose=0)
    print(json.dumps({"epoch_seconds": timer.seconds, "train_images": limit}))


if __name__ == "__main__":
    main()
