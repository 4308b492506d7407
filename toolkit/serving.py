"""`toolkit serve`: an HTTP inference server with TensorFlow Serving's REST API.

Any exported model (SavedModel or ONNX) of any task answers

- `POST /v1/models/<name>:predict` (also `/v1/models/<name>/versions/1:predict`)
  with `{"instances": [...]}` (row format) or `{"inputs": [...]}` (columnar),
  answered with `{"predictions": [...]}` or `{"outputs": [...]}`;
- `GET /v1/models/<name>`: the version status, as TF Serving writes it;
- `GET /v1/models/<name>/metadata`: the signature (inputs, outputs) and what
  the toolkit knows (task, runtime, instance format);
- `GET /healthz`: `{"status": "ok"}` once the model is loaded.

An instance is what the task's model takes, in JSON (`parse_instances`):
images as `{"b64": "<base64 PNG/JPEG bytes>"}` (TF Serving's convention for
bytes) or nested lists of 0-255 pixels; text as a string; audio as a list of
float samples at the model's sample rate, or `{"b64": "<WAV bytes>"}`;
models that take users a user id, or `{"user": id, "item": id}` for a score. A
prediction is the same dict `toolkit predict --json` prints, minus local file
names (a mask comes back as `{"b64": PNG}`).

Requests are grouped into batches (`--max-batch-size`, waiting at most
`--batch-timeout-ms` after the first request) and run by one worker thread,
so the model sees one call at a time. Every bad request gets a 4xx JSON
`{"error": "..."}` naming what was wrong; unexpected failures are a 500 with
`{"error": "internal error"}` (the details go to the server's log, never to
the client, and no file system path is ever echoed). Bodies over
`--max-body-mb` are refused before they are read. SIGINT/SIGTERM stop
accepting, finish the batches in flight and exit 0.

Example (the server in a thread, a client in the same process):

>>> server = Server(toolkit.load("export/model.onnx"), name="fashion")  # doctest: +SKIP
>>> server.start(port=0); server.url  # doctest: +SKIP
'http://127.0.0.1:40123'
"""

import base64
import binascii
import dataclasses
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from toolkit.errors import ModelFileError, ToolkitError

LOG = logging.getLogger("toolkit.serve")
MAX_AUDIO_SECONDS = 600


