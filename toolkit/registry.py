"""One generic name -> object registry, used for tasks, backbones, data
sources and export formats.

Registering a name twice is an error, and looking up an unknown name raises
an error that lists the closest registered names.

Example:

>>> from toolkit.registry import Registry
>>> optimizers = Registry("optimizer")
>>> @optimizers.register("adam")
... def make_adam():
...     return "adam"
>>> optimizers.get("adam")()
'adam'
>>> optimizers.get("adma")
Traceback (most recent call last):
...
toolkit.errors.ToolkitError: unknown optimizer 'adma'; did you mean 'adam'? (registered: adam)
"""

import difflib

from toolkit.errors import ToolkitError


def close_matches(name, candidates, count=3):
    """Returns up to `count` names from `candidates` that look like `name`.

    Args:
        name: str. The name that was given.
        candidates: iterable of str. The valid names.
        count: int. How many matches at most.
    """
    return difflib.get_close_matches(str(name), list(candidates), n=count, cutoff=0.5)


def did_you_mean(name, candidates):
    """Returns '; did you mean 'x'?' or '' when nothing is close."""
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


class Registry:
    """A mapping of unique names to objects, with helpful lookup errors.

    Args:
        kind: str. What the registry holds, used in error messages
            (e.g. `"backbone"`).
        error_class: type. The `ToolkitError` subclass raised on lookup
            errors.
    """

    def __init__(self, kind, error_class=ToolkitError):
        self.kind = kind
        self.error_class = error_class
        self._entries = {}

    def register(self, name, value=None):
        """Registers `value` under `name`; usable as a decorator."""
        if value is None:
            return lambda obj: self.register(name, obj)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = value
        return value

    def get(self, name):
        """Returns the object registered as `name`, or raises a clear error."""
        if name in self._entries:
            return self._entries[name]
        raise self.error_class(
            f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} "
            f"(registered: {', '.join(sorted(self._entries))})"
        )

    def names(self):
        """Returns the registered names, sorted."""
        return sorted(self._entries)

    def items(self):
        """Returns (name, value) pairs, sorted by name."""
        return sorted(self._entries.items())

    def __contains__(self, name):
        return name in self._entries

    def __len__(self):
        return len(self._entries)
