"""k-fold cross-validation inside a training job, for data too small for one validation set.

On a few thousand rows a 15 % validation set holds a few hundred, and early stopping on it
picks the round where noise peaked (seen: round 3, a four-tree model). Below a configured
size, train.py instead scores the hyperparameters by the mean held-out metric over k
stratified folds of train + validation, and trains the final model on all of those rows
for the rounds the folds chose. Same code on one host and on several: each host deals its
own rows into the folds, and XGBoost's collective sums the histograms and the metrics, so
every host sees the same fold scores and stops at the same round.

Runs in the sagemaker-xgboost 3.0-5 image (Python 3.10, numpy, xgboost).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb


@dataclass(frozen=True)
class CvResult:
    folds: int
    rounds: int  # boosting rounds at the best mean held-out score
    score: float  # mean over the folds at that round
    std: float  # standard deviation over the folds at that round
    # the stopping metric's mean at that round (eval_metric's, without a stopping metric)
    stopping_score: float = math.nan
    # per row of `data`: the margin (log-odds) its fold's model gave it at `rounds` rounds,
    # from a model that never trained on it
    out_of_fold: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)


def stratified_folds(labels: np.ndarray, folds: int, seed: int, offset: int = 0) -> np.ndarray:
    """The fold of each row: each class dealt round-robin over the folds in a seeded order.

    `offset` (the host's rank) starts each host's deal at another fold, so the folds stay
    balanced in size when every host holds a few rows only.
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for value in (0.0, 1.0):
        index = np.flatnonzero(labels == value)
        rng.shuffle(index)
        fold[index] = (np.arange(len(index)) + offset) % folds
    return fold


def cross_validate(
    params: Mapping[str, Any],
    data: xgb.DMatrix,
    fold: np.ndarray,
    folds: int,
    num_round: int,
    *,
    early_stopping_rounds: int | None,
    maximize: bool,
    stopping_metric: str | None = None,
    stopping_maximize: bool = False,
) -> CvResult:
    """Train the k fold models round by round; the best round by the mean held-out metric,
    and each row's out-of-fold margin at that round.

    With `stopping_metric` (another metric than params' eval_metric), that metric's mean
    picks the round and stops early, and the result's score is eval_metric's mean at that
    round. On a few hundred positives a fold's AUC moves in steps and peaks early by
    chance; log loss is smooth (measured: bench/bench_quality.py).

    What xgb.cv does, written out because xgb.cv refuses to run on several hosts: every
    host updates the same fold models in the same order, each update and each metric a
    collective operation, so the hosts agree on every score and on when to stop.
    """
    metric = str(params["eval_metric"])
    stop = stopping_metric if stopping_metric and stopping_metric != metric else None
    if stop is None:
        stopping_maximize = maximize
    pattern = re.compile(rf"test-{re.escape(metric)}:(\S+)")
    stop_pattern = re.compile(rf"test-{re.escape(stop or metric)}:(\S+)")
    booster_params = {**params, "eval_metric": [metric, stop] if stop else metric}
    packs = []
    for f in range(folds):
        train = data.slice(np.flatnonzero(fold != f))
        test = data.slice(np.flatnonzero(fold == f))
        packs.append((xgb.Booster(booster_params, [train, test]), train, test))
    # (round, stopping metric's mean, eval_metric's mean, its std)
    best = (-1, -math.inf if stopping_maximize else math.inf, math.nan, 0.0)
    for iteration in range(num_round):
        scores, stops = [], []
        for booster, train, test in packs:
            booster.update(train, iteration)
            line = booster.eval_set([(test, "test")], iteration)
            found, stopped = pattern.search(line), stop_pattern.search(line)
            scores.append(float(found.group(1)) if found else math.nan)
            stops.append(float(stopped.group(1)) if stopped else math.nan)
        watched = float(np.mean(stops))
        better = watched > best[1] if stopping_maximize else watched < best[1]
        if not math.isnan(watched) and better:
            best = (iteration, watched, float(np.mean(scores)), float(np.std(scores)))
        if early_stopping_rounds is not None and iteration - best[0] >= early_stopping_rounds:
            break
    if best[0] < 0 or math.isnan(best[2]):
        missing = stop if best[0] < 0 and stop else metric
        raise ValueError(f"cross-validation gave no {missing} score (a fold with one class?)")
    rounds = best[0] + 1
    out_of_fold = np.empty(data.num_row(), dtype=np.float64)
    for f, (booster, _, test) in enumerate(packs):
        out_of_fold[fold == f] = booster.predict(
            test, output_margin=True, iteration_range=(0, rounds)
        )
    return CvResult(
        folds=folds,
        rounds=rounds,
        score=best[2],
        std=best[3],
        stopping_score=best[1],
        out_of_fold=out_of_fold,
    )
