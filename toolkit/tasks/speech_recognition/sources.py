"""Speech recognition data sources: (waveform, transcript) utterances per split.

- `folder`: an LJSpeech-style directory: `metadata.csv` of `id|text` lines
  (or `id|text|normalized_text`: the last column is used) with the audio in
  `wavs/<id>.wav` or next to metadata.csv (any sample rate; FLAC/OGG/MP3
  with `soundfile`); optionally `train/`, `validation/` (`val/`, `dev/`)
  and `test/` subfolders, each with its own metadata.csv. An optional
  `speakers.csv` of `id|speaker` lines beside a metadata.csv names the
  speakers. Missing splits are cut from train (`data.test_fraction`,
  `data.validation_fraction`, seeded).
- `pocketsphinx`: real human speech, the 10 test clips of the Debian package
  pocketsphinx-testdata (5 "cards" commands, 5 LibriVox sentences of Sense
  and Sensibility), all as the test split: an out-of-domain test set, with
  empty train and validation splits.
- `asterisk`: real human speech, the English Asterisk PBX prompts (Debian
  packages asterisk-core-sounds-en-wav and asterisk-core-sounds-en,
  CC-BY-SA-3.0; one professional speaker, en_US_f_Allison, 8 kHz telephone
  prompts; `toolkit data fetch asterisk`, read by `toolkit.data.asterisk`)
  with their transcripts, split 80/10/10 by a hash of the prompt name (the
  same split whatever the seed and whichever other prompts exist). Tones and
  sounds (`[ascending tones]`, `<beep>`) are dropped; notes `(...)` and
  symbol annotations `[@]` are removed from transcripts, `*` and `#` read
  "star" and "pound", and numbers are spelled out in English words
  (`toolkit.tasks.speech_recognition.spoken_numbers`: cardinals, decimals,
  ordinals). `data.path` may name another unpacked root (every package
  folder of `toolkit.data.asterisk.PACKAGES` present, or fetched there when
  `data.download`).
- `espeak`: a synthetic corpus spoken by espeak-ng with many voices, speeds
  and pitches (`data.espeak`), generated once into an LJSpeech-style folder
  cache and read back with the folder reader. The test split is spoken only
  by `data.espeak.test_voices`, which train and validation never use.
  Measured on 2 CPU cores with 2 espeak-ng processes: about 175
  utterances/s on an idle machine, 85/s with another job on one core (1
  process: 80/s). The default corpus (2,400 utterances, 71 min of audio,
  1.8 s each on average, 135 MB of 16 kHz WAV) took 28 s to generate;
  reading it back from the cache takes 1 s.
- `tfds`: a TFDS dataset with an audio feature and a text (or class label)
  feature (`data.tfds_name`: librispeech, speech_commands, ...), read into
  memory; `data.limit` caps how many examples are read.

Every transcript is normalised (`normalize_transcript`). An utterance with
an empty transcript, characters outside the vocabulary, unreadable or
missing audio, or audio longer than `data.max_seconds` is skipped and
counted per split (`SpeechData.report`), or fails with the file named under
`data.on_error: fail`. Nothing here imports TensorFlow at module level.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from toolkit.data.audio_io import write_wav
>>> from toolkit.tasks.speech_recognition.sources import SPEECH_SOURCES
>>> from toolkit.tasks.speech_recognition.config import DEFAULT_VOCABULARY, SpeechDataConfig
>>> SPEECH_SOURCES.names()
['asterisk', 'datasets', 'espeak', 'folder', 'pocketsphinx', 'tfds', 'tfrecord']
>>> root = tempfile.mkdtemp()
>>> os.mkdir(os.path.join(root, "wavs"))
>>> words = "zero one two three four five six seven eight nine".split()
>>> for index in range(10):
...     write_wav(os.path.join(root, "wavs", f"clip{index}.wav"), np.zeros(8000), 8000)
>>> lines = [f"clip{index}|Clip {index}.|Clip number {words[index]}." for index in range(10)] + ["clip0|Café 3"]
>>> with open(os.path.join(root, "metadata.csv"), "w", encoding="utf-8") as f:
...     _ = f.write("\\n".join(lines) + "\\n")
>>> config = SpeechDataConfig(source="folder", path=root, test_fraction=0.2, validation_fraction=0.25)
>>> data = SPEECH_SOURCES.get("folder")(config, seed=0, vocabulary=DEFAULT_VOCABULARY)
>>> {name: len(utterances) for name, utterances in data.splits.items()}
{'train': 6, 'validation': 2, 'test': 2}
>>> data.splits["train"][0].text, data.splits["train"][0].audio.shape
('clip number zero', (16000,))
>>> data.report["train"]["skipped_examples"][0].endswith("characters outside the vocabulary: '3', 'é'")
True
"""

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import unicodedata

import numpy as np

from toolkit.data import user_data
from toolkit.data.audio_io import UnreadableAudio, load_audio, read_audio, resample, write_wav
from toolkit.data.skips import describe
from toolkit.data.splits import SPLITS, count_skip, empty_report, finish_splits, utf8_lines
from toolkit.errors import DataError
from toolkit.registry import Registry

describe("empty transcript", "utterances with an empty transcript")
describe("characters outside the vocabulary", "transcripts with characters outside the vocabulary")
describe("unreadable audio", "unreadable audio files")
describe("longer than max_seconds", "utterances longer than data.max_seconds", expected=True)
describe("no | separator", "metadata lines without a | separator")
describe("bad id", "metadata lines with an unusable id")
describe("class label without words", "clips labelled with a class, not words, such as silence", expected=True)

SPEECH_SOURCES = Registry("speech data source", DataError)
SPEECH_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)


@SPEECH_SOURCES.register("tfrecord")
def load_tfrecord(config, seed, vocabulary):
    """Sharded TFRecords written by `toolkit data to-tfrecord` (`data.path`: their directory)."""
    return load_speech_tfrecords(config, seed, vocabulary)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val", "dev"), "test": ("test",)}
