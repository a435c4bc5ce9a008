"""Benchmark of the inference path (training_scripts/inference.py), in process.

Measured side by side, interleaved in rounds so that machine noise hits every
contender alike. Ratios use each contender's median round (and, in brackets,
its best round, the least disturbed one: the work is CPU-bound and the machine
shared). The share of the CPUs that other processes took while each size ran
is printed with it.

  ours      inference.handle(): parse + check + inplace_predict + calibrate + format
  builtin   the XGBoost image's default CSV path, reproduced: decode UTF-8,
            csv.Sniffer on the first line, split lines in Python, string numpy
            array, cast to float, DMatrix, booster.predict, ",".join(str(p))
            (no calibration: what the image answers without a script)
  predict   inplace_predict + the calibration on an already-parsed array
  floor     the cheapest way found to turn the same bytes into calibrated
            probabilities: the fastest of four parsers (Python float() per
            field, numpy.fromstring, numpy.loadtxt, pyarrow's CSV reader with
            its options built once), each with no checks, then inplace_predict and the
            calibration; no output formatting. `floor` is the best of the three,
            size by size (which one is printed)
  arrow     pyarrow CSV reader + inplace_predict + calibration + "%.6f" formatting

Sizes: CSV 1, 10, 100, 1,000 and 10,000 rows per request; JSON (raw
applications) 1, 100 and 1,000 rows, whose floor is json.loads of the body plus
`predict` on the encoded rows.

Targets (PASS/FAIL is printed):
  CSV, every size: ours <= 1.5x floor time
  CSV 10,000 rows: ours >= 5x builtin throughput, ours <= 1.5x arrow time
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
import math  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import xgboost as xgb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.data.generator import SCHEMA_PATH, generate_to_dir  # noqa: E402
from training_scripts import (  # noqa: E402
    baseline,
    calibration,
    inference,
    linear_margin,
    preprocess,
)


def build_model(
    workdir: Path,
    rows: int = 20_000,
    rounds: int = 100,
    depth: int = 5,
    calibrated: bool = True,
    linear: bool = False,
) -> Path:
    """Generate -> preprocess -> train (-> calibrate); returns <workdir>/model laid out as
    train.py does. With `linear`, the booster starts from the logistic baseline's margin and
    the model holds boostline/linear_margin.json, as a cross-validated job may leave it."""
    generate_to_dir(rows, workdir / "raw", seed=7)
    preprocess.preprocess(workdir / "raw", SCHEMA_PATH, workdir / "prep", salt="bench")
    train = np.vstack(
        [
            np.genfromtxt(p, delimiter=",", filling_values=np.nan)
            for p in sorted((workdir / "prep" / "train").glob("*.csv"))
        ]
    )
    manifest = json.loads((workdir / "prep" / "manifest" / "feature_manifest.json").read_text())
    start = None
    if linear:
        kinds = [c["kind"] == "categorical" for c in manifest["columns"]]
        fitted = baseline.fit(train[:, 0], train[:, 1:], kinds)
        margin_map = linear_margin.from_baseline(fitted, train[:, 1:], kinds)
        start = margin_map.margin(train[:, 1:])
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 1},
        xgb.DMatrix(train[:, 1:], label=train[:, 0], nthread=1, base_margin=start),
        num_boost_round=rounds,
    )
    model = workdir / "model"
    (model / "boostline").mkdir(parents=True, exist_ok=True)
    (model / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    shutil.copy(
        workdir / "prep" / "manifest" / "feature_manifest.json",
        model / "boostline" / "feature_manifest.json",
    )
    if linear:
        linear_margin.save(margin_map, model)
    if calibrated:
        valid = np.genfromtxt(
            workdir / "prep" / "validation" / "validation.csv", delimiter=",", filling_values=np.nan
        )
        base = margin_map.margin(valid[:, 1:]) if linear else None
        raw = booster.predict(
            xgb.DMatrix(valid[:, 1:], missing=np.nan, nthread=1, base_margin=base)
        )
        folds = np.arange(len(valid)) % 5
        fitted = calibration.choose(raw, valid[:, 0], folds, ("platt",), source="validation")
        calibration.save(fitted, model)
    return model


# --------------------------------------------------------------------------- contenders


def calibrated(model: inference.Model, X: np.ndarray) -> np.ndarray:
    """inplace_predict (from the linear margin, where the model has one), then the
    calibration: what any calibrated answer costs at least."""
    if model.linear is None:
        raw = model.booster.inplace_predict(X, validate_features=False)
    else:  # the map's arithmetic is the model's: a dot product, a gather, a sigmoid
        margin = model.booster.inplace_predict(X, validate_features=False, predict_type="margin")
        margin = margin + model.linear.margin(X) - model.base_offset
        raw = 1.0 / (1.0 + np.exp(-margin))
    return raw if model.calibrator is None else model.calibrator.apply(raw)


def builtin_csv(booster: xgb.Booster, payload: bytes) -> bytes:
    """The image's default CSV path (encoder.csv_to_dmatrix + serve.invocations)."""
    text = payload.strip().decode("utf-8")
    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    array = np.array(rows).astype(np.float64)
    preds = booster.predict(xgb.DMatrix(array, nthread=1), validate_features=False)
    return ",".join(map(str, preds.tolist())).encode()


