"""training_scripts/cross_validation.py against XGBoost's own xgb.cv, on real data."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from training_scripts.cross_validation import cross_validate, stratified_folds


def test_cross_validation_matches_xgboost_cv_on_the_same_folds() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 6))
    labels = (rng.random(500) < 1 / (1 + np.exp(-(x @ np.linspace(-1, 1, 6) - 0.8)))) * 1.0
    dmatrix = xgb.DMatrix(x, label=labels)
    fold = stratified_folds(labels, 5, seed=1)
    # stratified: each fold holds a fifth of each class, give or take one row
    for value in (0, 1):
        sizes = np.bincount(fold[labels == value], minlength=5)
        assert sizes.max() - sizes.min() <= 1
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.3, "seed": 0}

    result = cross_validate(
        params, dmatrix, fold, 5, 60, early_stopping_rounds=None, maximize=False
    )

    pairs = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(5)]
    history = xgb.cv(params, dmatrix, 60, folds=pairs, as_pandas=False)
    means = history["test-logloss-mean"]
    assert result.rounds == int(np.argmin(means)) + 1 < 60
    assert result.score == pytest.approx(min(means))


def test_each_host_starts_its_deal_at_another_fold() -> None:
    # a host with two rows would otherwise put both in folds 0 and 1, as would every host
    labels = np.array([0.0, 1.0, 0.0, 1.0])
    ranks = [stratified_folds(labels, 5, seed=0, offset=rank) for rank in (0, 1, 2)]
    assert sorted(ranks[0]) == [0, 0, 1, 1]
    assert list(ranks[1]) == list((ranks[0] + 1) % 5)
    assert list(ranks[2]) == list((ranks[0] + 2) % 5)


def test_out_of_fold_margins_come_from_the_model_that_left_each_row_out() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 4))
    labels = (rng.random(400) < 1 / (1 + np.exp(-(x @ np.array([1.0, -1.0, 0.5, 0.0]))))) * 1.0
    dmatrix = xgb.DMatrix(x, label=labels)
    fold = stratified_folds(labels, 4, seed=2)
    params = {"objective": "binary:logistic", "eval_metric": "auc", "eta": 0.3, "seed": 0}

    result = cross_validate(params, dmatrix, fold, 4, 80, early_stopping_rounds=5, maximize=True)

    assert result.out_of_fold.shape == (400,)
    for f in range(4):
        rest, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        alone = xgb.train(params, dmatrix.slice(rest), num_boost_round=result.rounds)
        expected = alone.predict(dmatrix.slice(held), output_margin=True)
        np.testing.assert_allclose(result.out_of_fold[held], expected, rtol=1e-6, atol=1e-6)


def test_a_stopping_metric_picks_the_round_and_the_score_is_eval_metric_at_it() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(600, 5))
    labels = (rng.random(600) < 1 / (1 + np.exp(-(x @ np.linspace(-1, 1, 5) - 1.0)))) * 1.0
    dmatrix = xgb.DMatrix(x, label=labels)
    fold = stratified_folds(labels, 4, seed=3)
    params = {"objective": "binary:logistic", "eval_metric": "auc", "eta": 0.3, "seed": 0}

    result = cross_validate(
        params,
        dmatrix,
        fold,
        4,
        80,
        early_stopping_rounds=None,
        maximize=True,
        stopping_metric="logloss",
        stopping_maximize=False,
    )

    pairs = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(4)]
    history = xgb.cv(
        {**params, "eval_metric": ["auc", "logloss"]}, dmatrix, 80, folds=pairs, as_pandas=False
    )
    best = int(np.argmin(history["test-logloss-mean"]))
    assert result.rounds == best + 1
    assert best != int(np.argmax(history["test-auc-mean"]))  # the two metrics disagree here
    assert result.score == pytest.approx(history["test-auc-mean"][best])
    assert result.std == pytest.approx(history["test-auc-std"][best])