class RequestError(Exception):
    """A bad request: answered with `status` and {"error": message}."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ instances


def _b64(value, where):
    if not isinstance(value, str):
        raise RequestError(f"{where}: \"b64\" must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: \"b64\" is not valid base64")


def _image(instance, where, metadata):
    from toolkit.data.image_io import read_image

    channels = int(metadata["channels"])
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        try:
            return read_image(io.BytesIO(_b64(instance["b64"], where)), channels)
        except ToolkitError as error:
            reason = str(error).split(": ", 1)[-1]  # "image: <reason>": read_image names bytes "image", never a path
            raise RequestError(f"{where}: {reason}")
    if isinstance(instance, list):
        try:
            image = np.asarray(instance, dtype=np.float64)
        except (ValueError, TypeError):
            raise RequestError(f"{where}: pixel lists must be nested lists of numbers of one shape")
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] != channels or min(image.shape[:2]) < 1:
            raise RequestError(f"{where}: expected [height][width][{channels}] pixels, got shape {list(image.shape)}")
        if image.min() < 0 or image.max() > 255 or not np.all(image == np.round(image)):
            raise RequestError(f"{where}: pixels must be integers in 0-255")
        return image.astype(np.uint8)
    raise RequestError(f"{where}: an image is {{\"b64\": \"<base64 PNG or JPEG>\"}} or a nested list of pixels")


def _text(instance, where, metadata):
    if not isinstance(instance, str):
        raise RequestError(f"{where}: expected a string (the text the model takes), got {type(instance).__name__}")
    if not instance.strip():
        raise RequestError(f"{where}: the text is empty")
    return instance


def _audio(instance, where, metadata):
    rate = int(metadata["sample_rate"])
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        from toolkit.data.audio_io import UnreadableAudio, load_audio

        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(_b64(instance["b64"], where))
            f.flush()
            try:
                wave = load_audio(f.name, rate)
            except (UnreadableAudio, ToolkitError):
                raise RequestError(f"{where}: not a readable WAV/FLAC file")
    elif isinstance(instance, list):
        if instance and not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in instance):
            raise RequestError(f"{where}: audio is a flat list of float samples")
        wave = np.asarray(instance, np.float32)
    else:
        raise RequestError(f"{where}: audio is a list of float samples at {rate} Hz, or {{\"b64\": \"<WAV bytes>\"}}")
    if not len(wave):
        raise RequestError(f"{where}: the audio has no samples")
    if len(wave) > MAX_AUDIO_SECONDS * rate:
        raise RequestError(f"{where}: the audio is longer than {MAX_AUDIO_SECONDS} s; send shorter clips")
    if not np.all(np.isfinite(wave)):
        raise RequestError(f"{where}: the audio holds NaN or infinite samples")
    return wave


def _user(instance, where, metadata):
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
        return pair
    return identifier(instance, "user")


PARSERS = {"image": _image, "text": _text, "audio": _audio, "user": _user}
INSTANCE_HELP = {
    "image": '{"b64": "<base64 PNG or JPEG>"} or [[[r, g, b], ...], ...] pixels 0-255',
    "text": '"a sentence"',
    "audio": "[float samples at the model's sample rate] or {\"b64\": \"<base64 WAV>\"}",
    "user": '"user id" (top-k items) or {"user": "id", "item": "id"} (score)',
}


def parse_instances(body, metadata, max_instances=1024):
    """The task inputs of a predict request body (bytes); returns (inputs, columnar).

    Raises RequestError (400) naming the first problem."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestError(f"the body is not JSON ({str(error).split(':')[0]}); send "
                           '{"instances": [...]}')
    if not isinstance(request, dict):
        raise RequestError('the body must be a JSON object like {"instances": [...]}')
    keys = set(request) - {"signature_name"}
    if keys not in ({"instances"}, {"inputs"}):
        raise RequestError('give exactly one of "instances" (row format) or "inputs" (columnar), '
                           f"got keys {sorted(request)}")
    signature = request.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise RequestError(f"signature_name {signature!r}: this server has serving_default only")
    columnar = "inputs" in request
    instances = request["inputs" if columnar else "instances"]
    if not isinstance(instances, list):
        instances = [instances] if columnar else instances
    if not isinstance(instances, list) or not instances:
        raise RequestError('"instances" must be a non-empty list')
    if len(instances) > max_instances:
        raise RequestError(f"{len(instances)} instances in one request; send at most {max_instances}")
    kind = metadata.get("input")
    parse = PARSERS.get(kind)
    if parse is None:
        raise RequestError(f"this {metadata.get('task')} model takes no instances the server can parse", 500)
    inputs = []
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and kind != "user" and set(instance) != {"b64"}:
            raise RequestError(f"instances[{i}]: expected {INSTANCE_HELP[kind]}")
        inputs.append(parse(instance, f"instances[{i}]", metadata))
    return inputs, columnar


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


# ------------------------------------------------------------------ batching


@dataclasses.dataclass
class _Job:
    inputs: list
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    predictions: list = None
    error: Exception = None


class Batcher:
    """Runs the model on one thread, over batches of requests.

    Args:
        model: toolkit.predict.LoadedModel.
        max_batch_size: int. Most instances per model call.
        timeout_ms: float. How long the first request of a batch waits for others.
    """

    def __init__(self, model, max_batch_size=32, timeout_ms=5.0):
        self.model = model
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.queue = queue.Queue()
        self.batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="toolkit-batcher", daemon=True)
        self._thread.start()

    def submit(self, inputs, timeout=120.0):
        """Predictions for `inputs` (waits for its batch); raises what predicting them raised."""
        if self._stop.is_set():
            raise RequestError("the server is shutting down", 503)
        job = _Job(list(inputs))
        self.queue.put(job)
        if not job.done.wait(timeout):
            raise RequestError("the model did not answer in time", 503)
        if job.error is not None:
            raise job.error
        return job.predictions

    def _loop(self):
        while not (self._stop.is_set() and self.queue.empty()):
            try:
                first = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            jobs, count, deadline = [first], len(first.inputs), time.monotonic() + self.timeout
            while count < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    job = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                count += len(job.inputs)
            self._run(jobs)

    def _run(self, jobs):
        self.batches += 1
        output_dir = tempfile.mkdtemp(prefix="toolkit-serve-")
        try:
            inputs = [x for job in jobs for x in job.inputs]
            try:
                results = self.model.predict(inputs, output_dir=output_dir)
            except Exception:
                if len(jobs) == 1:
                    raise
                for job in jobs:  # one bad request must not fail the others
                    self._run([job])
                return
            start = 0
            for job in jobs:
                job.predictions = [serving_prediction(r, output_dir) for r in results[start:start + len(job.inputs)]]
                start += len(job.inputs)
                job.done.set()
        except ToolkitError as error:
            jobs[0].error = RequestError(_no_paths(str(error)), 400)
            jobs[0].done.set()
        except Exception as error:  # noqa: BLE001 - answered as a 500 without details
            LOG.exception("prediction failed")
            jobs[0].error = error
            jobs[0].done.set()
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)

    def stop(self):
        """Stops taking jobs; the queued ones are finished first."""
        self._stop.set()
        self._thread.join(timeout=60)


