"""Atomic writes: write to a temporary path beside the target, then rename.

An interrupted run (SIGKILL, disk full, Ctrl-C) therefore never leaves a
half-written file or directory under its final name; the previous complete
version, if any, stays in place until the new one is complete.

Example:

>>> import tempfile, os
>>> from toolkit.atomic import atomic_path, write_text
>>> root = tempfile.mkdtemp()
>>> write_text(os.path.join(root, "a.txt"), "hello")
>>> with atomic_path(os.path.join(root, "b.bin")) as tmp:
...     with open(tmp, "wb") as f:
...         _ = f.write(b"data")
>>> sorted(os.listdir(root))
['a.txt', 'b.bin']
"""

import contextlib
import json
import os
import shutil
import tempfile


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, directory=False):
    """Yields a temporary path; on success it replaces `path` in one rename.

    Args:
        path: str. The final file or directory path.
        directory: bool. Whether the artifact is a directory (the temporary
            path is then created empty and a previous directory is swapped
            out and removed only after the new one is in place).

    On any exception the temporary path is removed and `path` is untouched.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    if directory:
        tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", dir=parent)
        os.close(fd)
        os.remove(tmp)
        # Keep the suffix: Keras and ONNX pick formats by it.
        tmp = tmp + "-" + base
    try:
        yield tmp
        if directory:
            replace_directory(tmp, path)
        else:
            if os.path.isdir(tmp):
                raise OSError(f"expected a file at {tmp}, found a directory")
            os.replace(tmp, path)
        _fsync_dir(parent)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


def replace_directory(tmp, path):
    """Puts directory `tmp` at `path`; a previous `path` is removed only after."""
    if not os.path.exists(path):
        os.rename(tmp, path)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=os.path.dirname(path))
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover(root):
    """Cleans up after writes that a SIGKILL or power loss cut short, anywhere under `root`.

    A temporary `.NAME.tmp-*` is removed; a `.NAME.old-*` directory left by a
    `replace_directory` killed between its two renames is put back as NAME
    when NAME is missing, and removed otherwise. Returns the paths it changed.
    """
    changed = []
    for parent, directories, files in os.walk(root, topdown=True):
        for name in sorted(directories + files):
            if not name.startswith(".") or (".tmp-" not in name and ".old-" not in name):
                continue
            path = os.path.join(parent, name)
            base = name[1:].split(".tmp-" if ".tmp-" in name else ".old-")[0]
            if ".old-" in name and os.path.isdir(path) and not os.path.exists(os.path.join(parent, base)):
                os.rename(path, os.path.join(parent, base))
            elif os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            changed.append(path)
        directories[:] = [d for d in directories if os.path.isdir(os.path.join(parent, d))]
    return changed


def write_text(path, text):
    """Writes `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, data):
    """Writes `data` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def copy_file(source, path):
    """Copies `source` to `path` atomically."""
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)
