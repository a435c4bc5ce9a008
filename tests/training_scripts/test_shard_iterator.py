"""training_scripts/shard_iterator.py: bounded batches of CSV shards for external memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from training_scripts import shard_iterator


def write(path: Path, rows: int, features: int = 3) -> np.ndarray:
    values = np.arange(rows * (features + 1), dtype=np.float32).reshape(rows, features + 1)
    values[:, 0] = np.arange(rows) % 2
    lines = [",".join(f"{v:g}" for v in row) for row in values]
    lines[1] = lines[1].rsplit(",", 1)[0] + ","  # an empty last field
    values[1, -1] = np.nan
    path.write_text("\n".join(lines) + "\n")
    return values


def test_a_file_streams_block_by_block_with_nan_for_empty_fields(tmp_path: Path) -> None:
    values = write(tmp_path / "a.csv", 2000)
    blocks = list(shard_iterator.stream_csv(tmp_path / "a.csv", 4, block_bytes=4096))
    assert len(blocks) > 5
    labels = np.concatenate([b[0] for b in blocks])
    features = np.concatenate([b[1] for b in blocks])
    assert features.dtype == labels.dtype == np.float32 and features.flags.c_contiguous
    np.testing.assert_array_equal(labels, values[:, 0])
    np.testing.assert_array_equal(features, values[:, 1:])  # NaN == NaN here


def test_a_bad_value_raises_pyarrows_error(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1,2,3,4\n0,x,3,4\n")
    with pytest.raises(pa.ArrowInvalid):
        list(shard_iterator.stream_csv(tmp_path / "a.csv", 4))


def test_a_spool_gives_the_rows_back_in_order_in_batches_of_the_size(tmp_path: Path) -> None:
    spool = shard_iterator.Spool(tmp_path / "spool")
    parts = [(np.full(10, i % 2, np.float32), np.full((10, 2), i, np.float32)) for i in range(7)]
    with spool.writer() as append:
        for labels, features in parts:
            append(labels, features)
    assert spool.rows == 70
    # 10 rows x 2 float32 = 80 bytes: 200 bytes is 25 rows a batch
    out = list(spool.batches(2, batch_bytes=200))
    assert [len(labels) for labels, _ in out] == [25, 25, 20]
    np.testing.assert_array_equal(
        np.concatenate([b[1] for b in out]), np.concatenate([p[1] for p in parts])
    )
    np.testing.assert_array_equal(
        np.concatenate([b[0] for b in out]), np.concatenate([p[0] for p in parts])
    )


def test_an_empty_spool_is_one_empty_batch_of_the_width(tmp_path: Path) -> None:
    [(labels, features)] = list(shard_iterator.Spool(tmp_path / "none").batches(5))
    assert labels.shape == (0,) and features.shape == (0, 5)


def test_the_iterator_builds_an_external_memory_matrix_over_several_pages(tmp_path: Path) -> None:
    values = write(tmp_path / "a.csv", 3000)

    spool = shard_iterator.Spool(tmp_path / "spool")
    with spool.writer() as append:
        for labels, features in shard_iterator.stream_csv(tmp_path / "a.csv", 4, 4096):
            append(labels, features)

    def source() -> Iterator[shard_iterator.Batch]:
        return spool.batches(3, batch_bytes=8192)

    iterator = shard_iterator.ShardIterator(source, str(tmp_path / "cache" / "c"), ["a", "b", "c"])
    (tmp_path / "cache").mkdir()
    matrix = xgb.ExtMemQuantileDMatrix(iterator, missing=np.nan, max_bin=64)
    assert (matrix.num_row(), matrix.num_col()) == (3000, 3)
    assert matrix.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(matrix.get_label(), values[:, 0])
    assert len(list((tmp_path / "cache").iterdir())) >= 1