_ABSOLUTE_PATH = re.compile(r"(?<![\w/.])(?:/[^\s/'\"(),;]+)+/?")  # /a/b, also in quotes or after "run:"; no URLs


def _no_paths(message):
    """A user error's message with absolute file system paths replaced by their base names."""
    return _ABSOLUTE_PATH.sub(lambda match: os.path.basename(match.group(0).rstrip("/")) or "<path>", message)


# ------------------------------------------------------------------ HTTP


def signature_metadata(model):
    """TF Serving's `signature_def` JSON of the loaded artifact (inputs and outputs: dtype, shape)."""
    def tensor(dtype, shape):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(-1 if d is None else d)} for d in shape]}}

    from toolkit.runtimes import RUNTIMES

    if RUNTIMES.get(model.runtime).convention == "onnx":
        types = {"tensor(float)": "DT_FLOAT", "tensor(int32)": "DT_INT32", "tensor(int64)": "DT_INT64",
                 "tensor(string)": "DT_STRING", "tensor(uint8)": "DT_UINT8"}

        def shape(value):
            return [d if isinstance(d, int) else None for d in value.shape]

        inputs = {i.name: tensor(types.get(i.type, i.type), shape(i)) for i in model.handle.get_inputs()}
        outputs = {o.name: tensor(types.get(o.type, o.type), shape(o)) for o in model.handle.get_outputs()}
    else:
        function = model.handle.signatures["serving_default"]
        inputs = {name: tensor(f"DT_{spec.dtype.name.upper()}", spec.shape.as_list())
                  for name, spec in function.structured_input_signature[1].items()}
        outputs = {name: tensor(f"DT_{spec.dtype.name.upper()}", spec.shape.as_list())
                   for name, spec in function.structured_outputs.items()}
    return {"serving_default": {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}}


