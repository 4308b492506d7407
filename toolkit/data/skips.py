"""How a run tells the user which examples its data sources left out, and why.

Sources count what they leave out per split, by reason (`skipped_reasons` in
the split reports of `metrics.json`). Some reasons mean the data is broken (an
unreadable file, a line without a tab); others are normal filtering (a test
rating of an item the training split never saw cannot be scored; two Bibles
that number a verse differently). A source registers the words for its own
reasons with `describe`; `skip_lines` turns the reports into one warning line
for broken data and one note for normal filtering, each reason in its own words.

Example:

>>> from toolkit.data.skips import describe, skip_lines
>>> describe("new_thing", "ratings of things not in the training split", expected=True)
>>> for line in skip_lines({"validation": {"skipped": 3, "skipped_reasons": {"new_thing": 2, "bad_line": 1}}}):
...     print(line)
warning: skipped examples that could not be used: 1 validation example (bad_line: 1); the first ones are listed under data in metrics.json
note: left out 2 validation examples (ratings of things not in the training split: 2)
"""

_WORDS = {}  # reason -> (words, expected)


def describe(reason, words, expected=False):
    """Registers how a skip reason is worded to the user.

    Args:
        reason: str. The key sources count examples under (`skipped_reasons`).
        words: str. What it means, as a plural noun phrase ("ratings of items not in the training split").
        expected: bool. True when leaving such examples out is normal filtering, not broken data.
    """
    _WORDS[reason] = (words, expected)


def _counts(part):
    """{reason: count} of one split report (image reports list files only: they are all unreadable or invalid)."""
    reasons = dict(part.get("skipped_reasons") or {})
    missing = int(part.get("skipped", 0)) - sum(reasons.values())
    if missing > 0:
        reasons["unreadable or invalid"] = reasons.get("unreadable or invalid", 0) + missing
    return reasons


def _plural(count, noun="example"):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def skip_lines(report):
    """The lines a run prints about left-out examples: a warning for unusable ones, a note for normal filtering.

    Args:
        report: dict. {split: split report} as in `metrics.json["data"]`.

    Returns:
        list of str (empty when nothing was left out).
    """
    broken, normal = [], []
    for split, part in report.items():
        if not isinstance(part, dict) or not part.get("skipped"):
            continue
        for group, wanted in ((broken, False), (normal, True)):
            reasons = {reason: count for reason, count in _counts(part).items()
                       if _WORDS.get(reason, (reason, False))[1] is wanted and count}
            if reasons:
                words = "; ".join(f"{_WORDS.get(reason, (reason, False))[0]}: {count}"
                                  for reason, count in sorted(reasons.items(), key=lambda item: -item[1]))
                group.append(f"{_plural(sum(reasons.values()), split + ' example')} ({words})")
    lines = []
    if broken:
        lines.append(f"warning: skipped examples that could not be used: {'; '.join(broken)}; the first ones are "
                     "listed under data in metrics.json")
    if normal:
        lines.append(f"note: left out {'; '.join(normal)}")
    return lines
