"""`toolkit serve`: any exported model (SavedModel or ONNX) of any task behind TF Serving's REST and gRPC APIs,
the Open Inference Protocol v2 (KServe, Triton) and the toolkit's own task-level format.

- `server`: the HTTP server (uvicorn + Starlette), routing, budgets, drain, metrics, and the CLI entry point;
- `signatures`: the artifact's signatures and the TF Serving REST and v2 wire formats;
- `instances`: the toolkit format (`signature_name: "toolkit"`): images, text, audio, user ids in, `toolkit
  predict --json` results out;
- `batcher`: micro-batching on one model thread;
- `grpc_service`: TF Serving's `PredictionService` over gRPC;
- `openapi`: the OpenAPI description of the REST surface (`GET /openapi.json`).

Example (the server in a thread, a client in the same process):

>>> server = Server(toolkit.load("export/saved_model"), name="fashion")  # doctest: +SKIP
>>> server.start(port=0); server.url  # doctest: +SKIP
'http://127.0.0.1:40123'
"""

from toolkit.serving.batcher import Batcher
from toolkit.serving.instances import RequestError, parse_instances
from toolkit.serving.server import Server, default_name, resolve_model, serve_forever

__all__ = ["Server", "Batcher", "parse_instances", "serve_forever", "resolve_model", "default_name",
           "RequestError"]
