"""Semantic segmentation: a U-Net or DeepLabV3+ decoder on a backbone's feature pyramid.

Files: `task.py` (model, loss, metrics, serving, evaluation), `decoders.py` (U-Net, DeepLabV3+), `tiles.py`
(sliding-window inference over large images), `sources.py` (mask folders, synthetic scenes, nuclei), `pipeline.py`
(tf.data of images and masks).
"""

from toolkit.config.tasks import TASKS

TASKS.register_lazy("segmentation", "toolkit.tasks.segmentation.task:SegmentationTask")
