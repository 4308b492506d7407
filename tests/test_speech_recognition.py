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
from toolkit.tasks.speech_recognition import greedy_decode_ids, ids_to_text

from conftest import run_cli

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
    from toolkit.tasks.speech_recognition import Transcriber

    transcriber = Transcriber(None, {"vocabulary": VOCABULARY})
    assert transcriber.decode(logits_for(path), "greedy", 1).numpy()[0].decode() == "catt"
    assert transcriber.decode(logits_for(path), "beam", 8).numpy()[0].decode() == "catt"


def test_log_mel_padding_is_zero_and_per_utterance():
    from toolkit.tasks.speech_recognition import features_of

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


def tiny_recipe(root, epochs=400):
    recipe = load_recipe("recipes/speech_recognition/espeak_ctc.yaml").model_dump()
    recipe["data"]["espeak"].update(utterances={"train": 6, "validation": 0, "test": 2},
                                    voices=["en-us", "en-gb+m3"], test_voices=["en-us+f2"],
                                    kinds={"words": 1.0})
    recipe["data"]["validation_fraction"] = 0.0
    recipe["extra_tests"] = []
    recipe["features"]["num_mel_bins"] = 40
    recipe["spec_augment"].update(freq_masks=0, time_masks=0)
    recipe["model"].update(conv_filters=8, conv_kernel=[3, 5], rnn_units=64, rnn_layers=1, dropout=0.0)
    recipe["train"].update(epochs=epochs, batch_size=6, verbose=0, seed=1,
                           optimizer={"name": "adam", "learning_rate": 0.003}, schedule={"name": "constant"})
    recipe["export"]["verify_samples"] = 2
    recipe["output"]["dir"] = str(root / "runs")
    return load_recipe(recipe)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import toolkit

    if shutil.which("espeak-ng") is None:
        pytest.skip("Debian espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("speech")
    os.environ["TOOLKIT_HOME"] = str(root / "home")
    return toolkit.train(tiny_recipe(root), log=lambda line: None)


@needs_espeak
def test_tiny_model_overfits_a_handful_of_utterances(tiny_run):
    import toolkit
    from toolkit.tasks import make_task
    from toolkit.tasks.speech_recognition import Transcriber

    task = make_task(load_recipe(os.path.join(tiny_run.path, "recipe.yaml")))
    model = toolkit.load(tiny_run.path)
    train = task.data.splits["train"]
    transcripts = Transcriber(model.handle, model.metadata).transcribe([u.audio for u in train])
    import jiwer

    cer = jiwer.cer([u.text for u in train], transcripts)
    assert cer < 0.05, list(zip([u.text for u in train], transcripts))
    metrics = tiny_run.metrics()["test"]
    assert {"wer", "cer", "worst", "realtime_factor"} <= set(metrics)


@needs_espeak
def test_exported_transcribe_matches_python_api(tiny_run, tmp_path):
    import toolkit
    from toolkit.data.audio_io import load_audio, write_wav

    report = json.load(open(os.path.join(tiny_run.path, "export", "verify.json")))
    assert report["passed"], report
    endpoints = {**report["formats"]["saved_model"]["endpoints"], **report["formats"]["onnx"]["endpoints"]}
    assert set(endpoints) == {"transcribe", "logits", "onnx", "onnx_greedy"}
    assert endpoints["onnx"]["max_abs_diff"] < 1e-3 and endpoints["transcribe"]["agreement"] == 1.0
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


def test_recipe_errors_are_one_line():
    base = {"task": "speech_recognition"}
    with pytest.raises(ToolkitError, match="fft_length"):
        load_recipe({**base, "features": {"fft_length": 256, "frame_ms": 25}})
    with pytest.raises(ToolkitError, match="each character once"):
        load_recipe({**base, "vocabulary": "abca"})
    with pytest.raises(ToolkitError, match="upper_hz"):
        load_recipe({**base, "data": {"sample_rate": 8000}})
