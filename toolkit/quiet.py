"""Importing TensorFlow without its start-up chatter, for the CLI and the Python API alike.

TensorFlow writes C++ log lines to file descriptor 2 while it loads and while
it looks for GPUs (`Could not find cuda drivers`, `failed call to cuInit`, and
at run time oneDNN notes such as `oneDNN supports DT_INT64 only on platforms
with AVX-512`), and Python-side warnings through its logger (`tf.function
retracing`, `Issue encountered when serializing table_initializer`). None of
them is something a user of the toolkit can act on: the import is done with fd
2 captured (shown only if the import fails), C++ logging is limited to fatal
messages and TensorFlow's Python logger to errors. `TOOLKIT_VERBOSE_TF=1`
leaves all of it as TensorFlow has it; a `TF_CPP_MIN_LOG_LEVEL` set by the user
is kept.

Example:

>>> from toolkit.quiet import import_tensorflow
>>> tf = import_tensorflow()  # doctest: +SKIP
"""

import os
import sys

_READY = []  # non-empty once TensorFlow was imported and quietened here


def import_tensorflow():
    """Imports TensorFlow once (quietly, see the module docstring) and returns the module."""
    if _READY:
        return sys.modules["tensorflow"]
    verbose = bool(os.environ.get("TOOLKIT_VERBOSE_TF"))
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not verbose:
        import tempfile

        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                _load()
            except BaseException:
                os.dup2(saved, 2)
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", "replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)
    else:
        _load()
    if not verbose:
        import logging

        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    _quiet_warnings()
    _READY.append(True)
    return sys.modules["tensorflow"]


def _load():
    import tensorflow as tf

    tf.config.list_physical_devices()  # the GPU probe logs here
    from toolkit.devices import split_cpus

    split_cpus()  # TOOLKIT_LOGICAL_CPUS: before anything initialises the devices


def _quiet_warnings():
    """Python warnings of TensorFlow, Keras and TFDS that describe the toolkit's own, deliberate choices."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*`shuffle=True` was passed.*")
    warnings.filterwarnings("ignore", message=r".*Your input ran out of data.*")
    warnings.filterwarnings("ignore", message=r".*weights for input shape.*", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*`input_shape` is undefined or non-square.*")
    warnings.filterwarnings("ignore", message=r".*np\.object.*", category=FutureWarning)
