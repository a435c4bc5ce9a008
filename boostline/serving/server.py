"""The local endpoint: the SageMaker inference container's HTTP contract, on gunicorn.

    GET  /ping                  200 once the model is loaded (each worker loads it at boot)
    POST /invocations           training_scripts/inference.py's transform_fn
    GET  /execution-parameters  what a batch transform job asks the container

It serves the same inference.py as the endpoint, through the same hook and the
same status convention (a context object like the sagemaker-inference toolkit's;
on a single-model endpoint the image's Flask server passes none and inference.py
reads the headers from the Flask request), with the same request defaults as the
image's server, so a local answer is the endpoint's answer. Gunicorn runs `workers`
worker processes (default: SAGEMAKER_MODEL_SERVER_WORKERS, else one per CPU) of the
gevent kind, as the image's server does: each connection is a greenlet, so clients that
send slowly or stop half-way hold a connection (up to WORKER_CONNECTIONS per worker)
but never the worker; valid requests are answered meanwhile. A request's line and
headers must arrive within `header_timeout` seconds (default 15; also the keep-alive
idle limit), its body within the request timeout, SAGEMAKER_MODEL_SERVER_TIMEOUT
(default 60 s), with no more than READ_IDLE_TIMEOUT seconds between two reads, else
the connection is closed (408 if the body stalls). On SIGTERM it stops accepting and
finishes the requests in flight (SIGINT: at once). A request whose body is over
HELPER_BODY_BYTES (16 KiB) is answered by one of the worker's two helpers, processes of
their own running the same transform_fn (each started on first use), so that the
seconds a body of megabytes may take to parse never hold the worker's other
connections, nor another large request (see Helper).

Requests
  - a body over 6 MB gets 413 with the JSON error body; the server reads and discards
    the body first (up to DRAIN_LIMIT_BYTES), so a client that sends it all before
    reading, as urllib, requests and http.client do, sees the 413, not a reset;
  - a request gunicorn cannot parse (a malformed request line or header, a request
    line or header field over gunicorn's limits, too many headers: 400 or 431; a
    malformed chunked body: 400) gets the same JSON error body as every other error,
    naming the limit, never quoting what was sent;
  - `X-Amzn-SageMaker-Custom-Attributes` reaches the hook (explain=true;top_k=3);
  - a missing Content-Type is application/json (a `ContentType` header, which some
    AWS services send, wins over `Content-Type`), as sagemaker-containers does;
  - `X-Amzn-SageMaker-Inference-Id` (1-64 printable characters, optional) is
    recorded in data capture as eventMetadata.inferenceId and echoed back;
  - every answer carries `X-Boostline-Event-Id`, the capture record's eventId;
  - a missing or */* Accept is replaced, as the image's server does, by
    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json), whatever
    the request's type.

Data capture (capture_dir set): successful (2xx) invocations only, sampled at
`sampling_percentage`, in SageMaker's layout and format (boostline.serving.capture).

Run it:  python -m boostline.serving.server --model-dir DIR [--port 8080] [--workers N]
         [--capture-dir DIR --endpoint-name NAME --variant-name AllTraffic
         --sampling-percentage 100] [--threshold 0.5] [--host 127.0.0.1]
         [--timeout 60] [--header-timeout 15]
From Python: serve(...) blocks; start_background(...) starts the same command in
a subprocess and returns once /ping answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any

from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, ParseException

from boostline.serving.capture import CaptureWriter, capture_record
from training_scripts import inference

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 60
DEFAULT_ENDPOINT = "boostline-local"
DEFAULT_VARIANT = "AllTraffic"
MAX_REQUEST_BYTES = inference.MAX_PAYLOAD_BYTES
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read and discard at most this much of a body over 6 MB
DEFAULT_HEADER_TIMEOUT = 15  # seconds for a request's line and headers (and keep-alive idle)
READ_IDLE_TIMEOUT = 30  # seconds a body read may wait for the next bytes
WORKER_CONNECTIONS = 1000  # open connections per worker (gunicorn's default)
READ_CHUNK = 1024 * 1024
HELPER_BODY_BYTES = 16 * 1024  # a larger body is answered by one of the worker's helpers
HELPERS_PER_WORKER = 2  # so that one large body never waits for another to be parsed
HELPER_NICENESS = 10  # helpers yield the CPUs to the workers' event loops when both want them
EVENT_ID_HEADER = "X-Boostline-Event-Id"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"

log = logging.getLogger("boostline.serving")


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    workers: int | None = None  # None: SAGEMAKER_MODEL_SERVER_WORKERS, else the CPU count
    timeout: int | None = None  # None: SAGEMAKER_MODEL_SERVER_TIMEOUT, else 60 s
    capture_dir: Path | None = None
    endpoint_name: str = DEFAULT_ENDPOINT
    variant_name: str = DEFAULT_VARIANT
    sampling_percentage: int = 100
    threshold: float | None = None  # None: BOOSTLINE_DECISION_THRESHOLD, else 0.5
    access_log: bool = False
    header_timeout: int = DEFAULT_HEADER_TIMEOUT

    def resolved(self) -> ServerConfig:
        """Defaults filled from the environment, values checked."""
        workers = self.workers or _env_int("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1
        timeout = self.timeout or _env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT") or DEFAULT_TIMEOUT
        if workers < 1 or timeout < 1 or self.header_timeout < 1:
            raise ValueError("workers, timeout and header timeout must be at least 1")
        if not 0 < self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if not 0 <= self.sampling_percentage <= 100:
            raise ValueError(
                f"sampling percentage must be 0 to 100, got {self.sampling_percentage}"
            )
        if self.threshold is not None:
            inference.check_threshold(self.threshold, "threshold")
        return replace(
            self,
            model_dir=Path(self.model_dir),
            workers=workers,
            timeout=timeout,
            capture_dir=Path(self.capture_dir) if self.capture_dir else None,
        )


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


# --------------------------------------------------------------------------- the WSGI app


class _RequestProcessor:
    """What the toolkit's context exposes per request (mms.context.RequestProcessor)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self.status = 200
        self.phrase = ""

    def get_request_properties(self) -> dict[str, str]:
        return self._headers

    def report_status(self, code: int, reason_phrase: str = "") -> None:
        self.status, self.phrase = code, reason_phrase


