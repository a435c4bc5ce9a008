"""Scores that join back: data owners' CSVs in, `<id column>,probability,decision` out.

The batch pipeline `{project}-{stage}-batch` (the serving stack) runs this script in the
XGBoost image as its one Processing step, with the live model package and decision
threshold as its parameters; `boostline predict` and `boostline batch run` run the same
functions on this machine.

Each input is the file a data owner writes: a header row naming the schema's columns,
then one applicant per row, the id column and any PII or target columns included. Only
the model's feature columns are sent to the inference hooks (training_scripts/inference.py:
the endpoint's own encoding, checks and threshold; it refuses PII fields, so they are
never sent); the output has a header, `<id column>,probability,decision`, row i answering
input row i (blank lines are not rows). Without an id column the first column is `row`,
the row's number. Rows are read and scored in batches of `--batch-rows`, so a file of any
size streams through bounded memory.

Errors name the file and the line (the header is line 1) and the field, never a value: a
value shown by the model's check is replaced by "the value". Every header is checked
before anything is scored; an output file appears only complete (written beside it, then
renamed), and when one file fails the outputs of this run are removed, so a failed job
leaves nothing half written to upload.

CLI::

    python batch_score.py --input-dir DIR --output-dir DIR \
        (--model-package ARN | --model-data URI_OR_FILE | --model-dir DIR) \
        [--threshold 0.42] [--id-column NAME] [--batch-rows 2000]

The input directory's `*.csv` files (in sub-folders too) are scored into the same relative
paths under the output directory.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import inference
    from job_message import report_failure, write_message
    from monitor_io import (
        NONE,
        ClientFactory,
        MonitorError,
        boto3_client,
        describe_package,
        fetch_file,
        model_data_url,
    )
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import inference
    from training_scripts.job_message import report_failure, write_message
    from training_scripts.monitor_io import (
        NONE,
        ClientFactory,
        MonitorError,
        boto3_client,
        describe_package,
        fetch_file,
        model_data_url,
    )

DEFAULT_BATCH_ROWS = 2000
ROW_COLUMN = "row"  # the first output column when the input has no id column
OUTPUT_COLUMNS = ("probability", "decision")


class ScoringError(RuntimeError):
    """A file that cannot be scored; names the file and line, never a value."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class FileScores:
    source: Path
    output: Path
    rows: int
    batches: int
    seconds: float


# ------------------------------------------------------------------ one file


