"""The HTTP server of `toolkit serve`: an ASGI app (Starlette requests and responses) run by uvicorn.

One loaded model (SavedModel or ONNX) answers three protocols on one port, and TF Serving's gRPC API on another
(`toolkit.serving.grpc_service`):

- TensorFlow Serving REST, exactly: `POST /v1/models/NAME:predict` (row `instances` or columnar `inputs`, named
  inputs, any signature of the SavedModel by `signature_name`, responses with the signature's named outputs),
  `GET /v1/models/NAME` (version status), `GET /v1/models/NAME/metadata` (every SignatureDef);
- the Open Inference Protocol v2 of KServe and Triton: `/v2/health/live|ready`, `GET /v2/models/NAME`,
  `/v2/models/NAME/ready`, `POST /v2/models/NAME/infer` (JSON and the binary tensor extension);
- the toolkit's own format, `signature_name: "toolkit"` on the TF Serving predict URL: task-level instances (an
  image as PNG/JPEG, a sentence, a waveform, a user id) answered with `toolkit predict --json`'s results, on
  every runtime (`toolkit.serving.instances`).

Plus `GET /healthz` (readiness: 503 while draining), `GET /metrics` (Prometheus) and `GET /openapi.json`.
"""

import asyncio
import json
import logging
import os
import re
import signal
import sys
import threading
import time

from toolkit.errors import ModelFileError, ToolkitError
from toolkit.serving.batcher import Batcher, _no_paths
from toolkit.serving.instances import (
    INSTANCE_HELP,
    TOOLKIT_SIGNATURE,
    RequestError,
    load_json,
    parse_instances,
    run_toolkit,
)
from toolkit.serving.signatures import (
    Signatures,
    batch_key,
    decode_rest,
    decode_v2,
    dumps,
    encode_rest,
    encode_v2,
    planned_bytes,
    v2_metadata,
)

