"""Image classification on a pretrained backbone.

Files: `task.py` (model, loss, metrics, serving, evaluation); data sources and pipeline are shared with
segmentation in `toolkit.tasks.image`.
"""

from toolkit.config.tasks import TASKS

TASKS.register_lazy("image_classification", "toolkit.tasks.image_classification.task:ImageClassificationTask")
