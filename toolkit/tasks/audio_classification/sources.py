"""Audio classification data sources: (waveform, label) clips per split, with the speaker of each clip.

- `folder`: one folder per class of audio files (WAV, FLAC, OGG, MP3, GSM; any sample rate), like image
  folders: `<path>/<class>/*.wav`, or `<path>/{train,validation,test}/<class>/*.wav`.
- `manifest`: a CSV file with a header naming `path` and `label` columns (`data.path_column`,
  `data.label_column`), and optionally `speaker` and `split` (train/validation/test); paths relative to the CSV.
- `tfds`: a TFDS dataset with an audio feature and a class label (`data.tfds_name`, e.g. `speech_commands`).
- `asterisk_language`: spoken language identification over the Asterisk prompts (real recorded speech, five
  languages, eight voices; `toolkit.data.asterisk`). A language with two speakers keeps one of them
  (`data.asterisk.test_speakers`) as its whole test split, never heard in training; a one-speaker language is
  split by prompt name (a hash of the name, 80/10/10), so no prompt crosses splits.
- `spoken_digits`: the digits 0-9 spoken by espeak-ng in the five languages (many voices, variants, speeds and
  pitches; generated once into the data cache) for training and validation (held-out variants), tested on the
  real human digits 0-9 of the eight Asterisk voices (`group`: the language).

Speakers never cross splits: where a source knows them (`speaker` column, `data.speaker_pattern`, TFDS
`speaker_id`) and has no split of its own, whole speakers are cut into validation and test. A clip whose audio
is missing, unreadable, empty, shorter than `data.min_seconds` or longer than `data.max_seconds`, or whose
label is empty or not in `data.classes`, is skipped and counted per split, or fails naming the file with
`data.on_error: fail`. Nothing here imports TensorFlow at module level.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from toolkit.data.audio_io import write_wav
>>> from toolkit.tasks.audio_classification.config import AudioClassDataConfig
>>> from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES
>>> root = tempfile.mkdtemp()
>>> for label in ("yes", "no"):
...     os.mkdir(os.path.join(root, label))
...     for speaker in range(5):
...         write_wav(os.path.join(root, label, f"s{speaker}_{label}.wav"), np.full(8000, 0.1), 8000)
>>> config = AudioClassDataConfig(path=root, speaker_pattern="^([^_]+)_", test_fraction=0.2,
...                               validation_fraction=0.25)
>>> data = AUDIO_CLASS_SOURCES.get("folder")(config, seed=0)
>>> data.class_names, {name: len(clips) for name, clips in data.splits.items()}
(['no', 'yes'], {'train': 6, 'validation': 2, 'test': 2})
>>> sorted({c.speaker for c in data.splits["test"]} & {c.speaker for c in data.splits["train"]})
[]
"""

import csv
import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from toolkit.data import user_data
from toolkit.data.audio_io import UnreadableAudio, load_audio, resample
from toolkit.data.skips import describe
from toolkit.data.splits import SPLITS, count_skip, empty_report
from toolkit.errors import DataError
from toolkit.registry import Registry

AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".mp3", ".gsm")
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val", "dev"), "test": ("test",)}
describe("unreadable audio", "unreadable audio files")
describe("clip shorter than min_seconds", "clips shorter than data.min_seconds")
describe("clip longer than max_seconds", "clips longer than data.max_seconds", expected=True)
describe("unknown label", "clips whose label is not in data.classes")
describe("empty label", "clips without a label")
describe("audio file missing", "manifest rows whose audio file is missing")
describe("bad row", "manifest rows without a path and a label")

AUDIO_CLASS_SOURCES = Registry("audio classification data source", DataError)
AUDIO_CLASS_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)


@dataclasses.dataclass
class AudioClip:
    """One labelled clip.

    Args:
        id: str. Where it came from (file path, TFDS id).
        audio: np.ndarray. float32 mono samples in [-1, 1] at `data.sample_rate`.
        label: str. The class name.
        speaker: str. Speaker ("" when unknown).
        group: str. A slice the metrics report separately (the language of a digit; "" when none).
    """

    id: str
    audio: np.ndarray = dataclasses.field(repr=False)
    label: str
    speaker: str = ""
    group: str = ""


