"""Data-quality statistics, constraints and the violation check, in Model Monitor's format.

One module serves both ends of drift monitoring: evaluate.py writes the baseline
(statistics.json + constraints.json) from the training features, and the drift
check job (locally, or on AWS without the managed analyzer) compares captured
endpoint traffic with it and writes constraint_violations.json.

Format decisions (the files follow SageMaker Model Monitor's statistics,
constraints and violations schemas; what goes beyond them is listed here):

* Feature names. Model Monitor names the columns of a header-less CSV `_c0`,
  `_c1`, ... . We name each feature after the feature manifest instead, so the
  reports read as the business does, and record its 0-based CSV position in a
  per-feature extension block ``"boostline": {"column_index": i, ...}``.
  `check` matches features by name and falls back to the position, so
  statistics made with positional names (`_c3`) still line up with a named
  baseline. To feed the managed analyzer, rename the features to `_c<i>`.
* Categorical features arrive as integer codes (the manifest's category index)
  in the training CSVs, and may arrive as codes or as names in captured traffic.
  Both are decoded to the category *names* of the manifest and described with
  `string_statistics` (inferred_type "String"); a code outside the manifest's
  range, or a name it does not list, is kept as its text so that
  `categorical_values_check` reports it.
* Numerical distributions carry a KLL-shaped sketch: ``sketch.data[h]`` holds
  items of weight 2**h (as in a KLL sketch's compactor levels). It is built
  deterministically from the sorted data, each item standing for a block of
  2**h neighbouring values, so the weights sum exactly to num_present and any
  CDF read from it is off by at most about 2/k. ``buckets`` are ten equal-width
  bins between min and max, as Model Monitor materialises them.
* Data types are judged per value: a whole number is Integral, another number
  Fractional, anything else String. Per-feature counts are kept in
  ``boostline.type_counts`` so the data-type check can run from statistics.
* Drift is the L-infinity distance between the two CDFs (numerical, read from
  the sketches) or between the two category frequency vectors (categorical,
  "LInfinity"), compared with comparison_threshold /
  categorical_comparison_threshold. "Robust" (the default) also requires the
  distance to exceed the two-sample Kolmogorov-Smirnov critical value at the 1 %
  level for the two sample sizes, so a small batch of traffic is not reported as
  drift because of sampling noise alone; "Simple" compares with the threshold
  only. "ChiSquared" for categoricals reports drift when the two-sample
  chi-squared test's p-value is below categorical_comparison_threshold.
* Completeness: a violation when the current share of present values falls
  below the constraint's completeness by more than a tolerance (by default three
  binomial standard errors at the current sample size, at least 0.005).
* Per-feature ``monitoringConfigOverrides`` (same keys as monitoring_config,
  distribution keys flat or under ``distribution_constraints``) are honoured.

Runs in the SageMaker XGBoost image: stdlib, numpy, pandas, pyarrow only.

CLI::

    python data_quality.py baseline --data DIR_OR_FILE --manifest feature_manifest.json \
        --output-dir OUT [--label-first]
    python data_quality.py check --data DIR_OR_FILE --manifest feature_manifest.json \
        --baseline-statistics statistics.json --constraints constraints.json \
        --output-dir OUT [--label-first] [--fail-on-violations]

``--data`` takes header-less CSV files (``.csv``/``.csv.gz``) or endpoint
data-capture files (``.jsonl``), a file or a directory searched recursively.
Captured CSV requests are encoded features; captured JSON requests (raw
applications with named fields) are read by feature name, categories as names.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script from the source dir (SageMaker) or imported as a package
    from job_message import report_failure
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts.job_message import report_failure

KLL_K = 2048
KLL_C = 0.64
HISTOGRAM_BUCKETS = 10
# Two-sample KS critical value coefficient at alpha = 0.01: c(a) = sqrt(-ln(a/2)/2).
KS_COEFFICIENT_1PCT = math.sqrt(-math.log(0.01 / 2) / 2)
MAX_DOMAIN_SIZE = 1000  # larger observed domains are not suggested as constraints

DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1,
    "domain_content_threshold": 0.1,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}

CHECK_TYPES = (
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "missing_column_check",
    "extra_column_check",
    "categorical_values_check",
)


class DataQualityError(ValueError):
    """Input that cannot be described or compared; the message says why."""


# ---------------------------------------------------------------- feature specs


_FRACTION = re.compile(r"\.(\d+)")


def parse_utc_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; 'Z' or no zone means UTC.

    The image's Python 3.10 `fromisoformat` takes neither 'Z' nor a fraction of other
    than 3 or 6 digits (3.11 takes both), so both are normalised first.
    """
    value = str(text).strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value, count=1)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def feature_spec(manifest: Mapping[str, Any]) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(names, kinds, categories) of the model's input columns, from a feature manifest."""
    try:
        columns = manifest["columns"]
        names = [str(c["name"]) for c in columns]
        kinds = [str(c["kind"]) for c in columns]
    except (KeyError, TypeError) as exc:
        raise DataQualityError(f"feature manifest lacks columns/name/kind: {exc}") from None
    categories = {
        str(c["name"]): [str(v) for v in c.get("categories", [])]
        for c in columns
        if c["kind"] == "categorical"
    }
    return names, kinds, categories


