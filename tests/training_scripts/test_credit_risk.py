"""The credit-risk staples of the evaluation, on data whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training_scripts import credit_risk as cr


def test_gini_is_twice_the_auc_minus_one_with_its_interval() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.2
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1)
    auc = roc_auc_score(labels, scores)
    g = cr.gini(auc, 0.01)
    assert g["value"] == pytest.approx(2 * auc - 1)
    assert g["standard_deviation"] == pytest.approx(0.02)
    low, high = g["interval_95"]
    assert low == pytest.approx(g["value"] - 1.96 * 0.02, abs=1e-3)
    assert high == pytest.approx(g["value"] + 1.96 * 0.02, abs=1e-3)
    assert cr.gini(0.5)["value"] == 0.0 and "interval_95" not in cr.gini(0.5)
    assert cr.gini(1.0, 0.1)["interval_95"][1] == 1.0  # clipped to the range of a Gini


def test_gains_table_by_hand() -> None:
    # 20 rows, 4 defaults: the top two scores default, then one in each of two later bands
    scores = np.linspace(1.0, 0.05, 20)
    labels = np.zeros(20, dtype=np.int8)
    labels[[0, 1, 5, 12]] = 1
    table = cr.gains_table(labels, scores, groups=10)
    deciles = table["deciles"]
    assert [d["rows"] for d in deciles] == [2] * 10
    assert [d["defaults"] for d in deciles] == [2, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert deciles[0]["default_rate"] == 1.0
    assert deciles[0]["lift"] == pytest.approx(1.0 / 0.2)
    assert deciles[0]["cumulative_defaults_captured"] == pytest.approx(0.5)
    assert deciles[2]["cumulative_defaults_captured"] == pytest.approx(0.75)
    assert deciles[-1]["cumulative_defaults_captured"] == pytest.approx(1.0)
    assert deciles[-1]["cumulative_lift"] == pytest.approx(1.0)
    assert deciles[0]["max_score"] == 1.0 and deciles[0]["min_score"] == pytest.approx(scores[1])
    assert table["overall_default_rate"] == pytest.approx(0.2)


def test_gains_table_of_uneven_rows_uses_every_row() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(1003) < 0.1
    table = cr.gains_table(labels, rng.random(1003))
    assert sum(d["rows"] for d in table["deciles"]) == 1003
    assert {d["rows"] for d in table["deciles"]} <= {100, 101}
    assert sum(d["defaults"] for d in table["deciles"]) == int(labels.sum())


def test_psi_of_the_same_distribution_is_near_zero_and_of_a_shift_is_large() -> None:
    rng = np.random.default_rng(2)
    train = rng.beta(2, 8, 50_000)
    same = cr.score_psi(train, rng.beta(2, 8, 20_000))
    assert same["value"] < 0.01 and same["reading"].startswith("stable")
    assert len(same["bins"]) == 10
    assert [b["training_share"] for b in same["bins"]] == pytest.approx([0.1] * 10, abs=1e-3)
    shifted = cr.score_psi(train, rng.beta(4, 6, 20_000))
    assert shifted["value"] >= 0.25 and shifted["reading"].startswith("significant")
    # by hand: the contributions add up to the value and follow the formula
    b = shifted["bins"][0]
    expected = (b["test_share"] - b["training_share"]) * math.log(
        max(b["test_share"], 1e-4) / b["training_share"]
    )
    assert b["contribution"] == pytest.approx(expected)
    assert sum(x["contribution"] for x in shifted["bins"]) == pytest.approx(shifted["value"])


def test_psi_reading_boundaries() -> None:
    assert cr.psi_reading(0.0999).startswith("stable")
    assert cr.psi_reading(0.1).startswith("moderate")
    assert cr.psi_reading(0.2499).startswith("moderate")
    assert cr.psi_reading(0.25).startswith("significant")


def test_psi_with_tied_training_scores_merges_bins() -> None:
    train = np.r_[np.zeros(900), np.ones(100)]
    result = cr.score_psi(train, np.r_[np.zeros(500), np.ones(500)])
    assert len(result["bins"]) == 2
    expected = (0.5 - 0.9) * math.log(0.5 / 0.9) + (0.5 - 0.1) * math.log(0.5 / 0.1)
    assert result["value"] == pytest.approx(expected)


def test_cost_curve_matches_a_direct_count_and_marks_the_threshold() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(5000) < 0.15
    scores = np.clip(rng.normal(0.2 + 0.3 * labels, 0.15), 0, 1)
    curve = cr.cost_curve(labels, scores, 5.0, 1.0, chosen_threshold=0.3)
    for t, c in zip(curve["thresholds"][::17], curve["expected_cost"][::17], strict=True):
        flagged = scores >= t
        direct = (5.0 * (labels & ~flagged).sum() + 1.0 * (~labels & flagged).sum()) / 5000
        assert c == pytest.approx(direct, abs=1e-5)
    chosen = curve["chosen"]
    flagged = scores >= 0.3
    assert chosen["threshold"] == 0.3
    assert chosen["expected_cost"] == pytest.approx(
        (5.0 * (labels & ~flagged).sum() + (~labels & flagged).sum()) / 5000
    )
    assert chosen["approval_rate"] == pytest.approx(1 - flagged.mean())
    assert curve["lowest_on_curve"]["expected_cost"] == min(curve["expected_cost"])
    assert curve["approve_everyone"] == pytest.approx(5.0 * labels.mean())
    assert curve["expected_cost"][0] == pytest.approx(curve["decline_everyone"])  # t = 0


def test_disagreements_name_the_feature_and_why() -> None:
    names = ["a", "b", "c", "d", "e", "f", "g", "h"]
    # "rare": top by gain (big splits on few rows), last by SHAP; "broad" the other way
    gain = {"rare": 100.0, "a": 50, "b": 40, "c": 30, "d": 20, "e": 10, "broad": 1.0}
    shap = {"broad": 1.0, "a": 0.5, "b": 0.4, "c": 0.3, "d": 0.2, "e": 0.1, "rare": 0.001}
    names = ["rare", "a", "b", "c", "d", "e", "broad"]
    splits = {"rare": 2, "a": 20, "b": 20, "c": 20, "d": 20, "e": 20, "broad": 80}
    cover = {"rare": 5, "a": 100, "b": 100, "c": 100, "d": 100, "e": 100, "broad": 400}
    result = cr.ranking_disagreements(
        names, gain, shap, splits, cover, correlated={"broad": ("a", 0.8), "rare": ("b", 0.1)}.get
    )
    found = {d["feature"]: d for d in result["disagreements"]}
    assert set(found) == {"rare", "broad"}
    assert found["rare"]["gain_rank"] == 1 and found["rare"]["shap_rank"] == 7
    assert any("high gain, small average effect" in r for r in found["rare"]["reasons"])
    assert any("few splits" in r for r in found["rare"]["reasons"])
    assert not any("correlated" in r for r in found["rare"]["reasons"])  # 0.1 is weak
    assert any("many splits" in r for r in found["broad"]["reasons"])
    assert any("correlated with a" in r for r in found["broad"]["reasons"])


def test_agreeing_rankings_give_no_disagreement() -> None:
    names = [f"x{i}" for i in range(8)]
    values = {n: float(8 - i) for i, n in enumerate(names)}
    splits = dict.fromkeys(names, 10.0)
    result = cr.ranking_disagreements(names, values, values, splits, splits)
    assert result["disagreements"] == []
    assert result["min_rank_gap"] == 3
