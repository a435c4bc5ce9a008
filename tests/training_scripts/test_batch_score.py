"""batch_score.py: data owners' CSVs scored with the live model, ids joined back."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import batch_score as bs
from training_scripts import inference
from training_scripts.dataset_schema import load_schema

SCHEMA = load_schema(SCHEMA_PATH)
REGION = "us-east-1"


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory, make_loan_book) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("batch-score")
    model_dir = make_loan_book(root / "book", rows=800, seed=5).model_dir("model")
    inputs = root / "inputs"
    (first,) = generate_to_dir(45, inputs, seed=31, shards=1)
    (second,) = generate_to_dir(30, root / "more", seed=32, shards=1)
    (inputs / "region").mkdir()
    second = second.rename(inputs / "region" / "north.csv")
    return {"root": root, "model_dir": model_dir, "inputs": inputs, "files": [first, second]}


def _model(book: dict[str, Any], threshold: float | None = None) -> inference.Model:
    return inference.load_model(book["model_dir"], threshold=threshold, threads=1)


def test_every_file_gets_its_ids_a_header_and_one_answer_per_row(book, tmp_path: Path) -> None:
    out = tmp_path / "out"
    scored = bs.score_dir(_model(book), book["inputs"], out, id_column=SCHEMA.id_column)
    assert [s.output for s in scored] == [
        out / book["files"][0].name,
        out / "region" / "north.csv",
    ]
    for source, result in zip(book["files"], scored, strict=True):
        raw, rows = _rows(source), _rows(result.output)
        assert list(rows[0]) == [SCHEMA.id_column, "probability", "decision"]
        assert [r[SCHEMA.id_column] for r in rows] == [r[SCHEMA.id_column] for r in raw]
        assert result.rows == len(raw)
        assert not set(SCHEMA.pii_columns) & set(rows[0])
    assert not list(out.rglob(".*.partial"))


def test_batches_stream_without_changing_an_answer(book, tmp_path: Path) -> None:
    model, source = _model(book), book["files"][0]
    whole = bs.score_file(model, source, tmp_path / "whole.csv", id_column=SCHEMA.id_column)
    small = bs.score_file(
        model, source, tmp_path / "small.csv", id_column=SCHEMA.id_column, batch_rows=7
    )
    assert (whole.batches, small.batches) == (1, 7)  # 45 rows
    assert small.output.read_bytes() == whole.output.read_bytes()


def test_the_answers_are_the_endpoints_for_the_feature_columns_only(book, tmp_path: Path) -> None:
    model, source = _model(book, threshold=0.2), book["files"][0]
    raw = _rows(source)
    features = [{f: r[f] for f in SCHEMA.feature_names if r[f] != ""} for r in raw]
    endpoint = inference.handle(model, json.dumps(features), inference.JSON, inference.CSV)
    assert endpoint.status == 200
    scored = bs.score_file(model, source, tmp_path / "s.csv", id_column=SCHEMA.id_column)
    assert [f"{r['probability']},{r['decision']}" for r in _rows(scored.output)] == (
        endpoint.body.decode().split("\n")
    )
    # The threshold decides: reject at or above it.
    for row in _rows(scored.output):
        assert (row["decision"] == "reject") == (float(row["probability"]) >= 0.2)
    # The raw rows carry PII; sent as is, the endpoint refuses them.
    with_pii = [
        {**f, **{c: r[c] for c in SCHEMA.pii_columns}} for f, r in zip(features, raw, strict=True)
    ]
    assert inference.handle(model, with_pii, inference.JSON, inference.CSV).status == 400


def test_without_an_id_column_rows_are_numbered(book, tmp_path: Path) -> None:
    lines = book["files"][0].read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, c in enumerate(header) if c != SCHEMA.id_column]
    source = tmp_path / "no-id.csv"
    source.write_text(
        "".join(",".join(line.split(",")[i] for i in keep) + "\n" for line in lines[:4])
        + "\n\n",  # blank lines at the end are not rows
        encoding="utf-8",
    )
    scored = bs.score_file(_model(book), source, tmp_path / "o.csv", id_column=SCHEMA.id_column)
    assert [r["row"] for r in _rows(scored.output)] == ["1", "2", "3"]


def _with_value(source: Path, target: Path, row: int, field: str, value: str) -> Path:
    rows = list(csv.reader(io.StringIO(source.read_text())))
    rows[row][rows[0].index(field)] = value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    target.write_text(buffer.getvalue())
    return target


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("secret-42", "the value is not a number"),
        ("9999", "the value is above the maximum 850"),
        ("", "is required but missing"),
    ],
)
def test_a_bad_value_is_named_by_file_line_and_field_never_by_value(
    book, tmp_path: Path, value: str, reason: str
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.csv").write_bytes(book["files"][0].read_bytes())
    _with_value(book["files"][1], inputs / "b.csv", 12, "fico_score", value)
    out = tmp_path / "out"
    with pytest.raises(bs.ScoringError) as raised:
        bs.score_dir(_model(book), inputs, out, id_column=SCHEMA.id_column, batch_rows=5)
    message = str(raised.value)
    assert message == f"b.csv:13: field 'fico_score': {reason}"
    assert raised.value.line == 13
    # a.csv was scored first; a failed run leaves no output at all.
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_every_header_is_checked_before_anything_is_scored(book, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.csv").write_bytes(book["files"][0].read_bytes())
    lines = book["files"][1].read_text().splitlines()
    (inputs / "b.csv").write_text(lines[0].replace("grade", "grad") + "\n" + lines[1] + "\n")
    with pytest.raises(bs.ScoringError, match=r"^b\.csv:1: the header lacks .*grade"):
        bs.score_dir(_model(book), inputs, tmp_path / "out", id_column=SCHEMA.id_column)
    assert not (tmp_path / "out").exists()
    (inputs / "b.csv").write_text(lines[0] + ",grade\n" + lines[1] + ",A\n")
    with pytest.raises(bs.ScoringError, match=r"^b\.csv:1: the header names grade twice"):
        bs.score_dir(_model(book), inputs, tmp_path / "out", id_column=SCHEMA.id_column)


def test_a_short_row_and_an_empty_folder_are_refused(book, tmp_path: Path) -> None:
    lines = book["files"][0].read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join([lines[0], lines[1], "A-1,private@example.com", ""]))
    with pytest.raises(bs.ScoringError, match=r"short\.csv:3: 2 columns") as raised:
        bs.score_file(_model(book), short, tmp_path / "o.csv", id_column=SCHEMA.id_column)
    assert "example.com" not in str(raised.value)
    assert not (tmp_path / "o.csv").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(bs.ScoringError, match="no CSV files"):
        bs.score_dir(_model(book), tmp_path / "empty", tmp_path / "out")


def _archive(model_dir: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(model_dir.rglob("*")):
            if file.is_file():
                tar.add(file, arcname=file.relative_to(model_dir).as_posix())
    return path


def test_an_archive_with_a_path_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../outside")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(bs.ScoringError, match="not a plain file"):
        bs.unpack_model(archive, tmp_path / "model")
    assert not (tmp_path / "outside").exists()


def test_the_job_scores_with_the_live_package_and_threshold(
    book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = pytest.importorskip("moto", reason="moto is not in the image lane")
    import boto3

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "message"))
    (tmp_path / "message").mkdir()  # as /opt/ml/output is in the container
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="artifacts")
        s3.upload_file(str(_archive(book["model_dir"], tmp_path / "m.tar.gz")), "artifacts", "m/a")
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model_package_group(ModelPackageGroupName="models")
        arn = sm.create_model_package(
            ModelPackageGroupName="models",
            InferenceSpecification={
                "Containers": [{"Image": "xgboost:3.0-5", "ModelDataUrl": "s3://artifacts/m/a"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]

        def client(service: str) -> Any:
            return boto3.client(service, region_name=REGION)

        out = tmp_path / "out"
        argv = ["--input-dir", str(book["inputs"]), "--output-dir", str(out)]
        assert bs.main([*argv, "--model-package", arn, "--threshold", "0.05"], client) == 0
        rows = _rows(out / book["files"][0].name)
        assert list(rows[0])[0] == SCHEMA.id_column  # from the model's feature manifest
        assert all((r["decision"] == "reject") == (float(r["probability"]) >= 0.05) for r in rows)
        assert (tmp_path / "message" / "message").read_text().startswith("Completed: 75 row(s)")
        # Without --threshold: the one the package was registered with, never 0.5.
        out_env = tmp_path / "out-env"
        argv_env = ["--input-dir", str(book["inputs"]), "--output-dir", str(out_env)]
        registered = sm.create_model_package(
            ModelPackageGroupName="models",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "xgboost:3.0-5",
                        "ModelDataUrl": "s3://artifacts/m/a",
                        "Environment": {"BOOSTLINE_DECISION_THRESHOLD": "0.05"},
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]
        assert bs.main([*argv_env, "--model-package", registered], client) == 0
        assert _rows(out_env / book["files"][0].name) == rows
        monkeypatch.delenv("BOOSTLINE_DECISION_THRESHOLD", raising=False)
        assert bs.main([*argv_env, "--model-package", arn], client) == 1
        assert "no decision threshold" in (tmp_path / "message" / "message").read_text()
        assert bs.main([*argv, "--model-package", "none"], client) == 1
    message = (tmp_path / "message" / "message").read_text()
    assert "no live model package" in message


def test_a_threshold_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(SystemExit):
        bs.parse_args(["--input-dir", "i", "--output-dir", "o", "--threshold", "1.5"])
    args = bs.parse_args(["--input-dir", "i", "--output-dir", "o", "--threshold", "none"])
    assert args.threshold is None


def test_the_job_runs_from_a_model_archive_as_the_pipeline_step_does(
    book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "message"))
    (tmp_path / "message").mkdir()
    archive = _archive(book["model_dir"], tmp_path / "model.tar.gz")
    out = tmp_path / "out"
    argv = ["--input-dir", str(book["inputs"]), "--output-dir", str(out), "--batch-rows", "8"]
    assert bs.main([*argv, "--model-data", str(archive), "--threshold", "0.3"]) == 0
    rows = _rows(out / "region" / "north.csv")
    assert len(rows) == 30 and list(rows[0]) == [SCHEMA.id_column, "probability", "decision"]
    assert all((r["decision"] == "reject") == (float(r["probability"]) >= 0.3) for r in rows)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tar")
    assert bs.main([*argv, "--model-data", str(broken)]) == 1
    assert "cannot unpack the model archive" in (tmp_path / "message" / "message").read_text()
