"""Plain Keras reference for the image-folder classification training throughput: the classifier of
recipes/image_classification/image_folder.yaml (a keras.applications backbone, global pooling, dropout, softmax)
on a folder of JPEGs, trained with `model.fit` and nothing else.

Two settings of the recipe are changed on both sides (BACKBONE, IMAGE_SIZE below): the backbone is MobileNetV3Small
at 128 px instead of EfficientNetV2-B0 at 224 px, whose first epoch (tracing) took about 70 s and whose training ran
at about 7 images/s on the 2 shared CPU cores, too slow for a 3 x 2-run benchmark; and the weights are random
(`model.weights=none`), since ImageNet weights cannot be downloaded here.

Usage: python bench/plain/image_classification.py LIMIT EPOCHS   (LIMIT: training images)
Prints one JSON line: {"epoch_seconds": [...], "examples": N, "unit": "images", ...}

The JPEG folder (`make_jpeg_folder`, written once into bench/_work/throughput/jpeg_folder, deterministic): 10
class folders of Fashion-MNIST training items (Debian dataset-fashion-mnist), each upscaled to 160x160 RGB with
a random tint on a random background colour, JPEG quality 90.

The same as `toolkit train recipes/image_classification/image_folder.yaml data.path=<folder> model.weights=none
train.fine_tune.frozen_epochs=0 data.limit.train=LIMIT data.limit.validation=LIMIT//9 data.image_size=[S,S]`
(S: IMAGE_SIZE below; a frozen phase of random weights is refused by the recipe check, so there is one phase):
- data: the same files (the toolkit's folder loader through the recipe with the same settings: the same seeded
  stratified test/validation cuts and training subset), decoded (JPEG, accurate DCT) and resized to S x S,
  cached, shuffled (buffer 10000, seed 42), batches of 32, augmented per batch (RandomFlip horizontal,
  RandomRotation 0.05, RandomZoom 0.1, RandomContrast 0.1, seed 42), one-hot labels;
- model: keras.applications.MobileNetV3Small(include_top=False, weights=None, include_preprocessing=True) (the
  toolkit registry's constructor and arguments for mobilenet_v3_small), global average pooling, dropout 0.2, a
  softmax Dense;
- loss, optimizer, metrics: categorical cross-entropy; AdamW (weight decay 0.004, the toolkit's default when the
  recipe gives none), cosine decay from 0.001 to 0 (no warmup), everything trained from the start; accuracy and
  top-5 accuracy; the validation split evaluated after every epoch; seed 42.
Differs: nothing in the training graph; in the first epoch only, the toolkit decodes through
`ignore_errors()` (unreadable files are skipped and counted) and caches twice; only the toolkit's callbacks
around `fit()`.
"""

import math
import os

from _common import REPO, arguments, epoch_timer, recipe_task, report

FOLDER = os.path.join(REPO, "bench", "_work", "throughput", "jpeg_folder")
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
PER_CLASS = 100
IMAGE_SIZE = 128
BACKBONE = ("mobilenet_v3_small", "MobileNetV3Small")  # toolkit registry name, keras.applications constructor


def make_jpeg_folder(root=FOLDER, per_class=PER_CLASS, size=160, seed=0):
    """Writes the benchmark's JPEG folder once (a `done` file marks a complete one); returns its path."""
    import gzip

    import numpy as np
    from PIL import Image

    marker = os.path.join(root, "done")
    if os.path.isfile(marker):
        return root
    data = "/usr/share/datasets/fashion-mnist"
    with gzip.open(f"{data}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{data}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    rng = np.random.RandomState(seed)
    for label, name in enumerate(CLASSES):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for index, item in enumerate(np.flatnonzero(labels == label)[:per_class]):
            gray = np.asarray(Image.fromarray(images[item]).resize((size, size), Image.BILINEAR), np.float32) / 255
            tint, background = rng.uniform(0.4, 1.0, 3), rng.uniform(0.0, 0.5, 3)
            pixels = gray[..., None] * tint + (1 - gray[..., None]) * background
            Image.fromarray((pixels * 255).round().astype(np.uint8)).save(
                os.path.join(folder, f"{name}_{index:04d}.jpg"), quality=90)
    with open(marker, "w") as f:
        f.write(f"{per_class} images per class, {size}x{size}, seed {seed}\n")
    return root


def toolkit_overrides(limit):
    """The recipe overrides shared by this script and the toolkit run."""
    return [f"data.path={FOLDER}", f"model.backbone={BACKBONE[0]}", "model.weights=none",
            "train.fine_tune.frozen_epochs=0",
            f"data.image_size=[{IMAGE_SIZE},{IMAGE_SIZE}]",
            f"data.limit.train={limit}", f"data.limit.validation={max(limit // 9, 1)}"]


def load_files(limit):
    """The recipe's files and labels (the toolkit's folder loader: same cuts and subset) and class count."""
    recipe, task = recipe_task("image_classification/image_folder.yaml", toolkit_overrides(limit))
    data = task.data
    return data.splits["train"], data.splits["validation"], len(data.class_names)


def main():
    limit, epochs = arguments(__doc__)
    make_jpeg_folder()

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(42)
    train, validation, classes = load_files(limit)
    batch_size = 32
    augment = keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=42),
        keras.layers.RandomRotation(0.05, fill_mode="constant", seed=42),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=42),
        keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=42),
    ])

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
        return tf.image.resize(tf.cast(image, tf.float32), (IMAGE_SIZE, IMAGE_SIZE)), label

    def pipeline(split, training):
        dataset = tf.data.Dataset.from_tensor_slices((list(split.paths), list(split.labels)))
        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            dataset = dataset.shuffle(10000, seed=42)
        dataset = dataset.batch(batch_size)
        if training:
            dataset = dataset.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, classes)), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    backbone = getattr(keras.applications, BACKBONE[1])(include_top=False, weights=None, include_preprocessing=True,
                                                        input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    steps = math.ceil(len(train) / batch_size) * epochs
    model.compile(
        optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(1e-3, steps), weight_decay=0.004),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy")],
    )
    timer = epoch_timer()
    model.fit(pipeline(train, True), validation_data=pipeline(validation, False), epochs=epochs, callbacks=[timer],
              verbose=0)
    report(timer, len(train), "images", len(train), model)


if __name__ == "__main__":
    main()
