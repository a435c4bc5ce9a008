"""training_scripts/baseline.py: the logistic-regression baseline of the evaluation job."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from training_scripts.baseline import fit_logistic


def _book(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One number and one category code whose risk is not monotone in the code."""
    rng = np.random.default_rng(seed)
    number = rng.normal(size=rows)
    code = rng.integers(0, 4, rows).astype(np.float64)
    logit = 0.8 * number + np.array([-1.5, 1.5, -1.5, 1.5])[code.astype(int)] - 0.5
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    features = np.column_stack([number, code])
    features[rng.random(rows) < 0.1, 0] = np.nan  # missing numbers are filled, not fatal
    features[rng.random(rows) < 0.05, 1] = np.nan  # a missing category is a category
    return labels, features


def test_category_codes_are_one_hot_encoded() -> None:
    labels, features = _book(3000, seed=1)
    test_labels, test_features = _book(2000, seed=2)

    fitted = fit_logistic(labels, features, test_features, [False, True])
    as_numbers = fit_logistic(labels, features, test_features, [False, False])

    # the code's risk alternates 0,1,0,1: only one-hot encoding can follow it
    assert roc_auc_score(test_labels, fitted.scores) > 0.8
    assert roc_auc_score(test_labels, as_numbers.scores) < 0.75
    assert abs(fitted.scores.mean() - test_labels.mean()) < 0.03
    assert fitted.rows == 3000 and fitted.C > 0


def test_a_large_book_is_fitted_on_a_stratified_sample() -> None:
    labels, features = _book(5000, seed=3)
    fitted = fit_logistic(labels, features, features[:10], [False, True], max_rows=1000)
    assert fitted.rows == 1000 and fitted.scores.shape == (10,)