@dataclasses.dataclass
class AudioClassData:
    """What an audio classification source returns.

    Args:
        splits: dict. "train", "validation", "test" -> list of `AudioClip`.
        report: dict. Per split: examples, skipped, skipped_reasons, skipped_examples.
        provenance: str. One line: where the data came from (model card).
        class_names: list of str. Class names in index order.
        info: dict. Source details (split rule, speakers per split, seconds).
    """

    splits: dict
    report: dict
    provenance: str
    class_names: list
    info: dict = dataclasses.field(default_factory=dict)


def make_clip(uid, label, speaker, config, report, where, path=None, audio=None, rate=None, group=""):
    """Reads and checks one clip; returns its AudioClip, or None after counting why it was skipped."""
    label = str(label).strip()
    if not label:
        count_skip(report, where, "empty label", config.on_error, fix="give every clip a label")
        return None
    if config.classes is not None and label not in config.classes:
        count_skip(report, where, "unknown label", config.on_error, detail=repr(label),
                   fix=f"use one of data.classes ({', '.join(config.classes)}) or add it there")
        return None
    if path is not None:
        try:
            audio = load_audio(path, config.sample_rate)
        except UnreadableAudio as error:
            count_skip(report, path, "unreadable audio", config.on_error, detail=error.detail,
                       fix="fix or remove the file")
            return None
        where = path
    else:
        audio = resample(np.asarray(audio, np.float32).reshape(-1), rate, config.sample_rate)
    seconds = audio.size / config.sample_rate
    if audio.size == 0 or seconds < config.min_seconds:
        count_skip(report, where, "clip shorter than min_seconds", config.on_error,
                   detail=f"{seconds:.3f} s < {config.min_seconds:g} s", fix="remove it or lower data.min_seconds")
        return None
    if seconds > config.max_seconds:
        count_skip(report, where, "clip longer than max_seconds", config.on_error,
                   detail=f"{seconds:.1f} s > {config.max_seconds:g} s", fix="raise data.max_seconds")
        return None
    return AudioClip(str(uid), audio, label, str(speaker), str(group))


