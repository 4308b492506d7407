"""Splits of list-shaped data (sentence pairs, utterances, interactions): cutting missing splits, applying
`data.limit`, and counting what was skipped and why, the same way for every source.

Every source returns the three splits `SPLITS` and one report per split:
{"examples", "skipped", "skipped_reasons": {reason: count}, "skipped_examples": up to 10 "file:line: reason"}.

Example:

>>> from toolkit.data.splits import count_skip, empty_report
>>> report = empty_report()
>>> count_skip(report, "a.tsv:3", "empty side", "skip")
>>> report["skipped"], report["skipped_reasons"]
(1, {'empty side': 1})
"""

import numpy as np

from toolkit.errors import DataError

SPLITS = ("train", "validation", "test")
MAX_SKIPPED_EXAMPLES = 10


def empty_report():
    """A report of one split with nothing counted yet."""
    return {"examples": 0, "skipped": 0, "skipped_reasons": {}, "skipped_examples": []}


def count_skip(report, where, reason, on_error, detail=None, fix="fix the line"):
    """Counts one skipped example in `report`, or raises under on_error: fail.

    Args:
        report: dict. One split's report (`empty_report()`).
        where: str. The file (and line) of the example.
        reason: str. What was wrong; examples are counted by it.
        on_error: str. "skip" counts, "fail" raises DataError.
        detail: optional str. Specifics written after the reason (not counted by).
        fix: str. How to fix it, in the error message.
    """
    message = f"{reason}: {detail}" if detail else reason
    if on_error == "fail":
        raise DataError(f"{where}: {message}; {fix} or set data.on_error: skip")
    report["skipped"] += 1
    report["skipped_reasons"][reason] = report["skipped_reasons"].get(reason, 0) + 1
    if len(report["skipped_examples"]) < MAX_SKIPPED_EXAMPLES:
        report["skipped_examples"].append(f"{where}: {message}")


def random_cut(pairs, fraction, seed):
    """Splits `pairs` into (kept, held) with about `fraction` held, both in original order."""
    count = int(round(len(pairs) * fraction))
    if fraction > 0 and len(pairs) > 1:
        count = max(1, min(count, len(pairs) - 1))
    held = set(np.random.RandomState(seed).permutation(len(pairs))[:count].tolist())
    kept = [pair for index, pair in enumerate(pairs) if index not in held]
    return kept, [pair for index, pair in enumerate(pairs) if index in held]


def finish_splits(splits, reports, config, seed, provenance, info, unit="pairs", require_train=True):
    """Cuts missing test/validation splits from train, applies `data.limit`, fills the reports.

    Args:
        splits: dict. Split name -> list of examples; "train" is required,
            a missing "test" or "validation" is cut from it at random
            (`data.test_fraction`, `data.validation_fraction`, seeded).
        reports: dict. Split name -> report (missing ones are empty).
        config: DataConfig. For the fractions, `limit` and `source`.
        seed: int. Seeds the cuts and the random training subset of `data.limit`.
        provenance: str. Named in the error when train ends up empty.
        info: dict. Copied, with "available" (counts before `data.limit`) added.
        unit: str. What the examples are, in the error message.
        require_train: bool. Whether an empty train split is an error (false
            for test-only sources).

    Returns:
        (splits, reports, info), every split present.
    """
    if "test" not in splits:
        if config.test_fraction <= 0:
            raise DataError(f"data: source {config.source!r} has no test split; set data.test_fraction > 0")
        splits["train"], splits["test"] = random_cut(splits["train"], config.test_fraction, seed)
    if "validation" not in splits:
        if config.validation_fraction > 0:
            splits["train"], splits["validation"] = random_cut(splits["train"], config.validation_fraction, seed + 1)
        else:
            splits["validation"] = []
    if require_train and not splits["train"]:
        raise DataError(f"data: source {config.source!r} gave no usable training {unit} ({provenance})")
    info = dict(info, available={name: len(splits[name]) for name in SPLITS})
    for name in SPLITS:
        limit = getattr(config.limit, name, None)
        if limit is not None and len(splits[name]) > limit:
            if name == "train":
                chosen = np.sort(np.random.RandomState(seed + 2).permutation(len(splits[name]))[:limit])
                splits[name] = [splits[name][index] for index in chosen]
            else:
                splits[name] = splits[name][:limit]
    reports = {name: reports.get(name) or empty_report() for name in SPLITS}
    for name in SPLITS:
        reports[name]["examples"] = len(splits[name])
    return {name: splits[name] for name in SPLITS}, reports, info


def utf8_lines(path, report, on_error, fallback=None):
    """Yields ("path:line", text) of the non-blank lines of a UTF-8 file (BOM dropped).

    Lines are decoded one by one, so a line that is not UTF-8 is skipped and
    counted in `report` (or raises under on_error: fail) without losing the
    file; with a `fallback` encoding (e.g. "latin-1") it is decoded with that
    instead.
    """
    try:
        with open(path, "rb") as f:
            raw_lines = f.read().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}); check data.path")
    for line_number, raw in enumerate(raw_lines, 1):
        if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if fallback is None:
                count_skip(report, where, "not UTF-8", on_error)
                continue
            text = raw.decode(fallback)
        yield where, text
