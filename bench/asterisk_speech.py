"""Speech recognition on real speech for `make bench` (`bench/run.py --only asterisk_speech`): WER and CER on
the held-out Asterisk PBX test prompts (English, one professional speaker, 8 kHz telephone audio, the test 10%
of the prompts by a hash of their names; `data.source: asterisk`) of

- the espeak_ctc model (trained on synthetic espeak-ng speech only),
- the asterisk_finetune model (that model fine-tuned on the Asterisk training prompts),
- pocketsphinx 5 with its own bundled US English acoustic model, language model and dictionary (the PyPI
  package `pocketsphinx`; the same clips resampled to 16 kHz, its transcripts normalised like the references),

with greedy and lexicon decoding for the two CTC models. A lexicon is the words of the model's own training
transcripts: a test word outside it cannot be written, so the share of test words out of each lexicon (and out of
pocketsphinx's dictionary) is reported beside the scores. WER and CER are corpus-level (jiwer, an empty
transcript counted as "<empty>", as `toolkit train` scores).

Targets (issue "Speech recognition on real speech"): fine-tuned CER <= half the espeak-only CER, and below
pocketsphinx's CER on the same clips.

Standalone: `python bench/asterisk_speech.py --espeak-run saved_models/espeak_ctc --finetune-run
saved_models/asterisk_finetune` prints the table and the JSON.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
ESPEAK_RECIPE = os.path.join(REPO, "recipes", "speech_recognition", "espeak_ctc.yaml")
FINETUNE_RECIPE = os.path.join(REPO, "recipes", "speech_recognition", "asterisk_finetune.yaml")
SAMPLE_RATE = 16000


def asterisk_test(sample_rate=SAMPLE_RATE, path=None):
    """(test utterances, data report and info) of the asterisk source at `sample_rate`, with the default
    data settings (data.max_seconds 12: the same clips `toolkit train` evaluates)."""
    from toolkit.tasks.speech_recognition.config import DEFAULT_VOCABULARY, SpeechDataConfig
    from toolkit.tasks.speech_recognition.sources import SPEECH_SOURCES

    config = SpeechDataConfig(source="asterisk", sample_rate=sample_rate, path=path)
    data = SPEECH_SOURCES.get("asterisk")(config, 0, DEFAULT_VOCABULARY)
    return data.splits["test"], {"provenance": data.provenance, "report": data.report["test"],
                                 "seconds": data.info["seconds"]["test"], "available": data.info["available"]}


def scores(references, hypotheses):
    import jiwer

    safe = [h if h.strip() else "<empty>" for h in hypotheses]
    return {"wer": round(float(jiwer.wer(references, safe)), 4), "cer": round(float(jiwer.cer(references, safe)), 4)}


def out_of_vocabulary(references, words):
    """Share of test word tokens (and distinct words) not in `words`."""
    words = set(words)
    tokens = [word for text in references for word in text.split()]
    missing = [word for word in tokens if word not in words]
    return {"oov_tokens": round(len(missing) / max(len(tokens), 1), 4),
            "oov_types": round(len(set(missing)) / max(len(set(tokens)), 1), 4),
            "test_words": len(tokens), "lexicon_words": len(words), "oov_examples": sorted(set(missing))[:12]}


def ctc_model_scores(run_dir, utterances, methods=("greedy", "lexicon")):
    """WER/CER of a CTC run's Keras model per decoding method, with its lexicon's coverage of the test words."""
    import toolkit
    from toolkit.tasks.speech_recognition.decoding import Transcriber

    model = toolkit.load(run_dir)
    metadata = model.metadata
    rate = int(metadata["sample_rate"])
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{run_dir}: a {rate} Hz model; the benchmark's clips are at {SAMPLE_RATE} Hz")
    transcriber = Transcriber(model.handle, metadata)
    references, waves = [u.text for u in utterances], [u.audio for u in utterances]
    result = {"run": os.path.abspath(run_dir), "data": metadata.get("data_provenance", "")}
    for method in methods:
        started = time.time()
        hypotheses = transcriber.transcribe(waves, method=method)
        result[method] = dict(scores(references, hypotheses), seconds=round(time.time() - started, 2),
                              examples=[[u.id, u.text, h] for u, h in list(zip(utterances, hypotheses))[:5]])
    if "lexicon" in metadata:
        result["lexicon_coverage"] = out_of_vocabulary(references, metadata["lexicon"]["words"])
    return result


def pocketsphinx_decoder(sample_rate=SAMPLE_RATE):
    """A pocketsphinx 5 decoder with its bundled en-us acoustic model, language model and dictionary."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise SystemExit("pocketsphinx is not installed; pip install pocketsphinx (see constraints.txt)")
    return Decoder(samprate=sample_rate, loglevel="FATAL")