LOG = logging.getLogger("toolkit.serve")
INLINE_BODY_BYTES = 64 << 10  # bodies up to this size are planned on the event loop, larger ones in a thread
PLATFORMS = {"saved_model": "tensorflow_savedmodel", "onnx": "onnxruntime_onnx", "tflite": "tensorflow_lite"}


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
    """The server around one loaded model.

    Args:
        model: toolkit.inference.LoadedModel (a SavedModel or an ONNX model).
        name: str. The model name in the URLs.
        max_batch_size: int. Most instances per model call.
        batch_timeout_ms: float. Longest wait for a batch to fill.
        max_body_bytes: int. Larger request bodies are refused (413), from Content-Length or while streaming.
        max_request_bytes: int. Most bytes the inputs of one request may decode to (413 beyond).
        max_in_flight: int. Most requests answered at once; beyond, 503 with Retry-After.
        drain_seconds: float. On stop, how long requests in flight may take to finish.
        access_log: bool. One JSON line per request on stderr.
    """

    def __init__(self, model, name="model", max_batch_size=32, batch_timeout_ms=5.0, max_body_bytes=16 << 20,
                 max_request_bytes=128 << 20, max_in_flight=64, drain_seconds=30.0, access_log=False):
        if model.runtime == "onnx":  # its own session, without spinning threads (see load_onnx)
            import dataclasses

            from toolkit.exporters.onnx import load_onnx

            model = dataclasses.replace(model, handle=load_onnx(model.path, spinning=False))
        self.model = model
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.max_request_bytes = max_request_bytes
        self.max_instances = max(1, 32 * max_batch_size)
        self.max_in_flight = max_in_flight
        self.drain_seconds = drain_seconds
        self.access_log = access_log
        self.signatures = Signatures.of(model)
        self.batcher = Batcher(self._run, max_batch_size, batch_timeout_ms)
        self.metrics = Metrics(self.batcher)
        self.ready = False
        self.in_flight = 0
        self.received = 0  # requests that reached the app
        self.answered = 0  # answers sent in full
        self._parsers = None  # an anyio CapacityLimiter: at most 4 requests decode their inputs at once
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
            # Accepted connections inherit it: without, Nagle's algorithm meets the client's delayed ACK and every
            # keep-alive answer waits ~40 ms (uvicorn sets it only on sockets it creates itself).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    # ---------------------------------------------------------------- answers

    def status(self):
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        """TF Serving's model metadata (every SignatureDef), plus what the toolkit knows (task, runtime, the
        instances its "toolkit" signature takes)."""
        info = self.model.metadata
        return {"model_spec": {"name": self.name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": self.signatures.describe()}},
                "toolkit": {"task": info.get("task"), "runtime": self.model.runtime, "input": info.get("input"),
                            "signature_name": TOOLKIT_SIGNATURE,
                            "instance": INSTANCE_HELP.get(info.get("input"), "")}}

    def v2_metadata(self):
        return v2_metadata(self.name, self.signatures, PLATFORMS.get(self.model.runtime, self.model.runtime))

    def _run(self, key, payloads):
        """The batcher's model call: the toolkit format through the task's predictor, tensors through the
        signature."""
        kind, name = payloads[0][:2]
        if kind == TOOLKIT_SIGNATURE:
            return run_toolkit(self.model, [p[2] for p in payloads])
        try:
            return self.signatures.run_batch(name, [p[2] for p in payloads])
        except Exception as error:  # the runtime refused the values (an undecodable image, a bad id)
            if type(error).__name__ not in ("InvalidArgumentError", "InvalidArgument", "Fail"):
                raise
            raise RequestError(f"the model refused the inputs: {_no_paths(_runtime_message(error))[:300]}")

    def _tensors(self, name, feeds):
        """Checks the budget of checked `feeds` and queues them; returns (key, rows, payload)."""
        planned = planned_bytes(feeds)
        if planned > self.max_request_bytes:
            raise RequestError(f"the inputs decode to {planned / (1 << 20):,.0f} MB; the limit per request is "
                               f"{self.max_request_bytes / (1 << 20):,.0f} MB (toolkit serve --max-request-mb); "
                               "send fewer or smaller inputs", 413)
        key = batch_key(name, feeds, self.signatures.signatures[name])
        rows = len(next(iter(feeds.values()))) if key is not None else 1
        if rows > self.max_instances:
            raise RequestError(f"{rows} instances in one request; send at most {self.max_instances}")
        return key, rows, ("tensors", name, feeds)

    def infer(self, signature_name, feeds, timeout=120.0):
        """Named outputs of signature `signature_name` for named input arrays (the gRPC path): checked, budgeted
        and batched like an HTTP request; raises RequestError."""
        checked = self.signatures.check(signature_name, feeds)
        return self.batcher.submit(*self._tensors(signature_name, checked), timeout=timeout)

    def predict(self, body):
        """Answers one TF Serving predict body (bytes) synchronously (the HTTP path runs the same steps without
        blocking the event loop)."""
        job, encode = self._plan_predict(body)
        return encode(self.batcher.submit(*job))

    def _plan_predict(self, body):
        """(batcher job, encoder of its result) of a TF Serving REST predict body."""
        request = load_json(body)
        if isinstance(request, dict) and request.get("signature_name") == TOOLKIT_SIGNATURE:
            inputs, columnar = parse_instances(request, self.model.metadata, self.max_instances,
                                               self.max_request_bytes)
            return (TOOLKIT_SIGNATURE, len(inputs), (TOOLKIT_SIGNATURE, None, inputs)), (
                lambda result: {"outputs": result} if columnar else {"predictions": result})
        name, feeds, columnar = decode_rest(request, self.signatures)
        return self._tensors(name, feeds), lambda outputs: encode_rest(outputs, columnar)

    def _plan_infer(self, body, header_length):
        name, feeds, requested, request_id = decode_v2(body, header_length, self.signatures)
        return self._tensors(name, feeds), lambda outputs: encode_v2(self.name, outputs, requested, request_id)

    async def _answer(self, plan, *args):
        """Plans a request (JSON and base64 decoding, checks: on the event loop for a small body, in a worker
        thread for a large one), waits for its batch without blocking the event loop, then encodes the answer."""
        import anyio

        if len(args[0]) <= INLINE_BODY_BYTES:  # ~0.1 ms; a thread hop costs more (wrk: 807-811 vs 620-751 req/s)
            job, encode = plan(*args)
        else:
            if self._parsers is None:
                self._parsers = anyio.CapacityLimiter(4)
            job, encode = await anyio.to_thread.run_sync(plan, *args, limiter=self._parsers)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(self.batcher.submit_async(*job)), 120)
        except asyncio.TimeoutError:
            raise RequestError("the model did not answer in time", 503)
        return encode(result)

    # ---------------------------------------------------------------- routing

    def route(self, path):
        """The action of a request path (RequestError 404 otherwise)."""
        if path in ("/healthz", "/metrics", "/openapi.json"):
            return {"/healthz": "health", "/metrics": "metrics", "/openapi.json": "openapi"}[path]
        if path.startswith("/v2"):
            return self._route_v2(path)
        prefix = f"/v1/models/{self.name}"
        if not path.startswith("/v1/models/"):
            raise RequestError(f"no such endpoint; use {prefix}:predict, {prefix}, {prefix}/metadata, "
                               f"/v2/models/{self.name}/infer or /healthz", 404)
        rest, _, verb = path[len("/v1/models/"):].partition(":")
        name, *parts = rest.split("/")
        parts = self._model_parts(name, parts)
        action = {("", ""): "status", ("metadata", ""): "metadata", ("", "predict"): "predict"}.get(
            ("/".join(parts), verb))
        if action is None:
            raise RequestError(f"no such endpoint; use {prefix}:predict, {prefix} or {prefix}/metadata", 404)
        return action

    def _model_parts(self, name, parts):
        if name != self.name:
            raise RequestError(f"model {name[:60]!r} is not served here; this server serves {self.name!r}", 404)
        if parts[:1] == ["versions"]:
            version = parts[1] if len(parts) > 1 else ""
            if version != "1":
                raise RequestError(f"version {version[:20]!r} is not served; the only version is 1", 404)
            parts = parts[2:]
        return parts

    def _route_v2(self, path):
        parts = path.rstrip("/").split("/")[2:]
        if not parts:
            return "v2_server"
        if parts in (["health", "live"], ["health", "ready"]):
            return f"v2_{parts[-1]}"
        if parts[:1] == ["models"] and len(parts) >= 2:
            rest = self._model_parts(parts[1], parts[2:])
            action = {(): "v2_metadata", ("ready",): "v2_model_ready", ("infer",): "v2_infer"}.get(tuple(rest))
            if action:
                return action
        raise RequestError(f"no such endpoint; use /v2/models/{self.name}/infer, /v2/models/{self.name} or "
                           "/v2/health/ready", 404)

    async def asgi(self, scope, receive, send):
        """The ASGI application: every answer is JSON (Prometheus text for /metrics), every error one line."""
        from starlette.requests import ClientDisconnect, Request
        from starlette.responses import Response

        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.received += 1
        started = time.perf_counter()
        action, status, headers, media = "unknown", 500, {}, "application/json"
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            action = self.route(scope["path"])  # not request.url: building it costs 5% of a request
            method = request.method
            if action in ("predict", "v2_infer"):
                if method != "POST":
                    raise RequestError(f"{method} is not allowed here; POST a JSON body", 405, {"Allow": "POST"})
                if self.in_flight > self.max_in_flight:
                    raise RequestError(f"the server is busy ({self.in_flight - 1} requests in flight); retry", 503,
                                       {"Retry-After": "1"})
                body = await _read_body(request, self.max_body_bytes)
                if action == "predict":
                    content = dumps(await self._answer(self._plan_predict, body))
                else:
                    header_length = request.headers.get("inference-header-content-length")
                    content, tail = await self._answer(self._plan_infer, body, header_length)
                    if tail:
                        headers = {"Inference-Header-Content-Length": str(len(content))}
                        content, media = content + tail, "application/octet-stream"
            elif method not in ("GET", "HEAD"):
                raise RequestError(f"{method} is not allowed here; use GET", 405, {"Allow": "GET, HEAD"})
            elif action == "metrics":
                content, media = self.metrics.text(), "text/plain; version=0.0.4; charset=utf-8"
            elif action in ("health", "v2_ready", "v2_model_ready"):
                if not self.ready:
                    raise RequestError("the server is shutting down", 503)
                content = dumps({"status": "ok", "model": self.name} if action == "health" else
                                {"name": self.name, "ready": True} if action == "v2_model_ready" else {"ready": True})
            elif action == "v2_live":
                content = dumps({"live": True})
            elif action == "v2_server":
                content = dumps({"name": "toolkit", "version": _version(), "extensions": ["binary_tensor_data"]})
            elif action == "openapi":
                from toolkit.serving.openapi import openapi

                content = dumps(openapi(self))
            else:
                content = dumps({"status": self.status, "metadata": self.metadata,
                                 "v2_metadata": self.v2_metadata}[action]())
            status = 200
        except RequestError as error:
            status, headers, content = error.status, error.headers, dumps({"error": str(error)})
            if status == 413:
                headers = {**headers, "Connection": "close"}
        except ClientDisconnect:  # the client went away mid-body: nothing to answer, nothing to log
            status, content = 499, None
        except Exception:  # noqa: BLE001 - never a traceback to the client
            LOG.exception("request failed")
            status, content = 500, dumps({"error": "internal error"})
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            self.metrics.observe(action, status, seconds)
            if self.access_log:
                client = request.client
                print(json.dumps({"time": round(time.time(), 3), "client": client.host if client else None,
                                  "method": request.method, "path": scope["path"][:200], "status": status,
                                  "ms": round(seconds * 1000, 2)}), file=sys.stderr, flush=True)
        if content is None:
            return
        response = Response(content, status_code=status, headers=headers, media_type=media)
        try:
            await response(scope, receive, send)
            self.answered += 1
        except OSError:  # the client went away: nothing to answer, nothing to log
            pass


