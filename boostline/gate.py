"""The quality gate: the same rule the pipeline's condition step applies.

A candidate passes only if its test AUC clears the absolute threshold AND is
not worse than the approved model's AUC on the same test set by more than the
margin (evaluate.py writes that bound as `champion.min_auc_required`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    auc: float
    min_auc: float
    min_auc_required_by_champion: float
    champion_auc: float | None

    @property
    def reason(self) -> str:
        champion = (
            f"approved model {self.champion_auc:.4f} (needs >= "
            f"{self.min_auc_required_by_champion:.4f})"
            if self.champion_auc is not None
            else "no approved model yet"
        )
        verdict = "passed" if self.passed else "failed"
        return (
            f"quality gate {verdict}: AUC {self.auc:.4f} vs threshold {self.min_auc:.4f}; "
            f"{champion}"
        )


def decide(evaluation: dict[str, Any], min_auc: float) -> GateDecision:
    auc = float(evaluation["binary_classification_metrics"]["auc"]["value"])
    champion = evaluation.get("champion") or {}
    required = float(champion.get("min_auc_required") or 0.0)
    champion_auc = champion.get("auc")
    return GateDecision(
        passed=auc >= min_auc and auc >= required,
        auc=auc,
        min_auc=min_auc,
        min_auc_required_by_champion=required,
        champion_auc=float(champion_auc) if champion_auc is not None else None,
    )
