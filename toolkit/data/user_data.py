"""Python datasets given to `toolkit.train(recipe, data=...)` instead of the recipe's source.

In a notebook the data often already sits in a `tf.data.Dataset`, a NumPy
array or a list. Passing it as `data=` replaces the recipe's `data.source`
(the run's recipe records `data.source: datasets`); everything after the
source (splitting, `data.limit`, skipping bad examples, the pipelines,
metrics, exports) is the same as for a recipe source. The examples are read
into memory once: for data larger than memory use a folder or TFRecord
source instead.

`data` is one dataset (the train split; validation and test are cut from it
by `data.validation_fraction` / `data.test_fraction`) or a dict with "train"
and optionally "validation", "test" and the task's extras (`class_names`).
Each dataset is a `tf.data.Dataset` (batched or not), a list of examples or
a tuple `(inputs, targets)` of equal-length arrays (as `model.fit(x, y)`).
An example is, per task:

    image_classification  (image HxWxC or HxW, 0-255; label int or one-hot)
    segmentation          (image, mask HxW of class indices)
    translation           (source text, target text)
    speech_recognition    (waveform float [-1, 1] at data.sample_rate, transcript)
    recommendation        {"user": id, "item": id, "rating": float, "timestamp": int}
                          (or one dict of equal-length columns)

Example:

>>> import numpy as np
>>> from toolkit.data.user_data import UserData
>>> data = UserData.of({"train": (np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 0, 1]))},
...                    extras=("class_names",))
>>> len(list(data.examples("train", batched_rank=4)))
4
"""

import numpy as np

from toolkit.errors import DataError
from toolkit.registry import did_you_mean

SOURCE = "datasets"
SPLITS = ("train", "validation", "test")


def refuse_in_recipe(config, seed, *args):
    """The registered `datasets` source: only the Python API can fill it."""
    raise DataError("data.source: datasets are Python datasets given as data= to toolkit.train; give them again "
                    "as data= (toolkit.train(resume=...), toolkit.evaluate, toolkit.export), or set data.source to "
                    "a file or dataset source (toolkit list sources)")


class UserData:
    """Datasets by split plus task extras (see the module docstring)."""

    def __init__(self, splits, extras):
        self.splits = splits
        self.extras = extras

    @classmethod
    def of(cls, data, extras=()):
        """Checks what was given as `data=`; returns a `UserData`."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            data = {"train": data}
        allowed = SPLITS + tuple(extras)
        for key in data:
            if key not in allowed:
                raise DataError(f"data={{...}}: unknown key {key!r}{did_you_mean(str(key), allowed)} "
                                f"(keys: {', '.join(allowed)})")
        if data.get("train") is None:
            raise DataError("data={...}: a 'train' dataset is required")
        splits = {name: data[name] for name in SPLITS if data.get(name) is not None}
        return cls(splits, {name: data[name] for name in extras if name in data})

    def attribute(self, name):
        """An attribute of the train dataset (e.g. `class_names` of keras.utils loaders), or None."""
        return getattr(self.splits["train"], name, None)

    def examples(self, split, batched_rank):
        """Yields the examples of a split as tuples (or dicts) of NumPy values.

        Args:
            split: str. The split name.
            batched_rank: int. Rank of the first component of a batched
                `tf.data.Dataset` (such datasets are unbatched first).
        """
        data = self.splits[split]
        if _is_tf_dataset(data):
            yield from _dataset_examples(data, batched_rank)
        elif isinstance(data, tuple) and len(data) == 2 and all(hasattr(part, "__len__") for part in data):
            inputs, targets = data
            if len(inputs) != len(targets):
                raise DataError(f"data['{split}']: {len(inputs)} inputs but {len(targets)} targets; "
                                "give (inputs, targets) of equal length")
            yield from zip(inputs, targets)
        elif isinstance(data, (list, tuple)):
            yield from data
        else:
            raise DataError(f"data['{split}'] is a {type(data).__name__}; give a tf.data.Dataset, a list of "
                            "examples or a tuple (inputs, targets) of arrays")


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def _dataset_examples(dataset, batched_rank):
    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, tuple) else next(iter(spec.values())) if isinstance(spec, dict) else spec
    if first.shape.rank is not None and first.shape.rank >= batched_rank:
        dataset = dataset.unbatch()
    yield from dataset.as_numpy_iterator()


def pair(example, split, index, what):
    """Returns the two parts of an example, or a one-line error naming it."""
    if isinstance(example, dict) or not hasattr(example, "__len__") or len(example) != 2:
        raise DataError(f"data['{split}'] example {index}: expected a pair {what}, got {type(example).__name__}")
    return example[0], example[1]


def text(value):
    """str of a Python or NumPy string / bytes value."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return text(value.item())
    return str(value)


