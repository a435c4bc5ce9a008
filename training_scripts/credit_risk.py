"""Credit-risk staples of the evaluation: Gini, gains/lift by decile, score PSI, cost curve,
and where the gain and SHAP rankings of the features disagree.

Pure numpy, so it runs in the SageMaker XGBoost image (Python 3.10) and here alike.
Every function is linear or n log n in the test rows: cheap on a million of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

PSI_STABLE = 0.1  # below: no real shift
PSI_SIGNIFICANT = 0.25  # at or above: the score population has moved
PSI_FLOOR = 1e-4  # a share of zero in a bin would make the log infinite
Z95 = 1.959964


def gini(auc: float, auc_standard_deviation: float | None = None) -> dict[str, Any]:
    """Gini = 2 AUC - 1, with a normal 95 % interval from the AUC's bootstrap spread."""
    value = 2.0 * auc - 1.0
    out: dict[str, Any] = {"value": value, "definition": "2 x ROC-AUC - 1"}
    if auc_standard_deviation is not None:
        spread = 2.0 * auc_standard_deviation
        out["standard_deviation"] = spread
        out["interval_95"] = [max(-1.0, value - Z95 * spread), min(1.0, value + Z95 * spread)]
    return out


def gains_table(labels: np.ndarray, scores: np.ndarray, groups: int = 10) -> dict[str, Any]:
    """Rows ranked by score, highest risk first, cut into `groups` bands of near-equal size.

    Per band: rows, defaults, default rate, score range, the cumulative share of all
    defaults captured down to it, and the lift (band default rate / overall rate).
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(labels)
    if n == 0:
        raise ValueError("gains table of no rows")
    groups = max(1, min(groups, n))
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order], scores[order]
    total_defaults = float(y.sum())
    overall = total_defaults / n
    bounds = np.linspace(0, n, groups + 1).round().astype(np.int64)
    rows_out = []
    captured = seen = 0.0
    for k in range(groups):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        count = hi - lo
        defaults = float(y[lo:hi].sum())
        captured += defaults
        seen += count
        rate = defaults / count if count else 0.0
        rows_out.append(
            {
                "decile": k + 1,
                "rows": count,
                "defaults": int(defaults),
                "default_rate": rate,
                "min_score": float(s[hi - 1]) if count else None,
                "max_score": float(s[lo]) if count else None,
                "cumulative_rows_share": seen / n,
                "cumulative_defaults_captured": captured / total_defaults
                if total_defaults
                else 0.0,
                "lift": rate / overall if overall else None,
                "cumulative_lift": (captured / seen) / overall if overall and seen else None,
            }
        )
    return {
        "groups": groups,
        "ranked_by": "predicted probability of default, highest first",
        "overall_default_rate": overall,
        "deciles": rows_out,
    }


def score_psi(
    training_scores: np.ndarray, test_scores: np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """Population stability index of the test scores against the training rows' scores.

    Bins: deciles of the training scores (fewer where scores tie), each (lower, upper].
    PSI = sum over bins of
    (test share - training share) x ln(test share / training share); shares of zero are
    floored at 1e-4.
    """
    expected = np.asarray(training_scores, dtype=np.float64)
    actual = np.asarray(test_scores, dtype=np.float64)
    if len(expected) == 0 or len(actual) == 0:
        raise ValueError("PSI needs scores on both sides")
    # Edges are training scores themselves and a bin holds scores up to its edge, so tied
    # scores share one bin and no bin is empty on the training side.
    inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1], method="lower"))
    inner = inner[inner < expected.max()]
    e_counts = np.bincount(np.searchsorted(inner, expected, side="left"), minlength=len(inner) + 1)
    a_counts = np.bincount(np.searchsorted(inner, actual, side="left"), minlength=len(inner) + 1)
    e_share = np.maximum(e_counts / len(expected), PSI_FLOOR)
    a_share = np.maximum(a_counts / len(actual), PSI_FLOOR)
    terms = (a_share - e_share) * np.log(a_share / e_share)
    value = float(terms.sum())
    edges = [-math.inf, *inner.tolist(), math.inf]
    return {
        "value": value,
        "reading": psi_reading(value),
        "bins_from": "deciles of the training rows' scores",
        "training_rows": int(len(expected)),
        "test_rows": int(len(actual)),
        "bins": [
            {
                "lower": None if not math.isfinite(edges[i]) else float(edges[i]),
                "upper": None if not math.isfinite(edges[i + 1]) else float(edges[i + 1]),
                "training_share": float(e_counts[i] / len(expected)),
                "test_share": float(a_counts[i] / len(actual)),
                "contribution": float(terms[i]),
            }
            for i in range(len(e_counts))
        ],
    }


def psi_reading(value: float) -> str:
    if value < PSI_STABLE:
        return "stable (PSI below 0.1)"
    if value < PSI_SIGNIFICANT:
        return "moderate shift (PSI 0.1 to 0.25): worth a look"
    return "significant shift (PSI 0.25 or more): the score population has moved"


def cost_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    cost_false_negative: float,
    cost_false_positive: float,
    chosen_threshold: float,
    points: int = 101,
) -> dict[str, Any]:
    """Expected cost per application when P(default) >= t is flagged, over thresholds t.

    The thresholds are an even grid on [0, 1] merged with quantiles of the scores (scores
    of a rare event crowd near 0, where an even grid alone is too coarse), plus the chosen
    threshold, whose point is marked.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    positive = np.sort(scores[labels])
    negative = np.sort(scores[~labels])
    grid = np.unique(
        np.r_[
            np.linspace(0.0, 1.0, points),
            np.quantile(scores, np.linspace(0.0, 1.0, points)),
            chosen_threshold,
        ]
    )
    caught = len(positive) - np.searchsorted(positive, grid, side="left")
    false_alarms = len(negative) - np.searchsorted(negative, grid, side="left")
    missed = len(positive) - caught
    cost = (cost_false_negative * missed + cost_false_positive * false_alarms) / n
    approval = 1.0 - (caught + false_alarms) / n
    at = int(np.searchsorted(grid, chosen_threshold))
    best = int(np.argmin(cost))
    return {
        "cost_false_negative": cost_false_negative,
        "cost_false_positive": cost_false_positive,
        "per": "application",
        "thresholds": [round(float(t), 6) for t in grid],
        "expected_cost": [round(float(c), 6) for c in cost],
        "approval_rate": [round(float(a), 6) for a in approval],
        "chosen": {
            "threshold": float(chosen_threshold),
            "expected_cost": float(cost[at]),
            "approval_rate": float(approval[at]),
        },
        "lowest_on_curve": {
            "threshold": float(grid[best]),
            "expected_cost": float(cost[best]),
            "approval_rate": float(approval[best]),
        },
        "approve_everyone": float(cost_false_negative * len(positive) / n),
        "decline_everyone": float(cost_false_positive * len(negative) / n),
    }


