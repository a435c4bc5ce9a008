"""Benchmark of the local endpoint over HTTP on 127.0.0.1: single-row JSON requests.

Starts `python -m boostline.serving.server` (gunicorn, --workers processes), then
a bounded load generator: --clients processes, each with one keep-alive
connection, send requests back to back until --seconds have passed or each has
sent --requests. Prints requests/s and the p50/p90/p99 latency seen by clients.

    .venv/bin/python bench/bench_endpoint.py [--model-dir DIR] [--workers 2]
        [--clients 4] [--seconds 5] [--requests 20000] [--explain]

The clients share the machine with the server, so on a small machine the figures
are a floor for what the server alone would do.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_inference import build_model  # noqa: E402

from boostline.serving.server import start_background  # noqa: E402

APPLICATION = {
    "application_id": "APP-1",
    "full_name": "Ann Example",
    "email": "ann@example.com",
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


def client(url: str, body: bytes, headers: dict, seconds: float, requests: int, out) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds
    while len(latencies) + errors < requests and time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            ok = False
        if ok:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1
    connection.close()
    out.put((latencies, errors))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model dir (default: train one)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound (default 5)")
    parser.add_argument("--requests", type=int, default=20_000, help="per-client request bound")
    parser.add_argument("--explain", action="store_true", help="ask for reason codes too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or build_model(work)
        body = json.dumps({"instances": [APPLICATION], "explain": args.explain}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        started = time.perf_counter()
        with start_background(
            model_dir, workers=args.workers, log_path=work / "server.log"
        ) as server:
            print(
                f"server up in {time.perf_counter() - started:.1f} s: {server.url}, "
                f"{args.workers} workers; {args.clients} clients, single-row JSON"
                f"{' with explanations' if args.explain else ''}"
            )
            context = multiprocessing.get_context("fork")
            results = context.Queue()
            warm = context.Process(target=client, args=(server.url, body, headers, 1, 200, results))
            warm.start()
            results.get()
            warm.join()

            processes = [
                context.Process(
                    target=client,
                    args=(server.url, body, headers, args.seconds, args.requests, results),
                )
                for _ in range(args.clients)
            ]
            begin = time.perf_counter()
            for p in processes:
                p.start()
            gathered = [results.get(timeout=args.seconds + 60) for _ in processes]
            elapsed = time.perf_counter() - begin
            for p in processes:
                p.join()

    latencies = [t for lat, _ in gathered for t in lat]
    errors = sum(e for _, e in gathered)
    if not latencies:
        print("no successful request")
        return 1
    print(f"requests: {len(latencies)} ok, {errors} failed, in {elapsed:.2f} s")
    print(f"throughput: {len(latencies) / elapsed:.0f} requests/s")
    print(
        "latency ms: "
        f"p50 {percentile(latencies, 50) * 1e3:.2f}  p90 {percentile(latencies, 90) * 1e3:.2f}  "
        f"p99 {percentile(latencies, 99) * 1e3:.2f}  mean {statistics.fmean(latencies) * 1e3:.2f}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
