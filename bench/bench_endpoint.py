"""Benchmark of the local endpoint over HTTP on 127.0.0.1: calm, then hostile, in one run.

Starts `python -m boostline.serving.server` (gunicorn, --workers processes) once,
then alternates --rounds pairs of phases of --seconds each, so that machine noise
hits both modes alike:

  calm     --clients processes, each with one keep-alive connection (http.client),
           send valid single-row JSON requests back to back;
  hostile  the same valid clients, while one more process (raw sockets, threads)
           holds --slow connections with half-sent requests (half stopped inside the
           headers, half after 10 bytes of a body; each drips a byte a second and is
           opened again when the server lets it go) and sends --fuzz-rate fuzzed
           requests per second, each on a new connection, on schedule (up to 8 waiting
           for their answers at once, 4 for the large ones): malformed CSV, JSON and
           JSON Lines, deep nesting, bodies over 6 MB, malformed request lines and
           headers, bad chunked bodies; --big-rate of them per second are the large
           ones (a body near or over the 6 MB limit).

Printed per mode: the valid requests' p50/p90/p99/max latency and throughput, the
5xx answers (valid and fuzzed traffic), the dropped valid requests (timed out or
reset: no answer within --request-timeout), the other non-200 valid answers; for
hostile also what the fuzzed requests got (by status) and how many slow
connections were held; the CPU time the server, the load generator and other
processes took. Then the hostile/calm throughput ratio (all rounds pooled, and round
by round) and the targets: 0 5xx, 0 dropped valid requests, hostile valid p99 under
100 ms, hostile valid throughput at least 80 % of calm (pooled). The exit status is 1
if a target is missed.

    .venv/bin/python bench/bench_endpoint.py [--mode both|calm|hostile]
        [--model-dir DIR] [--workers 2] [--clients 4] [--seconds 4] [--rounds 3]
        [--slow 50] [--fuzz-rate 100] [--big-rate 1] [--capture] [--explain]

Everything runs on this machine, loopback only: the load generator shares the CPUs
with the server (on 2 cores, the valid clients take a good part of them), so the
figures are a floor for what the server alone would do, and the hostile mode's
ratio includes the fuzzer's own CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import queue
import random
import resource
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_inference import build_model  # noqa: E402

from boostline.serving.server import start_background  # noqa: E402

APPLICATION = {
    "application_id": "APP-1",
    "loan_amount": 12000,
    "term": "36 months",
    "interest_rate": 11.9,
    "installment": 398.2,
    "grade": "B",
    "emp_length": 6,
    "home_ownership": "RENT",
    "annual_income": 64000,
    "verification_status": "Verified",
    "purpose": "debt_consolidation",
    "addr_state": "CA",
    "dti": 17.3,
    "delinq_2yrs": 0,
    "fico_score": 712,
    "credit_history_years": 14.5,
    "inq_last_6mths": 1,
    "open_acc": 9,
    "pub_rec": 0,
    "revol_bal": 8200,
    "revol_util": 41.0,
    "total_acc": 22,
    "mort_acc": 1,
}

P99_TARGET_S = 0.100
RATIO_TARGET = 0.80
FUZZ_TIMEOUT_S = (
    30.0  # a fuzzed request may wait behind large ones; valid ones get --request-timeout
)


# --------------------------------------------------------------------------- valid traffic


@dataclass
class ValidResult:
    latencies: list[float] = field(default_factory=list)
    server_errors: int = 0  # 5xx
    dropped: int = 0  # timed out or reset: no answer
    other: Counter = field(default_factory=Counter)  # any other non-200 status
    first_other: str = ""
    last_finish: float = 0.0


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def valid_client(
    url: str,
    body: bytes,
    headers: dict[str, str],
    begin: float,
    deadline: float,
    requests: int,
    timeout: float,
    out: Any,
) -> None:
    """Back-to-back valid requests on one keep-alive connection, from `begin` to `deadline`
    (time.monotonic, shared by every process on the machine)."""
    host, port = address(url)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    result = ValidResult()
    time.sleep(max(0.0, begin - time.monotonic()))
    sent = 0
    while sent < requests and time.monotonic() < deadline:
        sent += 1
        start = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            result.dropped += 1
            continue
        if status == 200:
            result.latencies.append(time.perf_counter() - start)
        elif status >= 500:
            result.server_errors += 1
        else:
            result.other[status] += 1
            result.first_other = result.first_other or answer[:200].decode("utf-8", "replace")
        result.last_finish = time.monotonic()
    connection.close()
    out.put(result)


# --------------------------------------------------------------------------- hostile traffic


def _post(
    body: bytes,
    content_type: bytes = b"text/csv",
    extra: bytes = b"",
    length: bytes | None = None,
) -> bytes:
    size = b"%d" % len(body) if length is None else length
    return (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + size
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


def _chunked(body: bytes, content_type: bytes = b"text/csv", piece: int = 65536) -> bytes:
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
        for i in range(0, len(body), piece)
    )
    return (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        + content_type
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )


JSON_T, JSONL_T = b"application/json", b"application/jsonlines"


def fuzz_cases(valid: bytes) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(small, big) fuzzed requests, each a whole request as raw bytes (none is half-sent:
    holding connections is the slow clients' part)."""
    app = json.loads(valid)["instances"][0]
    deep = b"[" * 100_000 + b"]" * 100_000
    small = [
        # malformed CSV
        ("csv-short-row", _post(b"1,2,3\n")),
        ("csv-text", _post(b"abc,def,ghi,jkl\n" * 20)),
        ("csv-bad-utf8", _post(b"\xff\xfe\x00,1,2\n\xc3\x28,4\n")),
        ("csv-nul-bytes", _post(b"1,\x00,2," * 10 + b"\n")),
        ("csv-ragged-rows", _post(b"".join(b"1," * (i % 40) + b"1\n" for i in range(2000)))),
        ("csv-nan-inf", _post(b",".join([b"nan", b"inf", b"-inf"] * 8) + b"\n")),
        ("csv-quotes", _post(b'"1,2","3\n' * 50)),
        ("csv-empty", _post(b"")),
        ("csv-long-field", _post(b"7" * 200_000)),
        # malformed JSON
        ("json-truncated", _post(valid[: len(valid) // 2], JSON_T)),
        ("json-deep-list", _post(deep, JSON_T)),
        ("json-deep-object", _post(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON_T)),
        (
            "json-deep-field",
            _post(
                json.dumps({"instances": [dict(app, loan_amount=0)]})
                .encode()
                .replace(b'"loan_amount": 0', b'"loan_amount": ' + deep),
                JSON_T,
            ),
        ),
        ("json-not-object", _post(b'"just a string"', JSON_T)),
        ("json-null", _post(b"null", JSON_T)),
        ("json-instances-number", _post(b'{"instances": 5}', JSON_T)),
        ("json-wrong-types", _post(json.dumps([dict(app, loan_amount="abc")]).encode(), JSON_T)),
        ("json-list-field", _post(json.dumps([dict(app, fico_score=[1, 2])]).encode(), JSON_T)),
        ("json-bool-number", _post(json.dumps([dict(app, dti=True)]).encode(), JSON_T)),
        ("json-huge-int", _post(json.dumps([dict(app, revol_bal=10**4000)]).encode(), JSON_T)),
        ("json-nan-literal", _post(json.dumps([dict(app, dti=float("nan"))]).encode(), JSON_T)),
        ("json-missing-required", _post(json.dumps([{"loan_amount": 1}]).encode(), JSON_T)),
        ("json-empty-list", _post(b"[]", JSON_T)),
        ("json-bad-utf8", _post(b'{"instances": [{"grade": "\xff\xfe"}]}', JSON_T)),
        ("json-bad-explain", _post(json.dumps({"instances": [app], "top_k": -3}).encode(), JSON_T)),
        ("json-as-csv", _post(valid)),
        # malformed JSON Lines
        ("jsonl-deep", _post(b'{"a": 1}\n' + deep, JSONL_T)),
        ("jsonl-garbage-line", _post(json.dumps(app).encode() + b"\n{not json\n", JSONL_T)),
        ("jsonl-blank-lines", _post(b"\n\n\n", JSONL_T)),
        ("jsonl-list-line", _post(b"[1, 2, 3]\n", JSONL_T)),
        # request lines and headers
        ("bad-request-line", b"NOT A REQUEST AT ALL\r\n\r\n"),
        ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("request-line-too-long", b"POST /invocations?" + b"q" * 9000 + b" HTTP/1.1\r\n\r\n"),
        ("header-line-too-long", _post(b"1", extra=b"X-Long: " + b"v" * 9000 + b"\r\n")),
        (
            "too-many-headers",
            _post(b"1", extra=b"".join(b"X-H%d: v\r\n" % i for i in range(150))),
        ),
        ("header-without-colon", _post(b"1", extra=b"this is no header\r\n")),
        ("header-non-ascii", _post(b"1", extra=b"X-Name: \xe9\xff\x00\r\n")),
        ("content-length-text", _post(b"1,2", length=b"abc")),
        ("content-length-negative", _post(b"1,2", length=b"-5")),
        ("content-length-twice", _post(b"1,2", extra=b"Content-Length: 7\r\n")),
        (
            "transfer-encoding-gzip",
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n1",
        ),
        (
            "bad-chunk-size",
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n1,2\r\n0\r\n\r\n",
        ),
        ("content-type-unknown", _post(valid, b"application/x-evil")),
        ("content-type-charset", _post(valid, b"application/json; charset=ebcdic")),
        ("accept-unsupported", _post(valid, JSON_T, extra=b"Accept: image/png\r\n")),
        (
            "inference-id-too-long",
            _post(valid, JSON_T, extra=b"X-Amzn-SageMaker-Inference-Id: " + b"i" * 100 + b"\r\n"),
        ),
        (
            "custom-attributes-bad",
            _post(
                valid,
                JSON_T,
                extra=b"X-Amzn-SageMaker-Custom-Attributes: explain=maybe;top_k=x\r\n",
            ),
        ),
        ("get-invocations", b"GET /invocations HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("unknown-path", b"DELETE /admin/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    near_limit = 6 * 1024 * 1024 - 4096
    over = 7 * 1024 * 1024
    big = [
        ("big-csv-garbage", _post(b"x," * (near_limit // 2))),
        ("big-csv-rows", _post(b"1,2,3,4,5,6,7,8,9,10\n" * (near_limit // 21))),
        ("big-json-bad-end", _post(b'{"instances": [' + b"[1]," * (near_limit // 4 - 8), JSON_T)),
        ("over-6mb-content-length", _post(b"1" * over)),
        ("over-6mb-chunked", _chunked(b"1," * (over // 2))),
        ("over-6mb-announced-only", _post(b"", length=b"999999999999")),
    ]
    return small, big


def _exchange(request: bytes, host: str, port: int, timeout: float) -> tuple[int, str]:
    """Send one whole request, read one answer: (status or 0, content type)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the server may answer before all is sent
            s.sendall(request)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/"):
        return 0, ""
    content_type = next(
        (
            line.partition(":")[2].strip()
            for line in head
            if line.lower().startswith("content-type:")
        ),
        "",
    )
    return int(head[0].split()[1]), content_type


@dataclass
class HostileResult:
    statuses: Counter = field(default_factory=Counter)  # (case, status) -> count
    server_errors: Counter = field(default_factory=Counter)  # case -> 5xx count
    unanswered: Counter = field(default_factory=Counter)  # case -> no answer (reset/timeout)
    not_json: Counter = field(default_factory=Counter)  # case -> error answers not in JSON
    sent: int = 0
    big_sent: int = 0
    skipped: int = 0  # due while every sender was still waiting for an answer
    slow_opened: int = 0
    slow_let_go: int = 0
    slow_held_min: int = 0


class SlowClients:
    """n connections each holding a half-sent request; a byte is dripped on each every
    second; one the server closes (or answers) is opened again."""

    def __init__(self, host: str, port: int, n: int) -> None:
        self.host, self.port, self.n = host, port, n
        self.sockets: dict[socket.socket, int] = {}  # socket -> its index
        self.opened = self.let_go = 0
        self.held_min = n

    def open(self, i: int) -> None:
        s = socket.create_connection((self.host, self.port), timeout=5)
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        s.sendall(head + b"Content-Length: 100000\r\n\r\n" + b"1" * 10 if i % 2 else head)
        s.setblocking(False)
        self.sockets[s] = i
        self.opened += 1

    def run(self, ready: threading.Event, stop: threading.Event) -> None:
        for i in range(self.n):
            self.open(i)
        ready.set()
        tick = 0
        while not stop.wait(0.25):
            tick += 1
            readable, _, _ = select.select(list(self.sockets), [], [], 0)
            for s in readable:  # an answer (408) or a close: it was let go
                i = self.sockets.pop(s)
                s.close()
                self.let_go += 1
                with contextlib.suppress(OSError):
                    self.open(i)
            self.held_min = min(self.held_min, len(self.sockets))
            if tick % 4:
                continue
            for s, i in list(self.sockets.items()):
                with contextlib.suppress(OSError):
                    s.send(b"1" if i % 2 else b"X-Slow-%d: 1\r\n" % random.randrange(10**6))
        for s in self.sockets:
            s.close()


def hostile_client(
    url: str,
    valid: bytes,
    slow: int,
    fuzz_rate: float,
    big_rate: float,
    begin: float,
    deadline: float,
    ready_queue: Any,
    out: Any,
) -> None:
    host, port = address(url)
    small, big = fuzz_cases(valid)
    result = HostileResult()
    lock = threading.Lock()
    slow_clients = SlowClients(host, port, slow)
    slow_ready, stop = threading.Event(), threading.Event()
    holder = threading.Thread(target=slow_clients.run, args=(slow_ready, stop))
    holder.start()
    slow_ready.wait(30)
    ready_queue.put("ready")

    def send(name: str, request: bytes, large: bool) -> None:
        try:
            status, content_type = _exchange(request, host, port, FUZZ_TIMEOUT_S)
        except OSError:
            status, content_type = 0, ""
        with lock:
            result.sent += 1
            result.big_sent += large
            result.statuses[(name, status)] += 1
            if status == 0:
                result.unanswered[name] += 1
            elif status >= 500:
                result.server_errors[name] += 1
            if status >= 400 and not content_type.startswith("application/json"):
                result.not_json[name] += 1

    def fuzzer(cases: list[tuple[str, bytes]], rate: float, senders: int) -> None:
        """Requests at `rate` per second, on up to `senders` connections at once: one that
        waits for its answer does not hold back the others (open loop, up to `senders`)."""
        if rate <= 0:
            return
        jobs: queue.Queue = queue.Queue()

        def sender() -> None:
            while (job := jobs.get()) is not None:
                send(*job, cases is big)

        threads = [threading.Thread(target=sender) for _ in range(senders)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, begin - time.monotonic()))
        started, n = time.monotonic(), 0
        while (now := time.monotonic()) < deadline:
            due = int((now - started) * rate) + 1
            while n < due:
                if jobs.qsize() < senders:
                    jobs.put(cases[n % len(cases)])
                else:
                    with lock:
                        result.skipped += 1
                n += 1
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()

    threads = [
        threading.Thread(target=fuzzer, args=(small, max(0.0, fuzz_rate - big_rate), 8)),
        threading.Thread(target=fuzzer, args=(big, big_rate, 4)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    holder.join()
    result.slow_opened = slow_clients.opened
    result.slow_let_go = slow_clients.let_go
    result.slow_held_min = slow_clients.held_min
    out.put(result)


def start_helpers(url: str, server_pid: int) -> int:
    """Start the workers' helpers (each starts on its first large body, which takes a
    second of CPU) with concurrent large requests, so that no measured phase pays for
    it; returns how many helper processes run."""
    host, port = address(url)
    request = _post(b'{"instances": [' + b"[1]," * 250_000, JSON_T)  # 1 MB, not JSON
    for _ in range(2):
        threads = [
            threading.Thread(target=_exchange, args=(request, host, port, FUZZ_TIMEOUT_S))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return sum(b"--helper-fd" in _cmdline(p) for p in _tree(server_pid))


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(pid: int) -> list[int]:
    """pid and its descendants (the gunicorn master and its workers)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _machine_busy() -> float:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(values[:8]) - values[3] - values[4]) / _TICK  # all but idle and iowait


@dataclass
class Cpu:
    """CPU seconds spent during a phase: by the server, by the load generator, by others."""

    wall: float = 0.0
    server: float = 0.0
    generator: float = 0.0
    machine: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.server - self.generator)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))


class CpuMeter:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def snapshot(self) -> tuple[float, ...]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for: the clients
        return (
            time.monotonic(),
            sum(_process_cpu(p) for p in _tree(self.server_pid)),
            own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            _machine_busy(),
        )

    @staticmethod
    def between(before: tuple[float, ...], after: tuple[float, ...]) -> Cpu:
        return Cpu(*(b - a for a, b in zip(before, after, strict=True)))


# --------------------------------------------------------------------------- phases


@dataclass
class Phase:
    valid: list[ValidResult]
    elapsed: float
    hostile: HostileResult | None = None
    cpu: Cpu = field(default_factory=Cpu)


def run_phase(
    url: str,
    body: bytes,
    headers: dict[str, str],
    args: argparse.Namespace,
    hostile: bool,
    meter: CpuMeter,
) -> Phase:
    before = meter.snapshot()
    context = multiprocessing.get_context("fork")
    results, ready = context.Queue(), context.Queue()
    attacker = None
    begin = time.monotonic() + 0.5  # the clients' processes are up by then
    if hostile:
        begin += 1.0  # and the slow connections held
    deadline = begin + args.seconds
    if hostile:
        attacker = context.Process(
            target=hostile_client,
            args=(
                url,
                body,
                args.slow,
                args.fuzz_rate,
                args.big_rate,
                begin,
                deadline,
                ready,
                results,
            ),
        )
        attacker.start()
        ready.get(timeout=30)
    processes = [
        context.Process(
            target=valid_client,
            args=(
                url,
                body,
                headers,
                begin,
                deadline,
                args.requests,
                args.request_timeout,
                results,
            ),
        )
        for _ in range(args.clients)
    ]
    for p in processes:
        p.start()
    gathered = [
        results.get(timeout=args.seconds + args.request_timeout + 60)
        for _ in range(len(processes) + (attacker is not None))
    ]
    for p in [*processes, *([attacker] if attacker else [])]:
        p.join()
    valid = [r for r in gathered if isinstance(r, ValidResult)]
    hostile_result = next((r for r in gathered if isinstance(r, HostileResult)), None)
    elapsed = max([r.last_finish for r in valid] + [deadline]) - begin
    return Phase(valid, elapsed, hostile_result, meter.between(before, meter.snapshot()))


@dataclass
class Summary:
    ok: int
    latencies: list[float]
    server_errors: int
    dropped: int
    other: Counter
    first_other: str
    elapsed: float

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def summarize(phases: list[Phase]) -> Summary:
    latencies = [t for p in phases for r in p.valid for t in r.latencies]
    other: Counter = Counter()
    for p in phases:
        for r in p.valid:
            other.update(r.other)
    return Summary(
        ok=len(latencies),
        latencies=latencies,
        server_errors=sum(r.server_errors for p in phases for r in p.valid)
        + sum(sum(p.hostile.server_errors.values()) for p in phases if p.hostile),
        dropped=sum(r.dropped for p in phases for r in p.valid),
        other=other,
        first_other=next((r.first_other for p in phases for r in p.valid if r.first_other), ""),
        elapsed=sum(p.elapsed for p in phases),
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def print_summary(name: str, s: Summary, rounds: list[Phase]) -> None:
    lat = s.latencies
    per_round = "  ".join(
        f"{sum(len(r.latencies) for r in p.valid) / p.elapsed:.0f}" for p in rounds
    )
    print(
        f"{name:<8} valid: {s.ok} ok in {s.elapsed:.1f} s, {s.throughput:.0f} requests/s "
        f"(rounds: {per_round}); 5xx {s.server_errors}; dropped {s.dropped}"
        + (f"; other {dict(s.other)} e.g. {s.first_other!r}" if s.other else "")
    )
    if lat:
        print(
            f"{'':<8} latency ms: p50 {percentile(lat, 50) * 1e3:.2f}  "
            f"p90 {percentile(lat, 90) * 1e3:.2f}  p99 {percentile(lat, 99) * 1e3:.2f}  "
            f"max {max(lat) * 1e3:.2f}  mean {statistics.fmean(lat) * 1e3:.2f}; "
            f"{sum(t > P99_TARGET_S for t in lat)} over {P99_TARGET_S * 1e3:.0f} ms"
        )
    cpu = sum((p.cpu for p in rounds), Cpu())
    cores = os.cpu_count() or 1
    print(
        f"{'':<8} CPU s over {cpu.wall:.1f} s x {cores} cores: server {cpu.server:.1f}, "
        f"load generator {cpu.generator:.1f}, other processes {cpu.others:.1f}; "
        f"server CPU ms per valid answer {cpu.server / max(1, s.ok) * 1e3:.2f}"
    )


def print_hostile(phases: list[Phase]) -> None:
    results = [p.hostile for p in phases if p.hostile]
    seconds = sum(p.elapsed for p in phases if p.hostile)
    statuses: Counter = Counter()
    by_status: Counter = Counter()
    errors: Counter = Counter()
    unanswered: Counter = Counter()
    not_json: Counter = Counter()
    for r in results:
        statuses.update(r.statuses)
        errors.update(r.server_errors)
        unanswered.update(r.unanswered)
        not_json.update(r.not_json)
    for (_, status), n in statuses.items():
        by_status[status] += n
    sent = sum(r.sent for r in results)
    big = sum(r.big_sent for r in results)
    print(
        f"{'':<8} fuzzed: {sent} sent ({sent / seconds:.0f}/s, {big} of them large), "
        f"answers by status {dict(sorted(by_status.items()))}"
    )
    skipped = sum(r.skipped for r in results)
    if skipped:
        print(f"{'':<8} fuzzed requests not sent, every sender waiting for an answer: {skipped}")
    if errors:
        print(f"{'':<8} fuzzed cases answered 5xx: {dict(errors)}")
    if unanswered:
        print(f"{'':<8} fuzzed cases not answered (reset or timeout): {dict(unanswered)}")
    if not_json:
        print(f"{'':<8} error answers not in JSON: {dict(not_json)}")
    print(
        f"{'':<8} slow clients: at least {min(r.slow_held_min for r in results)} held at "
        f"every moment; {sum(r.slow_let_go for r in results)} let go by the server and "
        "opened again"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model dir (default: train one)")
    parser.add_argument("--mode", choices=("both", "calm", "hostile"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="valid client processes (4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per phase (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="phases per mode (default 3)")
    parser.add_argument("--requests", type=int, default=100_000, help="per-client bound")
    parser.add_argument("--request-timeout", type=float, default=5.0, help="per request (5 s)")
    parser.add_argument("--slow", type=int, default=50, help="slow connections (default 50)")
    parser.add_argument("--fuzz-rate", type=float, default=100, help="fuzzed requests/s (100)")
    parser.add_argument("--big-rate", type=float, default=1, help="large ones among them/s (1)")
    parser.add_argument("--capture", action="store_true", help="data capture on (100 %%)")
    parser.add_argument("--explain", action="store_true", help="ask for reason codes too")
    args = parser.parse_args(argv)
    modes = ["calm", "hostile"] if args.mode == "both" else [args.mode]

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or build_model(work)
        body = json.dumps({"instances": [APPLICATION], "explain": args.explain}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        started = time.perf_counter()
        log_path = work / "server.log"
        with start_background(
            model_dir,
            workers=args.workers,
            log_path=log_path,
            capture_dir=work / "capture" if args.capture else None,
        ) as server:
            print(
                f"server up in {time.perf_counter() - started:.1f} s: {server.url}, "
                f"{args.workers} workers{', data capture on' if args.capture else ''}; "
                f"{args.clients} valid clients, single-row JSON"
                f"{' with explanations' if args.explain else ''}; "
                f"{args.rounds} x {args.seconds:g} s per mode ({', '.join(modes)}, alternating)"
            )
            if "hostile" in modes:
                print(
                    f"hostile: {args.slow} slow clients, {args.fuzz_rate:g} fuzzed requests/s "
                    f"({args.big_rate:g}/s large)"
                )
            warm = argparse.Namespace(**{**vars(args), "seconds": 1.0, "clients": 1})
            meter = CpuMeter(server.process.pid)
            run_phase(server.url, body, headers, warm, hostile=False, meter=meter)
            if "hostile" in modes:
                helpers = start_helpers(server.url, server.process.pid)
                print(f"helper processes started before measuring: {helpers}")
            phases: dict[str, list[Phase]] = {m: [] for m in modes}
            for _ in range(args.rounds):
                for mode in modes:
                    phases[mode].append(
                        run_phase(server.url, body, headers, args, mode == "hostile", meter)
                    )
        log = log_path.read_text(encoding="utf-8", errors="replace")

    summaries = {mode: summarize(p) for mode, p in phases.items()}
    for mode in modes:
        print_summary(mode, summaries[mode], phases[mode])
        if mode == "hostile":
            print_hostile(phases[mode])
    tracebacks = log.count("Traceback")
    print(f"server log: {tracebacks} tracebacks")
    every = sum((p.cpu for ps in phases.values() for p in ps), Cpu())
    others = every.others / max(1e-9, every.wall * (os.cpu_count() or 1))
    if others > 0.10:
        print(
            f"note: other processes took {others:.0%} of the machine's CPU time during the "
            "phases; the figures and the ratio are disturbed by them"
        )

    failed = 0
    for mode, s in summaries.items():
        ok = s.server_errors == 0 and s.dropped == 0 and not s.other and s.ok > 0
        failed += not ok
        print(
            f"{mode}: 5xx {s.server_errors}, dropped {s.dropped}, other non-200 "
            f"{sum(s.other.values())} (target 0)  {verdict(ok)}"
        )
    if "hostile" in summaries:
        p99 = percentile(summaries["hostile"].latencies, 99)
        failed += not p99 < P99_TARGET_S
        print(
            f"hostile: valid p99 {p99 * 1e3:.1f} ms (target < {P99_TARGET_S * 1e3:.0f} ms)  "
            f"{verdict(p99 < P99_TARGET_S)}"
        )
    if len(summaries) == 2:
        calm, hostile = summaries["calm"], summaries["hostile"]
        ratio = hostile.throughput / calm.throughput if calm.throughput else 0.0
        pairs = []  # each hostile round against the calm round just before it
        for c, h in zip(phases["calm"], phases["hostile"], strict=True):
            calm_rate = sum(len(r.latencies) for r in c.valid) / c.elapsed
            if calm_rate:
                pairs.append(sum(len(r.latencies) for r in h.valid) / h.elapsed / calm_rate)
        paired = statistics.median(pairs) if pairs else 0.0
        calm_cpu = sum((p.cpu for p in phases["calm"]), Cpu())
        hostile_cpu = sum((p.cpu for p in phases["hostile"]), Cpu())
        fuzz_cpu = hostile_cpu.server - hostile.ok * calm_cpu.server / max(1, calm.ok)
        cores = os.cpu_count() or 1
        print(
            f"hostile traffic cost the server about {fuzz_cpu:.1f} CPU s "
            f"({fuzz_cpu / max(1e-9, hostile_cpu.wall * cores):.0%} of the machine's time in the "
            "hostile phases), beyond what the valid answers took at the calm rate"
        )
        failed += not ratio >= RATIO_TARGET
        print(
            f"hostile/calm valid throughput: {hostile.throughput:.0f} / {calm.throughput:.0f} "
            f"= {ratio:.2f} (target >= {RATIO_TARGET:.2f})  {verdict(ratio >= RATIO_TARGET)}; "
            f"round by round {' '.join(f'{r:.2f}' for r in pairs)} (median {paired:.2f})"
        )
    return 1 if failed or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
