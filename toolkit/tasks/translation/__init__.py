"""Machine translation: an encoder-decoder Transformer (or a KerasHub BART preset) with SentencePiece tokenizers.

Files: `config.py` (recipe sections), `task.py` (model, training data, tokenizers, BLEU/chrF, serving signatures),
`predictor.py` (translations in every runtime, tokenisation and decoding around ONNX Runtime in NumPy, model-card
text; no TensorFlow), `sources.py` (TSV files, the Bible pair, TFDS). The cached seq2seq decoding it shares with
the Whisper recogniser is in `toolkit.text_generation`.
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("translation", "toolkit.tasks.translation.task:TranslationTask")
PREDICTORS.register_lazy("translation", "toolkit.tasks.translation.predictor:TranslationPredictor")
register_saved_layer("toolkit>HubSeq2Seq", "toolkit.text_generation:hub_seq2seq_layer_class")