def _runtime_message(error):
    """The line of a runtime's error that says what was wrong: TensorFlow's graph errors lead with "Graph execution
    error:" and node names; an assertion's message is its first bracketed part."""
    text = getattr(error, "message", None) or str(error)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("Graph execution error", "Detected at node", "<stack traces", "[[")):
            continue
        match = re.match(r"assertion failed: \[([^\]]*)\]", line)
        return (match.group(1) if match else line).strip()
    return type(error).__name__


def _version():
    try:
        from importlib.metadata import version

        return version("toolkit")
    except Exception:  # noqa: BLE001
        return "0"


DRAIN_BYTES = 256 << 10  # a refused body up to this much past the limit is read and thrown away (as Go's net/http)


async def _read_body(request, limit):
    """The request body, refused (413) from Content-Length, or while a chunked body streams, past `limit`.

    A refused body is read on and discarded (up to DRAIN_BYTES more) before the answer closes the connection: a client
    still sending would otherwise meet a connection reset instead of reading the 413."""
    stream, chunks, size, refusal = request.stream(), [], 0, None
    length = request.headers.get("content-length")
    if length is not None and int(length) > limit:  # the HTTP parser already refused non-numeric lengths
        refusal = f"the body is {int(length)} bytes; the limit is {limit} (toolkit serve --max-body-mb)"
    else:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                refusal = f"the body is over {limit} bytes; the limit is {limit} (toolkit serve --max-body-mb)"
                break
            chunks.append(chunk)
    if refusal is None:
        return _decompress(b"".join(chunks), request.headers.get("content-encoding"), limit)
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_BYTES:
            break
    raise RequestError(refusal, 413)