POCKETSPHINX_PATH = "/usr/share/pocketsphinx/test/data"
POCKETSPHINX_SETS = (("cards", "cards.transcription"), ("librivox", "transcription"))
WORDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speech_words.txt")
CORPUS_FORMAT = 1  # bump when generation changes: cached corpora are regenerated

# Apostrophe look-alikes written as "'"; punctuation (Unicode P*) becomes a space,
# except these, which carry meaning ("50%", "r&b") and are left to the vocabulary check.
_APOSTROPHES = dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u02b9\u2032\u00b4\u0060\uff07"), "'")
_KEPT_PUNCTUATION = set("'&%#@*/\\\u00a7\u00b6\u2020\u2021")


@dataclasses.dataclass
class Utterance:
    """One spoken example.

    Args:
        id: str. The example's name in its source (file stem, TFDS id).
        audio: np.ndarray. float32 mono samples in [-1, 1] at `data.sample_rate`.
        text: str. The normalised transcript (`normalize_transcript`).
        speaker: str. Speaker or voice ("" when unknown).
    """

    id: str
    audio: np.ndarray = dataclasses.field(repr=False)
    text: str
    speaker: str = ""


@dataclasses.dataclass
class SpeechData:
    """What a speech source returns.

    Args:
        splits: dict. "train", "validation", "test" -> list of `Utterance`
            (validation may be empty; pocketsphinx has only test).
        report: dict. Per split: {"examples", "skipped", "skipped_reasons":
            {reason: count}, "skipped_examples": up to 10 "file: reason" strings}.
        provenance: str. One line: where the data came from (model card).
        info: dict. Source details (voices, cache, counts before `data.limit`).
    """

    splits: dict
    report: dict
    provenance: str
    info: dict = dataclasses.field(default_factory=dict)


def normalize_transcript(text):
    """The transcript as the recognizer writes it: lowercase words, apostrophes, single spaces.

    Unicode NFC, lowercase, curly apostrophes as `'`, punctuation
    (`.,;:!?"()[]-` and the other Unicode punctuation except `& % # @ * /`)
    as spaces, whitespace runs as one space, stripped. Digits and letters
    such as `é` stay: the vocabulary check decides about them.

    Args:
        text: str.

    Example:

    >>> normalize_transcript("  \\u201cDon\\u2019t   STOP!\\u201d -- she said (twice). ")
    "don't stop she said twice"
    """
    text = unicodedata.normalize("NFC", text).lower().translate(_APOSTROPHES)
    text = "".join(" " if unicodedata.category(char).startswith("P") and char not in _KEPT_PUNCTUATION else char
                   for char in text)
    return " ".join(text.split())


def transcript_problem(text, vocabulary):
    """(reason, detail, fix) when a normalised transcript cannot be used, else None.

    Example:

    >>> transcript_problem("room 101", "abcdefghijklmnopqrstuvwxyz' ")[:2]
    ('characters outside the vocabulary', "'0', '1'")
    """
    if not text:
        return "empty transcript", None, "fix the transcript"
    outside = sorted(set(text) - set(vocabulary))
    if outside:
        return ("characters outside the vocabulary", ", ".join(map(repr, outside)),
                "spell them out in the transcript or add them to the vocabulary")
    return None


def make_utterance(uid, text, speaker, config, vocabulary, report, where, audio_path=None, audio=None, rate=None):
    """Checks one example and returns its Utterance, or None after counting why it was skipped.

    Args:
        uid: str. Example id.
        text: str. Raw transcript (normalised here).
        speaker: str. Speaker name.
        config: SpeechDataConfig. For sample_rate, max_seconds and on_error.
        vocabulary: str. Allowed transcript characters.
        report: dict. The split's report.
        where: str. Where the transcript is (file:line), for transcript problems.
        audio_path: optional str. The audio file, read and resampled here.
        audio: optional array. Samples already in memory (with `rate`).
        rate: optional int. Their sample rate.
    """
    text = normalize_transcript(text)
    problem = transcript_problem(text, vocabulary)
    if problem:
        reason, detail, fix = problem
        count_skip(report, where, reason, config.on_error, detail=detail, fix=fix)
        return None
    if audio_path is not None:
        try:
            audio = load_audio(audio_path, config.sample_rate)
        except UnreadableAudio as error:
            count_skip(report, audio_path, "unreadable audio", config.on_error, detail=error.detail,
                       fix="fix or remove the file")
            return None
        where = audio_path
    else:
        audio = resample(audio, rate, config.sample_rate)
        if audio.size == 0:
            count_skip(report, where, "unreadable audio", config.on_error, detail="no audio samples",
                       fix="fix or remove the example")
            return None
    seconds = audio.size / config.sample_rate
    if seconds > config.max_seconds:
        count_skip(report, where, "longer than max_seconds", config.on_error,
                   detail=f"{seconds:.1f} s > {config.max_seconds:g} s", fix="raise data.max_seconds")
        return None
    return Utterance(str(uid), audio, text, str(speaker))


def finish_speech(splits, reports, config, seed, provenance, info, require_train=True):
    """`finish_splits` for utterances: cuts missing splits from train, applies `data.limit`."""
    splits, reports, info = finish_splits(splits, reports, config, seed, provenance, info, unit="utterances",
                                          require_train=require_train)
    info["seconds"] = {name: round(sum(u.audio.size for u in splits[name]) / config.sample_rate, 1)
                       for name in SPLITS}
    return SpeechData(splits, reports, provenance, info)


def _no_usable(source, reports, split="train"):
    report = reports[split]
    reasons = ", ".join(f"{reason}: {count}" for reason, count in report["skipped_reasons"].items())
    return DataError(f"{source}: no usable utterance ({report['skipped']} skipped{': ' + reasons if reasons else ''}); "
                     "check the transcripts and audio files, or data.path")


# ------------------------------------------------------------------------ folder


