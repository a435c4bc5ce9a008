"""The local endpoint over real HTTP on 127.0.0.1: gunicorn with two workers."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from boostline.serving.capture import read_captures
from boostline.serving.server import EVENT_ID_HEADER, INFERENCE_ID_HEADER, start_background
from training_scripts import inference

CSV, JSON = "text/csv", "application/json"
CUSTOM = inference.CUSTOM_ATTRIBUTES_HEADER
ENDPOINT, VARIANT = "loans-local", "blue"
PII = {"full_name", "email", "phone", "national_id"}  # the loan schema's PII columns


@pytest.fixture(scope="module")
def book(tmp_path_factory, make_loan_book) -> dict:
    """A small model dir laid out as train.py writes it, and rows to send."""
    book = make_loan_book(tmp_path_factory.mktemp("server"), seed=5)
    root, model_dir = book.root, book.model_dir("model")
    lines = (root / "prep" / "test" / "test.csv").read_text().splitlines()
    raw = (next((root / "raw").glob("*.csv"))).read_text().splitlines()
    header = raw[0].split(",")
    return {
        "root": root,
        "model_dir": model_dir,
        "features": [line.split(",", 1)[1] for line in lines],
        "raw": [  # the applications as a client sends them: without the PII columns
            {k: v for k, v in zip(header, r.split(","), strict=True) if k not in PII}
            for r in raw[1:50]
        ],
    }


@pytest.fixture(scope="module")
def endpoint(book):
    capture = book["root"] / "capture"
    with start_background(
        book["model_dir"],
        workers=2,
        capture_dir=capture,
        endpoint_name=ENDPOINT,
        variant_name=VARIANT,
        log_path=book["root"] / "server.log",
    ) as server:
        server.capture_dir = capture
        yield server


@pytest.fixture(scope="module")
def model(book) -> inference.Model:
    return inference.load_model(book["model_dir"], threads=1)


def call(server, method: str, path: str, body: bytes | None = None, headers=None, chunked=False):
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        if chunked:
            connection.request(
                method, path, body=iter([body]), headers=headers or {}, encode_chunked=True
            )
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def invoke(server, body: bytes, content_type=CSV, accept=CSV, **headers):
    return call(
        server,
        "POST",
        "/invocations",
        body,
        {"Content-Type": content_type, "Accept": accept, **headers},
    )


# --------------------------------------------------------------------------- contract


def test_ping_and_routes(endpoint) -> None:
    assert call(endpoint, "GET", "/ping")[0] == 200
    status, _, body = call(endpoint, "GET", "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    status, headers, body = call(endpoint, "GET", "/nowhere")
    assert (
        status == 404
        and headers["content-type"] == JSON
        and "no route" in json.loads(body)["error"]
    )
    assert call(endpoint, "GET", "/invocations")[0] == 405


def test_predictions_match_the_hooks(endpoint, model, book) -> None:
    csv_body = "\n".join(book["features"][:25]).encode()
    json_body = json.dumps({"instances": book["raw"][:25]}).encode()
    for body, content_type in ((csv_body, CSV), (json_body, JSON)):
        for accept in (CSV, JSON):
            status, headers, answer = invoke(endpoint, body, content_type, accept)
            assert status == 200 and headers["content-type"] == accept
            assert answer == inference.handle(model, body, content_type, accept).body
    status, headers, answer = invoke(endpoint, csv_body, CSV, "*/*")  # as the image's server does
    assert headers["content-type"] == JSON and len(json.loads(answer)["predictions"]) == 25


def test_missing_content_type_and_accept_default_to_json(endpoint, book) -> None:
    """As the image's server (sagemaker-containers) fills them in."""
    json_body = json.dumps(book["raw"][:3]).encode()
    status, headers, answer = call(endpoint, "POST", "/invocations", json_body, {})
    assert status == 200 and headers["content-type"] == JSON
    assert len(json.loads(answer)["predictions"]) == 3
    csv_body = "\n".join(book["features"][:3]).encode()
    status, headers, answer = call(endpoint, "POST", "/invocations", csv_body, {})
    assert status == 400 and "not valid JSON" in json.loads(answer)["error"]
    for accept in ({}, {"Accept": "*/*"}):
        status, headers, answer = call(
            endpoint, "POST", "/invocations", csv_body, {"Content-Type": CSV, **accept}
        )
        assert status == 200 and headers["content-type"] == JSON
    status, _, answer = call(
        endpoint, "POST", "/invocations", csv_body, {"ContentType": CSV, "Content-Type": JSON}
    )
    assert status == 200 and len(json.loads(answer)["predictions"]) == 3


