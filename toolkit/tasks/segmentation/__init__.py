"""Semantic segmentation: a U-Net or DeepLabV3+ decoder on a backbone's feature pyramid.

Files: `task.py` (recipe, model, loss, evaluation, serving signatures), `predictor.py` (masks, areas and overlays in
every runtime, IoU, model-card text; no TensorFlow), `decoders.py` (U-Net, DeepLabV3+), `tiles.py` (sliding-window
inference over large images), `sources.py` (mask folders, synthetic scenes, nuclei), `pipeline.py` (tf.data of
images and masks).
"""

from toolkit.config.tasks import TASKS
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("segmentation", "toolkit.tasks.segmentation.task:SegmentationTask")
PREDICTORS.register_lazy("segmentation", "toolkit.tasks.segmentation.predictor:SegmentationPredictor")
