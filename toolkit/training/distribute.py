"""tf.distribute strategies for `train.strategy`.

- `auto`: MirroredStrategy over all GPUs when there are two or more, else the
  default (one device);
- `one_device`: the first GPU, else the CPU;
- `mirrored`: MirroredStrategy over `train.devices` (default: all GPUs, else
  the CPU), synchronous data parallelism on one machine;
- `multi_worker`: MultiWorkerMirroredStrategy over the machines of the
  `TF_CONFIG` environment variable (each machine runs the same command; the
  chief is worker 0);
- `tpu`: TPUStrategy on `train.tpu` (a name or grpc:// address; empty: the
  local or Colab TPU).

The model is built and compiled in the strategy's scope; Keras splits each
global batch (`train.batch_size`) across the replicas, and BatchNormalization
layers are synchronised (statistics of the global batch, as on one device).
Evaluation and export run on a plain copy of the trained model.

`TOOLKIT_LOGICAL_CPUS=N` splits the CPU into N logical devices before
TensorFlow starts, so a mirrored recipe can be tried (and tested) on a machine
without GPUs: `train.devices: [/cpu:0, /cpu:1]`.

Example:

>>> strategy_summary(None)
'one device (default strategy)'
"""

import json
import os

from toolkit.devices import split_cpus
from toolkit.errors import RecipeError

_MADE = {}


def make_strategy(train_config):
    """The tf.distribute strategy of a recipe's `train` section, or None for the default one.

    Made once per process and settings: multi-worker and TPU strategies must be made before TensorFlow's
    context starts (`toolkit.train` calls this first)."""
    key = (train_config.strategy, tuple(train_config.devices or ()), train_config.tpu)
    if key not in _MADE:
        _MADE[key] = _make(train_config)
    return _MADE[key]


def _make(train_config):
    import tensorflow as tf

    name = train_config.strategy
    split_cpus()
    # Physical devices: listing logical ones would start the context, too early for multi_worker and tpu.
    gpus = [f"/gpu:{index}" for index, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    if name == "auto":
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else None
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    if name == "mirrored":
        devices = train_config.devices or gpus or ["/cpu:0"]
        known = {device.name.lower() for device in tf.config.list_logical_devices()}
        known |= {"/" + name.split("/device:")[-1].lower() for name in known}
        missing = [d for d in devices if d.lower() not in known]
        if missing:
            raise RecipeError(f"train.devices: {missing} not found (this machine has "
                              f"{sorted(d.name for d in tf.config.list_logical_devices())}); "
                              "give existing devices, or TOOLKIT_LOGICAL_CPUS=N to split the CPU")
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG", ""))
            workers = cluster["cluster"]["worker"]
            index = cluster["task"]["index"]
        except (ValueError, KeyError, TypeError):
            raise RecipeError("train.strategy multi_worker: set TF_CONFIG on every machine, e.g. "
                              '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                              '"index": 0}}')
        if not 0 <= int(index) < len(workers):
            raise RecipeError(f"TF_CONFIG: task index {index} is outside the {len(workers)} workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=train_config.tpu)
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise RecipeError(f"train.strategy tpu: no TPU at {train_config.tpu or 'the local address'} "
                          f"({str(error).splitlines()[0][:120]}); set train.tpu, or use another strategy")
    return tf.distribute.TPUStrategy(resolver)


def strategy_summary(strategy):
    """One line naming the strategy and its replicas."""
    if strategy is None:
        return "one device (default strategy)"
    name = type(strategy).__name__
    name = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(name, name)  # the class behind the alias
    return f"{name} with {strategy.num_replicas_in_sync} replicas"


def outside_strategy(model):
    """A copy of `model` with the same weights, built outside the strategy's scope (plain variables)."""
    from toolkit.backbones.build import rebuilt_copy

    copy = rebuilt_copy(model)
    synchronize_batch_norm(copy, False)
    return copy


def patch_multi_worker_fit(model, strategy):
    """Two fixes that let Keras 3's `fit` run under MultiWorkerMirroredStrategy (keras-team/keras#20585, open
    for Keras 3.7-3.15): `fit` reduces the first distributed batch across workers only to read its shapes (it
    fails; the local replica's batch has the same shapes), and averages scalar logs with `axis=0` (it fails; a
    scalar is averaged with `axis=None`). Both are in Keras' private TensorFlow trainer; a Keras version without
    those internals gets a one-line error instead of a traceback."""
    import tensorflow as tf
    from keras import tree

    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer

        is_multi_worker = tf_trainer._collective_all_reduce_multi_worker
        original = tf_trainer.reduce_per_replica
        model._maybe_symbolic_build  # noqa: B018 - present?
    except (ImportError, AttributeError):
        raise RecipeError("train.strategy multi_worker: this Keras version's fit internals differ from the ones "
                          "the toolkit patches (keras-team/keras#20585); use the pinned Keras (constraints.txt)")

    if not getattr(original, "_toolkit_patched", False):
        def reduce_per_replica(values, strategy, reduction):
            if is_multi_worker(strategy) and reduction in ("mean", "auto"):
                def mean(value):
                    if not isinstance(value, tf.distribute.DistributedValues):
                        return value
                    rank = strategy.experimental_local_results(value)[0].shape.rank
                    return strategy.reduce("MEAN", value, axis=0 if rank else None)

                return tree.map_structure(mean, values)
            return original(values, strategy, reduction)

        reduce_per_replica._toolkit_patched = True
        tf_trainer.reduce_per_replica = reduce_per_replica

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build


def synchronize_batch_norm(model, synchronized):
    """Makes BatchNormalization layers use the statistics of the global batch (all replicas) in training."""
    import keras

    def layers(parent):
        for layer in parent.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from layers(layer)

    for layer in layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized
