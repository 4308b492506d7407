"""Audio classification: sources (class folders, manifests, the Asterisk language set on a fake package tree,
spoken digits), each bad-file case, windows and in-graph resampling, a tiny classifier overfitting a few clips,
export parity, WAV bytes at 8, 16 and 44.1 kHz giving the same label, prediction in every runtime, a speech
recognition run as the encoder, and recipe errors."""

import gzip
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.data.audio_io import write_wav
from toolkit.errors import DataError, RecipeError, ToolkitError

from conftest import run_cli

RATE = 8000
TONES = {"low": 300.0, "mid": 800.0, "high": 1800.0}


def tone(freq, seconds, rate=RATE, seed=0, level=0.3):
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t) + 0.01 * rng.randn(t.size)).astype(np.float32)


def make_class_folder(root, speakers=4, per_speaker=2, split_folders=False):
    """<root>/<class>/<speaker>_<n>.wav tones (a class is a pitch); with split_folders, train/ and test/ hold the
    same clips (to check overfitting)."""
    rng = np.random.RandomState(0)
    targets = [os.path.join(root, "train"), os.path.join(root, "test")] if split_folders else [root]
    for label, freq in TONES.items():
        for speaker in range(speakers):
            for index in range(per_speaker):
                wave = tone(freq * (1 + 0.03 * speaker), rng.uniform(0.5, 2.5), seed=speaker * 10 + index)
                for target in targets:
                    os.makedirs(os.path.join(target, label), exist_ok=True)
                    write_wav(os.path.join(target, label, f"s{speaker}_{index}.wav"), wave, RATE)
    return root


def recipe_dict(data, output, **changes):
    recipe = {
        "task": "audio_classification",
        "data": {"source": "folder", "path": str(data), "sample_rate": RATE, "window_seconds": 1.0,
                 "speaker_pattern": "^([^_]+)_",
                 "hop_seconds": 0.5, **changes.pop("data", {})},
        "features": {"num_mel_bins": 20, "fft_length": 256, "upper_hz": 3800},
        "spec_augment": {"freq_masks": 0, "time_masks": 0},
        "model": {"encoder": "cnn", "filters": [8, 16], "dropout": 0.0, **changes.pop("model", {})},
        "train": {"epochs": 30, "batch_size": 8, "verbose": 0, "optimizer": {"learning_rate": 0.01},
                  "schedule": {"name": "constant"}, **changes.pop("train", {})},
        "export": {"formats": ["saved_model", "onnx", "tflite", "tflite_int8"], "verify_samples": 6},
        "output": {"dir": str(output)},
    }
    recipe.update(changes)
    return recipe


