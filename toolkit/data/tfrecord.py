"""Sharded TFRecord datasets: `toolkit data to-tfrecord` writes them, `data.source: tfrecord` reads them.

`write_tfrecords(recipe, out_dir, shards)` reads the recipe's data through its
own source (folder, TFDS, fashion_mnist, ... with its checks and splits) and
writes each split as `<split>-00000-of-000NN.tfrecord` shards of
`tf.train.Example`s plus `tfrecord.json` (task, class names, channels or
sample rate, example counts, provenance). Images (and segmentation masks) are
stored as PNG bytes and labels as int64; translation pairs as two UTF-8
strings; speech as float32 samples (raw bytes) with their rate, transcript,
speaker and id.

`data.source: tfrecord` with `data.path: OUT_DIR` reads them back. For the
image tasks the shards of a split are streamed in parallel (`interleave`) and
decoded in the tf.data pipeline, never loaded into memory at once, so a
dataset larger than memory (or on a network file system / GCS path) trains
like a folder. Translation and speech pipelines hold their splits in memory
(as their other sources do): their records are read once and checked like a
file source (`data.on_error`).

Not recommendation: an interaction table is one small array per column.

Example:

>>> shard_name("train", 2, 8)
'train-00002-of-00008.tfrecord'
"""

import json
import os
import shutil
import tempfile

import numpy as np

from toolkit.errors import DataError

FORMAT = "toolkit-tfrecord-1"
META = "tfrecord.json"
TASKS = ("image_classification", "segmentation", "translation", "speech_recognition")
IMAGE_TASKS = ("image_classification", "segmentation")


def shard_name(split, index, shards):
    return f"{split}-{index:05d}-of-{shards:05d}.tfrecord"


def _bytes(value):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _example(image, target, segmentation):
    import tensorflow as tf

    from toolkit.data.images import encode_png

    feature = {"image": _bytes(encode_png(np.asarray(image, np.uint8)))}
    if segmentation:
        mask = np.asarray(target)
        if mask.max(initial=0) > 255:
            raise DataError("to-tfrecord: a mask holds class indices above 255; PNG masks hold 0-255")
        feature["mask"] = _bytes(encode_png(mask.astype(np.uint8)[..., None]))
    else:
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(target)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _records(task, split, skipped):
    """Serialized examples of one split of a task's loaded data; unreadable image files are appended to
    `skipped` ("file: reason")."""
    import tensorflow as tf

    if task.name in IMAGE_TASKS:
        for image, target in task.split_examples(split, skipped=skipped):
            yield _example(image, target, task.name == "segmentation")
    elif task.name == "translation":
        for source, target in task.data.splits[split]:
            feature = {"source": _bytes(source.encode("utf-8")), "target": _bytes(target.encode("utf-8"))}
            yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    else:
        rate = task.recipe.data.sample_rate
        for utterance in task.data.splits[split]:
            feature = {"audio": _bytes(np.asarray(utterance.audio, "<f4").tobytes()),
                       "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[rate])),
                       "text": _bytes(utterance.text.encode("utf-8")),
                       "speaker": _bytes(utterance.speaker.encode("utf-8")), "id": _bytes(utterance.id.encode("utf-8"))}
            yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


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

    from toolkit.tasks import make_task

    if recipe.task not in TASKS:
        raise DataError(f"to-tfrecord: {recipe.task} recipes are not written to TFRecord (image classification, "
                        "segmentation, translation and speech recognition are); an interaction table is small")
    if recipe.data.source == "tfrecord":
        raise DataError("to-tfrecord: the recipe already reads TFRecords (data.source: tfrecord)")
    if shards < 1:
        raise DataError(f"--shards {shards}: give 1 or more")
    task = make_task(recipe)
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
                for record in _records(task, split, skipped):
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
        if recipe.task in IMAGE_TASKS:
            meta.update(class_names=list(task.class_names), channels=recipe.data.channels)
        if recipe.task == "speech_recognition":
            meta["sample_rate"] = recipe.data.sample_rate
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


def load_tfrecords(config, seed, task):
    """{split: Split(dataset streaming the shards, count)} and the metadata of a TFRecord directory."""
    import tensorflow as tf

    from toolkit.data.sources import Split

    meta = read_meta(config.path, task)
    channels = int(meta["channels"])
    segmentation = task == "segmentation"
    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    spec["mask" if segmentation else "label"] = tf.io.FixedLenFeature([], tf.string if segmentation else tf.int64)

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_png(example["image"], channels=channels)
        if segmentation:
            return image, tf.io.decode_png(example["mask"], channels=1)[..., 0]
        return image, example["label"]

    splits = {}
    for split, count in meta["splits"].items():
        files = sorted(tf.io.gfile.glob(os.path.join(config.path, f"{split}-*-of-*.tfrecord")))
        if not files:
            raise DataError(f"data.path: {config.path} has no {split} shards ({split}-*-of-*.tfrecord)")
        dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        splits[split] = Split(dataset=dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE), count=int(count))
    return splits, meta


def _split_records(directory, split, spec):
    """The parsed records (dicts of NumPy values) of one split, in shard order."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(directory, f"{split}-*-of-*.tfrecord")))
    if not files:
        raise DataError(f"data.path: {directory} has no {split} shards ({split}-*-of-*.tfrecord)")
    dataset = tf.data.TFRecordDataset(files).map(lambda record: tf.io.parse_single_example(record, spec))
    return dataset.as_numpy_iterator()


def load_translation_tfrecords(config, seed):
    """`ParallelData` from translation TFRecords (pairs normalised and checked like the TSV source)."""
    import tensorflow as tf

    from toolkit.data.translation_sources import clean_pairs, finish_parallel

    meta = read_meta(config.path, "translation")
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in ("source", "target")}
    splits, reports = {}, {}
    for split in meta["splits"]:
        items = ((f"{split} record {index}", record["source"].decode("utf-8", "replace"),
                  record["target"].decode("utf-8", "replace"))
                 for index, record in enumerate(_split_records(config.path, split, spec)))
        splits[split], reports[split] = clean_pairs(items, config.on_error)
    return finish_parallel(splits, reports, config, seed, meta["provenance"],
                           {"validation": "given" if "validation" in splits else "random pairs"})


def load_speech_tfrecords(config, seed, vocabulary):
    """`SpeechData` from speech TFRecords (resampled to data.sample_rate; transcripts checked)."""
    import tensorflow as tf

    from toolkit.data.speech_sources import empty_report, finish_speech, make_utterance

    meta = read_meta(config.path, "speech_recognition")
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in ("audio", "text", "speaker", "id")}
    spec["sample_rate"] = tf.io.FixedLenFeature([], tf.int64)
    splits, reports = {}, {}
    for split in meta["splits"]:
        utterances, report = [], empty_report()
        for index, record in enumerate(_split_records(config.path, split, spec)):
            audio = np.frombuffer(record["audio"], "<f4").astype(np.float32)
            utterance = make_utterance(record["id"].decode("utf-8", "replace"),
                                       record["text"].decode("utf-8", "replace"),
                                       record["speaker"].decode("utf-8", "replace"), config, vocabulary, report,
                                       f"{split} record {index}", audio=audio, rate=int(record["sample_rate"]))
            if utterance is not None:
                utterances.append(utterance)
        report["examples"] = len(utterances)
        splits[split], reports[split] = utterances, report
    return finish_speech(splits, reports, config, seed, meta["provenance"], {})