def _read_pipe_file(path, on_error, report, minimum_columns=2):
    """Yields (line number, columns) of a UTF-8 `a|b|...` file; bad lines are counted."""
    for where, line in utf8_lines(path, report, on_error):
        line_number = int(where.rsplit(":", 1)[1])
        columns = [column.strip() for column in line.split("|")]
        if len(columns) < minimum_columns:
            count_skip(report, where, "no | separator", on_error, fix="write lines as id|text")
            continue
        yield line_number, columns


def _is_header(columns):
    return columns[0].lower() in ("id", "file", "filename", "file_name", "path") and columns[1].lower() in (
        "text", "transcript", "transcription", "sentence", "speaker")


def _audio_path(directory, uid):
    """The audio file of `uid` (wavs/<id>.wav, <id>.wav, other suffixes), or (None, expected path)."""
    names = [uid] if uid.lower().endswith(AUDIO_SUFFIXES) else [uid + suffix for suffix in AUDIO_SUFFIXES]
    candidates = [os.path.join(directory, folder, name) for name in names for folder in ("wavs", "")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate, candidate
    return None, candidates[0] if os.path.isdir(os.path.join(directory, "wavs")) else candidates[1]


def read_speakers(directory):
    """{id: speaker} from the optional `speakers.csv` (`id|speaker` lines) in `directory`."""
    path = os.path.join(directory, "speakers.csv")
    if not os.path.isfile(path):
        return {}
    speakers = {}
    for _, columns in _read_pipe_file(path, "skip", empty_report()):
        if not _is_header(columns):
            speakers[columns[0]] = columns[1]
    return speakers


def read_metadata_folder(directory, config, vocabulary):
    """Reads one LJSpeech-style folder; returns (utterances, report).

    Args:
        directory: str. Holds `metadata.csv` (`id|text` or
            `id|text|normalized_text` lines, UTF-8, no quoting) and the audio
            in `wavs/` or beside it; optionally `speakers.csv`.
        config: SpeechDataConfig.
        vocabulary: str. Allowed transcript characters.
    """
    metadata = os.path.join(directory, "metadata.csv")
    speakers = read_speakers(directory)
    utterances, report = [], empty_report()
    for line_number, columns in _read_pipe_file(metadata, config.on_error, report):
        if line_number == 1 and _is_header(columns):
            continue
        where = f"{metadata}:{line_number}"
        uid = columns[0]
        text = next((column for column in reversed(columns[1:]) if column), "")
        parts = os.path.normpath(uid).split(os.sep)
        if not uid or os.path.isabs(uid) or ".." in parts:
            count_skip(report, where, "bad id", config.on_error, detail=repr(uid),
                       fix="use a file name relative to the folder")
            continue
        problem = transcript_problem(normalize_transcript(text), vocabulary)
        if problem:  # before looking for the audio: a bad line is reported as such
            reason, detail, fix = problem
            count_skip(report, where, reason, config.on_error, detail=detail, fix=fix)
            continue
        path, expected = _audio_path(directory, uid)
        if path is None:
            count_skip(report, expected, "audio file missing", config.on_error,
                       fix=f"add it or remove line {line_number} of metadata.csv")
            continue
        utterance = make_utterance(uid, text, speakers.get(uid, ""), config, vocabulary, report, where,
                                   audio_path=path)
        if utterance is not None:
            utterances.append(utterance)
    return utterances, report


@SPEECH_SOURCES.register("folder")
def load_folder(config, seed, vocabulary):
    """An LJSpeech-style folder at `data.path`: metadata.csv of id|text (or id|text|normalized_text) lines and
    wavs/<id>.wav, or train/, validation/ and test/ subfolders each with its own metadata.csv."""
    path = config.path
    if not path:
        raise DataError("data.path: required for data.source: folder (a directory with metadata.csv of id|text "
                        "lines and wavs/<id>.wav)")
    if os.path.isfile(path) and os.path.basename(path) == "metadata.csv":
        path = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path):
        raise DataError(f"data.path {path} does not exist or is not a directory; set it to a folder with metadata.csv")
    folders = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if os.path.isfile(os.path.join(path, name, "metadata.csv")):
                folders[split] = os.path.join(path, name)
                break
    if "train" not in folders:
        if not os.path.isfile(os.path.join(path, "metadata.csv")):
            raise DataError(f"data.path {path}: no metadata.csv (id|text lines) here nor in train/; "
                            "write one, with the audio in wavs/<id>.wav")
        folders = {"train": path}
    splits, reports = {}, {}
    for split, folder in folders.items():
        splits[split], reports[split] = read_metadata_folder(folder, config, vocabulary)
    if not splits["train"]:
        raise _no_usable(os.path.join(folders["train"], "metadata.csv"), reports)
    info = {"folders": folders, "validation": "validation folder" if "validation" in folders else "random utterances"}
    return finish_speech(splits, reports, config, seed, f"speech folder {os.path.abspath(path)}", info)


# ------------------------------------------------------------------ pocketsphinx

_SPHINX_LINE = re.compile(r"^\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()]+)\)\s*$")


