"""Plain Keras reference for the segmentation training throughput: the U-Net of
recipes/segmentation/nuclei_unet.yaml trained with `model.fit` and nothing else.

Usage: python bench/plain/segmentation.py LIMIT EPOCHS   (LIMIT: training tiles)
Prints one JSON line: {"epoch_seconds": [...], "examples": N, "unit": "images", ...} (bench/plain/_common.py)

The same as `toolkit train recipes/segmentation/nuclei_unet.yaml data.limit.train=LIMIT`:
- data: the same tiles (the toolkit's nuclei loader, called through the recipe with the same limit: the
  stardist image cut into 64 px tiles, the same seeded training subset and the same 8 validation tiles);
  cached after the first epoch, shuffled (buffer 10000, seed 42), batched by 16, then flipped and rotated
  (RandomFlip horizontal_and_vertical, RandomRotation 0.25, seed 42) jointly with the masks, one-hot masks;
- model: the same network (Rescaling to -1..1, ResNetMini as the encoder with its stride 2/4/8/16 outputs,
  the toolkit's U-Net decoder function, filters [128, 64, 32, 16, 16], dropout 0.1: plain Keras functions);
- loss: per-pixel categorical cross-entropy plus a soft Dice term (weight 1.0), written out here;
- optimizer: Adam, cosine decay to 0 after 1 epoch of linear warmup to 0.002; metrics accuracy and mean IoU;
  the validation split evaluated after every epoch; seed 42.
Differs: the toolkit's pipeline also yields per-pixel sample weights (all 1 here: no class weights, no
ignore index) and resizes the 64 px tiles to 64 px before caching (epoch 1 only); no callbacks here besides
the epoch timer.
"""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf
from _common import arguments, epoch_timer, recipe_task, report

from toolkit.backbones.native import ResNetMini  # plain Keras functions
from toolkit.tasks.segmentation.decoders import unet


def load_tiles(limit):
    """The recipe's tiles (the toolkit's data loader: same tiling, split and subset)."""
    recipe, task = recipe_task("segmentation/nuclei_unet.yaml", [f"data.limit.train={limit}"])
    splits = task.data.splits
    return splits["train"], splits["validation"]


def main():
    limit, epochs = arguments(__doc__)
    keras.utils.set_random_seed(42)
    train, validation = load_tiles(limit)
    batch_size, classes = 16, 2
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical", seed=42),
                                keras.layers.RandomRotation(0.25, fill_mode="constant", seed=42)])

    def augment_batch(images, masks):
        out = augment({"images": images, "segmentation_masks": tf.cast(masks[..., None], tf.float32)}, training=True)
        return out["images"], tf.cast(tf.round(out["segmentation_masks"][..., 0]), tf.int32)

    def pipeline(split, training):
        dataset = tf.data.Dataset.from_tensor_slices((tf.cast(split.images, tf.float32),
                                                      tf.cast(split.masks, tf.int32))).cache()
        if training:
            dataset = dataset.shuffle(10000, seed=42)
        dataset = dataset.batch(batch_size)
        if training:
            dataset = dataset.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, classes)), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    inputs = keras.Input((64, 64, 1))
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)
    backbone = ResNetMini(input_shape=(64, 64, 1))
    names = ["stage1_block1_out", "stage2_block1_out", "stage3_block1_out", "stage4_block1_out"]
    encoder = keras.Model(backbone.inputs, [backbone.get_layer(name).output for name in names])
    features = dict(zip((2, 4, 8, 16), encoder(x)))
    outputs = unet(features, x, classes, filters=(128, 64, 32, 16, 16), dropout=0.1)
    model = keras.Model(inputs, outputs)

    def loss(y_true, y_pred):
        cross_entropy = keras.losses.categorical_crossentropy(y_true, y_pred)
        intersection = keras.ops.sum(y_pred * y_true, axis=(0, 1, 2))
        total = keras.ops.sum(y_pred, axis=(0, 1, 2)) + keras.ops.sum(y_true, axis=(0, 1, 2))
        return cross_entropy + 1.0 - keras.ops.mean((2.0 * intersection + 1.0) / (total + 1.0))

    per_epoch = math.ceil(len(train) / batch_size)
    steps, warmup = per_epoch * epochs, min(per_epoch, per_epoch * epochs - 1)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            0.0, max(steps - warmup, 1), warmup_target=0.002, warmup_steps=warmup)),
        loss=loss,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.MeanIoU(classes, sparse_y_true=False, sparse_y_pred=False, name="mean_iou")],
    )
    timer = epoch_timer()
    model.fit(pipeline(train, True), validation_data=pipeline(validation, False), epochs=epochs, callbacks=[timer],
              verbose=0)
    report(timer, len(train), "images", len(train), model)


if __name__ == "__main__":
    main()
