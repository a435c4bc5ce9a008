"""training_scripts/linear_margin.py: the regression the booster starts from, as a linear map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from training_scripts import baseline, linear_margin

CATEGORICAL = [False, True, False, True]


def book(rows: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two numbers on very different scales, two category codes, values missing in each."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=rows) * 100,
            rng.integers(0, 4, rows).astype(float),
            rng.normal(size=rows),
            rng.integers(0, 3, rows).astype(float),
        ]
    )
    X[rng.random(rows) < 0.1, 0] = np.nan
    X[rng.random(rows) < 0.05, 1] = np.nan
    logits = np.nan_to_num(X[:, 0]) / 100 + (X[:, 1] == 2) - 0.5 * X[:, 2] + np.isnan(X[:, 0])
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(float)
    return X, y


@pytest.fixture(scope="module")
def fitted() -> tuple[baseline.FittedLogistic, linear_margin.LinearMargin, np.ndarray]:
    X, y = book()
    fit = baseline.fit(y, X, CATEGORICAL)
    return fit, linear_margin.from_baseline(fit, X, CATEGORICAL), X


def test_the_map_gives_the_regressions_own_log_odds(fitted) -> None:
    fit, linear, X = fitted
    np.testing.assert_allclose(linear.margin(X), fit.model.decision_function(X), atol=1e-9)
    # an unseen code and a missing one score as the baseline scores them
    odd = X[:4].copy()
    odd[0, 1], odd[1, 3], odd[2, 0], odd[3, 1] = 7.0, np.nan, np.nan, np.nan
    np.testing.assert_allclose(linear.margin(odd), fit.model.decision_function(odd), atol=1e-9)
    assert linear.fitted_on == {"rows": 3000, "C": fit.C, "method": "logistic"}


def test_each_features_share_is_centred_on_the_fitted_rows_and_the_shares_add_up(
    fitted,
) -> None:
    _, linear, X = fitted
    shares, constant = linear.contributions(X, 4)
    np.testing.assert_allclose(shares.sum(axis=1) + constant, linear.margin(X), atol=1e-9)
    np.testing.assert_allclose(shares.mean(axis=0), 0.0, atol=1e-9)
    # the first number moves the odds most: its share varies most
    assert np.argmax(shares.std(axis=0)) == 0


def test_the_document_round_trips_through_the_model_directory(fitted, tmp_path: Path) -> None:
    _, linear, X = fitted
    assert linear_margin.load(tmp_path) is None  # a model trained from its base score
    path = linear_margin.save(linear, tmp_path)
    assert path == tmp_path / linear_margin.LINEAR_MARGIN_FILE
    again = linear_margin.load(tmp_path)
    assert again is not None and again.width == 4
    np.testing.assert_array_equal(again.margin(X), linear.margin(X))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a boostline-linear-margin document"),
        (lambda d: d.update(version=2), "this code reads version 1"),
        (lambda d: d.update(intercept=float("nan")), "intercept must be a finite number"),
        (lambda d: d["features"][0].update(kind="ordinal"), "kind must be 'number'"),
        (lambda d: d["features"][0].update(weight=float("inf")), "finite numbers"),
        # the numbers come first, then the categories
        (lambda d: d["features"][2].update(codes=[0, 1]), "codes and weights of one length"),
        (lambda d: d["features"][2]["codes"].__setitem__(0, -3), "non-negative integers"),
        (lambda d: d["features"][1].update(column=-1), "column must be a non-negative"),
    ],
)
def test_a_document_this_code_cannot_apply_is_refused(
    fitted, tmp_path: Path, change, message: str
) -> None:
    _, linear, _ = fitted
    document = json.loads(json.dumps(linear.to_json()))
    change(document)
    (tmp_path / "boostline").mkdir()
    (tmp_path / linear_margin.LINEAR_MARGIN_FILE).write_text(json.dumps(document))
    with pytest.raises(linear_margin.LinearMarginError, match=message):
        linear_margin.load(tmp_path)


def test_a_file_that_is_not_json_is_refused_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "boostline").mkdir()
    (tmp_path / linear_margin.LINEAR_MARGIN_FILE).write_text("{")
    with pytest.raises(linear_margin.LinearMarginError, match="not JSON"):
        linear_margin.load(tmp_path)


def test_shap_shares_move_from_the_bias_to_the_features_and_the_rows_still_sum(fitted) -> None:
    _, linear, X = fitted
    y = (np.nan_to_num(X[:, 2]) > 0).astype(float)
    start = linear.margin(X)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(X, label=y, base_margin=start),
        5,
    )
    scored = xgb.DMatrix(X[:50], base_margin=start[:50])
    raw = booster.predict(scored, pred_contribs=True)
    margin = booster.predict(scored, output_margin=True)
    moved = linear_margin.with_shares(raw, linear, X[:50])
    np.testing.assert_allclose(moved.sum(axis=1), margin, atol=1e-4)
    shares, _ = linear.contributions(X[:50], 4)
    np.testing.assert_allclose(moved[:, :-1], raw[:, :-1] + shares, atol=1e-6)
    # the bias is the same for every row again: the booster's expectation plus the intercept
    assert np.ptp(moved[:, -1]) < 1e-4