def read_header(source: Path, label: str, features: list[str]) -> list[str]:
    """The file's header, checked to name every feature column."""
    with _open(source) as handle:
        try:
            header = next(csv.reader(handle), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            reason = _reason(exc)
            raise ScoringError(f"{label}:1: the header is not readable: {reason}", 1) from None
    if not header:
        raise ScoringError(f"{label}: the file is empty (no header row)", 1)
    missing = [f for f in features if f not in header]
    if missing:
        raise ScoringError(f"{label}:1: the header lacks feature column(s) {', '.join(missing)}", 1)
    repeated = [f for f in features if header.count(f) > 1]
    if repeated:  # which of the two would be the feature?
        raise ScoringError(f"{label}:1: the header names {', '.join(repeated)} twice", 1)
    return header


def score_file(
    model: inference.Model,
    source: Path,
    output: Path,
    *,
    id_column: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    label: str | None = None,
) -> FileScores:
    """Score one data owner's CSV into `output`; see the module docstring."""
    started = time.monotonic()
    source, output = Path(source), Path(output)
    label = label or str(source)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    features = list(model.feature_names)
    header = read_header(source, label, features)
    positions = [(name, header.index(name)) for name in features]
    key = header.index(id_column) if id_column and id_column in header else None
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    rows = batches = 0
    try:
        with _open(source) as handle, open(partial, "w", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink, lineterminator="\n")
            writer.writerow([id_column if key is not None else ROW_COLUMN, *OUTPUT_COLUMNS])
            for batch in _batches(handle, label, len(header), batch_rows):
                instances = [
                    {name: values[j] for name, j in positions if values[j] != ""}
                    for _, values in batch
                ]
                response = inference.handle(model, instances, inference.JSON, inference.CSV)
                if response.status != 200:
                    raise _located(response, batch, instances, label)
                answers = response.body.decode("utf-8").split("\n")
                if len(answers) != len(batch):
                    raise ScoringError(
                        f"{label}:{batch[0][0]}: {len(answers)} answers for {len(batch)} rows"
                    )
                for (_line, values), answer in zip(batch, answers, strict=True):
                    rows += 1
                    writer.writerow(
                        [values[key] if key is not None else rows, *answer.split(",", 1)]
                    )
                batches += 1
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return FileScores(source, output, rows, batches, round(time.monotonic() - started, 3))


def _open(source: Path):
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
    return open(source, encoding="utf-8-sig", newline="")


def _batches(
    handle: Any, label: str, width: int, size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    """(line, values) of each data row, `size` rows at a time; blank lines are skipped."""
    reader = csv.reader(handle)
    batch: list[tuple[int, list[str]]] = []
    line = 1
    try:
        next(reader)  # the header, checked by read_header
        for values in reader:
            line = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if len(values) != width:
                raise ScoringError(
                    f"{label}:{line}: {len(values)} columns, the header names {width}", line
                )
            batch.append((line, values))
            if len(batch) == size:
                yield batch
                batch = []
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ScoringError(f"{label}:{line + 1}: not readable: {_reason(exc)}", line + 1) from None
    if batch:
        yield batch


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8"
    return type(exc).__name__  # csv.Error's text may quote the row


def _located(
    response: inference.Response,
    batch: list[tuple[int, list[str]]],
    instances: list[dict[str, str]],
    label: str,
) -> ScoringError:
    """The hook's error on the file's line, with any value it shows replaced."""
    error = json.loads(response.body)
    message, row, field = str(error.get("error", "")), error.get("row"), error.get("field")
    if not isinstance(row, int) or not 1 <= row <= len(batch):
        return ScoringError(f"{label}:{batch[0][0]}: {message} (rows from here)", batch[0][0])
    line = batch[row - 1][0]
    prefix = f"row {row}, field {field!r}: " if field else f"row {row}: "
    reason = message[len(prefix) :] if message.startswith(prefix) else message
    if field:
        reason = _without_value(reason, instances[row - 1].get(field))
        return ScoringError(f"{label}:{line}: field {field!r}: {reason}", line)
    return ScoringError(f"{label}:{line}: {reason}", line)


def _without_value(reason: str, raw: str | None) -> str:
    """The reason with the field's value (as the checks print it) replaced."""
    if raw is None:
        return reason
    text = raw.strip()
    shown = {repr(text), repr(text[:40]), text}
    with contextlib.suppress(ValueError):
        shown.add(f"{float(text):g}")
    for value in sorted((s for s in shown if s), key=len, reverse=True):
        if reason.startswith(value + " "):
            return "the value" + reason[len(value) :]
    return reason


# ------------------------------------------------------------------ a folder


def input_files(input_dir: Path) -> list[Path]:
    input_dir = Path(input_dir)
    if input_dir.is_file():
        return [input_dir]
    files = sorted(
        p
        for p in input_dir.rglob("*")
        if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")
    )
    if not files:
        raise ScoringError(f"no CSV files under {input_dir}")
    return files


def score_dir(
    model: inference.Model,
    input_dir: Path,
    output_dir: Path,
    *,
    id_column: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    echo: Callable[[str], None] = print,
) -> list[FileScores]:
    """Score every CSV under input_dir into the same relative path under output_dir."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    files = input_files(input_dir)
    root = input_dir if input_dir.is_dir() else input_dir.parent
    labels = {f: f.relative_to(root).as_posix() for f in files}
    for file in files:  # every header first: a bad file fails the run before any scoring
        read_header(file, labels[file], list(model.feature_names))
    done: list[FileScores] = []
    try:
        for file in files:
            scored = score_file(
                model,
                file,
                output_dir / labels[file],
                id_column=id_column,
                batch_rows=batch_rows,
                label=labels[file],
            )
            done.append(scored)
            echo(f"{labels[file]}: {scored.rows} row(s) in {scored.batches} batch(es)")
    except BaseException:
        for scored in done:  # nothing half done to upload
            scored.output.unlink(missing_ok=True)
        raise
    return done


# ------------------------------------------------------------------ the model


def unpack_model(archive: Path, target: Path) -> Path:
    """A model.tar.gz unpacked into target (no absolute paths, links or `..`)."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                name = member.name
                if (
                    not (member.isfile() or member.isdir())
                    or name.startswith("/")
                    or (".." in Path(name).parts)
                ):
                    raise ScoringError(f"{archive}: member {name!r} is not a plain file")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                tar.extractall(target, members=members)  # noqa: S202 - members checked above
    except (tarfile.TarError, OSError) as exc:
        raise ScoringError(f"cannot unpack the model archive {archive}: {exc}") from None
    return target


def _model_data(description: dict) -> str:
    try:
        return model_data_url(description)
    except MonitorError as exc:
        raise ScoringError(str(exc)) from None


def _described(model_package: str, client: ClientFactory) -> dict:
    if not model_package or model_package == NONE:
        raise ScoringError("no live model package (ModelPackageArn is none): nothing to score with")
    try:
        return describe_package(model_package, client)
    except MonitorError as exc:
        raise ScoringError(str(exc)) from None


def package_threshold(description: dict) -> float | None:
    """The decision threshold registered with the package (its container's environment)."""
    containers = description.get("InferenceSpecification", {}).get("Containers", [])
    for container in containers:
        value = container.get("Environment", {}).get(inference.THRESHOLD_ENV)
        if value not in (None, ""):
            return inference.check_threshold(float(value), inference.THRESHOLD_ENV)
    return None


def load_scoring_model(
    args: argparse.Namespace, work: Path, client: ClientFactory = boto3_client
) -> inference.Model:
    threshold = args.threshold
    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        uri = args.model_data
        if not uri:
            description = _described(args.model_package, client)
            uri = _model_data(description)
            if threshold is None:  # the threshold the package was registered with
                threshold = package_threshold(description)
        try:
            archive = fetch_file(uri, work / "model.tar.gz", client)
        except MonitorError as exc:
            raise ScoringError(str(exc)) from None
        model_dir = unpack_model(archive, work / "model")
    if threshold is None and not os.environ.get(inference.THRESHOLD_ENV):
        # Never a default 0.5: a threshold chosen for another model would decide for this one.
        raise ScoringError(
            "no decision threshold: pass --threshold, or score a package registered with one"
        )
    return inference.load_model(model_dir, threshold=threshold)


# ------------------------------------------------------------------ the job


def _threshold(value: str) -> float | None:
    if value in ("", NONE):
        return None
    try:
        return inference.check_threshold(float(value), "--threshold")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Score data owners' CSVs with the live model")
    p.add_argument("--input-dir", type=Path, required=True, help="CSV file or folder of CSVs")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--model-package", default=NONE, help="live model package version ARN")
    p.add_argument("--model-data", default="", help="model.tar.gz URI (instead of the package's)")
    p.add_argument("--model-dir", default="", help="an unpacked model directory")
    p.add_argument("--threshold", type=_threshold, default=None, help="the live decision threshold")
    p.add_argument(
        "--id-column", default="", help="the id column (default: the model's feature manifest's)"
    )
    p.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    args = p.parse_args(argv)
    if args.batch_rows < 1:
        p.error("--batch-rows must be at least 1")
    return args


def run(args: argparse.Namespace, client: ClientFactory = boto3_client) -> list[FileScores]:
    with tempfile.TemporaryDirectory(prefix="boostline-batch-") as tmp:
        model = load_scoring_model(args, Path(tmp), client)
        id_column = args.id_column or (model.manifest or {}).get("id_column") or None
        scored = score_dir(
            model, args.input_dir, args.output_dir, id_column=id_column, batch_rows=args.batch_rows
        )
    rows = sum(s.rows for s in scored)
    message = f"Completed: {rows} row(s) of {len(scored)} file(s) scored."
    print(message, flush=True)
    write_message(message, create=False)
    return scored


def main(argv: list[str] | None = None, client: ClientFactory = boto3_client) -> int:
    try:
        run(parse_args(argv), client)
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure ends with a clear message
        report_failure(f"batch scoring failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
