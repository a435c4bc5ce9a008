"""A channel's CSV shards read in bounded batches, for XGBoost's external-memory matrices.

`stream_csv` reads one headerless CSV file (label first, numeric features after it, an
empty field a missing value) a block at a time with pyarrow's streaming reader. A `Spool`
keeps what was parsed as raw float32 on local disk: XGBoost reads its data several times
(four passes to build an ExtMemQuantileDMatrix in 3.0.5), and reading the spool back costs
a fraction of parsing the CSV again; it hands the rows back in batches of about
`BATCH_BYTES` of features, and `ShardIterator` passes those to
`xgboost.ExtMemQuantileDMatrix`, which sketches them and pages them to its cache on disk.
Peak memory is then a few batches, whatever the number of rows. Runs in the
sagemaker-xgboost 3.0-5 image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb

# One pyarrow block of CSV text. The streaming reader reads a queue of blocks ahead, so its
# memory is a multiple of this: 8 MB blocks peaked at ~300 MB more than 1 MB ones (and
# parsed no faster). A batch handed to XGBoost is one external-memory page: the larger,
# the faster it trains (16 MB pages took 1.5 x the time of 64 MB ones, 1M rows).
BLOCK_BYTES = 1 << 20
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


class Spool:
    """Rows as two raw float32 files, row-major features and labels, written in order."""

    def __init__(self, directory: Path) -> None:
        self.features_path = directory / "features.f32"
        self.labels_path = directory / "labels.f32"
        self.rows = 0

    @contextlib.contextmanager
    def writer(self) -> Iterator[Callable[[np.ndarray, np.ndarray], None]]:
        self.features_path.parent.mkdir(parents=True, exist_ok=True)
        with self.features_path.open("wb") as features, self.labels_path.open("wb") as labels:

            def write(batch_labels: np.ndarray, batch: np.ndarray) -> None:
                features.write(np.ascontiguousarray(batch, dtype=np.float32).data)
                labels.write(np.ascontiguousarray(batch_labels, dtype=np.float32).data)
                self.rows += batch_labels.size

            yield write

    def batches(self, features: int, batch_bytes: int | None = None) -> Iterator[Batch]:
        """The rows back in batches of about `batch_bytes`; one empty batch without rows."""
        step = max(1, (batch_bytes or BATCH_BYTES) // (4 * max(features, 1)))
        if not self.rows:
            yield np.empty(0, np.float32), np.empty((0, features), np.float32)
            return
        with self.features_path.open("rb") as data, self.labels_path.open("rb") as labels:
            for start in range(0, self.rows, step):
                count = min(step, self.rows - start)
                block = np.fromfile(data, np.float32, count * features).reshape(count, features)
                yield np.fromfile(labels, np.float32, count), block


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