class _Context:
    """The subset of the multi-model toolkit's request context that transform_fn uses."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.request_processor = [_RequestProcessor(headers)]

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.request_processor[idx].report_status(code, phrase)


class EndpointApp:
    """The WSGI application; build one per worker process (it loads the model)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        threads = max(1, (os.cpu_count() or 1) // (config.workers or 1))
        self.model = inference.load_model(
            config.model_dir, threshold=config.threshold, threads=threads
        )
        self.capture = (
            CaptureWriter(
                config.capture_dir,
                config.endpoint_name,
                config.variant_name,
                config.sampling_percentage,
            )
            if config.capture_dir
            else None
        )
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or (
            inference.JSON
        )
        self.helper = Helpers(config.model_dir, config.threshold, threads, HELPERS_PER_WORKER)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/invocations":
            if method != "POST":
                return _error(start_response, 405, "use POST /invocations", [("Allow", "POST")])
            return self.invocations(environ, start_response)
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return _error(start_response, 405, "use GET /ping", [("Allow", "GET")])
            return _reply(start_response, 200, b"", "text/plain")
        if path == "/execution-parameters" and method == "GET":
            parameters = {
                "MaxConcurrentTransforms": self.config.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": MAX_REQUEST_BYTES // (1024 * 1024),
            }
            return _reply(start_response, 200, json.dumps(parameters).encode(), inference.JSON)
        return _error(start_response, 404, f"no route {method} {path}; use POST /invocations")

    def invocations(self, environ, start_response):
        event_id = str(uuid.uuid4())
        headers = [(EVENT_ID_HEADER, event_id)]
        inference_id = environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID")
        if inference_id is not None:
            if not (
                0 < len(inference_id) <= 64
                and inference_id.isprintable()
                and not inference_id[0].isspace()
            ):
                return _error(
                    start_response,
                    400,
                    f"{INFERENCE_ID_HEADER} must be 1 to 64 printable characters",
                    headers,
                )
            headers.append((INFERENCE_ID_HEADER, inference_id))

        deadline = time.monotonic() + (self.config.timeout or DEFAULT_TIMEOUT)
        try:
            body = _read_body(environ, deadline)
        except _BodyError as exc:
            return _error(start_response, exc.status, str(exc), headers)
        if body is None:
            _drain(environ, deadline)  # so the client, still sending, can read the 413
            return _error(
                start_response,
                413,
                f"request body exceeds the {MAX_REQUEST_BYTES}-byte limit",
                headers,
            )
        # sagemaker-containers' Request.content_type, header for header
        content_type = (
            environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or inference.JSON
        )
        accept = environ.get("HTTP_ACCEPT", "").strip()
        if not accept or accept in ("*/*", "*"):
            accept = self.default_accept
        request_headers = {"Content-Type": content_type, "Accept": accept}
        attributes = environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES")
        if attributes is not None:
            request_headers[inference.CUSTOM_ATTRIBUTES_HEADER] = attributes

        received = datetime.now(timezone.utc)
        try:
            if len(body) > HELPER_BODY_BYTES:
                status, payload, response_type = self.helper.answer(
                    body, content_type, accept, request_headers
                )
            else:
                status, payload, response_type = _transform(
                    self.model, body, content_type, accept, request_headers
                )
        except Exception:  # a defect, not bad input: say so, log it, keep serving
            log.error("invocation failed:\n%s", traceback.format_exc())
            return _error(start_response, 500, "internal error while predicting", headers)
        if self.capture is not None and 200 <= status < 300 and self.capture.sampled():
            record = capture_record(
                body, content_type, payload, response_type, event_id, received, inference_id
            )
            try:
                self.capture.write(record, received)
            except OSError:
                log.error("data capture failed:\n%s", traceback.format_exc())
        return _reply(start_response, status, payload, response_type, headers)


def _transform(
    model: inference.Model,
    body: bytes,
    content_type: str,
    accept: str,
    request_headers: dict[str, str],
) -> tuple[int, bytes, str]:
    """(status, payload, response type) from inference.transform_fn, as the toolkit calls it."""
    context = _Context(request_headers)
    payload, response_type = inference.transform_fn(model, body, content_type, accept, context)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return context.request_processor[0].status, payload, response_type


# --------------------------------------------------------------------------- the helper

# A request's parsing and prediction run in the worker's event loop, so while one runs,
# no other connection of that worker is served. For a small body that is well under a
# millisecond or two; a body of megabytes (JSON of a million elements) takes up to a
# second, much of it in C code that holds the GIL (so a thread would not help). Such
# bodies go to one of the worker's helpers, processes of their own running the same
# inference.py: the operating system then shares the CPUs between them and the worker,
# whose other connections go on being answered. The helpers run at a lower priority
# (HELPER_NICENESS): when the CPUs are short, the small requests the workers answer
# themselves come first, and a flood of large bodies slows the large bodies.

_FRAME = struct.Struct("!II")  # the JSON head's length, the payload's length


def _send_frame(sock: socket.socket, head: dict[str, Any], payload: bytes) -> None:
    encoded = json.dumps(head).encode("utf-8")
    sock.sendall(_FRAME.pack(len(encoded), len(payload)) + encoded)
    sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        part = sock.recv(min(size - got, READ_CHUNK))
        if not part:
            raise EOFError("the other end closed")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _recv_frame(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    head_size, payload_size = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
    head = json.loads(_recv_exact(sock, head_size))
    return head, _recv_exact(sock, payload_size)


class Helper:
    """The worker's helper process, for requests with a body over HELPER_BODY_BYTES.

    Started on first use (and again if it died), it loads the model itself and answers
    one request at a time over a socket pair; it leaves when the worker closes its end
    (close(), or the worker's exit, however it happens).
    """

    def __init__(self, model_dir: Path, threshold: float | None, threads: int) -> None:
        self.model_dir = Path(model_dir)
        self.threshold = threshold
        self.threads = threads
        self.process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()  # a gevent lock in a worker: one request at a time

    def answer(
        self, body: bytes, content_type: str, accept: str, request_headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        """What _transform would answer; raises if the helper fails (it is then stopped).

        A helper found gone is started again; one that fails a request it was already
        running for (it may have died just before) gets a second try in a fresh one.
        """
        head = {"content_type": content_type, "accept": accept, "headers": request_headers}
        with self._lock:
            for attempt in (1, 2):
                fresh = self._gone()
                if fresh:
                    self._start()
                try:
                    _send_frame(self._socket, head, body)
                    answer, payload = _recv_frame(self._socket)
                    break
                except (OSError, EOFError, ValueError):
                    self._close()
                    if fresh or attempt == 2:
                        raise
                    log.warning("the helper process was gone; starting it again")
        if "error" in answer:
            raise RuntimeError(f"in the helper process:\n{answer['error']}")
        return answer["status"], payload, answer["type"]

    def _gone(self) -> bool:
        """Whether there is no helper to ask: never started, exited, or its end closed
        (it never speaks unasked, so a readable socket means it is gone)."""
        if self._socket is None or self.process is None or self.process.poll() is not None:
            return True
        return bool(select.select([self._socket], [], [], 0)[0])

    def _start(self) -> None:
        self._close()
        ours, theirs = socket.socketpair()
        args = [
            sys.executable,
            "-m",
            "boostline.serving.server",
            "--helper-fd",
            str(theirs.fileno()),
            "--model-dir",
            str(self.model_dir),
            "--helper-threads",
            str(self.threads),
        ]
        if self.threshold is not None:
            args += ["--threshold", repr(float(self.threshold))]
        try:
            self.process = subprocess.Popen(args, pass_fds=(theirs.fileno(),))
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        """Stop the helper (at once: a request it is answering is abandoned)."""
        self._close()


class Helpers:
    """The worker's helpers: a request takes one that is free (waits for one if none is),
    so that a body that takes seconds holds one helper, not every large request after it.
    Each starts on first use: the second only when two large requests meet."""

    def __init__(self, model_dir: Path, threshold: float | None, threads: int, n: int) -> None:
        self.helpers = [Helper(model_dir, threshold, threads) for _ in range(n)]
        self._idle = list(reversed(self.helpers))  # the first is used first
        self._free = threading.Semaphore(n)  # gevent's in a worker

    def answer(
        self, body: bytes, content_type: str, accept: str, request_headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        with self._free:
            helper = self._idle.pop()
            try:
                return helper.answer(body, content_type, accept, request_headers)
            finally:
                self._idle.append(helper)

    def close(self) -> None:
        for helper in self.helpers:
            helper.close()


def helper_main(fd: int, model_dir: Path, threshold: float | None, threads: int) -> int:
    """The helper process: answer framed requests on socket `fd` until it is closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the server;
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker's exit ends the helper
    with contextlib.suppress(OSError):
        os.nice(HELPER_NICENESS)
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)  # the worker's end is non-blocking (gevent), and so was this one
    model = inference.load_model(model_dir, threshold=threshold, threads=threads)
    while True:
        try:
            head, body = _recv_frame(sock)
        except (EOFError, OSError):
            return 0
        try:
            status, payload, response_type = _transform(
                model, body, head["content_type"], head["accept"], head["headers"]
            )
            answer: dict[str, Any] = {"status": status, "type": response_type}
        except Exception:
            answer, payload = {"error": traceback.format_exc()}, b""
        try:
            _send_frame(sock, answer, payload)
        except OSError:
            return 0


class _BodyError(Exception):
    """The body could not be read: a status and a message that quotes none of it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read(stream: Any, size: int, deadline: float) -> bytes:
    """Up to `size` bytes, in chunks, within the deadline; fewer only at the body's end."""
    parts, got = [], 0
    while got < size:
        if time.monotonic() > deadline:
            raise _BodyError(408, "the request body did not arrive within the request timeout")
        try:
            part = stream.read(min(READ_CHUNK, size - got))
        except TimeoutError:
            raise _BodyError(408, "the request body stalled; send it without pauses") from None
        except (InvalidChunkSize, ChunkMissingTerminator, ParseException):
            raise _BodyError(400, "malformed chunked request body") from None
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_body(environ: dict[str, Any], deadline: float) -> bytes | None:
    """The request body, or None when it is over the limit (not read in full then)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH", "").strip()
    if length.isdigit():
        size = int(length)
        if size > MAX_REQUEST_BYTES:
            return None
        return _read(stream, size, deadline) if size else b""
    body = _read(stream, MAX_REQUEST_BYTES + 1, deadline)  # chunked: one byte too many at most
    return None if len(body) > MAX_REQUEST_BYTES else body


def _drain(environ: dict[str, Any], deadline: float) -> None:
    """Read and discard what is left of a body over the limit, up to DRAIN_LIMIT_BYTES.

    Answering before the body is read would reset the connection under a client that is
    still sending. Past the limit or the deadline, or on a bad chunk, stop: the client
    may then see the connection closed.
    """
    stream = environ["wsgi.input"]
    left = DRAIN_LIMIT_BYTES
    while left > 0 and time.monotonic() < deadline:
        try:
            part = stream.read(min(READ_CHUNK, left))
        except (ValueError, OSError):
            return
        if not part:
            return
        left -= len(part)


def _reply(start_response, status: int, body: bytes, content_type: str, headers=()):
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _error(start_response, status: int, message: str, headers=()):
    body = inference.InferenceError(status, message).to_json()
    return _reply(start_response, status, body, inference.JSON, headers)


# --------------------------------------------------------------------------- gunicorn


def gunicorn_settings(config: ServerConfig) -> dict:
    settings = {
        "bind": [f"{config.host}:{config.port}"],
        "workers": config.workers,
        "worker_class": endpoint_worker(config.header_timeout),
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": config.timeout,
        "graceful_timeout": config.timeout,
        "keepalive": config.header_timeout,
        "preload_app": False,  # each worker loads the model itself (no OpenMP state across fork)
        "proc_name": f"boostline-serve-{config.endpoint_name}",
        "accesslog": "-" if config.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "post_worker_init": _worker_ready,
    }
    return settings


def _worker_ready(worker) -> None:
    worker.log.info("worker %s: model loaded, serving", worker.pid)


def parse_error_answer(exc: BaseException, cfg: Any) -> tuple[int, str]:
    """(status, message) for a request gunicorn could not parse; quotes nothing sent."""
    from gunicorn.http import errors

    if isinstance(exc, errors.LimitRequestHeaders):
        return 431, (
            "request header fields too large: at most "
            f"{cfg.limit_request_fields} header fields of {cfg.limit_request_field_size} bytes"
        )
    if isinstance(exc, errors.LimitRequestLine):
        return 400, f"request line longer than {cfg.limit_request_line} bytes"
    if isinstance(exc, errors.InvalidRequestLine | errors.InvalidRequestMethod):
        return 400, "malformed request line"
    if isinstance(exc, errors.InvalidHTTPVersion):
        return 400, "malformed request line: unsupported HTTP version"
    if isinstance(exc, errors.UnsupportedTransferCoding):
        return 501, "unsupported Transfer-Encoding; send Content-Length or chunked"
    if isinstance(exc, errors.InvalidChunkSize | errors.ChunkMissingTerminator):
        return 400, "malformed chunked request body"
    if isinstance(exc, errors.ParseException):  # headers: invalid, folded, bad scheme
        return 400, "malformed request header"
    return 500, "internal error while reading the request"


def _error_bytes(status: int, message: str) -> bytes:
    body = inference.InferenceError(status, message).to_json()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {inference.JSON}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


_WORKERS: dict[int, type] = {}


def endpoint_worker(header_timeout: int) -> type:
    """Gunicorn's gevent worker (the image's), with a header timeout and JSON errors."""
    if header_timeout in _WORKERS:
        return _WORKERS[header_timeout]
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    class EndpointWorker(GeventWorker):
        def init_process(self) -> None:
            # Patching for gevent takes a while after the fork; a SIGTERM from the master
            # in that time would reach the master's handler, copied into this process,
            # and be lost (the worker would then serve on until killed). Take it now.
            signal.signal(signal.SIGTERM, self.handle_exit)
            super().init_process()

        def run(self) -> None:
            try:
                super().run()
            finally:  # however the worker leaves, its helper leaves with it
                helper = getattr(self.wsgi, "helper", None)
                if helper is not None:
                    helper.close()

        def timeout_ctx(self):
            # the request line and headers (and a keep-alive wait) must arrive in time;
            # past it the connection is closed quietly, as gunicorn does for keep-alive
            return gevent.Timeout(header_timeout, False)

        def handle(self, listener, client, addr) -> None:
            # a stalled body read ends, as a 408 (after the header timeout, never before)
            client.settimeout(max(READ_IDLE_TIMEOUT, header_timeout + 1))
            super(GeventWorker, self).handle(listener, client, addr)

        def handle_error(self, req, client, addr, exc) -> None:
            status, message = parse_error_answer(exc, self.cfg)
            if status >= 500:
                self.log.exception("error handling a request")
            else:  # the client's, not ours; what it sent may be private: not logged
                self.log.info("refused a request from %s: %s", addr and addr[0], message)
            try:
                client.sendall(_error_bytes(status, message))
            except OSError:
                self.log.debug("could not send the error answer")

    EndpointWorker.__name__ = EndpointWorker.__qualname__ = "EndpointWorker"
    _WORKERS[header_timeout] = EndpointWorker
    return EndpointWorker


def _application(config: ServerConfig):
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(config).items():
                self.cfg.set(key, value)

        def load(self):
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
            return EndpointApp(config)

    return Application()


def check_model_dir(model_dir: Path, threshold: float | None = None) -> None:
    """Fail fast, before forking workers, on what would stop every worker booting."""
    if not (Path(model_dir) / inference.MODEL_FILE).is_file():
        raise FileNotFoundError(f"{Path(model_dir) / inference.MODEL_FILE} not found")
    manifest = Path(model_dir) / inference.MANIFEST_FILE
    if manifest.is_file():
        json.loads(manifest.read_text(encoding="utf-8"))
    if threshold is None:
        inference.threshold_from_env()  # the environment's threshold, if set, must be valid


def serve(
    model_dir: Path,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    capture_dir: Path | None = None,
    endpoint_name: str = DEFAULT_ENDPOINT,
    variant_name: str = DEFAULT_VARIANT,
    threshold: float | None = None,
    sampling_percentage: int = 100,
    ready: Callable[[str], None] | None = None,
    host: str = DEFAULT_HOST,
    timeout: int | None = None,
    access_log: bool = False,
    header_timeout: int = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Serve until SIGTERM (graceful) or SIGINT; `ready(url)` is called once /ping answers.

    Raises RuntimeError if the server could not start (port taken, a worker
    failed to load the model: the log above says why).
    """
    config = ServerConfig(
        model_dir=Path(model_dir),
        port=port,
        host=host,
        workers=workers,
        timeout=timeout,
        header_timeout=header_timeout,
        capture_dir=capture_dir,
        endpoint_name=endpoint_name,
        variant_name=variant_name,
        sampling_percentage=sampling_percentage,
        threshold=threshold,
        access_log=access_log,
    ).resolved()
    check_model_dir(config.model_dir, config.threshold)
    if config.capture_dir is not None:  # name check before any worker starts
        CaptureWriter(config.capture_dir, endpoint_name, variant_name, sampling_percentage)
    stop = threading.Event()
    if ready is not None:
        url = f"http://{_client_host(config.host)}:{config.port}"
        threading.Thread(target=_call_when_ready, args=(url, ready, stop), daemon=True).start()
    master = os.getpid()
    try:
        _application(config).run()
    except SystemExit as exc:  # gunicorn's arbiter always leaves through sys.exit
        if os.getpid() != master:
            raise  # a worker process leaving: it must not return into the caller's code
        if exc.code not in (0, None):
            raise RuntimeError(
                f"the local endpoint stopped with status {exc.code} "
                "(port in use, or a worker could not load the model: see the log above)"
            ) from None
    finally:
        stop.set()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _call_when_ready(url: str, ready: Callable[[str], None], stop: threading.Event) -> None:
    while not stop.is_set():
        if ping(url):
            ready(url)
            return
        stop.wait(0.05)


def ping(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------- in the background


class LocalEndpoint:
    """A local endpoint running in a subprocess; stop() (or `with`) ends it gracefully."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def invocations_url(self) -> str:
        return f"{self.url}/invocations"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (in-flight requests finish), then SIGKILL after `timeout` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_background(
    model_dir: Path,
    port: int | None = None,
    workers: int = 2,
    capture_dir: Path | None = None,
    endpoint_name: str = DEFAULT_ENDPOINT,
    variant_name: str = DEFAULT_VARIANT,
    threshold: float | None = None,
    sampling_percentage: int = 100,
    host: str = DEFAULT_HOST,
    timeout: int | None = None,
    header_timeout: int = DEFAULT_HEADER_TIMEOUT,
    log_path: Path | None = None,
    startup_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> LocalEndpoint:
    """Start `python -m boostline.serving.server ...`; return once /ping answers.

    port None picks a free port. The server's output goes to log_path (default: a
    temporary file). Raises RuntimeError with the log if it does not come up.
    """
    port = free_port(host) if port is None else port
    args = [
        sys.executable,
        "-m",
        "boostline.serving.server",
        "--model-dir",
        str(model_dir),
        "--port",
        str(port),
        "--host",
        host,
        "--workers",
        str(workers),
        "--header-timeout",
        str(header_timeout),
        "--endpoint-name",
        endpoint_name,
        "--variant-name",
        variant_name,
        "--sampling-percentage",
        str(sampling_percentage),
    ]
    if capture_dir is not None:
        args += ["--capture-dir", str(capture_dir)]
    if threshold is not None:
        args += ["--threshold", repr(float(threshold))]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="boostline-serve-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    root = Path(__file__).resolve().parents[2]
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), child_env.get("PYTHONPATH", "")) if p
    )
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,  # a Ctrl-C in the caller's terminal does not reach it
        )
    endpoint = LocalEndpoint(process, f"http://{_client_host(host)}:{port}", Path(log_path))
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the local endpoint exited with status {process.returncode}:\n{endpoint.log()}"
            )
        if ping(endpoint.url, timeout=0.5):
            return endpoint
        time.sleep(0.05)
    endpoint.stop(5)
    raise RuntimeError(
        f"the local endpoint did not answer /ping in {startup_timeout:g} s:\n{endpoint.log()}"
    )


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_client_host(host), 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m boostline.serving.server",
        description="Serve a model directory over SageMaker's container HTTP contract.",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="holds xgboost-model (and boostline/feature_manifest.json)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    p.add_argument("--host", default=DEFAULT_HOST, help="default %(default)s; 0.0.0.0 for all")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes (default: SAGEMAKER_MODEL_SERVER_WORKERS, else one per CPU)",
    )
    p.add_argument(
        "--header-timeout",
        type=int,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds for a request's line and headers, and keep-alive idle (default %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=None,
        help="request timeout in s (default: SAGEMAKER_MODEL_SERVER_TIMEOUT, else 60)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold (default: BOOSTLINE_DECISION_THRESHOLD, else 0.5)",
    )
    p.add_argument("--capture-dir", type=Path, default=None, help="enable data capture here")
    p.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT)
    p.add_argument("--variant-name", default=DEFAULT_VARIANT)
    p.add_argument("--sampling-percentage", type=int, default=100)
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--helper-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--helper-threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.helper_fd is not None:  # a worker's helper process (see Helper)
        return helper_main(args.helper_fd, args.model_dir, args.threshold, args.helper_threads)
    try:
        serve(
            args.model_dir,
            port=args.port,
            workers=args.workers,
            capture_dir=args.capture_dir,
            endpoint_name=args.endpoint_name,
            variant_name=args.variant_name,
            threshold=args.threshold,
            sampling_percentage=args.sampling_percentage,
            host=args.host,
            header_timeout=args.header_timeout,
            timeout=args.timeout,
            access_log=args.access_log,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"boostline serve: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
