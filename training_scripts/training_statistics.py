"""The data-quality baseline (statistics.json) of the training rows, read batch by batch.

What can be counted exactly is counted over every row as the batches pass: rows,
present and missing values, type counts, sum, mean, standard deviation, minimum and
maximum of each numerical feature, and the count of every category. The numerical
distributions (the histogram and the KLL-shaped sketch of data_quality.py) come from a
uniform row sample (row_sample.py); histogram counts are scaled to the rows present and
its edges span the exact minimum and maximum; the sketch's weights add up to the sampled
rows (`boostline.distribution_sample_rows`), which its CDF does not depend on. While the
training rows fit the sample, the result is the one data_quality.compute_statistics gives
on all of them, to rounding (sums are merged block by block).

Runs in the sagemaker-xgboost image (numpy only, beside data_quality.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import data_quality as dq
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import data_quality as dq


class StatisticsAccumulator:
    """Exact per-feature totals of encoded rows (numbers; categories as codes; NaN missing)."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        width = len(self.kinds)
        self.rows = 0
        self.present = np.zeros(width, dtype=np.int64)
        self.integral = np.zeros(width, dtype=np.int64)
        self.sum = np.zeros(width)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)  # sum of squared deviations from the mean (Chan's merge)
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)
        self.codes: list[dict[float, int]] = [{} for _ in self.kinds]

    def add(self, features: np.ndarray) -> None:
        if features.ndim != 2 or features.shape[1] != len(self.kinds):
            raise ValueError(f"expected {len(self.kinds)} feature columns, got {features.shape}")
        present = ~np.isnan(features)
        count = present.sum(axis=0)
        self.rows += len(features)
        numbers = np.where(present, features, 0.0)
        total = numbers.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            batch_mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        batch_m2 = (np.where(present, features - batch_mean, 0.0) ** 2).sum(axis=0)
        merged = self.present + count
        delta = batch_mean - self.mean
        share = np.where(merged > 0, count / np.maximum(merged, 1), 0.0)
        self.m2 += batch_m2 + delta**2 * self.present * share
        self.mean += delta * share
        self.present = merged
        self.sum += total
        self.integral += (present & (np.floor(numbers) == numbers)).sum(axis=0)
        self.min = np.minimum(self.min, np.where(present, features, np.inf).min(axis=0))
        self.max = np.maximum(self.max, np.where(present, features, -np.inf).max(axis=0))
        for j, kind in enumerate(self.kinds):
            if kind != "categorical":
                continue
            values, counts = np.unique(features[present[:, j], j], return_counts=True)
            seen = self.codes[j]
            for value, c in zip(values.tolist(), counts.tolist(), strict=False):
                seen[value] = seen.get(value, 0) + c

    def statistics(
        self,
        sample: np.ndarray,
        names: Sequence[str],
        *,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """statistics.json: exact totals, distributions from `sample` (rows of the same
        columns, a uniform sample of the rows added). The layout is compute_statistics'."""
        categories = categories or {}
        features = []
        for j, (name, kind) in enumerate(zip(names, self.kinds, strict=True)):
            present = int(self.present[j])
            common = {"num_present": present, "num_missing": int(self.rows - present)}
            if kind == "categorical":
                feature = self._categorical(name, j, common, categories.get(name))
            else:
                feature = dq.numerical_feature(name, sample[:, j])
                self._numerical(feature, j, common, sample[:, j])
            extra = feature.pop("_extra")
            feature["boostline"] = {"column_index": j, "kind": kind, **extra}
            if len(sample) < self.rows:
                feature["boostline"]["distribution_sample_rows"] = int(len(sample))
            features.append(feature)
        return {"version": 0, "dataset": {"item_count": int(self.rows)}, "features": features}

    def _numerical(
        self, feature: dict[str, Any], j: int, common: dict[str, int], sampled: np.ndarray
    ) -> None:
        present = int(self.present[j])
        integral = int(self.integral[j])
        feature["inferred_type"] = "Fractional" if present > integral else "Integral"
        feature["_extra"]["type_counts"] = {
            "Integral": integral,
            "Fractional": present - integral,
            "String": 0,
        }
        stats = feature["numerical_statistics"]
        stats["common"] = common
        if present:
            stats.update(
                mean=float(self.mean[j]),
                sum=float(self.sum[j]),
                std_dev=float(np.sqrt(self.m2[j] / present)),
                min=float(self.min[j]),
                max=float(self.max[j]),
            )
        stats["distribution"]["kll"]["buckets"] = self._histogram(j, sampled)

    def _histogram(self, j: int, sampled: np.ndarray) -> list[dict[str, float]]:
        present = int(self.present[j])
        if not present:
            return []
        lo, hi = float(self.min[j]), float(self.max[j])
        if lo == hi:
            return [{"lower_bound": lo, "upper_bound": hi, "count": float(present)}]
        numbers = sampled[~np.isnan(sampled)]
        if not len(numbers):  # present in the data, never in the sample: one bucket
            return [{"lower_bound": lo, "upper_bound": hi, "count": float(present)}]
        edges = np.linspace(lo, hi, dq.HISTOGRAM_BUCKETS + 1)
        counts, _ = np.histogram(numbers, bins=edges)
        scale = present / len(numbers)
        return [
            {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": c}
            for i, c in enumerate((counts * scale).tolist())
        ]

    def _categorical(
        self, name: str, j: int, common: dict[str, int], categories: Sequence[str] | None
    ) -> dict[str, Any]:
        seen = self.codes[j]
        codes = np.array(sorted(seen), dtype=np.float64)
        decoded, _ = dq.decode_categories(codes, categories)
        by_name: dict[str, int] = {}
        for text, code in zip(decoded.tolist(), codes.tolist(), strict=True):
            by_name[str(text)] = by_name.get(str(text), 0) + seen[code]
        values = np.array(sorted(by_name), dtype=str)
        counts = np.array([by_name[v] for v in values.tolist()], dtype=np.int64)
        feature = dq.string_feature_from_counts(name, common, values, counts)
        feature["_extra"] = {
            "type_counts": {"Integral": 0, "Fractional": 0, "String": common["num_present"]}
        }
        return feature
