"""Recommenders deployed: top-k items per raw user id, or scores of (user, item) pairs, in every runtime (the
ONNX scoring network ranks all items by brute force in NumPy with the metadata's id maps); verification
outputs and the model card's table beside the baselines.

Example:

>>> from toolkit.tasks.recommendation.predictor import pack_ints, unpack_ints
>>> unpack_ints(pack_ints([3, 1, 2])).tolist()
[3, 1, 2]
"""

import base64
import os

import numpy as np

from toolkit.errors import DataError, RecipeError
from toolkit.tasks.predictor import Predictor


class RecommendationPredictor(Predictor):
    """Recommendation: ranked items per user, scores per pair."""

    name = "recommendation"
    agreement_unit = "identical top-k lists (scores: max abs diff)"
    export_notes = {
        "onnx": "the scoring network only ((user index, item index) -> score): `toolkit predict x.onnx --user ID` "
                "maps ids with the metadata and ranks all items by brute force in NumPy",
    }

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ["rmse", "mae", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "examples"]
        summary = {key: metrics[key] for key in keys if key in metrics}
        for name, figures in (metrics.get("baselines") or {}).items():
            for key in ("recall@10", "rmse"):
                if key in figures:
                    summary[f"{name}_{key}"] = figures[key]
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        lines = ["", "| system | " + " | ".join(k for k in _CARD_KEYS if k in metrics) + " |",
                 "|---|" + "---|" * sum(1 for k in _CARD_KEYS if k in metrics)]
        rows = [("this model", metrics)] + list((metrics.get("baselines") or {}).items())
        for name, figures in rows:
            lines.append(f"| {name} | " + " | ".join(
                f"{figures[k]:.4f}" if isinstance(figures.get(k), float) else "n/a"
                for k in _CARD_KEYS if k in metrics) + " |")
        return lines + [""]

    @classmethod
    def card_limitations(cls, metadata):
        return [
            f"- Recommends among the {len(metadata.get('item_ids', []))} items seen in training, for the "
            f"{len(metadata.get('user_ids', []))} users seen in training; unknown users: "
            f"{metadata.get('unknown_ids')} ({'most popular items' if metadata.get('unknown_ids') == 'popular' else 'an error'}).",
            f"- Data: {metadata.get('data_provenance', '')}.",
        ]

    @classmethod
    def load_samples(cls, directory, metadata):
        with open(os.path.join(directory, "pairs.tsv"), encoding="utf-8") as f:
            next(f)
            return [(u, i, float(r)) for u, i, r in (line.rstrip("\n").split("\t") for line in f if line.strip())]

    @classmethod
    def predict_inputs(cls, samples):
        return [user for user, _, _ in samples]

    @classmethod
    def reference_key(cls, endpoint):
        return "scores" if endpoint in ("score", "onnx") else "lists"

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        scorer = Scorer(model, metadata)
        users, items = _indices(metadata, samples)
        if cls.reference_key(endpoint) == "scores":
            return scorer.ratings(users, items)[:, None]
        return [" ".join(r["item"] for r in row) for row in scorer.recommend(users, int(metadata["top_k"]))]

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        users = tf.constant([s[0] for s in samples])
        answer = artifact.signatures["recommend"](user_id=users, k=tf.constant(int(metadata["top_k"]), tf.int32))
        lists = [" ".join(v.decode("utf-8") for v in row) for row in answer["item_ids"].numpy()]
        scores = artifact.signatures["score"](user_id=users, item_id=tf.constant([s[1] for s in samples]))
        return {"recommend": lists, "score": scores["score"].numpy()[:, None]}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        scorer = OnnxScorer(artifact, metadata)
        users, items = _indices(metadata, samples)
        return {"onnx": scorer.ratings(users, items)[:, None],
                "onnx_recommend": [" ".join(r["item"] for r in row)
                                   for row in scorer.recommend(users, int(metadata["top_k"]))]}

    # Prediction: top-k items per user id, or the score of (user, item) pairs; inputs are raw user ids (str or
    # int), or {"user": id, "item": id} pairs to score --------------------------------------------------------
    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        k, users, pairs, _, _ = _requests(metadata, inputs, top_k)
        return _predict_saved_model(handle, metadata, users, pairs, k)

    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return _scored(Scorer(handle, metadata), *_requests(metadata, inputs, top_k))

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        return _scored(OnnxScorer(handle, metadata), *_requests(metadata, inputs, top_k))

    @classmethod
    def format_prediction(cls, result):
        if "items" not in result:
            return f"user {result['user']}, item {result['item']}: score {result['score']:.4f}"
        head = f"user {result['user']}" + ("" if result["known"] else " (unknown: most popular items)")
        lines = [head] + [f"  {n + 1:>2}. {r['title']} (item {r['item']})  {r['score']:.4f}"
                          for n, r in enumerate(result["items"])]
        return "\n".join(lines)