def stable_fraction(text):
    """A number in [0, 1) fixed by `text` alone (independent of seeds and of the other examples)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16) / float(16 ** 12)


def cut_by_speaker(clips, fraction, seed):
    """(rest, cut): about `fraction` of the clips moved to `cut`, whole speakers at a time (seeded); clips without a
    speaker are cut one by one."""
    if fraction <= 0 or len(clips) < 2:
        return list(clips), []
    speakers = sorted({clip.speaker for clip in clips if clip.speaker})
    if len(speakers) < 2:
        from toolkit.data.splits import random_cut

        return random_cut(list(clips), fraction, seed)
    order = np.random.RandomState(seed).permutation(len(speakers))
    target, chosen, total = fraction * len(clips), set(), 0
    counts = {speaker: 0 for speaker in speakers}
    for clip in clips:
        if clip.speaker:
            counts[clip.speaker] += 1
    for index in order:
        if total >= target or len(chosen) == len(speakers) - 1:
            break
        chosen.add(speakers[index])
        total += counts[speakers[index]]
    chosen = chosen or {speakers[order[0]]}
    return ([clip for clip in clips if clip.speaker not in chosen], [clip for clip in clips if clip.speaker in chosen])


def finish_audio(splits, reports, config, seed, provenance, info, require_train=True, class_names=None):
    """Cuts missing splits from train (by speaker where speakers are known), applies data.limit and the class list."""
    if "test" not in splits:
        if config.test_fraction <= 0:
            raise DataError(f"data: source {config.source!r} has no test split; set data.test_fraction > 0")
        splits["train"], splits["test"] = cut_by_speaker(splits["train"], config.test_fraction, seed)
    if "validation" not in splits:
        splits["train"], splits["validation"] = cut_by_speaker(splits["train"], config.validation_fraction, seed + 1)
    if require_train and not splits["train"]:
        raise DataError(f"data: source {config.source!r} gave no usable training clips ({provenance}); check "
                        "data.path and the skipped files above")
    info = dict(info, available={name: len(splits[name]) for name in SPLITS})
    for name in SPLITS:
        limit = getattr(config.limit, name, None)
        if limit is not None and len(splits[name]) > limit:
            chosen = np.sort(np.random.RandomState(seed + 2).permutation(len(splits[name]))[:limit])
            splits[name] = [splits[name][index] for index in chosen]
    reports = {name: reports.get(name) or empty_report() for name in SPLITS}
    for name in SPLITS:
        reports[name]["examples"] = len(splits[name])
    if class_names is None:
        class_names = list(config.classes) if config.classes else sorted({c.label for c in splits["train"]} or
                                                                          {c.label for c in splits["test"]})
    for name in SPLITS:  # a label only seen outside train has no output unit: refuse it
        unknown = sorted({c.label for c in splits[name]} - set(class_names))
        if unknown:
            raise DataError(f"data: {name} split has labels never seen in training ({', '.join(unknown[:5])}); "
                            "list every class in data.classes or add training clips of them")
    info["seconds"] = {name: round(sum(c.audio.size for c in splits[name]) / config.sample_rate, 1) for name in SPLITS}
    info["speakers"] = {name: len({c.speaker for c in splits[name] if c.speaker}) for name in SPLITS}
    return AudioClassData({name: splits[name] for name in SPLITS}, reports, provenance, class_names, info)


def _speaker_of(path, config):
    if not config.speaker_pattern:
        return ""
    match = re.search(config.speaker_pattern, os.path.basename(path))
    return match.group(1) if match else ""


def _audio_files(folder):
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        found += [os.path.join(directory, name) for name in sorted(files) if name.lower().endswith(AUDIO_SUFFIXES)]
    return found


def _read_class_folders(root, config):
    clips, report = [], empty_report()
    for label in sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))
                        and not name.startswith(".")):
        for path in _audio_files(os.path.join(root, label)):
            clip = make_clip(os.path.relpath(path, root), label, _speaker_of(path, config), config, report, path,
                             path=path)
            if clip is not None:
                clips.append(clip)
    return clips, report


@AUDIO_CLASS_SOURCES.register("folder")
def load_folder(config, seed):
    """One folder per class of audio files (any rate): <path>/<class>/*.wav, or train/, validation/ and test/
    subfolders each holding class folders."""
    path = config.path
    if not path:
        raise DataError("data.path: required for data.source: folder (a directory with one folder of audio files "
                        "per class)")
    if not os.path.isdir(path):
        raise DataError(f"data.path {path} does not exist or is not a directory; set it to a folder with one "
                        "sub-folder of audio files per class")
    folders = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if os.path.isdir(os.path.join(path, name)):
                folders[split] = os.path.join(path, name)
                break
    if "train" not in folders:
        folders = {"train": path}
    splits, reports = {}, {}
    for split, folder in folders.items():
        splits[split], reports[split] = _read_class_folders(folder, config)
    if not splits["train"] and not reports["train"]["skipped"]:
        raise DataError(f"data.path {folders['train']}: no audio files in class folders; lay them out as "
                        "<class>/<file>.wav")
    return finish_audio(splits, reports, config, seed, f"audio folder {os.path.abspath(path)}",
                        {"folders": folders})


@AUDIO_CLASS_SOURCES.register("manifest")
def load_manifest(config, seed):
    """A CSV file with a header naming the path and label columns (data.path_column, data.label_column) and
    optionally speaker and split (train, validation, test); audio paths relative to the CSV file."""
    path = config.path
    if not path or not os.path.isfile(path):
        raise DataError(f"data.path {path}: not a file; set it to a CSV manifest with a header such as "
                        "path,label,speaker")
    base = os.path.dirname(os.path.abspath(path))
    splits, reports = {}, {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8")
    if not rows:
        raise DataError(f"{path}: empty; write a header (path,label[,speaker][,split]) and one row per clip")
    header = [column.strip().lower() for column in rows[0]]
    for wanted in (config.path_column, config.label_column):
        if wanted.lower() not in header:
            raise DataError(f"{path}:1: no {wanted!r} column in the header ({','.join(rows[0])}); the first line "
                            f"names the columns, e.g. {config.path_column},{config.label_column},speaker")
    column = {name: header.index(name) for name in header}
    path_at, label_at = column[config.path_column.lower()], column[config.label_column.lower()]
    has_split = "split" in column
    for line_number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{line_number}"
        split = "train"
        if has_split and len(row) > column["split"]:
            split = {"val": "validation", "dev": "validation"}.get(row[column["split"]].strip().lower(),
                                                                   row[column["split"]].strip().lower() or "train")
        if split not in SPLITS:
            raise DataError(f"{where}: split {row[column['split']]!r}; write train, validation or test")
        report = reports.setdefault(split, empty_report())
        splits.setdefault(split, [])
        if len(row) <= max(path_at, label_at) or not row[path_at].strip():
            count_skip(report, where, "bad row", config.on_error, fix="write path,label[,speaker]")
            continue
        audio_path = os.path.join(base, row[path_at].strip())
        if not os.path.isfile(audio_path):
            count_skip(report, audio_path, "audio file missing", config.on_error,
                       fix=f"add it or remove line {line_number} of {os.path.basename(path)}")
            continue
        speaker = row[column["speaker"]].strip() if "speaker" in column and len(row) > column["speaker"] else ""
        clip = make_clip(row[path_at].strip(), row[label_at], speaker or _speaker_of(audio_path, config), config,
                         report, where, path=audio_path)
        if clip is not None:
            splits[split].append(clip)
    splits.setdefault("train", [])
    return finish_audio(splits, reports, config, seed, f"audio manifest {os.path.abspath(path)}",
                        {"manifest": os.path.abspath(path)})


@AUDIO_CLASS_SOURCES.register("tfds")
def load_tfds(config, seed):
    """A TFDS dataset with an audio feature and a class label (data.tfds_name, e.g. speech_commands), from
    data.tfds_data_dir or downloaded when data.download; data.limit caps the examples per split."""
    import tensorflow_datasets as tfds

    from toolkit.data.audio_io import to_float_samples
    from toolkit.data.tfds import prepare_tfds, tfds_split_names

    name = config.tfds_name
    if not name:
        raise DataError("data.tfds_name: required for data.source: tfds (e.g. speech_commands)")
    builder, info = prepare_tfds(name, config)
    features = info.features
    audio = [key for key, feature in features.items() if isinstance(feature, tfds.features.Audio)]
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    if not audio or not labels:
        raise DataError(f"TFDS dataset {info.full_name} has no audio feature with a class label (features: "
                        f"{', '.join(features.keys())}); choose an audio classification dataset such as "
                        "speech_commands")
    audio_key, label_key = audio[0], labels[0]
    rate = getattr(features[audio_key], "sample_rate", None) or config.sample_rate
    names = list(features[label_key].names)
    splits, reports = {}, {}
    for split, spec in tfds_split_names(info, config).items():
        limit = getattr(config.limit, split, None)
        clips, report = [], empty_report()
        for index, example in enumerate(builder.as_dataset(split=spec, shuffle_files=False).as_numpy_iterator()):
            if limit is not None and len(clips) >= limit:
                break
            wave = to_float_samples(np.asarray(example[audio_key]))
            if wave.ndim == 2:
                wave = wave.mean(axis=1)
            speaker = example.get("speaker_id", b"")
            speaker = speaker.decode("utf-8", "replace") if isinstance(speaker, bytes) else str(speaker)
            clip = make_clip(f"{spec}:{index}", names[int(example[label_key])], speaker, config, report,
                             f"{info.full_name}/{spec}:{index}", audio=wave, rate=rate)
            if clip is not None:
                clips.append(clip)
        splits[split], reports[split] = clips, report
    return finish_audio(splits, reports, config, seed, f"TFDS {info.full_name} ({audio_key} -> {label_key})",
                        {"tfds_splits": tfds_split_names(info, config), "tfds_sample_rate": int(rate)},
                        class_names=list(config.classes) if config.classes else names)


# ------------------------------------------------------------------ Asterisk prompts


def _prompt_split(name):
    """train/validation/test of a prompt name, fixed by the name (80/10/10)."""
    value = stable_fraction(name)
    return "test" if value < 0.1 else "validation" if value < 0.2 else "train"


@AUDIO_CLASS_SOURCES.register("asterisk_language")
def load_asterisk_language(config, seed):
    """Spoken language identification over the Asterisk prompts (real speech, 8 kHz, eight voices, five
    languages): a language with two speakers is tested on one never heard in training (data.asterisk)."""
    from toolkit.data.asterisk import ORIGIN, read_prompts

    settings = config.asterisk
    prompts = read_prompts(settings.path, settings.languages, download=config.download)
    speakers = {}
    for prompt in prompts:
        speakers.setdefault(prompt.voice.language, set()).add(prompt.voice.speaker)
    for language, speaker in settings.test_speakers.items():
        if language in speakers and speaker not in speakers[language]:
            raise DataError(f"data.asterisk.test_speakers.{language}: no speaker {speaker!r}; {language} is spoken "
                            f"by {', '.join(sorted(speakers[language]))}")
    splits = {name: [] for name in SPLITS}
    reports = {name: empty_report() for name in SPLITS}
    rules = {}
    for prompt in prompts:
        language = prompt.voice.language
        held_out = settings.test_speakers.get(language)
        if held_out and len(speakers[language]) > 1:
            rules[language] = f"speaker {held_out} held out as test"
            split = "test" if prompt.voice.speaker == held_out else (
                "validation" if _prompt_split(prompt.name) == "validation" else "train")
        else:
            rules[language] = "one speaker: split by prompt name 80/10/10"
            split = _prompt_split(prompt.name)
        clip = make_clip(f"{prompt.voice.name}/{prompt.name}", language, prompt.voice.speaker, config,
                         reports[split], prompt.path, path=prompt.path)
        if clip is not None:
            splits[split].append(clip)
    provenance = f"spoken language identification over {ORIGIN}"
    info = {"split_rule": rules, "test_speakers": dict(settings.test_speakers)}
    if settings.synthetic_per_language:
        directory = synthesize_prompt_voices(config)
        read_synthetic(directory, config, splits, reports)
        provenance += (f"; plus {settings.synthetic_per_language} training clips per language spoken by espeak-ng "
                       "voices from the transcripts of training prompts")
        info["synthetic"] = directory
    return finish_audio(splits, reports, config, seed, provenance, info, class_names=list(settings.languages))


def synthesize_prompt_voices(config):
    """espeak-ng voices (male and female variants, random speeds and pitches) reading the transcripts of the
    training prompts (`_prompt_split` train) in each language of data.asterisk (cached by settings)."""
    from toolkit.data.asterisk import fetch_asterisk, read_transcripts
    from toolkit.data.fetch import data_cache
    from toolkit.tasks.audio_classification.config import DIGIT_VARIANTS, DIGIT_VOICES

    settings = config.asterisk
    root = fetch_asterisk(settings.path, download=config.download)
    random = np.random.RandomState(settings.seed)
    plan = []
    for language in settings.languages:
        texts, _ = read_transcripts(root, language)
        texts = [text for name, text in sorted(texts.items()) if _prompt_split(name) == "train"
                 and not name.startswith(("digits/", "letters/", "phonetic/"))]
        if not texts:
            raise DataError(f"data.asterisk.synthetic_per_language: no {language} transcripts in {root} "
                            f"(asterisk-core-sounds-{language}); fetch them with: toolkit data fetch asterisk")
        for index in range(settings.synthetic_per_language):
            voices = DIGIT_VOICES[language]
            variant = DIGIT_VARIANTS[random.randint(len(DIGIT_VARIANTS))]
            plan.append({"id": f"{language}-{index:04d}", "split": "train", "label": language, "group": "espeak",
                         "text": texts[random.randint(len(texts))][:300],
                         "voice": voices[random.randint(len(voices))] + (f"+{variant}" if variant else ""),
                         "speed": int(random.randint(130, 200)), "pitch": int(random.randint(20, 80))})
    blob = json.dumps({"format": DIGITS_FORMAT, "plan": plan, "rate": config.sample_rate}, sort_keys=True)
    directory = os.path.join(data_cache("audio"), f"prompt-voices-{hashlib.sha256(blob.encode()).hexdigest()[:12]}")
    return synthesize_clips(directory, plan, config.sample_rate,
                            f"voices reading Asterisk training prompts in {', '.join(settings.languages)}")


# ------------------------------------------------------------------- spoken digits

DIGIT_CLASSES = [str(digit) for digit in range(10)]
DIGITS_FORMAT = 1  # bump when generation changes: cached corpora are regenerated


def _digit_plan(settings):
    from toolkit.tasks.audio_classification.config import DIGIT_VALIDATION_VARIANTS, DIGIT_VARIANTS, DIGIT_VOICES

    random = np.random.RandomState(settings.seed)
    plan = []
    for language in settings.languages:
        for split, count, variants in (("train", settings.per_digit, DIGIT_VARIANTS),
                                       ("validation", settings.validation_per_digit, DIGIT_VALIDATION_VARIANTS)):
            for digit in DIGIT_CLASSES:
                for index in range(count):
                    voice = DIGIT_VOICES[language][random.randint(len(DIGIT_VOICES[language]))]
                    variant = variants[random.randint(len(variants))]
                    plan.append({"id": f"{language}-{digit}-{split}-{index:03d}", "split": split, "language": language,
                                 "digit": digit, "voice": voice + (f"+{variant}" if variant else ""),
                                 "speed": int(random.randint(settings.speed[0], settings.speed[1] + 1)),
                                 "pitch": int(random.randint(settings.pitch[0], settings.pitch[1] + 1))})
    return plan


def digits_cache_dir(config):
    from toolkit.data.fetch import data_cache

    settings = config.digits
    if settings.cache_dir:
        return os.path.abspath(os.path.expanduser(settings.cache_dir))
    blob = json.dumps({"format": DIGITS_FORMAT, "settings": settings.model_dump(mode="json", exclude={"cache_dir"}),
                       "rate": config.sample_rate}, sort_keys=True)
    return os.path.join(data_cache("audio"), f"digits-{hashlib.sha256(blob.encode()).hexdigest()[:12]}")


def synthesize_clips(directory, plan, sample_rate, what, log=None):
    """Speaks `plan` (items with id, text, voice, speed, pitch, label, split, group) with espeak-ng into a manifest
    folder, written once and atomically (an interrupted run leaves nothing); returns `directory`, whose
    manifest.csv (path,label,speaker,split,group) the `manifest` reader reads too; `what` (one line) goes into its
    SOURCE.txt for `toolkit data list`."""
    import concurrent.futures

    from toolkit.atomic import atomic_path
    from toolkit.data.audio_io import read_audio, write_wav
    from toolkit.tasks.speech_recognition.sources import check_voices, run_espeak

    if os.path.isfile(os.path.join(directory, "manifest.csv")):
        return directory
    check_voices(sorted({item["voice"] for item in plan}))
    (log or (lambda message: None))(f"speaking {len(plan)} clips with espeak-ng into {directory}")

    def speak(item, root):
        raw = os.path.join(root, "raw", item["id"] + ".wav")
        run_espeak(item["text"], item["voice"], item["speed"], item["pitch"], raw)
        wave, rate = read_audio(raw)
        os.remove(raw)
        write_wav(os.path.join(root, "wavs", item["id"] + ".wav"), resample(wave, rate, sample_rate), sample_rate)

    with atomic_path(directory, directory=True) as tmp:
        os.makedirs(os.path.join(tmp, "raw"))
        os.makedirs(os.path.join(tmp, "wavs"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as executor:
            list(executor.map(lambda item: speak(item, tmp), plan))
        os.rmdir(os.path.join(tmp, "raw"))
        with open(os.path.join(tmp, "SOURCE.txt"), "w", encoding="utf-8") as f:
            f.write(f"espeak-ng {what}: {len(plan)} clips at {sample_rate} Hz\n")
        with open(os.path.join(tmp, "manifest.csv"), "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "speaker", "split", "group"])
            for item in plan:
                writer.writerow([f"wavs/{item['id']}.wav", item["label"], item["voice"], item["split"],
                                 item["group"]])
    return directory


def synthesize_digits(config, log=None):
    """Speaks the training and validation digits with espeak-ng (cached); returns the corpus directory."""
    plan = [dict(item, text=item["digit"], label=item["digit"], group=item["language"])
            for item in _digit_plan(config.digits)]
    return synthesize_clips(digits_cache_dir(config), plan, config.sample_rate,
                            f"digits 0-9 in {', '.join(config.digits.languages)}", log)


def read_synthetic(directory, config, splits, reports):
    """Adds the clips of a `synthesize_clips` folder to `splits` (checked like any file)."""
    with open(os.path.join(directory, "manifest.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            path = os.path.join(directory, row["path"])
            clip = make_clip(row["path"], row["label"], row["speaker"], config, reports[row["split"]], path,
                             path=path, group=row["group"])
            if clip is not None:
                splits[row["split"]].append(clip)


@AUDIO_CLASS_SOURCES.register("spoken_digits")
def load_spoken_digits(config, seed):
    """Digits 0-9 spoken by espeak-ng voices in five languages (train, validation), tested on the real human
    digits of the eight Asterisk voices (test; per language in the metrics)."""
    from toolkit.data.asterisk import ORIGIN, read_prompts

    settings = config.digits
    directory = synthesize_digits(config)
    splits = {name: [] for name in SPLITS}
    reports = {name: empty_report() for name in SPLITS}
    read_synthetic(directory, config, splits, reports)
    wanted = {f"digits/{digit}" for digit in DIGIT_CLASSES}
    for prompt in read_prompts(config.asterisk.path, settings.languages, download=config.download):
        if prompt.name in wanted:
            clip = make_clip(f"{prompt.voice.name}/{prompt.name}", prompt.name.split("/")[1], prompt.voice.speaker,
                             config, reports["test"], prompt.path, path=prompt.path, group=prompt.voice.language)
            if clip is not None:
                splits["test"].append(clip)
    provenance = (f"digits 0-9: training and validation spoken by espeak-ng (Debian package espeak-ng) in "
                  f"{', '.join(settings.languages)}; test: the real recorded digits of {ORIGIN}")
    info = {"synthetic": directory, "test": "real human digits of the Asterisk voices"}
    return finish_audio(splits, reports, config, seed, provenance, info, class_names=list(DIGIT_CLASSES))


# ------------------------------------------------------------------ data= (Python)


def audio_class_data(user, config, seed, class_names=None):
    """`AudioClassData` of (waveform at data.sample_rate, label) pairs given to `toolkit.train(recipe, data=...)`;
    labels are class indices (with `class_names`) or names."""
    splits, reports = {}, {}
    for name in user.splits:
        clips, report = [], empty_report()
        for index, example in enumerate(user.examples(name, batched_rank=2)):
            wave, label = user_data.pair(example, name, index, "(waveform, label)")
            label = np.asarray(label).reshape(-1)[0] if not isinstance(label, (str, bytes)) else label
            if isinstance(label, bytes):
                label = label.decode("utf-8")
            if class_names is not None and not isinstance(label, str):
                label = class_names[int(label)]
            clip = make_clip(f"{name}-{index}", str(label), "", config, report, f"data['{name}'] example {index}",
                             audio=np.asarray(wave, np.float32).reshape(-1), rate=config.sample_rate)
            if clip is not None:
                clips.append(clip)
        splits[name], reports[name] = clips, report
    return finish_audio(splits, reports, config, seed, "Python datasets given to toolkit.train", {},
                        class_names=class_names)
