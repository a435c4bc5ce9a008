"""Benchmark training_scripts/train.py in the local training job against bare xgboost.train.

1. One host: the job's wall time, split into loading (CSV -> DMatrix) and training as
   train.py reports them in metrics.json, against `xgboost.train` on the same data already
   in memory (same params, same nthread). Target: loading + every other overhead of the job
   (process start, imports, metric printing, checkpoints, saving) <= 30 % of the job's time.
2. The same data on 2 local hosts (ShardedByS3Key) against 1 (`--one-host` skips it).

With `--validation-rows N` the jobs also get a validation channel of N rows: the path of
large data (above `cv_max_rows`), where train.py scores the validation rows every round
and fits its calibration on them after training (its `calibration_seconds`).

With `--external-memory` it compares instead one host in memory against one host through
XGBoost's external memory (`external_memory on`: CSV batches paged to local disk): wall
time, loading and training as train.py reports them, the training process's peak RSS
(`peak_rss_mb` in metrics.json) and the AUC of each model on a generated test set of
`--test-rows` rows. Target: external memory's peak RSS stays flat as the rows grow, at a
test AUC within 0.005 of in memory.

Other work on the machine makes single runs noisy: the runs are interleaved, repeated and
the best of each kind is reported, in wall time and in CPU time (all processes' user +
system seconds, which contention disturbs less).

    .venv/bin/python bench/bench_train.py [--rows 1000000] [--rounds 100] [--repeat 3]
        [--validation-rows 150000] [--one-host] [--external-memory [--test-rows 200000]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# As the local training job does for its hosts (see LOCAL_ENV_DEFAULTS there), so that the
# bare baseline runs under the same OpenMP settings; must be set before XGBoost loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import xgboost as xgb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.local.training_job import Channel, run_training_job  # noqa: E402
from training_scripts import train as train_script  # noqa: E402

TARGET_OVERHEAD = 0.30
PARAMS = ["--tree_method", "hist", "--max_depth", "6", "--eta", "0.3"]


@dataclass
class Run:
    wall: float
    cpu: float
    stats: dict


def generate(
    directory: Path, rows: int, features: int, shards: int, seed: int, model_seed: int = 0
) -> list[Path]:
    """Logistic data as headerless CSV shards: label first, ~2 % empty fields; the rows
    drawn with `seed` from the one model `model_seed` picks (train, validation and test)."""
    weights = np.random.default_rng([model_seed, 7919]).normal(size=features)
    weights *= 2 / np.sqrt(features)
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, count in enumerate(np.array_split(np.arange(rows), shards)):
        x = rng.normal(size=(len(count), features)).astype(np.float32)
        logits = x @ weights - 1.0 + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1]
        y = (rng.random(len(count)) < 1 / (1 + np.exp(-logits))).astype(np.int8)
        mask = rng.random(x.shape) < 0.02
        columns = {"label": pa.array(y)}
        columns.update({f"f{i}": pa.array(x[:, i], mask=mask[:, i]) for i in range(features)})
        path = directory / f"part-{shard:04d}.csv"
        options = pacsv.WriteOptions(include_header=False)
        pacsv.write_csv(pa.table(columns), path, write_options=options)
        paths.append(path)
    return paths


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_job(
    job_dir: Path,
    shards: list[Path],
    rounds: int,
    hosts: int,
    validation: list[Path],
    external_memory: str = "auto",
) -> Run:
    hps = train_script.parse_hyperparameters(["--num_round", str(rounds), *PARAMS])
    hyperparameters = {"num_round": hps.num_round, "tree_method": hps.tree_method, **hps.booster}
    hyperparameters["external_memory"] = external_memory
    channels = {"train": Channel(shards, "ShardedByS3Key")}
    if validation:
        channels["validation"] = Channel(validation, "FullyReplicated")
    cpu = children_cpu()
    result = run_training_job(
        job_dir, Path(train_script.__file__), hyperparameters, channels, instance_count=hosts
    )
    if result.status != "Completed":
        raise SystemExit(f"training job failed: {result.failure_reason}")
    stats = json.loads((result.output_data_dir / train_script.METRICS_FILE).read_text())
    stats["model_path"] = str(result.model_dir / train_script.MODEL_FILE)
    return Run(result.wall_seconds, children_cpu() - cpu, stats)


class Bare:
    """xgboost.train on the same rows, loaded once beforehand, with the job's exact params."""

    def __init__(self, shards: list[Path], rounds: int, job: Run) -> None:
        data = train_script.load_channel(shards[0].parent)
        nthread = job.stats["nthread"]
        self.rounds = rounds
        self.dtrain = xgb.DMatrix(data.features, label=data.labels, nthread=nthread)
        hps = train_script.parse_hyperparameters(["--num_round", str(rounds), *PARAMS])
        self.params = hps.xgb_params(nthread, job.stats["scale_pos_weight"])

    def run(self) -> Run:
        wall, cpu = time.perf_counter(), time.process_time()
        xgb.train(self.params, self.dtrain, num_boost_round=self.rounds)
        return Run(time.perf_counter() - wall, time.process_time() - cpu, {})


