"""The toolkit's weights store, for machines without internet.

`toolkit weights import FILE --backbone NAME` checks that FILE fits the
architecture NAME and copies it into the store (`$TOOLKIT_HOME/weights`,
default `~/.toolkit/weights`). `model.weights: imagenet` then loads it from
the store before trying to download.

Example (shell):

    # on a connected machine
    wget https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5
    # on the air-gapped machine
    toolkit weights import weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5 --backbone mobilenet_v3_small
"""

import datetime
import hashlib
import os

from toolkit.atomic import copy_file, write_json
from toolkit.errors import BackboneError
from toolkit.paths import toolkit_home

WEIGHT_SUFFIXES = (".weights.h5", ".h5")


def store_dir():
    """Returns the weights store directory."""
    return os.path.join(toolkit_home(), "weights")


def stored_weights(backbone_name):
    """Returns the stored weights file of a backbone, or None."""
    for suffix in WEIGHT_SUFFIXES:
        path = os.path.join(store_dir(), backbone_name + suffix)
        if os.path.isfile(path):
            return path
    return None


def sha256(path):
    """Returns the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_weights(path, backbone_name):
    """Checks that a weights file fits a backbone and stores it.

    Args:
        path: str. A `.weights.h5` (Keras 3) or `.h5` (legacy, as downloaded
            by keras.applications) file of the backbone without its top.
        backbone_name: str. A registered backbone name.

    Returns:
        The path of the stored file.
    """
    from toolkit.backbones.build import build_registered, load_weights_file
    from toolkit.backbones.registry import BACKBONES

    spec = BACKBONES.get(backbone_name)
    if not os.path.isfile(path):
        raise BackboneError(f"weights file {path} does not exist")
    suffix = ".weights.h5" if path.endswith(".weights.h5") else ".h5" if path.endswith(".h5") else None
    if suffix is None:
        raise BackboneError(f"{path}: expected a .weights.h5 or .h5 weights file")
    size = max(spec.min_input_size, 64)
    model = build_registered(spec, (size, size, spec.channels or 3), weights=None)
    load_weights_file(model, path, spec.name)
    os.makedirs(store_dir(), exist_ok=True)
    for old_suffix in WEIGHT_SUFFIXES:
        old = os.path.join(store_dir(), backbone_name + old_suffix)
        if old_suffix != suffix and os.path.exists(old):
            os.remove(old)
    target = os.path.join(store_dir(), backbone_name + suffix)
    copy_file(path, target)
    write_json(
        os.path.join(store_dir(), backbone_name + ".json"),
        {
            "backbone": backbone_name,
            "source": os.path.abspath(path),
            "sha256": sha256(target),
            "imported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return target
