"""training_scripts/calibration.py against scikit-learn's fits, and its choice on held-out rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from training_scripts import calibration as cal


def overconfident(rows: int, seed: int, slope: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose logit is 1/slope times the true log-odds (slope < 1: overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=rows) * 2.5
    labels = (rng.random(rows) < cal.sigmoid(slope * z - 1.0)).astype(np.float64)
    return cal.sigmoid(z), labels


def test_isotonic_matches_scikit_learn() -> None:
    p, y = overconfident(3000, seed=1)
    ours = cal.fit("isotonic", p, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    grid = np.random.default_rng(2).random(2000)
    np.testing.assert_allclose(ours.apply(grid), theirs.predict(grid), atol=1e-12)
    np.testing.assert_allclose(ours.apply(p), theirs.predict(p), atol=1e-12)


def test_centred_isotonic_keeps_the_order_between_its_first_and_last_knot() -> None:
    p, y = overconfident(3000, seed=10)
    plain = cal.fit_isotonic(p, y)
    knots = cal.fit_isotonic(p, y, centred=True)
    x, level = np.array(knots["x"]), np.array(knots["y"])
    assert np.all(np.diff(x) > 0) and np.all(np.diff(level) > 0)
    assert sorted(set(level)) == sorted(set(plain["y"]))  # the same blocks, the same levels
    inside = np.sort(p[(p > x[0]) & (p < x[-1])])
    calibrated = cal.Calibrator("isotonic", knots).apply(inside)
    assert np.all(np.diff(calibrated)[np.diff(inside) > 0] > 0)
    tied = cal.Calibrator("isotonic", plain).apply(inside)
    assert len(np.unique(tied)) < len(np.unique(calibrated))


def test_platt_matches_a_logistic_regression_on_the_logit_with_platt_targets() -> None:
    p, y = overconfident(2000, seed=3)
    ours = cal.fit_platt(p, y)
    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    z = np.log(p / (1 - p))
    lr = LogisticRegression(C=1e12, tol=1e-10, max_iter=1000).fit(
        np.r_[z, z][:, None], np.r_[np.ones(len(z)), np.zeros(len(z))], np.r_[target, 1 - target]
    )
    assert ours["a"] == pytest.approx(lr.coef_[0, 0], abs=1e-4)
    assert ours["b"] == pytest.approx(lr.intercept_[0], abs=1e-4)
    assert ours["a"] == pytest.approx(0.5, abs=0.06)  # the slope the scores were drawn with


def test_platt_converges_where_plain_newton_overshoots() -> None:
    # saturated scores on few rows: undamped Newton steps run off to |a| ~ 1e9 here
    rng = np.random.default_rng(0)
    z = rng.normal(size=30) * 12
    y = (rng.random(30) < cal.sigmoid(0.3 * z)).astype(np.float64)
    fitted = cal.fit_platt(cal.sigmoid(z), y)
    assert 0 < fitted["a"] < 5
    # at the optimum the log-loss gradient against Platt's targets vanishes
    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    logit = np.log(np.clip(cal.sigmoid(z), 1e-7, 1 - 1e-7))
    logit -= np.log1p(-np.clip(cal.sigmoid(z), 1e-7, 1 - 1e-7))
    residual = cal.sigmoid(fitted["a"] * logit + fitted["b"]) - target
    assert abs(residual @ logit) < 1e-6 and abs(residual.sum()) < 1e-6


def test_choose_calibrates_overconfident_scores_and_it_holds_on_new_rows() -> None:
    p, y = overconfident(4000, seed=4)
    fold = np.arange(len(y)) % 5
    chosen = cal.choose(p, y, fold, source="out_of_fold")
    assert chosen.method in ("platt", "isotonic")
    scores = chosen.selection["scores"]
    assert scores[chosen.method]["log_loss"] < scores["identity"]["log_loss"]
    assert chosen.fitted_on == {"source": "out_of_fold", "rows": 4000, "positives": int(y.sum())}
    fresh_p, fresh_y = overconfident(4000, seed=5)
    calibrated = chosen.apply(fresh_p)
    assert cal.log_loss(fresh_y, calibrated) < 0.9 * cal.log_loss(fresh_y, fresh_p)
    assert cal.brier(fresh_y, calibrated) < cal.brier(fresh_y, fresh_p)
    assert abs(calibrated.mean() - fresh_y.mean()) < 0.02


def test_choose_keeps_identity_for_scores_that_are_already_probabilities() -> None:
    p, y = overconfident(4000, seed=6, slope=1.0)
    p = cal.sigmoid(np.log(p / (1 - p)) - 1.0)  # the true probability itself
    chosen = cal.choose(p, y, np.arange(len(y)) % 5, source="validation")
    assert chosen.method == "identity"
    assert chosen.apply(p) == pytest.approx(p)


def test_choose_among_the_given_methods_only() -> None:
    p, y = overconfident(1000, seed=7)
    chosen = cal.choose(p, y, np.arange(len(y)) % 4, ("platt",), source="validation")
    assert chosen.method == "platt" and set(chosen.selection["scores"]) == {"platt"}


def test_apply_keeps_the_shape_the_order_and_the_unit_interval() -> None:
    p, y = overconfident(2000, seed=8)
    grid = np.array([0.0, 1e-9, 0.01, 0.3, 0.5, 0.9, 1.0], dtype=np.float32)
    for method in cal.METHODS:
        calibrator = cal.fit(method, p, y)
        out = calibrator.apply(grid)
        assert out.shape == grid.shape and out.dtype == np.float64
        assert np.all(np.diff(out) >= 0) and np.all((out >= 0) & (out <= 1))
        assert calibrator.apply(grid[:1]).shape == (1,)
        assert calibrator.apply(grid.reshape(7, 1)).shape == (7, 1)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    assert cal.load(tmp_path) is None  # an older model: no calibration
    p, y = overconfident(1500, seed=9)
    for method in cal.METHODS:
        fitted = cal.choose(p, y, np.arange(len(y)) % 3, (method,), source="out_of_fold")
        path = cal.save(fitted, tmp_path)
        assert path == tmp_path / "boostline" / "calibration.json"
        document = json.loads(path.read_text())
        assert document["format"] == "boostline-calibration" and document["version"] == 1
        loaded = cal.load(tmp_path)
        assert loaded is not None and loaded.method == method
        np.testing.assert_array_equal(loaded.apply(p), fitted.apply(p))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2; this code reads version 1"),
        ({"format": "other"}, "not a boostline-calibration document"),
        ({"method": "beta"}, "unknown calibration method 'beta'"),
        ({"params": {"a": 1.0}}, "platt calibration needs numbers a and b"),
        ({"method": "isotonic", "params": {"x": [0.2, 0.1], "y": [0.1, 0.2]}}, "non-decreasing"),
        ({"method": "isotonic", "params": {"x": [0.1], "y": [0.1, 0.2]}}, "one length"),
    ],
)
def test_a_calibration_that_cannot_be_applied_fails_loading(
    tmp_path: Path, change: dict, message: str
) -> None:
    document = cal.Calibrator("platt", {"a": 1.0, "b": 0.0}).to_json() | change
    (tmp_path / "boostline").mkdir()
    (tmp_path / cal.CALIBRATION_FILE).write_text(json.dumps(document))
    with pytest.raises(cal.CalibrationError, match=message):
        cal.load(tmp_path)


def test_holdout_scores_are_label_and_probability_lines(tmp_path: Path) -> None:
    path = tmp_path / cal.HOLDOUT_FILE
    cal.write_holdout(path, np.array([1.0, 0.0]), np.array([0.1234567, 0.5]), np.array([0.2, 0.4]))
    assert path.read_text() == "1,0.123457,0.200000\n0,0.500000,0.400000\n"
    labels, calibrated, raw = cal.read_holdout(path)
    assert labels.tolist() == [1, 0] and calibrated.tolist() == [0.123457, 0.5]
    assert raw.tolist() == [0.2, 0.4]
    path.write_text("1,0.5\n")
    with pytest.raises(cal.CalibrationError, match="expected lines of label,probability"):
        cal.read_holdout(path)
