"""The local endpoint against hostile and unlucky clients, over real HTTP on 127.0.0.1:
slow clients holding half-sent requests, bodies far over the limit, malformed headers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from boostline.serving.server import HELPER_BODY_BYTES, start_background
from training_scripts import inference

CSV, JSON = "text/csv", "application/json"
HEADER_TIMEOUT = 3  # seconds this endpoint gives a client to send a request's headers
LIMIT = inference.MAX_PAYLOAD_BYTES


@pytest.fixture(scope="module")
def book(tmp_path_factory, make_loan_book) -> dict:
    book = make_loan_book(tmp_path_factory.mktemp("hostile"), rows=600, seed=7)
    lines = book.test_lines()
    return {
        "root": book.root,
        "model_dir": book.model_dir("model"),
        "row": lines[0].split(",", 1)[1],
    }


@pytest.fixture(scope="module")
def endpoint(book):
    with start_background(
        book["model_dir"],
        workers=2,
        header_timeout=HEADER_TIMEOUT,
        log_path=book["root"] / "server.log",
    ) as server:
        yield server


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def invoke(server, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address(server), timeout=timeout)
    try:
        headers = {"Content-Type": CSV, "Accept": CSV}
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def slow_clients(server, n: int) -> Iterator[list[socket.socket]]:
    """n connections that each send half a request and then hold it: half of them stop
    inside the headers, the other half after 10 of the 1,000 body bytes announced."""
    sockets: list[socket.socket] = []
    try:
        for i in range(n):
            s = socket.create_connection(address(server), timeout=5)
            sockets.append(s)
            head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            if i % 2:
                s.sendall(head + b"Content-Length: 1000\r\n\r\n" + b"1" * 10)
            else:
                s.sendall(head + b"Content-Len")
        yield sockets
    finally:
        for s in sockets:
            s.close()


# --------------------------------------------------------------------------- slow clients


def test_valid_requests_stay_prompt_while_50_slow_clients_hold_half_sent_requests(
    endpoint, book
) -> None:
    body = book["row"].encode()
    assert invoke(endpoint, body)[0] == 200
    latencies: list[float] = []
    with slow_clients(endpoint, 50):
        time.sleep(0.3)  # every slow connection accepted and waiting on the server
        for _ in range(20):
            started = time.monotonic()
            try:
                status, _ = invoke(endpoint, body, timeout=2.0)
            except TimeoutError:
                status = 0
            latencies.append(time.monotonic() - started)
            assert status == 200, f"valid request {len(latencies)} not answered in 2 s"
    p50, worst = statistics.median(latencies), max(latencies)
    print(
        f"valid requests under 50 slow clients: p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    assert worst < 1.0


def test_a_client_that_never_finishes_its_headers_is_let_go(endpoint) -> None:
    with socket.create_connection(address(endpoint), timeout=HEADER_TIMEOUT + 5) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < HEADER_TIMEOUT + 3


# --------------------------------------------------------------------------- bodies over 6 MB


@pytest.mark.parametrize("megabytes", [9, 30])
def test_an_oversized_body_gets_the_413_through_urllib(endpoint, megabytes) -> None:
    request = urllib.request.Request(
        f"{endpoint.url}/invocations",
        data=b"1" * (megabytes * 1_000_000),
        headers={"Content-Type": CSV},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 413
    assert answer.value.headers["Content-Type"] == JSON
    assert f"{LIMIT}-byte limit" in json.loads(answer.value.read())["error"]


def test_an_oversized_body_gets_the_413_through_http_client_and_requests(endpoint) -> None:
    body = b"1" * 20_000_000
    connection = http.client.HTTPConnection(*address(endpoint), timeout=30)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": CSV})
        response = connection.getresponse()
        assert response.status == 413 and "byte limit" in json.loads(response.read())["error"]
        # the connection is still in step: a valid request on it is answered
        connection.request("GET", "/ping")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    requests = pytest.importorskip("requests")
    answer = requests.post(
        f"{endpoint.url}/invocations", data=body, headers={"Content-Type": CSV}, timeout=30
    )
    assert answer.status_code == 413 and "byte limit" in answer.json()["error"]


# --------------------------------------------------------------------------- malformed heads


def raw_exchange(server, request: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send raw bytes; read the whole answer (the server closes after an error)."""
    with socket.create_connection(address(server), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the server may answer before all is sent
            s.sendall(request)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, headers, body


SECRET = "jane.private@example.org"


@pytest.mark.parametrize(
    ("request_bytes", "status", "text"),
    [
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Note: "
            + SECRET.encode() * 500
            + b"\r\n\r\n",
            431,
            "header",
            id="oversized-header-line",
        ),
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, SECRET.encode()) for i in range(150))
            + b"\r\n",
            431,
            "header",
            id="too-many-headers",
        ),
        pytest.param(
            b"POST /invocations?" + SECRET.encode() * 400 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "request line",
            id="request-line-too-long",
        ),
        pytest.param(
            b"NOT A REQUEST " + SECRET.encode() + b"\r\n\r\n", 400, "request line", id="bad-line"
        ),
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + SECRET.encode() + b"\r\n\r\n",
            400,
            "header",
            id="bad-header",
        ),
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz-not-a-size\r\n" + SECRET.encode() + b"\r\n",
            400,
            "chunked",
            id="bad-chunked-body",
        ),
    ],
)
def test_malformed_requests_get_the_json_error_body(endpoint, request_bytes, status, text) -> None:
    got, headers, body = raw_exchange(endpoint, request_bytes)
    assert got == status, body[:300]
    assert headers.get("content-type") == JSON, body[:300]
    error = json.loads(body)
    assert text in error["error"] and SECRET not in body.decode(), error
    assert invoke(endpoint, b"1" * 10)[0] == 400  # and the endpoint goes on answering


