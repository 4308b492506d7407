"""Device set-up that must happen before TensorFlow initialises its devices.

`TOOLKIT_LOGICAL_CPUS=N` splits the CPU into N logical devices, so that
multi-device code (MirroredStrategy) can be tried on one machine. The CLI and
the Python API call `split_cpus()` right after importing TensorFlow.
"""

import os

from toolkit.errors import RecipeError


def split_cpus():
    """Splits the CPU into TOOLKIT_LOGICAL_CPUS logical devices (once, before TensorFlow initialises devices)."""
    count = os.environ.get("TOOLKIT_LOGICAL_CPUS")
    if not count:
        return
    import tensorflow as tf

    try:
        cpus = tf.config.list_physical_devices("CPU")
        configured = tf.config.get_logical_device_configuration(cpus[0]) or []
        if len(configured) != int(count) and int(count) > 1:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(int(count))])
    except (RuntimeError, ValueError) as error:
        raise RecipeError(f"TOOLKIT_LOGICAL_CPUS={count}: cannot split the CPU ({error}); it must be set before "
                          "TensorFlow runs anything, and be a whole number")
