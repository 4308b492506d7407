"""What the image tasks share (not a task itself): the image task base class (`task.py`: data source, model
stem, verification samples, reading user images), the image data sources (`sources.py`: folders, Fashion-MNIST,
TFDS, TFRecords) and the tf.data pipeline (`pipeline.py`: decoding, resizing, augmentation)."""
