"""Text classifiers deployed: raw strings in, labels and probabilities out, in every runtime.

The SavedModel normalises and tokenises inside the graph (`serving_default`: strings). The ONNX and TFLite
exports are the network (token ids -> probabilities): outside the graph the text is normalised
(`toolkit.data.text.normalize_text`) and tokenised with the `sentencepiece` library from the SentencePiece model
stored in the export's metadata, so `toolkit predict model.onnx --text ...` runs without TensorFlow. A model
fine-tuned from a KerasHub preset (`model.encoder: hub:...`) tokenises with the preset's own tokenizer, stored in
the metadata too, which needs TensorFlow Text.

Example:

>>> from toolkit.tasks.text_classification.predictor import TextClassificationPredictor
>>> TextClassificationPredictor.format_prediction(
...     {"input": "a fine day", "label": "weather", "top_k": [{"label": "weather", "probability": 0.91}]})
'weather 0.910  <- a fine day'
"""

import os

import numpy as np

from toolkit.data.text import normalize_text, pack_ids_numpy, pad_rows
from toolkit.tasks.predictor import Predictor

BATCH = 64


class TextCodec:
    """Strings -> the padded int32 token ids the network takes, outside the graph (as the SavedModel does inside).

    Args:
        metadata: dict. The model's toolkit metadata (`tokenizer`: kind, the SentencePiece proto or the packed
            preset tokenizer, start/end/pad ids, max_length).
    """

    def __init__(self, metadata):
        tokenizer = metadata["tokenizer"]
        self.start, self.end = list(tokenizer["start"]), list(tokenizer["end"])
        self.pad, self.max_length = int(tokenizer["pad"]), int(tokenizer["max_length"])
        if tokenizer["kind"] == "hub":
            from toolkit.data.text import unpack_tokenizer

            hub = unpack_tokenizer(tokenizer["archive"])
            self._encode = lambda text: [int(i) for i in np.asarray(hub(text)).reshape(-1)]
        else:
            from toolkit.data.text import sentencepiece_processor

            self._encode = sentencepiece_processor(tokenizer["proto"]).EncodeAsIds

    @property
    def room(self):
        """How many text tokens fit beside the start and end ids."""
        return self.max_length - len(self.start) - len(self.end)

    def tokens(self, text):
        return self._encode(normalize_text(text))

    def ids(self, texts):
        """(int32 [len(texts), length], token count of each text before truncation)."""
        tokens = [self.tokens(text) for text in texts]
        rows = [pack_ids_numpy(t, self.start, self.end, self.max_length) for t in tokens]
        return pad_rows(rows, self.pad), [len(t) for t in tokens]


def probabilities_of(run, codec, texts, batch_size=BATCH, on_batch=None):
    """Class probabilities [len(texts), classes] of `run` (token ids -> probabilities) over batches of texts;
    also the token counts."""
    scores, counts = [], []
    for start in range(0, len(texts), batch_size):
        ids, sizes = codec.ids(texts[start:start + batch_size])
        scores.append(np.asarray(run(ids), np.float32))
        counts += sizes
        if on_batch is not None:
            on_batch(len(sizes))
    if not scores:
        return np.zeros((0, 0), np.float32), counts
    return np.concatenate(scores), counts


def onnx_runner(session):
    """token ids -> probabilities through an ONNX Runtime session or a TFLite one."""
    name = session.get_inputs()[0].name
    return lambda ids: session.run(None, {name: ids.astype(np.int32)})[0]


