"""Machine translation: an encoder-decoder Transformer (or a KerasHub BART preset) with SentencePiece tokenizers.

Files: `config.py` (recipe sections), `task.py` (model, training data, decoding, BLEU/chrF, serving, ONNX
decoding), `sources.py` (TSV files, the Bible pair, TFDS). The cached seq2seq decoding it shares with the Whisper
recogniser is in `toolkit.text_generation`.
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer

TASKS.register_lazy("translation", "toolkit.tasks.translation.task:TranslationTask")
register_saved_layer("toolkit>HubSeq2Seq", "toolkit.text_generation:hub_seq2seq_layer_class")
