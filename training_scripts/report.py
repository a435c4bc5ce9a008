"""The human-readable evaluation report: PNG plots, index.html and report.md.

Written for a credit-risk reader: what the model predicts and where it comes from
(lineage: run id, model package group and version, date, training rows and window,
hyperparameters and tuning trials), how well it ranks (Gini, gains and lift by decile),
whether the score population moved (PSI against training), where the decision threshold
sits and what it costs, what drives the scores and where gain and SHAP disagree, how
well calibrated they are, and how outcomes differ between groups. Everything comes from the
evaluation dict that evaluate.py writes as evaluation.json, plus the SHAP
sample for the summary plot. index.html is self-contained apart from the PNG
files beside it.

Runs in the SageMaker XGBoost image: numpy and matplotlib (Agg backend).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

TOP_FEATURES = 12
PLOTS = {
    "roc": "roc.png",
    "pr": "precision_recall.png",
    "confusion": "confusion_matrix.png",
    "calibration": "calibration.png",
    "shap": "shap_summary.png",
    "importance": "importance.png",
    "gains": "gains_lift.png",
    "psi": "score_psi.png",
    "cost": "cost_threshold.png",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f} %"


def _points(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f} percentage points"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------- plots


def plot_all(
    out: Path,
    evaluation: dict[str, Any],
    *,
    labels: np.ndarray,
    scores: np.ndarray,
    shap: dict[str, np.ndarray],
    names: list[str],
    kinds: list[str],
) -> dict[str, str]:
    """Write the PNGs; returns plot key -> file name (only those written)."""
    plt = _pyplot()
    metrics = evaluation["binary_classification_metrics"]
    threshold = evaluation["decision_threshold"]
    written: dict[str, str] = {}
    files = dict(PLOTS)

    def save(fig: Any, key: str) -> None:
        fig.tight_layout()
        fig.savefig(out / files[key], dpi=100)
        plt.close(fig)
        written[key] = files[key]

    roc = metrics["receiver_operating_characteristic_curve"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(
        roc["false_positive_rates"],
        roc["true_positive_rates"],
        lw=2,
        label=f"model (AUC {metrics['auc']['value']:.3f})",
    )
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="random")
    ax.scatter(
        [metrics["false_positive_rate"]["value"]],
        [metrics["recall"]["value"]],
        c="red",
        zorder=3,
        label=f"threshold {threshold:.3f}",
    )
    ax.set(
        xlabel="good loans flagged (false-positive rate)",
        ylabel="defaults caught (true-positive rate)",
        title="ROC curve",
    )
    ax.legend(loc="lower right")
    save(fig, "roc")

    pr = metrics["precision_recall_curve"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(
        pr["recalls"],
        pr["precisions"],
        lw=2,
        label=f"model (PR-AUC {metrics['pr_auc']['value']:.3f})",
    )
    ax.axhline(float(labels.mean()), ls="--", c="grey", label="default rate")
    ax.scatter(
        [metrics["recall"]["value"]],
        [metrics["precision"]["value"]],
        c="red",
        zorder=3,
        label=f"threshold {threshold:.3f}",
    )
    ax.set(
        xlabel="recall (defaults caught)",
        ylabel="precision (flagged that default)",
        title="Precision-recall curve",
        ylim=(0, 1.02),
    )
    ax.legend(loc="upper right")
    save(fig, "pr")

    cm = metrics["confusion_matrix"]
    grid = np.array([[cm["0"]["0"], cm["0"]["1"]], [cm["1"]["0"], cm["1"]["1"]]])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(grid, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{grid[i, j]:,}",
                ha="center",
                va="center",
                color="white" if grid[i, j] > grid.max() / 2 else "black",
                fontsize=13,
            )
    ax.set_xticks([0, 1], ["approved", "flagged"])
    ax.set_yticks([0, 1], ["repaid", "defaulted"])
    ax.set(
        xlabel="decision at the threshold",
        ylabel="actual outcome",
        title=f"Confusion matrix (threshold {threshold:.3f})",
    )
    save(fig, "confusion")

    cal = evaluation["calibration"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5, 5.5), height_ratios=(3, 1), sharex=True)
    xs = [b["mean_predicted"] for b in cal["bins"]]
    ys = [b["observed_rate"] for b in cal["bins"]]
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="perfect calibration")
    ax.plot(xs, ys, marker="o", label="model")
    ax.set(ylabel="observed default rate", title="Calibration (reliability)")
    ax.legend(loc="upper left")
    ax2.hist(scores, bins=40, range=(0, 1), color="tab:blue", alpha=0.7)
    ax2.axvline(threshold, c="red", lw=1)
    ax2.set(xlabel="predicted probability of default", ylabel="applications")
    save(fig, "calibration")

    if len(shap.get("contributions", [])):
        _shap_plot(plt, save, shap, names, kinds)

    gain = evaluation["explanations"]["feature_importance"]["gain"]
    top = list(gain.items())[:TOP_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(top) + 1.2))
    ax.barh([k for k, _ in top], [v for _, v in top], color="tab:blue")
    ax.set(xlabel="average gain per split", title="Feature importance (gain)")
    save(fig, "importance")

    credit = evaluation.get("credit_risk")
    if credit:
        _credit_plots(plt, save, credit, threshold)

    for attribute, section in evaluation.get("fairness", {}).get("attributes", {}).items():
        if "groups" not in section:
            continue
        key = f"fairness_{attribute}"
        files[key] = f"fairness_{_slug(attribute)}.png"
        groups = section["groups"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(
            [g["group"] for g in groups],
            [g["approval_rate"] for g in groups],
            color=["tab:orange" if g["small_group"] else "tab:blue" for g in groups],
        )
        ref = max(g["approval_rate"] for g in groups if g["group"] == section["reference_group"])
        ax.axhline(ref * 0.8, ls="--", c="red", label="4/5 of the best group's rate")
        ax.set(ylabel="approval rate", title=f"Approval rate by {attribute}", ylim=(0, 1))
        ax.legend(loc="lower right")
        save(fig, key)
    return written


def _credit_plots(plt: Any, save: Any, credit: dict[str, Any], threshold: float) -> None:
    deciles = credit["gains_lift"]["deciles"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    shares = [0.0, *(d["cumulative_rows_share"] for d in deciles)]
    captured = [0.0, *(d["cumulative_defaults_captured"] for d in deciles)]
    ax.plot(shares, captured, marker="o", label="model")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="random")
    ax.set(
        xlabel="share of applications, riskiest first",
        ylabel="share of all defaults captured",
        title="Cumulative gains",
    )
    ax.legend(loc="lower right")
    ax2.bar([d["decile"] for d in deciles], [d["lift"] or 0.0 for d in deciles], color="tab:blue")
    ax2.axhline(1.0, ls="--", c="grey")
    ax2.set(xlabel="score decile (1 = riskiest)", ylabel="lift", title="Lift by decile")
    ax2.set_xticks([d["decile"] for d in deciles])
    save(fig, "gains")

    psi = credit["score_psi"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = np.arange(len(psi["bins"]))
    ax.bar(xs - 0.2, [b["training_share"] for b in psi["bins"]], 0.4, label="training")
    ax.bar(xs + 0.2, [b["test_share"] for b in psi["bins"]], 0.4, label="test")
    ax.set_xticks(xs, [str(i + 1) for i in xs])
    ax.set(
        xlabel="bin (deciles of the training scores)",
        ylabel="share of rows",
        title=f"Score stability: PSI {psi['value']:.3f}",
    )
    ax.legend(loc="upper right")
    save(fig, "psi")

    curve = credit["cost_curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["thresholds"], curve["expected_cost"], lw=2, label="expected cost")
    chosen = curve["chosen"]
    ax.scatter(
        [chosen["threshold"]],
        [chosen["expected_cost"]],
        c="red",
        zorder=3,
        label=f"chosen threshold {threshold:.3f}",
    )
    ax.axhline(curve["approve_everyone"], ls="--", c="grey", label="approve everyone")
    ax.set(
        xlabel="threshold (flag when P(default) >= threshold)",
        ylabel="expected cost per application",
        title="Expected cost against threshold",
        xlim=(0, 1),
    )
    ax.legend(loc="upper right")
    save(fig, "cost")


def _shap_plot(plt: Any, save: Any, shap: dict[str, np.ndarray], names, kinds) -> None:  # noqa: ANN001
    phi, values = shap["contributions"], shap["values"]
    mean_abs = np.abs(phi).mean(axis=0)
    top = np.argsort(-mean_abs)[:TOP_FEATURES]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(top) + 1.5))
    cmap = plt.get_cmap("coolwarm")
    for row, j in enumerate(top):
        y = len(top) - 1 - row
        s, x = phi[:, j], values[:, j]
        # beeswarm-like spread: jitter in proportion to the local density of SHAP values
        counts, edges = np.histogram(s, bins=40)
        where = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(counts) - 1)
        density = np.sqrt(counts[where] / max(counts.max(), 1))
        offsets = rng.uniform(-1, 1, len(s)) * 0.38 * density
        present = ~np.isnan(x)
        if kinds[j] == "categorical":  # category codes have no order: one colour
            ax.scatter(s[present], y + offsets[present], c="tab:purple", s=6, alpha=0.6, lw=0)
        else:
            colours = np.zeros(int(present.sum()))
            if present.any():
                order = np.argsort(np.argsort(x[present], kind="mergesort"), kind="mergesort")
                colours = order / max(present.sum() - 1, 1)
            ax.scatter(s[present], y + offsets[present], c=cmap(colours), s=6, alpha=0.7, lw=0)
        ax.scatter(s[~present], y + offsets[~present], c="darkgrey", s=6, alpha=0.7, lw=0)
    ax.axvline(0, c="grey", lw=0.8)
    ax.set_yticks(
        range(len(top)),
        [names[j] + (" (cat.)" if kinds[j] == "categorical" else "") for j in top][::-1],
    )
    ax.set(
        xlabel="SHAP value (effect on log-odds of default; > 0 raises risk)",
        title="SHAP summary: blue = low value, red = high,\ngrey = missing, purple = categorical",
    )
    save(fig, "shap")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


# ---------------------------------------------------------------- text


def threshold_explanation(evaluation: dict[str, Any]) -> str:
    th = evaluation["threshold"]
    m = evaluation["binary_classification_metrics"]
    t = evaluation["decision_threshold"]
    cfn, cfp = th["cost_false_negative"], th["cost_false_positive"]
    common = (
        f"Applications with a predicted default probability of {pct(t)} or more are flagged "
        f"(declined or sent for review); the rest are approved. At this threshold "
        f"{pct(th['approval_rate'])} of test applications are approved, "
        f"{pct(m['recall']['value'])} of the loans that went bad are caught, and "
        f"{pct(m['precision']['value'])} of the flagged applications did go bad."
    )
    if evaluation["threshold_rule"] == "min_cost":
        other = th["alternatives"]["max_f1"]
        return (
            f"The threshold minimises the expected cost of mistakes. Approving a loan that "
            f"goes bad (a missed default) is counted as costing {cfn:g}, turning away a good "
            f"applicant as {cfp:g}: one missed default weighs as much as {cfn / cfp:g} "
            f"rejected good loans. {common} The expected cost is "
            f"{evaluation['expected_cost_per_application']:.3f} per application. "
            f"For comparison, the threshold with the best F1 would be {pct(other['threshold'])}, "
            f"approving {pct(other['approval_rate'])} at a cost of "
            f"{other['expected_cost_per_application']:.3f} per application."
        )
    other = th["alternatives"]["min_cost"]
    return (
        f"The threshold maximises F1, the balance between catching defaults (recall) and "
        f"not flagging good applicants (precision); it does not weigh the two mistakes by "
        f"their cost. {common} With a missed default costing {cfn:g} and a rejected good "
        f"loan {cfp:g}, the expected cost is {evaluation['expected_cost_per_application']:.3f} "
        f"per application; the cheapest threshold would be {pct(other['threshold'])} "
        f"({other['expected_cost_per_application']:.3f} per application)."
    )


def champion_text(evaluation: dict[str, Any]) -> str:
    champion = evaluation["champion"]
    auc = evaluation["binary_classification_metrics"]["auc"]["value"]
    if champion.get("auc") is None:
        return (
            "There is no approved model yet, so the candidate is judged only against the "
            "absolute minimum quality set for the pipeline."
        )
    verdict = "meets" if auc >= champion["min_auc_required"] else "does NOT meet"
    return (
        f"The currently approved model scores an AUC of {champion['auc']:.4f} on the same test "
        f"set. A candidate may be at most {champion['auc_margin']:g} worse, so it needs at least "
        f"{champion['min_auc_required']:.4f}; this candidate ({auc:.4f}) {verdict} that bar."
    )


def baseline_text(evaluation: dict[str, Any]) -> str:
    lr = evaluation.get("logistic_baseline")
    if not lr:
        return "No logistic-regression baseline was fitted."
    auc = evaluation["binary_classification_metrics"]["auc"]["value"]
    brier = evaluation["binary_classification_metrics"]["brier"]["value"]
    verdict = "meets" if auc >= lr["min_auc_required"] else "does NOT meet"
    start = (evaluation.get("model") or {}).get("linear_margin")
    own = (
        f"This model itself starts from such a regression (fitted in training on "
        f"{start['rows']:,} rows, C {start['C']:g}): its trees add to the regression's "
        "log-odds what the regression misses. "
        if start
        else ""
    )
    return own + (
        f"A logistic regression fitted on the same {lr['training_rows']:,} training rows "
        f"(C {lr['C']:g}, chosen by cross-validation) scores an AUC of {lr['auc']:.4f} and a "
        f"Brier score of {lr['brier']:.4f} on the same test set (this model: {auc:.4f} and "
        f"{brier:.4f}). A candidate may be at most {lr['auc_margin']:g} below it, beyond the "
        f"test set's noise (1.645 x {lr.get('difference_standard_deviation', 0.0):.4f}, the "
        f"paired bootstrap's spread of the difference), so it needs at least "
        f"{lr['min_auc_required']:.4f}; this candidate {verdict} that bar."
    )


def calibration_text(evaluation: dict[str, Any]) -> str:
    cal = evaluation["calibration"]
    fitted = (evaluation.get("model") or {}).get("calibration")
    if fitted and fitted.get("method") not in (None, "identity"):
        rows = (fitted.get("fitted_on") or {}).get("rows")
        how = (
            f"The scores are the booster's probabilities through a {fitted['method']} "
            "calibration fitted in training on rows the final model never trained on"
            + (f" ({rows:,} rows). " if isinstance(rows, int) else ". ")
        )
    elif fitted:
        how = "Training found no calibration that beat the booster's own probabilities. "
    else:
        how = ""
    return how + (
        f"On the test set the model predicts {pct(cal['mean_predicted'])} defaults on average "
        f"against {pct(cal['observed_rate'])} observed. Within score bands, predicted and "
        f"observed default rates differ by {_points(cal['expected_calibration_error'])} on average "
        f"(expected calibration error) and by at most {_points(cal['max_calibration_error'])} "
        f"in any band of at least {cal['max_calibration_error_min_count']} applications. "
        "Scores can be read as probabilities "
        + (
            "with reasonable confidence."
            if cal["expected_calibration_error"] < 0.03
            else "only with care; consider recalibration before using them as such."
        )
    )


def fairness_summary(attribute: str, section: dict[str, Any]) -> str:
    if "groups" not in section:
        return f"{attribute}: {section.get('status', 'not available')}."
    ratio = section["min_adverse_impact_ratio"]
    verdict = (
        "passes the four-fifths (80 %) rule"
        if section["passes_four_fifths_rule"]
        else "FAILS the four-fifths (80 %) rule"
    )
    text = (
        f"By {attribute}, the group with the highest approval rate is "
        f"{section['reference_group']}. The lowest approval rate is {num(ratio, 2)} times "
        f"that ({verdict}); the largest approval-rate gap is "
        f"{_points(section['max_approval_rate_gap'])}. Good applicants are wrongly flagged up to "
        f"{_points(section['max_false_positive_rate_gap'])} more often in one group than in "
        f"the best, and defaults are missed up to "
        f"{_points(section['max_false_negative_rate_gap'])} more often. "
    )
    if section["groups_too_small_to_judge"]:
        text += (
            f"Groups with fewer than the minimum number of test rows are shown but not judged: "
            f"{', '.join(section['groups_too_small_to_judge'])}. "
        )
    return text + (
        f"{attribute} is not a model input, but other inputs can be correlated with it; "
        "differences in default rates between groups explain part of any approval gap."
    )


def gini_text(credit: dict[str, Any]) -> str:
    g = credit["gini"]
    interval = g.get("interval_95")
    around = (
        f" (95 % interval {interval[0]:.3f} to {interval[1]:.3f}, from the bootstrap)"
        if interval
        else ""
    )
    return (
        f"Gini {g['value']:.4f}{around}: 2 x ROC-AUC - 1, the credit industry's usual "
        "statement of how well the score ranks bad loans above good ones (0 = no better "
        "than chance, 1 = perfect)."
    )


def gains_text(credit: dict[str, Any]) -> str:
    deciles = credit["gains_lift"]["deciles"]
    top = deciles[0]
    three = deciles[min(2, len(deciles) - 1)]
    return (
        f"Test applications ranked by predicted risk, riskiest first, in "
        f"{len(deciles)} bands of equal size. The riskiest band holds "
        f"{pct(top['cumulative_defaults_captured'])} of all defaults, a default rate "
        f"{num(top['lift'], 2)} times the average ({pct(top['default_rate'])} against "
        f"{pct(credit['gains_lift']['overall_default_rate'])}); the riskiest "
        f"{pct(three['cumulative_rows_share'], 0)} capture "
        f"{pct(three['cumulative_defaults_captured'])}."
    )


def psi_text(credit: dict[str, Any]) -> str:
    psi = credit["score_psi"]
    sampled = psi.get("training_rows_sampled_from")
    rows = f"{psi['training_rows']:,} training rows" + (
        f" (a sample of {sampled:,})" if sampled else ""
    )
    return (
        f"Population stability index of the test scores against the scores of {rows}, "
        f"in {len(psi['bins'])} bins cut at deciles of the training scores: "
        f"{psi['value']:.4f}, {psi['reading']}. Below 0.1 is usually read as stable, 0.1 "
        "to 0.25 as a moderate shift, 0.25 or more as a population that has moved."
    )


def cost_text(credit: dict[str, Any]) -> str:
    curve = credit["cost_curve"]
    chosen, low = curve["chosen"], curve["lowest_on_curve"]
    return (
        f"Expected cost per test application at each threshold, with a missed default "
        f"costing {curve['cost_false_negative']:g} and a rejected good loan "
        f"{curve['cost_false_positive']:g}. At the chosen threshold {pct(chosen['threshold'])} "
        f"it is {chosen['expected_cost']:.4f} (approving {pct(chosen['approval_rate'])}); the "
        f"lowest on the test set is {low['expected_cost']:.4f} at {pct(low['threshold'])}. "
        f"Approving everyone would cost {curve['approve_everyone']:.4f}, declining everyone "
        f"{curve['decline_everyone']:.4f}."
    )


def disagreement_text(credit: dict[str, Any]) -> str:
    section = credit["importance_disagreement"]
    found = section["disagreements"]
    head = (
        "XGBoost's gain ranks features by the loss reduction of their splits; mean |SHAP| "
        "ranks them by their average effect on each application's score. "
    )
    if not found:
        return head + (
            f"No feature's two ranks differ by {section['min_rank_gap']} places or more: "
            "the two rankings agree."
        )
    return head + (
        f"Features whose two ranks differ by {section['min_rank_gap']} places or more, and why:"
    )


def lineage_rows(evaluation: dict[str, Any]) -> list[tuple[str, str]]:
    lin = evaluation.get("lineage") or {}
    if not lin:
        return [("Lineage", "not recorded")]
    data = lin["training_data"]
    version = lin["model_version"]
    window = data.get("time_window")
    return [
        ("Run id (pipeline execution)", lin.get("run_id") or "not recorded"),
        ("Pipeline execution ARN", lin.get("pipeline_execution_arn") or "not recorded"),
        ("Model package group", lin.get("model_package_group") or "not recorded"),
        (
            "Model version",
            str(version["value"]) if version.get("value") is not None else version["why"],
        ),
        ("Evaluated at (UTC)", lin["evaluated_at"]),
        (
            "Training rows",
            f"{data['rows']:,} ({data['defaults']:,} defaults)"
            + (
                f"; validation rows {data['validation_rows']:,}"
                if data.get("validation_rows") is not None
                else ""
            ),
        ),
        ("Training time window", str(window) if window else data["time_window_note"]),
    ]


def tuning_summary(evaluation: dict[str, Any]) -> str:
    tuning = (evaluation.get("lineage") or {}).get("tuning") or {}
    if tuning.get("status") != "recorded":
        return f"Tuning trials: not recorded ({tuning.get('reason', 'no lineage')})."
    objective = tuning["objective"]
    return (
        f"Tuning job {tuning['job_name']} ({tuning.get('strategy')} search, "
        f"{tuning.get('job_status')}): {len(tuning['trials'])} trials, objective "
        f"{objective['metric']} ({objective['type']}); the best trial, "
        f"{tuning['best_training_job']}, scored {num(tuning['best_objective'], 4)}. Its "
        "trials, best first:"
    )


def _hps(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "none"


def _target_words(evaluation: dict[str, Any]) -> tuple[str, str]:
    target = evaluation["dataset"].get("target") or {}
    column = target.get("column", "the target")
    positive = target.get("positive_value", "1")
    return column, positive


# ---------------------------------------------------------------- documents


def write_report(
    out: Path,
    evaluation: dict[str, Any],
    *,
    labels: np.ndarray,
    scores: np.ndarray,
    shap: dict[str, np.ndarray],
    names: list[str],
    kinds: list[str],
) -> Path:
    """Write plots, index.html and report.md into `out`; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(
        out, evaluation, labels=labels, scores=scores, shap=shap, names=names, kinds=kinds
    )
    sections = _sections(evaluation)
    (out / "index.html").write_text(_html(evaluation, sections, plots), encoding="utf-8")
    (out / "report.md").write_text(_markdown(evaluation, sections, plots), encoding="utf-8")
    return out / "index.html"