def report(args: argparse.Namespace, one: Run, bare: Run, two: Run | None) -> None:
    print(
        f"\n{args.rows:,} rows x {args.features} features, {args.rounds} rounds, hist, "
        f"best of {args.repeat}"
    )
    print(f"{'':40}{'wall s':>9}{'cpu s':>9}")
    calibrating = one.stats.get("calibration_seconds", 0.0)
    rest = one.wall - one.stats["load_seconds"] - one.stats["train_seconds"] - calibrating
    calibration = one.stats.get("calibration") or {}
    rows = [
        ("job, 1 host", one.wall, one.cpu),
        ("  load: CSV -> DMatrix (train.py)", one.stats["load_seconds"], None),
        ("  train (train.py)", one.stats["train_seconds"], None),
        (f"  calibration ({calibration.get('method', 'none')})", calibrating, None),
        ("  rest: start, imports, save", rest, None),
        ("bare xgboost.train, data in memory", bare.wall, bare.cpu),
    ]
    if two is not None:
        rows += [
            ("job, 2 local hosts", two.wall, two.cpu),
            ("  train (train.py, rank 0)", two.stats["train_seconds"], None),
        ]
    for label, wall, cpu in rows:
        print(f"{label:40}{wall:9.2f}{'' if cpu is None else f'{cpu:9.2f}'}")
    for kind, job, base in (("wall", one.wall, bare.wall), ("cpu", one.cpu, bare.cpu)):
        share = (job - base) / job
        verdict = "meets" if share <= TARGET_OVERHEAD else "misses"
        print(
            f"load + overhead, {kind}: {job - base:.2f} s = {share:.1%} of the job "
            f"({verdict} the {TARGET_OVERHEAD:.0%} target)"
        )
    if two is not None:
        print(
            f"2 hosts / 1 host: wall {two.wall / one.wall:.2f}, cpu {two.cpu / one.cpu:.2f} "
            f"(nthread {one.stats['nthread']} on 1 host, {two.stats['nthread']} per host on 2)"
        )


def test_auc(model_path: str, test: train_script.Dataset) -> float:
    from sklearn.metrics import roc_auc_score

    booster = xgb.Booster(model_file=model_path)
    scores = booster.predict(xgb.DMatrix(test.features, missing=np.nan))
    return float(roc_auc_score(test.labels, scores))