class TextClassificationPredictor(Predictor):
    """Text classification: labels and probabilities per text."""

    name = "text_classification"
    agreement_unit = "top-1 per text"
    quality_metric = "accuracy"
    export_notes = {
        "onnx": "the network only (token ids -> probabilities): `toolkit predict x.onnx` normalises and tokenises "
                "with sentencepiece from the metadata (no TensorFlow; a hub: model's tokenizer needs TensorFlow Text)",
        "tflite": "the network only, like ONNX",
    }

    @classmethod
    def summary_metrics(cls, metrics):
        keys = ("accuracy", "macro_f1", "micro_f1", "mAP", "examples")
        summary = {key: metrics[key] for key in keys if key in metrics}
        baseline = metrics.get("baseline") or {}
        for key in ("accuracy", "macro_f1", "micro_f1", "mAP"):
            if key in baseline:
                summary[f"baseline_{key}"] = baseline[key]
        return summary

    @classmethod
    def card_metrics(cls, metrics):
        from toolkit.model_card import number, table

        lines = []
        baseline = metrics.get("baseline")
        if baseline:
            keys = [k for k in ("accuracy", "macro_f1", "micro_f1", "mAP") if k in baseline]
            lines += [f"Against a baseline trained and tested on the same splits in the same run ({baseline['name']}, "
                      f"C={baseline.get('C')}):", "",
                      table(["", *keys], [["this model", *[number(metrics[k]) for k in keys]],
                                          ["baseline", *[number(baseline[k]) for k in keys]]]), ""]
        multi = "average_precision" in next(iter(metrics.get("per_class", {}).values()), {})
        header = ["class", "precision", "recall", "F1"] + (["AP"] if multi else []) + ["support"]
        lines += ["Per class:", "", table(header, [
            [name, number(v["precision"]), number(v["recall"]), number(v["f1"])]
            + ([number(v["average_precision"])] if multi else []) + [v["support"]]
            for name, v in metrics.get("per_class", {}).items()]), ""]
        if metrics.get("per_group"):
            lines += ["Per group:", "", table(["group", "accuracy", "texts"], [
                [name, number(v["accuracy"]), v["examples"]] for name, v in metrics["per_group"].items()]), ""]
        return lines

    @classmethod
    def card_limitations(cls, metadata):
        kind = "any number of the" if metadata.get("multi_label") else "one of the"
        return [
            f"- Classifies text like the training data ({metadata.get('data_provenance', '')}) into {kind} "
            f"{len(metadata.get('class_names', []))} classes above; it always answers, also for text about "
            "something else: use the probabilities to reject unsure answers.",
            f"- Reads at most {metadata['tokenizer']['max_length']} tokens of a text (the rest is left out, and "
            "`toolkit predict` says so).",
            "- The baseline row shows what a linear model on word counts reaches on the same split: where the two "
            "are close, the network adds little.",
        ]

    # Verification -----------------------------------------------------------------------------
    @classmethod
    def load_samples(cls, directory, metadata):
        with open(os.path.join(directory, "texts.tsv"), encoding="utf-8") as f:
            return [line.rstrip("\n").split("\t")[0] for line in f if line.strip()]

    @classmethod
    def predict_inputs(cls, samples):
        return [s.text if hasattr(s, "text") else str(s) for s in samples]

    @classmethod
    def reference_key(cls, endpoint):
        return "model"

    @classmethod
    def reference_outputs(cls, model, samples, metadata, endpoint):
        codec = TextCodec(metadata)
        return probabilities_of(lambda ids: np.asarray(model(ids, training=False)), codec,
                                cls.predict_inputs(samples))[0]

    @classmethod
    def outputs_saved_model(cls, artifact, samples, metadata):
        import tensorflow as tf

        texts = cls.predict_inputs(samples)
        by_text = artifact.signatures["serving_default"](text=tf.constant(texts))["probabilities"].numpy()
        codec = TextCodec(metadata)
        by_ids = probabilities_of(
            lambda ids: artifact.signatures["classify_tokens"](token_ids=tf.constant(ids))["probabilities"].numpy(),
            codec, texts)[0]
        return {"serving_default": by_text, "classify_tokens": by_ids}

    @classmethod
    def outputs_onnx(cls, artifact, samples, metadata):
        return {"onnx": probabilities_of(onnx_runner(artifact), TextCodec(metadata), cls.predict_inputs(samples))[0]}

    @classmethod
    def quality_endpoint(cls, metadata):
        return "onnx"

    @classmethod
    def quality(cls, outputs, targets, metadata):
        outputs, targets = np.asarray(outputs), np.asarray(targets)
        if metadata.get("multi_label"):
            predicted = outputs >= float(metadata.get("threshold", 0.5))
            return float(np.mean(np.all(predicted == (targets > 0.5), axis=1)))
        return float(np.mean(np.argmax(outputs, axis=-1) == targets.reshape(-1)))

    # Prediction: strings -> [{"input", "label"/"labels", "top_k", ...}] --------------------------------------
    @classmethod
    def predict_keras(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        codec = TextCodec(metadata)
        texts = [str(text) for text in inputs]
        scores, counts = probabilities_of(lambda ids: np.asarray(handle(ids, training=False)), codec, texts)
        return cls._results(texts, scores, counts, metadata, top_k, codec)

    @classmethod
    def predict_saved_model(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        import tensorflow as tf

        texts = [str(text) for text in inputs]
        scores = np.concatenate([
            handle.signatures["serving_default"](text=tf.constant(texts[start:start + BATCH]))["probabilities"].numpy()
            for start in range(0, len(texts), BATCH)]) if texts else np.zeros((0, 0), np.float32)
        codec = TextCodec(metadata)
        return cls._results(texts, scores, [len(codec.tokens(t)) for t in texts], metadata, top_k, codec)

    @classmethod
    def predict_onnx(cls, handle, metadata, inputs, top_k=None, output_dir=None):
        codec = TextCodec(metadata)
        texts = [str(text) for text in inputs]
        scores, counts = probabilities_of(onnx_runner(handle), codec, texts)
        return cls._results(texts, scores, counts, metadata, top_k, codec)

    @staticmethod
    def _results(texts, scores, counts, metadata, top_k, codec):
        names = metadata["class_names"]
        k = max(1, min(top_k or metadata.get("top_k", 5), len(names)))
        threshold = float(metadata.get("threshold", 0.5))
        results = []
        for text, row, count in zip(texts, scores, counts):
            order = np.argsort(-row, kind="stable")[:k]
            result = {"input": text}
            if metadata.get("multi_label"):
                result["labels"] = [names[i] for i in range(len(names)) if row[i] >= threshold]
            else:
                result["label"] = names[int(order[0])]
            result["top_k"] = [{"index": int(i), "label": names[int(i)], "probability": round(float(row[i]), 6)}
                               for i in order]
            result["tokens"] = int(count)
            if count > codec.room:
                result["warning"] = (f"input truncated to its first {codec.room} of {count} tokens (the model reads "
                                     f"at most {codec.max_length})")
            results.append(result)
        return results

    # Explanation: integrated gradients over the token embeddings ----------------------------------------------
    @classmethod
    def explain_inputs(cls, inputs, metadata):
        """(the texts, int32 token ids [n, length] as `predict_keras` feeds them)."""
        texts = [str(text) for text in inputs]
        ids, _ = TextCodec(metadata).ids(texts)
        return texts, ids

    @classmethod
    def explain_embedding(cls, metadata):
        """The from-scratch networks' token embedding layer; a hub: encoder's is inside its backbone."""
        from toolkit.errors import ModelFileError

        if metadata["tokenizer"].get("kind") == "hub":
            raise ModelFileError("models fine-tuned from a hub: encoder cannot be explained yet (its token embedding "
                                 "is inside the preset's backbone); explain takes the from-scratch encoders")
        return "embedding"

    @classmethod
    def explain_tokens(cls, text, ids, metadata):
        """[(position in ids, token piece)] of the text's tokens (start, end and padding left out)."""
        from toolkit.data.text import sentencepiece_processor

        codec = TextCodec(metadata)
        processor = sentencepiece_processor(metadata["tokenizer"]["proto"])
        count = min(len(codec.tokens(text)), codec.room)
        first = len(codec.start)
        return [(first + i, processor.IdToPiece(int(ids[first + i]))) for i in range(count)]

    @classmethod
    def explain_targets(cls, outputs, metadata, class_index=None, image_size=None, **options):
        probabilities = np.asarray(outputs, np.float64).reshape(-1)
        index = int(np.argmax(probabilities)) if class_index is None else int(class_index)
        return [{"class_index": index, "label": metadata["class_names"][index],
                 "score": round(float(probabilities[index]), 6)}]

    @classmethod
    def explain_score(cls, outputs, target, metadata):
        return outputs[:, target["class_index"]]

    @classmethod
    def format_prediction(cls, result):
        text = result["input"] if len(result["input"]) <= 60 else result["input"][:57] + "..."
        if "labels" in result:
            chosen = ", ".join(result["labels"]) or "(no label above the threshold)"
            ranked = ", ".join(f"{item['label']} {item['probability']:.3f}" for item in result["top_k"])
            return f"{chosen} [{ranked}]  <- {text}"
        top = result["top_k"][0]
        return f"{top['label']} {top['probability']:.3f}  <- {text}"