def test_custom_attributes_reach_the_hook(endpoint, book) -> None:
    status, _, answer = invoke(
        endpoint,
        book["features"][0].encode(),
        CSV,
        JSON,
        **{"X-Amzn-SageMaker-Custom-Attributes": "explain=true;top_k=4"},
    )
    assert status == 200
    assert len(json.loads(answer)["predictions"][0]["reasons"]) == 4


def test_client_errors_have_bodies_and_the_server_keeps_serving(endpoint, book) -> None:
    good = book["features"][0].encode()
    fields = book["features"][1].split(",")
    fields[7] = "999"  # fico_score
    cases = [
        (invoke(endpoint, b"\n".join([good, ",".join(fields).encode()])), 400, "fico_score"),
        (invoke(endpoint, b"1,2,3"), 400, "expected 22 features"),
        (invoke(endpoint, good, "application/xml"), 415, "not supported"),
        (invoke(endpoint, good, CSV, "image/png"), 406, "cannot answer"),
        (invoke(endpoint, b"\xff\xfe"), 400, "UTF-8"),
        (invoke(endpoint, b"{", JSON, JSON), 400, "not valid JSON"),
        (invoke(endpoint, b"x" * (6 * 1024 * 1024 + 1)), 413, "6291456-byte limit"),
        (
            call(
                endpoint,
                "POST",
                "/invocations",
                b"x" * (6 * 1024 * 1024 + 10),
                {"Content-Type": CSV},
                chunked=True,
            ),
            413,
            "6291456-byte limit",
        ),
        (invoke(endpoint, good, **{INFERENCE_ID_HEADER: "x" * 65}), 400, INFERENCE_ID_HEADER),
    ]
    for (status, headers, body), expected, text in cases:
        assert status == expected, body
        assert headers["content-type"] == JSON
        assert text in json.loads(body)["error"]
    bad = json.loads(cases[0][0][2])
    assert (bad["row"], bad["field"]) == (2, "fico_score")
    for _ in range(4):  # both workers still answer
        assert invoke(endpoint, good)[0] == 200


# --------------------------------------------------------------------------- data capture


