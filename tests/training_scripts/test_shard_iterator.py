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


def test_batches_join_blocks_across_files_in_order_up_to_the_size() -> None:
    parts = [(np.full(10, i, np.float32), np.full((10, 2), i, np.float32)) for i in range(7)]
    out = list(shard_iterator.batches(iter(parts), 2, batch_bytes=200))
    # 10 rows x 2 float32 = 80 bytes a part: three parts reach 200 bytes
    assert [len(labels) for labels, _ in out] == [30, 30, 10]
    np.testing.assert_array_equal(
        np.concatenate([b[1] for b in out])[:, 0], np.repeat(range(7), 10)
    )


def test_no_rows_is_one_empty_batch_of_the_width() -> None:
    empty = (np.empty(0, np.float32), np.empty((0, 5), np.float32))
    for parts in ([], [empty]):
        [(labels, features)] = list(shard_iterator.batches(iter(parts), 5))
        assert labels.shape == (0,) and features.shape == (0, 5)


def test_the_iterator_builds_an_external_memory_matrix_over_several_pages(tmp_path: Path) -> None:
    values = write(tmp_path / "a.csv", 3000)

    def source() -> Iterator[shard_iterator.Batch]:
        blocks = shard_iterator.stream_csv(tmp_path / "a.csv", 4, block_bytes=4096)
        return shard_iterator.batches(blocks, 3, batch_bytes=8192)

    iterator = shard_iterator.ShardIterator(source, str(tmp_path / "cache" / "c"), ["a", "b", "c"])
    (tmp_path / "cache").mkdir()
    matrix = xgb.ExtMemQuantileDMatrix(iterator, missing=np.nan, max_bin=64)
    assert (matrix.num_row(), matrix.num_col()) == (3000, 3)
    assert matrix.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(matrix.get_label(), values[:, 0])
    assert len(list((tmp_path / "cache").iterdir())) >= 1
