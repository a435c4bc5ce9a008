"""Benchmark the evaluation job as the loan book grows: peak memory and time, against the
evaluate.py that read every split whole.

For each book size it generates a book (boostline.data.generator), preprocesses it
(training_scripts/preprocess.py, one host), trains a small model on the first training
shard (the evaluation does not care how good it is), and runs

  baseline   evaluate.py as it was before block-by-block reading (the parent of the
             commit that added training_scripts/row_sample.py, or --baseline-rev),
             from `git archive` of that revision's training_scripts/
  today      training_scripts/evaluate.py

each in its own process under GNU time, on the same inputs, and prints wall seconds,
peak RSS, the ratio today/baseline and the growth of each from the smallest book. It
checks that both report the same candidate AUC (scoring is unchanged; what is sampled
is the logistic baseline's fit, the score PSI's reference and the drift baseline's
distributions).

    python bench/bench_evaluate.py [--rows 1000000 5000000] [--workdir DIR]
                                   [--baseline-rev REV] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.data.generator import SCHEMA_PATH, generate_to_dir  # noqa: E402
from training_scripts.evaluate import read_labelled_csv  # noqa: E402

SCRIPTS = ROOT / "training_scripts"
ENV = {"BOOSTLINE_PII_SALT": "bench-salt", "OMP_WAIT_POLICY": "PASSIVE"}


def baseline_rev() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "training_scripts/row_sample.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("no commit adds training_scripts/row_sample.py; pass --baseline-rev")
    return added[-1] + "^"


def checkout_scripts(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "training_scripts"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".tar") as handle:
        handle.write(archive)
        handle.flush()
        with tarfile.open(handle.name) as tar:
            tar.extractall(into, filter="data")
    return into / "training_scripts"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a command, from GNU time."""
    started = time.monotonic()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=False
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[1]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return wall, (int(peak.group(1)) / 1024 if peak else float("nan"))


def prepare(rows: int, workdir: Path) -> tuple[Path, Path]:
    """(preprocessed data, model dir) of a generated book of `rows` rows."""
    import xgboost as xgb

    book = workdir / f"book-{rows}"
    pre, model = book / "pre", book / "model"
    if (model / "model.tar.gz").is_file():
        return pre, model
    shutil.rmtree(book, ignore_errors=True)
    generate_to_dir(rows, book / "raw", seed=7, shards=8)
    env = {**os.environ, **ENV}
    subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "preprocess.py"),
            "--input",
            str(book / "raw"),
            "--schema",
            str(SCHEMA_PATH),
            "--output-dir",
            str(pre),
        ],  # fmt: skip
        env=env,
        check=True,
        capture_output=True,
    )
    manifest = json.loads((pre / "manifest" / "feature_manifest.json").read_text())
    names = [c["name"] for c in manifest["columns"]]
    first = sorted((pre / "train").glob("train-*.csv"))[0]
    labels, features = read_labelled_csv(first, len(names), "training data")
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 2},
        xgb.DMatrix(features, label=labels, missing=np.nan, feature_names=names),
        40,
    )
    staging = book / "staging"
    (staging / "boostline").mkdir(parents=True)
    booster.save_model(str(staging / "xgboost-model.json"))
    (staging / "xgboost-model.json").rename(staging / "xgboost-model")
    (staging / "boostline" / "feature_manifest.json").write_text(json.dumps(manifest))
    model.mkdir(parents=True)
    with tarfile.open(model / "model.tar.gz", "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(staging)))
    shutil.rmtree(staging)
    return pre, model


def evaluate(scripts: Path, pre: Path, model: Path, out: Path) -> tuple[float, float, float]:
    """(wall s, peak MB, candidate AUC) of one evaluation."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, **ENV, "BOOSTLINE_OUTPUT_DIR": str(out / "ml-output")}
    wall, peak = timed(
        [
            sys.executable,
            str(scripts / "evaluate.py"),
            "--model-dir",
            str(model),
            "--test-dir",
            str(pre / "test"),
            "--train-dir",
            str(pre / "train"),
            "--validation-dir",
            str(pre / "validation"),
            "--champion-model-dir",
            "",
            "--output-dir",
            str(out),
        ],  # fmt: skip
        env,
    )
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    return wall, peak, evaluation["binary_classification_metrics"]["auc"]["value"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    rev = args.baseline_rev or baseline_rev()
    old_scripts = None if args.skip_baseline else checkout_scripts(rev, workdir / "baseline")
    print(f"evaluate.py on {os.cpu_count()} cores; baseline {rev}; workdir {workdir}")
    results = []
    for rows in args.rows:
        pre, model = prepare(rows, workdir)
        new = evaluate(SCRIPTS, pre, model, workdir / f"out-{rows}-today")
        old = (
            evaluate(old_scripts, pre, model, workdir / f"out-{rows}-baseline")
            if old_scripts
            else None
        )
        if old and abs(old[2] - new[2]) > 1e-9:
            raise SystemExit(f"{rows} rows: candidate AUC {new[2]} today vs {old[2]} baseline")
        results.append((rows, new, old))
    print(
        f"{'rows':>10} {'AUC':>7} {'today s':>8} {'today MB':>9} {'base s':>8} {'base MB':>8}"
        f" {'MB ratio':>8} {'s ratio':>8} {'MB growth':>9} {'s growth':>8}"
    )
    first = results[0][1]
    for rows, new, old in results:
        base = f"{old[0]:8.1f} {old[1]:8.0f} {new[1] / old[1]:8.2f} {new[0] / old[0]:8.2f}"
        print(
            f"{rows:>10} {new[2]:7.4f} {new[0]:8.1f} {new[1]:9.0f} "
            + (base if old else f"{'n/a':>8} {'n/a':>8} {'n/a':>8} {'n/a':>8}")
            + f" {new[1] / first[1]:9.2f} {new[0] / first[0]:8.2f}"
        )
    print("target (issue 15): peak memory at 5M within 1.5x of 1M (MB growth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
