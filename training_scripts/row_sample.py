"""A seeded uniform sample of rows read batch by batch: memory bounded by the sample, not
the data.

Each row gets a random key; the sample is the `capacity` rows with the smallest keys
(a reservoir by priorities), so every subset of that size is equally likely whatever
the batch sizes. While the rows seen fit, nothing is dropped and `rows()` returns them
all in arrival order, exactly as concatenating the batches would.

Runs in the sagemaker-xgboost image (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    index: np.ndarray  # arrival position of each kept row, ascending
    labels: np.ndarray
    features: np.ndarray
    seen: int  # rows offered in all


class RowReservoir:
    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("a row sample needs a capacity of at least 1")
        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._seen = 0
        # (keys, index, labels, features) blocks, compacted to `capacity` rows once
        # they hold twice that: each row is copied a bounded number of times
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._held = 0
        self._worst = np.inf  # no row with a larger key can enter once the sample is full

    @property
    def seen(self) -> int:
        return self._seen

    def add(self, labels: np.ndarray, features: np.ndarray) -> None:
        n = len(labels)
        keys = self._rng.random(n)  # drawn for every row, so the sample is seed-determined
        index = np.arange(self._seen, self._seen + n, dtype=np.int64)
        self._seen += n
        if self._worst < np.inf:
            take = np.flatnonzero(keys < self._worst)
            keys, index, labels, features = keys[take], index[take], labels[take], features[take]
        if not len(keys):
            return
        self._parts.append((keys, index, labels.copy(), features.copy()))
        self._held += len(keys)
        if self._held > 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        keys, index, labels, features = (
            np.concatenate([part[i] for part in self._parts]) for i in range(4)
        )
        if len(keys) > self.capacity:
            keep = np.argpartition(keys, self.capacity - 1)[: self.capacity]
            keys, index, labels = keys[keep], index[keep], labels[keep]
            features = features[keep]
            self._worst = float(keys.max())
        self._parts = [(keys, index, labels, features)]
        self._held = len(keys)

    def rows(self) -> Sample:
        if not self._parts:
            raise ValueError("no rows were added to the sample")
        self._compact()
        _, index, labels, features = self._parts[0]
        order = np.argsort(index, kind="stable")
        return Sample(
            index=index[order],
            labels=labels[order],
            features=features[order],
            seen=self._seen,
        )
