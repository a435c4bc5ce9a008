"""Benchmark of the inference path (training_scripts/inference.py), in process.

Measured side by side, interleaved in rounds so that machine noise hits every
contender alike. Ratios use each contender's best round (the least disturbed
one: the work is CPU-bound and the machine shared); the median is printed too.

  ours      inference.handle(): parse + check + inplace_predict + format
  builtin   the XGBoost image's default CSV path, reproduced: decode UTF-8,
            csv.Sniffer on the first line, split lines in Python, string numpy
            array, cast to float, DMatrix, booster.predict, ",".join(str(p))
  floor     booster.inplace_predict on an already-parsed float32 array
  arrow     pyarrow CSV reader + inplace_predict + "%.6f" formatting

Targets (PASS/FAIL is printed):
  CSV 10,000 rows: ours >= 5x builtin throughput, ours <= 1.5x arrow time
  CSV 1 row:       ours <= 2x floor time
  JSON 1 row:      ours (explain off) <= 3x floor time

    .venv/bin/python bench/bench_inference.py [--model-dir DIR] [--seconds 3]

Without --model-dir a model is trained on a synthetic loan book first (the same
way train.py does: preprocess, then xgboost.train, then its default Platt calibration
fitted on the validation split; `--no-calibration` leaves it out). Every XGBoost call
runs on one thread so the comparison is per core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import xgboost as xgb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.data.generator import SCHEMA_PATH, generate_to_dir  # noqa: E402
from training_scripts import calibration, inference, preprocess  # noqa: E402


def build_model(
    workdir: Path, rows: int = 20_000, rounds: int = 100, depth: int = 5, calibrated: bool = True
) -> Path:
    """Generate -> preprocess -> train (-> calibrate); returns <workdir>/model laid out as
    train.py does."""
    generate_to_dir(rows, workdir / "raw", seed=7)
    preprocess.preprocess(workdir / "raw", SCHEMA_PATH, workdir / "prep", salt="bench")
    train = np.vstack(
        [
            np.genfromtxt(p, delimiter=",", filling_values=np.nan)
            for p in sorted((workdir / "prep" / "train").glob("*.csv"))
        ]
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 1},
        xgb.DMatrix(train[:, 1:], label=train[:, 0], nthread=1),
        num_boost_round=rounds,
    )
    model = workdir / "model"
    (model / "boostline").mkdir(parents=True, exist_ok=True)
    (model / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    shutil.copy(
        workdir / "prep" / "manifest" / "feature_manifest.json",
        model / "boostline" / "feature_manifest.json",
    )
    if calibrated:
        valid = np.genfromtxt(
            workdir / "prep" / "validation" / "validation.csv", delimiter=",", filling_values=np.nan
        )
        raw = booster.predict(xgb.DMatrix(valid[:, 1:], missing=np.nan, nthread=1))
        folds = np.arange(len(valid)) % 5
        fitted = calibration.choose(raw, valid[:, 0], folds, ("platt",), source="validation")
        calibration.save(fitted, model)
    return model


# --------------------------------------------------------------------------- contenders


def builtin_csv(booster: xgb.Booster, payload: bytes) -> bytes:
    """The image's default CSV path (encoder.csv_to_dmatrix + serve.invocations)."""
    text = payload.strip().decode("utf-8")
    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    array = np.array(rows).astype(np.float64)
    preds = booster.predict(xgb.DMatrix(array, nthread=1), validate_features=False)
    return ",".join(map(str, preds.tolist())).encode()


def arrow_csv(booster: xgb.Booster, payload: bytes, n_features: int) -> bytes:
    names = [f"c{j}" for j in range(n_features)]
    table = pacsv.read_csv(
        io.BytesIO(payload),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.float32() for n in names}),
    )
    X = np.column_stack([c.to_numpy() for c in table.columns])
    preds = booster.inplace_predict(X)
    return "\n".join(map("{:.6f}".format, preds.tolist())).encode()


def measure(
    contenders: dict[str, Callable[[], object]], seconds: float
) -> dict[str, tuple[float, float]]:
    """(best, median) seconds per call of each contender, over interleaved rounds."""
    per_call: dict[str, list[float]] = {name: [] for name in contenders}
    calls = {}
    for name, fn in contenders.items():  # warm up and size a round to ~5 ms per contender
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, int(0.005 / max(time.perf_counter() - start, 1e-7)))
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 2000):
        for name, fn in contenders.items():
            k = calls[name]
            start = time.perf_counter()
            for _ in range(k):
                fn()
            per_call[name].append((time.perf_counter() - start) / k)
        rounds += 1
    return {name: (min(t), statistics.median(t)) for name, t in per_call.items()}


