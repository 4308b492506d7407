"""Text that every text task shares: normalisation (in Python and in the graph), SentencePiece vocabularies
learned from a training split, and KerasHub tokenizers that travel inside a model's metadata.

The same normalisation runs in training (`normalize_text`), in the SavedModel (`normalise_strings`, TensorFlow
Text ops) and before ONNX Runtime (`normalize_text` again), so an exported model sees what the trained one saw.
SentencePiece models use the special ids of `keras_hub.tokenizers.compute_sentence_piece_proto` (pad 0, unk 1,
bos 2, eos 3) and are stored in metadata as base64 text (`encode_proto` / `proto_bytes`).

Example:

>>> from toolkit.data.text import learn_sentencepiece, normalize_text
>>> normalize_text("  caf\\u0065\\u0301 \\t au\\n lait ")
'café au lait'
>>> import sentencepiece
>>> processor = sentencepiece.SentencePieceProcessor()
>>> processor.LoadFromSerializedProto(learn_sentencepiece(["a cat sat on a mat"] * 50, 40, "demo"))
True
>>> processor.IdToPiece(0), processor.IdToPiece(3)
('<pad>', '</s>')
"""

import base64
import io
import json
import os
import tempfile
import unicodedata
import zipfile

from toolkit.errors import DataError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def normalize_text(text):
    """Unicode NFC, every whitespace run as one space, stripped.

    Args:
        text: str.

    Example:

    >>> normalize_text("a \\n\\t b ")
    'a b'
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def normalise_strings(texts):
    """In-graph text normalisation, as `normalize_text`: Unicode NFC, whitespace runs to one space, stripped.

    Args:
        texts: string tensor.
    """
    import tensorflow as tf
    import tensorflow_text as tf_text

    texts = tf_text.normalize_utf8(texts, "NFC")
    texts = tf.strings.regex_replace(texts, r"\s+", " ")
    return tf.strings.strip(texts)


def learn_sentencepiece(texts, vocabulary_size, name):
    """Trains a SentencePiece unigram model on `texts`; returns the proto bytes.

    Same special ids as `keras_hub.tokenizers.compute_sentence_piece_proto`
    (pad 0, unk 1, bos 2, eos 3); `hard_vocab_limit=False` so a small corpus
    gets a smaller vocabulary instead of an error.

    Args:
        texts: list of str. The training split's text (one example per item).
        vocabulary_size: int. The largest vocabulary wanted.
        name: str. What the text is (in the error when there is none).
    """
    import sentencepiece

    if not texts:
        raise DataError(f"tokenizer: no {name} text to learn a vocabulary from")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, f"{name}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(text.replace("\n", " ") + "\n" for text in texts)
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            input=path, model_writer=model, vocab_size=vocabulary_size, model_type="unigram",
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>",
            eos_piece="</s>", hard_vocab_limit=False, character_coverage=1.0, minloglevel=2,
            input_sentence_size=1000000, shuffle_input_sentence=False,
        )
    return model.getvalue()


def encode_proto(proto):
    """SentencePiece model bytes as the base64 text stored in metadata."""
    return base64.b64encode(proto).decode("ascii")


def sentencepiece_processor(encoded):
    """A `sentencepiece.SentencePieceProcessor` (no TensorFlow) of a base64 proto from metadata."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    processor.LoadFromSerializedProto(proto_bytes(encoded))
    return processor


def proto_bytes(encoded):
    """SentencePiece model bytes from the base64 text stored in metadata."""
    return base64.b64decode(encoded.encode("ascii"))


def make_tokenizer(encoded_proto, side):
    """A KerasHub SentencePiece tokenizer (int32 ids, ragged) from a base64 proto.

    Args:
        encoded_proto: str. The base64 SentencePiece model.
        side: str. "source" or "target": names the TensorFlow Text resource.
            Two unnamed `tf_text.SentencepieceTokenizer`s in one SavedModel
            collapse into one after loading (both detokenise with the first
            model; reproduced with TF 2.21 / TF Text 2.21), so each gets its
            own name.
    """
    import keras_hub
    import tensorflow as tf
    import tensorflow_text as tf_text

    proto = proto_bytes(encoded_proto)
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto, dtype="int32", name=f"{side}_tokenizer")
    tokenizer._sentence_piece = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32,
                                                               name=f"{side}_sentencepiece")
    if not tokenizer.built:  # a SavedModel export tracks it, and Keras exports only built layers
        tokenizer.build(None)
    return tokenizer


