"""Micro-batching: one model worker thread; requests that can share a model call are grouped into batches.

A job is (key, rows, payload): jobs with the same non-None key may run in one call of `run(key, payloads)`, which
returns one result per payload. Jobs of different keys (another signature, other trailing shapes) wait in the
same queue and run as their own calls, in order.
"""

import concurrent.futures
import dataclasses
import logging
import os
import queue
import re
import threading
import time

from toolkit.errors import ToolkitError
from toolkit.serving.instances import RequestError

LOG = logging.getLogger("toolkit.serve")


@dataclasses.dataclass
class _Job:
    key: object
    rows: int
    payload: object
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)


class Batcher:
    """Runs the model on one thread, over batches of requests.

    Args:
        run: callable(key, payloads) -> list of results, one per payload. When it raises on several payloads,
            each is run alone, so one bad request never fails the others.
        max_batch_size: int. Most rows (instances) per model call.
        timeout_ms: float. How long the first request of a batch waits for others.
        max_queued: int or None. Most rows waiting for the model; beyond, a request is refused with 503 and
            Retry-After (default: 16 batches).
    """

    def __init__(self, run, max_batch_size=32, timeout_ms=5.0, max_queued=None):
        self.run = run
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.max_queued = max_queued or 16 * max_batch_size
        self.queue = queue.Queue()
        self.batches = 0
        self.on_batch = None  # called with the rows of each model call (the /metrics histogram)
        self._queued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="toolkit-batcher", daemon=True)
        self._thread.start()

    def submit_async(self, key, rows, payload):
        """Queues one request; returns a `concurrent.futures.Future` of its result (or of the error)."""
        if self._stop.is_set():
            raise RequestError("the server is shutting down", 503)
        if not self._thread.is_alive():
            raise RequestError("the model worker stopped; restart the server", 503)
        with self._lock:
            if self._queued and self._queued + rows > self.max_queued:
                raise RequestError(f"the server is busy ({self._queued} instances waiting for the model); retry",
                                   503, {"Retry-After": "1"})
            self._queued += rows
        job = _Job(key, rows, payload)
        self.queue.put(job)
        return job.future

    def submit(self, key, rows, payload, timeout=120.0):
        """The result of one request (waits for its batch); raises what running it raised."""
        try:
            return self.submit_async(key, rows, payload).result(timeout)
        except concurrent.futures.TimeoutError:
            raise RequestError("the model did not answer in time", 503)

    def _loop(self):
        while not (self._stop.is_set() and self.queue.empty()):
            try:
                first = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            jobs, count, deadline = [first], first.rows, time.monotonic() + self.timeout
            while count < self.max_batch_size and first.key is not None:
                remaining = deadline - time.monotonic()
                try:
                    job = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                count += job.rows
            try:
                groups = {}
                for job in jobs:  # same key: one call; None: alone
                    groups.setdefault(job.key if job.key is not None else id(job), []).append(job)
                for group in groups.values():
                    self._run(group)
            finally:
                with self._lock:
                    self._queued -= count
                for job in jobs:  # never a client left waiting, whatever happened
                    if not job.future.done():
                        job.future.set_exception(RequestError("internal error", 500))

    def _run(self, jobs):
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(sum(job.rows for job in jobs))
        try:
            try:
                results = self.run(jobs[0].key, [job.payload for job in jobs])
            except Exception:
                if len(jobs) == 1:
                    raise
                for job in jobs:  # one bad request must not fail the others
                    self._run([job])
                return
            for job, result in zip(jobs, results):
                job.future.set_result(result)
        except RequestError as error:
            jobs[0].future.set_exception(error)
        except ToolkitError as error:
            jobs[0].future.set_exception(RequestError(_no_paths(str(error)), 400))
        except Exception as error:  # noqa: BLE001 - answered as a 500 without details
            LOG.exception("prediction failed")
            jobs[0].future.set_exception(error)

    def stop(self):
        """Stops taking jobs; the queued ones are finished first."""
        self._stop.set()
        self._thread.join(timeout=60)


_ABSOLUTE_PATH = re.compile(r"(?<![\w/.])(?:/[^\s/'\"(),;]+)+/?")  # /a/b, also in quotes or after "run:"; no URLs


def _no_paths(message):
    """A user error's message with absolute file system paths replaced by their base names."""
    return _ABSOLUTE_PATH.sub(lambda match: os.path.basename(match.group(0).rstrip("/")) or "<path>", message)
