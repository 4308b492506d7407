"""Translation decoding speed (issue 26): the toolkit's decoder against the one it replaced, on the same model.

The reference is `toolkit.text_generation.reference_generate`: KerasHub's `BeamSampler` / `GreedySampler` around
the decoder layers' own cached calls, every cache reordered at each beam step, in file order at batch 32 (the
evaluation before issue 26). The toolkit's decoder is `Translator.translate` as evaluation calls it (batch 32,
texts of similar length batched together). Both decode the held-out verses of a bible_en_es run (test books,
then validation verses) with the run's beam search (beam 4, length penalty 0.6); the translations are compared
string for string. Greedy decoding is timed alone at batch 64 in target tokens per second (tokens generated up
to and including the end token).

Usage: python bench/decoding.py RUN_DIR [--sentences N] [--quick]
    RUN_DIR: a finished bible_en_es run (bench/run.py --translation-run, or bench/_work/decoding/... trained
    here for 2 epochs when bench/run.py is given none). N: how many held-out verses (default all).
Prints a summary and one JSON object.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def held_out_sources(run_dir):
    """The run's held-out source sentences: its test split, then its validation split."""
    from toolkit.config import load_recipe
    from toolkit.tasks import make_task

    recipe = load_recipe(os.path.join(run_dir, "recipe.yaml"))
    recipe.data.limit.test = recipe.data.limit.validation = None  # every held-out verse, whatever the run used
    task = make_task(recipe)
    splits = task.data.splits
    return [s for s, _ in splits["test"]] + [s for s, _ in splits.get("validation") or []]


def bench_decoding(run_dir, sentences=None, batch_size=32):
    import tensorflow as tf

    from toolkit.model_io import load_keras_file, read_toolkit_metadata
    from toolkit.text_generation import Translator, reference_generate

    path = os.path.join(run_dir, "model.keras")
    translator = Translator(load_keras_file(path), read_toolkit_metadata(path))
    decoding = translator.metadata["decoding"]
    beams, penalty = int(decoding["beam_width"]), float(decoding["length_penalty"])
    texts = held_out_sources(run_dir)
    held_out = len(texts)
    texts = texts[:sentences] if sentences else texts

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def reference(batch):
        ids = reference_generate(translator, translator.encode_source(batch), "beam", beams, penalty)
        return translator.decode_target(ids)

    reference(tf.constant(texts[:2]))  # traced before timing, as the toolkit's function below
    started = time.perf_counter()
    before = []
    for start in range(0, len(texts), batch_size):
        before += [v.decode("utf-8") for v in reference(tf.constant(texts[start:start + batch_size])).numpy()]
    reference_seconds = time.perf_counter() - started

    translator.translate(texts[:2], method="beam", beam_width=beams, length_penalty=penalty)
    started = time.perf_counter()
    after = translator.translate(texts, batch_size=batch_size, method="beam", beam_width=beams, length_penalty=penalty)
    toolkit_seconds = time.perf_counter() - started

    greedy = tf.function(lambda ids: translator.generate(ids, "greedy"),
                         input_signature=[tf.TensorSpec([None, None], tf.int32)])
    encode = tf.function(translator.encode_source, input_signature=[tf.TensorSpec([None], tf.string)])
    chunks = [encode(tf.constant(texts[start:start + 64])) for start in range(0, len(texts), 64)]
    greedy(chunks[0])
    started, tokens = time.perf_counter(), 0
    first = len(translator.ids["decoder_start"])
    for chunk in chunks:
        ids = greedy(chunk).numpy()[:, first:]
        ended = (ids == translator.ids["eos"]).cumsum(axis=1) - (ids == translator.ids["eos"]) > 0
        tokens += int(((ids != translator.ids["pad"]) & ~ended).sum())
    greedy_seconds = time.perf_counter() - started
    return {
        "run": run_dir, "held_out_sentences": held_out, "sentences": len(texts), "beam_width": beams,
        "length_penalty": penalty, "batch_size": batch_size,
        "reference_beam_seconds": round(reference_seconds, 1), "toolkit_beam_seconds": round(toolkit_seconds, 1),
        "beam_speedup": round(reference_seconds / toolkit_seconds, 2), "target_speedup": 5.0,
        "identical_translations": sum(a == b for a, b in zip(before, after)),
        "greedy_batch": 64, "greedy_tokens": tokens, "greedy_seconds": round(greedy_seconds, 2),
        "greedy_tokens_per_s": round(tokens / greedy_seconds, 1), "target_greedy_tokens_per_s": 1000,
        "passed": reference_seconds / toolkit_seconds >= 5.0 and before == after and tokens / greedy_seconds >= 1000,
    }


def summary(result):
    """The decoding figures in two lines."""
    return (f"decoding ({result['sentences']} held-out verses, beam {result['beam_width']}): KerasHub samplers "
            f"{result['reference_beam_seconds']} s, toolkit {result['toolkit_beam_seconds']} s "
            f"({result['beam_speedup']}x; target 5x), identical translations {result['identical_translations']}/"
            f"{result['sentences']}\n"
            f"greedy at batch {result['greedy_batch']}: {result['greedy_tokens_per_s']} target tokens/s "
            f"(target {result['target_greedy_tokens_per_s']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--sentences", type=int, help="decode only the first N held-out verses (default: all)")
    parser.add_argument("--quick", action="store_true", help="64 verses")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = bench_decoding(args.run_dir, 64 if args.quick else args.sentences)
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
