"""What a book's AUC loses to the pipeline's test hold-out and to its tuning search
(a script, not a test).

Per seed, bench_quality.py's split; `boostline pipeline run` on the 80 %, its workdir kept;
then, outside the pipeline, on the rows its Preprocess step wrote for training (train +
validation: the rows the final model trains on), for each tuning trial's hyperparameters
and for XGBoost-CV's fixed settings (bench_quality.XGBOOST_CV_SETTINGS):

  cv AUC     xgb.cv with the training job's cross-validation settings (the config's
             cv_folds, cv_num_round, cv_early_stopping_rounds, cv_parallel_trees trees a
             round, stopping on log loss): what the tuner compares, on other folds
  test AUC   trained on those rows for the CV's rounds, scoring the bench's test rows

and the tuner's pick trained the same way on the bench's whole 80 % (its test rows
included): what holding out the test set costs. Features as the manifest encodes them
(categories as their codes); the test rows are encoded by the same manifest.

    .venv/bin/python bench/bench_search.py --books caravan --seeds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality as bq  # noqa: E402

from boostline.config import load_config  # noqa: E402
from training_scripts.train import min_child_weight_of  # noqa: E402


def encoded(manifest: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """The frame's features as the preprocessing writes them: numbers as they are,
    categories as their index in the manifest's list (unseen or missing: NaN)."""
    columns = []
    for column in manifest["columns"]:
        values = frame[column["name"]]
        if column["kind"] == "categorical":
            codes = {str(c): i for i, c in enumerate(column["categories"])}
            columns.append(values.map(lambda v, c=codes: c.get(str(v), np.nan)).astype(float))
        else:
            columns.append(pd.to_numeric(values, errors="coerce").astype(float))
    return np.column_stack(columns)


