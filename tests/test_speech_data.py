"""Speech data: audio reading and resampling, transcript normalisation, and the
folder, espeak-ng, pocketsphinx and TFDS sources with their skip reports."""

import os
import re
import wave

import numpy as np
import pytest

import toolkit.tasks.speech_recognition.sources as speech_sources
from toolkit.data.audio_io import UnreadableAudio, load_audio, read_audio, resample, write_wav
from toolkit.errors import DataError
from toolkit.tasks.speech_recognition.config import DEFAULT_VOCABULARY, EspeakConfig, SpeechDataConfig
from toolkit.tasks.speech_recognition.sources import (
    SPEECH_SOURCES,
    espeak_cache_dir,
    normalize_transcript,
    number_to_words,
    plan_corpus,
    synthesize_corpus,
)

from conftest import run_cli

POCKETSPHINX = "/usr/share/pocketsphinx/test/data"
needs_espeak = pytest.mark.skipif(not os.path.exists("/usr/bin/espeak-ng"),
                                  reason="Debian package espeak-ng not installed (sudo apt-get install espeak-ng)")


def load(config, seed=0, vocabulary=DEFAULT_VOCABULARY):
    return SPEECH_SOURCES.get(config.source)(config, seed, vocabulary)


def sine(frequency, seconds, rate, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def dominant_frequency(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


def write_pcm(path, samples, rate, width, channels=1):
    """Writes integer PCM of `width` bytes (1: unsigned 8-bit, 2, 3, 4) with the `wave` module."""
    scale = 2 ** (8 * width - 1) - 1
    values = np.round(np.asarray(samples).reshape(-1) * scale).astype(np.int64)
    if width == 1:
        data = (values + 128).astype(np.uint8).tobytes()
    else:
        data = b"".join(int(value).to_bytes(width, "little", signed=True) for value in values) if width == 3 else \
            values.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return str(path)


# ------------------------------------------------------------------------ audio


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_wavs_of_common_rates_are_resampled_to_16k(tmp_path, rate):
    path = str(tmp_path / f"tone_{rate}.wav")
    write_wav(path, sine(440, 1.0, rate), rate)
    samples, read_rate = read_audio(path)
    assert read_rate == rate and samples.dtype == np.float32 and samples.shape == (rate,)
    resampled = load_audio(path, 16000)
    assert resampled.dtype == np.float32 and resampled.shape == (16000,)
    assert abs(dominant_frequency(resampled, 16000) - 440) < 2
    assert 0.45 < np.abs(resampled[1000:-1000]).max() < 0.55


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_widths_and_float_wavs_are_scaled_to_unit_range(tmp_path, width):
    import scipy.io.wavfile

    path = write_pcm(tmp_path / f"pcm{width}.wav", sine(300, 0.5, 8000), 8000, width)
    samples, rate = read_audio(path)
    assert rate == 8000 and samples.shape == (4000,)
    assert abs(np.abs(samples).max() - 0.5) < 0.01 and abs(dominant_frequency(samples, rate) - 300) < 3
    float_path = str(tmp_path / "float.wav")
    scipy.io.wavfile.write(float_path, 8000, sine(300, 0.5, 8000, amplitude=1.5).astype(np.float32))
    clipped, _ = read_audio(float_path)
    assert clipped.dtype == np.float32 and clipped.max() == 1.0 and clipped.min() == -1.0


def test_stereo_is_averaged_to_mono(tmp_path):
    left = sine(440, 0.25, 16000)
    path = write_pcm(tmp_path / "stereo.wav", np.stack([left, np.zeros_like(left)], axis=1), 16000, 2, channels=2)
    samples, rate = read_audio(path)
    assert samples.shape == (4000,) and abs(np.abs(samples).max() - 0.25) < 0.01


def test_resample_keeps_length_ratio_exactly():
    assert resample(np.zeros(22050), 22050, 16000).shape == (16000,)
    assert resample(np.zeros(1000), 16000, 16000).shape == (1000,)
    assert resample(np.zeros(441), 44100, 16000).shape == (160,)
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(10), 0, 16000)


def test_unreadable_audio_names_the_file(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00this is not a wave file at all")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_pcm(tmp_path / "no_samples.wav", np.zeros(0), 16000, 2)
    for path, detail in ((garbage, ""), (empty, "empty file"), (tmp_path / "missing.wav", "no such file"),
                         (silent, "no audio samples")):
        with pytest.raises(UnreadableAudio, match=re.escape(f"{path}: unreadable audio ({detail}")) as error:
            load_audio(str(path))
        assert isinstance(error.value, DataError) and "\n" not in str(error.value)
    flac = tmp_path / "clip.flac"
    flac.write_bytes(b"fLaC not really")
    monkeypatch.setitem(__import__("sys").modules, "soundfile", None)  # as if not installed
    with pytest.raises(DataError, match=re.escape(f"{flac}: unreadable audio (.flac needs the soundfile package); "
                                                  "install it with: pip install soundfile")):
        read_audio(str(flac))


def test_flac_is_read_with_soundfile(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    path = str(tmp_path / "tone.flac")
    soundfile.write(path, sine(440, 0.5, 44100), 44100, subtype="PCM_16")
    samples = load_audio(path, 16000)
    assert samples.shape == (8000,) and abs(dominant_frequency(samples, 16000) - 440) < 3


# ------------------------------------------------------------------- transcripts


@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("  Don\u2019t   stop \u2018til\u2019 ", "don't stop 'til'"),
    ("\u201cQuoted\u201d (text) [here]; a-b: c?", "quoted text here a b c"),
    ("Mr. Smith\u2014twice\u2026", "mr smith twice"),
    ("tab\tand\nnewline", "tab and newline"),
    ("Cafe\u0301 3 & 50%", "caf\u00e9 3 & 50%"),  # NFC; digits, & and % are left to the vocabulary check
    (" .?! ", ""),
])
def test_normalize_transcript(raw, expected):
    assert normalize_transcript(raw) == expected


# ------------------------------------------------------------------------ folder


def make_speech_folder(root, count=10, rate=22050, seconds=0.5, extra_lines=(), wavs=True, columns=2):
    """An LJSpeech-style folder of `count` short tones with transcripts 'clip number <i in words>'."""
    root = str(root)
    audio_dir = os.path.join(root, "wavs") if wavs else root
    os.makedirs(audio_dir, exist_ok=True)
    lines = []
    for index in range(count):
        write_wav(os.path.join(audio_dir, f"clip{index:02d}.wav"), sine(200 + 20 * index, seconds, rate), rate)
        text = f"Clip number {number_to_words(index)}."
        lines.append(f"clip{index:02d}|{text}" if columns == 2 else f"clip{index:02d}|Clip {index}.|{text}")
    lines.extend(extra_lines)
    with open(os.path.join(root, "metadata.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return root


def folder_config(path, **fields):
    fields.setdefault("validation_fraction", 0.2)
    fields.setdefault("test_fraction", 0.2)
    return SpeechDataConfig(source="folder", path=str(path), **fields)


BAD_CASES = {
    # name: (metadata line, reason, where: "audio" or "line")
    "unreadable": ("broken|a broken file", "unreadable audio", "audio"),
    "empty": ("silent|?!", "empty transcript", "line"),
    "vocabulary": ("numbers|Room 101, caf\u00e9", "characters outside the vocabulary: '0', '1', '\u00e9'", "line"),
    "too_long": ("long|a long tone", "longer than max_seconds: 2.0 s > 1.5 s", "audio"),
    "missing": ("absent|nobody recorded this", "audio file missing", "audio"),
}


def add_bad_examples(root, names):
    wavs = os.path.join(root, "wavs")
    with open(os.path.join(wavs, "broken.wav"), "wb") as f:
        f.write(b"RIFF....WAVEnot audio")
    write_wav(os.path.join(wavs, "silent.wav"), np.zeros(100), 16000)
    write_wav(os.path.join(wavs, "numbers.wav"), np.zeros(100), 16000)
    write_wav(os.path.join(wavs, "long.wav"), sine(300, 2.0, 8000), 8000)
    return {name: os.path.join(wavs, BAD_CASES[name][0].split("|")[0] + ".wav") for name in names}


def test_folder_reads_resamples_and_splits(tmp_path):
    root = make_speech_folder(tmp_path / "corpus", count=20, rate=44100, columns=3)
    data = load(folder_config(root))
    assert {name: len(items) for name, items in data.splits.items()} == {"train": 13, "validation": 3, "test": 4}
    every = [item for items in data.splits.values() for item in items]
    assert sorted(item.id for item in every) == [f"clip{index:02d}" for index in range(20)]
    first = next(item for item in every if item.id == "clip03")
    assert first.text == "clip number three"  # the last column, normalised
    assert first.audio.dtype == np.float32 and first.audio.shape == (8000,)
    assert abs(dominant_frequency(first.audio, 16000) - 260) < 3
    assert data.report["train"]["examples"] == 13 and data.report["train"]["skipped"] == 0
    assert data.info["validation"] == "random utterances" and data.info["seconds"]["train"] == 6.5
    assert load(folder_config(root)).splits["test"][0].id == data.splits["test"][0].id  # seeded
    limited = load(folder_config(root, limit={"train": 5, "test": 2}))
    assert len(limited.splits["train"]) == 5 and len(limited.splits["test"]) == 2
    assert limited.info["available"]["train"] == 13


def test_folder_bad_examples_are_skipped_and_counted(tmp_path):
    root = make_speech_folder(tmp_path / "corpus", extra_lines=[case[0] for case in BAD_CASES.values()])
    audio = add_bad_examples(root, BAD_CASES)
    metadata = os.path.join(root, "metadata.csv")
    data = load(folder_config(root, max_seconds=1.5, test_fraction=0.2, validation_fraction=0.0))
    report = data.report["train"]
    assert report["skipped"] == 5 and len(data.splits["train"]) + len(data.splits["test"]) == 10
    assert report["skipped_reasons"] == {"unreadable audio": 1, "empty transcript": 1,
                                         "characters outside the vocabulary": 1, "longer than max_seconds": 1,
                                         "audio file missing": 1}
    examples = "\n".join(report["skipped_examples"])
    assert f"{audio['unreadable']}: unreadable audio (" not in examples  # the detail follows a colon
    assert re.search(re.escape(f"{audio['unreadable']}: unreadable audio: ") + r"\S", examples)
    assert f"{metadata}:12: empty transcript" in examples
    assert f"{metadata}:13: characters outside the vocabulary: '0', '1', '\u00e9'" in examples
    assert f"{audio['too_long']}: longer than max_seconds: 2.0 s > 1.5 s" in examples
    assert f"{audio['missing']}: audio file missing" in examples


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_folder_on_error_fail_names_the_file(tmp_path, case):
    line, reason, where = BAD_CASES[case]
    root = make_speech_folder(tmp_path / "corpus", count=3, extra_lines=[line])
    audio = add_bad_examples(root, [case])[case]
    location = audio if where == "audio" else os.path.join(root, "metadata.csv") + ":4"
    with pytest.raises(DataError, match=re.escape(f"{location}: {reason}") + r".*set data.on_error: skip") as error:
        load(folder_config(root, max_seconds=1.5, on_error="fail"))
    assert "\n" not in str(error.value)


def test_folder_with_split_subfolders_and_speakers(tmp_path):
    for split, count in (("train", 6), ("dev", 2), ("test", 3)):
        make_speech_folder(tmp_path / split, count=count, rate=8000, wavs=split != "test")
    with open(tmp_path / "train" / "speakers.csv", "w", encoding="utf-8") as f:
        f.write("clip00|alice\nclip01|bob\n")
    data = load(folder_config(tmp_path))
    assert {name: len(items) for name, items in data.splits.items()} == {"train": 6, "validation": 2, "test": 3}
    assert data.info["validation"] == "validation folder"
    assert [item.speaker for item in data.splits["train"][:3]] == ["alice", "bob", ""]
    assert data.splits["test"][2].text == "clip number two" and data.splits["test"][2].audio.shape == (8000,)


def test_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="data.path: required for data.source: folder"):
        load(SpeechDataConfig(source="folder"))
    with pytest.raises(DataError, match="data.path .*nowhere does not exist"):
        load(folder_config(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no metadata.csv .id.text lines"):
        load(folder_config(tmp_path))
    root = make_speech_folder(tmp_path / "bad", count=0, extra_lines=["a|", "b|?"])
    with pytest.raises(DataError, match=r"metadata.csv: no usable utterance \(2 skipped: empty transcript: 2\)"):
        load(folder_config(root))


# ------------------------------------------------------------------------ espeak


def tiny_espeak(**fields):
    settings = dict(utterances={"train": 8, "validation": 2, "test": 2}, voices=["en-us", "en-gb+f3"],
                    test_voices=["en-us-nyc+m4"], processes=2)
    settings.update(fields)
    return SpeechDataConfig(source="espeak", espeak=settings)


def test_number_words_and_corpus_plan():
    assert number_to_words(0) == "zero" and number_to_words(15) == "fifteen" and number_to_words(90) == "ninety"
    assert number_to_words(312) == "three hundred and twelve"
    assert number_to_words(2_000_021) == "two million and twenty one"
    assert number_to_words(123_456) == "one hundred and twenty three thousand four hundred and fifty six"
    config = EspeakConfig(utterances={"train": 300, "validation": 30, "test": 60})
    plan, shared = plan_corpus(config)
    assert plan == plan_corpus(config)[0] and plan != plan_corpus(config, seed=1)[0]
    by_split = {split: [item for item in plan if item["split"] == split] for split in ("train", "validation", "test")}
    assert [len(items) for items in by_split.values()] == [300, 30, 60]
    assert {item["voice"] for item in by_split["test"]} == set(config.test_voices)
    assert {item["voice"] for item in by_split["train"]} == set(config.voices)
    assert not {item["text"] for item in by_split["test"]} & {item["text"] for item in by_split["train"]}
    assert shared == 0
    assert {item["kind"] for item in plan} == {"words", "numbers", "sentences"}
    assert all(set(item["text"]) <= set(DEFAULT_VOCABULARY) for item in plan)
    assert all(config.speed[0] <= item["speed"] <= config.speed[1] for item in plan)


def test_espeak_config_keeps_test_voices_out_of_training():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="test_voices .'en-us'. are also in voices"):
        EspeakConfig(voices=["en-us", "en-gb"], test_voices=["en-us"])
    with pytest.raises(ValidationError, match="expected .low, high."):
        EspeakConfig(speed=(200, 100))
    with pytest.raises(ValidationError, match="not an espeak-ng voice name"):
        EspeakConfig(voices=["en-us; rm -rf"])


@needs_espeak
def test_espeak_corpus_holds_out_test_voices_and_is_cached(toolkit_home, monkeypatch):
    config = tiny_espeak()
    data = load(config)
    assert {name: len(items) for name, items in data.splits.items()} == {"train": 8, "validation": 2, "test": 2}
    assert {item.speaker for item in data.splits["test"]} == {"en-us-nyc+m4"}
    assert {item.speaker for item in data.splits["train"] + data.splits["validation"]} <= {"en-us", "en-gb+f3"}
    for item in data.splits["train"] + data.splits["test"]:
        assert item.audio.dtype == np.float32 and 0.3 < item.audio.size / 16000 < 10
        assert item.text and set(item.text) <= set(DEFAULT_VOCABULARY)
        assert 0.05 < np.abs(item.audio).max() <= 1.0
    directory = espeak_cache_dir(config)
    assert directory.startswith(os.path.join(str(toolkit_home), "data", "speech", "espeak-"))
    assert data.info["cache"] == directory and "held out" in data.provenance and "espeak-ng" in data.provenance
    assert sorted(os.listdir(directory)) == ["corpus.json", "test", "train", "utterances.csv", "validation"]

    def no_espeak(*args):
        raise AssertionError("espeak-ng called although the corpus is cached")

    monkeypatch.setattr(speech_sources, "run_espeak", no_espeak)
    again = load(config)
    assert [item.text for item in again.splits["train"]] == [item.text for item in data.splits["train"]]
    assert np.array_equal(again.splits["test"][0].audio, data.splits["test"][0].audio)
    # The same corpus read with the folder source.
    folder = load(SpeechDataConfig(source="folder", path=directory))
    assert [item.speaker for item in folder.splits["test"]] == ["en-us-nyc+m4"] * 2


@needs_espeak
def test_interrupted_generation_leaves_no_corpus(toolkit_home, monkeypatch):
    config = tiny_espeak()
    real = speech_sources.run_espeak
    calls = []

    def interrupted(*args):
        calls.append(args)
        if len(calls) > 5:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(speech_sources, "run_espeak", interrupted)
    directory = espeak_cache_dir(config)
    with pytest.raises(KeyboardInterrupt):
        load(config)
    assert not os.path.exists(directory)
    assert os.listdir(os.path.dirname(directory)) == []  # the temporary folder is gone too
    monkeypatch.setattr(speech_sources, "run_espeak", real)
    assert len(load(config).splits["train"]) == 8


@needs_espeak
def test_espeak_voice_errors(monkeypatch):
    with pytest.raises(DataError, match="voice 'xx-nosuch': espeak-ng has no voice 'xx-nosuch'.*English voices: en-gb"):
        load(tiny_espeak(voices=["en-us", "xx-nosuch"]))
    with pytest.raises(DataError, match="voice 'en-us\\+zz9': unknown variant 'zz9'"):
        load(tiny_espeak(test_voices=["en-us+zz9"]))
    monkeypatch.setattr(speech_sources.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="espeak-ng not found; install it with: sudo apt-get install espeak-ng"):
        load(tiny_espeak(seed=5))


@needs_espeak
def test_synthesize_corpus_keeps_same_settings_and_replaces_others(tmp_path, monkeypatch):
    output = str(tmp_path / "corpus")
    settings = tiny_espeak(utterances={"train": 3, "validation": 0, "test": 1}).espeak
    first = synthesize_corpus(output, settings, sample_rate=8000)
    assert first["utterances"] == {"train": 3, "validation": 0, "test": 1} and first["sample_rate"] == 8000
    assert first["utterances_per_second"] > 0 and first["generator"].startswith("espeak-ng ")
    real = speech_sources.run_espeak
    monkeypatch.setattr(speech_sources, "run_espeak", lambda *args: pytest.fail("regenerated an identical corpus"))
    assert synthesize_corpus(output, settings, sample_rate=8000) == first
    monkeypatch.setattr(speech_sources, "run_espeak", real)
    second = synthesize_corpus(output, settings, seed=9, sample_rate=8000)
    assert second["key"] != first["key"] and second["settings"]["seed"] == 9
    assert speech_sources.read_corpus_meta(output)["key"] == second["key"]
    assert sorted(os.listdir(tmp_path)) == ["corpus"]


@needs_espeak
def test_synth_speech_command_writes_a_folder_corpus(tmp_path):
    output = tmp_path / "corpus"
    result = run_cli("data", "synth-speech", "--output", output, "--utterances", "6", "--test", "2",
                     "--voices", "en-gb,en-us+m3", "--test-voices", "en-029+f2", "--seed", "3", check=True)
    assert "9 utterances (train 6, validation 1, test 2;" in result.stdout and str(output) in result.stdout
    data = load(SpeechDataConfig(source="folder", path=str(output)))
    assert {name: len(items) for name, items in data.splits.items()} == {"train": 6, "validation": 1, "test": 2}
    assert {item.speaker for item in data.splits["test"]} == {"en-029+f2"}
    refused = run_cli("data", "synth-speech", "--output", tmp_path, "--utterances", "2")
    assert refused.returncode == 2 and "is not a speech corpus written by the toolkit" in refused.stderr


# ------------------------------------------------------------------ pocketsphinx

CARDS = ["ten of clubs", "four queen of clubs", "seven of clubs", "five five",
         "eight of spades four of clubs seven of hearts"]
AUSTEN = {
    "0870": "and mister john dashwood had then leisure to consider how much there might be prudently in his power "
            "to do for them",
    "0880": "he was not an ill disposed young man",
    "0890": "unless to be rather cold hearted and rather selfish is to be ill disposed",
    "0920": "had he married a more a amiable woman he might have been made still more respectable than he was",
    "0930": "he might even have been made amiable himself",
}


@pytest.mark.skipif(not os.path.isdir(POCKETSPHINX), reason="Debian package pocketsphinx-testdata not installed "
                                                             "(sudo apt-get install pocketsphinx-testdata)")
def test_pocketsphinx_clips_are_a_test_set():
    data = load(SpeechDataConfig(source="pocketsphinx"))
    assert data.splits["train"] == [] and data.splits["validation"] == [] and len(data.splits["test"]) == 10
    texts = {item.id: item.text for item in data.splits["test"]}
    assert [texts[f"cards/{index:03d}"] for index in range(1, 6)] == CARDS
    for number, text in AUSTEN.items():
        assert texts[f"librivox/sense_and_sensibility_01_austen_64kb-{number}"] == text
    longest = max(data.splits["test"], key=lambda item: item.audio.size)
    assert longest.audio.size == 113600 and longest.speaker == "librivox"
    assert "test" in data.info["train"] and data.report["test"]["skipped"] == 0
    assert "pocketsphinx-testdata" in data.provenance


def test_pocketsphinx_missing_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(speech_sources, "POCKETSPHINX_PATH", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="not found; install the clips with: sudo apt-get install pocketsphinx-testdata"):
        load(SpeechDataConfig(source="pocketsphinx"))
    with pytest.raises(DataError, match="data.path .*: no cards/cards.transcription"):
        load(SpeechDataConfig(source="pocketsphinx", path=str(tmp_path)))


# -------------------------------------------------------------------------- TFDS


def test_tfds_speech_with_mocked_datasets(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    import toolkit.data.tfds as sources

    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: True)  # mock_data plays the download
    config = SpeechDataConfig(source="tfds", tfds_name="librispeech", tfds_data_dir=str(tmp_path), limit={"train": 5})
    with tfds.testing.mock_data(num_examples=12):
        data = load(config)
    assert len(data.splits["train"]) == 5 and data.info["features"] == ["speech", "text"]
    item = data.splits["train"][0]
    assert item.audio.dtype == np.float32 and item.text == normalize_transcript(item.text) and item.speaker
    config = SpeechDataConfig(source="tfds", tfds_name="speech_commands", tfds_data_dir=str(tmp_path))
    with tfds.testing.mock_data(num_examples=20):
        commands = load(config)
    labels = {"down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"}
    assert {item.text for items in commands.splits.values() for item in items} <= labels
    for split, items in commands.splits.items():  # mock_data gives 20 examples to every split slice
        assert len(items) + commands.report[split]["skipped_reasons"].get("class label without words", 0) == 20


def test_tfds_offline_or_without_name_is_a_clear_error(tmp_path, monkeypatch):
    import toolkit.data.tfds as sources

    with pytest.raises(DataError, match="data.tfds_name: required"):
        load(SpeechDataConfig(source="tfds"))
    monkeypatch.setattr(sources, "can_resolve", lambda host, timeout=5.0: False)
    with pytest.raises(DataError, match="TFDS dataset librispeech is not on disk .* offline"):
        load(SpeechDataConfig(source="tfds", tfds_name="librispeech", tfds_data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="data.download is false"):
        load(SpeechDataConfig(source="tfds", tfds_name="librispeech", tfds_data_dir=str(tmp_path), download=False))


def test_headerless_raw_audio_is_one_line_with_the_conversion(tmp_path):
    from toolkit.data.audio_io import read_audio

    raw = tmp_path / "clip.raw"
    raw.write_bytes(np.zeros(1600, np.int16).tobytes())
    with pytest.raises(DataError) as caught:
        read_audio(str(raw))
    message = str(caught.value)
    assert "headerless raw audio" in message and "sox -t raw" in message and "\n" not in message
    assert "samplerate must be specified" not in message
