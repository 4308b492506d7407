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
An example is what the task's `data=` converter (in its package's
`sources.py`) takes, for instance an (image, label) or (image, mask) pair,
a (source text, target text) pair, a (waveform, transcript) pair or an
interaction dict {"user", "item", "rating", "timestamp"}.

Example:

>>> import numpy as np
>>> from toolkit.data.user_data import UserData
>>> data = UserData.of({"train": (np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 0, 1]))},
...                    extras=("class_names",))
>>> len(list(data.examples("train", batched_rank=4)))
4
"""

import numpy as np

from toolkit.data.splits import SPLITS
from toolkit.errors import DataError
from toolkit.registry import did_you_mean

SOURCE = "datasets"


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


def class_names(user, count, where):
    """The class names of `count` classes: the user's `class_names` (extras or dataset attribute) or "0", "1", ..."""
    names = user.extras.get("class_names") or user.attribute("class_names")
    if names is None:
        return [str(index) for index in range(count)]
    names = [str(name) for name in names]
    if len(names) < count:
        raise DataError(f"{where}: class index {count - 1} but only {len(names)} class_names; "
                        "give every class a name")
    return names
