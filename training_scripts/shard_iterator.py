"""A channel's CSV shards read in bounded batches, for XGBoost's external-memory matrices.

`stream_csv` reads one headerless CSV file (label first, numeric features after it, an
empty field a missing value) a block at a time with pyarrow's streaming reader;
`batches` joins the blocks of several files into batches of about `batch_bytes` of float32
features; `ShardIterator` hands those batches to `xgboost.ExtMemQuantileDMatrix`, which
sketches and pages them to its cache on disk. Peak memory is then a few batches, whatever
the number of rows. Runs in the sagemaker-xgboost 3.0-5 image (numpy, pyarrow, xgboost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb

# One pyarrow block of CSV text; a batch handed to XGBoost (one external-memory page) is
# several of them: pages of a few MB make XGBoost's per-page overhead dominate.
BLOCK_BYTES = 8 << 20
BATCH_BYTES = 64 << 20

Batch = tuple[np.ndarray, np.ndarray]  # labels (float32), features (float32, rows x n)


def stream_csv(path: Path, columns: int, block_bytes: int | None = None) -> Iterator[Batch]:
    """(labels, features) of one file, block by block; NaN where a field is empty.

    Raises pyarrow.ArrowInvalid on a value that is not a number or a short row.
    """
    names = [f"c{i}" for i in range(columns)]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes or BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float32())),
    )
    with reader:
        for record in reader:
            yield _to_arrays(record, columns)


def _to_arrays(record: pa.RecordBatch, columns: int) -> Batch:
    features = np.empty((record.num_rows, columns - 1), dtype=np.float32)
    for j in range(1, columns):
        features[:, j - 1] = record.column(j).to_numpy(zero_copy_only=False)
    labels = record.column(0).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return labels, features


def batches(
    parts: Iterator[Batch], features: int, batch_bytes: int | None = None
) -> Iterator[Batch]:
    """The parts joined in order into batches of at least `batch_bytes` (the last may be
    smaller); one empty batch of the given width when there are no rows at all."""
    batch_bytes = batch_bytes or BATCH_BYTES
    pending: list[Batch] = []
    size = 0
    emitted = False
    for labels, block in parts:
        if not labels.size:
            continue
        pending.append((labels, block))
        size += block.nbytes
        if size >= batch_bytes:
            yield _join(pending)
            emitted = True
            pending, size = [], 0
    if pending:
        yield _join(pending)
    elif not emitted:  # a host without rows still joins the collective sketch
        yield np.empty(0, np.float32), np.empty((0, features), np.float32)


def _join(pending: list[Batch]) -> Batch:
    if len(pending) == 1:
        return pending[0]
    return np.concatenate([p[0] for p in pending]), np.concatenate([p[1] for p in pending])


class ShardIterator(xgb.DataIter):
    """Feeds XGBoost the batches `source()` yields; XGBoost calls reset() before each pass."""

    def __init__(
        self,
        source: Callable[[], Iterator[Batch]],
        cache_prefix: str,
        feature_names: Sequence[str] | None = None,
        feature_types: Sequence[str] | None = None,
    ) -> None:
        self._source = source
        self._current: Iterator[Batch] | None = None
        self._names = list(feature_names) if feature_names is not None else None
        self._types = list(feature_types) if feature_types is not None else None
        super().__init__(cache_prefix=cache_prefix, release_data=True)

    def next(self, input_data: Callable[..., Any]) -> bool:
        if self._current is None:
            self._current = self._source()
        batch = next(self._current, None)
        if batch is None:
            return False
        labels, features = batch
        input_data(
            data=features, label=labels, feature_names=self._names, feature_types=self._types
        )
        return True

    def reset(self) -> None:
        self._current = None
