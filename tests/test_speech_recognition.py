"""Speech recognition: CTC decoding on hand-made logits, in-graph features, a tiny
model overfitting a few espeak-ng utterances, the exported `transcribe`
signature, ONNX parity, resampled predict input and recipe errors."""

import json
import os
import shutil

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import ToolkitError
from toolkit.tasks.speech_recognition.decoding import greedy_decode_ids, ids_to_text

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="Debian espeak-ng is not installed (apt-get install espeak-ng)")
VOCABULARY = "abcdefghijklmnopqrstuvwxyz' "


def logits_for(path, size=None):
    """One-hot-ish logits that spell a best path of ids (0 = blank)."""
    logits = np.full((1, len(path), size or len(VOCABULARY) + 1), -5.0, np.float32)
    for t, token in enumerate(path):
        logits[0, t, token] = 5.0
    return logits


def test_ctc_greedy_decoding_of_hand_made_logits():
    c, a, t = 3, 1, 20
    path = [0, c, c, 0, a, a, a, t, 0, 0, t, 0]  # "c a t t" with a blank between the two t's
    ids = greedy_decode_ids(logits_for(path))[0]
    assert ids == [c, a, t, t] and ids_to_text(ids, VOCABULARY) == "catt"
    # The in-graph decoder (keras.ops.ctc_decode, used in the SavedModel) agrees.
    from toolkit.tasks.speech_recognition.decoding import Transcriber

    transcriber = Transcriber(None, {"vocabulary": VOCABULARY})
    assert transcriber.decode(logits_for(path), "greedy", 1).numpy()[0].decode() == "catt"
    assert transcriber.decode(logits_for(path), "beam", 8).numpy()[0].decode() == "catt"


def test_log_mel_padding_is_zero_and_per_utterance():
    from toolkit.data.audio_features import features_of

    metadata = {"sample_rate": 16000, "features": {"num_mel_bins": 40, "frame_ms": 25, "step_ms": 10,
                                                   "fft_length": 512, "lower_hz": 20, "upper_hz": 7600}}
    rng = np.random.RandomState(0)
    short, long = rng.randn(8000).astype(np.float32), rng.randn(16000).astype(np.float32)
    batch = features_of([short, long], metadata)
    alone = features_of([short], metadata)
    frames = (8000 - 400) // 160 + 1
    np.testing.assert_allclose(batch[0, :frames], alone[0], atol=1e-4)  # padding does not change an utterance
    assert np.all(batch[0, frames:] == 0) and np.all(batch[0, :frames].any(axis=-1))
    assert abs(batch[1].mean()) < 1e-3 and abs(batch[1].std() - 1) < 1e-2
    # The NumPy twin used by ONNX prediction (no TensorFlow) computes the same features.
    from toolkit.data.audio_features import log_mel_numpy

    np.testing.assert_allclose(log_mel_numpy([short, long], metadata), batch, atol=2e-4)
    tiny = rng.randn(100).astype(np.float32)  # shorter than one window: no frames, all zero
    np.testing.assert_array_equal(log_mel_numpy([tiny], metadata), features_of([tiny], metadata))


def tiny_recipe(root, epochs=400, steps_per_epoch=None):
    recipe = load_recipe("recipes/speech_recognition/espeak_ctc.yaml").model_dump()
    recipe["data"]["espeak"].update(utterances={"train": 6, "validation": 0, "test": 2},
                                    voices=["en-us", "en-gb+m3"], test_voices=["en-us+f2"],
                                    kinds={"words": 1.0})
    recipe["data"]["validation_fraction"] = 0.0
    recipe["extra_tests"] = []
    recipe["features"]["num_mel_bins"] = 40
    recipe["spec_augment"].update(freq_masks=0, time_masks=0)
    recipe["model"].update(conv_filters=8, conv_kernel=[3, 5], rnn_units=64, rnn_layers=1, dropout=0.0)
    recipe["train"].update(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=6, verbose=0, seed=1,
                           optimizer={"name": "adam", "learning_rate": 0.003}, schedule={"name": "constant"})
    recipe["export"]["verify_samples"] = 2
    recipe["output"]["dir"] = str(root / "runs")
    return load_recipe(recipe)


