"""Recommendation: metrics against hand-computed values, a two-tower model recovering planted taste groups,
a rating model initialised from the retrieval towers (run:), exports that serve the same top-k lists
(Keras, SavedModel, ONNX brute force), predict from the CLI and unknown-id handling."""

import json
import os

import numpy as np
import pytest

from toolkit.config import load_recipe
from toolkit.errors import ToolkitError

from conftest import run_cli

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

GROUPS, USERS, ITEMS = 3, 45, 30


def planted_table(path, seed=0):
    """Users of group g (user % 3) rate 7 items of item group g with 5, and 2 other items with 1."""
    rng = np.random.RandomState(seed)
    lines, clock = ["user,item,rating,timestamp"], 0
    for user in range(USERS):
        group = user % GROUPS
        liked = rng.choice([i for i in range(ITEMS) if i % GROUPS == group], 7, replace=False)
        other = rng.choice([i for i in range(ITEMS) if i % GROUPS != group], 2, replace=False)
        rows = [(i, 5) for i in liked] + [(i, 1) for i in other]
        for index in rng.permutation(len(rows)):
            clock += 1
            item, rating = rows[index]
            lines.append(f"u{user},i{item},{rating},{clock}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def planted_recipe(root, table, kind="retrieval", **model):
    recipe = {
        "task": "recommendation",
        "data": {"source": "csv", "path": table, "columns": {"user": "user", "item": "item"},
                 "split": "leave_last_out", "validation_fraction": 0.0, "min_rating": 4},
        "model": {"kind": kind, "embedding_dim": 8, "hidden": [16], "temperature": 0.2, **model},
        "evaluation": {"k": [5]},
        "train": {"epochs": 40 if kind == "retrieval" else 30, "batch_size": 64, "verbose": 0, "seed": 3,
                  "optimizer": {"name": "adam", "learning_rate": 0.01}},
        "export": {"verify_samples": 8, "top_k": 5},
        "output": {"dir": str(root / "runs")},
        "name": f"planted_{kind}",
    }
    return load_recipe(recipe)


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    import toolkit

    root = tmp_path_factory.mktemp("recommendation")
    table = planted_table(root / "plays.csv")
    return toolkit.train(planted_recipe(root, table), log=lambda line: None), root, table


class _Data:
    """Just what `ranking_metrics` reads."""

    num_users, num_items = 2, 5

    def __init__(self, train, test):
        self._splits = {"train": train, "test": test}

    def items_by_user(self, split, positives_only=False):
        return [np.asarray(items, np.int32) for items in self._splits[split]]


def test_ranking_metrics_match_hand_computed_values():
    from toolkit.tasks.recommendation.task import ranking_metrics, rating_metrics

    data = _Data(train=[[0], [1]], test=[[2], [0, 4]])
    scores = np.asarray([[9, 1, 5, 7, 0], [3, 9, 1, 0, 2]], np.float32)
    # User 0: item 0 is a training item (excluded) -> ranking 3, 2, 1, 4: its test item 2 is second.
    # User 1: item 1 excluded -> ranking 0, 4, 2, 3: both test items in the top 2.
    figures = ranking_metrics(scores, data, "test", [1, 2])
    expected = {"recall@1": (0 + 0.5) / 2, "recall@2": 1.0, "hit_rate@1": 0.5, "hit_rate@2": 1.0,
                "ndcg@2": (1 / np.log2(3) + 1.0) / 2, "map@2": (0.5 + 1.0) / 2,
                "coverage@1": 2 / 5, "coverage@2": 4 / 5}
    for key, value in expected.items():
        assert figures[key] == pytest.approx(value, abs=1e-5), (key, figures)
    assert rating_metrics([3.0, 4.0], [4.0, 2.0]) == pytest.approx({"rmse": np.sqrt(2.5), "mae": 1.5})


def test_two_towers_recover_planted_taste_groups(retrieval_run):
    import toolkit

    run, _, _ = retrieval_run
    model = toolkit.load(run.path)
    # Each user has at least 3 unrated items of its own group left (10 per group, at most 7 rated).
    results = model.predict([f"u{u}" for u in range(USERS)], top_k=3)
    in_group = [np.mean([int(r["item"][1:]) % GROUPS == u % GROUPS for r in result["items"]])
                for u, result in enumerate(results)]
    assert np.mean(in_group) > 0.9, in_group  # chance: about 1/6
    metrics = run.metrics["test"]
    assert metrics["hit_rate@5"] > 1.5 * metrics["baselines"]["most_popular"]["hit_rate@5"], metrics
    assert {"recall@5", "ndcg@5", "map@5", "coverage@5"} <= set(metrics)


def test_exports_serve_the_same_top_k(retrieval_run):
    import tensorflow as tf

    import toolkit

    run, _, _ = retrieval_run
    report = json.load(open(os.path.join(run.path, "export", "verify.json")))
    assert report["passed"], report
    endpoints = {**report["formats"]["saved_model"]["endpoints"], **report["formats"]["onnx"]["endpoints"]}
    assert set(endpoints) == {"recommend", "score", "onnx", "onnx_recommend"}
    answers = {}
    for name, path in (("keras", run.path), ("saved_model", os.path.join(run.path, "export", "saved_model")),
                       ("onnx", os.path.join(run.path, "export", "model.onnx"))):
        answers[name] = [[r["item"] for r in result["items"]] for result in toolkit.load(path).predict(
            ["u1", "u2", "u3"], top_k=4)]
    assert answers["keras"] == answers["saved_model"] == answers["onnx"], answers
    # The SavedModel answers with no Python beside it: raw ids in, ids/titles/scores out, seen items excluded.
    served = tf.saved_model.load(os.path.join(run.path, "export", "saved_model"))
    out = served.signatures["recommend"](user_id=tf.constant(["u1"]), k=tf.constant(4))
    assert [v.decode() for v in out["item_ids"].numpy()[0]] == answers["keras"][0]
    rows = sorted((int(t), i) for u, i, _, t in (line.split(",") for line in open(retrieval_run[2]).read()
                                                   .splitlines()[1:]) if u == "u1")
    assert not set(answers["keras"][0]) & {i for _, i in rows[:-1]}  # training items (all but the last) excluded
    score = served.signatures["score"](user_id=tf.constant(["u1"]), item_id=tf.constant(["i4"]))["score"].numpy()
    assert np.isfinite(score).all()
    result = run_cli("predict", run.path, "--user", "u1", "--k", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "user u1" and len(result.stdout.splitlines()) == 5


def test_unknown_ids_error_or_fall_back_to_popular(retrieval_run, tmp_path):
    import toolkit

    run, _, _ = retrieval_run
    result = run_cli("predict", run.path, "--user", "nobody")
    assert result.returncode == 2 and "not among" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(ToolkitError, match="item id 'i999'"):
        toolkit.load(run.path).predict([{"user": "u1", "item": "i999"}])
    # data.unknown_ids: popular -> the most popular training items, flagged unknown (Keras and ONNX alike).
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown user id"):
        tf.saved_model.load(os.path.join(run.path, "export", "saved_model")).signatures["recommend"](
            user_id=tf.constant(["nobody"]), k=tf.constant(3))
    metadata = dict(toolkit.load(run.path).metadata, unknown_ids="popular")
    from toolkit.tasks.recommendation.predictor import RecommendationPredictor

    onnx = toolkit.load(os.path.join(run.path, "export", "model.onnx"))
    answer = RecommendationPredictor.predict("onnx", onnx.handle, metadata, ["nobody"], top_k=3)[0]
    assert answer["known"] is False
    assert [r["item"] for r in answer["items"]] == [metadata["item_ids"][i] for i in metadata["popular"][:3]]


def test_rating_model_from_retrieval_towers(retrieval_run):
    """model.towers: run:<retrieval run> initialises the rating model's towers; the rating model trains,
    reports RMSE/MAE beside the bias baseline and exports."""
    import toolkit
    from toolkit.tasks import make_task

    run, root, table = retrieval_run
    recipe = planted_recipe(root, table, kind="rating", towers=f"run:{run.path}", embedding_l2=0.0)
    task = make_task(recipe)
    model = task.build_model()
    source = toolkit.load(run.path).handle
    for tower, layer in (("user_tower", "user_embedding"), ("item_tower", "item_embedding")):
        np.testing.assert_array_equal(model.get_layer(tower).get_layer(layer).get_weights()[0],
                                      source.get_layer(tower).get_layer(layer).get_weights()[0])
    rating = toolkit.train(recipe, log=lambda line: None)
    metrics = rating.metrics["test"]
    assert metrics["rmse"] > 0 and "rmse" in metrics["baselines"]["bias"]
    assert json.load(open(os.path.join(rating.path, "export", "verify.json")))["passed"]
    pair = toolkit.load(os.path.join(rating.path, "export", "model.onnx")).predict([{"user": "u0", "item": "i0"}])
    assert set(pair[0]) == {"user", "item", "score"}
    for model in (rating.path, os.path.join(rating.path, "export", "saved_model"),
                  os.path.join(rating.path, "export", "model.onnx")):  # answers stay on the 1-5 scale of the data
        loaded = toolkit.load(model)
        scores = [entry["score"] for row in loaded.predict(["u0", "u1", "u2"]) for entry in row["items"]]
        scores += [row["score"] for row in loaded.predict([{"user": f"u{n}", "item": f"i{n}"} for n in range(9)])]
        assert all(1.0 <= score <= 5.0 for score in scores), (model, scores)
    with pytest.raises(ToolkitError, match="embedding_dim"):
        make_task(planted_recipe(root, table, kind="rating", towers=f"run:{run.path}", embedding_dim=4,
                                 user_features=False, item_features=False)).build_model()


def test_recipe_errors_are_one_line(tmp_path):
    base = {"task": "recommendation"}
    with pytest.raises(ToolkitError, match="run:<run directory>"):
        load_recipe({**base, "model": {"towers": "saved_models/x"}})
    with pytest.raises(ToolkitError, match="kind"):
        load_recipe({**base, "model": {"kind": "ranking_thing"}})
    from toolkit.tasks import make_task

    with pytest.raises(ToolkitError, match="not a finished run"):
        make_task(load_recipe({**base, "data": {"source": "csv", "path": planted_table(tmp_path / "t.csv"),
                                                "columns": {"user": "user", "item": "item"}},
                               "model": {"towers": f"run:{tmp_path}/none"}})).build_model()


def tiny_bert_preset(directory):
    """A tiny BERT (random weights, character vocabulary) saved as a local KerasHub preset."""
    import keras
    import keras_hub

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789()")
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return str(directory)


def test_item_titles_embedded_by_a_pretrained_text_backbone(tmp_path):
    """model.item_text: the titles go through a KerasHub text encoder once; its mean-pooled outputs are a frozen
    item feature inside the model (exports need no backbone)."""
    import keras_hub

    import toolkit

    table = planted_table(tmp_path / "plays.csv")
    preset = tiny_bert_preset(tmp_path / "bert")
    recipe = planted_recipe(tmp_path, table, item_text={"backbone": f"hub:{preset}", "sequence_length": 8})
    recipe = load_recipe({**recipe.model_dump(), "train": {**recipe.train.model_dump(), "epochs": 2}})
    run = toolkit.train(recipe, log=lambda line: None)
    tower = toolkit.load(run.path).handle.get_layer("item_tower")
    stored = tower.get_layer("item_feature_table").get_weights()[0]
    assert stored.shape == (ITEMS, 16)  # the csv has no item features: the text embedding only
    # Row of item "i7" = mean of the backbone's token outputs over its real tokens.
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, sequence_length=8)
    inputs = preprocessor(["i7"])
    sequence = np.asarray(keras_hub.models.Backbone.from_preset(preset)(inputs)["sequence_output"])[0]
    mask = np.asarray(inputs["padding_mask"])[0].astype(bool)
    item = toolkit.load(run.path).metadata["item_ids"].index("i7")
    np.testing.assert_allclose(stored[item], sequence[mask].mean(axis=0), atol=1e-5)
    assert tower.get_layer("item_title_text_projection") is not None
    assert json.load(open(os.path.join(run.path, "export", "verify.json")))["passed"]
    from toolkit.tasks import make_task

    with pytest.raises(ToolkitError, match="could not be loaded"):
        make_task(planted_recipe(tmp_path, table, item_text={"backbone": f"hub:{tmp_path}/missing"})).build_model()


def test_a_rating_model_answers_within_the_rating_scale_of_its_data():
    """A network that predicts 5.18 and more answers 5.0 (the top of the training ratings) in every runtime, while
    items are still ranked by the network's own scores."""
    import keras
    import tensorflow as tf

    from toolkit.tasks.recommendation.predictor import Scorer, pack_ints
    from toolkit.tasks.recommendation.task import Server

    user, item = keras.Input((), dtype="int32"), keras.Input((), dtype="int32")
    predicted = keras.layers.Lambda(lambda pair: 5.18 + 0.01 * keras.ops.cast(pair[1], "float32"))([user, item])
    model = keras.Model([user, item], predicted)
    metadata = {"kind": "rating", "rating_scale": [1.0, 5.0], "clip_to_rating_scale": True,
                "user_ids": ["a", "b"], "item_ids": ["x", "y", "z"], "item_titles": ["X", "Y", "Z"],
                "seen": {"offsets": pack_ints([0, 0, 0]), "items": pack_ints([])}, "popular": [0, 1, 2],
                "unknown_ids": "error", "top_k": 3}
    scorer = Scorer(model, metadata)
    assert scorer.ratings([0, 1], [0, 2]).tolist() == [5.0, 5.0]
    ranked = scorer.recommend(np.array([0]), 3)[0]
    assert [entry["item"] for entry in ranked] == ["z", "y", "x"] and {e["score"] for e in ranked} == {5.0}
    server = Server(model, metadata)
    assert server.score(tf.constant(["a"]), tf.constant(["y"]))["score"].numpy().tolist() == [5.0]
    assert set(server.recommend(tf.constant(["b"]), tf.constant(3))["scores"].numpy().ravel().tolist()) == {5.0}
    older = {**metadata, "clip_to_rating_scale": False}  # runs written before clipping answer as they did
    assert Scorer(model, older).ratings([0], [0]).tolist() == pytest.approx([5.18])


def test_an_unknown_numeric_id_gets_the_range_not_similar_strings():
    from toolkit.tasks.recommendation.predictor import _close_ids

    known = [str(n) for n in range(1, 1683)]
    hint = _close_ids("99999", known)
    assert "999" not in hint.replace("99999", "") and hint == " (training ids run from 1 to 1682)"
    assert "u12" in _close_ids("u121", ["u12", "i7"])  # names still get close matches


def test_the_phase_line_names_no_backbone_for_a_model_trained_whole(tmp_path):
    import toolkit

    recipe = planted_recipe(tmp_path, planted_table(tmp_path / "plays.csv"))
    recipe.train.epochs = 1
    recipe.export.formats = []
    lines = []
    toolkit.train(recipe, log=lines.append)
    phases = [line for line in lines if line.startswith("phase ")]
    assert phases == ["phase train: epochs 1-1, learning rate 0.01"], lines