def positional_name(index: int) -> str:
    """Model Monitor's name for column `index` of a header-less CSV."""
    return f"_c{index}"


# ---------------------------------------------------------------- statistics


def compute_statistics(
    data: Any,
    feature_names: Sequence[str],
    kinds: Sequence[str] | Mapping[str, str],
    *,
    categories: Mapping[str, Sequence[str]] | None = None,
    k: int = KLL_K,
) -> dict[str, Any]:
    """Model Monitor statistics.json for `data`.

    data: a pandas DataFrame (columns taken by position), a 2-D numpy array
    (rows x columns), a sequence of 1-D columns or a mapping name -> column.
    Columns may hold numbers (NaN = missing) or text (None / "" = missing).
    feature_names: one name per column. Extra columns beyond the names become
    `_c<i>` features (reported as extra columns by `check`).
    kinds: "numerical" or "categorical" per feature (sequence or mapping by name).
    categories: per categorical feature, the category names its integer codes
    index (the manifest's order).
    """
    columns = _columns(data, feature_names)
    names = list(feature_names)
    while len(names) < len(columns):
        names.append(positional_name(len(names)))
    kind_of = _kinds(names, kinds)
    categories = categories or {}
    item_count = max((len(c) for c in columns), default=0)
    if any(len(c) != item_count for c in columns):
        raise DataQualityError("columns differ in length")
    features = []
    for index, (name, column) in enumerate(zip(names, columns, strict=False)):
        kind = kind_of[name]
        if kind == "categorical":
            feature = _categorical_statistics(name, column, categories.get(name))
        else:
            feature = _numerical_statistics(name, column, k)
        feature["boostline"] = {
            "column_index": index,
            "kind": kind,
            **feature.pop("_extra"),
        }
        features.append(feature)
    return {"version": 0, "dataset": {"item_count": int(item_count)}, "features": features}


def _columns(data: Any, names: Sequence[str]) -> list[np.ndarray]:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the image
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return [data.iloc[:, j].to_numpy() for j in range(data.shape[1])]
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise DataQualityError(f"data lacks column(s) {missing}")
        extra = [c for c in data if c not in names]
        return [np.asarray(data[n]) for n in names] + [np.asarray(data[c]) for c in extra]
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise DataQualityError(f"expected a 2-D array, got shape {data.shape}")
        return [data[:, j] for j in range(data.shape[1])]
    return [np.asarray(c) for c in data]


