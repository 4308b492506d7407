"""Corpus-level translation metrics with sacreBLEU (BLEU and chrF).

Scores are corpus scores (not averages of sentence scores) with sacreBLEU's
defaults (BLEU: 13a tokenizer, exponential smoothing; chrF: character
6-grams, beta 2), one reference per hypothesis. The signature strings say
exactly how a number was computed; report them next to the numbers.

Example:

>>> from toolkit.text_metrics import corpus_scores
>>> scores = corpus_scores(["the cat sat on the mat", "hello world"],
...                        ["the cat sat on a mat", "hello there world"])
>>> round(scores["bleu"], 2), round(scores["chrf"], 2)
(45.86, 56.98)
>>> scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
True
"""


def corpus_scores(hypotheses, references):
    """Corpus BLEU and chrF of `hypotheses` against one reference each.

    Args:
        hypotheses: list of str. System outputs, one per segment.
        references: list of str. The reference translation of each segment.

    Returns:
        dict with `bleu` and `chrf` (floats, 0-100), `bleu_signature` and
        `chrf_signature` (sacreBLEU signature strings) and `bleu_details`
        ({"precisions": [p1..p4], "brevity_penalty", "sys_len", "ref_len"}).
    """
    from sacrebleu.metrics import BLEU, CHRF

    hypotheses, references = [str(text) for text in hypotheses], [str(text) for text in references]
    if len(hypotheses) != len(references):
        raise ValueError(f"corpus_scores: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("corpus_scores: no segments to score")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": float(bleu_score.score),
        "chrf": float(chrf_score.score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_details": {
            "precisions": [float(value) for value in bleu_score.precisions],
            "brevity_penalty": float(bleu_score.bp),
            "sys_len": int(bleu_score.sys_len),
            "ref_len": int(bleu_score.ref_len),
        },
    }
