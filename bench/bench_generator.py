"""Benchmark the synthetic loan generator against its budget.

Generates a book in memory, writes it as CSV, and reports each step and the
total against the 60 s budget for 1,000,000 rows:

    python bench/bench_generator.py [--rows 1000000] [--shards 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from boostline.data.generator import generate_loans, write_loans

BUDGET_S = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--out", type=Path, help="keep the CSV files here (default: a temp dir)")
    return parser.parse_args(argv)


def _line(label: str, seconds: float, rows: int) -> str:
    return f"{label:<9} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s"


def run(args: argparse.Namespace, out_dir: Path) -> None:
    start = time.perf_counter()
    table = generate_loans(args.rows, seed=args.seed, drift=args.drift)
    generated = time.perf_counter()
    paths = write_loans(table, out_dir, shards=args.shards)
    written = time.perf_counter()

    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    gen_s, write_s, total_s = generated - start, written - generated, written - start
    print(f"rows {args.rows:,}  seed {args.seed}  drift {args.drift}  shards {args.shards}")
    print(f"cpus {os.cpu_count()}  csv {size_mb:,.1f} MB in {len(paths)} file(s) at {out_dir}")
    print(_line("generate", gen_s, args.rows))
    print(_line("write", write_s, args.rows) + f"  {size_mb / write_s:,.0f} MB/s")
    print(_line("total", total_s, args.rows))
    budget = BUDGET_S * args.rows / 1_000_000
    print(f"total {total_s:.1f} s = {total_s / budget:.2f}x of the {budget:g} s budget")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is not None:
        run(args, args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
