"""Recommendation: two-tower retrieval and rating models over user and item towers.

Files: `config.py` (recipe sections), `task.py` (towers, losses, ranking/rating metrics, top-k serving), `sources.py`
(MovieLens, interaction CSV files, TFDS).
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer

TASKS.register_lazy("recommendation", "toolkit.tasks.recommendation.task:RecommendationTask")
register_saved_layer("toolkit>InBatchLogits", "toolkit.tasks.recommendation.task:in_batch_logits_class")
