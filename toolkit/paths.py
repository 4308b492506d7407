"""Where the toolkit keeps its own files: weights store, data cache, fetched datasets.

Everything lives under one home directory, `$TOOLKIT_HOME` (default
`~/.toolkit`).

Example:

>>> import os
>>> from toolkit.paths import toolkit_home
>>> os.path.isabs(toolkit_home())
True
"""

import os


def toolkit_home():
    """Returns the toolkit's home directory ($TOOLKIT_HOME or ~/.toolkit)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("TOOLKIT_HOME", "~/.toolkit")))
