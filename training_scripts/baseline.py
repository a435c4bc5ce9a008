"""A logistic-regression baseline fitted in the evaluation job: "a model worse than logistic
regression does not ship".

Fitted on the encoded rows the candidate trained on (the manifest's columns: numbers as
they are, categories as codes): numbers get a median fill, a missing-value indicator and
scaling; category codes are one-hot encoded, missing as a category of its own. The inverse
regularisation C is chosen by stratified k-fold cross-validation on log loss, as
scikit-learn's LogisticRegressionCV does. Above `max_rows`, a seeded stratified sample is
fitted: a baseline needs no more, and the evaluation job stays fast on large books.

Runs in the sagemaker-xgboost 3.0-5 image (scikit-learn 1.5.2 is there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_ROWS = 20_000
CS = (0.001, 0.01, 0.1, 1.0, 10.0)
FOLDS = 3


@dataclass(frozen=True)
class Baseline:
    scores: np.ndarray  # P(positive) on the rows asked for
    C: float
    rows: int  # rows fitted


def _sample(labels: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = []
    for value in (0.0, 1.0):
        index = np.flatnonzero(labels == value)
        share = max(1, round(max_rows * len(index) / len(labels)))
        picked.append(rng.choice(index, size=min(share, len(index)), replace=False))
    return np.sort(np.concatenate(picked))


@dataclass(frozen=True)
class FittedLogistic:
    model: Any  # a scikit-learn pipeline: impute, scale / one-hot, LogisticRegressionCV
    C: float
    rows: int  # rows fitted

    def scores(self, features: np.ndarray) -> np.ndarray:
        """P(positive) per row; score in batches to bound memory."""
        return self.model.predict_proba(features)[:, 1]


def fit_logistic(
    labels: np.ndarray,
    features: np.ndarray,
    score_features: np.ndarray,
    categorical: list[bool],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> Baseline:
    """Fit on (labels, features); return its probabilities on score_features."""
    fitted = fit(labels, features, categorical, max_rows=max_rows, seed=seed)
    return Baseline(scores=fitted.scores(score_features), C=fitted.C, rows=fitted.rows)


def fit(
    labels: np.ndarray,
    features: np.ndarray,
    categorical: list[bool],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    cs: Sequence[float] = CS,
) -> FittedLogistic:
    """The baseline fitted on (labels, features), or a seeded stratified sample of them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rows = _sample(labels, max_rows, seed)
    kinds = np.asarray(categorical, dtype=bool)
    numbers, codes = np.flatnonzero(~kinds), np.flatnonzero(kinds)
    parts = []
    if len(numbers):
        parts.append(
            (
                "numerical",
                make_pipeline(
                    # keep_empty_features: a column all missing in the sample stays a column
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numbers,
            )
        )
    if len(codes):
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
                    # a code the sample never saw scores as no category at all
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                codes,
            )
        )
    folds = int(min(FOLDS, np.bincount(labels[rows].astype(np.int64), minlength=2).min()))
    model = make_pipeline(
        ColumnTransformer(parts),
        LogisticRegressionCV(
            Cs=list(cs),
            cv=StratifiedKFold(max(folds, 2), shuffle=True, random_state=seed),
            scoring="neg_log_loss",
            max_iter=2000,
        ),
    )
    model.fit(features[rows], labels[rows])
    return FittedLogistic(model=model, C=float(model[-1].C_[0]), rows=int(len(rows)))
