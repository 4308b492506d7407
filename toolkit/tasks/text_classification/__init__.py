"""Text classification: raw strings -> labels (single- or multi-label), trained from scratch on a SentencePiece
vocabulary or fine-tuned from a KerasHub text classifier preset.

Files: `config.py` (the data section), `sources.py` (CSV/TSV, folder per class, JSON lines, TFDS, the Bible verse
genre and the Debian fortunes), `model.py` (Transformer, convnet, KerasHub presets), `metrics.py` (multi-label
metrics), `baseline.py` (scikit-learn TF-IDF + logistic regression in the same run), `task.py` (training side,
serving signatures), `predictor.py` (deployment: tokenisation with sentencepiece around ONNX Runtime and TFLite,
no TensorFlow). Text normalisation and SentencePiece learning are shared with translation (`toolkit.data.text`).
"""

from toolkit.config.tasks import TASKS
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("text_classification", "toolkit.tasks.text_classification.task:TextClassificationTask")
PREDICTORS.register_lazy("text_classification", "toolkit.tasks.text_classification.predictor:TextClassificationPredictor")