def _ranks(values: dict[str, float], names: list[str]) -> dict[str, int]:
    """1 = most important; ties share the order of `names`."""
    ordered = sorted(names, key=lambda k: (-values.get(k, 0.0), names.index(k)))
    return {name: i + 1 for i, name in enumerate(ordered)}


def ranking_disagreements(
    names: list[str],
    gain: dict[str, float],
    mean_abs_shap: dict[str, float],
    splits: dict[str, float],
    cover: dict[str, float],
    correlated: Callable[[str], tuple[str, float] | None] | None = None,
    min_rank_gap: int | None = None,
) -> dict[str, Any]:
    """Features whose rank by average gain per split and by mean |SHAP| differ by a lot.

    `splits` is XGBoost's "weight" (the number of splits on the feature), `cover` its
    average rows per split; `correlated(name)` gives the most correlated other feature and
    the rank correlation with it (or None), asked only for the features that disagree.
    Each disagreement gets a reason a risk analyst can read.
    """
    n = len(names)
    gap_needed = min_rank_gap if min_rank_gap is not None else max(3, math.ceil(n / 4))
    gain_rank = _ranks(gain, names)
    shap_rank = _ranks(mean_abs_shap, names)
    used = [k for k in names if splits.get(k, 0.0) > 0]
    median_splits = float(np.median([splits[k] for k in used])) if used else 0.0
    median_cover = float(np.median([cover.get(k, 0.0) for k in used])) if used else 0.0
    found = []
    for name in names:
        gap = gain_rank[name] - shap_rank[name]  # > 0: SHAP ranks it higher than gain does
        if abs(gap) < gap_needed:
            continue
        reasons = []
        n_splits, rows_per_split = splits.get(name, 0.0), cover.get(name, 0.0)
        if n_splits == 0:
            reasons.append("never split on: no gain, and any SHAP value is rounding")
        elif gap < 0:
            if rows_per_split < median_cover:
                reasons.append(
                    f"its splits are strong but reach few rows ({rows_per_split:.0f} per split "
                    f"against a median of {median_cover:.0f}): high gain, small average effect"
                )
            if n_splits < median_splits:
                reasons.append(
                    f"used in few splits ({n_splits:.0f} against a median of "
                    f"{median_splits:.0f}): each one gains much, but they add up to little"
                )
        else:
            if n_splits > median_splits:
                reasons.append(
                    f"used in many splits ({n_splits:.0f} against a median of "
                    f"{median_splits:.0f}), each gaining little: small effects on many "
                    "rows add up"
                )
            if rows_per_split > median_cover:
                reasons.append(
                    f"its splits reach many rows ({rows_per_split:.0f} per split against a "
                    f"median of {median_cover:.0f}): modest gain, broad effect"
                )
        partner = correlated(name) if correlated is not None else None
        if partner is not None and abs(partner[1]) >= 0.5:
            reasons.append(
                f"correlated with {partner[0]} (rank correlation {partner[1]:.2f} on the test "
                "rows): the trees split on one or the other, so gain and effect are shared "
                "between them"
            )
        if not reasons:
            reasons.append(
                "gain measures the loss reduction at the splits, SHAP the effect on each "
                "row's score; here they weigh the feature differently without one clear cause"
            )
        found.append(
            {
                "feature": name,
                "gain_rank": gain_rank[name],
                "shap_rank": shap_rank[name],
                "rank_gap": gap,
                "splits": n_splits,
                "rows_per_split": rows_per_split,
                "reasons": reasons,
            }
        )
    found.sort(key=lambda d: -abs(d["rank_gap"]))
    return {
        "min_rank_gap": gap_needed,
        "gain_ranks": gain_rank,
        "shap_ranks": shap_rank,
        "disagreements": found,
    }