def _decompress(body, encoding, limit):
    """A gzip or deflate body (Content-Encoding, as Triton's clients send it) inflated to at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise RequestError(f"Content-Encoding {encoding[:20]!r} is not supported; send gzip, deflate or none", 415)
    import zlib

    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise RequestError(f"the body is not valid {encoding} data")
    if len(data) > limit or inflater.unconsumed_tail:
        raise RequestError(f"the body inflates past {limit} bytes; the limit is {limit} (toolkit serve "
                           "--max-body-mb)", 413)
    return data


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
                  access_log=False, grpc_port=None, log=print):
    """Loads the model, serves (HTTP on `port`, gRPC on `grpc_port` when given) until SIGINT/SIGTERM, then drains
    (answers every accepted request) and stops."""
    from toolkit.inference import load

    artifact = resolve_model(path, runtime)
    model = load(artifact)
    from toolkit.runtimes import RUNTIMES

    if not RUNTIMES.get(model.runtime).servable:
        raise ModelFileError(f"{path}: serve an export (SavedModel or ONNX), not a .keras file; run toolkit export")
    server = Server(model, name or default_name(artifact), max_batch_size, batch_timeout_ms,
                    int(max_body_mb * (1 << 20)), int(max_request_mb * (1 << 20)), max_in_flight, drain_seconds,
                    access_log)
    grpc_server = None
    if grpc_port is not None:
        from toolkit.serving.grpc_service import start_grpc

        grpc_server = start_grpc(server, host=host, port=grpc_port)
    server.start(host, port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    log(f"serving {server.name} ({model.metadata.get('task')}, {model.runtime}) on {server.url}/v1/models/"
        f"{server.name}:predict")
    if grpc_server is not None:
        log(f"gRPC PredictionService on {host}:{grpc_server.port}")
    while not stopping.wait(0.2):
        pass
    log(f"stopping: answering the {server.in_flight} requests in flight")
    if grpc_server is not None:
        from toolkit.serving.grpc_service import stop_grpc

        stop_grpc(grpc_server, server.drain_seconds)  # before the batcher stops: RPCs in flight are answered
    server.stop()
    log(f"stopped: {server.answered} of {server.received} requests answered")


