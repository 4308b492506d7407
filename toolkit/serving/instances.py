"""The toolkit's own request format (`signature_name: "toolkit"`): task-level instances in, the same result
dicts as `toolkit predict --json` out, on every runtime.

An instance is what the task's model takes, in JSON (`parse_instances`): images as
`{"b64": "<base64 PNG/JPEG bytes>"}` or nested lists of 0-255 pixels; text as a string; audio as a list of float
samples at the model's sample rate, or `{"b64": "<WAV bytes>"}`; models that take users a user id, or
`{"user": id, "item": id}` for a score. A prediction is the dict `toolkit predict --json` prints, minus local file
names (a mask comes back as `{"b64": PNG}`).
"""

import base64
import binascii
import io
import json
import os
import shutil
import tempfile

import numpy as np

from toolkit.errors import ToolkitError

MAX_AUDIO_SECONDS = 600
TOOLKIT_SIGNATURE = "toolkit"

class RequestError(Exception):
    """A bad request: answered with `status`, {"error": message} and `headers` (e.g. Retry-After)."""

    def __init__(self, message, status=400, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def load_json(body, hint=""):
    """A request body as JSON (RequestError 400 for bad, too deep or non-UTF-8 JSON, `hint` appended)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(f"the body is JSON nested too deeply{hint}")
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestError(f"the body is not JSON ({str(error).split(':')[0]}){hint}")


def decode_b64(value, where):
    """The bytes of a {"b64": value} (RequestError naming `where` when value is not valid base64)."""
    if not isinstance(value, str):
        raise RequestError(f"{where}: \"b64\" must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: \"b64\" is not valid base64")


def _is_b64(instance):
    return isinstance(instance, dict) and set(instance) == {"b64"}


# Each parser is (plan, decode): `plan(instance, where, metadata)` checks the instance's JSON shape and returns
# (prepared value, decoded bytes it will take) without decoding anything large; `decode(prepared, where, metadata)`
# returns the task input. The planned bytes of a whole request are checked against the budget before the first
# decode, so a small body of compressed images that would decode to gigabytes is refused unread.


def _plan_image(instance, where, metadata):
    from toolkit.data.image_io import check_image_size

    channels = int(metadata["channels"])
    if _is_b64(instance):
        data = decode_b64(instance["b64"], where)
        try:
            size = check_image_size(io.BytesIO(data), name=where)
        except ToolkitError as error:
            raise RequestError(str(error))
        return data, (size[0] * size[1] * channels if size else len(data))
    if isinstance(instance, list):
        return instance, 0  # already in memory as JSON: the body limit bounds it
    raise RequestError(f"{where}: an image is {{\"b64\": \"<base64 PNG or JPEG>\"}} or a nested list of pixels")


def _image(instance, where, metadata):
    from toolkit.data.image_io import read_image

    channels = int(metadata["channels"])
    if isinstance(instance, bytes):
        try:
            return read_image(io.BytesIO(instance), channels)
        except ToolkitError as error:
            reason = str(error).split(": ", 1)[-1]  # "image: <reason>": read_image names bytes "image", never a path
            raise RequestError(f"{where}: {reason}")
    try:
        image = np.asarray(instance, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"{where}: pixel lists must be nested lists of numbers of one shape")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] != channels or min(image.shape[:2]) < 1:
        raise RequestError(f"{where}: expected [height][width][{channels}] pixels, got shape {list(image.shape)}")
    if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 255 or not np.all(image == np.round(image)):
        raise RequestError(f"{where}: pixels must be integers in 0-255")
    return image.astype(np.uint8)


def _plan_text(instance, where, metadata):
    if not isinstance(instance, str):
        raise RequestError(f"{where}: expected a string (the text the model takes), got {type(instance).__name__}")
    if not instance.strip():
        raise RequestError(f"{where}: the text is empty")
    return instance, len(instance)


def _text(instance, where, metadata):
    return instance


def _plan_audio(instance, where, metadata):
    rate = int(metadata["sample_rate"])
    if _is_b64(instance):
        data = decode_b64(instance["b64"], where)
        return data, 8 * len(data)  # float32 samples of 16-bit PCM, resampled up to 2x: at most 4x the bytes, twice
    if isinstance(instance, list):
        if instance and not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in instance):
            raise RequestError(f"{where}: audio is a flat list of float samples")
        return instance, 4 * len(instance)
    raise RequestError(f"{where}: audio is a list of float samples at {rate} Hz, or {{\"b64\": \"<WAV bytes>\"}}")


def _audio(instance, where, metadata):
    rate = int(metadata["sample_rate"])
    if isinstance(instance, bytes):
        from toolkit.data.audio_io import UnreadableAudio, load_audio

        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(instance)
            f.flush()
            try:
                wave = load_audio(f.name, rate)
            except (UnreadableAudio, ToolkitError):
                raise RequestError(f"{where}: not a readable WAV/FLAC file")
    else:
        try:
            wave = np.asarray(instance, np.float32)
        except OverflowError:
            raise RequestError(f"{where}: audio samples must be floats in [-1, 1]")
    if not len(wave):
        raise RequestError(f"{where}: the audio has no samples")
    if len(wave) > MAX_AUDIO_SECONDS * rate:
        raise RequestError(f"{where}: the audio is longer than {MAX_AUDIO_SECONDS} s; send shorter clips")
    if not np.all(np.isfinite(wave)):
        raise RequestError(f"{where}: the audio holds NaN or infinite samples")
    return wave


def _plan_user(instance, where, metadata):
    def identifier(value, what):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise RequestError(f"{where}: the {what} id must be a string or an integer")
        return str(value)

    if isinstance(instance, dict):
        unknown = set(instance) - {"user", "item"}
        if unknown or "user" not in instance:
            raise RequestError(f"{where}: a pair is {{\"user\": id, \"item\": id}}; got keys {sorted(instance)}")
        pair = {"user": identifier(instance["user"], "user")}
        if instance.get("item") is not None:
            pair["item"] = identifier(instance["item"], "item")
        return pair, 0
    return identifier(instance, "user"), 0


def _user(instance, where, metadata):
    return instance


def _plan_series(instance, where, metadata):
    if not isinstance(instance, list) or not instance:
        raise RequestError(f"{where}: expected a series: [value, ...] or [[value per channel], ...] (steps first)")
    return instance, 4 * len(instance) * int(metadata.get("channels", 1))


def _series(instance, where, metadata):
    channels = int(metadata.get("channels", 1))
    try:
        values = np.asarray(instance, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"{where}: a series must be a list of numbers, or of lists of {channels} numbers")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != channels:
        raise RequestError(f"{where}: expected [steps][{channels}] values, got shape {list(values.shape)}")
    if not np.all(np.isfinite(values)):
        raise RequestError(f"{where}: the series holds NaN or infinite values")
    return values.astype(np.float32)


PARSERS = {"image": (_plan_image, _image), "text": (_plan_text, _text), "audio": (_plan_audio, _audio),
           "user": (_plan_user, _user), "series": (_plan_series, _series)}
INSTANCE_HELP = {
    "image": '{"b64": "<base64 PNG or JPEG>"} or [[[r, g, b], ...], ...] pixels 0-255',
    "text": '"a sentence"',
    "audio": "[float samples at the model's sample rate] or {\"b64\": \"<base64 WAV>\"}",
    "user": '"user id" (top-k items) or {"user": "id", "item": "id"} (score)',
    "series": "[value, ...] or [[value per channel], ...], steps first",
}


def parse_instances(body, metadata, max_instances=1024, max_decoded_bytes=None):
    """The task inputs of a predict request body (bytes, or its parsed JSON); returns (inputs, columnar).

    Every instance's shape is checked and its decoded size planned first (image headers, audio and text
    lengths); a request that would decode to more than `max_decoded_bytes` is refused (413) before any image or
    clip is decoded. Raises RequestError (400) naming the first problem."""
    request = load_json(body, '; send {"instances": [...]}') if isinstance(body, (bytes, bytearray, str)) else body
    if not isinstance(request, dict):
        raise RequestError('the body must be a JSON object like {"instances": [...]}')
    keys = set(request) - {"signature_name"}
    if keys not in ({"instances"}, {"inputs"}):
        raise RequestError('give exactly one of "instances" (row format) or "inputs" (columnar), '
                           f"got keys {sorted(request)}")
    signature = request.get("signature_name", TOOLKIT_SIGNATURE)
    if signature != TOOLKIT_SIGNATURE:
        raise RequestError(f"signature_name {str(signature)[:60]!r}: the toolkit format is signature_name "
                           f"{TOOLKIT_SIGNATURE!r}")
    columnar = "inputs" in request
    instances = request["inputs" if columnar else "instances"]
    if not isinstance(instances, list):
        instances = [instances] if columnar else instances
    if not isinstance(instances, list) or not instances:
        raise RequestError('"instances" must be a non-empty list')
    if len(instances) > max_instances:
        raise RequestError(f"{len(instances)} instances in one request; send at most {max_instances}")
    kind = metadata.get("input")
    if kind not in PARSERS:
        raise RequestError(f"this {metadata.get('task')} model takes no instances the server can parse", 500)
    plan, decode = PARSERS[kind]
    planned, total = [], 0
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and kind != "user" and not _is_b64(instance):
            raise RequestError(f"instances[{i}]: expected {INSTANCE_HELP[kind]}")
        prepared, cost = plan(instance, f"instances[{i}]", metadata)
        planned.append(prepared)
        total += cost
    if max_decoded_bytes is not None and total > max_decoded_bytes:
        raise RequestError(f"the {len(instances)} instances decode to {total / (1 << 20):,.0f} MB; the limit per "
                           f"request is {max_decoded_bytes / (1 << 20):,.0f} MB (toolkit serve --max-request-mb); "
                           "send fewer or smaller inputs", 413)
    return [decode(prepared, f"instances[{i}]", metadata) for i, prepared in enumerate(planned)], columnar


def serving_prediction(result, output_dir):
    """A `predict` result as the server answers it: files written under `output_dir` come back inline as
    {"b64": ...} (images) or are dropped (their JSON duplicates the result); no local path is returned."""
    answer = {}
    for key, value in result.items():
        if key == "input":
            continue
        if isinstance(value, str) and output_dir and os.path.abspath(value).startswith(output_dir + os.sep):
            if value.endswith(".png"):
                with open(value, "rb") as f:
                    answer[key] = {"b64": base64.b64encode(f.read()).decode("ascii")}
            continue
        answer[key] = value
    return answer


def run_toolkit(model, payloads):
    """Predictions of several requests' task inputs in one model call: one list of answer dicts per request."""
    output_dir = tempfile.mkdtemp(prefix="toolkit-serve-")
    try:
        results = model.predict([x for inputs in payloads for x in inputs], output_dir=output_dir)
        answers, start = [], 0
        for inputs in payloads:
            answers.append([serving_prediction(r, output_dir) for r in results[start:start + len(inputs)]])
            start += len(inputs)
        return answers
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