def arrow_csv(model: inference.Model, payload: bytes) -> bytes:
    names = [f"c{j}" for j in range(model.n_features)]
    table = pacsv.read_csv(
        io.BytesIO(payload),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.float32() for n in names}),
    )
    X = np.column_stack([c.to_numpy() for c in table.columns])
    return "\n".join(map("{:.6f}".format, calibrated(model, X).tolist())).encode()


def _nan_filled(payload: bytes) -> tuple[int, bytes]:
    """(rows, the fields joined by commas with every empty field spelled nan)."""
    rows = payload.count(b"\n") + 1
    joined = b"," + payload.replace(b"\n", b",") + b","
    joined = joined.replace(b",,", b",nan,").replace(b",,", b",nan,")  # a run of empties
    return rows, joined[1:-1]


class Floor:
    """The cheapest ways found to turn a well-formed CSV body into calibrated
    probabilities: a parser with no checks, inplace_predict, the calibration."""

    def __init__(self, model: inference.Model) -> None:
        self.model = model
        names = [f"c{j}" for j in range(model.n_features)]
        self.read_options = pacsv.ReadOptions(column_names=names, use_threads=False)
        self.parse_options = pacsv.ParseOptions(quote_char=False)
        self.convert_options = pacsv.ConvertOptions(
            column_types={n: pa.float64() for n in names}, null_values=[""]
        )

    def python(self, payload: bytes) -> np.ndarray:
        rows, joined = _nan_filled(payload)
        fields = joined.split(b",")
        X = np.fromiter(map(float, fields), np.float64, len(fields)).reshape(rows, -1)
        return calibrated(self.model, X)

    def numpy(self, payload: bytes) -> np.ndarray:
        rows, joined = _nan_filled(payload)
        return calibrated(self.model, np.fromstring(joined, sep=",").reshape(rows, -1))

    def loadtxt(self, payload: bytes) -> np.ndarray:
        text = "\n" + payload.decode() + "\n"  # every empty field spelled nan, lines kept
        text = text.replace("\n,", "\nnan,").replace(",\n", ",nan\n")
        text = text.replace(",,", ",nan,").replace(",,", ",nan,")
        lines = text[1:-1].split("\n")
        X = np.loadtxt(lines, delimiter=",", comments=None, dtype=np.float64, ndmin=2)
        return calibrated(self.model, X)

    def arrow(self, payload: bytes) -> np.ndarray:
        table = pacsv.read_csv(
            pa.py_buffer(payload),
            read_options=self.read_options,
            parse_options=self.parse_options,
            convert_options=self.convert_options,
        )
        X = np.empty((table.num_rows, table.num_columns), order="F")
        for j, column in enumerate(table.columns):
            X[:, j] = column.to_numpy()
        return calibrated(self.model, X)


# --------------------------------------------------------------------------- measuring

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all but idle and iowait)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return math.nan
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Timing:
    best: float  # seconds per call, best round
    median: float  # seconds per call, median round
    rounds: int


@dataclass
class Case:
    label: str
    rows: int
    timings: dict[str, Timing]
    others: float  # share of the machine's CPU time other processes took meanwhile


def measure(contenders: dict[str, Callable[[], object]], seconds: float) -> dict[str, Timing]:
    """Seconds per call of each contender, over interleaved rounds."""
    per_call: dict[str, list[float]] = {name: [] for name in contenders}
    calls = {}
    for name, fn in contenders.items():  # warm up and size a round to ~5 ms per contender
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, int(0.005 / max(time.perf_counter() - start, 1e-7)))
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < 11 or (time.perf_counter() < deadline and rounds < 2000):
        for name, fn in contenders.items():
            k = calls[name]
            start = time.perf_counter()
            for _ in range(k):
                fn()
            per_call[name].append((time.perf_counter() - start) / k)
        rounds += 1
    return {name: Timing(min(t), statistics.median(t), len(t)) for name, t in per_call.items()}


def run_case(
    label: str, rows: int, contenders: dict[str, Callable[[], object]], seconds: float
) -> Case:
    wall, busy, own = time.perf_counter(), _machine_busy(), _own_cpu()
    timings = measure(contenders, seconds)
    wall, busy, own = time.perf_counter() - wall, _machine_busy() - busy, _own_cpu() - own
    others = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))
    case = Case(label, rows, timings, others)
    for name, t in timings.items():
        print(
            f"{label:<11}{name:<13}{t.median * 1e6:>12.1f}{rows / t.median:>12.0f}"
            f"{t.best * 1e6:>12.1f}{t.rounds:>8}"
        )
    print(f"{'':<11}(other processes took {others:.0%} of the CPUs meanwhile)")
    return case


