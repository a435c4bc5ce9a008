"""row_sample.py: a seeded uniform row sample, read batch by batch."""

from __future__ import annotations

import numpy as np
import pytest

from training_scripts.row_sample import RowReservoir


def _offer(reservoir: RowReservoir, n: int, batch: int) -> None:
    rows = np.arange(n, dtype=np.float64)
    for start in range(0, n, batch):
        part = rows[start : start + batch]
        reservoir.add(part.astype(np.int8) % 2, part[:, None])


def test_rows_that_fit_come_back_whole_in_arrival_order() -> None:
    reservoir = RowReservoir(100, seed=3)
    _offer(reservoir, 70, 9)
    sample = reservoir.rows()
    np.testing.assert_array_equal(sample.features[:, 0], np.arange(70))
    np.testing.assert_array_equal(sample.index, np.arange(70))
    assert sample.seen == 70


def test_capacity_bounds_the_sample_and_batching_does_not_change_it() -> None:
    small, large = RowReservoir(50, seed=7), RowReservoir(50, seed=7)
    _offer(small, 10_000, 13)
    _offer(large, 10_000, 4_000)
    a, b = small.rows(), large.rows()
    assert len(a.labels) == 50 and a.seen == 10_000
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.features[:, 0], a.index)  # rows stay with their index
    assert np.all(np.diff(a.index) > 0)


def test_every_row_is_equally_likely() -> None:
    n, capacity, runs = 40, 10, 4_000
    hits = np.zeros(n)
    for seed in range(runs):
        reservoir = RowReservoir(capacity, seed=seed)
        _offer(reservoir, n, 7)
        hits[reservoir.rows().index] += 1
    expected = runs * capacity / n
    # binomial standard deviation ~ 27 for 1,000 expected; 5 of them is far outside chance
    assert np.abs(hits - expected).max() < 5 * np.sqrt(expected * (1 - capacity / n))


def test_a_sample_needs_rows_and_room() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RowReservoir(0)
    with pytest.raises(ValueError, match="no rows"):
        RowReservoir(5).rows()
