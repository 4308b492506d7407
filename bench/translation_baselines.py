"""Translation baselines: the floor a trained model must clear, on the same splits.

- copy: the source sentence as the translation (BLEU from shared names,
  numbers and punctuation only).
- dictionary: word-for-word translation with a table learned from the
  training split only, by 5 EM iterations of IBM Model 1 (Brown et al. 1993)
  on lowercased tokens; each source word becomes its most probable target
  word, unknown words are copied, punctuation is kept, capitals follow the
  source word.

Scores are corpus BLEU and chrF from sacreBLEU (`toolkit.text_metrics`).

Example (shell):

    .venv/bin/python bench/translation_baselines.py
    .venv/bin/python bench/translation_baselines.py --recipe recipes/translation/bible_en_es.yaml
"""

import argparse
import collections
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_RECIPE = os.path.join("recipes", "translation", "bible_en_es.yaml")
TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
NO_SPACE_BEFORE = set(",.;:!?)]}”’»%")
NO_SPACE_AFTER = set("([{“‘«¿¡")


def tokenize(text):
    """Words (with inner apostrophes) and single punctuation marks.

    >>> tokenize("God’s Spirit, “Yes!”")
    ['God’s', 'Spirit', ',', '“', 'Yes', '!', '”']
    """
    return TOKEN.findall(text)


def is_word(token):
    return bool(re.match(r"\w", token))


def detokenize(tokens):
    """Joins tokens with spaces, except before closing and after opening punctuation.

    >>> detokenize(['¿', 'Qué', 'es', '?', '“', 'Sí', '”', ',', 'dijo', '.'])
    '¿Qué es? “Sí”, dijo.'
    """
    text, previous = "", None
    for token in tokens:
        if previous is not None and token not in NO_SPACE_BEFORE and previous not in NO_SPACE_AFTER:
            text += " "
        text += token
        previous = token
    return text


def copy_baseline(pairs):
    """Hypotheses of the copy baseline: each source sentence unchanged.

    Args:
        pairs: list of (source, target) str pairs.
    """
    return [source for source, _ in pairs]


class WordTranslator:
    """Word-for-word translation with a learned table (see `dictionary_baseline`).

    Args:
        table: dict. Lowercased source word -> lowercased target word.
    """

    def __init__(self, table):
        self.table = table

    def translate(self, sentence):
        """Translates one sentence word by word; unknown words and punctuation are copied."""
        output = []
        for token in tokenize(sentence):
            word = self.table.get(token.lower()) if is_word(token) else None
            if word is None:
                output.append(token)
                continue
            if token[:1].isupper():
                word = word[:1].upper() + word[1:]
            output.append(word)
        return detokenize(output)

    def __call__(self, sentences):
        return [self.translate(sentence) for sentence in sentences]


def dictionary_baseline(train_pairs, iterations=5, max_tokens=80, min_probability=1e-3):
    """Learns a word translation table from `train_pairs` with IBM Model 1.

    EM over all (source word or NULL, target word) co-occurrences in each
    pair, vectorised with numpy; after the first iteration, co-occurrences
    whose translation probability is below `min_probability` are pruned.
    Each source word maps to its most probable target word (a word mapped
    to nothing is kept out of the table, so it is copied).

    Args:
        train_pairs: list of (source, target) str pairs (training split only).
        iterations: int. EM iterations.
        max_tokens: int. Pairs with a longer side are left out of training.
        min_probability: float. Pruning threshold.

    Returns:
        WordTranslator. Call it with a list of source sentences.

    Example:

    >>> pairs = [("the house", "la casa"), ("the book", "el libro"), ("a book", "un libro"),
    ...          ("a house", "una casa"), ("the green house", "la casa verde")]
    >>> translator = dictionary_baseline(pairs)
    >>> translator.table["house"], translator.table["book"]
    ('casa', 'libro')
    """
    source_ids, target_ids = {"<null>": 0}, {}
    sentences = []
    for source, target in train_pairs:
        source_words = [token.lower() for token in tokenize(source) if is_word(token)]
        target_words = [token.lower() for token in tokenize(target) if is_word(token)]
        if not source_words or not target_words or max(len(source_words), len(target_words)) > max_tokens:
            continue
        sentences.append((
            np.asarray([0] + [source_ids.setdefault(word, len(source_ids)) for word in source_words], np.int64),
            np.asarray([target_ids.setdefault(word, len(target_ids)) for word in target_words], np.int64),
        ))
    if not sentences:
        raise ValueError("dictionary_baseline: no usable training pairs")
    # One entry per (target token position, source token or NULL) of every pair.
    sources, targets, positions = [], [], []
    position = 0
    for source, target in sentences:
        sources.append(np.tile(source, len(target)))
        targets.append(np.repeat(target, len(source)))
        positions.append(np.repeat(np.arange(position, position + len(target)), len(source)))
        position += len(target)
    target_count = len(target_ids)
    keys = np.concatenate(sources) * target_count + np.concatenate(targets)
    del sources, targets
    positions = np.concatenate(positions).astype(np.int32)
    pair_keys, pair_index = np.unique(keys, return_inverse=True)
    pair_index = pair_index.astype(np.int32)
    del keys
    pair_source = pair_keys // target_count
    probability = np.full(len(pair_keys), 1.0 / target_count)
    for iteration in range(iterations):
        entry = probability[pair_index]
        entry /= np.bincount(positions, weights=entry, minlength=position)[positions]
        counts = np.bincount(pair_index, weights=entry, minlength=len(pair_keys))
        totals = np.bincount(pair_source, weights=counts, minlength=len(source_ids))
        probability = counts / np.maximum(totals, 1e-300)[pair_source]
        if iteration == 0 and min_probability > 0:
            keep = probability[pair_index] >= min_probability
            pair_index, positions = pair_index[keep], positions[keep]
    # Most probable target word per source word (ties: the first pair).
    order = np.lexsort((-probability, pair_source))
    first = order[np.r_[True, pair_source[order][1:] != pair_source[order][:-1]]]
    source_words = {index: word for word, index in source_ids.items()}
    target_words = {index: word for word, index in target_ids.items()}
    table = {}
    for pair in first:
        source = int(pair_source[pair])
        if source != 0:
            table[source_words[source]] = target_words[int(pair_keys[pair] % target_count)]
    return WordTranslator(table)