# ----------------------------------------------------------------------- images


def _image_array(image, size, channels, where):
    """A checked user image at `size` and `channels`, converted as the file pipeline does (uint8)."""
    import tensorflow as tf

    from toolkit.data.images import adapt_channels, resize_image

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise DataError(f"{where}: an image must be HxW or HxWxC with 1, 3 or 4 channels; got shape {image.shape}")
    if image.dtype.kind == "f" and image.size and float(image.max()) <= 1.0 and float(image.max()) > 0:
        raise DataError(f"{where}: float pixels in [0, 1]; give 0-255 values "
                        "(as keras.utils.image_dataset_from_directory and TFDS do)")
    resized = resize_image(adapt_channels(tf.convert_to_tensor(image), channels), size).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def _mask_array(mask, size, where):
    """A checked user mask resized by nearest neighbour (`resize_mask`, as the file pipeline does)."""
    import tensorflow as tf

    from toolkit.data.segmentation import resize_mask

    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype.kind not in "iub":
        raise DataError(f"{where}: a mask must be HxW (or HxWx1) class indices; got shape {mask.shape}, "
                        f"dtype {mask.dtype}")
    return resize_mask(tf.convert_to_tensor(mask.astype(np.int32)), size).numpy()


def _label(label, where):
    label = np.asarray(label)
    if label.ndim == 1 and label.size > 1:  # one-hot / categorical
        return int(np.argmax(label))
    if label.size != 1 or label.dtype.kind not in "iub":
        raise DataError(f"{where}: a label must be an int class index or a one-hot vector; got {label!r:.60}")
    return int(label.reshape(()))


def _class_names(user, count, where):
    names = user.extras.get("class_names") or user.attribute("class_names")
    if names is None:
        return [str(index) for index in range(count)]
    names = [str(name) for name in names]
    if len(names) < count:
        raise DataError(f"{where}: class index {count - 1} but only {len(names)} class_names; "
                        "give every class a name")
    return names


def classification_data(user, config, seed):
    """`LabelledData` of (image, label) datasets, resized to `data.image_size`."""
    from toolkit.data.sources import LabelledData, Split, finish_splits

    splits, largest = {}, -1
    for name in user.splits:
        images, labels = [], []
        for index, example in enumerate(user.examples(name, batched_rank=4)):
            where = f"data['{name}'] example {index}"
            image, label = pair(example, name, index, "(image, label)")
            images.append(_image_array(image, tuple(config.image_size), config.channels, where))
            labels.append(_label(label, where))
            if labels[-1] < 0:
                raise DataError(f"{where}: negative label {labels[-1]}")
        if not images:
            raise DataError(f"data['{name}'] has no examples")
        largest = max(largest, max(labels))
        splits[name] = Split(labels=np.asarray(labels, np.int64), images=np.stack(images))
    class_names = _class_names(user, largest + 1, "data")
    return LabelledData(finish_splits(splits, config, seed), class_names, "Python datasets given to toolkit.train")


def segmentation_data(user, config, seed):
    """`LabelledData` of (image, mask) datasets, resized to `data.image_size` (masks by nearest)."""
    from toolkit.data.sources import LabelledData, Split, finish_splits

    size = tuple(config.image_size)
    splits, largest = {}, 0
    for name in user.splits:
        images, masks = [], []
        for index, example in enumerate(user.examples(name, batched_rank=4)):
            where = f"data['{name}'] example {index}"
            image, mask = pair(example, name, index, "(image, mask)")
            images.append(_image_array(image, size, config.channels, where))
            masks.append(_mask_array(mask, size, where))
            largest = max(largest, int(masks[-1].max()))
        if not images:
            raise DataError(f"data['{name}'] has no examples")
        splits[name] = Split(images=np.stack(images), masks=np.stack(masks))
    class_names = config.classes or _class_names(user, largest + 1, "data")
    if largest >= len(class_names):
        raise DataError(f"data: a mask holds class {largest} but data.classes names {len(class_names)} classes")
    return LabelledData(finish_splits(splits, config, seed), list(class_names),
                        "Python datasets given to toolkit.train")


