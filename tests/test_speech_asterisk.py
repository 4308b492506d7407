"""Speech recognition on real speech: the `asterisk` data source on a tiny fake Asterisk tree (splits by name
hash, tones dropped, numbers spelled, unreadable audio skipped and counted or failing with the file named),
`model.init: run:` starting a CTC network from a tiny trained run (and refusing an incompatible one), the number
speller, and the pocketsphinx baseline of bench/asterisk_speech.py on one clip."""

import gzip
import os
import sys

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.data.asterisk import PACKAGES
from toolkit.data.audio_io import write_wav
from toolkit.errors import DataError, RecipeError, ToolkitError
from toolkit.tasks.speech_recognition.config import DEFAULT_VOCABULARY, SpeechDataConfig
from toolkit.tasks.speech_recognition.sources import SPEECH_SOURCES, asterisk_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOICE_FOLDER = "asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/en_US_f_Allison"
TRANSCRIPTS = "asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
PROMPTS = {  # name: transcript, as core-sounds-en.txt.gz writes them
    "vm-goodbye": "Goodbye!", "vm-next": "Press 6 to play the next message.", "beep": "[ascending tones]",
    "confbridge-join": "<beep ascending>", "vm-star-cancel": "press * to cancel", "digits/7": "seven",
    "spy-iax2": 'IAX (note: does not say "2")', "letters/at": "at [@]", "conf-full": "That conference is full.",
    "vm-options": "Press 1 for options", "agent-pass": "Please enter your password.", "silence/1": "[silence]",
    "vm-extension": "extension 1,234", "pbx-invalid": "I'm sorry, that's not a valid extension.",
    "vm-minutes": "minutes", "vm-empty": "This file is empty.", "cafe": "Café",
}
for index in range(24):  # more prompts, so every split has some
    PROMPTS[f"extra-{index}"] = ["hello", "goodbye", "thank you", "please hold"][index % 4]


