"""The last step of every tf.data pipeline of the toolkit: prefetching, without tf.data's autotuning thread.

That thread re-optimises a pipeline on a timer whose period doubles up to a minute, and a finished iterator's
destructor waits for the current period to end. Keras makes a new training and validation iterator every epoch,
so each epoch boundary stood idle for up to the iterator's own lifetime (26-37 s of zero CPU in 45-60 s
Fashion-MNIST epochs, seen with gdb on TensorFlow 2.21); an evaluation or prediction pass stood idle once at its
end the same way. AUTOTUNE values still work without it: parallel maps use every core and prefetch buffers grow
on demand.
"""


def without_autotune_thread(dataset):
    """`dataset` without tf.data's autotuning thread (None stays None)."""
    if dataset is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def prefetched(dataset, buffer_size=None):
    """`dataset.prefetch(buffer_size)` (default AUTOTUNE) without the autotuning thread: how every task's input
    pipeline, and every evaluation loop over one, ends."""
    import tensorflow as tf

    return without_autotune_thread(dataset.prefetch(tf.data.AUTOTUNE if buffer_size is None else buffer_size))
