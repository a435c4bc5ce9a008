"""Scores that join back: a data owner's CSV (with its header) in, id + scores out.

The scoring itself is training_scripts/batch_score.py, the script the batch pipeline
runs on SageMaker: feature columns only go through the inference hooks (PII is never
sent), the output is `<id column>,probability,decision` with a header, row i answering
input row i, and errors name the input line (the header is line 1), never a value.
This module only adapts it to `boostline predict` (a BatchResult, a BatchError).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from boostline.serving.batch import BatchError, BatchResult
from training_scripts import batch_score, inference
from training_scripts.dataset_schema import DatasetSchema


def is_raw_csv(path: Path, schema: DatasetSchema) -> bool:
    """Whether the file's first line is a header naming schema columns."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = next(csv.reader(handle), [])
    return bool(set(first) & set(schema.feature_names))


def score_raw_csv(
    model_dir: Path,
    input_file: Path,
    output_file: Path,
    schema: DatasetSchema,
    *,
    threshold: float | None = None,
    batch_rows: int = batch_score.DEFAULT_BATCH_ROWS,
) -> BatchResult:
    started = time.monotonic()
    model = inference.load_model(Path(model_dir), threshold=threshold, threads=os.cpu_count() or 1)
    try:
        scored = batch_score.score_file(
            model,
            Path(input_file),
            Path(output_file),
            id_column=schema.id_column,
            batch_rows=batch_rows,
            label=str(input_file),
        )
    except batch_score.ScoringError as exc:
        raise BatchError(str(exc), line=exc.line) from None
    return BatchResult(
        scored.output, scored.rows, scored.batches, round(time.monotonic() - started, 3)
    )