@SPEECH_SOURCES.register("pocketsphinx")
def load_pocketsphinx(config, seed, vocabulary):
    """Real human speech from the Debian package pocketsphinx-testdata (5 "cards" commands, 5 LibriVox
    sentences), all as the test split: an out-of-domain test set; train and validation are empty."""
    root = config.path or POCKETSPHINX_PATH
    files = [(name, os.path.join(root, name, transcript)) for name, transcript in POCKETSPHINX_SETS]
    if not all(os.path.isfile(file) for _, file in files):
        if config.path:
            raise DataError(f"data.path {root}: no cards/cards.transcription and librivox/transcription; set it to "
                            f"the pocketsphinx test data ({POCKETSPHINX_PATH})")
        raise DataError(f"{POCKETSPHINX_PATH}: not found; install the clips with: sudo apt-get install "
                        "pocketsphinx-testdata (or make data)")
    test, report = [], empty_report()
    for name, file in files:
        with open(file, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{file}:{line_number}"
                match = _SPHINX_LINE.match(line)
                if not match:
                    count_skip(report, where, "not '<s> text </s> (id)'", config.on_error)
                    continue
                text, uid = match.group(1), match.group(2).strip()
                audio_path = os.path.join(root, name, uid + ".wav")
                utterance = make_utterance(f"{name}/{uid}", text, name, config, vocabulary, report, where,
                                           audio_path=audio_path)
                if utterance is not None:
                    test.append(utterance)
    if not test:
        raise _no_usable(root, {"test": report}, "test")
    provenance = ("real speech: pocketsphinx-testdata (Debian package, CMU Sphinx test clips, BSD-2-Clause): "
                  "5 card-game commands and 5 LibriVox sentences of Austen's Sense and Sensibility (public domain); "
                  "test split only")
    info = {"path": root, "train": "empty: pocketsphinx-testdata is an out-of-domain test set only",
            "validation": "empty: test set only", "sets": [name for name, _ in POCKETSPHINX_SETS]}
    splits = {"train": [], "validation": [], "test": test}
    return finish_speech(splits, {"test": report}, config, seed, provenance, info, require_train=False)


# ---------------------------------------------------------------------- asterisk

ASTERISK_VOICE = "en_US_f_Allison"
ASTERISK_SPLITS = (("train", 80), ("validation", 90), ("test", 100))  # cumulative percent of the name hash
ASTERISK_KEYS = {"*": " star ", "#": " pound "}  # how the prompts read the telephone keys
_ASTERISK_NOTES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|<[^<>]*>")  # (notes), [symbols], <sounds>


def asterisk_split(name):
    """"train", "validation" or "test" of a prompt, from a hash of its name alone (80/10/10): a prompt stays in its
    split whatever the seed and whichever other prompts exist.

    Example:

    >>> asterisk_split("vm-goodbye") == asterisk_split("vm-goodbye")
    True
    """
    bucket = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) % 100
    return next(split for split, below in ASTERISK_SPLITS if bucket < below)


def asterisk_transcript(text):
    """A prompt transcript as spoken: editorial notes `(...)`, symbol annotations `[@]` and sounds `<beep>`
    dropped, `*` and `#` read "star" and "pound", numbers spelled out (`toolkit.tasks.speech_recognition.spoken_numbers`).

    Example:

    >>> asterisk_transcript("Press 1 or # to exit. (simple tone sound plays)")
    'Press one or pound to exit.'
    """
    from toolkit.tasks.speech_recognition.spoken_numbers import spell_numbers

    text = _ASTERISK_NOTES.sub(" ", text)
    for key, word in ASTERISK_KEYS.items():
        text = text.replace(key, word)
    return " ".join(spell_numbers(text).split())


@SPEECH_SOURCES.register("asterisk")
def load_asterisk(config, seed, vocabulary):
    """Real human speech: the English Asterisk PBX prompts (Debian asterisk-core-sounds-en(-wav), voice
    en_US_f_Allison, 8 kHz telephone prompts, CC-BY-SA-3.0) with their transcripts, split 80/10/10 by a hash of
    the prompt name; numbers spelled out. Fetched with `toolkit data fetch asterisk` (data.path: another unpacked
    root)."""
    from toolkit.data.asterisk import read_prompts

    root = os.path.abspath(os.path.expanduser(config.path)) if config.path else None
    prompts = [p for p in read_prompts(root, languages=["en"], download=config.download)
               if p.voice.name == ASTERISK_VOICE]
    splits = {split: [] for split in SPLITS}
    reports = {split: empty_report() for split in SPLITS}
    sounds = 0
    for prompt in prompts:
        split = asterisk_split(prompt.name)
        raw = prompt.text or ""
        if raw.strip() and not normalize_transcript(_ASTERISK_NOTES.sub(" ", raw)):
            sounds += 1  # "<beep ascending>": a sound, not speech, like the bracketed tones read_prompts drops
            continue
        utterance = make_utterance(prompt.name, asterisk_transcript(raw), prompt.voice.name, config, vocabulary,
                                   reports[split], f"{prompt.path} (transcript {raw.strip()[:60]!r})",
                                   audio_path=prompt.path)
        if utterance is not None:
            splits[split].append(utterance)
    if not splits["train"] and not splits["test"]:
        where = os.path.join(root or "$TOOLKIT_HOME/data/asterisk", "asterisk-core-sounds-en-wav")
        raise _no_usable(where, reports, "test" if reports["test"]["skipped"] else "train")
    provenance = ("real speech: Asterisk PBX prompts, Debian packages asterisk-core-sounds-en-wav and "
                  "asterisk-core-sounds-en 1.6.1 (Digium, CC-BY-SA-3.0), voice en_US_f_Allison (one professional "
                  "speaker, 8 kHz telephone prompts), split 80/10/10 by a hash of the prompt name, numbers spelled out")
    info = {"path": root or "default (toolkit data fetch asterisk)", "voice": ASTERISK_VOICE, "prompts": len(prompts),
            "sounds_dropped": sounds, "split": "80/10/10 by sha256 of the prompt name (seed-independent)",
            "validation": "prompts of the same speaker, other names"}
    return finish_speech(splits, reports, config, seed, provenance, info, require_train=False)


# -------------------------------------------------------------------------- TFDS


def _find_features(info):
    """(audio key, text key) of a TFDS dataset: its supervised keys, or its first Audio and Text/ClassLabel."""
    import tensorflow_datasets as tfds

    features = info.features
    keys = list(info.supervised_keys or ())[:2]
    if len(keys) == 2 and all(isinstance(key, str) and key in features for key in keys) and isinstance(
            features[keys[0]], tfds.features.Audio):
        return keys[0], keys[1]
    audio = [key for key, feature in features.items() if isinstance(feature, tfds.features.Audio)]
    text = [key for key, feature in features.items() if isinstance(feature, (tfds.features.Text,
                                                                                 tfds.features.ClassLabel))]
    if not audio or not text:
        raise DataError(f"TFDS dataset {info.full_name} has no audio feature with a text or label feature "
                        f"(features: {', '.join(features.keys())}); choose a speech dataset such as librispeech")
    return audio[0], text[0]