def pocketsphinx_transcribe(decoder, wave):
    """The normalised transcript pocketsphinx hears in a float waveform at the decoder's sample rate."""
    import numpy as np

    from toolkit.tasks.speech_recognition.sources import normalize_transcript
    from toolkit.tasks.speech_recognition.spoken_numbers import spell_numbers

    pcm = (np.clip(np.asarray(wave, np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return normalize_transcript(spell_numbers(hypothesis.hypstr)) if hypothesis is not None else ""


def pocketsphinx_dictionary_words():
    """The words of pocketsphinx's bundled en-us dictionary (alternate pronunciations `word(2)` folded)."""
    from pocketsphinx import get_model_path

    words = set()
    with open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"), encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                words.add(line.split()[0].split("(")[0].lower())
    return words


def pocketsphinx_scores(utterances):
    decoder = pocketsphinx_decoder()
    started = time.time()
    hypotheses = [pocketsphinx_transcribe(decoder, u.audio) for u in utterances]
    seconds = time.time() - started
    references = [u.text for u in utterances]
    from importlib.metadata import version

    return dict(scores(references, hypotheses), seconds=round(seconds, 2), version=version("pocketsphinx"),
                model="bundled en-us acoustic model, en-us.lm.bin trigram LM, cmudict-en-us.dict",
                dictionary_coverage=out_of_vocabulary(references, pocketsphinx_dictionary_words()),
                examples=[[u.id, u.text, h] for u, h in list(zip(utterances, hypotheses))[:5]])


def bench_asterisk_speech(quick=False, espeak_run=None, finetune_run=None):
    """Scores the two CTC runs (trained here when not given) and pocketsphinx on the asterisk test prompts.

    Args:
        quick: bool. When training: 2 epochs of a small espeak corpus, 2 fine-tuning epochs (a smoke test).
        espeak_run: str or None. A finished espeak_ctc run.
        finetune_run: str or None. A finished asterisk_finetune run (trained from `espeak_run` when None).
    """
    from segmentation import toolkit_train

    trained = {}
    if not espeak_run:
        small = ["train.epochs=2", "data.espeak.utterances.train=200", "data.espeak.utterances.validation=20",
                 "data.espeak.utterances.test=20"] if quick else []
        espeak_run, seconds, _ = toolkit_train(ESPEAK_RECIPE, os.path.join(WORK, "asterisk_speech"), *small)
        trained["espeak_ctc_wall_seconds"] = round(seconds, 1)
    if not finetune_run:
        finetune_run, seconds, _ = toolkit_train(FINETUNE_RECIPE, os.path.join(WORK, "asterisk_speech"),
                                                 f"model.init=run:{os.path.abspath(espeak_run)}",
                                                 *(["train.epochs=2"] if quick else []))
        trained["asterisk_finetune_wall_seconds"] = round(seconds, 1)
    utterances, data = asterisk_test()
    results = {"data": data, "test_prompts": len(utterances), **trained,
               "espeak_only": ctc_model_scores(espeak_run, utterances),
               "fine_tuned": ctc_model_scores(finetune_run, utterances)}
    try:
        results["pocketsphinx"] = pocketsphinx_scores(utterances)
    except SystemExit as error:
        results["pocketsphinx"] = {"skipped": str(error)}
    for name in ("espeak_only", "fine_tuned"):
        with open(os.path.join(results[name]["run"], "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        results[name]["train_seconds"] = metrics.get("train_seconds")
        results[name]["epochs"] = metrics.get("epochs_completed")
    espeak_cer = min(results["espeak_only"][m]["cer"] for m in ("greedy", "lexicon"))
    tuned_cer = min(results["fine_tuned"][m]["cer"] for m in ("greedy", "lexicon"))
    sphinx_cer = results["pocketsphinx"].get("cer")
    results["targets"] = {"fine_tuned_cer_at_most_half_espeak": tuned_cer <= espeak_cer / 2,
                          "fine_tuned_cer_below_pocketsphinx": sphinx_cer is not None and tuned_cer < sphinx_cer,
                          "compared": "the best decoding of each model"}
    results["passed"] = all(value for key, value in results["targets"].items() if key != "compared")
    return results


def table(results):
    a = results.get("asterisk_speech")
    if not a:
        return ""
    lines = [f"asterisk real speech ({a['test_prompts']} held-out prompts, {a['data']['seconds']:.0f} s):"
             f"{'WER':>9}{'CER':>9}  words out of lexicon"]
    for name in ("espeak_only", "fine_tuned"):
        coverage = a[name].get("lexicon_coverage", {})
        for method in ("greedy", "lexicon"):
            note = f"{coverage.get('oov_tokens', 0):.1%}" if method == "lexicon" else "-"
            lines.append(f"  {name + ' ' + method:<52}{a[name][method]['wer']:>9.2%}{a[name][method]['cer']:>9.2%}  "
                         f"{note}")
    sphinx = a["pocketsphinx"]
    if "wer" in sphinx:
        lines.append(f"  {'pocketsphinx ' + str(sphinx['version']) + ' en-us':<52}{sphinx['wer']:>9.2%}"
                     f"{sphinx['cer']:>9.2%}  {sphinx['dictionary_coverage']['oov_tokens']:.1%}")
    else:
        lines.append(f"  pocketsphinx: {sphinx['skipped']}")
    targets = a["targets"]
    lines.append("  targets: fine-tuned CER <= espeak-only CER / 2: "
                 f"{'ok' if targets['fine_tuned_cer_at_most_half_espeak'] else 'MISSED'}; below pocketsphinx: "
                 f"{'ok' if targets['fine_tuned_cer_below_pocketsphinx'] else 'MISSED'}")
    return "\n".join(lines)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--espeak-run", required=True, help="a finished espeak_ctc run directory")
    parser.add_argument("--finetune-run", required=True, help="a finished asterisk_finetune run directory")
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    results = {"asterisk_speech": bench_asterisk_speech(espeak_run=args.espeak_run, finetune_run=args.finetune_run)}
    print(table(results))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
