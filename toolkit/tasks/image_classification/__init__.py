"""Image classification on a pretrained backbone.

Files: `task.py` (model, loss, metrics, evaluation, serving signatures), `predictor.py` (ranked labels in every
runtime, verification outputs, model-card text; no TensorFlow); data sources and pipeline are shared with
segmentation in `toolkit.tasks.image`.
"""

from toolkit.config.tasks import TASKS
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("image_classification", "toolkit.tasks.image_classification.task:ImageClassificationTask")
PREDICTORS.register_lazy("image_classification", "toolkit.tasks.image_classification.predictor:ImageClassificationPredictor")