def _kinds(names: list[str], kinds: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(kinds, Mapping):
        out = {n: kinds.get(n, "numerical") for n in names}
    else:
        kinds = list(kinds)
        out = {n: (kinds[i] if i < len(kinds) else "numerical") for i, n in enumerate(names)}
    bad = {n: v for n, v in out.items() if v not in ("numerical", "categorical")}
    if bad:
        raise DataQualityError(f"kinds must be 'numerical' or 'categorical', got {bad}")
    return out


def _parse_numbers(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float values with NaN where not a number, present mask, is-text-not-number mask)."""
    if column.dtype.kind in "fiub":
        values = column.astype(np.float64)
        present = ~np.isnan(values)
        return values, present, np.zeros(len(values), dtype=bool)
    import pandas as pd

    text = pd.Series(column, dtype=object).map(
        lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
    )
    present = text.notna().to_numpy() & (text.fillna("") != "").to_numpy()
    values = pd.to_numeric(text.where(present, None), errors="coerce").to_numpy(dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    not_number = present & np.isnan(values)
    return values, present, not_number


def _type_counts(values: np.ndarray, present: np.ndarray, not_number: np.ndarray) -> dict[str, int]:
    numbers = values[present & ~not_number]
    integral = int(np.count_nonzero(np.floor(numbers) == numbers))
    return {
        "Integral": integral,
        "Fractional": int(len(numbers) - integral),
        "String": int(np.count_nonzero(not_number)),
    }


def numerical_feature(name: str, column: np.ndarray, k: int = KLL_K) -> dict[str, Any]:
    """One numerical feature of statistics.json; its `_extra` goes under `boostline`."""
    return _numerical_statistics(name, column, k)


def _numerical_statistics(name: str, column: np.ndarray, k: int) -> dict[str, Any]:
    values, present, not_number = _parse_numbers(np.asarray(column))
    counts = _type_counts(values, present, not_number)
    num_present = int(np.count_nonzero(present))
    common = {"num_present": num_present, "num_missing": int(len(values) - num_present)}
    numbers = np.sort(values[present & ~not_number])
    if num_present and counts["String"] > num_present / 2:
        # mostly text: describe it as Model Monitor would, as a string column
        texts = np.asarray(column, dtype=object)[present]
        feature = _string_feature(name, common, [str(v).strip() for v in texts])
        feature["_extra"] = {"type_counts": counts}
        return feature
    inferred = "Fractional" if counts["Fractional"] else "Integral"
    stats: dict[str, Any] = {"common": common}
    if len(numbers):
        stats.update(
            mean=float(numbers.mean()),
            sum=float(numbers.sum()),
            std_dev=float(numbers.std()),
            min=float(numbers[0]),
            max=float(numbers[-1]),
        )
    else:
        stats.update(mean=0.0, sum=0.0, std_dev=0.0, min=0.0, max=0.0)
    stats["distribution"] = {
        "kll": {
            "buckets": _histogram(numbers),
            "sketch": {"parameters": {"c": KLL_C, "k": float(k)}, "data": _kll_levels(numbers, k)},
        }
    }
    return {
        "name": name,
        "inferred_type": inferred,
        "numerical_statistics": stats,
        "_extra": {"type_counts": counts},
    }


def _histogram(sorted_values: np.ndarray) -> list[dict[str, float]]:
    if not len(sorted_values):
        return []
    lo, hi = float(sorted_values[0]), float(sorted_values[-1])
    if lo == hi:
        return [{"lower_bound": lo, "upper_bound": hi, "count": float(len(sorted_values))}]
    edges = np.linspace(lo, hi, HISTOGRAM_BUCKETS + 1)
    counts, _ = np.histogram(sorted_values, bins=edges)
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(c)}
        for i, c in enumerate(counts)
    ]


def _kll_levels(sorted_values: np.ndarray, k: int) -> list[list[float]]:
    """Compactor levels: level h holds items of weight 2**h; weights sum to n."""
    n = len(sorted_values)
    if n <= k:
        return [sorted_values.tolist()]
    top = math.ceil(math.log2(n / k))
    levels: list[list[float]] = [[] for _ in range(top + 1)]
    start, remaining = 0, n
    for level in range(top, -1, -1):
        width = 1 << level
        blocks = remaining // width
        if blocks:
            # each block of `width` sorted values is represented by its middle value
            idx = start + np.arange(blocks) * width + (width - 1) // 2
            levels[level] = sorted_values[idx].tolist()
            start += blocks * width
            remaining -= blocks * width
    return levels


def _categorical_statistics(
    name: str, column: np.ndarray, categories: Sequence[str] | None
) -> dict[str, Any]:
    texts, present = decode_categories(column, categories)
    num_present = int(np.count_nonzero(present))
    common = {"num_present": num_present, "num_missing": int(len(texts) - num_present)}
    feature = _string_feature(name, common, list(texts[present]))
    feature["_extra"] = {
        "type_counts": {"Integral": 0, "Fractional": 0, "String": num_present},
    }
    return feature


def decode_categories(
    column: Any, categories: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(category names as an object array, present mask) from codes or names."""
    column = np.asarray(column)
    cats = list(categories or [])
    out = np.empty(len(column), dtype=object)
    if column.dtype.kind in "fiub":
        values = column.astype(np.float64)
        present = ~np.isnan(values)
        codes = np.where(present, values, -1)
        whole = present & (np.floor(codes) == codes) & (codes >= 0) & (codes < len(cats))
        lookup = np.array(cats + [""], dtype=object)
        out[whole] = lookup[codes[whole].astype(np.int64)]
        other = present & ~whole
        out[other] = [_number_text(v) for v in values[other]]
        return out, present
    known = set(cats)
    present = np.zeros(len(column), dtype=bool)
    for i, v in enumerate(column):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        text = str(v).strip()
        if not text:
            continue
        present[i] = True
        if text not in known:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if number.is_integer() and 0 <= number < len(cats):
                text = cats[int(number)]
        out[i] = text
    return out, present


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _string_feature(name: str, common: dict[str, int], texts: list[str]) -> dict[str, Any]:
    values, counts = np.unique(np.asarray(texts, dtype=str), return_counts=True)
    return string_feature_from_counts(name, common, values, counts)


def string_feature_from_counts(
    name: str, common: dict[str, int], values: np.ndarray, counts: np.ndarray
) -> dict[str, Any]:
    """A String feature from its distinct values (sorted, as np.unique gives them) and
    their counts; buckets by count, most frequent first."""
    order = np.lexsort((values, -counts))
    buckets = [{"value": str(values[i]), "count": float(counts[i])} for i in order]
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": common,
            "distinct_count": float(len(values)),
            "distribution": {"categorical": {"buckets": buckets}},
        },
    }


