"""`toolkit explain` of text classifiers: integrated gradients over the token embeddings of a tiny network trained
on planted keywords; the planted keyword carries the largest attribution, the attributions add up to the score's
change from the zero-embedding baseline, and the CLI prints one line of token attributions per text."""

import json

import numpy as np
import pytest

import toolkit
from toolkit.errors import ModelFileError

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains a tiny model


@pytest.fixture(scope="module", params=["transformer", "bag"])
def text_run(tmp_path_factory, request):
    from test_text_classification import make_split_folder, recipe_dict

    from toolkit.config import load_recipe

    root = tmp_path_factory.mktemp(f"explain_text_{request.param}")
    data = make_split_folder(root / "planted", train=240, test=30)
    model, epochs = {"encoder": request.param}, 8
    if request.param == "bag":  # a fastText-like bag of tokens and hashed bigrams (two embedding tables)
        model, epochs = {**model, "embed_dim": 16, "ngrams": 2, "ngram_buckets": 64}, 30
    recipe = load_recipe(recipe_dict(data, root / "runs", name="planted", model=model, export={"formats": []},
                                     train={"epochs": epochs}))
    run = toolkit.train(recipe, log=lambda line: None)
    assert run.metrics["test"]["accuracy"] >= 0.8
    return run


def test_the_planted_keyword_carries_the_largest_attribution(text_run):
    from test_text_classification import TOPICS

    texts = ["w3 the w17 guitar w40 a w5 w9", "w1 w2 coach w33 w8 of w12", "we w50 soup they w4"]
    results = toolkit.explain(text_run.path, texts, steps=32)
    for text, result, topic in zip(texts, results, ["music", "sports", "food"]):
        (entry,) = result["explanations"]
        assert result["method"] == "integrated_gradients" and entry["class"] == topic
        tokens = entry["tokens"]
        assert "".join(t["token"] for t in tokens).replace("\u2581", " ").split() == text.split()
        best = max(tokens, key=lambda t: t["attribution"])["token"].lstrip("\u2581")
        assert best in TOPICS[topic] or any(best and word.startswith(best) for word in TOPICS[topic]), tokens
        # completeness: the attributions add up to the score's change from the baseline (Riemann error aside)
        total = sum(t["attribution"] for t in tokens)
        assert total == pytest.approx(entry["delta"], abs=0.15 * abs(entry["delta"]) + 0.05), (total, entry["delta"])


def test_asked_class_and_refused_methods(text_run):
    entry = toolkit.explain(text_run.path, ["w1 w2 coach w33"], class_="food")[0]["explanations"][0]
    assert entry["class"] == "food"
    with pytest.raises(ModelFileError, match="^--method gradcam: text_classification models are explained per "
                                             "token with integrated_gradients; leave --method out$"):
        toolkit.explain(text_run.path, ["w1"], method="gradcam")


def test_cli_prints_one_line_of_token_attributions_per_text(text_run, tmp_path):
    result = run_cli("explain", text_run.path, "--text", "w3 guitar w40", "--text", "w1 bread", check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("'w3 guitar w40': integrated_gradients of music ")
    assert "guitar(+" in lines[0].replace("\u2581", "")
    answer = json.loads(run_cli("explain", text_run.path, "--text", "w1 bread", "--json", check=True).stdout)
    entry = answer["explanations"][0]["explanations"][0]
    assert answer["method"] == "integrated_gradients" and entry["class"] == "food"
    assert isinstance(entry["tokens"][0]["attribution"], float) and np.isfinite(entry["delta"])
    image_only = run_cli("explain", text_run.path, str(tmp_path / "nothing.png"))
    assert image_only.returncode == 2 and len(image_only.stderr.strip().splitlines()) == 1
