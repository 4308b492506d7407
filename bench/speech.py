"""Speech recognition benchmark for `make bench`: the espeak_ctc recipe's WER/CER on
held-out espeak-ng voices and on the real pocketsphinx clips, and the realtime
factor of the exported model at batch 1.

Realtime factor = seconds of compute / seconds of audio, measured per clip at
batch 1 on the run's held-out export samples (`export/samples/*.wav`, read
once into memory), after warm-up: the SavedModel `transcribe` signature
(features, network and decoding inside), the ONNX network (features in
NumPy, ONNX Runtime, the model's decoding in NumPy) and the Keras model
(the same tf.function as `toolkit predict`). Median over clips of each clip's
best of 3.

Targets (issue 5): WER <= 5% on held-out voices within 30 minutes of training
on 2 CPU cores; realtime factor <= 0.05 at batch 1.
"""

import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
RECIPE = os.path.join(REPO, "recipes", "speech_recognition", "espeak_ctc.yaml")


def realtime_factors(run_dir, repeats=3):
    """Per-runtime median realtime factor at batch 1 over the run's export samples."""
    import statistics

    import numpy as np

    import toolkit
    from toolkit.data.audio_io import load_audio

    samples = os.path.join(run_dir, "export", "samples")
    clips = sorted(os.path.join(samples, n) for n in os.listdir(samples) if n.endswith(".wav"))
    results = {}
    for name, path in (("saved_model", os.path.join(run_dir, "export", "saved_model")),
                       ("onnx", os.path.join(run_dir, "export", "model.onnx")), ("keras", run_dir)):
        model = toolkit.load(path)
        rate = int(model.metadata["sample_rate"])
        waves = [load_audio(c, rate) for c in clips]
        call = _transcribe_one(model)
        for wave in waves[:2]:
            call(wave)  # warm-up (tracing)
        factors = []
        for wave in waves:
            best = min(_seconds(call, wave) for _ in range(repeats))
            factors.append(best / (len(wave) / rate))
        results[name] = {"median": round(statistics.median(factors), 4), "max": round(max(factors), 4),
                         "clips": len(waves), "audio_seconds": round(float(np.mean([len(w) for w in waves])) / rate, 2)}
    return results


def _seconds(call, wave):
    started = time.perf_counter()
    call(wave)
    return time.perf_counter() - started


def _transcribe_one(model):
    """A batch-1 in-memory transcription call of a loaded model (no file reading)."""
    import numpy as np

    from toolkit.tasks.speech_recognition.predictor import make_transcriber, onnx_transcribe

    if model.runtime == "saved_model":
        import tensorflow as tf

        signature = model.handle.signatures["transcribe"]
        return lambda wave: signature(waveform=tf.constant(wave[None].astype(np.float32)),
                                      lengths=tf.constant([len(wave)], tf.int32))
    if model.runtime == "onnx":
        return lambda wave: onnx_transcribe(model.handle, [wave], model.metadata)
    transcriber = make_transcriber(model.handle, model.metadata)
    return lambda wave: transcriber.transcribe([wave], batch_size=1)


def bench_speech(quick=False, run_dir=None):
    """Trains the recipe (or reads the finished `run_dir`), then measures realtime factors.

    Args:
        quick: bool. Two epochs on 200 utterances (a smoke test).
        run_dir: str or None. A finished espeak_ctc run to report instead of training one.
    """
    from segmentation import toolkit_train

    if run_dir:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        seconds = None
    else:
        small = ["train.epochs=2", "data.espeak.utterances.train=200", "data.espeak.utterances.validation=20",
                 "data.espeak.utterances.test=20"]
        run_dir, seconds, metrics = toolkit_train(RECIPE, os.path.join(WORK, "speech"), *(small if quick else []))
    test = metrics["test"]
    pocketsphinx = (test.get("out_of_domain") or {}).get("pocketsphinx", {})
    factors = realtime_factors(run_dir)
    return {
        "run": run_dir, "train_seconds": metrics["train_seconds"], "wall_seconds": seconds,
        "epochs": metrics["epochs_completed"], "parameters": metrics["parameters"],
        "test_wer": test["wer"], "test_cer": test["cer"], "test_examples": test["examples"],
        "validation_wer": (test.get("validation") or {}).get("wer"),
        "validation_cer": (test.get("validation") or {}).get("cer"),
        "pocketsphinx_wer": pocketsphinx.get("wer"), "pocketsphinx_cer": pocketsphinx.get("cer"),
        "pocketsphinx_examples": pocketsphinx.get("examples"),
        "evaluation_realtime_factor": test["realtime_factor"],
        "realtime_factor_batch_1": factors,
        "targets": {"test_wer": 0.05, "train_seconds": 1800, "realtime_factor": 0.05},
        "passed": test["wer"] <= 0.05 and metrics["train_seconds"] <= 1800
        and factors["saved_model"]["median"] <= 0.05,
    }


def table(results):
    s = results.get("speech")
    if not s:
        return ""
    factors = s["realtime_factor_batch_1"]
    return "\n".join([
        f"speech (espeak_ctc) WER / CER: held-out voices {s['test_wer']:.2%} / {s['test_cer']:.2%} "
        f"({s['test_examples']} utterances); validation {s['validation_wer']:.2%} / {s['validation_cer']:.2%}; "
        f"pocketsphinx real speech {s['pocketsphinx_wer']:.2%} / {s['pocketsphinx_cer']:.2%}",
        "speech realtime factor at batch 1 (median over clips): " + ", ".join(
            f"{name} {figures['median']:.4f}" for name, figures in factors.items())
        + f"; training {s['train_seconds']:.0f} s; targets WER <= 5% in <= 1800 s, RTF <= 0.05: "
        f"{'ok' if s['passed'] else 'MISSED'}",
    ])
