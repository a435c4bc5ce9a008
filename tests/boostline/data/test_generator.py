"""Tests for the synthetic loan-application generator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from boostline.data import generator
from boostline.data.generator import (
    COLUMNS,
    MISSING_RATES,
    SCHEMA_PATH,
    generate_loans,
    generate_to_dir,
    write_loans,
)
from training_scripts.dataset_schema import DatasetSchema, load_schema


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return load_schema(SCHEMA_PATH)


@pytest.fixture(scope="module")
def book() -> pa.Table:
    return generate_loans(50_000, seed=0)


@pytest.fixture(scope="module")
def drifted() -> pa.Table:
    return generate_loans(50_000, seed=0, drift=1.0)


def _bad_rate(table: pa.Table) -> float:
    return float(np.mean(table["loan_status"].to_numpy() == "bad"))


def _read_bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    first = generate_to_dir(3_000, tmp_path / "a", seed=7, drift=0.3, shards=2)
    second = generate_to_dir(3_000, tmp_path / "b", seed=7, drift=0.3, shards=2)
    assert _read_bytes(first) == _read_bytes(second)


def test_different_seed_or_drift_gives_different_books() -> None:
    base = generate_loans(2_000, seed=1)
    assert not base.equals(generate_loans(2_000, seed=2))
    assert not base.equals(generate_loans(2_000, seed=1, drift=0.5))


def test_drift_keeps_the_same_applicants() -> None:
    calm = generate_loans(2_000, seed=3)
    stormy = generate_loans(2_000, seed=3, drift=1.0)
    for name in ("application_id", "full_name", "national_id", "age_band"):
        assert calm[name].equals(stormy[name]), name


def test_streamed_files_match_the_in_memory_book(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generator, "BLOCK_ROWS", 1_000)  # shards and blocks cut at different rows
    table = generate_loans(3_500, seed=4, drift=0.2)
    in_memory = write_loans(table, tmp_path / "a", shards=3)
    streamed = generate_to_dir(3_500, tmp_path / "b", seed=4, drift=0.2, shards=3)
    assert _read_bytes(in_memory) == _read_bytes(streamed)
    read_back = pa.concat_tables(pa_csv.read_csv(p) for p in streamed)
    assert read_back["application_id"].equals(table["application_id"])


def test_application_ids_are_unique_and_do_not_collide_across_seeds() -> None:
    a = generate_loans(5_000, seed=0)["application_id"].to_pylist()
    b = generate_loans(5_000, seed=1)["application_id"].to_pylist()
    assert a[0] == "APP-000000000001"
    assert len(set(a)) == len(a)
    assert not set(a) & set(b)


# --------------------------------------------------------------------------- realism


def test_default_rate_is_between_10_and_20_percent(book: pa.Table) -> None:
    assert 0.10 <= _bad_rate(book) <= 0.20


def _encode(table: pa.Table, schema: DatasetSchema) -> pd.DataFrame:
    frame = table.select(schema.feature_names).to_pandas()
    for feature in schema.categorical:
        codes = {value: i for i, value in enumerate(feature.values)}
        frame[feature.name] = frame[feature.name].map(codes).astype("float64")
    return frame.astype("float64")


def test_xgboost_reaches_a_realistic_auc(book: pa.Table, schema: DatasetSchema) -> None:
    x = _encode(book, schema)
    y = (book["loan_status"].to_numpy() == "bad").astype(int)
    train, test = slice(0, 20_000), slice(20_000, None)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 4, "eta": 0.1}
    booster = xgb.train(
        {**params, "nthread": 1, "seed": 0},
        xgb.DMatrix(x.iloc[train], label=y[train]),
        num_boost_round=100,
    )
    auc = roc_auc_score(y[test], booster.predict(xgb.DMatrix(x.iloc[test])))
    assert 0.72 <= auc <= 0.88, auc


def test_grade_and_rate_track_risk(book: pa.Table) -> None:
    frame = book.select(["grade", "interest_rate", "loan_status"]).to_pandas()
    by_grade = frame.assign(bad=frame["loan_status"] == "bad").groupby("grade")
    assert by_grade["interest_rate"].mean().is_monotonic_increasing
    assert by_grade["bad"].mean().loc[["A", "C", "E"]].is_monotonic_increasing


def test_drift_moves_the_economy(book: pa.Table, drifted: pa.Table) -> None:
    def median_income(t: pa.Table) -> float:
        return float(np.nanmedian(t["annual_income"].to_numpy(zero_copy_only=False)))

    def mean(t: pa.Table, name: str) -> float:
        return pc.mean(t[name]).as_py()

    def share(t: pa.Table, purpose: str) -> float:
        return float(np.mean(t["purpose"].to_numpy() == purpose))

    assert median_income(drifted) < median_income(book)
    assert mean(drifted, "interest_rate") > mean(book, "interest_rate")
    assert mean(drifted, "dti") > mean(book, "dti")
    assert mean(drifted, "revol_util") > mean(book, "revol_util")
    assert share(drifted, "small_business") > share(book, "small_business")
    assert share(drifted, "debt_consolidation") > share(book, "debt_consolidation")
    assert _bad_rate(drifted) > _bad_rate(book)


# --------------------------------------------------------------------------- schema


def test_shipped_schema_matches_the_generated_columns(
    book: pa.Table, schema: DatasetSchema
) -> None:
    listed = [
        *schema.feature_names,
        schema.target_column,
        schema.id_column,
        *schema.pii_columns,
        *schema.sensitive,
    ]
    assert sorted(listed) == sorted(book.column_names) == sorted(COLUMNS)
    assert len(schema.feature_names) >= 15
    assert schema.target_column == "loan_status"
    assert (schema.positive_value, schema.negative_value) == ("bad", "good")
    assert schema.id_column == "application_id"
    assert dict((p.column, p.action) for p in schema.pii) == {
        "full_name": "drop",
        "email": "drop",
        "phone": "drop",
        "national_id": "hash",
    }
    assert schema.sensitive == ("age_band",)
    assert "age_band" not in schema.feature_names


def test_optional_columns_have_missing_values_and_required_ones_do_not(
    book: pa.Table, schema: DatasetSchema
) -> None:
    for name, rate in MISSING_RATES.items():
        share = book[name].null_count / book.num_rows
        assert 0.3 * rate <= share <= 2.0 * rate, (name, share)
    optional = {f.name for f in (*schema.numerical, *schema.categorical) if not f.required}
    assert optional == set(MISSING_RATES)
    for name in set(book.column_names) - optional:
        assert book[name].null_count == 0, name


@pytest.mark.parametrize("drift", [0.0, 2.0])
def test_values_stay_within_the_schema(schema: DatasetSchema, drift: float) -> None:
    table = generate_loans(20_000, seed=11, drift=drift)
    for feature in schema.numerical:
        values = table[feature.name].to_numpy(zero_copy_only=False).astype("float64")
        values = values[~np.isnan(values)]
        assert values.min() >= feature.min, feature.name
        assert values.max() <= feature.max, feature.name
        if feature.integer:
            assert np.array_equal(values, np.round(values)), feature.name
    for feature in schema.categorical:
        seen = set(pc.unique(table[feature.name]).to_pylist())
        assert seen <= set(feature.values), (feature.name, seen - set(feature.values))
    assert set(pc.unique(table["loan_status"]).to_pylist()) == {"good", "bad"}
    bands = {"18-25", "26-35", "36-45", "46-55", "56-65", "66+"}
    assert set(pc.unique(table["age_band"]).to_pylist()) == bands


def test_pii_looks_like_pii(book: pa.Table) -> None:
    patterns = {
        "national_id": r"^\d{3}-\d{2}-\d{4}$",
        "phone": r"^\d{3}-555-01\d{2}$",
        "email": r"^[a-z]+\.[a-z]+\d*@[a-z.]+$",
        "full_name": r"^[A-Z][a-z]+ [A-Z][a-z]+$",
        "application_id": r"^APP-\d{12}$",
    }
    for name, pattern in patterns.items():
        assert pc.all(pc.match_substring_regex(book[name], pattern)).as_py(), name
    assert pc.count_distinct(book["national_id"]).as_py() == book.num_rows


# --------------------------------------------------------------------------- files


def test_shards_split_rows_evenly_with_a_header_each(tmp_path: Path) -> None:
    paths = generate_to_dir(1_001, tmp_path, seed=2, shards=4)
    assert [p.name for p in paths] == [f"loans-0000{i}.csv" for i in range(4)]
    header = ",".join(COLUMNS)
    counts = []
    for path in paths:
        lines = path.read_text().splitlines()
        assert lines[0] == header
        counts.append(len(lines) - 1)
    assert counts == [251, 250, 250, 250]


def test_missing_values_are_written_as_empty_fields(tmp_path: Path) -> None:
    (path,) = generate_to_dir(2_000, tmp_path, seed=5)
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert (frame["emp_length"] == "").sum() > 0
    assert not frame.isin(["nan", "NaN", "None", "null"]).any().any()
    table = generate_loans(2_000, seed=5)
    assert (frame["emp_length"] == "").sum() == table["emp_length"].null_count


def test_rewriting_with_fewer_shards_removes_stale_ones(tmp_path: Path) -> None:
    generate_to_dir(100, tmp_path, shards=3)
    keep = tmp_path / "other-00000.csv"
    keep.write_text("x\n")
    paths = generate_to_dir(100, tmp_path, shards=2)
    assert sorted(tmp_path.iterdir()) == sorted([*paths, keep])


def test_a_failed_write_leaves_the_previous_book_untouched(tmp_path: Path, monkeypatch) -> None:
    before = _read_bytes(generate_to_dir(300, tmp_path, seed=1, shards=2))
    first_block = generate_loans(200, seed=2)

    def failing_blocks(rows: int, seed: int, drift: float):
        yield first_block  # fills the first shard, then the disk "fills up"
        raise OSError("disk full")

    monkeypatch.setattr(generator, "_blocks", failing_blocks)
    with pytest.raises(OSError, match="disk full"):
        generate_to_dir(300, tmp_path, seed=2, shards=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loans-00000.csv", "loans-00001.csv"]
    assert _read_bytes(sorted(tmp_path.iterdir())) == before


def test_write_loans_accepts_a_prefix_and_creates_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er"
    paths = write_loans(generate_loans(10, seed=1), out, shards=2, prefix="book")
    assert paths == [out / "book-00000.csv", out / "book-00001.csv"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": 0},
        {"rows": -5},
        {"rows": 1.5},
        {"rows": True},
        {"seed": -1},
        {"seed": 2**32},
        {"seed": "1"},
        {"drift": -0.1},
        {"drift": math.nan},
        {"drift": math.inf},
        {"drift": "strong"},
        {"shards": 0},
        {"shards": 11},
        {"prefix": "../escape"},
        {"prefix": ""},
    ],
)
def test_bad_arguments_raise_value_error(tmp_path: Path, kwargs: dict) -> None:
    args = {"rows": 10, "out_dir": tmp_path, "seed": 0, "drift": 0.0, "shards": 1, **kwargs}
    with pytest.raises(ValueError):
        generate_to_dir(**args)
    assert not list(tmp_path.iterdir())


def test_negative_drift_message_is_clear() -> None:
    with pytest.raises(ValueError, match="drift must be a finite number >= 0"):
        generate_loans(10, drift=-1.0)


def test_write_loans_rejects_bad_input(tmp_path: Path) -> None:
    table = generate_loans(5, seed=0)
    with pytest.raises(ValueError, match="rows"):
        write_loans(table.slice(0, 0), tmp_path)
    with pytest.raises(ValueError, match="shards"):
        write_loans(table, tmp_path, shards=6)
    with pytest.raises(TypeError):
        write_loans(table.to_pandas(), tmp_path)  # type: ignore[arg-type]
