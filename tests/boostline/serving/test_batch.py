"""Batch predictions on files, mini-batched like a transform job with SplitType=Line."""

from __future__ import annotations

import json

import pytest

from boostline.serving.batch import BatchError, predict_file
from training_scripts import inference

CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"


@pytest.fixture(scope="module")
def book(tmp_path_factory, make_loan_book) -> dict:
    """A small model dir laid out as train.py writes it, and 20k encoded rows."""
    book = make_loan_book(tmp_path_factory.mktemp("batch"), seed=9)
    root, model_dir = book.root, book.model_dir("model")
    validation = (root / "prep" / "validation" / "validation.csv").read_text().splitlines()
    features = [line.split(",", 1)[1] for line in validation]
    lines = (features * (20_000 // len(features) + 1))[:20_000]
    csv_file = root / "input.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    return {"root": root, "model_dir": model_dir, "lines": lines, "csv_file": csv_file}


@pytest.fixture(scope="module")
def model(book) -> inference.Model:
    return inference.load_model(book["model_dir"], threads=1)


def test_20k_rows_in_mini_batches_match_the_hooks(book, model, tmp_path) -> None:
    out = tmp_path / "out" / "predictions.csv"
    result = predict_file(book["model_dir"], book["csv_file"], out, max_payload_mb=0.25, threads=1)
    assert result.records == 20_000
    assert result.batches == pytest.approx(book["csv_file"].stat().st_size / (0.25 * 2**20), abs=1)
    whole = inference.handle(model, "\n".join(book["lines"]).encode(), CSV, CSV)
    assert whole.status == 200
    assert out.read_bytes() == whole.body + b"\n"
    assert not list(out.parent.glob(".*partial"))


def test_json_lines_and_explanations(book, model, tmp_path) -> None:
    lines = book["lines"][:500]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines))  # no final newline
    out = tmp_path / "out.jsonl"
    predict_file(book["model_dir"], source, out, accept=JSONL, explain=True, top_k=2, threads=1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 500 and all(len(r["reasons"]) == 2 for r in rows)
    expected = inference.predict(model, inference.parse_csv(model, "\n".join(lines)))
    assert [r["probability"] for r in rows] == pytest.approx(expected.tolist(), abs=5e-7)


def test_raw_applications_as_json_lines_and_single_records(book, model, tmp_path) -> None:
    raw = [
        {
            "loan_amount": 5000 + 100 * i,
            "interest_rate": 11.5,
            "installment": 170.2,
            "annual_income": 52000,
            "delinq_2yrs": 0,
            "fico_score": 700 + i,
            "credit_history_years": 12,
            "inq_last_6mths": 1,
            "open_acc": 8,
            "pub_rec": 0,
            "revol_bal": 4000,
            "total_acc": 20,
            "term": "36 months",
            "grade": "B",
            "home_ownership": "RENT",
            "verification_status": "Verified",
            "purpose": "credit_card",
            "addr_state": "CA",
        }
        for i in range(30)
    ]
    source = tmp_path / "apps.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in raw) + "\n\n")  # blank lines at the end
    as_lines = tmp_path / "lines.csv"
    predict_file(book["model_dir"], source, as_lines, content_type=JSONL, accept=CSV)
    single = tmp_path / "single.csv"
    predict_file(book["model_dir"], source, single, content_type=JSON, accept=CSV)
    assert as_lines.read_text() == single.read_text()
    direct = inference.handle(model, json.dumps(raw), JSON, CSV)
    assert as_lines.read_bytes() == direct.body + b"\n"


def test_errors_name_the_input_line(book, tmp_path) -> None:
    lines = list(book["lines"][:5000])
    fields = lines[3456].split(",")
    fields[7] = "9000"  # fico_score on line 3457
    lines[3456] = ",".join(fields)
    source = tmp_path / "bad.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    with pytest.raises(BatchError) as raised:
        predict_file(book["model_dir"], source, out, max_payload_mb=0.05)
    assert raised.value.line == 3457 and raised.value.status == 400
    assert str(raised.value).startswith("line 3457, field 'fico_score': 9000 is above")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))

    source.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:20]))
    with pytest.raises(BatchError, match="line 11 is empty"):
        predict_file(book["model_dir"], source, out)
    source.write_text("")
    with pytest.raises(BatchError, match="no records"):
        predict_file(book["model_dir"], source, out)
    source.write_text(lines[0] + "\n" + "1," * 400_000 + "1\n")
    with pytest.raises(BatchError, match="line 2 is .* over the .*-byte mini-batch limit"):
        predict_file(book["model_dir"], source, out, max_payload_mb=0.5)
