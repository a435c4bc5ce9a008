"""training_statistics.py: the data-quality baseline of the training rows, batch by batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from training_scripts import data_quality as dq
from training_scripts.row_sample import RowReservoir
from training_scripts.training_statistics import StatisticsAccumulator

NAMES = ["income", "grade", "term"]
KINDS = ["numerical", "categorical", "numerical"]
CATEGORIES = {"grade": ["A", "B", "C"]}


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.lognormal(10, 0.5, n),
            rng.integers(0, 4, n).astype(np.float64),  # code 3 is no category of the manifest
            rng.choice([36.0, 60.0], n),
        ]
    )
    x[rng.random(n) < 0.1, 0] = np.nan
    x[rng.random(n) < 0.05, 1] = np.nan
    return x


def _stream(x: np.ndarray, capacity: int, batch: int) -> dict[str, Any]:
    totals, sample = StatisticsAccumulator(KINDS), RowReservoir(capacity, seed=5)
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        totals.add(part)
        sample.add(np.zeros(len(part)), part)
    return totals.statistics(sample.rows().features, NAMES, categories=CATEGORIES)


def _same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            _same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), path
    else:
        assert a == b, path


def test_rows_that_fit_the_sample_give_what_compute_statistics_gives() -> None:
    x = _rows(3_000)
    whole = dq.compute_statistics(x, NAMES, KINDS, categories=CATEGORIES)
    _same(whole, _stream(x, capacity=10_000, batch=257))


def test_a_sampled_baseline_counts_every_row_exactly() -> None:
    x = _rows(20_000, seed=1)
    whole = dq.compute_statistics(x, NAMES, KINDS, categories=CATEGORIES)
    sampled = _stream(x, capacity=2_000, batch=1_000)
    assert sampled["dataset"]["item_count"] == 20_000
    for exact, streamed in zip(whole["features"], sampled["features"], strict=True):
        assert streamed["boostline"]["distribution_sample_rows"] == 2_000
        block = "numerical_statistics" if "numerical_statistics" in exact else "string_statistics"
        assert streamed[block]["common"] == exact[block]["common"]
        assert streamed["boostline"]["type_counts"] == exact["boostline"]["type_counts"]
        if block == "string_statistics":  # category counts are exact
            assert streamed[block]["distribution"] == exact[block]["distribution"]
            continue
        for key in ("mean", "sum", "std_dev", "min", "max"):
            assert streamed[block][key] == pytest.approx(exact[block][key], rel=1e-9)
        buckets = streamed[block]["distribution"]["kll"]["buckets"]
        assert buckets[0]["lower_bound"] == exact[block]["min"]
        assert buckets[-1]["upper_bound"] == exact[block]["max"]
        assert sum(b["count"] for b in buckets) == pytest.approx(
            exact[block]["common"]["num_present"]
        )
        # the sample's distribution is the population's, within sampling noise
        assert dq.linf_cdf_distance(exact, streamed) < 0.05
    constraints = dq.suggest_constraints(sampled, domains=CATEGORIES)
    assert dq.check(whole, sampled, constraints)["violations"] == []


def test_the_accumulator_refuses_rows_of_another_width() -> None:
    with pytest.raises(ValueError, match="3 feature columns"):
        StatisticsAccumulator(KINDS).add(np.zeros((4, 2)))


def test_a_column_present_in_the_data_but_not_in_the_sample_keeps_its_count() -> None:
    x = _rows(2_000, seed=2)
    x[:, 0] = np.nan
    x[5, 0] = 123.0  # one value, which a small sample misses
    totals, sample = StatisticsAccumulator(KINDS), RowReservoir(10, seed=0)
    totals.add(x)
    sample.add(np.zeros(len(x)), x)
    kept = sample.rows()
    assert 5 not in kept.index
    income = totals.statistics(kept.features, NAMES, categories=CATEGORIES)["features"][0]
    buckets = income["numerical_statistics"]["distribution"]["kll"]["buckets"]
    assert buckets == [{"lower_bound": 123.0, "upper_bound": 123.0, "count": 1.0}]
