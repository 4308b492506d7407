"""The toolkit's data cache (`$TOOLKIT_HOME/data`): what is in it, how big, and removing entries.

Sources keep what they fetch or build once there: the stardist sample image,
MovieLens from the recbole wheel, the aligned Bible TSV, one synthetic speech
corpus per espeak setting (about 225 MB each), ... An entry is a folder of
`data/`; a folder that holds only folders (`speech/`) lists each of them as
its own entry (`speech/espeak-1a2b3c4d5e6f`). Everything here is rebuilt or
fetched again on the next run that needs it.

Example:

>>> from toolkit.data.cache import cache_entries
>>> entries = cache_entries()  # doctest: +SKIP
>>> [(entry.name, entry.size) for entry in entries]  # doctest: +SKIP
[('bible', 8265018), ('movielens-100k', 2068838), ('speech/espeak-1a2b3c4d5e6f', 236912640)]
"""

import dataclasses
import datetime
import json
import os
import shutil

from toolkit.errors import DataError


@dataclasses.dataclass
class CacheEntry:
    """One entry of the data cache.

    Args:
        name: str. Its path under the cache, e.g. "speech/espeak-1a2b3c4d5e6f".
        path: str. Its absolute path.
        size: int. Bytes of all its files.
        modified: float. When a file in it last changed (seconds since the epoch).
        about: str. What it is (its SOURCE.txt or corpus.json), or "".
    """

    name: str
    path: str
    size: int
    modified: float
    about: str


def cache_dir():
    """`$TOOLKIT_HOME/data`."""
    from toolkit.paths import toolkit_home

    return os.path.join(toolkit_home(), "data")


def _about(path):
    source = os.path.join(path, "SOURCE.txt")
    if os.path.isfile(source):
        with open(source, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    corpus = os.path.join(path, "corpus.json")
    if os.path.isfile(corpus):
        try:
            with open(corpus, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return "an unfinished corpus"
        counts = meta.get("utterances", {})
        minutes = sum(meta.get("audio_seconds", {}).values()) / 60
        return (f"{meta.get('generator', 'synthetic')} corpus: {sum(counts.values())} utterances, {minutes:.0f} min "
                f"at {meta.get('sample_rate', '?')} Hz")
    return ""


def _entry(name, path):
    size, modified = 0, os.path.getmtime(path)
    for root, _, files in os.walk(path):
        for file in files:
            try:
                stat = os.lstat(os.path.join(root, file))
            except OSError:
                continue
            size += stat.st_size
            modified = max(modified, stat.st_mtime)
    return CacheEntry(name, path, size, modified, _about(path))


def cache_entries():
    """The entries of the data cache, sorted by name (an empty list when there is no cache)."""
    root = cache_dir()
    if not os.path.isdir(root):
        return []
    entries = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        children = sorted(os.listdir(path))
        if children and all(os.path.isdir(os.path.join(path, child)) for child in children):
            entries += [_entry(f"{name}/{child}", os.path.join(path, child)) for child in children]
        else:
            entries.append(_entry(name, path))
    return entries


def remove_entries(names):
    """Removes cache entries by name (a folder name also removes every entry under it); returns the removed
    entries. Unknown names raise DataError before anything is removed."""
    entries = cache_entries()
    chosen = []
    for name in names:
        name = name.strip("/")
        matched = [entry for entry in entries if entry.name == name or entry.name.startswith(name + "/")]
        if not matched:
            from toolkit.registry import did_you_mean

            known = sorted({entry.name for entry in entries} | {entry.name.split("/")[0] for entry in entries})
            raise DataError(f"data clean: no cache entry {name!r}{did_you_mean(name, known)} in {cache_dir()}; "
                            "see toolkit data list")
        chosen += [entry for entry in matched if entry not in chosen]
    for entry in chosen:
        shutil.rmtree(entry.path)
    return chosen


def human_size(size):
    """Bytes as '225.9 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000.0
    return f"{size:.1f} TB"


def format_entries(entries):
    """The table `toolkit data list` prints."""
    if not entries:
        return f"the data cache {cache_dir()} is empty"
    lines = [f"data cache: {cache_dir()}", f"  {'entry':<30} {'size':>10}  {'last changed':<16}  what"]
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry.modified).strftime("%Y-%m-%d %H:%M")
        about = entry.about if len(entry.about) <= 70 else entry.about[:69] + "…"
        lines.append(f"  {entry.name:<30} {human_size(entry.size):>10}  {when:<16}  {about}")
    lines.append(f"  {'total':<30} {human_size(sum(entry.size for entry in entries)):>10}")
    return "\n".join(lines)