def make_asterisk_root(root, empty=("vm-empty",)):
    """A fake unpacked Asterisk tree: every package folder (the English ones filled), tiny tone WAVs at 8 kHz."""
    for package in PACKAGES:
        os.makedirs(os.path.join(root, package), exist_ok=True)
    voice = os.path.join(root, VOICE_FOLDER)
    for index, name in enumerate(PROMPTS):
        path = os.path.join(voice, name + ".wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if name in empty:
            open(path, "wb").close()
            continue
        seconds = max(0.3, 0.07 * len(PROMPTS[name])) + 0.02 * (index % 5)  # room for CTC: >= 1 frame a character
        time = np.arange(int(8000 * seconds)) / 8000
        write_wav(path, 0.3 * np.sin(2 * np.pi * (200 + 40 * index) * time), 8000)
    transcripts = os.path.join(root, TRANSCRIPTS)
    os.makedirs(os.path.dirname(transcripts), exist_ok=True)
    with gzip.open(transcripts, "wt", encoding="utf-8") as f:
        f.write("; core sounds\n" + "".join(f"{name}: {text}\n" for name, text in PROMPTS.items()))
    return str(root)


@pytest.fixture(scope="module")
def asterisk_root(tmp_path_factory):
    return make_asterisk_root(tmp_path_factory.mktemp("asterisk"))


def load(root, seed=0, **settings):
    config = SpeechDataConfig(source="asterisk", path=root, download=False, **settings)
    return SPEECH_SOURCES.get("asterisk")(config, seed=seed, vocabulary=DEFAULT_VOCABULARY)


def test_asterisk_source_splits_by_name_drops_tones_spells_numbers_and_counts_skips(asterisk_root):
    data = load(asterisk_root)
    texts = {u.id: u.text for split in data.splits.values() for u in split}
    for name, utterances in data.splits.items():
        assert all(asterisk_split(u.id) == name for u in utterances)
    assert all(len(data.splits[name]) for name in ("train", "validation", "test"))
    assert texts["vm-next"] == "press six to play the next message"
    assert texts["vm-extension"] == "extension one thousand two hundred thirty four"
    assert texts["vm-star-cancel"] == "press star to cancel" and texts["letters/at"] == "at"
    assert texts["spy-iax2"] == "iax" and texts["digits/7"] == "seven"
    assert not {"beep", "confbridge-join", "silence/1", "vm-empty", "cafe"} & set(texts)  # tones, sound, skips
    assert data.info["sounds_dropped"] == 1 and "CC-BY-SA-3.0" in data.provenance
    reports = data.report.values()
    assert sum(r["skipped_reasons"].get("unreadable audio", 0) for r in reports) == 1
    assert sum(r["skipped_reasons"].get("characters outside the vocabulary", 0) for r in reports) == 1
    hello = next(u for split in data.splits.values() for u in split if u.id == "extra-0")
    import scipy.io.wavfile

    rate, samples = scipy.io.wavfile.read(os.path.join(asterisk_root, VOICE_FOLDER, "extra-0.wav"))
    assert rate == 8000 and hello.audio.dtype == np.float32 and hello.audio.size == 2 * len(samples)  # at 16 kHz
    # The split of a prompt depends on its name only: not on the seed, nor on the other prompts.
    again = load(asterisk_root, seed=7, limit={"train": 3})
    assert [u.id for u in again.splits["test"]] == [u.id for u in data.splits["test"]]
    shares = [asterisk_split(f"prompt-{index}") for index in range(2000)]
    assert abs(shares.count("train") / 2000 - 0.8) < 0.03 and abs(shares.count("test") / 2000 - 0.1) < 0.02


def test_asterisk_on_error_fail_names_the_file(asterisk_root):
    with pytest.raises(DataError) as error:
        load(asterisk_root, on_error="fail")
    message = str(error.value)
    assert "\n" not in message and "set data.on_error: skip" in message
    assert os.path.join(VOICE_FOLDER, "cafe.wav") in message or os.path.join(VOICE_FOLDER, "vm-empty.wav") in message


def test_asterisk_missing_tree_is_one_line(tmp_path):
    with pytest.raises(DataError, match="toolkit data fetch asterisk") as error:
        load(str(tmp_path / "nothing"))
    assert "\n" not in str(error.value)


def test_number_speller():
    from toolkit.tasks.speech_recognition.spoken_numbers import number_words, ordinal_words, spell_numbers

    assert number_words(999_999_999_999).startswith("nine hundred ninety nine billion")
    assert number_words(1_000_000) == "one million" and number_words(101) == "one hundred one"
    assert ordinal_words(20) == "twentieth" and spell_numbers("the 3rd floor") == "the third floor"
    assert spell_numbers("dial 0 or 0042") == "dial zero or zero zero four two"
    with pytest.raises(ValueError):
        number_words(10 ** 12)


# ------------------------------------------------------------------- model.init


def tiny_recipe(root, data_root, **model):
    return load_recipe({
        "task": "speech_recognition", "name": model.pop("name", "tiny"),
        "data": {"source": "asterisk", "path": data_root, "download": False, "sample_rate": 16000},
        "features": {"num_mel_bins": 16, "upper_hz": 4000},
        "spec_augment": {"freq_masks": 0, "time_masks": 0},
        "model": {"conv_filters": 4, "conv_kernel": [3, 3], "rnn_units": 8, "rnn_layers": 1, "dropout": 0.0,
                  **model},
        "decoding": {"method": "greedy"},
        "train": {"epochs": 1, "batch_size": 8, "verbose": 0,
                  "schedule": {"name": "constant"}},
        "export": {"formats": []},
        "output": {"dir": str(root)},
    })


@pytest.fixture(scope="module")
def tiny_asterisk_run(tmp_path_factory, asterisk_root):
    import toolkit

    root = tmp_path_factory.mktemp("runs")
    return toolkit.train(tiny_recipe(root, asterisk_root), log=lambda line: None)


def test_model_init_starts_from_the_run_weights(tiny_asterisk_run, asterisk_root, tmp_path):
    import toolkit

    recipe = tiny_recipe(tmp_path, asterisk_root, init=f"run:{tiny_asterisk_run.path}", name="tuned").model_dump()
    recipe["train"]["epochs"] = 0  # evaluate the initial weights as they are
    recipe["model"]["dropout"] = 0.2  # does not shape the weights: allowed
    tuned = toolkit.train(load_recipe(recipe), log=lambda line: None)
    theirs, mine = toolkit.load(tiny_asterisk_run.path).handle, toolkit.load(tuned.path).handle
    for layer in mine.layers:
        if layer.weights and layer.name != "spec_augment":
            for a, b in zip(layer.get_weights(), theirs.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    assert tuned.metrics["test"]["cer"] == pytest.approx(tiny_asterisk_run.metrics["test"]["cer"])


@pytest.mark.parametrize("change, expected", [
    ({"rnn_units": 12}, "model.rnn_units 8 there, 12 here"),
    ({"features": {"num_mel_bins": 20, "upper_hz": 4000}}, "features.num_mel_bins 16 there, 20 here"),
    ({"vocabulary": "abcdefghijklmnopqrstuvwxyz "}, "vocabulary"),
])
def test_model_init_refuses_an_incompatible_run(tiny_asterisk_run, asterisk_root, tmp_path, change, expected):
    from toolkit.tasks import make_task

    recipe = tiny_recipe(tmp_path, asterisk_root, init=f"run:{tiny_asterisk_run.path}").model_dump()
    for key, value in change.items():
        if key in ("features", "vocabulary"):
            recipe[key] = value if key == "vocabulary" else {**recipe[key], **value}
        else:
            recipe["model"][key] = value
    with pytest.raises(RecipeError) as error:
        make_task(load_recipe(recipe)).check_references()
    message = str(error.value)
    assert "\n" not in message and message.startswith("model.init: run:") and expected in message
    assert "set the same vocabulary, data.sample_rate, features and model sizes" in message


def test_model_init_refuses_other_tasks_and_bad_references(tmp_path, asterisk_root):
    import zipfile

    from toolkit.tasks import make_task

    other = tmp_path / "classifier"
    other.mkdir()
    with zipfile.ZipFile(other / "model.keras", "w") as archive:
        archive.writestr("toolkit.json", '{"task": "image_classification"}')
    with pytest.raises(RecipeError, match=r"is a image_classification run; model.init takes a speech_recognition CTC"):
        make_task(tiny_recipe(tmp_path, asterisk_root, init=f"run:{other}")).check_references()
    with pytest.raises(RecipeError, match="no such run directory"):
        make_task(tiny_recipe(tmp_path, asterisk_root, init=f"run:{tmp_path / 'none'}")).check_references()
    with pytest.raises(ToolkitError, match=r"write run:<run directory>"):
        tiny_recipe(tmp_path, asterisk_root, init="saved_models/espeak_ctc")
    with pytest.raises(ToolkitError, match="give one of them"):
        tiny_recipe(tmp_path, asterisk_root, init=f"run:{other}", pretrained="hub:whisper_tiny_en")


def test_recipes_load():
    espeak = load_recipe(os.path.join(REPO, "recipes/speech_recognition/espeak_ctc.yaml"))
    tuned = load_recipe(os.path.join(REPO, "recipes/speech_recognition/asterisk_finetune.yaml"))
    assert "asterisk" in espeak.extra_tests and tuned.data.source == "asterisk"
    assert tuned.model.init.startswith("run:") and tuned.model.init.endswith(os.path.join("saved_models", "espeak_ctc"))
    same = ("conv_filters", "conv_kernel", "time_stride", "rnn", "rnn_units", "rnn_layers")
    assert [getattr(tuned.model, k) for k in same] == [getattr(espeak.model, k) for k in same]
    assert tuned.features == espeak.features and tuned.data.sample_rate == espeak.data.sample_rate
    assert tuned.train.optimizer.learning_rate < espeak.train.optimizer.learning_rate


def test_extra_test_from_a_source_with_its_own_splits(tiny_asterisk_run, asterisk_root):
    """`extra_tests: [asterisk]` scores the asterisk test split only (here on the tiny run itself)."""
    import toolkit
    from toolkit.tasks import make_task

    recipe = load_recipe(os.path.join(tiny_asterisk_run.path, "recipe.yaml")).model_dump()
    recipe["extra_tests"] = ["asterisk"]
    task = make_task(load_recipe(recipe))
    metrics = task.evaluate(toolkit.load(tiny_asterisk_run.path).handle)
    extra = metrics["out_of_domain"]["asterisk"]
    assert extra["examples"] == len(task.data.splits["test"]) and "Asterisk" in extra["provenance"]


# ------------------------------------------------------------------ pocketsphinx


def test_pocketsphinx_baseline_on_one_clip(asterisk_root):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install pocketsphinx)")
    sys.path.insert(0, os.path.join(REPO, "bench"))
    try:
        import asterisk_speech
    finally:
        sys.path.remove(os.path.join(REPO, "bench"))
    decoder = asterisk_speech.pocketsphinx_decoder()
    time = np.arange(16000) / 16000
    transcript = asterisk_speech.pocketsphinx_transcribe(decoder, 0.3 * np.sin(2 * np.pi * 440 * time))
    assert isinstance(transcript, str) and transcript == transcript.lower() and not any(c.isdigit() for c in transcript)
    result = asterisk_speech.scores(["hello there"], [transcript])
    assert result["wer"] >= 0 and result["cer"] >= 0
    coverage = asterisk_speech.out_of_vocabulary(["press one now", "press two"], ["press", "one"])
    assert coverage["oov_tokens"] == pytest.approx(2 / 5) and coverage["oov_types"] == pytest.approx(2 / 4)
