"""Recommendation: two-tower retrieval and rating models over user and item towers.

Files: `config.py` (recipe sections), `task.py` (towers, losses, ranking/rating metrics, top-k serving signatures),
`predictor.py` (top-k lists and scores in every runtime, the ONNX brute-force ranking, model-card text; no
TensorFlow), `sources.py` (MovieLens, interaction CSV files, TFDS).
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("recommendation", "toolkit.tasks.recommendation.task:RecommendationTask")
PREDICTORS.register_lazy("recommendation", "toolkit.tasks.recommendation.predictor:RecommendationPredictor")
register_saved_layer("toolkit>InBatchLogits", "toolkit.tasks.recommendation.task:in_batch_logits_class")