def pack_tokenizer(tokenizer):
    """A KerasHub tokenizer as base64 text (its `save_to_preset` files, zipped) for the metadata."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_to_preset(directory)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for root, _, files in os.walk(directory):
                for name in files:
                    path = os.path.join(root, name)
                    archive.write(path, os.path.relpath(path, directory))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def unpack_tokenizer(encoded):
    """The KerasHub tokenizer stored by `pack_tokenizer`."""
    import keras
    import keras_hub  # noqa: F401 - registers the tokenizer classes

    from toolkit.data.fetch import extract_archive
    from toolkit.errors import ModelFileError, ToolkitError

    with tempfile.TemporaryDirectory() as directory:
        try:
            data = io.BytesIO(base64.b64decode(encoded.encode("ascii"), validate=True))
            if not zipfile.is_zipfile(data):
                raise ModelFileError("the model's tokenizer archive is not a zip archive")
            extract_archive(data, directory, name="the model's tokenizer archive")
        except (ValueError, TypeError, AttributeError) as error:  # not base64 text
            raise ModelFileError(f"the model's tokenizer archive is unreadable ({error}); re-export the model")
        except ToolkitError as error:
            raise ModelFileError(f"{error}; the model file is damaged or was not written by toolkit")
        # The tokenizer's own files (tokenizer.json + assets), as KerasHub's preset loader reads them;
        # `Tokenizer.from_preset` would also want the whole model's config.json.
        with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
            tokenizer = keras.saving.deserialize_keras_object(json.load(f))
        tokenizer.load_preset_assets(directory)
    if not tokenizer.built:
        tokenizer.build(None)
    return tokenizer


def pack_ids(ids, start, end, max_length, pad):
    """In-graph packing of tokenised text: `start` ids + the first tokens + `end` ids, at most `max_length` ids per
    row, padded with `pad` to the longest row (at least one column, so an empty text still has a shape).

    Args:
        ids: tf.RaggedTensor (or a dense tensor padded with `pad`) of token ids, one row per text.
        start: list of int. Ids put before the tokens (a classifier's [CLS]; none for SentencePiece models).
        end: list of int. Ids put after them ([SEP]).
        max_length: int. The most ids per row, start and end ids included.
        pad: int. The padding id.
    """
    import tensorflow as tf

    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids, padding=pad)
    ids = tf.cast(ids[:, : max_length - len(start) - len(end)], tf.int32)
    rows = tf.shape(ids.row_lengths())[0]
    parts = [tf.RaggedTensor.from_tensor(tf.fill([rows, len(values)], 0) + tf.constant(values, tf.int32))
             for values in (start, end)]
    ids = tf.concat([parts[0], ids, parts[1]], axis=1) if start or end else ids
    ids = ids.to_tensor(default_value=pad)
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]], constant_values=pad)


def pack_ids_numpy(tokens, start, end, max_length):
    """`pack_ids` of one text outside the graph: start ids + the first tokens + end ids (a list of int).

    Example:

    >>> pack_ids_numpy([7, 8, 9, 10], [2], [3], 4)
    [2, 7, 8, 3]
    """
    return list(start) + list(tokens)[: max_length - len(start) - len(end)] + list(end)


def pad_rows(rows, pad=PAD):
    """int32 [len(rows), longest row (at least 1)] of lists of ids, padded with `pad` (as `pack_ids` pads)."""
    import numpy as np

    width = max([1] + [len(row) for row in rows])
    array = np.full((len(rows), width), pad, np.int32)
    for i, row in enumerate(rows):
        array[i, : len(row)] = row
    return array