@SPEECH_SOURCES.register("tfds")
def load_tfds_speech(config, seed, vocabulary):
    """A TFDS speech dataset (`data.tfds_name`, e.g. librispeech or speech_commands): its audio feature with its
    text (or class label) as the transcript, from `data.tfds_data_dir` or downloaded when `data.download`;
    `data.limit` caps the examples read per split."""
    import tensorflow_datasets as tfds

    from toolkit.data.audio_io import to_float_samples
    from toolkit.data.tfds import prepare_tfds, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. librispeech or speech_commands)")
    builder, info = prepare_tfds(name, config)
    audio_key, text_key = _find_features(info)
    audio_feature, text_feature = info.features[audio_key], info.features[text_key]
    rate = getattr(audio_feature, "sample_rate", None)
    if not rate:
        raise DataError(f"TFDS dataset {info.full_name}: feature {audio_key!r} has no sample_rate; "
                        "use data.source: folder with the audio files")
    labels = text_feature.names if isinstance(text_feature, tfds.features.ClassLabel) else None
    splits, reports = {}, {}
    for split, spec in tfds_split_names(info, config).items():
        limit = getattr(config.limit, split, None)
        dataset = builder.as_dataset(split=spec, shuffle_files=False)
        utterances, report = [], empty_report()
        for index, example in enumerate(dataset.as_numpy_iterator()):
            if limit is not None and len(utterances) >= limit:
                break
            where = f"{info.full_name}/{spec}:{index}"
            value = example[text_key]
            if labels is not None:
                text = labels[int(value)]
                if text.startswith("_"):  # speech_commands' _silence_ and _unknown_ are not words
                    count_skip(report, where, "class label without words", config.on_error, detail=text,
                               fix="choose a dataset with transcripts")
                    continue
            else:
                try:
                    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
                except UnicodeDecodeError:
                    count_skip(report, where, "not UTF-8", config.on_error, fix="fix the transcript")
                    continue
            audio = to_float_samples(np.asarray(example[audio_key]))
            if audio.ndim == 2:
                audio = audio.mean(axis=1)
            uid = example.get("id", f"{spec}:{index}")
            uid = uid.decode("utf-8", "replace") if isinstance(uid, bytes) else str(uid)
            speaker = example.get("speaker_id", "")
            utterance = make_utterance(uid, text, speaker, config, vocabulary, report, where, audio=audio, rate=rate)
            if utterance is not None:
                utterances.append(utterance)
        splits[split], reports[split] = utterances, report
    if not splits["train"]:
        raise _no_usable(f"TFDS dataset {info.full_name}", reports)
    provenance = (f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'}), {audio_key} -> "
                  f"{text_key}")
    details = {"tfds_splits": tfds_split_names(info, config), "features": [audio_key, text_key],
               "tfds_sample_rate": int(rate)}
    return finish_speech(splits, reports, config, seed, provenance, details)


# -------------------------------------------------------------------- espeak-ng

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_PREFIXES = ("number", "page", "room", "bus", "track", "chapter", "gate", "level")

# Sentence templates; {category} is a random entry of that category of speech_words.txt
# ({number} a number in words), so texts are grammatical enough to sound natural.
TEMPLATES = (
    "the {adjectives} {nouns} is {colours}",
    "{names} {past} the {nouns} {times}",
    "{names} {past} a {adjectives} {nouns} {places}",
    "please {verbs} the {nouns}",
    "don't {verbs} the {adjectives} {nouns}",
    "can you {verbs} the {nouns} {times}",
    "i saw a {colours} {nouns} {places}",
    "where is the {adjectives} {nouns}",
    "we will {verbs} the {nouns} {times}",
    "it's a {adjectives} {nouns}",
    "my {nouns} is very {adjectives}",
    "{names} and {names} {past} the {nouns}",
    "the {nouns} was {adjectives} {times}",
    "let's {verbs} the {colours} {nouns}",
    "{names} counted to {number}",
    "the {nouns} costs {number} pounds",
    "that's my {adjectives} {nouns}",
    "isn't the {nouns} {adjectives}",
    "she {past} the {nouns} and the {nouns}",
    "they {past} the {nouns} {places}",
    "our {nouns} is {places}",
    "the {adjectives} {nouns} {past} the {colours} {nouns}",
    "i'm at {nouns} number {number}",
    "we're going to {verbs} a {nouns} {times}",
)


