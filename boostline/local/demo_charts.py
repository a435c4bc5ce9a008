"""The demo report's pictures (PNG, Agg backend): drift, distributions, AUC, timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

from training_scripts import data_quality as dq  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def drift_chart(distances: Mapping[str, Mapping[str, float]], threshold: float, path: Path) -> Path:
    """Drift distance of every feature (rows) in every window (bars), with the threshold."""
    windows = list(distances)
    features = sorted({f for d in distances.values() for f in d})
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(features) + 1.5))
    height = 0.8 / max(1, len(windows))
    for i, window in enumerate(windows):
        values = [distances[window].get(f, 0.0) for f in features]
        ax.barh([y + i * height for y in range(len(features))], values, height, label=window)
    ax.axvline(threshold, color="#b00", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_yticks([y + height * (len(windows) - 1) / 2 for y in range(len(features))])
    ax.set_yticklabels(features)
    ax.invert_yaxis()
    ax.set_xlabel("L-infinity distance to the training baseline")
    ax.legend(loc="lower right")
    return _save(fig, path)


def distribution_chart(
    feature: str, baseline: Mapping[str, Any], current: Mapping[str, Any], path: Path
) -> Path:
    """Baseline vs current distribution of one feature (CDF, or category shares)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if "numerical_statistics" in baseline and "numerical_statistics" in current:
        for label, stats in (("training baseline", baseline), ("this window", current)):
            x, cdf = dq.sketch_cdf(stats)
            ax.step(x, cdf, where="post", label=label)
        ax.set_ylabel("share of rows at or below")
    else:
        base, cur = dq.category_frequencies(baseline), dq.category_frequencies(current)
        names = sorted(set(base) | set(cur))
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [base.get(n, 0) for n in names], 0.4, label="baseline")
        ax.bar([x + 0.2 for x in xs], [cur.get(n, 0) for n in names], 0.4, label="this window")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel("share of rows")
    ax.set_title(feature)
    ax.legend()
    return _save(fig, path)


def auc_chart(aucs: Mapping[str, float | None], minimum: float, path: Path) -> Path:
    """The live model's AUC per window, against the gate's minimum."""
    fig, ax = plt.subplots(figsize=(5, 3))
    names = list(aucs)
    ax.bar(names, [aucs[n] or 0.0 for n in names], color="#4a7")
    ax.axhline(minimum, color="#b00", linestyle="--", label=f"gate minimum {minimum:g}")
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUC from ground truth")
    ax.legend(loc="lower right")
    return _save(fig, path)


def timeline_chart(entries: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Who did what when: one row per actor, a mark per step."""
    actors = list(dict.fromkeys(e["stage"] for e in entries))
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(actors) + 1.2))
    for row, actor in enumerate(actors):
        times = [e["t"] for e in entries if e["stage"] == actor]
        ax.scatter(times, [row] * len(times), marker="|", s=200)
    ax.set_yticks(range(len(actors)))
    ax.set_yticklabels(actors)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the demo started")
    return _save(fig, path)