def write_yaml(path, recipe):
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(recipe, f)
    return str(path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny CNN trained until it overfits a few tone clips (train/ and test/ hold the same clips), exported to
    every format and verified, through the CLI."""
    root = tmp_path_factory.mktemp("audio")
    data = make_class_folder(str(root / "clips"), speakers=2, per_speaker=2, split_folders=True)
    recipe = write_yaml(root / "tiny_audio.yaml", recipe_dict(data, root / "runs"))
    env = {"TOOLKIT_HOME": str(root / "home"), "KERAS_HOME": str(root / "home" / "keras")}
    result = run_cli("train", recipe, check=True, env=env)
    return {"run_dir": str(root / "runs" / "tiny_audio"), "data": data, "stdout": result.stdout, "env": env,
            "root": root}


# ------------------------------------------------------------------------------------------ sources


def test_folder_source_keeps_speakers_apart_and_counts_bad_files(tmp_path):
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES

    root = make_class_folder(str(tmp_path / "clips"), speakers=5, per_speaker=2)
    with open(os.path.join(root, "low", "s9_broken.wav"), "wb") as f:
        f.write(b"RIFF not really audio")
    open(os.path.join(root, "low", "s9_empty.wav"), "wb").close()
    write_wav(os.path.join(root, "mid", "s9_blip.wav"), np.zeros(40), RATE)  # 5 ms: below min_seconds
    write_wav(os.path.join(root, "high", "s9_long.wav"), np.zeros(RATE * 4), RATE)
    config = AudioClassDataConfig(path=root, sample_rate=RATE, speaker_pattern="^([^_]+)_", max_seconds=3.0,
                                  test_fraction=0.2, validation_fraction=0.25)
    data = AUDIO_CLASS_SOURCES.get("folder")(config, seed=0)
    assert data.class_names == ["high", "low", "mid"]
    speakers = {split: {c.speaker for c in clips} for split, clips in data.splits.items()}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["validation"]
    assert sum(len(clips) for clips in data.splits.values()) == 30
    reasons = data.report["train"]["skipped_reasons"]
    assert reasons == {"unreadable audio": 2, "clip shorter than min_seconds": 1, "clip longer than max_seconds": 1}
    assert any("s9_empty.wav" in line and "empty file" in line for line in data.report["train"]["skipped_examples"])
    with pytest.raises(DataError, match=r"s9_(broken|empty|long|blip)\.wav: "):
        AUDIO_CLASS_SOURCES.get("folder")(config.model_copy(update={"on_error": "fail"}), seed=0)
    # Without a speaker pattern the clips are cut one by one; data.classes refuses other labels (counted).
    config = AudioClassDataConfig(path=root, sample_rate=RATE, classes=["low", "mid"], max_seconds=3.0)
    data = AUDIO_CLASS_SOURCES.get("folder")(config, seed=0)
    assert data.class_names == ["low", "mid"] and data.report["train"]["skipped_reasons"]["unknown label"] == 11


def test_manifest_source_reads_splits_speakers_and_refuses_bad_rows(tmp_path):
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES

    os.makedirs(tmp_path / "audio")
    rows = ["path,label,speaker,split"]
    for index in range(8):
        label = "low" if index % 2 else "high"
        write_wav(tmp_path / "audio" / f"{index}.wav", tone(TONES[label], 1.0, rate=16000), 16000)
        rows.append(f"audio/{index}.wav,{label},spk{index % 4},{'test' if index >= 6 else 'train'}")
    rows += ["audio/missing.wav,low,spk0,train", ",low,spk0,train", "audio/0.wav,,spk0,train"]
    (tmp_path / "clips.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = AudioClassDataConfig(source="manifest", path=str(tmp_path / "clips.csv"), sample_rate=RATE)
    data = AUDIO_CLASS_SOURCES.get("manifest")(config, seed=0)
    assert {split: len(clips) for split, clips in data.splits.items()} == {"train": 5, "validation": 1, "test": 2}
    assert data.splits["test"][0].audio.shape == (RATE,)  # resampled from 16 kHz
    assert data.report["train"]["skipped_reasons"] == {"audio file missing": 1, "bad row": 1, "empty label": 1}
    (tmp_path / "bad.csv").write_text("file,class\na.wav,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv:1: no 'path' column"):
        AUDIO_CLASS_SOURCES.get("manifest")(config.model_copy(update={"path": str(tmp_path / "bad.csv")}), seed=0)
    with pytest.raises(DataError, match=r"missing.wav.*audio file missing"):
        AUDIO_CLASS_SOURCES.get("manifest")(config.model_copy(update={"on_error": "fail"}), seed=0)


def make_fake_asterisk(root):
    """The layout `toolkit data fetch asterisk` writes, with a few seconds of tones per voice (a language is a
    pitch), English transcripts with a tone prompt, an empty WAV, and GSM files for the armelle voice."""
    import soundfile

    from toolkit.data.asterisk import PACKAGES, SOUNDS, TRANSCRIPT_PACKAGES, VOICES

    for package in PACKAGES:
        os.makedirs(os.path.join(root, package), exist_ok=True)
    pitches = {"en": 250.0, "es": 500.0, "fr": 900.0, "it": 1400.0, "ru": 2000.0}
    for number, voice in enumerate(VOICES):
        folder = os.path.join(root, voice.package, SOUNDS, voice.folder)
        os.makedirs(os.path.join(folder, "digits"), exist_ok=True)
        os.makedirs(os.path.join(folder, "silence"), exist_ok=True)
        for index in range(12):
            wave = tone(pitches[voice.language] * (1 + 0.02 * (number % 2)), 1.2 + 0.1 * (index % 5), seed=index)
            name = os.path.join(folder, f"prompt-{index}")
            if voice.speaker == "armelle":
                soundfile.write(name + ".gsm", wave, RATE, format="RAW", subtype="GSM610")
            else:
                write_wav(name + ".wav", wave, RATE)
        for digit in range(10):
            write_wav(os.path.join(folder, "digits", f"{digit}.wav"), tone(300 + 150 * digit, 0.6), RATE)
        write_wav(os.path.join(folder, "beep.wav"), tone(1000, 0.3), RATE)
        write_wav(os.path.join(folder, "silence", "1.wav"), np.zeros(RATE), RATE)
        if voice.speaker == "ivrvoice":
            open(os.path.join(folder, "is.wav"), "wb").close()  # as in the real Russian package
    doc = os.path.join(root, TRANSCRIPT_PACKAGES["en"], "usr/share/doc", TRANSCRIPT_PACKAGES["en"])
    os.makedirs(doc)
    with gzip.open(os.path.join(doc, "core-sounds-en.txt.gz"), "wt", encoding="utf-8") as f:
        f.write("; Core Asterisk Sounds in English\n\nbeep: [this is a simple beep tone]\n"
                + "".join(f"prompt-{index}: Prompt number {index}.\n" for index in range(12)))
    return str(root)


def test_asterisk_language_holds_out_test_speakers(tmp_path):
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES

    root = make_fake_asterisk(tmp_path / "asterisk")
    config = AudioClassDataConfig(source="asterisk_language", sample_rate=RATE, download=False,
                                  asterisk={"path": root})
    data = AUDIO_CLASS_SOURCES.get("asterisk_language")(config, seed=0)
    assert data.class_names == ["en", "es", "fr", "it", "ru"]
    test_speakers = {c.speaker for c in data.splits["test"]}
    heard = {c.speaker for split in ("train", "validation") for c in data.splits[split]}
    assert {"es-co", "armelle", "carlo"} <= test_speakers and not {"es-co", "armelle", "carlo"} & heard
    ids = [c.id for clips in data.splits.values() for c in clips]
    assert not any("beep" in i or "silence/" in i for i in ids)  # tones and silences are not speech
    assert any(i.startswith("fr_FR_f_Armelle/") for i in ids)  # GSM files are read
    assert data.report["train"]["skipped_reasons"].get("unreadable audio", 0) + data.report["test"][
        "skipped_reasons"].get("unreadable audio", 0) + data.report["validation"]["skipped_reasons"].get(
        "unreadable audio", 0) == 1  # the empty Russian is.wav
    # One-speaker languages are split by prompt name: the same prompt is never in two splits.
    english = {split: {c.id for c in clips if c.label == "en"} for split, clips in data.splits.items()}
    assert not english["train"] & english["test"] and english["test"]
    with pytest.raises(DataError, match="test_speakers.fr: no speaker 'nobody'"):
        AUDIO_CLASS_SOURCES.get("asterisk_language")(
            config.model_copy(update={"asterisk": config.asterisk.model_copy(update={"test_speakers": {
                "fr": "nobody"}})}), seed=0)
    missing = AudioClassDataConfig(source="asterisk_language", download=False,
                                   asterisk={"path": str(tmp_path / "none")})
    with pytest.raises(DataError, match="toolkit data fetch asterisk"):
        AUDIO_CLASS_SOURCES.get("asterisk_language")(missing, seed=0)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian espeak-ng is not installed (make test installs it as root; else apt-get install espeak-ng)")
def test_asterisk_language_adds_espeak_voices_reading_training_transcripts(tmp_path):
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES, _prompt_split

    root = make_fake_asterisk(tmp_path / "asterisk")
    config = AudioClassDataConfig(source="asterisk_language", sample_rate=RATE, download=False,
                                  asterisk={"path": root, "languages": ["en"], "synthetic_per_language": 3})
    data = AUDIO_CLASS_SOURCES.get("asterisk_language")(config, seed=0)
    synthetic = [c for c in data.splits["train"] if c.group == "espeak"]
    assert len(synthetic) == 3 and {c.label for c in synthetic} == {"en"}
    assert not any(c.group == "espeak" for split in ("validation", "test") for c in data.splits[split])
    # only transcripts of training prompts are read aloud: a test sentence is never heard in training
    test_names = {f"prompt-{i}" for i in range(12) if _prompt_split(f"prompt-{i}") == "test"}
    assert test_names  # the fake tree has test prompts
    french = config.model_copy(update={"asterisk": config.asterisk.model_copy(update={"languages": ["fr"]})})
    with pytest.raises(DataError, match="no fr transcripts .*asterisk-core-sounds-fr"):
        AUDIO_CLASS_SOURCES.get("asterisk_language")(french, seed=0)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian espeak-ng is not installed (make test installs it as root; else apt-get install espeak-ng)")
def test_spoken_digits_train_on_espeak_test_on_real_digits(tmp_path):
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES

    root = make_fake_asterisk(tmp_path / "asterisk")
    config = AudioClassDataConfig(source="spoken_digits", sample_rate=RATE, download=False,
                                  asterisk={"path": root}, digits={"languages": ["en", "fr"], "per_digit": 1,
                                                                    "validation_per_digit": 1})
    data = AUDIO_CLASS_SOURCES.get("spoken_digits")(config, seed=0)
    assert data.class_names == [str(digit) for digit in range(10)]
    assert len(data.splits["train"]) == 20 and len(data.splits["validation"]) == 20
    # test: the real digits of every English and French voice (Allison, June, Armelle), grouped by language
    assert len(data.splits["test"]) == 30 and {c.group for c in data.splits["test"]} == {"en", "fr"}
    assert {c.speaker for c in data.splits["test"]} == {"allison", "june", "armelle"}
    assert all("+" in c.speaker or c.speaker in {"en-us", "en-gb", "fr-fr", "fr-be", "fr-ch", "en-029",
                                                   "en-gb-scotland", "en-gb-x-rp", "en-us-nyc"}
               for c in data.splits["train"])
    again = AUDIO_CLASS_SOURCES.get("spoken_digits")(config, seed=0)  # cached: the same clips
    np.testing.assert_array_equal(again.splits["train"][3].audio, data.splits["train"][3].audio)


# ------------------------------------------------------------------------------ windows and resampling


def test_windows_and_resampling_agree_between_numpy_and_the_graph():
    import tensorflow as tf

    from toolkit.data.audio_io import resample
    from toolkit.tasks.audio.windows import numpy_windows, tf_resample, tf_windows

    wave = tone(440, 2.3)
    for length in (100, 8000, 18400):
        expected, sizes = numpy_windows(wave[:length], 8000, 4000)
        got, got_sizes = tf_windows(tf.constant(wave[:length]), 8000, 4000)
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(got_sizes.numpy(), sizes)
    from toolkit.tasks.audio.windows import window_starts

    assert window_starts(18400, 8000, 4000) == [0, 4000, 8000, 10400]  # the last window ends at the clip's end
    for rate in (16000, 44100):
        high = tone(440, 1.0, rate=rate)
        down = tf_resample(tf.constant(high), rate, RATE).numpy()
        reference = resample(high, rate, RATE)
        assert down.shape == reference.shape
        assert np.max(np.abs(down[200:-200] - reference[200:-200])) < 0.02  # edges differ (periodic FFT)


def test_speed_perturbation_and_band_normalisation():
    import keras

    from toolkit.tasks.audio_classification.model import band_mean_normalised
    from toolkit.tasks.audio_classification.task import change_speed

    faster = change_speed(tone(400, 1.0, level=0.5), 1.25)
    assert faster.size == 6400
    spectrum = np.abs(np.fft.rfft(faster))
    assert abs(np.argmax(spectrum) * RATE / faster.size - 500) < 5  # 400 Hz played 1.25x faster
    rng = np.random.RandomState(0)
    features = rng.randn(2, 30, 8).astype(np.float32)
    features[1, 20:] = 0.0  # padding frames
    shifted = features + rng.randn(1, 1, 8).astype(np.float32) * (features != 0).any(-1, keepdims=True)
    one, two = (np.asarray(band_mean_normalised(keras.ops.convert_to_tensor(f))) for f in (features, shifted))
    np.testing.assert_allclose(one, two, atol=1e-5)  # a constant channel colouring is removed
    assert np.all(one[1, 20:] == 0) and abs(one[0].mean(axis=0)).max() < 1e-5
    from toolkit.data.audio_io import gsm_round_trip

    for rate in (8000, 16000):  # the telephone codec: same length, audibly coded, still the same sound
        clean = tone(440, 0.5, rate=rate)
        coded = gsm_round_trip(clean, rate)
        assert coded.shape == clean.shape and 0 < np.mean(np.abs(coded - clean)) < 0.1
        assert np.corrcoef(clean[800:-800], coded[800:-800])[0, 1] > 0.9


def test_noise_mixing_hits_the_signal_to_noise_ratio(tmp_path):
    from toolkit.tasks.audio_classification.task import mix_noise

    wave = tone(440, 1.0)
    for bank in (None, [np.random.RandomState(1).randn(3000).astype(np.float32)]):
        mixed = mix_noise(wave, np.random.RandomState(0), (10.0, 10.0), bank)
        noise = mixed - wave
        snr = 10 * np.log10(np.mean(wave ** 2) / np.mean(noise ** 2))
        assert abs(snr - 10.0) < 0.5


# ------------------------------------------------------------------------------ training and export


def test_tiny_classifier_overfits_and_every_export_agrees(tiny_run):
    run_dir = tiny_run["run_dir"]
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)["test"]
    assert metrics["accuracy"] == 1.0 and metrics["window_accuracy"] >= 0.9  # test/ holds the training clips
    assert set(metrics["per_speaker"]) == {"s0", "s1"} and len(metrics["confusion_matrix"]) == 3
    with open(os.path.join(run_dir, "export", "verify.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["passed"], report
    assert set(report["formats"]) == {"saved_model", "onnx", "tflite", "tflite_int8"}
    assert report["formats"]["onnx"]["endpoints"]["onnx"]["max_abs_diff"] < 1e-4
    assert set(report["formats"]["saved_model"]["endpoints"]) == {"serving_default", "serve_waveform"}
    card = open(os.path.join(run_dir, "MODEL_CARD.md"), encoding="utf-8").read()
    assert "Per speaker" in card and os.path.isfile(os.path.join(run_dir, "confusion_matrix.png"))


def test_saved_model_hears_wav_bytes_at_any_rate(tiny_run):
    import tensorflow as tf

    from toolkit.data.audio_io import resample

    loaded = tf.saved_model.load(os.path.join(tiny_run["run_dir"], "export", "saved_model"))
    clip = tone(TONES["high"], 1.7, rate=44100)
    encoded = []
    for rate in (8000, 16000, 44100):
        buffer = io.BytesIO()
        write_wav(buffer, resample(clip, 44100, rate), rate)
        encoded.append(buffer.getvalue())
    answer = loaded.signatures["serving_default"](wav_bytes=tf.constant(encoded))
    assert [label.decode() for label in answer["label"].numpy()] == ["high"] * 3
    probabilities = answer["probabilities"].numpy()
    assert np.max(np.abs(probabilities - probabilities[0])) < 0.05
    assert answer["window_count"].numpy().tolist() == [3, 3, 3]  # 1.7 s: windows at 0, 0.5 and 0.7 s
    assert answer["window_probabilities"].numpy().shape == (3, 3, 3)
    by_wave = loaded.signatures["serve_waveform"](
        waveform=tf.constant(clip[None]), lengths=tf.constant([clip.size], tf.int32),
        sample_rate=tf.constant(44100, tf.int32))
    assert by_wave["label"].numpy()[0].decode() == "high"


def test_predict_in_every_runtime_names_the_windows(tiny_run, tmp_path):
    run_dir = tiny_run["run_dir"]
    clip = os.path.join(tiny_run["data"], "test", "low", "s0_0.wav")
    path = tmp_path / "low_22k.wav"
    from toolkit.data.audio_io import load_audio

    write_wav(path, load_audio(clip, 22050), 22050)
    from toolkit import api
    from toolkit.tasks.audio.windows import window_starts

    seconds = load_audio(str(path), RATE).size / RATE
    starts = [round(start / RATE, 3) for start in window_starts(int(seconds * RATE), RATE, RATE // 2)]
    labels = {}
    for model in ("", "export/saved_model", "export/model.tflite"):
        answer = api.predict(os.path.join(run_dir, model), [str(path)])[0]
        labels[model] = answer["label"]
        assert [w["start_seconds"] for w in answer["windows"]] == starts
        assert answer["realtime_factor"] < 5
    # ONNX through the CLI: NumPy windows and features, no TensorFlow
    result = run_cli("predict", os.path.join(run_dir, "export/model.onnx"), path, "--json", env=tiny_run["env"])
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)["predictions"][0]
    labels["onnx"] = answer["label"]
    assert len(answer["windows"]) == len(starts) and answer["top_k"][0]["label"] == answer["label"]
    assert set(labels.values()) == {"low"}, labels
    result = run_cli("predict", os.path.join(run_dir, "export/model.onnx"), tmp_path / "nothing.wav",
                     env=tiny_run["env"])
    assert result.returncode != 0 and "nothing.wav" in result.stderr and "Traceback" not in result.stderr


def test_a_speech_recognition_run_is_the_encoder(tmp_path):
    """A CTC speech model saved as a run: its convolution + recurrent stack becomes the frozen, then fine-tuned,
    encoder; its weights arrive unchanged; other runs and other features are refused in one line."""
    import keras

    from toolkit import api
    from toolkit.model_io import save_model
    from toolkit.tasks import make_task

    speech = load_recipe("recipes/speech_recognition/espeak_ctc.yaml").model_dump()
    speech["data"]["sample_rate"] = RATE
    speech["features"].update(num_mel_bins=20, fft_length=256, upper_hz=3800)
    speech["model"].update(conv_filters=4, conv_kernel=[3, 5], rnn_units=8, rnn_layers=1, time_stride=2)
    speech_task = make_task(load_recipe(speech))
    speech_model = speech_task.build_model()
    speech_dir = tmp_path / "speech_run"
    os.makedirs(speech_dir)
    metadata = {"task": "speech_recognition", "input": "audio", "sample_rate": RATE,
                "features": speech["features"], "model": speech["model"], "vocabulary": speech["vocabulary"]}
    save_model(speech_model, str(speech_dir / "model.keras"), metadata)

    data = make_class_folder(str(tmp_path / "clips"), speakers=3, per_speaker=2)
    recipe = recipe_dict(data, tmp_path / "runs", model={"encoder": f"run:{speech_dir}"},
                         train={"epochs": 2, "fine_tune": {"frozen_epochs": 1, "unfreeze": "all"}})
    recipe["export"]["formats"] = ["onnx"]
    recipe["name"] = "from_speech"
    run = api.train(recipe)
    model = keras.models.load_model(os.path.join(run.path, "model.keras"), safe_mode=True)
    encoder = model.get_layer("speech_encoder")
    assert encoder.count_params() < model.count_params()
    with open(os.path.join(run.path, "export", "verify.json"), encoding="utf-8") as f:
        assert json.load(f)["passed"]

    recipe["features"]["num_mel_bins"] = 40
    with pytest.raises(RecipeError, match=r"hears other features \(num_mel_bins differ\); set features.num_mel_bins: 20"):
        make_task(load_recipe(recipe)).build_model()
    other = tmp_path / "other_run"
    os.makedirs(other)
    with zipfile.ZipFile(other / "model.keras", "w") as archive:
        archive.writestr("toolkit.json", json.dumps({"task": "image_classification"}))
    recipe["model"]["encoder"] = f"run:{other}"
    with pytest.raises(RecipeError, match="is a image_classification run; model.encoder takes a CTC speech"):
        make_task(load_recipe(recipe)).check_references()


def test_attention_encoder_exports_batch_one_tflite(tmp_path):
    """The GRU encoder with attention pooling: trained, exported to ONNX (any batch) and TFLite (batch 1: the
    recurrent loop converts to builtin ops only with a static batch, and has no int8 file), verified."""
    from toolkit import api
    from toolkit.exporters.tflite import load_tflite

    data = make_class_folder(str(tmp_path / "clips"), speakers=3, per_speaker=1)
    recipe = recipe_dict(data, tmp_path / "runs", model={"encoder": "attention", "filters": [8], "rnn_units": 8,
                                                         "pooling": "attention", "attention_units": 8},
                         train={"epochs": 1})
    recipe["export"]["formats"] = ["onnx", "tflite"]
    recipe["name"] = "attention"
    run = api.train(recipe)
    with open(os.path.join(run.path, "export", "verify.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["passed"] and set(report["formats"]) == {"onnx", "tflite"}
    session = load_tflite(os.path.join(run.path, "export", "model.tflite"))
    assert session.get_inputs()[0].shape[:2] == [1, 98]  # one 1-s window of 10 ms frames
    with pytest.raises(ToolkitError, match="cannot calibrate this audio_classification model.s recurrent layers"):
        api.export(run.path, formats=["tflite_int8"], log=lambda line: None)


@pytest.mark.parametrize("change, message", [
    ({"model": {"encoder": "hub:whisper_tiny_en"}}, "hub: \\(Whisper\\) encoders are not supported"),
    ({"data": {"hop_seconds": 2.0}}, "hop_seconds \\(2.0\\) is above window_seconds"),
    ({"features": {"upper_hz": 7600}}, "upper_hz \\(7600.0\\) is above half the sample rate"),
    ({"model": {"encoder": "resnet"}}, "write cnn, attention or run:"),
    ({"train": {"fine_tune": {"frozen_epochs": 2}}}, "only a run: encoder is pretrained"),
])
def test_recipe_errors_are_one_line(tmp_path, change, message):
    recipe = recipe_dict(tmp_path, tmp_path / "runs")
    for key, value in change.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    with pytest.raises(ToolkitError, match=message):
        load_recipe(recipe)


def test_shipped_recipes_load():
    from toolkit.tasks import make_task

    for name in ("asterisk_language", "spoken_digits"):
        recipe = load_recipe(f"recipes/audio_classification/{name}.yaml")
        assert make_task(recipe).name == "audio_classification"


def test_serve_answers_the_toolkit_and_tf_serving_formats(tiny_run):
    import base64
    import urllib.request

    from toolkit.inference import load
    from toolkit.serving import Server, resolve_model

    export = os.path.join(tiny_run["run_dir"], "export")
    clips = [os.path.join(tiny_run["data"], "test", label, "s1_0.wav") for label in ("high", "low")]
    instances = []
    for path in clips:
        with open(path, "rb") as f:
            instances.append({"b64": base64.b64encode(f.read()).decode("ascii")})

    def call(url, payload):
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    for runtime in ("saved_model", "onnx"):
        model = load(resolve_model(export, runtime))
        server = Server(model, name="tiny").start(port=0)
        try:
            url = server.url + "/v1/models/tiny:predict"
            answer = call(url, {"signature_name": "toolkit", "instances": instances})
            assert [p["label"] for p in answer["predictions"]] == ["high", "low"]
            if runtime == "saved_model":  # TF Serving's format: WAV bytes into serving_default
                answer = call(url, {"instances": [{"wav_bytes": item} for item in instances]})
                assert [p["label"] for p in answer["predictions"]] == ["high", "low"], answer
        finally:
            server.stop()


def test_tfds_speech_commands_is_read_by_name(tmp_path, monkeypatch):
    """speech_commands through tfds.testing.mock_data (random audio and labels); its mock has no stored split
    metadata, so the on-disk check of prepare_tfds is bypassed and everything after it runs as for real data."""
    import tensorflow_datasets as tfds

    import toolkit.data.tfds
    from toolkit.tasks.audio_classification.config import AudioClassDataConfig
    from toolkit.tasks.audio_classification.sources import AUDIO_CLASS_SOURCES

    def mocked(name, config):
        builder = tfds.builder(name, data_dir=config.tfds_data_dir)
        return builder, builder.info

    monkeypatch.setattr(toolkit.data.tfds, "prepare_tfds", mocked)
    config = AudioClassDataConfig(source="tfds", tfds_name="speech_commands", sample_rate=RATE,
                                  tfds_data_dir=str(tmp_path / "tfds"), limit={"train": 6}, min_seconds=0.0)
    with tfds.testing.mock_data(num_examples=10, data_dir=str(tmp_path / "tfds")):
        data = AUDIO_CLASS_SOURCES.get("tfds")(config, seed=0)
    assert "yes" in data.class_names and len(data.class_names) == 12  # the dataset's own label names
    assert len(data.splits["train"]) == 6 and data.splits["test"]
    assert data.splits["train"][0].audio.dtype == np.float32 and data.info["tfds_sample_rate"] == 16000
