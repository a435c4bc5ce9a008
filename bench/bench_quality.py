"""Model quality against simple baselines on public and generated books (a script, not a test).

For each book and seed: a stratified 80/20 split; `boostline pipeline run` on the 80 %
(the real pipeline: preprocess, tune, evaluate, gate, register); the registered model (or,
when the gate refused it, the evaluated candidate) scores the other 20 % through
training_scripts/inference.py, as the endpoint would. Two baselines train on the same
80 %: logistic regression (one-hot categoricals, scaled numbers, C chosen by 5-fold CV)
and XGBoost with native categoricals and its rounds chosen by 5-fold CV. Printed per
book: mean AUC, Brier, ECE (10 equal-width bins), mean predicted vs observed default rate,
and on the generated book the ratio to the oracle AUC (the generator's own default
probability), then the issue's targets, checked.

Inside the pipeline, Preprocess holds out a test set for the gate by a hash of each row's
id, so that a row keeps its split on every run. Each seed therefore gives the rows ids of
its own (`--holdout per-seed`, the default): the pipeline's hold-out is then drawn anew
each seed, like the bench's split. `--holdout fixed` runs the book as it is, with the same
hold-out every seed.

The oracle sees what no model can: the generator's hidden creditworthiness `z` and its
per-loan shocks (logistic regression on the features reaches about 0.95 of it). So the
generated book also gets a large-sample ceiling: XGBoost trained on --ceiling-rows fresh
rows of the same generator (another seed; its rounds by early stopping on a fifth of
them), scoring the same test rows. It approximates the best AUC the observed features
allow, and the ratio to it says how much a model of this book's size leaves on the table.

Books: ISLP's Default.csv and Caravan.csv (read from the pinned ISLP wheel's package data,
downloaded once with `pip download --no-deps` into --cache; ISLP itself is never imported
or installed), scikit-learn's breast_cancer, and the loan-book generator.

    .venv/bin/python bench/bench_quality.py                       # all books, 5 seeds
    .venv/bin/python bench/bench_quality.py --books default,generator --seeds 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostline.data import generator  # noqa: E402
from training_scripts import calibration, inference  # noqa: E402


def _pin(package: str) -> tuple[str, str]:
    """(name==version, sha256) of a package pinned in bench/requirements-quality.txt."""
    for line in (ROOT / "bench" / "requirements-quality.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            requirement, _, digest = line.partition(" --hash=sha256:")
            return requirement.strip(), digest.strip()
    raise RuntimeError(f"bench/requirements-quality.txt pins no {package}")


# Only the wheel's data files are read: ISLP is never installed or imported.
ISLP_PIN, ISLP_SHA256 = _pin("ISLP")
BOOKS = ("default", "caravan", "breast_cancer", "generator")
ECE_BINS = 10
# the XGBoost-CV baseline's fixed settings (its rounds come from 5-fold CV)
XGBOOST_CV_SETTINGS = {"eta": 0.05, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8}
TEST_FRACTION = 0.2
SPLIT_ID_COLUMN = "bench_row_id"  # the id given to a book without one (with_split_ids)
HOLDOUTS = ("per-seed", "fixed")  # the pipeline's own test hold-out (with_split_ids)


class DataUnavailable(RuntimeError):
    """A book's data could not be had; the bench says so and goes on with the others."""


@dataclass
class Book:
    name: str
    frame: pd.DataFrame  # raw columns, the target as its text values
    schema: dict[str, Any]
    oracle: np.ndarray | None = None  # the true P(positive) per row, where known
    # A large fresh sample of the same distribution (the generator only): the ceiling's data.
    reference: pd.DataFrame | None = None

    @property
    def target(self) -> str:
        return str(self.schema["target"]["column"])

    @property
    def positive(self) -> str:
        return str(self.schema["target"]["positive_value"])

    @property
    def numerical(self) -> list[str]:
        return [_name(f) for f in self.schema["features"].get("numerical", [])]

    @property
    def categorical(self) -> list[str]:
        return [_name(f) for f in self.schema["features"].get("categorical", [])]


def _name(feature: Any) -> str:
    return str(feature["name"] if isinstance(feature, dict) else feature)


# ---------------------------------------------------------------------------- books