def _sections(evaluation: dict[str, Any]) -> dict[str, Any]:
    m = evaluation["binary_classification_metrics"]
    ds = evaluation["dataset"]
    column, positive = _target_words(evaluation)
    cm = m["confusion_matrix"]
    headline = [
        (
            "ROC-AUC",
            f"{m['auc']['value']:.4f} ± {m['auc']['standard_deviation']:.4f}",
            "chance that a random default scores above a random good loan (0.5 = guessing)",
        ),
        (
            "PR-AUC",
            f"{m['pr_auc']['value']:.4f}",
            f"average precision; a random model scores about {ds['test_default_rate']:.3f}",
        ),
        (
            "KS statistic",
            f"{m['ks']['value']:.4f}",
            "largest gap between the score distributions of defaults and good loans",
        ),
        ("Brier score", f"{m['brier']['value']:.4f}", "mean squared error of the probabilities"),
        ("Precision", pct(m["precision"]["value"]), "flagged applications that did go bad"),
        ("Recall", pct(m["recall"]["value"]), "loans that went bad that were flagged"),
        ("F1", f"{m['f1']['value']:.4f}", "balance of precision and recall"),
        ("Accuracy", pct(m["accuracy"]["value"]), "correct decisions at the threshold"),
    ]
    drivers = evaluation["explanations"]["top_drivers"][:10]
    return {
        "intro": (
            f"The model estimates, for each loan application, the probability that the loan "
            f"goes bad ({column} = {positive}), from {len(ds['features'])} facts known when the "
            f"application is made. It was evaluated on {ds['test_rows']:,} held-out test "
            f"applications it never saw in training, of which {ds['test_defaults']:,} "
            f"({pct(ds['test_default_rate'])}) went bad."
        ),
        "headline": headline,
        "confusion": (
            f"Of the {ds['test_rows']:,} test applications, {cm['0']['0'] + cm['1']['0']:,} "
            f"would be approved, and {cm['1']['0']:,} of those went bad (missed defaults); "
            f"{cm['0']['1'] + cm['1']['1']:,} would be flagged, of which {cm['0']['1']:,} were "
            f"in fact good (good applicants turned away)."
        ),
        "threshold": threshold_explanation(evaluation),
        "champion": champion_text(evaluation),
        "baseline": baseline_text(evaluation),
        "drivers": drivers,
        "drivers_intro": (
            "The features that move the predicted risk most, by mean absolute SHAP value "
            f"(XGBoost's own TreeSHAP on {evaluation['explanations']['shap']['rows']:,} test "
            "rows, in log-odds of default), with the direction of their effect."
        ),
        "calibration": calibration_text(evaluation),
        "fairness": [
            (attr, fairness_summary(attr, section), section)
            for attr, section in evaluation["fairness"].get("attributes", {}).items()
        ],
        "fairness_status": evaluation["fairness"].get("status"),
        "lineage": lineage_rows(evaluation),
        "tuning": tuning_summary(evaluation),
        "credit": evaluation.get("credit_risk"),
    }


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:left}th{background:#f4f4f4}td.n{text-align:right}
.warn{color:#a40000;font-weight:bold}.ok{color:#0a6b0a;font-weight:bold}
img{max-width:100%;border:1px solid #eee;margin:.4em .4em .4em 0}.muted{color:#666;font-size:.9em}
"""


def _html(evaluation: dict[str, Any], s: dict[str, Any], plots: dict[str, str]) -> str:
    e = html.escape

    def img(key: str, alt: str) -> str:
        return f'<img src="{e(plots[key])}" alt="{e(alt)}">' if key in plots else ""

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Loan default model: evaluation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Loan default model: evaluation report</h1>",
        "<h2>What the model predicts</h2>",
        f"<p>{e(s['intro'])}</p>",
        *_lineage_html(evaluation, s),
        "<h2>Headline metrics</h2>",
        "<table><tr><th>Metric</th><th>Value</th><th>Meaning</th></tr>",
        *(
            f"<tr><td>{e(k)}</td><td class=n>{e(v)}</td><td>{e(d)}</td></tr>"
            for k, v, d in s["headline"]
        ),
        "</table>",
        f"<p class=muted>± is one standard deviation over {evaluation['bootstrap']['samples']} "
        f"bootstrap resamples of the test set{_bootstrap_sample(evaluation['bootstrap'])}.</p>",
        f"<p>{e(s['confusion'])}</p>",
        img("confusion", "confusion matrix"),
        img("roc", "ROC curve"),
        img("pr", "precision-recall curve"),
        "<h2>The decision threshold and why</h2>",
        f"<p>Rule: <b>{e(evaluation['threshold_rule'])}</b>, threshold "
        f"<b>{evaluation['decision_threshold']:.4f}</b>.</p>",
        f"<p>{e(s['threshold'])}</p>",
        "<h2>Comparison with the approved model</h2>",
        f"<p>{e(s['champion'])}</p>",
        "<h2>Comparison with logistic regression</h2>",
        f"<p>{e(s['baseline'])}</p>",
        *_credit_html(s, img),
        "<h2>Top drivers of risk</h2>",
        f"<p>{e(s['drivers_intro'])}</p>",
        "<table><tr><th>#</th><th>Feature</th><th>Mean |SHAP|</th><th>Direction</th></tr>",
        *(
            f"<tr><td class=n>{i}</td><td>{e(d['feature'])}</td>"
            f"<td class=n>{d['mean_abs_shap']:.4f}</td><td>{e(d['direction'])}</td></tr>"
            for i, d in enumerate(s["drivers"], start=1)
        ),
        "</table>",
        img("shap", "SHAP summary"),
        img("importance", "feature importance"),
        *_disagreement_html(s),
        "<h2>Calibration</h2>",
        f"<p>{e(s['calibration'])}</p>",
        img("calibration", "calibration"),
        "<h2>Fairness</h2>",
    ]
    if s["fairness_status"]:
        parts.append(f"<p>{e(s['fairness_status'])}</p>")
    for attribute, summary, section in s["fairness"]:
        parts.append(f"<h3>{e(attribute)}</h3>")
        if "groups" in section:
            cls = "ok" if section["passes_four_fifths_rule"] else "warn"
            verdict = "passes" if section["passes_four_fifths_rule"] else "fails"
            parts.append(
                f'<p><span class="{cls}">Four-fifths rule: {verdict}.</span> {e(summary)}</p>'
            )
            parts.append(
                "<table><tr><th>Group</th><th>Applications</th><th>Approval rate</th>"
                "<th>Default rate</th><th>Good applicants flagged (FPR)</th>"
                "<th>Defaults approved (FNR)</th><th>Approval ratio to best</th></tr>"
            )
            for g in section["groups"]:
                small = " (small)" if g["small_group"] else ""
                parts.append(
                    f"<tr><td>{e(g['group'])}{small}</td><td class=n>{g['count']:,}</td>"
                    f"<td class=n>{pct(g['approval_rate'])}</td>"
                    f"<td class=n>{pct(g['default_rate'])}</td>"
                    f"<td class=n>{pct(g['false_positive_rate'])}</td>"
                    f"<td class=n>{pct(g['false_negative_rate'])}</td>"
                    f"<td class=n>{num(g['adverse_impact_ratio'], 2)}</td></tr>"
                )
            parts.append("</table>")
            parts.append(img(f"fairness_{attribute}", f"approval rate by {attribute}"))
        else:
            parts.append(f"<p>{e(summary)}</p>")
    parts += [
        "<h2>Monitoring baseline</h2>",
        f"<p>Statistics of the {evaluation['dataset']['training_rows']:,} training rows (the "
        "model's inputs only) are saved as the drift-monitoring baseline "
        "(baseline/statistics.json, baseline/constraints.json).</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _bootstrap_sample(bootstrap: dict[str, Any]) -> str:
    """How the resamples were drawn, when from a sample of the test rows."""
    rows, of = bootstrap.get("rows"), bootstrap.get("of_rows")
    if rows is None or of is None or rows >= of:
        return ""
    return f" (drawn from a seeded sample of {rows:,} of its {of:,} rows, scaled to all of them)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return [f"<table><tr>{head}</tr>", *body, "</table>"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
    ]


def _hyperparameter_rows(evaluation: dict[str, Any]) -> list[list[str]]:
    lin = evaluation.get("lineage") or {}
    values = (lin.get("model_hyperparameters") or {}).get("values") or {}
    rows = [[k, str(v), "training job"] for k, v in sorted(values.items())]
    rows += [[k, str(v), "model file"] for k, v in (lin.get("model_file") or {}).items()]
    return rows


def hyperparameters_text(evaluation: dict[str, Any]) -> str:
    section = (evaluation.get("lineage") or {}).get("model_hyperparameters") or {}
    if section.get("values") is None:
        return (
            "The training job's hyperparameters are not recorded (they come from the tuning "
            "job, which could not be read). The model file itself keeps only the settings "
            "below; XGBoost does not save tree parameters such as max_depth or eta in it."
        )
    return f"From {section['source']}, and what the model file itself records."


def _trial_rows(evaluation: dict[str, Any]) -> list[list[str]]:
    tuning = (evaluation.get("lineage") or {}).get("tuning") or {}
    return [
        [
            str(t["training_job"]),
            str(t["status"]),
            num(t["objective"], 4),
            _hps(t["hyperparameters"]),
        ]
        for t in tuning.get("trials", [])
    ]


TRIAL_HEADER = ["Training job", "Status", "Objective", "Hyperparameters"]
GAINS_HEADER = [
    "Decile",
    "Rows",
    "Defaults",
    "Default rate",
    "Scores",
    "Defaults captured (cum.)",
    "Lift",
    "Lift (cum.)",
]
DISAGREEMENT_HEADER = ["Feature", "Rank by gain", "Rank by mean |SHAP|", "Why"]


def _gains_rows(credit: dict[str, Any]) -> list[list[str]]:
    return [
        [
            str(d["decile"]),
            f"{d['rows']:,}",
            f"{d['defaults']:,}",
            pct(d["default_rate"]),
            f"{num(d['min_score'])} to {num(d['max_score'])}",
            pct(d["cumulative_defaults_captured"]),
            num(d["lift"], 2),
            num(d["cumulative_lift"], 2),
        ]
        for d in credit["gains_lift"]["deciles"]
    ]


def _disagreement_rows(credit: dict[str, Any]) -> list[list[str]]:
    return [
        [d["feature"], str(d["gain_rank"]), str(d["shap_rank"]), "; ".join(d["reasons"])]
        for d in credit["importance_disagreement"]["disagreements"]
    ]


def _lineage_html(evaluation: dict[str, Any], s: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ['<h2 id="lineage">Lineage</h2>']
    parts += _table(["What", "Value"], [[k, v] for k, v in s["lineage"]])
    parts += [
        "<h3>Hyperparameters of this model</h3>",
        f"<p>{e(hyperparameters_text(evaluation))}</p>",
        *_table(["Hyperparameter", "Value", "From"], _hyperparameter_rows(evaluation)),
    ]
    parts += ['<h3 id="tuning-trials">Tuning trials</h3>', f"<p>{e(s['tuning'])}</p>"]
    trials = _trial_rows(evaluation)
    if trials:
        parts += _table(TRIAL_HEADER, trials)
    return parts


def _credit_html(s: dict[str, Any], img: Any) -> list[str]:
    e = html.escape
    credit = s["credit"]
    if not credit:
        return []
    return [
        '<h2 id="gini">Gini</h2>',
        f"<p>{e(gini_text(credit))}</p>",
        '<h2 id="gains-lift">Gains and lift by decile</h2>',
        f"<p>{e(gains_text(credit))}</p>",
        *_table(GAINS_HEADER, _gains_rows(credit)),
        img("gains", "cumulative gains and lift by decile"),
        '<h2 id="score-psi">Score stability (PSI against training)</h2>',
        f"<p>{e(psi_text(credit))}</p>",
        img("psi", "score distribution, training and test"),
        '<h2 id="expected-cost">Expected cost against threshold</h2>',
        f"<p>{e(cost_text(credit))}</p>",
        img("cost", "expected cost against threshold"),
    ]


def _disagreement_html(s: dict[str, Any]) -> list[str]:
    credit = s["credit"]
    if not credit:
        return []
    parts = [
        '<h2 id="importance-disagreement">Where gain and SHAP rankings disagree</h2>',
        f"<p>{html.escape(disagreement_text(credit))}</p>",
    ]
    rows = _disagreement_rows(credit)
    return parts + (_table(DISAGREEMENT_HEADER, rows) if rows else [])


def _markdown_lineage(evaluation: dict[str, Any], s: dict[str, Any]) -> list[str]:
    lines = ["## Lineage", "", *_md_table(["What", "Value"], [[k, v] for k, v in s["lineage"]])]
    lines += ["", "### Hyperparameters of this model", "", hyperparameters_text(evaluation), ""]
    lines += _md_table(["Hyperparameter", "Value", "From"], _hyperparameter_rows(evaluation))
    lines += ["", "### Tuning trials", "", s["tuning"], ""]
    trials = _trial_rows(evaluation)
    if trials:
        lines += [*_md_table(TRIAL_HEADER, trials), ""]
    return lines


def _markdown_credit(s: dict[str, Any], plots: dict[str, str]) -> list[str]:
    credit = s["credit"]
    if not credit:
        return []

    def image(key: str, alt: str) -> list[str]:
        return [f"![{alt}]({plots[key]})", ""] if key in plots else []

    return [
        "## Gini",
        "",
        gini_text(credit),
        "",
        "## Gains and lift by decile",
        "",
        gains_text(credit),
        "",
        *_md_table(GAINS_HEADER, _gains_rows(credit)),
        "",
        *image("gains", "cumulative gains and lift by decile"),
        "## Score stability (PSI against training)",
        "",
        psi_text(credit),
        "",
        *image("psi", "score distribution, training and test"),
        "## Expected cost against threshold",
        "",
        cost_text(credit),
        "",
        *image("cost", "expected cost against threshold"),
    ]


def _markdown_disagreement(s: dict[str, Any]) -> list[str]:
    credit = s["credit"]
    if not credit:
        return []
    lines = ["## Where gain and SHAP rankings disagree", "", disagreement_text(credit), ""]
    rows = _disagreement_rows(credit)
    return lines + ([*_md_table(DISAGREEMENT_HEADER, rows), ""] if rows else [])


def _markdown(evaluation: dict[str, Any], s: dict[str, Any], plots: dict[str, str]) -> str:
    lines = [
        "# Loan default model: evaluation report",
        "",
        "## What the model predicts",
        "",
        s["intro"],
        "",
        *_markdown_lineage(evaluation, s),
        "## Headline metrics",
        "",
        "| Metric | Value | Meaning |",
        "| --- | --- | --- |",
        *(f"| {k} | {v} | {d} |" for k, v, d in s["headline"]),
        "",
        s["confusion"],
        "",
        "## The decision threshold and why",
        "",
        f"Rule **{evaluation['threshold_rule']}**, threshold "
        f"**{evaluation['decision_threshold']:.4f}**. {s['threshold']}",
        "",
        "## Comparison with the approved model",
        "",
        s["champion"],
        "",
        "## Comparison with logistic regression",
        "",
        s["baseline"],
        "",
        *_markdown_credit(s, plots),
        "## Top drivers of risk",
        "",
        s["drivers_intro"],
        "",
        "| # | Feature | Mean abs. SHAP | Direction |",
        "| --- | --- | --- | --- |",
        *(
            f"| {i} | {d['feature']} | {d['mean_abs_shap']:.4f} | {d['direction']} |"
            for i, d in enumerate(s["drivers"], start=1)
        ),
        "",
        *_markdown_disagreement(s),
        "## Calibration",
        "",
        s["calibration"],
        "",
        "## Fairness",
        "",
    ]
    if s["fairness_status"]:
        lines += [s["fairness_status"], ""]
    for _attribute, summary, _section in s["fairness"]:
        lines += [summary, ""]
    lines += ["## Plots", ""]
    inline = {"gains", "psi", "cost"} if s["credit"] else set()  # shown in their sections
    lines += [f"![{key}]({name})" for key, name in plots.items() if key not in inline]
    return "\n".join(lines) + "\n"