def test_capture_records_in_sagemaker_format(endpoint, book) -> None:
    csv_body = "\n".join(book["features"][:3]).encode()
    json_body = json.dumps(book["raw"][0]).encode()
    status, csv_headers, csv_answer = invoke(endpoint, csv_body, **{INFERENCE_ID_HEADER: "loan-42"})
    assert status == 200 and csv_headers[INFERENCE_ID_HEADER.lower()] == "loan-42"
    status, json_headers, json_answer = invoke(endpoint, json_body, JSON, JSON)
    assert status == 200
    failed = invoke(endpoint, b"1,2")[1][EVENT_ID_HEADER.lower()]

    records = {r["eventMetadata"]["eventId"]: r for r in read_captures(endpoint.capture_dir)}
    assert failed not in records  # only successful invocations are captured
    csv_record = records[csv_headers[EVENT_ID_HEADER.lower()]]
    assert csv_record == {
        "captureData": {
            "endpointInput": {
                "observedContentType": CSV,
                "mode": "INPUT",
                "data": csv_body.decode(),
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": CSV,
                "mode": "OUTPUT",
                "data": csv_answer.decode(),
                "encoding": "CSV",
            },
        },
        "eventMetadata": {
            "eventId": csv_headers[EVENT_ID_HEADER.lower()],
            "inferenceId": "loan-42",
            "inferenceTime": csv_record["eventMetadata"]["inferenceTime"],
        },
        "eventVersion": "0",
    }
    json_record = records[json_headers[EVENT_ID_HEADER.lower()]]
    assert "inferenceId" not in json_record["eventMetadata"]
    assert json_record["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json_record["captureData"]["endpointInput"]["data"] == json_body.decode()
    assert json_record["captureData"]["endpointOutput"]["data"] == json_answer.decode()

    when = datetime.strptime(csv_record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
    files = sorted(endpoint.capture_dir.rglob("*.jsonl"))
    relative = [p.relative_to(endpoint.capture_dir).parts for p in files]
    assert all(parts[:2] == (ENDPOINT, VARIANT) and len(parts) == 7 for parts in relative)
    assert any(
        parts[2:6] == (f"{when:%Y}", f"{when:%m}", f"{when:%d}", f"{when:%H}") for parts in relative
    )


def test_concurrent_requests_write_whole_lines(endpoint, book) -> None:
    sizes = [1, 5, 40, 200, 1000]
    bodies = [
        "\n".join((book["features"] * 4)[: sizes[i % len(sizes)]]).encode() for i in range(60)
    ]
    before = len(read_captures(endpoint.capture_dir))
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda b: invoke(endpoint, b), bodies))
    assert all(status == 200 for status, _, _ in results)
    lines = [
        line
        for path in endpoint.capture_dir.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    records = [json.loads(line) for line in lines]  # every line parses: no interleaving
    assert len(records) == before + len(bodies)
    ids = {r["eventMetadata"]["eventId"] for r in records}
    assert {h[EVENT_ID_HEADER.lower()] for _, h, _ in results} <= ids
    assert len(list(endpoint.capture_dir.rglob("*.jsonl"))) <= 2 * 2  # per worker, per hour


# --------------------------------------------------------------------------- lifecycle


def test_no_capture_at_zero_percent_and_graceful_stop(book) -> None:
    capture = book["root"] / "capture-zero"
    server = start_background(
        book["model_dir"],
        workers=1,
        capture_dir=capture,
        sampling_percentage=0,
        log_path=book["root"] / "server-zero.log",
    )
    try:
        for _ in range(5):
            assert invoke(server, book["features"][0].encode())[0] == 200
        assert not list(capture.rglob("*.jsonl"))

        rows = 40000  # with explanations: long enough to be in flight when SIGTERM arrives
        big = "\n".join((book["features"] * (rows // len(book["features"]) + 1))[:rows]).encode()
        result = {}
        sent = threading.Event()

        def slow_request() -> None:
            host, port = server.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {"Content-Type": CSV, "Accept": CSV, CUSTOM: "explain=true;top_k=1"}
            connection.request("POST", "/invocations", body=big, headers=headers)
            sent.set()
            response = connection.getresponse()
            result["response"] = response.status, response.read()

        thread = threading.Thread(target=slow_request)
        thread.start()
        assert sent.wait(30)
        time.sleep(0.2)  # the worker has the request: SIGTERM while it is in flight
        assert server.stop() == 0
        thread.join(30)
        status, body = result["response"]
        assert status == 200 and body.count(b"\n") == rows - 1
    finally:
        server.stop()


def test_bad_model_dir_fails_to_start(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="xgboost-model"):
        start_background(tmp_path, workers=1, startup_timeout=30, log_path=tmp_path / "log")


def test_request_timeout_setting_is_honoured(book, monkeypatch) -> None:
    from boostline.serving.server import ServerConfig, gunicorn_settings

    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "7")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    settings = gunicorn_settings(ServerConfig(Path(book["model_dir"])).resolved())
    assert (settings["timeout"], settings["workers"]) == (7, 3)


def test_serve_in_process_calls_ready_and_returns_once(book, tmp_path) -> None:
    """serve() blocks, calls ready(url) once /ping answers, returns after SIGTERM in the
    master only (a worker leaving must not return into the caller's code)."""
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, urllib.request
            from boostline.serving.server import free_port, serve

            def ready(url):
                status = urllib.request.urlopen(url + "/ping").status
                print("ready", status, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

            serve({str(book["model_dir"])!r}, port=free_port(), workers=2, ready=ready)
            print("returned", os.getpid(), flush=True)
            """
        )
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert done.stdout.count("ready 200") == 1 and done.stdout.count("returned") == 1, lines
