"""Speech recognition: a CTC acoustic model on log-mel features computed in the graph, or a Whisper preset.

Files: `config.py` (recipe sections), `task.py` (recipe, model, SpecAugment, WER/CER, serving signatures),
`decoding.py` (CTC best path, the in-graph transcriber), `predictor.py` (transcripts in every runtime, NumPy
features and decoding around ONNX Runtime, model-card text; no TensorFlow), `whisper.py` (Whisper fine-tuning
and decoding), `lexicon.py` (lexicon-constrained beam search), `sources.py` (audio folders, the espeak-ng
synthetic corpus, pocketsphinx clips), `speech_words.txt` (the corpus vocabulary). The log-mel front end is
`toolkit.data.audio_features`.
"""

from toolkit.config.tasks import TASKS, DataVerb, register_data_verb
from toolkit.model_io import register_saved_layer
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("speech_recognition", "toolkit.tasks.speech_recognition.task:SpeechRecognitionTask")
PREDICTORS.register_lazy("speech_recognition", "toolkit.tasks.speech_recognition.predictor:SpeechRecognitionPredictor")
register_saved_layer("toolkit>SpecAugment", "toolkit.tasks.audio.layers:spec_augment_class")
register_saved_layer("toolkit>HubWhisper", "toolkit.text_generation:hub_whisper_layer_class")
register_data_verb(DataVerb(
    name="synth-speech", help="speak a synthetic speech corpus with espeak-ng",
    description="Write the synthetic speech corpus of data.source: espeak as an LJSpeech-style folder (train/, "
                "validation/, test/ with metadata.csv and wavs/); read it back with data.source: folder. Test "
                "utterances use held-out voices only.",
    epilog="Example: toolkit data synth-speech --output speech_corpus --utterances 500",
    arguments=[
        (("--output",), {"help": "corpus directory (default: the espeak source's cache in $TOOLKIT_HOME/data)"}),
        (("--utterances",), {"type": int, "help": "training utterances (default 2000)"}),
        (("--validation",), {"type": int, "help": "validation utterances (default: a tenth of --utterances)"}),
        (("--test",), {"type": int, "help": "test utterances (default: a tenth of --utterances)"}),
        (("--voices",), {"help": "comma-separated train/validation voices, e.g. en-us,en-gb+f3"}),
        (("--test-voices",), {"help": "comma-separated held-out test voices, e.g. en-us-nyc+m4"}),
        (("--seed",), {"type": int, "default": 0, "help": "seed of texts, voices, speeds and pitches (default 0)"}),
        (("--sample-rate",), {"type": int, "default": 16000, "help": "sample rate of the WAVs (default 16000)"}),
    ],
    handler="toolkit.tasks.speech_recognition.commands:synth_speech",
))