def number_to_words(number):
    """A non-negative integer below one billion in British English words.

    Args:
        number: int.

    Example:

    >>> number_to_words(312), number_to_words(1005), number_to_words(40017)
    ('three hundred and twelve', 'one thousand and five', 'forty thousand and seventeen')
    """
    number = int(number)
    if not 0 <= number < 10 ** 9:
        raise ValueError(f"expected 0 <= number < 1e9, got {number}")
    if number < 20:
        return ONES[number]
    if number < 100:
        tens, rest = divmod(number, 10)
        return TENS[tens] + (" " + ONES[rest] if rest else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return ONES[hundreds] + " hundred" + (" and " + number_to_words(rest) if rest else "")
    for value, name in ((10 ** 6, "million"), (1000, "thousand")):
        if number >= value:
            high, rest = divmod(number, value)
            words = number_to_words(high) + " " + name
            if rest:
                words += (" and " if rest < 100 else " ") + number_to_words(rest)
            return words


@functools.lru_cache(maxsize=None)
def word_lists():
    """{category: tuple of words or phrases} of the bundled speech_words.txt."""
    categories, current = {}, None
    with open(WORDS_FILE, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# ") and " " not in line[2:]:
                current = categories.setdefault(line[2:], [])
            elif line and not line.startswith("#") and current is not None:
                current.append(line)
    return {name: tuple(words) for name, words in categories.items()}


def _random_number(rng):
    digits = rng.choice([1, 2, 3, 4, 5, 6], p=[0.15, 0.3, 0.25, 0.15, 0.1, 0.05])
    return int(rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits))


def random_text(kind, rng):
    """One random text of `kind` ("words", "numbers" or "sentences"), drawn with `rng` (np.random.RandomState).

    Example:

    >>> import numpy as np
    >>> random_text("numbers", np.random.RandomState(4))
    'twenty one thousand eight hundred and sixty three'
    >>> random_text("sentences", np.random.RandomState(7))
    'the map costs six thousand six hundred and ninety nine pounds'
    """
    lists = word_lists()
    if kind == "words":
        pool = [word for words in lists.values() for word in words]
        return " ".join(pool[index] for index in rng.randint(0, len(pool), size=rng.randint(1, 5)))
    if kind == "numbers":
        style = rng.randint(0, 4)
        if style == 0:  # digit by digit, like a phone or code number
            return " ".join(ONES[digit] for digit in rng.randint(0, 10, size=rng.randint(3, 7)))
        words = number_to_words(_random_number(rng))
        return f"{NUMBER_PREFIXES[rng.randint(len(NUMBER_PREFIXES))]} {words}" if style == 1 else words
    if kind == "sentences":
        template = TEMPLATES[rng.randint(len(TEMPLATES))]
        return re.sub(r"\{(\w+)\}", lambda match: number_to_words(_random_number(rng)) if match.group(1) == "number"
                      else lists[match.group(1)][rng.randint(len(lists[match.group(1)]))], template)
    raise ValueError(f"unknown text kind {kind!r}; expected words, numbers or sentences")


def plan_corpus(espeak_config, seed=None):
    """Plans the synthetic corpus; returns (utterances, shared).

    `utterances` is a list of dicts (id, split, voice, speed, pitch, kind,
    text); `shared` counts texts that could not be kept out of the other
    splits.

    Deterministic from the settings and the seed. The test split is planned
    first and spoken by `test_voices` only; validation and train use
    `voices`, each voice in turn (balanced), and avoid texts of the splits
    planned before (up to 50 draws each).

    Args:
        espeak_config: EspeakConfig.
        seed: optional int. Overrides `espeak_config.seed`.
    """
    rng = np.random.RandomState(espeak_config.seed if seed is None else seed)
    kinds = sorted(espeak_config.kinds)
    shares = np.asarray([espeak_config.kinds[kind] for kind in kinds], dtype=np.float64)
    shares = shares / shares.sum()
    texts = {split: set() for split in SPLITS}
    plan, shared = [], 0
    for split in ("test", "validation", "train"):
        count = getattr(espeak_config.utterances, split)
        voices = espeak_config.test_voices if split == "test" else espeak_config.voices
        others = set().union(*texts.values())  # the splits planned before this one
        order = []
        for index in range(count):
            if index % len(voices) == 0:
                order = [voices[i] for i in rng.permutation(len(voices))]
            kind = kinds[rng.choice(len(kinds), p=shares)]
            for _ in range(50):
                text = random_text(kind, rng)
                if text not in others:
                    break
            else:
                shared += 1
            texts[split].add(text)
            plan.append({"id": f"{split}_{index:05d}", "split": split, "voice": order[index % len(voices)],
                         "speed": int(rng.randint(espeak_config.speed[0], espeak_config.speed[1] + 1)),
                         "pitch": int(rng.randint(espeak_config.pitch[0], espeak_config.pitch[1] + 1)),
                         "kind": kind, "text": text})
    return plan, shared


def corpus_key(espeak_config, seed=None, sample_rate=16000):
    """Hash (12 hex digits) of everything that decides the corpus content."""
    with open(WORDS_FILE, "rb") as f:
        words = hashlib.sha256(f.read()).hexdigest()
    settings = espeak_config.model_dump(exclude={"processes", "cache_dir"})
    if seed is not None:
        settings["seed"] = seed
    blob = json.dumps({"format": CORPUS_FORMAT, "settings": settings, "sample_rate": int(sample_rate),
                       "words": words}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _espeak_binary():
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError("espeak-ng not found; install it with: sudo apt-get install espeak-ng (or make data), "
                        "or use a recorded corpus with data.source: folder")
    return path


@functools.lru_cache(maxsize=None)
def espeak_info():
    """{"version": "1.51", "data": espeak-ng-data path, "variants": sorted variant names} of the installed espeak-ng."""
    result = subprocess.run([_espeak_binary(), "--version"], capture_output=True, text=True)
    match = re.search(r"text-to-speech:\s*(\S+).*?Data at:\s*(\S+)", result.stdout, re.S)
    version, data = (match.group(1), match.group(2)) if match else ("unknown", "")
    variants = []
    folder = os.path.join(data, "voices", "!v")
    if os.path.isdir(folder):
        variants = sorted(os.listdir(folder))
    return {"version": version, "data": data, "variants": variants}


@functools.lru_cache(maxsize=None)
def _voice_speaks(voice):
    result = subprocess.run([_espeak_binary(), "-q", "-v", voice, "test"], capture_output=True, text=True)
    return result.returncode == 0


def english_voices():
    """Names of the English espeak-ng voices that speak here (`espeak-ng --voices=en`, without MBROLA ones)."""
    result = subprocess.run([_espeak_binary(), "--voices=en"], capture_output=True, text=True)
    names = []
    for line in result.stdout.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 5 and columns[1] != "variant" and not columns[4].startswith("mb/") and columns[1] not in names:
            names.append(columns[1])
    return names


@functools.lru_cache(maxsize=None)
def known_voices():
    """Every name espeak-ng takes for `-v` here, lower-cased: language codes (with the other languages a voice
    speaks), voice names and voice files (`espeak-ng --voices`)."""
    result = subprocess.run([_espeak_binary(), "--voices"], capture_output=True, text=True)
    names = set()
    for line in result.stdout.splitlines()[1:]:
        columns = line.split()
        if len(columns) < 5:
            continue
        names.update(value.lower() for value in (columns[1], columns[3], columns[4], columns[4].split("/")[-1]))
        names.update(code.lower() for code in re.findall(r"\(([^\s()]+) \d+\)", line))
    return names


def check_voices(voices):
    """Raises DataError unless every voice[+variant] makes espeak-ng speak. espeak-ng itself falls back to a default
    voice for an unknown name (`-v en-martian` speaks en, exit 0) and ignores an unknown variant, so voices are
    checked against `espeak-ng --voices` and variants against its voices/!v folder."""
    variants = espeak_info()["variants"]
    known = known_voices()
    for voice in voices:
        base, _, variant = voice.partition("+")
        if known and base.lower() not in known:
            from toolkit.registry import did_you_mean

            english = english_voices()
            raise DataError(f"data.espeak voice {voice!r}: espeak-ng has no voice {base!r}"
                            f"{did_you_mean(base, english)} (espeak-ng would speak it in a default voice instead); "
                            f"English voices: {', '.join(english)}")
        if not _voice_speaks(base):
            raise DataError(f"data.espeak voice {voice!r}: espeak-ng has no voice {base!r} that speaks here "
                            f"(MBROLA voices need mbrola); English voices: {', '.join(english_voices())}")
        if variant and variants and variant not in variants:
            raise DataError(f"data.espeak voice {voice!r}: unknown variant {variant!r} (espeak-ng --voices=variant; "
                            f"e.g. m1-m8, f1-f5, klatt, Annie)")


def run_espeak(text, voice, speed, pitch, path):
    """Speaks `text` with espeak-ng into a 22050 Hz WAV file at `path`."""
    command = [_espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not os.path.isfile(path):
        message = (result.stderr.strip().splitlines() or ["no audio written"])[-1][:200]
        raise DataError(f"espeak-ng -v {voice} failed ({message}); check data.espeak.voices (espeak-ng --voices=en)")


def _synthesize_one(item, root, raw_dir, sample_rate):
    raw = os.path.join(raw_dir, item["id"] + ".wav")
    run_espeak(item["text"], item["voice"], item["speed"], item["pitch"], raw)
    wave, rate = read_audio(raw)
    os.remove(raw)
    wave = resample(wave, rate, sample_rate)
    write_wav(os.path.join(root, item["split"], "wavs", item["id"] + ".wav"), wave, sample_rate)
    return wave.size / sample_rate


def read_corpus_meta(directory):
    """The corpus.json of a complete synthetic corpus in `directory`, or None."""
    path = os.path.join(directory, "corpus.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def synthesize_corpus(out_dir, espeak_config, seed=None, sample_rate=16000, log=None):
    """Speaks the synthetic corpus with espeak-ng into an LJSpeech-style folder; returns its metadata.

    Layout: `train/`, `validation/`, `test/` each with `metadata.csv`
    (`id|text`), `speakers.csv` (`id|voice`) and `wavs/<id>.wav` (16-bit PCM
    at `sample_rate`), plus `utterances.csv` (id, split, voice, speed, pitch,
    kind, text, with a header) and `corpus.json` (settings, counts, timing),
    so `data.source: folder` reads it too. The folder is written in a
    temporary directory beside `out_dir` and renamed when complete: an
    interrupted generation leaves nothing under `out_dir`. A complete corpus
    of the same settings already there is kept as is; another one is
    replaced; any other non-empty `out_dir` is refused.

    Args:
        out_dir: str. The corpus directory.
        espeak_config: EspeakConfig. Utterances, voices, speeds, pitches, text kinds.
        seed: optional int. Overrides `espeak_config.seed`.
        sample_rate: int. Sample rate of the written WAVs (espeak-ng speaks at 22050 Hz).
        log: optional callable taking a str. Progress messages.

    Example (shell): `toolkit data synth-speech --output speech_corpus --utterances 500`.
    """
    from toolkit.atomic import atomic_path

    key = corpus_key(espeak_config, seed, sample_rate)
    out_dir = os.path.abspath(out_dir)
    existing = read_corpus_meta(out_dir)
    if existing is not None and existing.get("key") == key:
        return existing
    if existing is None and os.path.isdir(out_dir) and os.listdir(out_dir):
        raise DataError(f"{out_dir}: exists and is not a speech corpus written by the toolkit; choose another "
                        "output directory")
    _espeak_binary()
    check_voices(list(espeak_config.voices) + list(espeak_config.test_voices))
    plan, shared = plan_corpus(espeak_config, seed)
    processes = espeak_config.processes or os.cpu_count() or 1
    log = log or (lambda message: None)
    log(f"speaking {len(plan)} utterances with espeak-ng ({processes} processes) into {out_dir}")
    started = time.time()
    seconds = {split: 0.0 for split in SPLITS}
    with atomic_path(out_dir, directory=True) as tmp:
        raw_dir = os.path.join(tmp, ".espeak")
        os.makedirs(raw_dir)
        for split in SPLITS:
            os.makedirs(os.path.join(tmp, split, "wavs"))
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=processes)
        try:
            futures = {executor.submit(_synthesize_one, item, tmp, raw_dir, sample_rate): item for item in plan}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                seconds[futures[future]["split"]] += future.result()
                if done % 500 == 0:
                    log(f"  {done}/{len(plan)} utterances ({done / (time.time() - started):.0f}/s)")
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        os.rmdir(raw_dir)
        for split in SPLITS:
            items = [item for item in plan if item["split"] == split]
            with open(os.path.join(tmp, split, "metadata.csv"), "w", encoding="utf-8") as f:
                f.writelines(f"{item['id']}|{item['text']}\n" for item in items)
            with open(os.path.join(tmp, split, "speakers.csv"), "w", encoding="utf-8") as f:
                f.writelines(f"{item['id']}|{item['voice']}\n" for item in items)
        with open(os.path.join(tmp, "utterances.csv"), "w", encoding="utf-8") as f:
            columns = ("id", "split", "voice", "speed", "pitch", "kind", "text")
            f.write("|".join(columns) + "\n")
            f.writelines("|".join(str(item[column]) for column in columns) + "\n" for item in plan)
        elapsed = time.time() - started
        meta = {
            "format": CORPUS_FORMAT,
            "key": key,
            "generator": f"espeak-ng {espeak_info()['version']}",
            "settings": dict(espeak_config.model_dump(mode="json", exclude={"processes", "cache_dir"}),
                             seed=espeak_config.seed if seed is None else seed),
            "sample_rate": int(sample_rate),
            "utterances": {split: sum(item["split"] == split for item in plan) for split in SPLITS},
            "audio_seconds": {split: round(value, 1) for split, value in seconds.items()},
            "texts_shared_across_splits": shared,
            "voices": {"train_validation": list(espeak_config.voices), "test": list(espeak_config.test_voices)},
            "generation_seconds": round(elapsed, 1),
            "utterances_per_second": round(len(plan) / max(elapsed, 1e-9), 1),
            "processes": processes,
        }
        with open(os.path.join(tmp, "corpus.json"), "w", encoding="utf-8") as f:  # last: marks the corpus complete
            json.dump(meta, f, indent=2)
            f.write("\n")
    log(f"wrote {len(plan)} utterances ({sum(seconds.values()) / 60:.1f} min of audio) in {elapsed:.1f} s")
    return meta


def espeak_cache_dir(config):
    """Where the espeak corpus of `config` lives: data.espeak.cache_dir or $TOOLKIT_HOME/data/speech/espeak-<key>."""
    from toolkit.data.fetch import data_cache

    if config.espeak.cache_dir:
        return os.path.abspath(os.path.expanduser(config.espeak.cache_dir))
    return os.path.join(data_cache("speech"), f"espeak-{corpus_key(config.espeak, sample_rate=config.sample_rate)}")


@SPEECH_SOURCES.register("espeak")
def load_espeak(config, seed, vocabulary):
    """Synthetic speech from espeak-ng (Debian package espeak-ng): words, numbers and sentences in many voices,
    speeds and pitches (data.espeak); the test split is spoken only by held-out voices. Generated once (85-175
    utterances/s on 2 cores) into $TOOLKIT_HOME/data/speech/ and read from there afterwards."""
    directory = espeak_cache_dir(config)
    meta = synthesize_corpus(directory, config.espeak, sample_rate=config.sample_rate)
    splits, reports = {}, {}
    for split in SPLITS:
        splits[split], reports[split] = read_metadata_folder(os.path.join(directory, split), config, vocabulary)
    if not splits["train"]:
        raise _no_usable(os.path.join(directory, "train", "metadata.csv"), reports)
    voices = meta["voices"]
    provenance = (f"synthetic speech: {meta['generator']} (Debian package espeak-ng), {sum(meta['utterances'].values())} "
                  f"utterances, voices {', '.join(voices['train_validation'])}; test voices (held out) "
                  f"{', '.join(voices['test'])}; seed {meta['settings']['seed']}")
    info = {"cache": directory, "key": meta["key"], "generator": meta["generator"], "voices": voices["train_validation"],
            "test_voices": voices["test"], "validation": "same voices as train, other texts",
            "generation_seconds": meta["generation_seconds"], "utterances_per_second": meta["utterances_per_second"],
            "texts_shared_across_splits": meta["texts_shared_across_splits"]}
    return finish_speech(splits, reports, config, seed, provenance, info)


# --------------------------------------------------- data= (Python datasets)


def speech_data(user, config, seed, vocabulary):
    """`SpeechData` of (waveform at data.sample_rate, transcript) pairs, checked like file sources."""
    splits, reports = {}, {}
    for name in user.splits:
        utterances, report = [], empty_report()
        for index, example in enumerate(user.examples(name, batched_rank=2)):
            wave, transcript = user_data.pair(example, name, index, "(waveform, transcript)")
            wave = np.asarray(wave, np.float32).reshape(-1)
            where = f"data['{name}'] example {index}"
            utterance = make_utterance(f"{name}-{index}", user_data.text(transcript), "", config, vocabulary, report, where,
                                       audio=wave, rate=config.sample_rate)
            if utterance is not None:
                utterances.append(utterance)
        report["examples"] = len(utterances)
        splits[name], reports[name] = utterances, report
    return finish_speech(splits, reports, config, seed, "Python datasets given to toolkit.train", {})


def load_speech_tfrecords(config, seed, vocabulary):
    """`SpeechData` from speech TFRecords (resampled to data.sample_rate; transcripts checked)."""
    import tensorflow as tf

    from toolkit.data.tfrecord import read_meta, split_records

    meta = read_meta(config.path, "speech_recognition")
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in ("audio", "text", "speaker", "id")}
    spec["sample_rate"] = tf.io.FixedLenFeature([], tf.int64)
    splits, reports = {}, {}
    for split in meta["splits"]:
        utterances, report = [], empty_report()
        for index, record in enumerate(split_records(config.path, split, spec)):
            audio = np.frombuffer(record["audio"], "<f4").astype(np.float32)
            utterance = make_utterance(record["id"].decode("utf-8", "replace"),
                                       record["text"].decode("utf-8", "replace"),
                                       record["speaker"].decode("utf-8", "replace"), config, vocabulary, report,
                                       f"{split} record {index}", audio=audio, rate=int(record["sample_rate"]))
            if utterance is not None:
                utterances.append(utterance)
        report["examples"] = len(utterances)
        splits[split], reports[split] = utterances, report
    return finish_speech(splits, reports, config, seed, meta["provenance"], {})