def pack_ints(values):
    """int32 array -> base64 text (metadata)."""
    return base64.b64encode(np.asarray(values, "<i4").tobytes()).decode("ascii")


def unpack_ints(text):
    return np.frombuffer(base64.b64decode(text.encode("ascii")), "<i4").astype(np.int32)


def seen_items(metadata):
    """Per user index, the item indices of its training interactions (excluded from recommendations)."""
    offsets, items = unpack_ints(metadata["seen"]["offsets"]), unpack_ints(metadata["seen"]["items"])
    return [items[offsets[u]:offsets[u + 1]] for u in range(len(offsets) - 1)]


_CARD_KEYS = ("rmse", "mae", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10")


def _requests(metadata, inputs, top_k):
    """(k, user ids, pairs to score, user indices, item indices of the pairs) of `predict` inputs, every id
    checked: an unknown item is an error, never a score of some other item."""
    k = int(top_k or metadata.get("top_k", 10))
    pairs = [x for x in inputs if isinstance(x, dict) and x.get("item") is not None]
    users = [str(x["user"]) if isinstance(x, dict) else str(x) for x in inputs]
    if pairs and len(pairs) != len(inputs):
        raise RecipeError("predict: give either user ids (top-k) or (user, item) pairs, not both")
    index = {raw: i for i, raw in enumerate(metadata["user_ids"])}
    user_indices = np.asarray([index.get(u, -1) for u in users], np.int32)
    unknown = [u for u, i in zip(users, user_indices) if i < 0]
    if unknown and (pairs or metadata.get("unknown_ids") != "popular"):
        close = _close_ids(unknown[0], metadata["user_ids"])
        raise DataError(f"user id {unknown[0]!r} is not among the {len(metadata['user_ids'])} training users"
                        f"{close}; the model knows only users seen in training (data.unknown_ids: popular "
                        "recommends the most popular items instead)")
    items = None
    if pairs:
        item_index = {raw: i for i, raw in enumerate(metadata["item_ids"])}
        items = np.asarray([item_index.get(str(p["item"]), -1) for p in pairs], np.int32)
        if (items < 0).any():
            missing = str(pairs[int(np.argmax(items < 0))]["item"])
            raise DataError(f"item id {missing!r} is not among the {len(metadata['item_ids'])} training items"
                            f"{_close_ids(missing, metadata['item_ids'])}; the model scores only items seen "
                            "in training")
    return k, users, pairs, user_indices, items


def _scored(scorer, k, users, pairs, user_indices, items):
    """Results of a Keras or ONNX scorer: scores of the pairs, or the top-k lists of the users."""
    if pairs:
        scores = scorer.ratings(user_indices, items)
        return [{"user": u, "item": str(p["item"]), "score": float(s)} for u, p, s in zip(users, pairs, scores)]
    lists = scorer.recommend(user_indices, k)
    return [{"user": u, "known": bool(i >= 0), "items": row} for u, i, row in zip(users, user_indices, lists)]


def _indices(metadata, samples):
    users = {raw: i for i, raw in enumerate(metadata["user_ids"])}
    items = {raw: i for i, raw in enumerate(metadata["item_ids"])}
    return (np.asarray([users.get(s[0], -1) for s in samples], np.int32),
            np.asarray([items.get(s[1], -1) for s in samples], np.int32))


def _close_ids(value, known):
    """A hint after an unknown id: similar ids for names; for numbers the range of the known ids (string
    similarity of numbers means nothing: 99999 is not "close" to 999)."""
    import difflib

    if value.strip().lstrip("-").isdigit():
        numbers = [int(k) for k in known if k.strip().lstrip("-").isdigit()]
        return f" (training ids run from {min(numbers)} to {max(numbers)})" if numbers else ""
    close = difflib.get_close_matches(value, known, n=3)
    return f" (close: {', '.join(close)})" if close else ""


def _predict_saved_model(handle, metadata, users, pairs, k):
    import tensorflow as tf

    if pairs:
        answer = handle.signatures["score"](user_id=tf.constant(users),
                                            item_id=tf.constant([str(p["item"]) for p in pairs]))
        return [{"user": u, "item": str(p["item"]), "score": float(s)}
                for u, p, s in zip(users, pairs, answer["score"].numpy())]
    answer = handle.signatures["recommend"](user_id=tf.constant(users), k=tf.constant(k, tf.int32))
    results = []
    for n, user in enumerate(users):
        row = [{"item": i.decode("utf-8"), "title": t.decode("utf-8"), "score": float(s)}
               for i, t, s in zip(answer["item_ids"].numpy()[n], answer["titles"].numpy()[n],
                                  answer["scores"].numpy()[n])]
        results.append({"user": user, "known": bool(answer["known"].numpy()[n]), "items": row})
    return results


def scoring_model(model, metadata):
    """The Keras network `[user index, item index] -> score` of a trained recommender.

    Rating models are that already; for retrieval the score is the cosine
    similarity of the two towers' outputs.
    """
    if metadata["kind"] == "rating":
        return model
    import keras
    from keras import ops

    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    score = ops.sum(model.get_layer("user_tower")(user) * model.get_layer("item_tower")(item), axis=-1)
    return keras.Model([user, item], score, name="scoring")


def top_k_lists(scores, user_indices, metadata, k, seen=None):
    """Ranks items per user from a score matrix [users, items]: training items excluded, unknown users (-1)
    get the most popular items. Returns lists of {"item", "title", "score"}."""
    seen = seen if seen is not None else seen_items(metadata)
    ids, titles = metadata["item_ids"], metadata["item_titles"]
    k = min(int(k), len(ids))
    results = []
    for row, user in zip(scores, user_indices):
        if user < 0:
            popular = metadata["popular"][:k]
            results.append([{"item": ids[i], "title": titles[i], "score": 0.0} for i in popular])
            continue
        row = np.asarray(row, np.float64).copy()
        row[seen[user]] = -np.inf
        order = np.argsort(-row, kind="stable")[:k]
        shown = clip_ratings(row[order], metadata)  # ranked by the model's scores, shown within the rating scale
        results.append([{"item": ids[i], "title": titles[i], "score": float(v)} for i, v in zip(order, shown)])
    return results


def clip_ratings(scores, metadata):
    """Predicted ratings clipped to the training ratings' range (rating models trained since clipping existed);
    other scores unchanged."""
    scale = metadata.get("rating_scale")
    if not metadata.get("clip_to_rating_scale") or not scale:
        return scores
    scores = np.asarray(scores, np.float32)
    clipped = np.clip(scores, np.float32(scale[0]), np.float32(scale[1]))
    return np.where(np.isneginf(scores), scores, clipped)  # items a user has seen stay -inf


class Scorer:
    """Scores of a Keras recommender: pairs, or every item for some users."""

    def __init__(self, model, metadata):
        self.metadata = metadata
        self.network = scoring_model(model, metadata)
        self.items = len(metadata["item_ids"])

    def scores(self, users, items, batch_size=65536):
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
        out = [np.asarray(self.network([users[s:s + batch_size], items[s:s + batch_size]], training=False))
               for s in range(0, len(users), batch_size)]
        return np.concatenate(out).reshape(-1).astype(np.float32) if out else np.zeros(0, np.float32)

    def all_scores(self, users, chunk=64):
        """float32 [len(users), items]; unknown users (-1) get zeros."""
        users = np.asarray(users, np.int32)
        result = np.zeros((len(users), self.items), np.float32)
        everything = np.arange(self.items, dtype=np.int32)
        for start in range(0, len(users), chunk):
            part = users[start:start + chunk]
            known = np.maximum(part, 0)
            flat = self.scores(np.repeat(known, self.items), np.tile(everything, len(part)))
            result[start:start + len(part)] = flat.reshape(len(part), self.items) * (part >= 0)[:, None]
        return result

    def ratings(self, users, items):
        """`scores` as answers: a rating model's within the rating scale (`clip_ratings`)."""
        return clip_ratings(self.scores(users, items), self.metadata)

    def recommend(self, users, k):
        return top_k_lists(self.all_scores(users), users, self.metadata, k)


class OnnxScorer(Scorer):
    """The same from the ONNX scoring network (ONNX Runtime, NumPy; no TensorFlow)."""

    def __init__(self, session, metadata):
        self.metadata = metadata
        self.session = session
        self.items = len(metadata["item_ids"])

    def scores(self, users, items, batch_size=65536):
        names = [i.name for i in self.session.get_inputs()]
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
        out = [self.session.run(None, {names[0]: users[s:s + batch_size], names[1]: items[s:s + batch_size]})[0]
               for s in range(0, len(users), batch_size)]
        return np.concatenate(out).reshape(-1).astype(np.float32) if out else np.zeros(0, np.float32)