def score_split(hypotheses, pairs):
    from toolkit.text_metrics import corpus_scores

    return corpus_scores(hypotheses, [target for _, target in pairs])


def run_baselines(data):
    """BLEU/chrF of the copy and dictionary baselines on the test and validation splits.

    Args:
        data: toolkit.tasks.translation.sources.ParallelData.

    Returns:
        dict: {"copy": {...}, "dictionary": {...}}; each holds per split
        `corpus_scores` results and `seconds` (dictionary also
        `train_seconds` and `table_size`).
    """
    results = collections.OrderedDict()
    splits = [name for name in ("test", "validation") if data.splits.get(name)]
    started = time.time()
    results["copy"] = {name: score_split(copy_baseline(data.splits[name]), data.splits[name]) for name in splits}
    results["copy"]["seconds"] = round(time.time() - started, 2)
    started = time.time()
    translator = dictionary_baseline(data.splits["train"])
    train_seconds = time.time() - started
    results["dictionary"] = {
        name: score_split(translator([source for source, _ in data.splits[name]]), data.splits[name])
        for name in splits
    }
    results["dictionary"].update(train_seconds=round(train_seconds, 2), table_size=len(translator.table),
                                 seconds=round(time.time() - started, 2))
    return results


def load_data(recipe_path):
    """Loads the translation data of a recipe's `data` section (defaults when the recipe does not exist)."""
    import yaml

    from toolkit.tasks.translation.config import TranslationDataConfig
    from toolkit.tasks.translation.sources import TRANSLATION_SOURCES

    section, seed = {}, 42
    if recipe_path and os.path.isfile(recipe_path):
        with open(recipe_path, encoding="utf-8") as f:
            recipe = yaml.safe_load(f) or {}
        section = recipe.get("data") or {}
        seed = (recipe.get("train") or {}).get("seed", seed)
    else:
        print(f"note: {recipe_path} not found; using the default data settings", file=sys.stderr)
    config = TranslationDataConfig.model_validate(section)
    return TRANSLATION_SOURCES.get(config.source)(config, seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=os.path.join(REPO, DEFAULT_RECIPE),
                        help="translation recipe whose data section is used (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    data = load_data(args.recipe)
    load_seconds = time.time() - started
    sizes = ", ".join(f"{name} {len(pairs)}" for name, pairs in data.splits.items())
    print(f"data: {data.provenance}\nsplits: {sizes} (loaded in {load_seconds:.1f} s)")
    results = run_baselines(data)
    print(f"\n{'baseline':<12}{'split':<12}{'BLEU':>8}{'chrF':>8}   BLEU 1-4 gram precision, BP")
    for baseline, result in results.items():
        for split in ("test", "validation"):
            if split in result:
                scores = result[split]
                details = scores["bleu_details"]
                precisions = "/".join(f"{value:.1f}" for value in details["precisions"])
                print(f"{baseline:<12}{split:<12}{scores['bleu']:>8.2f}{scores['chrf']:>8.2f}   "
                      f"{precisions}, BP {details['brevity_penalty']:.3f}")
    dictionary = results["dictionary"]
    print(f"\ncopy: {results['copy']['seconds']} s; dictionary: {dictionary['seconds']} s "
          f"(IBM Model 1 training {dictionary['train_seconds']} s, {dictionary['table_size']} words)")
    any_scores = next(value for value in results["copy"].values() if isinstance(value, dict))
    print(f"BLEU signature: {any_scores['bleu_signature']}\nchrF signature: {any_scores['chrf_signature']}")
    return results


if __name__ == "__main__":
    main()
