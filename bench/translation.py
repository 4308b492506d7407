"""Translation benchmark for `make bench`: the bible_en_es recipe against
the copy-the-source and word-for-word dictionary baselines
(bench/translation_baselines.py) on the same held-out books and
random-verse validation split.

Targets (issue 4): sacreBLEU >= 15 on the held-out books and >= 25 on the
validation verses, within 60 minutes of training on 2 CPU cores.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
RECIPE = os.path.join(REPO, "recipes", "translation", "bible_en_es.yaml")


def bench_translation(quick=False, run_dir=None):
    """Trains the recipe (or reads the finished `run_dir`) and scores the baselines.

    Args:
        quick: bool. A two-epoch run on 3,000 pairs (a smoke test).
        run_dir: str or None. An existing finished run of the recipe to report
            instead of training a new one.
    """
    from segmentation import toolkit_train
    from translation_baselines import load_data, run_baselines

    if run_dir:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        seconds = None
    else:
        small = ["train.epochs=2", "data.limit.train=3000", "data.limit.validation=200", "data.limit.test=200"]
        run_dir, seconds, metrics = toolkit_train(RECIPE, os.path.join(WORK, "translation"), *(small if quick else []))
    baselines = run_baselines(load_data(RECIPE))
    test, validation = metrics["test"], metrics["test"].get("validation", {})
    return {
        "run": run_dir,
        "train_seconds": metrics["train_seconds"], "wall_seconds": seconds,
        "epochs": metrics["epochs_completed"], "parameters": metrics["parameters"],
        "test_bleu": test["bleu"], "test_chrf": test["chrf"], "test_examples": test["examples"],
        "validation_bleu": validation.get("bleu"), "validation_chrf": validation.get("chrf"),
        "bleu_signature": test["bleu_signature"], "decoding": test["decoding"],
        "baselines": baselines,
        "targets": {"test_bleu": 15, "validation_bleu": 25, "train_seconds": 3600},
        "passed": test["bleu"] >= 15 and (validation.get("bleu") or 0) >= 25 and metrics["train_seconds"] <= 3600,
    }


def table(results):
    t = results.get("translation")
    if not t:
        return ""
    copy, dictionary = t["baselines"]["copy"], t["baselines"]["dictionary"]
    return "\n".join([
        f"translation en->es BLEU / chrF, held-out books ({t['test_examples']} verses): recipe {t['test_bleu']:.2f} / "
        f"{t['test_chrf']:.2f}; dictionary {dictionary['test']['bleu']:.2f} / {dictionary['test']['chrf']:.2f}; "
        f"copy {copy['test']['bleu']:.2f} / {copy['test']['chrf']:.2f}",
        f"translation validation verses: recipe {t['validation_bleu']:.2f}; dictionary "
        f"{dictionary['validation']['bleu']:.2f}; copy {copy['validation']['bleu']:.2f}; "
        f"training {t['train_seconds']:.0f} s; targets BLEU >= 15 / >= 25 in <= 3600 s: "
        f"{'ok' if t['passed'] else 'MISSED'}",
    ])