# ---------------------------------------------------------------- constraints


def suggest_constraints(
    statistics: Mapping[str, Any],
    *,
    domains: Mapping[str, Sequence[str]] | None = None,
    monitoring_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Model Monitor constraints.json suggested from baseline statistics.

    domains: allowed values per String feature (e.g. the manifest's categories);
    by default the values observed in the baseline, when there are at most
    MAX_DOMAIN_SIZE of them.
    """
    domains = domains or {}
    item_count = statistics.get("dataset", {}).get("item_count", 0) or 0
    features = []
    for feature in statistics.get("features", []):
        name = feature["name"]
        common = _common(feature)
        completeness = common["num_present"] / item_count if item_count else 1.0
        out: dict[str, Any] = {
            "name": name,
            "inferred_type": feature.get("inferred_type", "Unknown"),
            "completeness": float(completeness),
        }
        if "numerical_statistics" in feature:
            stats = feature["numerical_statistics"]
            out["num_constraints"] = {"is_non_negative": bool(stats.get("min", 0.0) >= 0)}
        elif "string_statistics" in feature:
            observed = [
                b["value"]
                for b in feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            ]
            if name in domains:
                allowed = [str(v) for v in domains[name]]
                allowed += [v for v in observed if v not in set(allowed)]
                out["string_constraints"] = {"domains": allowed}
            elif len(observed) <= MAX_DOMAIN_SIZE:
                out["string_constraints"] = {"domains": sorted(observed)}
        features.append(out)
    config = json.loads(json.dumps(DEFAULT_MONITORING_CONFIG))
    if monitoring_config:
        config = _merge(config, monitoring_config)
    return {"version": 0, "features": features, "monitoring_config": config}


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _common(feature: Mapping[str, Any]) -> dict[str, int]:
    block = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
    common = block.get("common", {})
    return {
        "num_present": int(common.get("num_present", 0)),
        "num_missing": int(common.get("num_missing", 0)),
    }


# ---------------------------------------------------------------- distances


def sketch_cdf(feature: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted values, CDF at each value) of a numerical feature's KLL sketch."""
    sketch = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]
    values, weights = [], []
    for level, items in enumerate(sketch.get("data", [])):
        values.extend(items)
        weights.extend([2.0**level] * len(items))
    if not values:
        return np.empty(0), np.empty(0)
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    v, w = v[order], w[order]
    last = np.r_[np.flatnonzero(np.diff(v)), len(v) - 1]  # last item of each run of equal values
    cdf = np.cumsum(w)[last] / w.sum()
    return v[last], cdf


def linf_cdf_distance(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> float | None:
    """Largest absolute gap between the two features' CDFs (from their sketches)."""
    x1, f1 = sketch_cdf(baseline)
    x2, f2 = sketch_cdf(current)
    if not len(x1) or not len(x2):
        return None
    grid = np.union1d(x1, x2)
    g1 = _step(x1, f1, grid)
    g2 = _step(x2, f2, grid)
    return float(np.max(np.abs(g1 - g2)))


def _step(x: np.ndarray, f: np.ndarray, grid: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(x, grid, side="right") - 1
    return np.where(pos >= 0, f[np.clip(pos, 0, None)], 0.0)


def category_frequencies(feature: Mapping[str, Any]) -> dict[str, float]:
    buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    total = sum(b["count"] for b in buckets)
    return {b["value"]: b["count"] / total for b in buckets} if total else {}


def linf_category_distance(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> float | None:
    p, q = category_frequencies(baseline), category_frequencies(current)
    if not p or not q:
        return None
    return float(max(abs(p.get(v, 0.0) - q.get(v, 0.0)) for v in set(p) | set(q)))


def chi_squared_p_value(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> float | None:
    """p-value of the two-sample chi-squared test of equal category distributions."""
    from scipy.stats import chi2_contingency  # in the image

    def counts(f: Mapping[str, Any]) -> dict[str, float]:
        buckets = f["string_statistics"]["distribution"]["categorical"]["buckets"]
        return {b["value"]: b["count"] for b in buckets}

    a, b = counts(baseline), counts(current)
    values = sorted(set(a) | set(b))
    if len(values) < 2 or not sum(a.values()) or not sum(b.values()):
        return None
    table = np.array([[a.get(v, 0.0) for v in values], [b.get(v, 0.0) for v in values]])
    return float(chi2_contingency(table)[1])


def distances(
    current_statistics: Mapping[str, Any], baseline_statistics: Mapping[str, Any]
) -> dict[str, float]:
    """L-infinity drift distance per feature present in both (for metrics and reports)."""
    out: dict[str, float] = {}
    current = _match(current_statistics, baseline_statistics)
    for name, base in _by_name(baseline_statistics).items():
        cur = current.get(name)
        if cur is None:
            continue
        d = _distance(base, cur)
        if d is not None:
            out[name] = d
    return out


def _distance(base: Mapping[str, Any], cur: Mapping[str, Any]) -> float | None:
    if "numerical_statistics" in base and "numerical_statistics" in cur:
        return linf_cdf_distance(base, cur)
    if "string_statistics" in base and "string_statistics" in cur:
        return linf_category_distance(base, cur)
    return None


# ---------------------------------------------------------------- the check


def check(
    current_statistics: Mapping[str, Any],
    baseline_statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    *,
    completeness_tolerance: float | None = None,
) -> dict[str, Any]:
    """Compare current statistics with the baseline and its constraints.

    Returns Model Monitor's constraint_violations.json content:
    {"violations": [{"feature_name", "constraint_check_type", "description"}]}.
    completeness_tolerance: how far below the constraint's completeness the
    current completeness may fall; None = 3 binomial standard errors (>= 0.005).
    """
    config = _merge(
        json.loads(json.dumps(DEFAULT_MONITORING_CONFIG)), constraints.get("monitoring_config", {})
    )
    violations: list[dict[str, str]] = []

    def add(name: str, check_type: str, description: str) -> None:
        violations.append(
            {"feature_name": name, "constraint_check_type": check_type, "description": description}
        )

    baseline = _by_name(baseline_statistics)
    expected = {f["name"]: f for f in constraints.get("features", [])}
    expected_names = list(expected) or list(baseline)
    current = _match(current_statistics, baseline_statistics, expected_names)
    item_count = int(current_statistics.get("dataset", {}).get("item_count", 0) or 0)

    for name in expected_names:
        if name not in current:
            add(
                name,
                "missing_column_check",
                f"Column {name} is in the baseline but not in the current data "
                f"(baseline has {len(expected_names)} columns, current has "
                f"{len(current_statistics.get('features', []))}).",
            )
    for name in current:
        if name not in expected_names:
            add(
                name,
                "extra_column_check",
                f"Column {name} is in the current data but not in the baseline "
                f"(baseline has {len(expected_names)} columns, current has "
                f"{len(current_statistics.get('features', []))}).",
            )

    for name in expected_names:
        cur = current.get(name)
        if cur is None:
            continue
        constraint = expected.get(name, {})
        cfg = _feature_config(config, constraint.get("monitoringConfigOverrides") or {})
        base = baseline.get(name)
        common = _common(cur)
        if cfg.get("evaluate_constraints", "Enabled") == "Enabled" and item_count:
            _check_type(add, name, cur, constraint, base, cfg, common)
            _check_completeness(add, name, constraint, common, item_count, completeness_tolerance)
            _check_domain(add, name, cur, constraint, cfg, common)
        dist_cfg = cfg["distribution_constraints"]
        if base is not None and dist_cfg.get("perform_comparison", "Enabled") == "Enabled":
            _check_drift(add, name, base, cur, dist_cfg)
    return {"violations": violations}


def _by_name(statistics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["name"]: f for f in statistics.get("features", [])}


def _match(
    current_statistics: Mapping[str, Any],
    baseline_statistics: Mapping[str, Any],
    expected_names: Sequence[str] | None = None,
) -> dict[str, Mapping[str, Any]]:
    """Current features keyed by baseline name; `_c<i>` names map through column_index."""
    baseline = _by_name(baseline_statistics)
    known = set(expected_names or baseline)
    by_index = {}
    for name, f in baseline.items():
        index = f.get("boostline", {}).get("column_index")
        if index is not None:
            by_index[int(index)] = name
    out: dict[str, Mapping[str, Any]] = {}
    for f in current_statistics.get("features", []):
        name = f["name"]
        if name not in known and name.startswith("_c") and name[2:].isdigit():
            name = by_index.get(int(name[2:]), name)
        out[name] = f
    return out


def _feature_config(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    cfg = _merge(config, {k: v for k, v in overrides.items() if k != "distribution_constraints"})
    dist = dict(cfg["distribution_constraints"])
    for key in DEFAULT_MONITORING_CONFIG["distribution_constraints"]:
        if key in overrides:
            dist[key] = overrides[key]
    dist.update(overrides.get("distribution_constraints", {}) or {})
    cfg["distribution_constraints"] = dist
    return cfg


def _check_type(add, name, cur, constraint, base, cfg, common) -> None:  # noqa: ANN001
    expected = constraint.get("inferred_type") or (base or {}).get("inferred_type")
    if expected not in ("Integral", "Fractional"):
        return  # a String feature accepts any value
    counts = cur.get("boostline", {}).get("type_counts")
    present = common["num_present"]
    if not present:
        return
    if counts is None:  # statistics from elsewhere: judge by the inferred type
        actual = cur.get("inferred_type")
        bad = (
            0 if actual == expected or (expected, actual) == ("Fractional", "Integral") else present
        )
    else:
        allowed = ("Integral",) if expected == "Integral" else ("Integral", "Fractional")
        bad = present - sum(counts.get(t, 0) for t in allowed)
    share = bad / present
    if share > float(cfg.get("datatype_check_threshold", 0.1)):
        add(
            name,
            "data_type_check",
            f"Data type match requirement is not met. Expected data type: {expected}, "
            f"{share:.2%} of present values are of another type "
            f"(threshold {cfg.get('datatype_check_threshold')}).",
        )


def _check_completeness(add, name, constraint, common, item_count, tolerance) -> None:  # noqa: ANN001
    if "completeness" not in constraint:
        return
    required = float(constraint["completeness"])
    actual = common["num_present"] / item_count
    if tolerance is None:
        p = min(max(required, 0.0), 1.0)
        tolerance = max(0.005, 3 * math.sqrt(p * (1 - p) / item_count))
    if actual < required - tolerance:
        add(
            name,
            "completeness_check",
            f"Data completeness requirement is not met. Expected completeness: {required:.4f}, "
            f"actual completeness: {actual:.4f} (tolerance {tolerance:.4f}).",
        )


def _check_domain(add, name, cur, constraint, cfg, common) -> None:  # noqa: ANN001
    domain = (constraint.get("string_constraints") or {}).get("domains")
    if domain is None or "string_statistics" not in cur or not common["num_present"]:
        return
    allowed = set(map(str, domain))
    buckets = cur["string_statistics"]["distribution"]["categorical"]["buckets"]
    unknown = {b["value"]: b["count"] for b in buckets if b["value"] not in allowed}
    share = sum(unknown.values()) / common["num_present"]
    if share > float(cfg.get("domain_content_threshold", 0.1)):
        shown = ", ".join(repr(v) for v in sorted(unknown, key=lambda v: -unknown[v])[:10])
        add(
            name,
            "categorical_values_check",
            f"Data content requirement is not met. {share:.2%} of present values are not in "
            f"the baseline domain (threshold {cfg.get('domain_content_threshold')}); "
            f"unknown values: {shown}.",
        )


def _drift_limit(threshold: float, method: str, base: dict, cur: dict) -> float:
    """Under "Robust", a distance small samples reach by chance (1 %) is no drift."""
    if method != "Robust":
        return threshold
    n = _common(base)["num_present"]
    m = _common(cur)["num_present"]
    if not (n and m):
        return threshold
    return max(threshold, KS_COEFFICIENT_1PCT * math.sqrt((n + m) / (n * m)))


def _check_drift(add, name, base, cur, dist_cfg) -> None:  # noqa: ANN001
    method = dist_cfg.get("comparison_method", "Robust")
    if "numerical_statistics" in base and "numerical_statistics" in cur:
        distance = linf_cdf_distance(base, cur)
        if distance is None:
            return
        threshold = float(dist_cfg.get("comparison_threshold", 0.1))
        limit = _drift_limit(threshold, method, base, cur)
        if distance > limit:
            add(
                name,
                "baseline_drift_check",
                f"Baseline drift distance: {distance:.4f} exceeds threshold: {limit:.4f} "
                f"(L-infinity distance between CDFs, comparison_method {method}).",
            )
    elif "string_statistics" in base and "string_statistics" in cur:
        threshold = float(dist_cfg.get("categorical_comparison_threshold", 0.1))
        if dist_cfg.get("categorical_drift_method", "LInfinity") == "ChiSquared":
            p_value = chi_squared_p_value(base, cur)
            if p_value is not None and p_value < threshold:
                add(
                    name,
                    "baseline_drift_check",
                    f"Baseline drift: chi-squared p-value {p_value:.4g} is below "
                    f"threshold {threshold}.",
                )
            return
        distance = linf_category_distance(base, cur)
        limit = _drift_limit(threshold, method, base, cur)
        if distance is not None and distance > limit:
            add(
                name,
                "baseline_drift_check",
                f"Baseline drift distance: {distance:.4f} exceeds threshold: {limit:.4f} "
                "(L-infinity distance between category frequencies).",
            )


# ---------------------------------------------------------------- reading data


def find_data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataQualityError(f"{path} does not exist")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.endswith((".csv", ".csv.gz", ".jsonl", ".jsonl.gz"))
    )
    if not files:
        raise DataQualityError(f"no .csv or .jsonl files under {path}")
    return files


def read_rows(
    files: Sequence[Path],
    feature_names: Sequence[str] | None = None,
    counts: dict[str, int] | None = None,
) -> list[list[Any]]:
    """Rows of model input from header-less CSV files and data-capture JSON lines.

    A capture line that is not a whole record (a write cut short by a full disk) is
    skipped and counted in counts["unreadable_capture_records"]; the window's other
    records still count.

    A capture record's endpoint input is read as CSV (text/csv: encoded features in
    manifest order), or, for application/json and application/jsonlines requests
    (raw applications with named fields: an object, a list, or {"instances": [...]}),
    as one row per application with the `feature_names` fields in order.
    """
    counts = counts if counts is not None else {}
    rows: list[list[Any]] = []
    for file in files:
        text = _read_text(file)
        if file.name.endswith((".jsonl", ".jsonl.gz")):
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        rows.extend(_capture_rows(line, file, number, feature_names))
                    except DamagedCaptureRecord as exc:
                        skipped = counts.get("unreadable_capture_records", 0) + 1
                        counts["unreadable_capture_records"] = skipped
                        if skipped <= 3:
                            print(f"skipping {exc}", file=sys.stderr)
        else:
            rows.extend(r for r in csv.reader(io.StringIO(text)) if r)
    return rows


class DamagedCaptureRecord(DataQualityError):
    """A capture line that is not a whole record: skipped, counted, never fatal."""


def _read_text(file: Path) -> str:
    if file.name.endswith(".gz"):
        import gzip

        return gzip.decompress(file.read_bytes()).decode("utf-8")
    return file.read_text(encoding="utf-8")


def _capture_rows(
    line: str, file: Path, number: int, feature_names: Sequence[str] | None
) -> list[list[Any]]:
    where = f"{file}:{number}"
    try:
        record = json.loads(line)
        block = record["captureData"]["endpointInput"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DamagedCaptureRecord(f"{where}: not a data-capture record: {exc}") from None
    data = block.get("data", "")
    encoding = str(block.get("encoding", "CSV")).upper()
    if encoding == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    content_type = str(block.get("observedContentType", "text/csv")).lower()
    if "json" not in content_type:
        return [r for r in csv.reader(io.StringIO(data)) if r]
    if feature_names is None:
        raise DataQualityError(f"{where}: a JSON request needs the feature names to read it")
    try:
        if "jsonlines" in content_type or "jsonl" in content_type:
            documents = [json.loads(x) for x in data.splitlines() if x.strip()]
        else:
            documents = [json.loads(data)]
    except json.JSONDecodeError as exc:
        raise DataQualityError(f"{where}: captured JSON request is not valid: {exc}") from None
    applications: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and "instances" in document:
            document = document["instances"]
        applications.extend(document if isinstance(document, list) else [document])
    return [
        [app.get(name) if isinstance(app, dict) else None for name in feature_names]
        for app in applications
    ]


def rows_to_columns(rows: list[list[Any]], label_first: bool = False) -> list[np.ndarray]:
    width = max((len(r) for r in rows), default=0)
    columns = [
        np.array([r[j] if j < len(r) else None for r in rows], dtype=object) for j in range(width)
    ]
    return columns[1:] if label_first else columns


# ---------------------------------------------------------------- CLI


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataQualityError(f"cannot read {path}: {exc}") from None


def _manifest(path: Path) -> dict[str, Any]:
    return _load_json(path / "feature_manifest.json" if path.is_dir() else path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Model Monitor-format data-quality baseline and check")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("baseline", "check"):
        s = sub.add_parser(name)
        s.add_argument("--data", type=Path, required=True, help="CSV/JSONL file or directory")
        s.add_argument("--manifest", type=Path, required=True, help="feature_manifest.json")
        s.add_argument("--output-dir", type=Path, required=True)
        s.add_argument("--label-first", action="store_true", help="drop the first column")
        if name == "check":
            s.add_argument("--baseline-statistics", type=Path, required=True)
            s.add_argument("--constraints", type=Path, required=True)
            s.add_argument("--fail-on-violations", action="store_true", help="exit 2 if any")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names, kinds, categories = feature_spec(_manifest(args.manifest))
        rows = read_rows(find_data_files(args.data), names)
        if not rows:
            raise DataQualityError(f"no data rows in {args.data}")
        columns = rows_to_columns(rows, args.label_first)
        statistics = compute_statistics(columns, names, kinds, categories=categories)
        _write_json(args.output_dir / "statistics.json", statistics)
        if args.command == "baseline":
            constraints = suggest_constraints(statistics, domains=categories)
            _write_json(args.output_dir / "constraints.json", constraints)
            print(f"data_quality: baseline of {len(rows)} rows in {args.output_dir}", flush=True)
            return 0
        report = check(
            statistics, _load_json(args.baseline_statistics), _load_json(args.constraints)
        )
        _write_json(args.output_dir / "constraint_violations.json", report)
        n = len(report["violations"])
        if n:
            print(f"CompletedWithViolations: Job completed successfully with {n} violations.")
        else:
            print("Completed: Job completed successfully with no violations.")
        return 2 if n and args.fail_on_violations else 0
    except Exception as exc:  # noqa: BLE001 - every failure ends with a clear message
        message = f"data quality {args.command} failed: {exc}"
        report_failure(message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
