"""Progress of long steps (evaluation, decoding, export, verification) for people watching a terminal and for logs.

On a terminal a `Progress` redraws one bar line (counts, share, elapsed time and
an estimate of the time left) and ends it with a newline; anywhere else (a
redirected log, a notebook, CI) it writes a plain line at most every 30 s and a
last line with the total time, so logs hold no carriage returns or escape codes.
Where the lines go is set once per command with `reporting(log, bar=...)`; the
default is `print`, without a bar.

Example:

>>> from toolkit.progress import Progress, reporting
>>> lines = []
>>> with reporting(lines.append, bar=False, interval=0):
...     with Progress("decoding test", total=3, unit="sentences") as progress:
...         for _ in range(3):
...             progress.update(1)
>>> lines[-1].startswith("decoding test: 3 sentences in ")
True
"""

import contextlib
import sys
import time

_STATE = {"log": print, "bar": None, "interval": 30.0}  # bar None: a bar when stdout is a terminal


@contextlib.contextmanager
def reporting(log, bar=None, interval=30.0):
    """Sends progress lines to `log` (callable(str)) inside the block; `bar` draws a live bar on stdout instead
    (default: when stdout is a terminal); `interval`: seconds between plain lines."""
    saved = dict(_STATE)
    _STATE.update(log=log, bar=bar, interval=interval)
    try:
        yield
    finally:
        _STATE.clear()
        _STATE.update(saved)


def log(line):
    """Writes one line where progress goes (the command's log)."""
    _STATE["log"](line)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def on_terminal():
    """Whether progress is drawn as a live bar (stdout is a terminal, unless `reporting` said otherwise)."""
    return _is_terminal(sys.stdout) if _STATE["bar"] is None else bool(_STATE["bar"])


def live_output():
    """Whether a live progress bar (Keras's, with carriage returns) shows well: a terminal or a notebook."""
    return on_terminal() or "ipykernel" in sys.modules


def duration(seconds):
    """'42 s', '3 min 05 s' or '1 h 02 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts the work of one long step.

    Args:
        label: str. What is being done, e.g. "decoding test".
        total: int or None. Units of work in all (None: unknown; no share or time left is shown).
        unit: str. What is counted, e.g. "sentences".
    """

    def __init__(self, label, total=None, unit=""):
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.started = time.perf_counter()
        self._shown = self.started
        self._drawn = False
        self._printed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.close(failed=kind is not None)

    def _counts(self):
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.done}{unit}"
        return f"{self.done}/{self.total}{unit} ({self.done / self.total:.0%})"

    def _left(self, elapsed):
        if not self.total or not self.done or self.done >= self.total:
            return ""
        return f", about {duration(elapsed / self.done * (self.total - self.done))} left"

    def update(self, count=1):
        """Adds `count` units of finished work."""
        self.done += count
        now = time.perf_counter()
        elapsed = now - self.started
        if on_terminal():
            if now - self._shown >= 0.2 or not self._drawn:
                width = 24
                filled = int(width * min(self.done / self.total, 1.0)) if self.total else 0
                bar = f"[{'#' * filled}{'.' * (width - filled)}] " if self.total else ""
                sys.stdout.write(f"\r{self.label}: {bar}{self._counts()}, {duration(elapsed)}{self._left(elapsed)}"
                                 "\033[K")
                sys.stdout.flush()
                self._shown, self._drawn = now, True
        elif now - self._shown >= _STATE["interval"]:
            log(f"{self.label}: {self._counts()}, {duration(elapsed)}{self._left(elapsed)}")
            self._shown, self._printed = now, True

    def close(self, failed=False):
        """Ends the bar; the last line says how long the step took (when it was long enough to report)."""
        elapsed = time.perf_counter() - self.started
        if self._drawn:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
        if failed:
            return
        if self._drawn or self._printed or elapsed >= 5.0 or _STATE["interval"] == 0:
            unit = f" {self.unit}" if self.unit else ""
            log(f"{self.label}: {self.done}{unit} in {duration(elapsed)}")
