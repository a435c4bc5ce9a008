"""A data owner's CSV scored with its ids joined back, PII never sent."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from boostline.serving.batch import BatchError
from boostline.serving.scoring import is_raw_csv, score_raw_csv
from training_scripts.dataset_schema import load_schema


@pytest.fixture(scope="module")
def scored(tmp_path_factory, make_loan_book):
    root = tmp_path_factory.mktemp("scoring")
    model_dir = make_loan_book(root / "book", rows=800, seed=4).model_dir("model")
    (raw,) = generate_to_dir(60, root / "raw", seed=9, shards=1)
    out = root / "scores.csv"
    result = score_raw_csv(model_dir, raw, out, load_schema(SCHEMA_PATH))
    return {"model": model_dir, "raw": raw, "out": out, "result": result, "root": root}


def test_ids_pass_through_with_a_header_and_one_row_per_applicant(scored) -> None:
    schema = load_schema(SCHEMA_PATH)
    raw = list(csv.DictReader(io.StringIO(scored["raw"].read_text())))
    rows = list(csv.DictReader(io.StringIO(scored["out"].read_text())))
    assert list(rows[0]) == [schema.id_column, "probability", "decision"]
    assert [r[schema.id_column] for r in rows] == [r[schema.id_column] for r in raw]
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    assert scored["result"].records == len(raw)
    # The raw file carries PII columns; the scores do not.
    assert schema.pii_columns and not set(schema.pii_columns) & set(rows[0])


def test_a_raw_file_is_recognised_by_its_header(scored, tmp_path: Path) -> None:
    schema = load_schema(SCHEMA_PATH)
    assert is_raw_csv(scored["raw"], schema)
    encoded = tmp_path / "encoded.csv"
    encoded.write_text("1.0,2.0,3.0\n")
    assert not is_raw_csv(encoded, schema)


def test_a_short_row_is_named_by_its_line_without_its_values(scored, tmp_path: Path) -> None:
    lines = scored["raw"].read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], "A-1,oops", lines[2]]) + "\n")
    with pytest.raises(BatchError, match=r"bad\.csv:3: ") as error:
        score_raw_csv(scored["model"], bad, tmp_path / "out.csv", load_schema(SCHEMA_PATH))
    assert "oops" not in str(error.value)
    assert not (tmp_path / "out.csv").exists()
