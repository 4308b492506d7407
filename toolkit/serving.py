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
import concurrent.futures
import dataclasses
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from toolkit.errors import ModelFileError, ToolkitError

LOG = logging.getLogger("toolkit.serve")
MAX_AUDIO_SECONDS = 600


class RequestError(Exception):
    """A bad request: answered with `status`, {"error": message} and `headers` (e.g. Retry-After)."""

    def __init__(self, message, status=400, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# ------------------------------------------------------------------ instances


def _b64(value, where):
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
        data = _b64(instance["b64"], where)
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
        data = _b64(instance["b64"], where)
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


PARSERS = {"image": (_plan_image, _image), "text": (_plan_text, _text), "audio": (_plan_audio, _audio),
           "user": (_plan_user, _user)}
INSTANCE_HELP = {
    "image": '{"b64": "<base64 PNG or JPEG>"} or [[[r, g, b], ...], ...] pixels 0-255',
    "text": '"a sentence"',
    "audio": "[float samples at the model's sample rate] or {\"b64\": \"<base64 WAV>\"}",
    "user": '"user id" (top-k items) or {"user": "id", "item": "id"} (score)',
}


def parse_instances(body, metadata, max_instances=1024, max_decoded_bytes=None):
    """The task inputs of a predict request body (bytes); returns (inputs, columnar).

    Every instance's shape is checked and its decoded size planned first (image headers, audio and text
    lengths); a request that would decode to more than `max_decoded_bytes` is refused (413) before any image or
    clip is decoded. Raises RequestError (400) naming the first problem."""
    try:
        request = json.loads(body)
    except RecursionError:
        raise RequestError("the body is JSON nested too deeply; send {\"instances\": [...]}")
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
        raise RequestError(f"signature_name {str(signature)[:60]!r}: this server has serving_default only")
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


# ------------------------------------------------------------------ batching


@dataclasses.dataclass
class _Job:
    inputs: list
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)