def report(case: str, name: str, rows: int, seconds: float, median: float) -> None:
    print(f"{case:<10}{name:<10}{seconds * 1e6:>12.1f}{rows / seconds:>12.0f}{median * 1e6:>12.1f}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model dir (default: train one)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per case (default 3)")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds when training")
    parser.add_argument("--depth", type=int, default=5, help="max_depth when training")
    parser.add_argument(
        "--no-calibration", action="store_true", help="train a model without calibration.json"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or build_model(
            work, rounds=args.rounds, depth=args.depth, calibrated=not args.no_calibration
        )
        model = inference.load_model(model_dir, threads=1)
        booster = model.booster
        n_features = model.n_features
        raw_rows, encoded = sample_rows(work, model_dir)
        trees = len(booster.get_dump())
        print(f"model: {model_dir} ({trees} trees, {n_features} features), 1 thread")
        print(f"{'case':<10}{'contender':<10}{'us/request':>12}{'rows/s':>12}{'median us':>12}")

        results: dict[tuple[str, str], float] = {}
        for n in (1, 100, 10_000):
            lines = (encoded * (n // len(encoded) + 1))[:n]
            payload = "\n".join(lines).encode()
            floor_X = np.array(
                [[float(v) if v else np.nan for v in line.split(",")] for line in lines],
                dtype=np.float32,
            )
            contenders = {
                "ours": lambda p=payload: inference.handle(model, p, "text/csv", "text/csv"),
                "builtin": lambda p=payload: builtin_csv(booster, p),
                "floor": lambda X=floor_X: booster.inplace_predict(X),
                "arrow": lambda p=payload: arrow_csv(booster, p, n_features),
            }
            assert inference.handle(model, payload, "text/csv", "text/csv").status == 200
            for name, (seconds, median) in measure(contenders, args.seconds).items():
                results[(f"csv {n}", name)] = seconds
                report(f"csv {n}", name, n, seconds, median)

        body = json.dumps(raw_rows[0]).encode()
        assert inference.handle(model, body, "application/json", "application/json").status == 200
        one = np.array([[float(v) if v else np.nan for v in encoded[0].split(",")]], np.float32)
        json_measured = measure(
            {
                "ours": lambda: inference.handle(
                    model, body, "application/json", "application/json"
                ),
                "floor": lambda: booster.inplace_predict(one),
            },
            args.seconds,
        )
        json_times = {name: best for name, (best, _) in json_measured.items()}
        for name, (seconds, median) in json_measured.items():
            report("json 1", name, 1, seconds, median)

        print()
        big = {k[1]: v for k, v in results.items() if k[0] == "csv 10000"}
        small = {k[1]: v for k, v in results.items() if k[0] == "csv 1"}
        checks = [
            ("csv 10k: ours vs builtin throughput", big["builtin"] / big["ours"], ">=", 5.0),
            ("csv 10k: ours vs arrow time", big["ours"] / big["arrow"], "<=", 1.5),
            ("csv 1:   ours vs floor time", small["ours"] / small["floor"], "<=", 2.0),
            ("json 1:  ours vs floor time", json_times["ours"] / json_times["floor"], "<=", 3.0),
        ]
        failed = 0
        for label, ratio, op, target in checks:
            ok = ratio >= target if op == ">=" else ratio <= target
            failed += not ok
            print(f"{label:<40}{ratio:>8.2f}x  (target {op} {target}x)  {verdict(ok)}")
    return 1 if failed else 0


def sample_rows(work: Path, model_dir: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Raw applications and their encoded CSV lines (the encoding is checked to agree)."""
    raw_dir = work / "sample"
    generate_to_dir(200, raw_dir, seed=11)
    with open(next(raw_dir.glob("*.csv")), newline="") as f:
        raw = list(csv.DictReader(f))
    model = inference.load_model(model_dir, threads=1)
    raw = [{k: v for k, v in row.items() if k not in model.pii} for row in raw]  # a 400 else
    X = inference.encode(model, raw)
    encoded = [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in X]
    return raw, encoded


if __name__ == "__main__":
    sys.exit(main())
