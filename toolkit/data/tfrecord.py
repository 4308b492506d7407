"""Sharded TFRecord datasets: `toolkit data to-tfrecord` writes them, `data.source: tfrecord` reads them.

`write_tfrecords(recipe, out_dir, shards)` reads the recipe's data through its
own source (folder, TFDS, fashion_mnist, ... with its checks and splits) and
writes each split as `<split>-00000-of-000NN.tfrecord` shards of
`tf.train.Example`s plus `tfrecord.json` (task, example counts, provenance
and what the task adds, such as class names and channels or the sample rate).
Each task writes its own records (`Task.tfrecord_examples`: images and masks
as PNG bytes, labels as int64, texts as UTF-8 strings, audio as float32
samples) and reads them back through its `tfrecord` data source.

`data.source: tfrecord` with `data.path: OUT_DIR` reads them back. Image
shards of a split are streamed in parallel (`stream_splits`) and decoded in
the tf.data pipeline, never loaded into memory at once, so a dataset larger
than memory (or on a network file system / GCS path) trains like a folder;
list-shaped data (texts, utterances) is read once (`split_records`) and
checked like a file source (`data.on_error`). A task without a record format
says why (`Task.tfrecord_note`).

Example:

>>> shard_name("train", 2, 8)
'train-00002-of-00008.tfrecord'
"""

import json
import os
import shutil
import tempfile

from toolkit.errors import DataError

FORMAT = "toolkit-tfrecord-1"
META = "tfrecord.json"


def shard_name(split, index, shards):
    return f"{split}-{index:05d}-of-{shards:05d}.tfrecord"


def bytes_feature(value):
    """A `tf.train.Feature` of one bytes value."""
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def int64_feature(value):
    """A `tf.train.Feature` of one int64 value."""
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize(features):
    """A serialized `tf.train.Example` of {name: feature}."""
    import tensorflow as tf

    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _check_skipped(recipe, split, count, skipped, log):
    """Image files of a split that could not be read: an error under data.on_error: fail or when nothing was
    readable, else one warning line (they are left out of the records, as training leaves them out)."""
    if not skipped:
        return
    if count == 0:
        raise DataError(f"{split} split: none of its {len(skipped)} images could be read (first: {skipped[0]}); "
                        "check data.path")
    if recipe.data.on_error == "fail":
        raise DataError(f"{skipped[0]} ({len(skipped)} unreadable file(s) in the {split} split); fix or remove it, "
                        "or set data.on_error: skip")
    log(f"warning: {split}: skipped {len(skipped)} unreadable file(s), not written (first: {skipped[0]})")


def write_tfrecords(recipe, out_dir, shards=8, log=print):
    """Writes the recipe's splits as sharded TFRecords into `out_dir` (replaced only when complete);
    returns the metadata written to tfrecord.json."""
    import tensorflow as tf

    from toolkit.config.tasks import TASKS

    task_class = TASKS.get(recipe.task)
    if task_class.tfrecord_note is not None:
        writers = [name.replace("_", " ") for name, cls in TASKS.items() if cls.tfrecord_note is None]
        raise DataError(f"to-tfrecord: {recipe.task} recipes are not written to TFRecord ({', '.join(writers)} "
                        f"are); {task_class.tfrecord_note}")
    if recipe.data.source == "tfrecord":
        raise DataError("to-tfrecord: the recipe already reads TFRecords (data.source: tfrecord)")
    if shards < 1:
        raise DataError(f"--shards {shards}: give 1 or more")
    task = task_class(recipe)
    data = task.data
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tfrecord.tmp-", dir=parent)
    counts = {}
    try:
        for split in data.splits:
            writers = [tf.io.TFRecordWriter(os.path.join(staging, shard_name(split, i, shards)))
                       for i in range(shards)]
            count = 0
            skipped = list(getattr(data.splits[split], "skipped_files", None) or [])  # found by the source
            try:
                for record in task.tfrecord_examples(split, skipped):
                    writers[count % shards].write(record)
                    count += 1
            finally:
                for writer in writers:
                    writer.close()
            _check_skipped(recipe, split, count, skipped, log)
            counts[split] = count
            log(f"{split}: {count} examples in {shards} shards")
        meta = {"format": FORMAT, "task": recipe.task, "shards": shards, "splits": counts,
                "provenance": f"TFRecords of {data.provenance}"}
        meta.update(task.tfrecord_metadata())
        with open(os.path.join(staging, META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        if os.path.isdir(out_dir):
            if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, META)):
                raise DataError(f"{out_dir} exists and is not a toolkit TFRecord directory; choose an empty or new "
                                "directory")
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
        return meta
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_meta(directory, task):
    path = os.path.join(directory or "", META)
    if not directory or not os.path.isfile(path):
        raise DataError(f"data.path: {directory!r} has no {META}; write one with toolkit data to-tfrecord RECIPE DIR")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} directory")
    if meta["task"] != task:
        raise DataError(f"data.path: {directory} holds {meta['task']} TFRecords, not {task}")
    return meta


def stream_splits(directory, meta, parse):
    """{split: (dataset streaming its shards through `parse`, count)}: the shards of a split are read in
    parallel (`interleave`) and never held in memory at once."""
    import tensorflow as tf

    splits = {}
    for split, count in meta["splits"].items():
        files = sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*-of-*.tfrecord")))
        if not files:
            raise DataError(f"data.path: {directory} has no {split} shards ({split}-*-of-*.tfrecord)")
        dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        splits[split] = (dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE), int(count))
    return splits


def split_records(directory, split, spec):
    """The parsed records (dicts of NumPy values) of one split, in shard order."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*-of-*.tfrecord")))
    if not files:
        raise DataError(f"data.path: {directory} has no {split} shards ({split}-*-of-*.tfrecord)")
    dataset = tf.data.TFRecordDataset(files).map(lambda record: tf.io.parse_single_example(record, spec))
    return dataset.as_numpy_iterator()