class Batcher:
    """Runs the model on one thread, over batches of requests.

    Args:
        model: toolkit.predict.LoadedModel.
        max_batch_size: int. Most instances per model call.
        timeout_ms: float. How long the first request of a batch waits for others.
        max_queued: int or None. Most instances waiting for the model; beyond, a request is refused with 503 and
            Retry-After (default: 16 batches).
    """

    def __init__(self, model, max_batch_size=32, timeout_ms=5.0, max_queued=None):
        self.model = model
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.max_queued = max_queued or 16 * max_batch_size
        self.queue = queue.Queue()
        self.batches = 0
        self.on_batch = None  # called with the instances of each model call (the /metrics histogram)
        self._queued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="toolkit-batcher", daemon=True)
        self._thread.start()

    def submit_async(self, inputs):
        """Queues `inputs`; returns a `concurrent.futures.Future` of their predictions (or of the error)."""
        if self._stop.is_set():
            raise RequestError("the server is shutting down", 503)
        if not self._thread.is_alive():
            raise RequestError("the model worker stopped; restart the server", 503)
        with self._lock:
            if self._queued and self._queued + len(inputs) > self.max_queued:
                raise RequestError(f"the server is busy ({self._queued} instances waiting for the model); retry",
                                   503, {"Retry-After": "1"})
            self._queued += len(inputs)
        job = _Job(list(inputs))
        self.queue.put(job)
        return job.future

    def submit(self, inputs, timeout=120.0):
        """Predictions for `inputs` (waits for its batch); raises what predicting them raised."""
        try:
            return self.submit_async(inputs).result(timeout)
        except concurrent.futures.TimeoutError:
            raise RequestError("the model did not answer in time", 503)

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
            try:
                self._run(jobs)
            finally:
                with self._lock:
                    self._queued -= count
                for job in jobs:  # never a client left waiting, whatever happened
                    if not job.future.done():
                        job.future.set_exception(RequestError("internal error", 500))

    def _run(self, jobs):
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(sum(len(job.inputs) for job in jobs))
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
                job.future.set_result([serving_prediction(r, output_dir)
                                       for r in results[start:start + len(job.inputs)]])
                start += len(job.inputs)
        except ToolkitError as error:
            jobs[0].future.set_exception(RequestError(_no_paths(str(error)), 400))
        except Exception as error:  # noqa: BLE001 - answered as a 500 without details
            LOG.exception("prediction failed")
            jobs[0].future.set_exception(error)
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
    """TF Serving's `signature_def` JSON of the loaded artifact: every signature, its inputs and outputs with their
    tensor names, DataType names (DT_FLOAT, DT_STRING, ...) and shapes (-1: any size)."""
    def tensor(dtype, shape):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(-1 if d is None else d)} for d in shape]}}

    from toolkit.runtimes import RUNTIMES

    if RUNTIMES.get(model.runtime).convention == "onnx":
        types = {"tensor(float)": "DT_FLOAT", "tensor(int32)": "DT_INT32", "tensor(int64)": "DT_INT64",
                 "tensor(string)": "DT_STRING", "tensor(uint8)": "DT_UINT8"}

        def shape(value):
            return [d if isinstance(d, int) else None for d in value.shape]

        inputs = {i.name: {"name": i.name, **tensor(types.get(i.type, i.type), shape(i))}
                  for i in model.handle.get_inputs()}
        outputs = {o.name: {"name": o.name, **tensor(types.get(o.type, o.type), shape(o))}
                   for o in model.handle.get_outputs()}
        return {"serving_default": {"inputs": inputs, "outputs": outputs,
                                    "method_name": "tensorflow/serving/predict"}}
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(model.path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    signatures = json_format.MessageToDict(saved.meta_graphs[0], preserving_proto_field_name=True)["signature_def"]
    signatures.pop("__saved_model_init_op", None)
    return signatures  # as TF Serving writes them (MessageToJson of the SignatureDef map)


class Metrics:
    """Prometheus metrics of one server (`GET /metrics`, text format 0.0.4): requests by endpoint and code,
    latency and batch-size histograms, requests in flight."""

    def __init__(self, batcher):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("toolkit_serve_requests", "HTTP requests answered", ["endpoint", "code"],
                                registry=self.registry)
        self.latency = Histogram("toolkit_serve_request_seconds", "time from request to answer", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.batch_size = Histogram("toolkit_serve_batch_size", "instances per model call", registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.in_flight = Gauge("toolkit_serve_requests_in_flight", "requests being answered",
                               registry=self.registry)
        batcher.on_batch = self.batch_size.observe

    def observe(self, endpoint, code, seconds):
        self.requests.labels(endpoint, str(code)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def text(self):
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Server:
    """The HTTP server around one loaded model: an ASGI app (Starlette requests and responses) run by uvicorn.

    Args:
        model: toolkit.predict.LoadedModel.
        name: str. The model name in the URLs.
        max_batch_size: int. Most instances per model call.
        batch_timeout_ms: float. Longest wait for a batch to fill.
        max_body_bytes: int. Larger request bodies are refused (413), from Content-Length or while streaming.
        max_request_bytes: int. Most bytes the instances of one request may decode to (413 beyond).
        max_in_flight: int. Most requests answered at once; beyond, 503 with Retry-After.
        drain_seconds: float. On stop, how long requests in flight may take to finish.
        access_log: bool. One JSON line per request on stderr.
    """

    def __init__(self, model, name="model", max_batch_size=32, batch_timeout_ms=5.0, max_body_bytes=16 << 20,
                 max_request_bytes=128 << 20, max_in_flight=64, drain_seconds=30.0, access_log=False):
        self.model = model
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.max_request_bytes = max_request_bytes
        self.max_instances = max(1, 32 * max_batch_size)
        self.max_in_flight = max_in_flight
        self.drain_seconds = drain_seconds
        self.access_log = access_log
        self.batcher = Batcher(model, max_batch_size, batch_timeout_ms)
        self.metrics = Metrics(self.batcher)
        self.ready = False
        self.in_flight = 0
        self.received = 0  # requests that reached the app
        self.answered = 0  # answers sent in full
        self._parsers = None  # an anyio CapacityLimiter: at most 4 requests decode their instances at once
        self._uvicorn = None
        self._thread = None
        self._socket = None

    @property
    def address(self):
        """(host, port) the server listens on."""
        return self._socket.getsockname()[:2]

    @property
    def url(self):
        host, port = self.address
        return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    def start(self, host="127.0.0.1", port=8501):
        """Binds and serves in a background thread; returns self (`url` tells where)."""
        import socket

        import uvicorn

        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except (OSError, OverflowError) as error:
            raise ToolkitError(f"--port {port}: cannot listen on {host}:{port} "
                               f"({getattr(error, 'strerror', None) or error}); choose another port (0 picks a free one)")
        self._socket = sock
        config = uvicorn.Config(self.asgi, interface="asgi3", lifespan="off", log_level="error", access_log=False,
                                proxy_headers=False,
                                timeout_keep_alive=30, timeout_graceful_shutdown=max(1, int(self.drain_seconds)),
                                limit_concurrency=max(64, 16 * self.max_in_flight), server_header=False,
                                h11_max_incomplete_event_size=64 * 1024)
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="toolkit-http",
                                        daemon=True)
        self._thread.start()
        while not self._uvicorn.started:
            if not self._thread.is_alive():
                raise ToolkitError(f"the server on {host}:{port} did not start")
            time.sleep(0.01)
        self.ready = True
        return self

    def stop(self):
        """Drains: readiness turns false, no new connection is accepted, every request in flight is answered
        (up to `drain_seconds`), then the model worker finishes its queue and the socket closes."""
        if self._uvicorn is None:
            return
        self.ready = False
        self._uvicorn.should_exit = True
        self._thread.join(self.drain_seconds + 10)
        self.batcher.stop()
        self._socket.close()
        self._uvicorn = None

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
        """Answers one predict body (bytes) synchronously (the HTTP path runs the same steps without blocking)."""
        inputs, columnar = parse_instances(body, self.model.metadata, self.max_instances, self.max_request_bytes)
        predictions = self.batcher.submit(inputs)
        return {"outputs": predictions} if columnar else {"predictions": predictions}

    async def _predict(self, body):
        import asyncio

        import anyio

        if self._parsers is None:
            self._parsers = anyio.CapacityLimiter(4)
        inputs, columnar = await anyio.to_thread.run_sync(
            parse_instances, body, self.model.metadata, self.max_instances, self.max_request_bytes,
            limiter=self._parsers)
        try:
            predictions = await asyncio.wait_for(asyncio.wrap_future(self.batcher.submit_async(inputs)), 120)
        except asyncio.TimeoutError:
            raise RequestError("the model did not answer in time", 503)
        return {"outputs": predictions} if columnar else {"predictions": predictions}

    def route(self, path):
        """The action of a request path: health, metrics, status, metadata or predict (RequestError 404 otherwise)."""
        if path in ("/healthz", "/metrics"):
            return path[1:].replace("healthz", "health")
        prefix = f"/v1/models/{self.name}"
        if not path.startswith("/v1/models/"):
            raise RequestError(f"no such endpoint; use {prefix}:predict, {prefix}, {prefix}/metadata or /healthz",
                               404)
        rest, _, verb = path[len("/v1/models/"):].partition(":")
        name, *parts = rest.split("/")
        if name != self.name:
            raise RequestError(f"model {name[:60]!r} is not served here; this server serves {self.name!r}", 404)
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

    async def asgi(self, scope, receive, send):
        """The ASGI application: every answer is JSON (Prometheus text for /metrics), every error one line."""
        from starlette.requests import ClientDisconnect, Request
        from starlette.responses import JSONResponse, Response

        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.received += 1
        started = time.perf_counter()
        action, status, headers = "unknown", 500, {}
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            action = self.route(request.url.path)
            method = request.method
            if action == "predict":
                if method != "POST":
                    raise RequestError(f"{method} is not allowed here; POST a JSON body", 405, {"Allow": "POST"})
                if self.in_flight > self.max_in_flight:
                    raise RequestError(f"the server is busy ({self.in_flight - 1} requests in flight); retry", 503,
                                       {"Retry-After": "1"})
                payload = await self._predict(await _read_body(request, self.max_body_bytes))
            elif method not in ("GET", "HEAD"):
                raise RequestError(f"{method} is not allowed here; use GET", 405, {"Allow": "GET, HEAD"})
            elif action == "metrics":
                status = 200
                response = Response(self.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")
                await response(scope, receive, send)
                self.answered += 1
                return
            elif action == "health":
                payload = {"status": "ok", "model": self.name}
                if not self.ready:
                    raise RequestError("the server is shutting down", 503)
            else:
                payload = self.status() if action == "status" else self.metadata()
            status = 200
        except RequestError as error:
            status, headers, payload = error.status, error.headers, {"error": str(error)}
            if status == 413:
                headers = {**headers, "Connection": "close"}
        except ClientDisconnect:  # the client went away mid-body: nothing to answer, nothing to log
            status, payload = 499, None
        except Exception:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("request failed")
            status, payload = 500, {"error": "internal error"}
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            self.metrics.observe(action, status, seconds)
            if self.access_log:
                client = request.client
                print(json.dumps({"time": round(time.time(), 3), "client": client.host if client else None,
                                  "method": request.method, "path": request.url.path[:200], "status": status,
                                  "ms": round(seconds * 1000, 2)}), file=sys.stderr, flush=True)
        if payload is None:
            return
        response = JSONResponse(payload, status_code=status, headers=headers)
        try:
            await response(scope, receive, send)
            self.answered += 1
        except OSError:  # the client went away: nothing to answer, nothing to log
            pass


async def _read_body(request, limit):
    """The request body, refused (413) from Content-Length, or while a chunked body streams, past `limit`."""
    length = request.headers.get("content-length")
    if length is not None and int(length) > limit:  # the HTTP parser already refused non-numeric lengths
        raise RequestError(f"the body is {int(length)} bytes; the limit is {limit} (toolkit serve --max-body-mb)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body is over {limit} bytes; the limit is {limit} (toolkit serve --max-body-mb)",
                               413)
        chunks.append(chunk)
    return b"".join(chunks)


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
                  batch_timeout_ms=5.0, max_body_mb=16.0, max_request_mb=128.0, max_in_flight=64, drain_seconds=30.0,
                  access_log=False, log=print):
    """Loads the model, serves until SIGINT/SIGTERM, then drains (answers every accepted request) and stops."""
    from toolkit.predict import load

    artifact = resolve_model(path, runtime)
    model = load(artifact)
    from toolkit.runtimes import RUNTIMES

    if not RUNTIMES.get(model.runtime).servable:
        raise ModelFileError(f"{path}: serve an export (SavedModel or ONNX), not a .keras file; run toolkit export")
    server = Server(model, name or default_name(artifact), max_batch_size, batch_timeout_ms,
                    int(max_body_mb * (1 << 20)), int(max_request_mb * (1 << 20)), max_in_flight, drain_seconds,
                    access_log)
    server.start(host, port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    log(f"serving {server.name} ({model.metadata.get('task')}, {model.runtime}) on {server.url}/v1/models/"
        f"{server.name}:predict")
    while not stopping.wait(0.2):
        pass
    log(f"stopping: answering the {server.in_flight} requests in flight")
    server.stop()
    log(f"stopped: {server.answered} of {server.received} requests answered")


__all__ = ["Server", "Batcher", "parse_instances", "serve_forever", "resolve_model", "RequestError"]
