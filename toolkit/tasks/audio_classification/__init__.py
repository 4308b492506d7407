"""Audio classification: clip -> label (commands, language, speaker, sound events) on log-mel windows.

Files: `config.py` (data sources, windows, noise, the offline sets), `sources.py` (class folders, CSV manifests,
TFDS, Asterisk language identification, spoken digits), `model.py` (CNN, attention-pooled GRU encoder, a speech
recognition run's encoder), `task.py` (recipe, windows in training and evaluation, clip metrics, serving
signatures), `predictor.py` (labels and window scores in every runtime, NumPy windows and features around ONNX
Runtime and TFLite; no TensorFlow). The log-mel front end and SpecAugment are shared with speech recognition
(`toolkit.data.audio_features`, `toolkit.tasks.audio`).
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("audio_classification", "toolkit.tasks.audio_classification.task:AudioClassificationTask")
PREDICTORS.register_lazy("audio_classification",
                         "toolkit.tasks.audio_classification.predictor:AudioClassificationPredictor")
register_saved_layer("toolkit>SpecAugment", "toolkit.tasks.audio.layers:spec_augment_class")
register_saved_layer("toolkit>AttentionPooling", "toolkit.tasks.audio_classification.model:attention_pooling_class")
