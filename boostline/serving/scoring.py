"""Scores that join back: a data owner's CSV (with its header) in, id + scores out.

The input is the file a data owner writes: a header row naming the schema's columns,
then one applicant per row, the id column and any PII or target columns included.
Each row goes to the model as a JSON Lines record of its feature columns only (the
endpoint refuses PII fields, so they are never sent), through the same batch path
as `boostline predict` (boostline.serving.batch); the output is a CSV with a header,
`<id column>,probability,decision`, row i answering input row i. Errors name the
input line (the header is line 1), never a value.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from boostline.serving.batch import BatchError, BatchResult, predict_file
from training_scripts import inference
from training_scripts.dataset_schema import DatasetSchema


def is_raw_csv(path: Path, schema: DatasetSchema) -> bool:
    """Whether the file's first line is a header naming schema columns."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        first = next(csv.reader(handle), [])
    return bool(set(first) & set(schema.feature_names))


def score_raw_csv(
    model_dir: Path,
    input_file: Path,
    output_file: Path,
    schema: DatasetSchema,
    *,
    threshold: float | None = None,
) -> BatchResult:
    input_file, output_file = Path(input_file), Path(output_file)
    features = schema.feature_names
    with open(input_file, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [f for f in features if f not in header]
        if missing:
            raise BatchError(
                f"{input_file}: the header lacks feature column(s) {', '.join(missing)}", line=1
            )
        id_column = schema.id_column if schema.id_column in header else None
        ids: list[str] = []
        with tempfile.TemporaryDirectory(prefix="boostline-score-") as tmp:
            records = Path(tmp) / "records.jsonl"
            with records.open("w", encoding="utf-8") as sink:
                for number, row in enumerate(reader, start=2):
                    if None in row or any(v is None for v in row.values()):
                        raise BatchError(
                            f"{input_file}:{number}: {len(header)} columns expected", line=number
                        )
                    ids.append(row[id_column] if id_column else str(number - 1))
                    sink.write(json.dumps({f: row[f] for f in features if row[f] != ""}) + "\n")
            answers = Path(tmp) / "answers.csv"
            try:
                result = predict_file(
                    model_dir,
                    records,
                    answers,
                    content_type=inference.JSONLINES,
                    accept=inference.CSV,
                    threshold=threshold,
                )
            except BatchError as exc:
                line = exc.line + 1 if exc.line is not None else None
                raise BatchError(
                    f"{input_file}:{line}: {exc}" if line else f"{input_file}: {exc}", line=line
                ) from None
            lines = answers.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(ids):
        raise BatchError(f"{len(lines)} answers for {len(ids)} rows of {input_file}")
    output_file.parent.mkdir(parents=True, exist_ok=True)
    partial = output_file.with_name(f".{output_file.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([id_column or "row", "probability", "decision"])
            for key, answer in zip(ids, lines, strict=True):
                writer.writerow([key, *answer.split(",", 1)])
        os.replace(partial, output_file)
    finally:
        partial.unlink(missing_ok=True)
    return BatchResult(output_file, result.records, result.batches, result.seconds)
