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
    flags: np.ndarray  # bool per kept row, as passed to add()
    seen: int  # rows offered in all


class RowReservoir:
    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("a row sample needs a capacity of at least 1")
        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._seen = 0
        self._keys = np.empty(0)
        self._index = np.empty(0, dtype=np.int64)
        self._labels: np.ndarray | None = None
        self._features: np.ndarray | None = None
        self._flags = np.empty(0, dtype=bool)

    @property
    def seen(self) -> int:
        return self._seen

    def add(self, labels: np.ndarray, features: np.ndarray, flag: bool = True) -> None:
        n = len(labels)
        keys = self._rng.random(n)  # drawn for every row, so the sample is seed-determined
        index = np.arange(self._seen, self._seen + n, dtype=np.int64)
        self._seen += n
        if len(self._keys) >= self.capacity:
            # full: only rows whose key beats the worst kept one can enter
            worst = self._keys.max()
            take = np.flatnonzero(keys < worst)
            keys, index, labels, features = keys[take], index[take], labels[take], features[take]
            if not len(take):
                return
        flags = np.full(len(keys), flag, dtype=bool)
        if self._labels is None or self._features is None:
            self._labels, self._features = labels.copy(), features.copy()
        else:
            self._labels = np.concatenate([self._labels, labels])
            self._features = np.concatenate([self._features, features])
        self._keys = np.concatenate([self._keys, keys])
        self._index = np.concatenate([self._index, index])
        self._flags = np.concatenate([self._flags, flags])
        if len(self._keys) > self.capacity:
            keep = np.sort(np.argpartition(self._keys, self.capacity - 1)[: self.capacity])
            self._keys, self._index = self._keys[keep], self._index[keep]
            self._labels, self._features = self._labels[keep], self._features[keep]
            self._flags = self._flags[keep]

    def rows(self) -> Sample:
        if self._labels is None or self._features is None:
            raise ValueError("no rows were added to the sample")
        order = np.argsort(self._index, kind="stable")
        return Sample(
            index=self._index[order],
            labels=self._labels[order],
            features=self._features[order],
            flags=self._flags[order],
            seen=self._seen,
        )
