"""TensorFlow Datasets for every task's `tfds` source: preparing a dataset on disk (downloading only when
allowed and the host is reachable, with one clear line otherwise) and mapping train/validation/test to TFDS
split specs.
"""

import os

from toolkit.errors import DataError


def prepare_tfds(name, config):
    """Returns (builder, info) of a TFDS dataset, prepared on disk (downloading when allowed)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=config.tfds_data_dir)
    except Exception as error:  # noqa: BLE001 - tfds raises DatasetNotFoundError and others
        raise DataError(f"data.tfds_name {name!r}: {str(error).splitlines()[0][:200]}")
    if not _tfds_prepared(builder):
        if not config.download:
            raise DataError(
                f"TFDS dataset {name} is not prepared in {builder.data_dir} and data.download is false; "
                f"prepare it with: tfds build {name}"
            )
        if not can_resolve("storage.googleapis.com"):  # TFDS would retry for minutes
            raise DataError(
                f"TFDS dataset {name} is not on disk in {builder.data_dir} and this machine is offline; run "
                f"`tfds build {name}` on a connected machine and copy ~/tensorflow_datasets, or use data.source: folder"
            )
        try:
            builder.download_and_prepare()
        except Exception as error:  # noqa: BLE001
            raise DataError(
                f"TFDS dataset {name} is not on disk and could not be downloaded ({str(error).splitlines()[0][:160]}); "
                f"run `tfds build {name}` on a connected machine and copy ~/tensorflow_datasets, "
                "or use data.source: folder"
            )
    return builder, builder.info


def tfds_split_names(info, config):
    """Maps train/validation/test to TFDS split specs, slicing train where a split is missing."""
    # Without stored metadata (e.g. tfds.testing.mock_data) assume a train split.
    available = set(info.splits.keys()) or {"train"}
    if "train" not in available:
        raise DataError(f"TFDS dataset {info.name} has no 'train' split (it has {', '.join(sorted(available))})")
    names = {"train": "train"}
    if "test" in available:
        names["test"] = "test"
    else:
        cut = int(round(100 * (1 - config.test_fraction)))
        names["train"], names["test"] = f"train[:{cut}%]", f"train[{cut}%:]"
    if "validation" in available:
        names["validation"] = "validation"
    elif config.validation_fraction > 0:
        base = names["train"]
        cut = int(round(100 * (1 - config.validation_fraction)))
        if base == "train":
            names["train"], names["validation"] = f"train[:{cut}%]", f"train[{cut}%:]"
        else:  # train[:80%] -> nested slicing by absolute percentages
            end = int(base[len("train[:"):-2])
            middle = end * cut // 100
            names["train"], names["validation"] = f"train[:{middle}%]", f"train[{middle}%:{end}%]"
    return names


def tfds_count(info, spec):
    try:
        return int(info.splits[spec].num_examples)
    except (KeyError, ValueError, TypeError):
        return None  # counted when the pipeline first reads it


def can_resolve(host, timeout=5.0):
    """True when `host` resolves within `timeout` seconds (a cheap online check)."""
    import socket
    import threading

    result = []

    def resolve():
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _tfds_prepared(builder):
    try:
        return bool(builder.info.splits) and os.path.isdir(builder.data_dir) and any(
            name.endswith((".tfrecord", ".array_record")) or ".tfrecord-" in name or ".array_record-" in name
            for name in os.listdir(builder.data_dir)
        )
    except Exception:  # noqa: BLE001
        return False