def processed_rows(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows a pipeline run wrote: (features, labels)."""
    files = sorted((run / "train").glob("*.csv")) + sorted((run / "validation").glob("*.csv"))
    table = pd.concat([pd.read_csv(f, header=None) for f in files]).to_numpy(float)
    return table[:, 1:], table[:, 0].astype(np.int64)


def cv_and_test(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    Xt: np.ndarray,
    yt: np.ndarray,
    cv: Any,
    seed: int,
) -> tuple[float, float, int]:
    """(CV AUC at the log-loss-best round, test AUC of the model trained for it, rounds)."""
    params = dict(params)
    if "min_child_rows" in params:  # as train.py converts it, at these rows' base rate
        rows = float(params.pop("min_child_rows"))
        params["min_child_weight"] = min_child_weight_of(rows, len(y), int(y.sum()))
    booster_params = {
        "objective": "binary:logistic",
        "eval_metric": ["auc", "logloss"],  # the last one stops
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
        "num_parallel_tree": cv.cv_parallel_trees,
        **params,
    }
    data = xgb.DMatrix(X, label=y)
    folds = list(StratifiedKFold(cv.cv_folds, shuffle=True, random_state=seed).split(X, y))
    history = xgb.cv(
        booster_params,
        data,
        num_boost_round=cv.cv_num_round,
        folds=folds,
        early_stopping_rounds=cv.cv_early_stopping_rounds,
        seed=seed,
    )
    booster = xgb.train(booster_params, data, num_boost_round=len(history))
    test = float(roc_auc_score(yt, booster.predict(xgb.DMatrix(Xt))))
    return float(history["test-auc-mean"].iloc[-1]), test, len(history)


def run_seed(book: bq.Book, seed: int, run: bq.RunSettings, cv: Any) -> list[dict[str, Any]]:
    train_i, test_i = bq.split(book, seed)
    train, test = book.frame.iloc[train_i], book.frame.iloc[test_i]
    labels = bq.book_labels(book)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        workdir, done, _ = bq.pipeline_run(book, train, run, Path(tmp), seed)
        records = sorted((workdir / "runs").glob("*.json"))
        runs = sorted((workdir / "buckets" / "processed" / "runs").glob("*"))
        if not records or not runs or "Tune" not in json.loads(records[-1].read_text())["steps"]:
            raise RuntimeError(f"the pipeline run did not tune (exit {done.returncode})")
        tune = json.loads(records[-1].read_text())["steps"]["Tune"]
        manifest = json.loads((runs[-1] / "manifest" / "feature_manifest.json").read_text())
        X, y = processed_rows(runs[-1])
    Xt, yt = encoded(manifest, test), labels[test_i]
    rows = []
    best = tune["best_objective"]
    candidates = [
        (f"trial {t['number']}" + (" (pick)" if t["objective"] == best else ""), t)
        for t in tune["trials"]
        if t["status"] == "Completed"
    ]
    for name, trial in candidates:
        cv_auc, test_auc, rounds = cv_and_test(trial["hyperparameters"], X, y, Xt, yt, cv, seed)
        rows.append({"model": name, "cv": cv_auc, "test": test_auc, "rounds": rounds})
    pick = next(t["hyperparameters"] for _, t in candidates if t["objective"] == best)
    fixed = bq.XGBOOST_CV_SETTINGS
    cv_auc, test_auc, rounds = cv_and_test(fixed, X, y, Xt, yt, cv, seed)
    rows.append({"model": "xgboost-cv settings", "cv": cv_auc, "test": test_auc, "rounds": rounds})
    whole = encoded(manifest, train)
    cv_auc, test_auc, rounds = cv_and_test(pick, whole, labels[train_i], Xt, yt, cv, seed)
    rows.append(
        {"model": "pick on the whole 80 %", "cv": cv_auc, "test": test_auc, "rounds": rounds}
    )
    for row in rows:
        print(
            f"  seed {seed} {row['model']:<24} cv AUC {row['cv']:.4f}  test AUC "
            f"{row['test']:.4f}  rounds {row['rounds']}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--books", default="caravan", help=f"of {', '.join(bq.BOOKS)}")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--generator-rows", type=int, default=10_000)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "boostline-bench")
    p.add_argument("--config", type=Path, default=None, help="default: the shipped config")
    p.add_argument(
        "--holdout", choices=bq.HOLDOUTS, default=bq.HOLDOUTS[0], help="as bench_quality's"
    )
    args = p.parse_args(argv)
    names = [n.strip() for n in args.books.split(",") if n.strip()]
    unknown = sorted(set(names) - set(bq.BOOKS))
    if unknown:
        p.error(f"unknown book(s): {', '.join(unknown)} (known: {', '.join(bq.BOOKS)})")
    cv = load_config(args.config).training.parsed_hyperparameters()
    with tempfile.TemporaryDirectory(prefix="bench-search-keep-") as keep:
        boostline = [sys.executable, "-m", "boostline"]
        run = bq.RunSettings(boostline, None, keep, args.config, args.holdout)
        for name in names:
            if name == "generator":
                book = bq.generator_book(args.cache, args.generator_rows, 0)
            else:
                book = bq.LOADERS[name](args.cache, args.generator_rows)
            print(f"{book.name}:", flush=True)
            by_model: dict[str, list[tuple[float, float]]] = {}
            for seed in range(args.seeds):
                for row in run_seed(book, seed, run, cv):
                    key = "trial" if row["model"].startswith("trial") else row["model"]
                    if "(pick)" in row["model"]:
                        by_model.setdefault("tuner's pick", []).append((row["cv"], row["test"]))
                    by_model.setdefault(key, []).append((row["cv"], row["test"]))
            print(f"\n| {book.name} | mean cv AUC | mean test AUC |\n|---|---|---|")
            for model, pairs in by_model.items():
                cv_mean, test_mean = np.mean(pairs, axis=0)
                print(
                    f"| {model if model != 'trial' else 'every trial'} "
                    f"| {cv_mean:.4f} | {test_mean:.4f} |"
                )
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