def floor_of(case: Case) -> tuple[str, Timing]:
    """The cheapest floor contender of a case, by median."""
    floors = {k: v for k, v in case.timings.items() if k.startswith("floor")}
    name = min(floors, key=lambda k: floors[k].median)
    return name, floors[name]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


CSV_SIZES = (1, 10, 100, 1_000, 10_000)
JSON_SIZES = (1, 100, 1_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model dir (default: train one)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size (default 3)")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds when training")
    parser.add_argument("--depth", type=int, default=5, help="max_depth when training")
    parser.add_argument(
        "--no-calibration", action="store_true", help="train a model without calibration.json"
    )
    parser.add_argument(
        "--linear-margin",
        action="store_true",
        help="train a model that starts from the logistic baseline's margin (linear_margin.json)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or build_model(
            work,
            rounds=args.rounds,
            depth=args.depth,
            calibrated=not args.no_calibration,
            linear=args.linear_margin,
        )
        model = inference.load_model(model_dir, threads=1)
        booster = model.booster
        raw_rows, encoded = sample_rows(work, model_dir)
        trees = len(booster.get_dump())
        method = "none" if model.calibrator is None else model.calibrator.method
        load = os.getloadavg()
        print(
            f"model: {model_dir} ({trees} trees, {model.n_features} features, calibration "
            f"{method}, linear margin {'yes' if model.linear else 'no'}), 1 thread; "
            f"{os.cpu_count()} CPUs, load average {load[0]:.2f} "
            f"{load[1]:.2f} {load[2]:.2f}"
        )
        print(
            f"{'case':<11}{'contender':<13}{'median us':>12}{'rows/s':>12}{'best us':>12}"
            f"{'rounds':>8}"
        )
        floor = Floor(model)
        csv_cases: list[Case] = []
        for n in CSV_SIZES:
            lines = (encoded * (n // len(encoded) + 1))[:n]
            payload = "\n".join(lines).encode()
            X = inference.parse_csv(model, payload)
            expected = inference.predict(model, X)
            for parse in (floor.python, floor.numpy, floor.loadtxt, floor.arrow):  # alike
                np.testing.assert_allclose(parse(payload), expected, rtol=0, atol=1e-6)
            assert inference.handle(model, payload, "text/csv", "text/csv").status == 200
            contenders = {
                "ours": lambda p=payload: inference.handle(model, p, "text/csv", "text/csv"),
                "builtin": lambda p=payload: builtin_csv(booster, p),
                "predict": lambda X=X: calibrated(model, X),
                "floor python": lambda p=payload: floor.python(p),
                "floor numpy": lambda p=payload: floor.numpy(p),
                "floor loadtxt": lambda p=payload: floor.loadtxt(p),
                "floor arrow": lambda p=payload: floor.arrow(p),
                "arrow": lambda p=payload: arrow_csv(model, p),
            }
            csv_cases.append(run_case(f"csv {n}", n, contenders, args.seconds))

        json_cases: list[Case] = []
        for n in JSON_SIZES:
            instances = (raw_rows * (n // len(raw_rows) + 1))[:n]
            body = json.dumps(instances[0] if n == 1 else instances).encode()
            assert (
                inference.handle(model, body, "application/json", "application/json").status == 200
            )
            X = inference.encode(model, instances)
            contenders = {
                "ours": lambda b=body: inference.handle(
                    model, b, "application/json", "application/json"
                ),
                "predict": lambda X=X: calibrated(model, X),
                "floor": lambda b=body, X=X: (json.loads(b), calibrated(model, X)),
            }
            json_cases.append(run_case(f"json {n}", n, contenders, args.seconds))
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

        print()
        print(
            f"{'case':<11}{'ours us':>10}{'floor us':>10}  {'floor':<14}{'ours/floor':>11}"
            f"{'(best)':>8}{'others':>8}"
        )
        ratios: dict[str, float] = {}
        for case in csv_cases + json_cases:
            name, fl = floor_of(case)
            ours = case.timings["ours"]
            ratios[case.label] = ours.median / fl.median
            print(
                f"{case.label:<11}{ours.median * 1e6:>10.1f}{fl.median * 1e6:>10.1f}  "
                f"{name:<14}{ratios[case.label]:>10.2f}x{ours.best / fl.best:>7.2f}x"
                f"{case.others:>8.0%}"
            )

        print()
        big = {k: v.median for k, v in csv_cases[-1].timings.items()}
        checks = [
            (f"{case.label}: ours vs floor time", ratios[case.label], "<=", 1.5)
            for case in csv_cases
        ]
        checks += [
            ("csv 10000: ours vs builtin throughput", big["builtin"] / big["ours"], ">=", 5.0),
            ("csv 10000: ours vs arrow time", big["ours"] / big["arrow"], "<=", 1.5),
            ("json 1: ours vs floor time", ratios["json 1"], "<=", 3.0),
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