class Server:
    """The HTTP server around one loaded model.

    Args:
        model: toolkit.predict.LoadedModel.
        name: str. The model name in the URLs.
        max_batch_size: int. Most instances per model call.
        batch_timeout_ms: float. Longest wait for a batch to fill.
        max_body_bytes: int. Larger request bodies are refused (413).
    """

    def __init__(self, model, name="model", max_batch_size=32, batch_timeout_ms=5.0, max_body_bytes=16 << 20):
        self.model = model
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.max_instances = max(1, 32 * max_batch_size)
        self.batcher = Batcher(model, max_batch_size, batch_timeout_ms)
        self.httpd = None
        self._thread = None

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, host="127.0.0.1", port=8501):
        """Binds and serves in a background thread; returns self (`url` tells where)."""
        server = self

        class Handler(_Handler):
            app = server

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as error:
            raise ToolkitError(f"--port {port}: cannot listen on {host}:{port} ({error.strerror}); "
                               "choose another port (0 picks a free one)")
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="toolkit-http", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops accepting connections, finishes queued batches, closes the socket."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.batcher.stop()
            self.httpd.server_close()
            self.httpd = None

    def status(self):
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        info = self.model.metadata
        return {"model_spec": {"name": self.name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": signature_metadata(self.model)}},
                "toolkit": {"task": info.get("task"), "runtime": self.model.runtime, "input": info.get("input"),
                            "instance": INSTANCE_HELP.get(info.get("input"), "")}}

    def predict(self, body):
        inputs, columnar = parse_instances(body, self.model.metadata, self.max_instances)
        predictions = self.batcher.submit(inputs)
        return {"outputs": predictions} if columnar else {"predictions": predictions}


class _Handler(BaseHTTPRequestHandler):
    app = None  # the Server, set by Server.start
    protocol_version = "HTTP/1.1"
    server_version = "toolkit-serve"
    timeout = 60  # a client that stops sending is dropped

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        LOG.info("%s %s", self.address_string(), format % args)

    def _send(self, status, payload):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        """The action of the request path: health, status, metadata or predict (RequestError 404 otherwise)."""
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return "health"
        prefix = f"/v1/models/{self.app.name}"
        if not path.startswith("/v1/models/"):
            raise RequestError(f"no such endpoint; use {prefix}:predict, {prefix}, {prefix}/metadata or /healthz",
                               404)
        rest, _, verb = path[len("/v1/models/"):].partition(":")
        name, *parts = rest.split("/")
        if name != self.app.name:
            raise RequestError(f"model {name[:60]!r} is not served here; this server serves {self.app.name!r}", 404)
        if parts[:1] == ["versions"]:
            version = parts[1] if len(parts) > 1 else ""
            if version != "1":
                raise RequestError(f"version {version[:20]!r} is not served; the only version is 1", 404)
            parts = parts[2:]
        action = {("", ""): "status", ("metadata", ""): "metadata", ("", "predict"): "predict"}.get(
            ("/".join(parts), verb))
        if action is None:
            raise RequestError(f"no such endpoint; use {prefix}:predict, {prefix} or {prefix}/metadata", 404)
        return action

    def do_GET(self):  # noqa: N802 - the http.server protocol
        self._answer("GET")

    def do_POST(self):  # noqa: N802
        self._answer("POST")

    def do_PUT(self):  # noqa: N802
        self._answer("PUT")

    def do_DELETE(self):  # noqa: N802
        self._answer("DELETE")

    def _answer(self, method):
        try:
            action = self._route()
            if action == "predict":
                if method != "POST":
                    raise RequestError(f"{method} is not allowed here; POST a JSON body", 405)
                self._send(200, self.app.predict(self._body()))
                return
            if method != "GET":
                raise RequestError(f"{method} is not allowed here; use GET", 405)
            payload = {"health": {"status": "ok", "model": self.app.name},
                       "status": self.app.status(), "metadata": None}.get(action)
            self._send(200, payload if payload is not None else self.app.metadata())
        except RequestError as error:
            if error.status == 413:
                self.close_connection = True
            self._send(error.status, {"error": str(error)})
        except Exception:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("request failed")
            self._send(500, {"error": "internal error"})

    def _body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length is None:
            self.close_connection = True
            raise RequestError("send the body with a Content-Length header", 411)
        try:
            length = int(length)
        except ValueError:
            self.close_connection = True
            raise RequestError("Content-Length is not a number", 400)
        if length < 0 or length > self.app.max_body_bytes:
            raise RequestError(f"the body is {length} bytes; the limit is {self.app.max_body_bytes} "
                               "(toolkit serve --max-body-mb)", 413)
        return self.rfile.read(length)


# ------------------------------------------------------------------ CLI


def resolve_model(path, runtime=None):
    """The artifact `toolkit serve PATH --runtime R` serves: a run or export directory picks its saved_model/,
    model.onnx or model.tflite (default: the first present); an artifact path is served as it is."""
    path = os.fspath(path)
    export = os.path.join(path, "export") if os.path.isfile(os.path.join(path, "recipe.yaml")) else path
    from toolkit.runtimes import RUNTIMES, servable_runtimes

    if os.path.isdir(export) and not RUNTIMES.get("saved_model").matches(export):
        choices = [runtime] if runtime else servable_runtimes()
        for choice in choices:
            candidate = os.path.join(export, RUNTIMES.get(choice).artifact)
            if os.path.exists(candidate):
                return candidate
        raise ModelFileError(f"{path}: no {' or '.join(RUNTIMES.get(c).artifact for c in choices)} in it; give "
                             "an export directory (toolkit export RUN_DIR) or a run directory with exports")
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such export directory or model file")
    suffix = RUNTIMES.get(runtime).suffix or "" if runtime else ""
    if runtime and (os.path.splitext(path)[1] if os.path.isfile(path) else "") != suffix:
        raise ModelFileError(f"{path}: --runtime {runtime} does not match this artifact; drop --runtime")
    return path


def default_name(path):
    """The model name in URLs: the run's name (the directory above export/), else the artifact's stem."""
    parts = os.path.abspath(path).split(os.sep)
    if "export" in parts:
        return parts[parts.index("export") - 1] or "model"
    return os.path.splitext(parts[-1])[0] or "model"


def serve_forever(path, runtime=None, host="127.0.0.1", port=8501, name=None, max_batch_size=32,
                  batch_timeout_ms=5.0, max_body_mb=16.0, log=print):
    """Loads the model, serves until SIGINT/SIGTERM, then stops cleanly."""
    from toolkit.predict import load

    artifact = resolve_model(path, runtime)
    model = load(artifact)
    from toolkit.runtimes import RUNTIMES

    if not RUNTIMES.get(model.runtime).servable:
        raise ModelFileError(f"{path}: serve an export (SavedModel or ONNX), not a .keras file; run toolkit export")
    server = Server(model, name or default_name(artifact), max_batch_size, batch_timeout_ms,
                    int(max_body_mb * (1 << 20)))
    server.start(host, port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    log(f"serving {server.name} ({model.metadata.get('task')}, {model.runtime}) on {server.url}/v1/models/"
        f"{server.name}:predict")
    while not stopping.wait(0.2):
        pass
    log("stopping: finishing requests in flight")
    server.stop()
    log("stopped")


__all__ = ["Server", "Batcher", "parse_instances", "serve_forever", "resolve_model", "RequestError"]
