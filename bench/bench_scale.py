"""Benchmark preprocessing as the loan book grows: streaming two passes on 1 and 2 instances.

For each book size (generated with boostline.data.generator into --shards files) it runs

  baseline   preprocess.py as it was before the streaming passes (the parent of the
             commit that added training_scripts/preprocess_stats.py, or --baseline-rev)
  single     today's preprocess.py without --pass (fit then encode in one process)
  N inst     --pass fit then --pass encode as two local processing jobs on N instances
             (boostline.local.processing_job, ShardedByS3Key over the raw files)

and prints wall time, the peak RSS of the largest process (each process measures its own
ru_maxrss), rows/s, the growth from the smallest book to each larger one, and the ratio to
the baseline measured in the same run. The targets of issue 15: peak RSS at 5M within
1.5x of 1M; rows/s on 2 instances >= 1.6x one instance's where the job is I/O-bound
enough to show it (on 2 shared cores it is CPU-bound: the 2 instances share those cores).

    python bench/bench_scale.py [--rows 1000000 5000000] [--big] [--instances 1 2]
                                [--shards 8] [--workdir DIR] [--skip-baseline]

--big adds a 20M-row book (4 GB of CSV; the baseline alone then needs about 25 GB of
memory, so it is skipped for that size).
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import sys
from pathlib import Path

MEASURE = "--measure-into"  # wrapper mode: run a script, then write its peak RSS


def _measure(argv: list[str]) -> int:
    """`bench_scale.py --measure-into FILE|- SCRIPT ARGS...`: run SCRIPT as __main__, then
    write {"maxrss_kb", "exit"} to FILE (`-`: $BOOSTLINE_OUTPUT_DIR/peak_rss.json)."""
    target, script, args = argv[0], argv[1], argv[2:]
    if target == "-":
        target = str(Path(os.environ["BOOSTLINE_OUTPUT_DIR"]) / "peak_rss.json")
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    code: int | str | None = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps({"maxrss_kb": peak, "exit": code}))
    return code if isinstance(code, int) else 1


if len(sys.argv) > 1 and sys.argv[1] == MEASURE:
    sys.exit(_measure(sys.argv[2:]))

# ruff: noqa: E402 - the wrapper mode above must not pay for these imports
import argparse
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from boostline.local.processing_job import ProcessingInput, run_processing_job

SCRIPTS = ROOT / "training_scripts"
PREPROCESS = SCRIPTS / "preprocess.py"
BASELINE_FILES = ("preprocess.py", "dataset_schema.py", "job_message.py")
SALT = {"BOOSTLINE_PII_SALT": "bench-salt", "OMP_WAIT_POLICY": "PASSIVE"}


@dataclass
class Run:
    mode: str
    rows: int
    seconds: float
    peak_kb: int  # the largest process's peak RSS
    peaks_kb: list[int]  # every process's
    split_rows: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    p.add_argument("--big", action="store_true", help="add a 20,000,000-row book")
    p.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shards", type=int, default=8, help="raw CSV files per book")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-rev", help="git revision of the baseline (default: see above)")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--workdir", type=Path, help="books and outputs (default: a temp dir)")
    return p.parse_args(argv)


def before_streaming() -> str:
    """The commit before the one that added preprocess_stats.py (the two passes)."""
    added = subprocess.run(
        ["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--",
         "training_scripts/preprocess_stats.py"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise SystemExit("no commit adds training_scripts/preprocess_stats.py: pass --baseline-rev")
    return f"{added[-1]}^"


def save_baseline(rev: str, into: Path) -> Path:
    """The committed scripts at `rev`: the code path the bench compares with."""
    into.mkdir(parents=True, exist_ok=True)
    for name in BASELINE_FILES:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:training_scripts/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (into / name).write_text(text)
    return into / "preprocess.py"


def _measured(script: Path, args: list[str], rss_file: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        MEASURE,
        str(rss_file),
        str(script),
        *args,
    ]


def _peak(path: Path) -> int:
    data = json.loads(path.read_text())
    if data["exit"] not in (0, None):
        raise SystemExit(f"a measured process exited with {data['exit']}: {path}")
    return int(data["maxrss_kb"])


def _split_rows(report_dir: Path) -> dict[str, int]:
    return json.loads((report_dir / "preprocess_report.json").read_text())["split_rows"]


def run_one_process(mode: str, script: Path, raw: Path, out: Path, rows: int) -> Run:
    rss = out.parent / f"{out.name}.rss.json"
    argv = _measured(
        script,
        ["--input", str(raw), "--schema", str(SCHEMA_PATH), "--output-dir", str(out)],
        rss,
    )
    env = {**os.environ, **SALT, "BOOSTLINE_OUTPUT_DIR": str(out.parent / f"{out.name}.msg")}
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    peak = _peak(rss)
    return Run(mode, rows, seconds, peak, [peak], _split_rows(out / "report"))


def run_two_passes(raw: Path, work: Path, rows: int, instances: int) -> Run:
    wrapper = [sys.executable, str(Path(__file__).resolve()), MEASURE, "-"]
    data = ProcessingInput(raw, "ShardedByS3Key")
    schema = ProcessingInput(SCHEMA_PATH)
    started = time.perf_counter()
    fit = run_processing_job(
        work / "fit-job",
        PREPROCESS,
        inputs={"data": data, "schema": schema},
        outputs={"fit": work / "out" / "fit"},
        arguments=lambda i, o: [
            "--pass",
            "fit",
            "--input",
            str(i["data"]),
            "--schema",
            str(i["schema"]),
            "--output-dir",
            str(o["fit"].parent),
        ],  # fmt: skip
        env=SALT,
        instance_count=instances,
        interpreter=wrapper,
    )
    if fit.status != "Completed":
        raise SystemExit(f"fit on {instances} instance(s) failed: {fit.failure_reason}")
    names = ("train", "validation", "test", "manifest", "report")
    encode = run_processing_job(
        work / "encode-job",
        PREPROCESS,
        inputs={"data": data, "schema": schema, "fit": ProcessingInput(work / "out" / "fit")},
        outputs={name: work / "out" / name for name in names},
        arguments=lambda i, o: [
            "--pass",
            "encode",
            "--input",
            str(i["data"]),
            "--schema",
            str(i["schema"]),
            "--fit-input",
            str(i["fit"]),
            "--output-dir",
            str(o["train"].parent),
        ],  # fmt: skip
        env=SALT,
        instance_count=instances,
        interpreter=wrapper,
    )
    seconds = time.perf_counter() - started
    if encode.status != "Completed":
        raise SystemExit(f"encode on {instances} instance(s) failed: {encode.failure_reason}")
    peaks = [_peak(h.root / "output" / "peak_rss.json") for h in (*fit.hosts, *encode.hosts)]
    mode = f"{instances} inst"
    print(
        f"  {mode}: fit {fit.seconds:.1f} s, encode {encode.seconds:.1f} s; peak RSS per "
        f"process (MB): {', '.join(f'{p / 1024:.0f}' for p in peaks)}",
        flush=True,
    )
    return Run(mode, rows, seconds, max(peaks), peaks, _split_rows(work / "out" / "report"))


def table(runs: list[Run]) -> str:
    by = {(r.mode, r.rows): r for r in runs}
    sizes = sorted({r.rows for r in runs})
    modes = list(dict.fromkeys(r.mode for r in runs))
    lines = [
        f"{'mode':<9} {'rows':>11} {'wall s':>8} {'rows/s':>10} {'peak MB':>8} "
        f"{'time x':>7} {'peak x':>7} {'vs base t':>9} {'vs base m':>9}",
    ]
    for mode in modes:
        for rows in sizes:
            r = by.get((mode, rows))
            if r is None:
                continue
            first = by.get((mode, sizes[0]))
            base = by.get(("baseline", rows))
            grow_t = f"{r.seconds / first.seconds:7.2f}" if first and first is not r else " " * 7
            grow_m = f"{r.peak_kb / first.peak_kb:7.2f}" if first and first is not r else " " * 7
            vs_t = f"{r.seconds / base.seconds:9.2f}" if base else " " * 9
            vs_m = f"{r.peak_kb / base.peak_kb:9.2f}" if base else " " * 9
            lines.append(
                f"{mode:<9} {rows:>11,} {r.seconds:8.1f} {r.rows_per_s:>10,.0f} "
                f"{r.peak_kb / 1024:8.0f} {grow_t} {grow_m} {vs_t} {vs_m}"
            )
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> list[str]:
    by = {(r.mode, r.rows): r for r in runs}
    sizes = sorted({r.rows for r in runs})
    out = []
    if len(sizes) > 1:
        low, high = sizes[0], sizes[1]
        for mode in dict.fromkeys(r.mode for r in runs):
            a, b = by.get((mode, low)), by.get((mode, high))
            if a and b and mode != "baseline":
                ratio = b.peak_kb / a.peak_kb
                ok = "met" if ratio <= 1.5 else "NOT met"
                out.append(
                    f"peak RSS {high:,} / {low:,} rows, {mode}: {ratio:.2f}x (target <= 1.5x: {ok})"
                )
    for rows in sizes:
        one, two = by.get(("1 inst", rows)), by.get(("2 inst", rows))
        if one and two:
            speedup = two.rows_per_s / one.rows_per_s
            ok = "met" if speedup >= 1.6 else "NOT met"
            out.append(
                f"rows/s 2 / 1 instances at {rows:,} rows: {speedup:.2f}x (target >= 1.6x: {ok})"
            )
    for rows in sizes:
        splits = {r.mode: r.split_rows for r in runs if r.rows == rows}
        same = len({json.dumps(s, sort_keys=True) for s in splits.values()}) == 1
        out.append(f"split sizes at {rows:,} rows agree across modes: {same}")
    return out


def bench(args: argparse.Namespace, work: Path) -> list[Run]:
    sizes = sorted(set(args.rows + ([20_000_000] if args.big else [])))
    baseline = None
    if not args.skip_baseline:
        rev = args.baseline_rev or before_streaming()
        baseline = save_baseline(rev, work / "baseline")
        print(f"baseline: training_scripts/ at {rev}", flush=True)
    runs: list[Run] = []
    for rows in sizes:
        raw = work / f"book-{rows}"
        started = time.perf_counter()
        generate_to_dir(rows, raw, seed=args.seed, shards=args.shards)
        size_mb = sum(p.stat().st_size for p in raw.iterdir()) / 1e6
        took = time.perf_counter() - started
        print(
            f"{rows:,} rows: {size_mb:,.0f} MB in {args.shards} file(s), {took:.0f} s", flush=True
        )
        if baseline is not None and rows <= 5_000_000:
            runs.append(run_one_process("baseline", baseline, raw, work / "out-base", rows))
            print(f"  baseline: {runs[-1].seconds:.1f} s", flush=True)
            shutil.rmtree(work / "out-base")
        runs.append(run_one_process("single", PREPROCESS, raw, work / "out-single", rows))
        print(f"  single: {runs[-1].seconds:.1f} s", flush=True)
        shutil.rmtree(work / "out-single")
        for count in args.instances:
            job = work / f"jobs-{count}"
            runs.append(run_two_passes(raw, job, rows, count))
            shutil.rmtree(job)
        shutil.rmtree(raw)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    print(f"cpus {os.cpu_count()}, load average {load[0]:.1f} at start", flush=True)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        runs = bench(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            runs = bench(args, Path(tmp))
    print()
    print(table(runs))
    print()
    for line in verdicts(runs):
        print(line)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