def islp_csv(cache: Path, name: str) -> pd.DataFrame:
    wheel = cache / f"{ISLP_PIN.replace('==', '-')}-py3-none-any.whl"
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache)]
        done = subprocess.run([*cmd, ISLP_PIN], capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            raise DataUnavailable(
                f"ISLP data unavailable: `pip download --no-deps {ISLP_PIN}` failed: "
                f"{(done.stderr or done.stdout).strip()[-300:]}"
            )
    import hashlib

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != ISLP_SHA256:
        raise DataUnavailable(f"ISLP data unavailable: {wheel} has sha256 {digest}, not the pin")
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(f"ISLP/data/{name}.csv")
        except KeyError:
            raise DataUnavailable(f"ISLP data unavailable: {wheel} has no {name}.csv") from None
    return pacsv.read_csv(pa.py_buffer(data)).to_pandas()


def default_book(cache: Path, rows: int) -> Book:
    frame = islp_csv(cache, "Default")
    schema = {
        "name": "islp-default",
        "target": {"column": "default", "positive_value": "Yes", "negative_value": "No"},
        "features": {
            "numerical": [
                {"name": "balance", "min": 0, "required": True},
                {"name": "income", "min": 0, "required": True},
            ],
            "categorical": [{"name": "student", "values": ["No", "Yes"], "required": True}],
        },
    }
    return Book("ISLP Default", frame, schema)


def caravan_book(cache: Path, rows: int) -> Book:
    frame = islp_csv(cache, "Caravan")
    features = [c for c in frame.columns if c != "Purchase"]
    schema = {
        "name": "islp-caravan",
        "target": {"column": "Purchase", "positive_value": "Yes", "negative_value": "No"},
        "features": {"numerical": [{"name": c, "required": True} for c in features]},
    }
    return Book("ISLP Caravan", frame, schema)


def breast_cancer_book(cache: Path, rows: int) -> Book:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    # sklearn's target is 1 = benign; the positive class here is the malignant tumour.
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    frame = frame.drop(columns=["target"])
    features = [c for c in frame.columns if c != "diagnosis"]
    schema = {
        "name": "breast-cancer",
        "target": {
            "column": "diagnosis",
            "positive_value": "malignant",
            "negative_value": "benign",
        },
        "features": {"numerical": [{"name": c, "required": True} for c in features]},
    }
    return Book("breast_cancer", frame, schema)


def generator_book(cache: Path, rows: int, reference_rows: int = 0) -> Book:
    table, oracle = _generate_with_oracle(rows, seed=7)
    schema = yaml.safe_load((ROOT / "boostline" / "data" / "loan_schema.yaml").read_text())
    # Another seed: the reference shares no applicant with the book.
    reference = (
        generator.generate_loans(reference_rows, seed=8).to_pandas() if reference_rows else None
    )
    return Book(f"generator {rows}", table.to_pandas(), schema, oracle, reference)


def _generate_with_oracle(rows: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """The generator's book and the default probability it drew each outcome from."""
    seen: list[np.ndarray] = []
    original_default, original_sigmoid = generator._default, generator._sigmoid

    def recording_default(*args: Any, **kwargs: Any) -> np.ndarray:
        def sigmoid(x: np.ndarray) -> np.ndarray:
            p = original_sigmoid(x)
            seen.append(np.asarray(p, dtype=np.float64))
            return p

        generator._sigmoid = sigmoid
        try:
            return original_default(*args, **kwargs)
        finally:
            generator._sigmoid = original_sigmoid

    generator._default = recording_default
    try:
        table = generator.generate_loans(rows, seed=seed)
    finally:
        generator._default = original_default
    return table, np.concatenate(seen)


LOADERS: dict[str, Callable[..., Book]] = {
    "default": default_book,
    "caravan": caravan_book,
    "breast_cancer": breast_cancer_book,
    "generator": generator_book,
}


# ---------------------------------------------------------------------------- models


def baseline_frames(book: Book, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    X = frame[book.numerical + book.categorical].copy()
    for name in book.numerical:
        X[name] = pd.to_numeric(X[name], errors="coerce").astype(np.float64)
    for name in book.categorical:
        X[name] = X[name].astype("string").astype("category")
    y = (frame[book.target].astype(str) == book.positive).to_numpy(np.int64)
    return X, y


def logistic(book: Book, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> np.ndarray:
    X, y = baseline_frames(book, train)
    Xt, _ = baseline_frames(book, test)
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    steps = [("num", numbers, book.numerical)]
    if book.categorical:
        steps.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                book.categorical,
            )
        )
    for name in book.categorical:  # the imputer wants object columns, not categoricals
        X[name], Xt[name] = X[name].astype(object), Xt[name].astype(object)
    model = make_pipeline(
        ColumnTransformer(steps),
        LogisticRegressionCV(
            Cs=10,
            cv=StratifiedKFold(5, shuffle=True, random_state=seed),
            scoring="neg_log_loss",
            max_iter=5000,
        ),
    )
    model.fit(X, y)
    return model.predict_proba(Xt)[:, 1]


def xgboost_cv(book: Book, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> np.ndarray:
    X, y = baseline_frames(book, train)
    Xt, _ = baseline_frames(book, test)
    for name in book.categorical:  # the test set's categories coded as the training set's
        Xt[name] = pd.Categorical(Xt[name], categories=X[name].cat.categories)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        **XGBOOST_CV_SETTINGS,
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
    }
    dtrain = xgb.DMatrix(X, label=y, enable_categorical=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    history = xgb.cv(
        params,
        dtrain,
        num_boost_round=2000,
        folds=list(folds.split(X, y)),
        early_stopping_rounds=50,
        seed=seed,
    )
    booster = xgb.train(params, dtrain, num_boost_round=len(history))
    return booster.predict(xgb.DMatrix(Xt, enable_categorical=True))


@dataclass
class Ceiling:
    booster: xgb.Booster
    categories: dict[str, pd.Index]  # the reference's codes, for the test rows


def large_sample_ceiling(book: Book, seed: int) -> Ceiling:
    """XGBoost on the book's large reference sample, its rounds by early stopping on a
    fifth of it: about the best AUC the observed features allow."""
    assert book.reference is not None
    X, y = baseline_frames(book, book.reference)
    fit_i, stop_i = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed
    )
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "eta": 0.05,
        "max_depth": 5,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
    }
    fit = xgb.DMatrix(X.iloc[fit_i], label=y[fit_i], enable_categorical=True)
    stop = xgb.DMatrix(X.iloc[stop_i], label=y[stop_i], enable_categorical=True)
    booster = xgb.train(
        params,
        fit,
        num_boost_round=5000,
        evals=[(stop, "stop")],
        early_stopping_rounds=50,
        verbose_eval=False,
    )
    return Ceiling(booster, {name: X[name].cat.categories for name in book.categorical})


def ceiling_scores(book: Book, ceiling: Ceiling, test: pd.DataFrame) -> np.ndarray:
    Xt, _ = baseline_frames(book, test)
    for name, categories in ceiling.categories.items():  # coded as the reference's
        Xt[name] = pd.Categorical(Xt[name], categories=categories)
    best = ceiling.booster.best_iteration + 1
    matrix = xgb.DMatrix(Xt, enable_categorical=True)
    return ceiling.booster.predict(matrix, iteration_range=(0, best))


def with_split_ids(
    book: Book, train: pd.DataFrame, seed: int, holdout: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows and the schema the pipeline runs on.

    Trap: the pipeline splits off its test set by a hash of each row's id (of its content
    where there is none), so a row keeps its split on every run. With the book's own ids,
    or none, every seed's run holds out the same rows of the book: one draw of the
    pipeline's hold-out, shared by all seeds, while the bench's own 80/20 split is drawn
    anew each seed. `per-seed` gives each row an id of its seed and position, so each
    seed's hold-out is a draw of its own; `fixed` keeps the book as it is.
    """
    if holdout == "fixed":
        return train, book.schema
    column = str((book.schema.get("id") or {}).get("column") or SPLIT_ID_COLUMN)
    frame = train.copy()
    frame[column] = [f"seed-{seed}-row-{i}" for i in train.index]
    return frame, {**book.schema, "id": {"column": column}}


def pipeline_run(
    book: Book, train: pd.DataFrame, run: RunSettings, root: Path, seed: int
) -> tuple[Path, subprocess.CompletedProcess[str], float]:
    """`boostline pipeline run` on the training rows, in a workdir under `root`: the
    workdir, the finished process and its seconds."""
    data, workdir = root / "data", root / "work"
    data.mkdir()
    rows, book_schema = with_split_ids(book, train, seed, run.holdout)
    rows.to_csv(data / "book.csv", index=False)
    schema = root / "schema.yaml"
    schema.write_text(yaml.safe_dump(book_schema, sort_keys=False))
    cmd = [*run.boostline, "pipeline", "run", "--workdir", str(workdir)]
    cmd += ["--data", str(data), "--schema", str(schema), "--quiet"]
    if run.max_trials:
        cmd += ["--max-trials", str(run.max_trials)]
    if run.config is not None:
        cmd += ["--config", str(run.config)]
    # The assembly holds the schema: synthesized once per book, then executed again.
    assembly = run.assemblies.get(book.name)
    if assembly is not None:
        cmd += ["--assembly", str(assembly)]
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    found = sorted((workdir / "assemblies").glob("*-*"))
    if assembly is None and found:
        kept = Path(run.keep) / f"assembly-{len(run.assemblies)}"
        subprocess.run(["cp", "-r", str(found[0]), str(kept)], check=True)
        run.assemblies[book.name] = kept
    return workdir, done, seconds


def boostline_model(
    book: Book, train: pd.DataFrame, test: pd.DataFrame, seed: int, run: RunSettings
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """The endpoint's probabilities for the test rows, the alternatives (the booster's own
    probability, and each calibration method refitted on the model's held-out rows), and
    facts about the run."""
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        root = Path(tmp)
        workdir, done, seconds = pipeline_run(book, train, run, root, seed)
        archive, registered = _model_archive(workdir)
        if archive is None:
            raise RuntimeError(
                f"pipeline run made no model (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        model_dir = root / "model"
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
        model = inference.load_model(model_dir, threshold=0.5, threads=2)
        # The endpoint's contract: the schema's features only (a PII field gets a 400).
        features = test[book.numerical + book.categorical]
        instances = [
            {k: _json_value(v) for k, v in row.items()}
            for row in features.to_dict(orient="records")
        ]
        X, _ = inference.parse_json(model, {"instances": instances})
        scores = np.asarray(inference.predict(model, X), dtype=np.float64)
        raw = np.asarray(inference.booster_probability(model, X), dtype=np.float64)
        alternatives = {"booster": raw}
        holdout = model_dir / calibration.HOLDOUT_FILE
        if holdout.is_file():
            labels, _, held_raw = calibration.read_holdout(holdout)
            for method in calibration.METHODS[1:]:
                fitted = calibration.fit(method, held_raw, labels)
                alternatives[method] = fitted.apply(raw)
            knots = calibration.fit_isotonic(held_raw, labels, centred=True)
            alternatives["isotonic_centred"] = calibration.Calibrator("isotonic", knots).apply(raw)
        calibrator = model.calibrator
        chosen = "none" if calibrator is None else calibrator.method
        source = "" if calibrator is None else calibrator.fitted_on.get("source", "")
    info = {"registered": registered, "seconds": seconds, "calibration": chosen, "source": source}
    return scores, alternatives, info


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_archive(workdir: Path) -> tuple[Path | None, bool]:
    """The registered model, else the candidate the evaluation step scored."""
    registered = sorted((workdir / "registry").glob("*/*/model.tar.gz"))
    if registered:
        return registered[-1], True
    candidate = sorted(workdir.glob("jobs/*-evaluate/opt/ml/processing/input/model/model.tar.gz"))
    return (candidate[-1], False) if candidate else (None, False)


# ---------------------------------------------------------------------------- metrics


def ece(labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float:
    index = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    observed = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    return float(np.sum(np.abs(predicted - observed)) / len(scores))


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "brier": float(brier_score_loss(labels, scores)),
        "log_loss": calibration.log_loss(labels.astype(np.float64), scores),
        "ece": ece(labels, scores),
        "mean_predicted": float(scores.mean()),
        "observed": float(labels.mean()),
    }


# ---------------------------------------------------------------------------- the run


@dataclass
class RunSettings:
    boostline: list[str]
    max_trials: int | None
    keep: str
    config: Path | None = None
    holdout: str = HOLDOUTS[0]  # see with_split_ids
    assemblies: dict[str, Path] = field(default_factory=dict)


@dataclass
class BookResult:
    book: str
    rows: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    unavailable: str | None = None
    failures: list[str] = field(default_factory=list)


def book_labels(book: Book) -> np.ndarray:
    return (book.frame[book.target].astype(str) == book.positive).to_numpy(np.int64)


def split(book: Book, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's stratified split of the book's rows: (training, test) row positions."""
    index = np.arange(len(book.frame))
    train_i, test_i = train_test_split(
        index, test_size=TEST_FRACTION, stratify=book_labels(book), random_state=seed
    )
    return train_i, test_i


def run_book(book: Book, seeds: list[int], run: RunSettings) -> BookResult:
    result = BookResult(book.name, len(book.frame))
    ceiling = None
    if book.reference is not None:
        began = time.perf_counter()
        ceiling = large_sample_ceiling(book, seed=0)
        print(
            f"  {book.name}: large-sample ceiling on {len(book.reference):,} rows, "
            f"{ceiling.booster.best_iteration + 1} rounds "
            f"({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
    labels_all = book_labels(book)
    for seed in seeds:
        train_i, test_i = split(book, seed)
        train, test = book.frame.iloc[train_i], book.frame.iloc[test_i]
        labels = labels_all[test_i]
        entry: dict[str, Any] = {"seed": seed}
        try:
            scores, alternatives, info = boostline_model(book, train, test, seed, run)
        except RuntimeError as exc:  # reported, and left out of the means
            print(f"  {book.name} seed {seed}: FAILED, {exc}", flush=True)
            result.failures.append(f"seed {seed}: {exc}")
            continue
        entry["boostline"] = metrics(labels, scores) | info
        entry["alternatives"] = {k: metrics(labels, v) for k, v in alternatives.items()}
        entry["logistic"] = metrics(labels, logistic(book, train, test, seed))
        entry["xgboost_cv"] = metrics(labels, xgboost_cv(book, train, test, seed))
        if book.oracle is not None:
            entry["oracle_auc"] = float(roc_auc_score(labels, book.oracle[test_i]))
        if ceiling is not None:
            entry["ceiling_auc"] = float(roc_auc_score(labels, ceiling_scores(book, ceiling, test)))
        result.runs.append(entry)
        b = entry["boostline"]
        print(
            f"  {book.name} seed {seed}: boostline AUC {b['auc']:.4f} "
            f"(registered {b['registered']}, {b['seconds']:.0f} s, calibration "
            f"{b['calibration']} on {b['source'] or 'nothing'}; booster alone "
            f"{entry['alternatives']['booster']['auc']:.4f}), "
            f"logistic {entry['logistic']['auc']:.4f}, xgboost-cv {entry['xgboost_cv']['auc']:.4f}",
            flush=True,
        )
    return result


def summarise(result: BookResult) -> dict[str, Any]:
    def mean(model: str, key: str) -> float:
        return float(np.mean([r[model][key] for r in result.runs]))

    out: dict[str, Any] = {"book": result.book, "rows": result.rows, "seeds": len(result.runs)}
    out["failed_seeds"] = len(result.failures)
    for model in ("boostline", "logistic", "xgboost_cv"):
        out[model] = {
            k: mean(model, k) for k in ("auc", "brier", "log_loss", "ece", "mean_predicted")
        }
    out["observed"] = mean("boostline", "observed")
    out["registered"] = sum(bool(r["boostline"]["registered"]) for r in result.runs)
    methods = [str(r["boostline"]["calibration"]) for r in result.runs]
    out["calibration"] = {m: methods.count(m) for m in sorted(set(methods))}
    alternatives = sorted(set.intersection(*(set(r["alternatives"]) for r in result.runs)))
    out["alternatives"] = {
        name: {
            k: float(np.mean([r["alternatives"][name][k] for r in result.runs]))
            for k in ("auc", "brier", "log_loss", "ece", "mean_predicted")
        }
        for name in alternatives
    }
    out["seconds"] = mean("boostline", "seconds")
    for key in ("oracle_auc", "ceiling_auc"):
        if result.runs and key in result.runs[0]:
            out[key] = float(np.mean([r[key] for r in result.runs]))
    return out


def print_table(summaries: list[dict[str, Any]]) -> None:
    head = (
        "| book | seeds | model | AUC | Brier | ECE | mean predicted | observed |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    print(head)
    for s in summaries:
        for model in ("boostline", "logistic", "xgboost_cv"):
            m = s[model]
            print(
                f"| {s['book']} | {s['seeds']} | {model} | {m['auc']:.4f} | {m['brier']:.4f} | "
                f"{m['ece']:.4f} | {m['mean_predicted']:.4f} | {s['observed']:.4f} |"
            )
    print()
    for s in summaries:
        b, lr, xg = s["boostline"], s["logistic"], s["xgboost_cv"]
        best = max(lr["auc"], xg["auc"])
        gap = b["mean_predicted"] - s["observed"]
        checks = [
            f"AUC - better baseline {b['auc'] - best:+.4f} "
            f"[{'ok' if b['auc'] >= best - 0.005 else 'MISS'}]",
            f"mean predicted - observed {gap:+.4f} [{'ok' if abs(gap) <= 0.02 else 'MISS'}]",
            f"Brier / logistic's {b['brier'] / lr['brier']:.3f} "
            f"[{'ok' if b['brier'] <= lr['brier'] else 'MISS'}]",
        ]
        if "oracle_auc" in s:
            ratio = b["auc"] / s["oracle_auc"]
            checks.append(
                f"AUC / oracle {ratio:.4f} (oracle {s['oracle_auc']:.4f}) "
                f"[{'ok' if ratio >= 0.98 else 'MISS'}]"
            )
        if "ceiling_auc" in s:
            ceiling = s["ceiling_auc"]
            checks.append(
                f"AUC / large-sample ceiling {b['auc'] / ceiling:.4f} (ceiling {ceiling:.4f}; "
                f"logistic {lr['auc'] / ceiling:.4f}, xgboost-cv {xg['auc'] / ceiling:.4f} of it)"
            )
        chosen = ", ".join(f"{m} {n}" for m, n in s["calibration"].items())
        print(
            f"{s['book']}: " + "; ".join(checks) + f"; registered {s['registered']}/{s['seeds']}, "
            f"pipeline run {s['seconds']:.0f} s; calibration chosen: {chosen}"
        )
    print()
    print(
        "The registered model's booster alone and with each calibration method refitted on "
        "its held-out (out-of-fold) rows, on the same test rows:\n"
        "| book | scores | AUC | Brier | log-loss | ECE | mean predicted |\n"
        "|---|---|---|---|---|---|---|"
    )
    for s in summaries:
        rows = [("endpoint", s["boostline"]), *s["alternatives"].items()]
        for name, m in rows:
            print(
                f"| {s['book']} | {name} | {m['auc']:.4f} | {m['brier']:.4f} | "
                f"{m['log_loss']:.4f} | {m['ece']:.4f} | {m['mean_predicted']:.4f} |"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--books", default=",".join(BOOKS), help=f"comma-separated: {', '.join(BOOKS)}")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--generator-rows", type=int, default=10_000)
    p.add_argument(
        "--ceiling-rows",
        type=int,
        default=1_000_000,
        help="fresh generator rows for the large-sample ceiling (0: none; 200,000 gave a "
        "lower ceiling than 1,000,000, so fewer understate it)",
    )
    p.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="lowers the config's tuning.max_jobs (more trials: a --config with a larger one)",
    )
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "boostline-bench")
    p.add_argument(
        "--boostline",
        default=f"{sys.executable} -m boostline",
        help="the command that runs boostline (split on spaces)",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="the Boostline config (default: the shipped one)"
    )
    p.add_argument(
        "--holdout",
        choices=HOLDOUTS,
        default=HOLDOUTS[0],
        help="the pipeline's own test hold-out: drawn anew each seed (ids of the seed), or "
        "the book's fixed one, the same rows every seed (its ids or its content)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-quality-keep-") as keep:
        yield keep


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.books.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BOOKS))
    if unknown:
        print(f"unknown book(s): {', '.join(unknown)} (known: {', '.join(BOOKS)})")
        return 2
    seeds = list(range(args.seeds))
    summaries, unavailable = [], []
    started = time.perf_counter()
    with _scratch() as keep:
        run = RunSettings(args.boostline.split(), args.max_trials, keep, args.config, args.holdout)
        for name in names:
            try:
                if name == "generator":
                    book = generator_book(args.cache, args.generator_rows, args.ceiling_rows)
                else:
                    book = LOADERS[name](args.cache, args.generator_rows)
            except DataUnavailable as exc:
                print(f"{name}: SKIPPED, {exc}", flush=True)
                unavailable.append(f"{name}: {exc}")
                continue
            result = run_book(book, seeds, run)
            if result.runs:
                summaries.append(summarise(result))
            unavailable += [f"{name} {failure}" for failure in result.failures]
    print()
    print_table(summaries)
    for line in unavailable:
        print(f"not run: {line}")
    print(
        f"\nbench time {time.perf_counter() - started:.0f} s, seeds {seeds}, "
        f"max trials {args.max_trials or 'config'}, pipeline hold-out {args.holdout}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"summaries": summaries}, indent=2) + "\n")
    return 1 if unavailable else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