# ------------------------------------------------------------------------- text


def translation_data(user, config, seed):
    """`ParallelData` of (source, target) text pairs (normalised; empty sides skipped and counted)."""
    from toolkit.data.translation_sources import clean_pairs, finish_parallel

    def items(name):
        for index, example in enumerate(user.examples(name, batched_rank=1)):
            source, target = pair(example, name, index, "(source text, target text)")
            yield f"data['{name}'] example {index}", text(source), text(target)

    splits, reports = {}, {}
    for name in user.splits:
        splits[name], reports[name] = clean_pairs(items(name), config.on_error)
    return finish_parallel(splits, reports, config, seed, "Python datasets given to toolkit.train",
                           {"validation": "given" if "validation" in splits else "random pairs"})


# ------------------------------------------------------------------------ audio


def speech_data(user, config, seed, vocabulary):
    """`SpeechData` of (waveform at data.sample_rate, transcript) pairs, checked like file sources."""
    from toolkit.data.speech_sources import empty_report, finish_speech, make_utterance

    splits, reports = {}, {}
    for name in user.splits:
        utterances, report = [], empty_report()
        for index, example in enumerate(user.examples(name, batched_rank=2)):
            wave, transcript = pair(example, name, index, "(waveform, transcript)")
            wave = np.asarray(wave, np.float32).reshape(-1)
            where = f"data['{name}'] example {index}"
            utterance = make_utterance(f"{name}-{index}", text(transcript), "", config, vocabulary, report, where,
                                       audio=wave, rate=config.sample_rate)
            if utterance is not None:
                utterances.append(utterance)
        report["examples"] = len(utterances)
        splits[name], reports[name] = utterances, report
    return finish_speech(splits, reports, config, seed, "Python datasets given to toolkit.train", {})


# ----------------------------------------------------------------- interactions

COLUMNS = ("user", "item", "rating", "timestamp")


def recommendation_data(user, config, seed):
    """`RecommendationData` of interaction rows; the recipe's `data.split` cuts the splits."""
    from toolkit.data.recommendation_sources import RawInteractions, build_recommendation_data, empty_report

    if set(user.splits) != {"train"}:
        raise DataError("data: a recommender takes one table of interactions (data=rows); data.split "
                        "(random, leave_last_out, kfold) cuts validation and test from it")
    rows = user.splits["train"]
    if isinstance(rows, dict):
        columns = rows
    else:
        columns = {name: [] for name in COLUMNS}
        for index, row in enumerate(user.examples("train", batched_rank=1)):
            if not isinstance(row, dict) or "user" not in row or "item" not in row:
                raise DataError(f"data example {index}: expected a dict with 'user' and 'item' "
                                f"(and optionally 'rating', 'timestamp'); got {type(row).__name__}")
            for name in COLUMNS:
                columns[name].append(row.get(name, 1.0 if name == "rating" else index))
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown or "user" not in columns or "item" not in columns:
        raise DataError(f"data: interaction columns are {', '.join(COLUMNS)} (user and item required); "
                        f"got {', '.join(map(str, columns))}")
    count = len(columns["user"])
    if any(len(values) != count for values in columns.values()):
        raise DataError("data: the interaction columns have different lengths; give one value per row in each")
    if not count:
        raise DataError("data: no interactions")
    ids = lambda values: np.asarray([text(value) for value in values], dtype=str)  # noqa: E731
    raw = RawInteractions(
        "data", ids(columns["user"]), ids(columns["item"]),
        np.asarray(columns.get("rating", np.ones(count)), np.float32),
        np.asarray(columns.get("timestamp", np.arange(count)), np.int64), np.arange(count, dtype=np.int64))
    report = empty_report()
    report["rows_read"] = count
    return build_recommendation_data(raw, config, seed, "Python datasets given to toolkit.train", report)