def compare_external(
    args: argparse.Namespace, root: Path, shards: list[Path], validation: list[Path]
) -> None:
    """One host in memory against one host through external memory, interleaved."""
    test_dir = root / "test"
    generate(test_dir, args.test_rows, args.features, 1, args.seed + 2, args.seed)
    test = train_script.load_channel(test_dir)
    runs: dict[str, list[tuple[Run, float]]] = {"off": [], "on": []}
    load = [os.getloadavg()[0]]
    for attempt in range(args.repeat):
        for mode in runs:
            run = run_job(root / f"job-{mode}-{attempt}", shards, args.rounds, 1, validation, mode)
            if run.stats["external_memory"] is not (mode == "on"):
                raise SystemExit(f"external_memory {mode} ran with {run.stats['external_memory']}")
            runs[mode].append((run, test_auc(run.stats["model_path"], test)))
            load.append(os.getloadavg()[0])
        print(
            f"run {attempt + 1}: in memory {runs['off'][-1][0].wall:.1f} s, "
            f"external memory {runs['on'][-1][0].wall:.1f} s",
            flush=True,
        )
    print(
        f"\n{args.rows:,} rows x {args.features} features, {args.rounds} rounds, hist, 1 host, "
        f"best of {args.repeat}; load average (1 min) {min(load):.1f}-{max(load):.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    header = ("", "wall s", "cpu s", "load s", "train s", "peak RSS MB", "test AUC")
    print(f"{header[0]:18}" + "".join(f"{h:>12}" for h in header[1:]))
    aucs = {}
    for mode, label in (("off", "in memory"), ("on", "external memory")):
        fastest, auc = min(runs[mode], key=lambda pair: pair[0].wall)
        rss = max(run.stats["peak_rss_mb"] for run, _ in runs[mode])
        aucs[mode] = auc
        cpu = min(run.cpu for run, _ in runs[mode])
        values = (fastest.wall, cpu, fastest.stats["load_seconds"], fastest.stats["train_seconds"])
        print(f"{label:18}" + "".join(f"{v:12.2f}" for v in values) + f"{rss:12.0f}{auc:12.5f}")
    gap = aucs["on"] - aucs["off"]
    verdict = "meets" if abs(gap) <= 0.005 else "misses"
    print(f"test AUC, external - in memory: {gap:+.5f} ({verdict} the 0.005 tolerance)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=22)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N interleaved runs")
    parser.add_argument("--validation-rows", type=int, default=0, help="a validation channel")
    parser.add_argument("--one-host", action="store_true", help="skip the 2-host runs")
    parser.add_argument(
        "--external-memory", action="store_true", help="compare in memory with external memory"
    )
    parser.add_argument("--test-rows", type=int, default=200_000, help="with --external-memory")
    args = parser.parse_args()
    ones: list[Run] = []
    bares: list[Run] = []
    twos: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
        root = Path(temp)
        began = time.perf_counter()
        shards = generate(
            root / "data", args.rows, args.features, args.shards, args.seed, args.seed
        )
        validation = []
        if args.validation_rows:
            rows, seed = args.validation_rows, args.seed + 1
            validation = generate(root / "validation", rows, args.features, 1, seed, args.seed)
        print(f"wrote {len(shards)} CSV shards in {time.perf_counter() - began:.1f} s")
        if args.external_memory:
            compare_external(args, root, shards, validation)
            return
        baseline = None
        for attempt in range(args.repeat):
            job = root / f"job-1-{attempt}"
            ones.append(run_job(job, shards, args.rounds, 1, validation))
            baseline = baseline or Bare(shards, args.rounds, ones[-1])
            bares.append(baseline.run())
            if not args.one_host:
                job = root / f"job-2-{attempt}"
                twos.append(run_job(job, shards, args.rounds, 2, validation))
            two = f", 2 hosts {twos[-1].wall:.1f} s" if twos else ""
            print(
                f"run {attempt + 1}: 1 host {ones[-1].wall:.1f} s, bare {bares[-1].wall:.1f} s"
                + two,
                flush=True,
            )

    def best(runs: list[Run]) -> Run:
        fastest = min(runs, key=lambda run: run.wall)
        return Run(fastest.wall, min(run.cpu for run in runs), fastest.stats)

    report(args, best(ones), best(bares), best(twos) if twos else None)


if __name__ == "__main__":
    main()
