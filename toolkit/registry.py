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

from toolkit.errors import ToolkitError, close_matches, did_you_mean  # noqa: F401 - importable from here too


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

    def register_lazy(self, name, reference):
        """Registers the object a "package.module:attribute" reference names, imported on first `get`.

        A registry low in the import layers can so hold objects of modules above it without importing them
        (the task registry names every task, and `toolkit --help` imports none)."""
        return self.register(name, _Lazy(reference))

    def get(self, name):
        """Returns the object registered as `name`, or raises a clear error."""
        if name in self._entries:
            entry = self._entries[name]
            if isinstance(entry, _Lazy):
                entry = self._entries[name] = entry.resolve()
            return entry
        raise self.error_class(
            f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} "
            f"(registered: {', '.join(sorted(self._entries))})"
        )

    def names(self):
        """Returns the registered names, sorted."""
        return sorted(self._entries)

    def items(self):
        """Returns (name, value) pairs, sorted by name (lazy entries are imported)."""
        return [(name, self.get(name)) for name in self.names()]

    def __contains__(self, name):
        return name in self._entries

    def __len__(self):
        return len(self._entries)


class _Lazy:
    """A registry entry not imported yet: "package.module:attribute"."""

    def __init__(self, reference):
        self.reference = reference

    def resolve(self):
        return resolve(self.reference)


def resolve(reference):
    """The object a "package.module:attribute" reference names (its module imported on first use)."""
    import importlib

    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