def espeak_root(tmp_path_factory, name):
    """A fresh directory (and TOOLKIT_HOME) for a run on espeak-ng data; skips without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("Debian espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp(name)
    os.environ["TOOLKIT_HOME"] = str(root / "home")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import toolkit

    root = espeak_root(tmp_path_factory, "speech")
    # 400 steps on one batch of 6 utterances, as 40 epochs of 10 (the data repeats): 360 fewer epoch ends
    return toolkit.train(tiny_recipe(root, epochs=40, steps_per_epoch=10), log=lambda line: None)


@needs_espeak
def test_tiny_model_overfits_a_handful_of_utterances(tiny_run):
    import toolkit
    from toolkit.tasks import make_task
    from toolkit.tasks.speech_recognition.decoding import Transcriber

    task = make_task(load_recipe(os.path.join(tiny_run.path, "recipe.yaml")))
    model = toolkit.load(tiny_run.path)
    train = task.data.splits["train"]
    transcripts = Transcriber(model.handle, model.metadata).transcribe([u.audio for u in train])
    import jiwer

    cer = jiwer.cer([u.text for u in train], transcripts)
    assert cer < 0.05, list(zip([u.text for u in train], transcripts))
    metrics = tiny_run.metrics["test"]
    assert {"wer", "cer", "worst", "realtime_factor"} <= set(metrics)


@needs_espeak
def test_exported_transcribe_matches_python_api(tiny_run, tmp_path):
    import toolkit
    from toolkit.data.audio_io import load_audio, write_wav

    report = json.load(open(os.path.join(tiny_run.path, "export", "verify.json")))
    assert report["passed"], report
    endpoints = {**report["formats"]["saved_model"]["endpoints"], **report["formats"]["onnx"]["endpoints"]}
    assert set(endpoints) == {"transcribe", "logits", "onnx", "onnx_greedy", "onnx_lexicon"}
    assert endpoints["onnx"]["max_abs_diff"] < 1e-3 and endpoints["transcribe"]["agreement"] == 1.0
    assert endpoints["onnx_lexicon"]["agreement"] == 1.0  # NumPy lexicon decoding == the graph's
    clip = os.path.join(tiny_run.path, "export", "samples", "000.wav")
    # The same clip at 44.1 kHz is resampled to 16 kHz on the way in.
    wave = load_audio(clip, 16000)
    from toolkit.data.audio_io import resample

    high = str(tmp_path / "clip_44k.wav")
    write_wav(high, resample(wave, 16000, 44100), 44100)
    answers = {}
    for name, path in (("keras", tiny_run.path), ("saved_model", os.path.join(tiny_run.path, "export", "saved_model")),
                       ("onnx", os.path.join(tiny_run.path, "export", "model.onnx"))):
        answers[name] = [r["transcript"] for r in toolkit.load(path).predict([clip, high])]
    assert answers["keras"] == answers["saved_model"] == answers["onnx"], answers
    assert answers["keras"][0] == answers["keras"][1]
    result = run_cli("predict", os.path.join(tiny_run.path, "export", "saved_model"), clip)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(answers["keras"][0])

    # `toolkit serve`: a waveform as a list of floats gives the same transcript.
    import urllib.request

    from toolkit.serving import Server, resolve_model

    server = Server(toolkit.load(resolve_model(os.path.join(tiny_run.path, "export"))), name="asr").start(port=0)
    try:
        payload = json.dumps({"signature_name": "toolkit", "instances": [wave.tolist()]}).encode()
        request = urllib.request.Request(server.url + "/v1/models/asr:predict", data=payload, method="POST")
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert json.loads(answer.read())["predictions"][0]["transcript"] == answers["keras"][0]
    finally:
        server.stop()


def test_recipe_errors_are_one_line():
    base = {"task": "speech_recognition"}
    with pytest.raises(ToolkitError, match="fft_length"):
        load_recipe({**base, "features": {"fft_length": 256, "frame_ms": 25}})
    with pytest.raises(ToolkitError, match="each character once"):
        load_recipe({**base, "vocabulary": "abca"})
    with pytest.raises(ToolkitError, match="upper_hz"):
        load_recipe({**base, "data": {"sample_rate": 8000}})


# ------------------------------------------------------------------ Whisper preset (model.pretrained: hub:...)


def tiny_whisper_preset(directory, seconds=4):
    """A tiny Whisper (random weights; byte-level BPE over letters; 40 mels, 4 s windows) saved as a local
    KerasHub preset, with its tokenizer and audio converter."""
    import keras
    import keras_hub
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    vocabulary = {}
    for piece in list("abcdefghijklmnopqrstuvwxyz'") + ["Ġ", "Ġt", "th", "Ġth", "Ġa"] + bytes_to_unicode()[1]:
        vocabulary.setdefault(piece, len(vocabulary))
    special = {name: len(vocabulary) + i for i, name in enumerate(
        ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|translate|>", "<|transcribe|>"])}
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.WhisperTokenizer(vocabulary=vocabulary, merges=["Ġ t", "t h", "Ġ th", "Ġ a"],
                                                  special_tokens=special)
    backbone = keras_hub.models.WhisperBackbone(vocabulary_size=len(vocabulary) + len(special), num_layers=1,
                                                num_heads=2, hidden_dim=32, intermediate_dim=64, num_mels=40,
                                                max_encoder_sequence_length=100 * seconds,
                                                max_decoder_sequence_length=64)
    converter = keras_hub.layers.WhisperAudioConverter(num_mels=40, max_audio_length=seconds)
    for part in (backbone, tokenizer, converter):
        part.save_to_preset(str(directory))
    return str(directory)


def whisper_recipe(root, preset, epochs):
    recipe = tiny_recipe(root).model_dump()
    recipe["model"]["pretrained"] = f"hub:{preset}"
    recipe["decoding"].update(method="greedy", max_tokens=24)
    recipe["train"]["epochs"] = epochs
    recipe["output"]["dir"] = str(root / f"runs_{epochs}")
    return load_recipe(recipe)


@pytest.fixture(scope="module")
def whisper_run(tmp_path_factory):
    import toolkit

    root = espeak_root(tmp_path_factory, "whisper")
    preset = tiny_whisper_preset(root / "tiny_whisper")
    return toolkit.train(whisper_recipe(root, preset, epochs=25), log=lambda line: None), preset, root


def test_whisper_cached_decoding_equals_the_teacher_forced_network(tmp_path):
    """The decoding path (encoder once, cached decoder steps) computes the same logits as the backbone."""
    import keras_hub
    import tensorflow as tf

    from toolkit.tasks.speech_recognition.whisper import build_whisper_model
    from toolkit.text_generation import _WhisperNetwork

    model = build_whisper_model(keras_hub.models.Backbone.from_preset(tiny_whisper_preset(tmp_path / "p")), "t")
    network = _WhisperNetwork(model)
    features = np.random.RandomState(0).randn(2, 400, 40).astype(np.float32)
    ids = np.asarray([[60, 62, 3, 5, 7]] * 2, np.int32)
    full = np.asarray(model([features, ids]))
    hidden = network.encode(tf.constant(features), network.padding(features, 0))
    prompt = tf.constant(np.concatenate([ids, np.zeros((2, 3), np.int32)], axis=1))
    self_cache, cross_cache = network.empty_caches(None, hidden, prompt)
    logits, self_cache, cross_cache = network.call_decoder(prompt[:, :3], hidden, None, self_cache, cross_cache, 0, 0)
    np.testing.assert_allclose(np.asarray(logits), full[:, :3], atol=1e-5)
    for index in (3, 4):
        step, self_cache, _ = network.call_decoder(prompt[:, index:index + 1], hidden, None, self_cache,
                                                   cross_cache, index, None)
        np.testing.assert_allclose(np.asarray(step)[:, 0], full[:, index], atol=1e-5)


@needs_espeak
def test_whisper_preset_fine_tunes_exports_and_transcribes(whisper_run):
    """hub:<local Whisper preset>: its weights, tokenizer and audio converter are used, fine-tuned, exported
    (SavedModel waveform -> text, ONNX features + ids -> logits) and verified; predict agrees everywhere."""
    import csv

    import keras_hub

    import toolkit

    run, preset, _ = whisper_run
    history = list(csv.DictReader(open(os.path.join(run.path, "history.csv"))))
    assert float(history[-1]["loss"]) < 0.6 * float(history[0]["loss"]), history
    loaded = toolkit.load(run.path)
    metadata = loaded.metadata
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    assert metadata["tokenizers"]["network"] == "whisper"
    assert metadata["tokenizers"]["special_ids"]["decoder_start"] == [tokenizer.bos_token_id,
                                                                      tokenizer.no_timestamps_token_id]
    assert metadata["whisper"]["audio_converter"]["num_mels"] == 40
    original = keras_hub.models.Backbone.from_preset(preset)
    tuned = [layer for layer in loaded.handle.layers if layer.name == "whisper"][0].backbone
    start = np.asarray(original.decoder_embeddings.position_embedding.position_embeddings)
    now = np.asarray(tuned.decoder_embeddings.position_embedding.position_embeddings)
    assert np.abs(now - start)[40:].max() < 1e-6  # decoder positions never reached keep the preset's values
    assert np.abs(now - start)[:3].max() > 1e-3  # the prompt's positions were fine-tuned
    report = json.load(open(os.path.join(run.path, "export", "verify.json")))
    assert report["passed"], report
    endpoints = {**report["formats"]["saved_model"]["endpoints"], **report["formats"]["onnx"]["endpoints"]}
    assert set(endpoints) == {"transcribe", "logits", "onnx", "onnx_greedy"}
    assert endpoints["onnx"]["max_abs_diff"] < 1e-4 and endpoints["onnx_greedy"]["agreement"] == 1.0
    clip = os.path.join(run.path, "export", "samples", "000.wav")
    answers = {name: toolkit.load(path).predict([clip])[0]["transcript"] for name, path in (
        ("keras", run.path), ("saved_model", os.path.join(run.path, "export", "saved_model")),
        ("onnx", os.path.join(run.path, "export", "model.onnx")))}
    assert len(set(answers.values())) == 1, answers
    assert set(answers["keras"]) <= set(VOCABULARY)
    metrics = run.metrics["test"]
    assert {"wer", "cer", "worst", "realtime_factor"} <= set(metrics)


@needs_espeak
def test_whisper_zero_shot_evaluation_with_zero_epochs(whisper_run):
    """train.epochs: 0 evaluates the preset as it is (the usual first step before fine-tuning)."""
    import keras_hub

    import toolkit

    _, preset, root = whisper_run
    recipe = whisper_recipe(root, preset, epochs=0).model_dump()
    recipe["export"]["formats"] = []
    run = toolkit.train(load_recipe(recipe), log=lambda line: None)
    metrics = run.metrics
    assert metrics["epochs_completed"] == 0 and metrics["test"]["examples"] == 2
    original = keras_hub.models.Backbone.from_preset(preset)
    kept = [layer for layer in toolkit.load(run.path).handle.layers if layer.name == "whisper"][0].backbone
    for a, b in zip(original.weights, kept.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_whisper_recipe_errors_are_one_line(tmp_path):
    base = {"task": "speech_recognition"}
    with pytest.raises(ToolkitError, match="hub:<preset"):
        load_recipe({**base, "model": {"pretrained": "whisper_tiny_en"}})
    with pytest.raises(ToolkitError, match="16000"):
        load_recipe({**base, "model": {"pretrained": "hub:whisper_tiny_en"}, "data": {"sample_rate": 8000}})
    from toolkit.tasks.speech_recognition.whisper import load_whisper

    with pytest.raises(ToolkitError, match="could not be loaded") as error:
        load_whisper(str(tmp_path / "missing"))
    assert "\n" not in str(error.value)


def test_time_stride_four_halves_the_output_frames_and_keeps_padding_blank(tmp_path):
    from toolkit.tasks import make_task

    recipe = tiny_recipe(tmp_path).model_dump()
    recipe["model"]["time_stride"] = 4
    model = make_task(load_recipe(recipe)).build_model()
    features = np.zeros((2, 101, 40), np.float32)
    features[0, :50], features[1] = 1.0, 1.0
    logits = np.asarray(model(features))
    assert logits.shape[:2] == (2, 26)  # ceil(ceil(101 / 2) / 2)
    blank = np.argmax(logits, axis=-1) == 0
    assert blank[0, 13:].all() and not np.allclose(logits[1, :, 0], 0.0)  # padding frames are forced to blank


@needs_espeak
def test_tflite_export_of_the_acoustic_model(tiny_run, tmp_path):
    import yaml

    import toolkit

    run_dir = str(tmp_path / "run")
    shutil.copytree(tiny_run.path, run_dir)
    with open(os.path.join(run_dir, "recipe.yaml")) as f:
        recipe = yaml.safe_load(f)
    # The tiny model's 2 verification clips are too few to hold its int8-weight copy to 90% identical transcripts.
    recipe["export"]["quantized_min_agreement"] = 0.0
    with open(os.path.join(run_dir, "recipe.yaml"), "w") as f:
        yaml.safe_dump(recipe, f)
    result = run_cli("export", run_dir, "--format", "tflite,tflite_dynamic")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(os.path.join(run_dir, "export", "verify.json")))
    endpoints = report["formats"]["tflite"]["endpoints"]
    assert set(endpoints) == {"tflite", "tflite_greedy", "tflite_lexicon"}
    assert endpoints["tflite"]["max_abs_diff"] < 1e-3 and endpoints["tflite_lexicon"]["agreement"] == 1.0
    assert report["quality"]["metric"] == "wer" and set(report["quality"]["formats"]) == {"tflite", "tflite_dynamic"}
    clip = os.path.join(run_dir, "export", "samples", "000.wav")
    lite = toolkit.load(os.path.join(run_dir, "export", "model.tflite")).predict([clip])[0]["transcript"]
    assert lite == toolkit.load(run_dir).predict([clip])[0]["transcript"]
    refused = run_cli("export", run_dir, "--format", "tflite_int8")
    assert refused.returncode == 2 and "use tflite_dynamic" in refused.stderr


def test_onnx_prediction_says_when_it_decodes_differently_from_the_model():
    from toolkit.tasks.speech_recognition.predictor import onnx_decoding_note

    assert "greedily" in onnx_decoding_note({"decoding": {"method": "beam", "beam_width": 8}})
    assert onnx_decoding_note({"decoding": {"method": "greedy"}}) is None
    assert onnx_decoding_note({"decoding": {"method": "lexicon"}}) is None  # the same Viterbi in NumPy
