"""Data sources and per-modality tf.data pipelines."""
