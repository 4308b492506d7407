"""Input files checked before a byte is read: a regular file (never a FIFO, a device or a socket, which can block
or never end), at most `MAX_INPUT_BYTES`, named without NUL or control characters. `toolkit predict`, the
image, audio and text readers and the `.keras` loader call `check_input_file` first, so `/dev/zero`, a FIFO
or a 3 GB sparse file is a one-line error in milliseconds instead of a process that grows until it is killed.

Example:

>>> check_input_file("/dev/zero")
Traceback (most recent call last):
...
toolkit.errors.DataError: /dev/zero: not a regular file (a character device); give the path of a file
"""

import os
import stat

from toolkit.errors import DataError

MAX_INPUT_BYTES = 1 << 30  # 1 GiB: far above any image, clip or text file a model takes in one piece

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def check_name(path, error=DataError):
    """Refuses a path holding a NUL or another control character (one line, the name escaped)."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise error(f"{text!r}: the name holds a NUL or control character; rename it")
    return text


def check_input_file(path, max_bytes=MAX_INPUT_BYTES, error=DataError, what="file"):
    """Checks `path` with one `stat` (nothing is opened); returns its size in bytes.

    Args:
        path: str or os.PathLike.
        max_bytes: int. Larger files are refused.
        error: the exception class raised (a ToolkitError subclass).
        what: str. What the file is, in the "no such ..." message.

    Raises:
        `error` naming the path: missing, not a regular file, larger than `max_bytes`, or a name with control
        characters.
    """
    name = check_name(path, error)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise error(f"{name}: no such {what}")
    except OSError as problem:
        raise error(f"{name}: cannot read it ({problem.strerror})")
    if not stat.S_ISREG(info.st_mode):
        kind = next((label for test, label in _KINDS if test(info.st_mode)), "not a plain file")
        raise error(f"{name}: not a regular file ({kind}); give the path of a file")
    if info.st_size > max_bytes:
        raise error(f"{name}: {info.st_size / (1 << 20):,.0f} MB is more than the {max_bytes / (1 << 20):,.0f} MB "
                    "one input may be; give a smaller file")
    return info.st_size
