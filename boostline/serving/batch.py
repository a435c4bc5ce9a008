"""Batch predictions on a file, the way a batch transform job makes them.

Like a transform job with SplitType=Line, BatchStrategy=MultiRecord and
AssembleWith=Line: the input is split into records at line ends, records are
packed into mini-batches of at most MaxPayloadInMB (6 MB by default), each
mini-batch goes through the same hooks as an endpoint request
(training_scripts/inference.py), and the answers are written one after the
other, each followed by a newline. With text/csv or application/jsonlines in
and out, output line i is the prediction for input line i.

`application/json` input is taken one record (line) per request, as with
BatchStrategy=SingleRecord, since several JSON documents do not make one.

Errors stop the run with the input line that caused them (BatchError); the
output file is written only when every line succeeded.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from training_scripts import inference

DEFAULT_MAX_PAYLOAD_MB = 6


class BatchError(RuntimeError):
    """A record the model could not answer; names the input line (1-based)."""

    def __init__(self, message: str, line: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.status = status


@dataclass(frozen=True)
class BatchResult:
    output_file: Path
    records: int
    batches: int
    seconds: float


def predict_file(
    model_dir: Path,
    input_file: Path,
    output_file: Path,
    content_type: str = inference.CSV,
    accept: str = inference.CSV,
    max_payload_mb: float = DEFAULT_MAX_PAYLOAD_MB,
    threshold: float | None = None,
    explain: bool = False,
    top_k: int = inference.DEFAULT_TOP_K,
    threads: int | None = None,
) -> BatchResult:
    """Predict every line of input_file into output_file; see the module doc."""
    started = time.monotonic()
    if not 0 < max_payload_mb <= 100:
        raise ValueError(f"max_payload_mb must be above 0 and at most 100, got {max_payload_mb}")
    limit = int(max_payload_mb * 1024 * 1024)
    model = inference.load_model(
        Path(model_dir), threshold=threshold, threads=threads or os.cpu_count() or 1
    )
    attributes = f"explain=true;top_k={top_k}" if explain else None
    single_record = _media(content_type) == inference.JSON
    one_line_per_record = not single_record and _media(accept) != inference.JSON
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    partial = output_file.with_name(f".{output_file.name}.partial")
    records = batches = 0
    try:
        with open(input_file, "rb") as source, open(partial, "wb") as sink:
            for first_line, lines in _mini_batches(source, limit, single_record):
                body = b"".join(lines)
                response = inference.handle(model, body, content_type, accept, attributes)
                if response.status != 200:
                    raise _batch_error(response, first_line)
                if one_line_per_record:
                    answered = response.body.count(b"\n") + 1
                    if answered != len(lines):
                        raise BatchError(
                            f"lines {first_line}-{first_line + len(lines) - 1}: "
                            f"{answered} answers for {len(lines)} records"
                        )
                sink.write(response.body)
                sink.write(b"\n")
                records += len(lines)
                batches += 1
        if records == 0:
            raise BatchError(f"{input_file} holds no records")
        os.replace(partial, output_file)
    finally:
        partial.unlink(missing_ok=True)
    return BatchResult(output_file, records, batches, round(time.monotonic() - started, 3))


def _mini_batches(source, limit: int, single_record: bool) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) of at most `limit` bytes each.

    A blank line between records is an error (its answer would shift every later
    line); blank lines at the end of the file are ignored.
    """
    batch: list[bytes] = []
    size = 0
    first = 1
    blank = None
    for number, line in enumerate(source, 1):
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise BatchError(f"line {blank} is empty", line=blank, status=400)
        if len(line) > limit:
            raise BatchError(
                f"line {number} is {len(line)} bytes, over the {limit}-byte mini-batch limit "
                "(MaxPayloadInMB)",
                line=number,
                status=413,
            )
        if batch and (single_record or size + len(line) > limit):
            yield first, batch
            batch, size = [], 0
        if not batch:
            first = number
        batch.append(line)
        size += len(line)
    if batch:
        yield first, batch


def _batch_error(response: inference.Response, first_line: int) -> BatchError:
    """The hook's error, with its row (within the mini-batch) turned into the file's line."""
    error = json.loads(response.body)
    row = error.get("row")
    message = error["error"]
    if row is None:
        return BatchError(
            f"mini-batch from line {first_line}: {message} (status {response.status})",
            status=response.status,
        )
    line = first_line + row - 1
    located, found = re.subn(rf"^row {row}\b", f"line {line}", message)
    message = located if found else f"line {line}: {message}"
    return BatchError(f"{message} (status {response.status})", line, response.status)


def _media(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()