def test_deeply_nested_jsonlines_is_a_400(endpoint) -> None:
    connection = http.client.HTTPConnection(*address(endpoint), timeout=10)
    try:
        body = b'{"a": 1}\n' + b"[" * 100_000 + b"]" * 100_000
        headers = {"Content-Type": "application/jsonlines", "Accept": JSON}
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        assert (
            response.status == 400 and "nested too deeply" in json.loads(response.read())["error"]
        )
    finally:
        connection.close()


# --------------------------------------------------------------------------- large bodies

HEAVY = b'{"instances": [' + b"[1]," * (LIMIT // 4 - 8)  # unterminated: 1.5 million lists parsed


@pytest.fixture(scope="module")
def single(book):
    """One worker: every connection is served by the same process."""
    with start_background(
        book["model_dir"], workers=1, log_path=book["root"] / "single.log"
    ) as server:
        yield server


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def _helpers(server) -> list[int]:
    """The helper processes of the endpoint's workers."""
    found = []
    for worker in _children(server.process.pid):
        for child in _children(worker):
            with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as f:
                if b"--helper-fd" in f.read():
                    found.append(child)
    return found


def _niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[16])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_valid_request_is_answered_while_a_large_body_is_parsed_on_the_same_worker(
    single, book
) -> None:
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(HEAVY)
    ) + HEAVY
    with socket.create_connection(address(single), timeout=60) as heavy:
        heavy.sendall(request)
        time.sleep(0.3)  # the body is in; the worker is parsing it (or has handed it over)
        status, _ = invoke(single, book["row"].encode(), timeout=30)
        assert status == 200
        pending = not select.select([heavy], [], [], 0)[0]
        answer = b""
        while b"not valid JSON" not in answer and (chunk := heavy.recv(65536)):
            answer += chunk
    assert pending, "the valid request waited for the large body's answer"
    assert answer.startswith(b"HTTP/1.1 400 ") and b"not valid JSON" in answer


def test_a_large_request_is_answered_while_another_large_body_is_parsed(single, book) -> None:
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(HEAVY)
    ) + HEAVY
    body = "\n".join([book["row"]] * 400).encode()
    assert len(body) > HELPER_BODY_BYTES
    pending = []
    for _ in range(2):  # the first time round starts the helpers; the second is measured
        with socket.create_connection(address(single), timeout=60) as heavy:
            heavy.sendall(request)
            time.sleep(0.3)  # the body is in, and in a helper
            status, answer = invoke(single, body, timeout=30)
            assert status == 200 and len(answer.splitlines()) == 400
            pending.append(not select.select([heavy], [], [], 0)[0])
            assert heavy.recv(65536).startswith(b"HTTP/1.1 400 ")
    assert pending[1], "the large request waited for the other one's answer"


def test_the_helper_comes_back_after_a_crash_and_leaves_with_its_worker(book) -> None:
    body = "\n".join([book["row"]] * 400).encode()
    assert len(body) > HELPER_BODY_BYTES
    with start_background(
        book["model_dir"], workers=1, log_path=book["root"] / "helper.log"
    ) as server:
        assert _helpers(server) == []  # started on first use only
        status, answer = invoke(server, body, timeout=30)
        assert status == 200 and len(answer.splitlines()) == 400
        (helper,) = _helpers(server)
        (worker,) = _children(server.process.pid)
        # when the CPUs are short, the worker's own (small) requests come first
        assert _niceness(helper) > _niceness(worker)
        os.kill(helper, signal.SIGKILL)
        for _ in range(200):  # until the kill has landed
            if not _alive(helper):
                break
            time.sleep(0.01)
        status, again = invoke(server, body, timeout=30)
        assert status == 200 and again == answer
        (second,) = _helpers(server)
        assert second != helper
    for _ in range(500):  # the endpoint has stopped; its worker's helper goes with it
        if not _alive(second):
            break
        time.sleep(0.01)
    assert not _alive(second)
