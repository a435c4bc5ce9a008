"""Preprocessing, run as a SageMaker Processing job (or locally, the same way).

validate rows against the dataset schema -> drop or hash PII -> train/validation/test
split by a hash of each row's id -> encode categoricals -> write the CSV layout the
XGBoost image and Model Monitor expect (no header, label first, numbers only), the
training set in shards for ShardedByS3Key, and a feature manifest that serving uses so
training and serving encode alike.

Files are read batch by batch (runs of whole lines of about --block-bytes, each parsed
by pyarrow on its own), so memory is bounded by the batch, not by the book. Two passes:

  --pass fit     on each of N instances (ShardedByS3Key over the raw files): validate
                 this host's rows and write its partial statistics, fit/fit-<host>.json
                 (category counts, numeric sums, label and rejection counts;
                 preprocess_stats.py)
  --pass encode  on each of N instances, with every host's partials as --fit-input:
                 merge them (every host the same result; the first sorted host writes the
                 manifest and the report), then stream this host's files again: mask PII,
                 encode, split, write
  (no --pass)    both, in one process, on one instance: the same code

The encode pass reads exactly the bytes the fit pass read (new data may land in the raw
prefix between the steps, and the encode step downloads the files again): the fit pass
records each file's key, size and digest, taken from the bytes as it parses them; before
writing anything the encode pass refuses a file added, removed, resized or dealt to another
host, then verifies each digest as it reads. A file that differs fails the host with a
message naming the file (never its content), and the host removes what it had written. The
one-process mode checks its second reading against its first the same way.

The split of a row is decided by the SHA-256 of `split:<id>` (the schema's id, after PII
hashing), so a row lands in the same split on every run, on whichever host and in
whichever batch it is read, however the data grows. A row without an id (no id column,
or an empty cell) is split by the hash of its content: `split-row:` + the raw text of
its target, feature and sensitive columns (in the schema's order, joined by U+001F), so
identical rows share a split. (Not the file name and row number: those change when the
raw files are cut differently.) --train-shards is the number of training files per host.

Outputs under --output-dir (default /opt/ml/processing/output), with one host:
  train/train-00000.csv ...     label + features, no header
  validation/validation.csv     label + features, no header
  test/test.csv                 label + features, no header
  test/test_meta.csv            per test row: id (hashed if PII), sensitive columns
  manifest/feature_manifest.json
  report/preprocess_report.json, report/rejected_rows.csv
With N hosts each host names its files by host, so they never collide:
train/train-<host>-00000.csv, validation/validation-<host>.csv, test/test-<host>.csv,
test/test_meta-<host>.csv (row i describes row i of test-<host>.csv),
report/rejected_rows-<host>.csv; a host with no rows of a split writes no file for it.

Runs in the SageMaker XGBoost image: stdlib, numpy, pandas, pyarrow, PyYAML.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

try:  # run as a script from the source dir (SageMaker) or imported as a package
    from dataset_schema import DatasetSchema, load_schema, normalise_label
    from job_message import positions_only, report_failure
    from preprocess_stats import (
        RESOURCE_CONFIG,
        SPLITS,
        InputFile,
        Merged,
        NumericStats,
        Partial,
        job_hosts,
        merge,
        read_partials,
        write_partial,
    )
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts.dataset_schema import DatasetSchema, load_schema, normalise_label
    from training_scripts.job_message import positions_only, report_failure
    from training_scripts.preprocess_stats import (
        RESOURCE_CONFIG,
        SPLITS,
        InputFile,
        Merged,
        NumericStats,
        Partial,
        job_hosts,
        merge,
        read_partials,
        write_partial,
    )

PROCESSING = Path("/opt/ml/processing")
MANIFEST_VERSION = 1
SALT_ENV = "BOOSTLINE_PII_SALT"
SALT_SECRET_ENV = "BOOSTLINE_PII_SALT_SECRET_ARN"  # on AWS: a Secrets Manager secret
CSV_SUFFIXES = (".csv", ".csv.gz")
REJECTED_ROWS_SHOWN = 10_000  # in all hosts' rejected_rows files together
# CSV bytes per batch: the batch bounds the memory. Each batch is parsed by pyarrow in
# blocks of PARSE_BLOCK_BYTES, on several threads.
DEFAULT_BLOCK_BYTES = 4 << 20
PARSE_BLOCK_BYTES = 1 << 20
TRAIN, VALIDATION, TEST = 0, 1, 2
# The raw files' digest, over every byte both passes read: blake2b, 1.75x as fast as
# SHA-256 on a CPU without the SHA extensions, which the Xeons of ml.m5 (preprocess's
# instance type) lack (SHA-256 wins only with them). It detects a change between the
# passes, no attacker; 32 bytes are plenty.
DIGEST = "blake2b"
DIGEST_BYTES = 32
NAMES_SHOWN = 5  # file names per list in an error line


class PreprocessError(RuntimeError):
    """Preprocessing cannot go on; the message says why and what to do."""


class InputChanged(PreprocessError):
    """A raw file is not the one the fit pass read."""


@dataclass(frozen=True)
class Settings:
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    train_shards: int = 4
    max_rejected_fraction: float = 0.05
    training_instance_count: int = 1
    block_bytes: int = DEFAULT_BLOCK_BYTES

    def check(self, hosts: int = 1) -> None:
        if self.train_shards < 1:
            raise PreprocessError("--train-shards must be at least 1")
        # ShardedByS3Key hands out whole files: a training host beyond the shard count
        # gets no data and is paid for nothing. Stop before any work is done. Each of the
        # preprocessing hosts writes train_shards files.
        if self.training_instance_count > self.train_shards * hosts:
            raise PreprocessError(
                f"{_too_many_hosts(self.training_instance_count, self.train_shards * hosts)}; "
                "raise preprocess.train_shards or lower the TrainingInstanceCount parameter"
            )
        if not 0 < self.validation_fraction < 1 or not 0 < self.test_fraction < 1:
            raise PreprocessError("split fractions must lie between 0 and 1")
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise PreprocessError(
                f"validation ({self.validation_fraction}) and test ({self.test_fraction}) "
                "fractions leave less than 10 % of the rows for training"
            )
        if self.block_bytes < 1 << 16:
            raise PreprocessError("--block-bytes must be at least 65536")


# ---------------------------------------------------------------- reading


def find_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PreprocessError(f"input {path} does not exist")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(CSV_SUFFIXES) and not p.name.startswith(".")
    )
    if not files:
        raise PreprocessError(f"no CSV files under {path}")
    return files


def host_inputs(path: Path, hosts: list[str], host: str) -> list[Path]:
    """This host's raw files; with several hosts, one without a file is refused."""
    if len(hosts) > 1 and path.is_dir() and not any(True for _ in _csv_files(path)):
        raise PreprocessError(
            f"host {host} of {len(hosts)} got no raw CSV file under {path}: ShardedByS3Key "
            "hands each instance whole files, so use at most as many instances as there are "
            "raw files"
        )
    return find_inputs(path)


def _csv_files(path: Path) -> Iterator[Path]:
    for p in path.rglob("*"):
        if p.is_file() and p.name.endswith(CSV_SUFFIXES) and not p.name.startswith("."):
            yield p


def input_keys(root: Path, files: list[Path]) -> list[str]:
    """Each file's key: its path below the input folder (files of one name may sit in
    several folders, as objects under one S3 prefix do)."""
    if root.is_file():
        return [root.name]
    return [f.relative_to(root).as_posix() for f in files]


def find_schema(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        if len(found) != 1:
            raise PreprocessError(f"expected one schema file in {path}, found {len(found)}")
        return found[0]
    return path


@dataclass
class RawBatch:
    file: Path
    first_line: int  # the file line of the batch's first row (the header is line 1)
    table: pa.Table  # every column as nullable strings


class _HashingReader:
    """A raw file's bytes as stored, hashed and counted as they are read (a .gz is
    decompressed by pyarrow reading through this)."""

    def __init__(self, file: Path) -> None:
        self._file = file.open("rb")
        self._hash = hashlib.blake2b(digest_size=DIGEST_BYTES)
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the file, block by block."""
        while self.read(DEFAULT_BLOCK_BYTES):
            pass

    def readable(self) -> bool:
        return True

    def __enter__(self) -> _HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()

    def digest(self) -> str:
        return f"{DIGEST}:{self._hash.hexdigest()}"


class InputCheck:
    """Each raw file's size and digest, from the bytes read_batches parses.

    With `expected` (the fit pass's records of these files) each file is verified as its
    last byte is read: a file that differs raises InputChanged, naming the file by its key
    and never quoting its content.
    """

    def __init__(self, keys: list[str], host: str, expected: list[InputFile] | None = None) -> None:
        self.keys = keys
        self.host = host
        self.expected = None if expected is None else {f.key: f for f in expected}
        self.read: list[InputFile] = []
        self._current: tuple[int, Path] | None = None
        self._reader: _HashingReader | None = None

    def open(self, index: int, file: Path) -> None:
        """Before anything of file `index` is read (its header too)."""
        self._current, self._reader = (index, file), None

    def reader(self) -> _HashingReader:
        assert self._current is not None
        self._reader = _HashingReader(self._current[1])
        return self._reader

    def close(self) -> None:
        """At the end of the current file: record it, and verify it."""
        assert self._current is not None and self._reader is not None
        index, reader = self._current[0], self._reader
        self._current = self._reader = None
        got = InputFile(self.keys[index], reader.size, reader.digest())
        self.read.append(got)
        if self.expected is not None:
            problem = _difference(self.expected.get(got.key), got)
            if problem:
                raise self.changed(index, problem)

    def settle(self) -> InputChanged | None:
        """After a failure while a file was read: finish reading it (bytes only, no
        parsing) and say whether it is not the file the fit pass read, which is then
        the reason to give."""
        if self.expected is None or self._current is None:
            return None
        index = self._current[0]
        reader = self._reader
        try:
            if reader is None or reader.closed:
                reader = self.reader()  # not opened yet, or closed: all of it again
            reader.drain()
            reader.close()
        except OSError:
            return None
        got = InputFile(self.keys[index], reader.size, reader.digest())
        problem = _difference(self.expected.get(got.key), got)
        return self.changed(index, problem) if problem else None

    def changed(self, index: int, problem: str) -> InputChanged:
        return InputChanged(
            f"raw file {self.keys[index]} changed after the fit pass read it ({problem}): "
            f"the fitted statistics no longer describe it, so host {self.host} keeps no "
            "output. Run the fit and the encode pass again over input that does not change "
            "between them"
        )


def _difference(expected: InputFile | None, got: InputFile) -> str | None:
    if expected is None:
        return "the fit pass did not read it"
    if expected.size != got.size:
        return f"{expected.size} bytes then, {got.size} now"
    if expected.digest.split(":")[0] != DIGEST:
        return f"the fit pass took a {expected.digest.split(':')[0]} digest, not {DIGEST}"
    if expected.digest != got.digest:
        return f"same size, another {DIGEST} digest"
    return None


def read_batches(
    files: list[Path], block_bytes: int, check: InputCheck | None = None
) -> Iterator[RawBatch]:
    """Every file's rows, batch by batch, all columns as nullable strings.

    A batch is the rows of about `block_bytes` of CSV, cut at a line end and parsed on
    its own with the header in front: memory holds one batch. (pyarrow's streaming
    reader was tried: it reads ahead of a slow consumer, up to most of the file.) Like
    pyarrow's reader with its defaults, this takes a line end to end a row. `check`
    takes each file's size and digest on the way (see InputCheck).
    """
    columns: list[str] | None = None
    if check is None:
        check = InputCheck([str(f) for f in files], "")
    for index, file in enumerate(files):
        check.open(index, file)
        header = _header(file)
        if columns is not None and header != columns:
            raise PreprocessError(
                f"{file}: columns differ from {files[0].name}: {header} vs {columns}"
            )
        columns = header
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        line = 2
        try:
            for head, chunk in _line_chunks(file, check.reader(), block_bytes):
                table = _parse(head + chunk, convert)
                if table.num_rows:
                    yield RawBatch(file, line, table)
                    line += table.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise PreprocessError(f"{file}: {_read_error(file, exc)}") from None
        check.close()


def _line_chunks(file: Path, raw: _HashingReader, size: int) -> Iterator[tuple[bytes, bytes]]:
    """(header line, about `size` bytes of whole lines) until the file ends; every byte
    of the file is read through `raw`, so its digest covers the file as stored."""
    compressed = file.name.endswith(".gz")
    with pa.input_stream(raw, compression="gzip") if compressed else raw as stream:
        buffer = b""
        while b"\n" not in buffer:
            data = stream.read(size)
            if not data:
                raw.drain()
                return  # a header only, or nothing
            buffer += data
        cut = buffer.index(b"\n") + 1
        head, rest = buffer[:cut], buffer[cut:]
        while True:
            data = stream.read(size)
            if not data:
                raw.drain()  # to the end of the file as stored (a .gz's trailing bytes)
                if rest.strip():
                    yield head, rest
                return
            rest += data
            cut = rest.rfind(b"\n") + 1
            if cut and len(rest) >= size:  # else a row longer than `size`: read on
                yield head, rest[:cut]
                rest = rest[cut:]


def _parse(data: bytes, convert: pacsv.ConvertOptions) -> pa.Table:
    options = pacsv.ReadOptions(block_size=PARSE_BLOCK_BYTES)
    try:
        return pacsv.read_csv(pa.BufferReader(data), read_options=options, convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    # a row longer than a parse block: parse the batch as one block (on one thread)
    options = pacsv.ReadOptions(block_size=len(data) + 1)
    return pacsv.read_csv(pa.BufferReader(data), read_options=options, convert_options=convert)


def _read_error(file: Path, exc: Exception) -> str:
    # pyarrow's message can quote a raw row, PII and all: keep only where it failed
    text = str(exc)
    where = _bad_width_row(file) if "columns, got" in text else None
    return where or positions_only(text)


def _open_text(file: Path, encoding: str) -> IO[str]:
    """The file as text for Python's csv reader; a .gz decompressed."""
    if file.name.endswith(".gz"):
        return gzip.open(file, "rt", encoding=encoding, newline="")
    return file.open(encoding=encoding, newline="")


def _header(file: Path) -> list[str]:
    """The header row, read with Python's csv reader (quotes understood); names repeated
    or missing are refused here, naming the file, line and column, never a value."""
    try:
        with _open_text(file, "utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:  # EOFError: a cut .gz
        reason = type(exc).__name__
        raise PreprocessError(f"{file}: line 1: the header cannot be read ({reason})") from None
    if not header:
        raise PreprocessError(f"{file}: line 1: no header row")
    seen: dict[str, int] = {}
    for column, name in enumerate(header, start=1):
        if name in seen:
            raise PreprocessError(
                f"{file}: line 1: column {column} repeats the name {name!r} of column {seen[name]}"
            )
        seen[name] = column
    return header


def _bad_width_row(file: Path) -> str | None:
    """Line and column of the first record whose field count differs from the header's.

    Names positions and the header's column names only, never a value. None when the
    file cannot be scanned here (the caller then says what pyarrow's message allows).
    """
    try:
        with _open_text(file, "utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return None
            end = reader.line_num
            for fields in reader:
                start, end = end + 1, reader.line_num
                if not fields or len(fields) == len(header):
                    continue
                if len(fields) > len(header):
                    column = f"column {len(header) + 1} has no header"
                else:
                    column = f"column {len(fields) + 1} ({header[len(fields)]}) is missing"
                return f"line {start}: expected {len(header)} columns, got {len(fields)}; {column}"
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        return None
    return None


# ---------------------------------------------------------------- PII


def salted_hash(values: pa.ChunkedArray, salt: str) -> pa.Array:
    """SHA-256 of salt + value, 32 hex chars; nulls stay null."""
    salted = hashlib.sha256(salt.encode()).copy

    def digest(value: bytes) -> str:
        h = salted()
        h.update(value)
        return h.hexdigest()[:32]

    raw = values.cast(pa.binary()).to_pylist()
    return pa.array([None if v is None else digest(v) for v in raw], type=pa.string())


def apply_pii(
    table: pa.Table, schema: DatasetSchema, salt: str | None, *, hash_only: set[str] | None = None
) -> pa.Table:
    """Drop PII columns, or replace them with a salted hash where joins need them.

    With `hash_only`, a column to be hashed that is not in it is dropped instead (the fit
    pass needs only the id's hash); the salt is required all the same.
    """
    for pii in schema.pii:
        if pii.column not in table.column_names:
            continue
        index = table.column_names.index(pii.column)
        if pii.action == "drop":
            table = table.remove_column(index)
            continue
        if not salt:
            raise PreprocessError(
                f"column {pii.column!r} is to be hashed but {SALT_ENV} is not set; "
                "set it to a secret salt so hashed ids cannot be reversed by lookup"
            )
        if hash_only is not None and pii.column not in hash_only:
            table = table.remove_column(index)
            continue
        table = table.set_column(index, pii.column, salted_hash(table[pii.column], salt))
    return table


def known_columns(schema: DatasetSchema) -> set[str]:
    return {
        schema.target_column,
        *schema.feature_names,
        *schema.pii_columns,
        *schema.sensitive,
        *([schema.id_column] if schema.id_column else []),
    }


# ---------------------------------------------------------------- validation


# A failed check: its reason and the mask of the rows that failed it, in check order.
Checks = list[tuple[str, np.ndarray]]


def _add_reason(checks: Checks, mask: np.ndarray, text: str) -> None:
    if mask.any():
        checks.append((text, np.asarray(mask, dtype=bool)))


def row_reasons(checks: Checks, rows: np.ndarray) -> list[list[str]]:
    """Each row's reasons, in check order (rows: indices into the batch)."""
    return [[text for text, mask in checks if mask[i]] for i in rows]


def parse_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Float values (NaN where missing) and a mask of present-but-unparsable cells."""
    present = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
    stripped = pc.utf8_trim_whitespace(column)
    try:
        values = pc.cast(stripped, pa.float64()).to_numpy(zero_copy_only=False)
        bad = np.zeros(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # slow path only when some cell is not a number
        import pandas as pd

        values = pd.to_numeric(stripped.to_pandas(), errors="coerce").to_numpy(dtype=float)
        bad = present & np.isnan(values)
    values = np.where(present, values, np.nan)
    return values.astype(np.float64), bad


_NON_FINITE = pa.array(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"])


def validate(
    table: pa.Table, schema: DatasetSchema
) -> tuple[np.ndarray, dict[str, np.ndarray], list[list[str]]]:
    """Labels (1 = positive), parsed numerical columns, and per-row rejection reasons."""
    labels, numbers, checks = check_rows(table, schema)
    return labels, numbers, row_reasons(checks, np.arange(table.num_rows))


def check_rows(table: pa.Table, schema: DatasetSchema) -> tuple[np.ndarray, dict, Checks]:
    """Labels (1 = positive), parsed numerical columns, and the checks rows failed."""
    reasons: Checks = []
    missing_cols = [
        c for c in [schema.target_column, *schema.feature_names] if c not in table.column_names
    ]
    if missing_cols:
        raise PreprocessError(f"input lacks column(s) named by the schema: {missing_cols}")

    labels = _labels(table[schema.target_column], schema, reasons)
    numbers: dict[str, np.ndarray] = {}
    for feature in schema.numerical:
        values, bad = parse_numbers(table[feature.name])
        name = feature.name
        _add_reason(reasons, bad, f"{name}: not a number")
        present = ~np.isnan(values)
        raw_text = pc.utf8_lower(pc.utf8_trim_whitespace(table[name]))
        non_finite = np.asarray(
            pc.is_in(raw_text, _NON_FINITE).fill_null(False).to_numpy(zero_copy_only=False),
            dtype=bool,
        ) | (present & ~np.isfinite(values))
        _add_reason(reasons, non_finite, f"{name}: not a finite number")
        values = np.where(non_finite, np.nan, values)
        present = ~np.isnan(values)
        if feature.required:
            _add_reason(reasons, ~present & ~bad & ~non_finite, f"{name}: missing")
        if feature.min is not None:
            _add_reason(
                reasons, present & (values < feature.min), f"{name}: below minimum {feature.min:g}"
            )
        if feature.max is not None:
            _add_reason(
                reasons, present & (values > feature.max), f"{name}: above maximum {feature.max:g}"
            )
        if feature.integer:
            _add_reason(
                reasons, present & (np.floor(values) != values), f"{name}: not a whole number"
            )
        numbers[name] = values
    for feature in schema.categorical:
        column = pc.utf8_trim_whitespace(table[feature.name])
        missing = np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
        if feature.required:
            _add_reason(reasons, missing, f"{feature.name}: missing")
        if feature.values is not None:
            known = pc.is_in(column, pa.array(list(feature.values))).fill_null(True)
            unknown = ~np.asarray(known.to_numpy(zero_copy_only=False), dtype=bool)
            _add_reason(reasons, unknown, f"{feature.name}: unknown category")
    return labels, numbers, reasons


def _labels(column: pa.ChunkedArray, schema: DatasetSchema, reasons: Checks) -> np.ndarray:
    known = {schema.positive_value}
    if schema.negative_value is not None:
        known.add(schema.negative_value)
    uniques = pc.unique(column)
    mapping = []
    for raw in uniques.to_pylist():
        label = None if raw is None else normalise_label(raw)
        if label is None or label == "":
            mapping.append(-1)
        elif label == schema.positive_value:
            mapping.append(1)
        elif schema.negative_value is None or label in known:
            mapping.append(0)
        else:
            mapping.append(-2)
    # a null cell matches the null among the uniques (index_in does not skip nulls)
    index = pc.index_in(column, value_set=uniques).to_numpy(zero_copy_only=False)
    codes = np.array(mapping, dtype=np.int8)[index.astype(np.int64)]
    _add_reason(reasons, codes == -1, f"{schema.target_column}: missing label")
    _add_reason(
        reasons, codes == -2, f"{schema.target_column}: unknown label (allowed: {sorted(known)})"
    )
    return codes


# ---------------------------------------------------------------- split and encode


def split_units(keys: list[bytes], prefix: str) -> np.ndarray:
    """Per key (UTF-8), SHA-256(prefix + key)'s first 8 bytes as a number in [0, 1)."""
    start = hashlib.sha256(prefix.encode()).copy

    def head(key: bytes) -> bytes:
        h = start()
        h.update(key)
        return h.digest()[:8]

    ints = np.frombuffer(b"".join([head(k) for k in keys]), dtype=">u8")
    return ints.astype(np.float64) / 2.0**64


def assign_splits(
    raw: pa.Table,
    masked: pa.Table,
    schema: DatasetSchema,
    validation_fraction: float,
    test_fraction: float,
) -> np.ndarray:
    """TRAIN, VALIDATION or TEST per row, from its id (see the module docstring)."""
    n = raw.num_rows
    unit = np.empty(n, dtype=np.float64)
    has_id = np.zeros(n, dtype=bool)
    if schema.id_column and schema.id_column in masked.column_names:
        ids = masked[schema.id_column]
        has_id = ~np.asarray(pc.is_null(ids).to_numpy(zero_copy_only=False), dtype=bool)
        if has_id.any():
            present = ids.filter(pa.array(has_id)).cast(pa.binary()).to_pylist()
            unit[has_id] = split_units(present, "split:")
    if not has_id.all():
        unit[~has_id] = split_units(_content_keys(raw, schema, ~has_id), "split-row:")
    codes = np.full(n, TRAIN, dtype=np.int8)
    codes[unit < test_fraction + validation_fraction] = VALIDATION
    codes[unit < test_fraction] = TEST
    return codes


def _content_keys(raw: pa.Table, schema: DatasetSchema, rows: np.ndarray) -> list[bytes]:
    names = [schema.target_column, *schema.feature_names, *schema.sensitive]
    present = [c for c in names if c in raw.column_names]
    chosen = raw.filter(pa.array(rows)).select(present)
    columns = [pc.fill_null(chosen[c], "") for c in present]
    return pc.binary_join_element_wise(*columns, "\x1f").cast(pa.binary()).to_pylist()


def fit_categories(schema: DatasetSchema, counts: dict[str, Counter[str]]) -> dict[str, list[str]]:
    """Category order fixes the codes: the schema's list, else by training frequency."""
    out = {}
    for f in schema.categorical:
        if f.values is not None:
            out[f.name] = list(f.values)
        else:
            seen = counts.get(f.name, Counter())
            out[f.name] = [v for v, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))]
    return out


def encode_features(
    table: pa.Table,
    schema: DatasetSchema,
    numbers: dict[str, np.ndarray],
    categories: dict[str, list[str]],
) -> np.ndarray:
    """The model matrix: numericals as is, categoricals as codes, NaN = missing."""
    columns = [numbers[f.name] for f in schema.numerical]
    for feature in schema.categorical:
        codes = pc.index_in(
            pc.utf8_trim_whitespace(table[feature.name]),
            value_set=pa.array(categories[feature.name], type=pa.string()),
        )
        columns.append(codes.cast(pa.float64()).to_numpy(zero_copy_only=False))
    return np.column_stack(columns).astype(np.float64)


def build_manifest(
    schema: DatasetSchema, categories: dict[str, list[str]], label_counts: dict[str, int]
) -> dict[str, Any]:
    columns: list[dict[str, Any]] = []
    for f in schema.numerical:
        columns.append(
            {
                "name": f.name,
                "kind": "numerical",
                "required": f.required,
                "min": f.min,
                "max": f.max,
                "integer": f.integer,
            }
        )
    for f in schema.categorical:
        columns.append(
            {
                "name": f.name,
                "kind": "categorical",
                "required": f.required,
                # closed: the schema lists the values; any other is bad input, here
                # (the row is rejected) and at the endpoint (a 400). Open: learned from
                # the training rows; an unseen value is missing, here and there.
                "closed": f.values is not None,
                "categories": categories[f.name],
            }
        )
    return {
        "format_version": MANIFEST_VERSION,
        "schema_name": schema.name,
        "target": {
            "column": schema.target_column,
            "positive_value": schema.positive_value,
            "negative_value": schema.negative_value,
        },
        "id_column": schema.id_column,
        "pii_columns": schema.pii_columns,
        "sensitive": list(schema.sensitive),
        "columns": columns,
        "encoding": {
            "csv": "no header; label first in training files; features in 'columns' order",
            "categorical": (
                "index into 'categories'; missing, or unseen in an open list -> empty "
                "(missing); outside a closed list: rejected"
            ),
            "numerical": "as is; missing -> empty (missing)",
        },
        "label_counts": label_counts,
    }


# ---------------------------------------------------------------- one batch


@dataclass
class Batch:
    """A raw batch validated: PII masked, rows judged, each row's split decided."""

    raw: RawBatch
    table: pa.Table  # PII masked, unknown columns dropped
    labels: np.ndarray
    numbers: dict[str, np.ndarray]
    checks: Checks
    ok: np.ndarray
    split: np.ndarray


def prepare(
    raw: RawBatch,
    schema: DatasetSchema,
    salt: str | None,
    settings: Settings,
    *,
    hash_only: set[str] | None = None,
    split: np.ndarray | None = None,
) -> Batch:
    table = raw.table.drop_columns(sorted(set(raw.table.column_names) - known_columns(schema)))
    table = apply_pii(table, schema, salt, hash_only=hash_only)
    labels, numbers, checks = check_rows(table, schema)
    ok = np.ones(table.num_rows, dtype=bool)
    for _, mask in checks:
        ok &= ~mask
    if split is None:
        split = assign_splits(
            raw.table, table, schema, settings.validation_fraction, settings.test_fraction
        )
    return Batch(raw, table, labels, numbers, checks, ok, split)


def split_method(schema: DatasetSchema, header: list[str]) -> str:
    if schema.id_column and schema.id_column in header:
        return (
            f"stable, by a hash of {schema.id_column} (rows without one: by a hash of "
            "their content)"
        )
    return "stable, by a hash of each row's content (no id column)"


# ---------------------------------------------------------------- fit pass


def _settings_digest(schema: DatasetSchema, settings: Settings, salt: str | None) -> dict[str, Any]:
    """What the encode pass must share with the fit pass that made the partials."""
    text = json.dumps(schema.to_dict(), sort_keys=True)
    digest: dict[str, Any] = {
        "schema": schema.name,
        "schema_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "validation_fraction": settings.validation_fraction,
        "test_fraction": settings.test_fraction,
    }
    hashed = {p.column for p in schema.pii if p.action == "hash"}
    if schema.id_column in hashed and salt:
        # the split hashes the hashed id: both passes need the same salt (never stored)
        digest["salt"] = hashlib.sha256(f"boostline-salt-check:{salt}".encode()).hexdigest()[:16]
    return digest


def fit_host(
    files: list[Path],
    schema: DatasetSchema,
    settings: Settings,
    salt: str | None,
    host: str,
    *,
    keys: list[str],
    splits: list[np.ndarray] | None = None,
) -> Partial:
    """One host's partial statistics over its files, one batch in memory at a time.

    With `splits`, each batch's split codes are appended to it (one byte a row), for an
    encode pass in the same process to reuse rather than hash every id again.
    """
    partial = Partial(host=host, settings=_settings_digest(schema, settings, salt))
    partial.files = list(keys)
    partial.columns = _header(files[0]) if files else []
    partial.dropped_columns = sorted(set(partial.columns) - known_columns(schema))
    hash_only = {schema.id_column} if schema.id_column else set()
    categories = {f.name: Counter() for f in schema.categorical}
    numerical = {f.name: NumericStats() for f in schema.numerical}
    check = InputCheck(keys, host)
    for raw in read_batches(files, settings.block_bytes, check):
        batch = prepare(raw, schema, salt, settings, hash_only=hash_only)
        if splits is not None:
            splits.append(batch.split)
        partial.rows_read += raw.table.num_rows
        partial.rows_rejected += int((~batch.ok).sum())
        for text, mask in batch.checks:
            partial.rejection_reasons[text] += int(mask.sum())
        for code, name in enumerate(SPLITS):
            in_split = batch.ok & (batch.split == code)
            positives = int((batch.labels[in_split] == 1).sum())
            partial.split_labels[name][0] += int(in_split.sum()) - positives
            partial.split_labels[name][1] += positives
        train = pa.array(batch.ok & (batch.split == TRAIN))
        for f in schema.categorical:
            values = pc.utf8_trim_whitespace(batch.table[f.name]).filter(train)
            for item in pc.value_counts(values).to_pylist():
                if item["values"] is not None:
                    categories[f.name][item["values"]] += item["counts"]
        for f in schema.numerical:
            kept = batch.numbers[f.name][batch.ok]
            present = kept[~np.isnan(kept)]
            missing = int(len(kept) - len(present))
            if len(present):
                low, high = float(present.min()), float(present.max())
                numerical[f.name].add(present.tolist(), low, high, missing)
            else:
                numerical[f.name].add([], 0.0, 0.0, missing)
    partial.categories = categories
    partial.numerical = numerical
    partial.inputs = check.read
    if partial.dropped_columns:
        log(f"dropping columns the schema does not name: {partial.dropped_columns}")
    log(
        f"{host}: fit over {partial.rows_read} rows from {len(files)} file(s), "
        f"{partial.rows_rejected} rejected"
    )
    return partial


# ---------------------------------------------------------------- encode pass


@dataclass
class Plan:
    """What the merged statistics decide, the same on every host."""

    merged: Merged
    categories: dict[str, list[str]]
    label_counts: dict[str, int]
    failed: bool
    train_shards_total: int
    report: dict[str, Any] = field(default_factory=dict)


def plan(
    merged: Merged, schema: DatasetSchema, settings: Settings, salt: str | None = None
) -> Plan:
    """Check the merged statistics; raise what today's checks raise, before any write."""
    if merged.rows_read == 0:
        raise PreprocessError("no data rows in the input")
    digest = merged.partials[0].settings
    mine = _settings_digest(schema, settings, salt)
    if digest != mine:
        changed = sorted(k for k in {*digest, *mine} if digest.get(k) != mine.get(k))
        raise PreprocessError(
            f"the fit partials were made with another {', '.join(changed)}: run both passes "
            "with the same schema, split fractions and PII salt"
        )
    fraction = merged.rows_rejected / merged.rows_read
    positives = sum(merged.split_labels[s][1] for s in SPLITS)
    negatives = sum(merged.split_labels[s][0] for s in SPLITS)
    label_counts = {"positive": positives, "negative": negatives}
    columns = next((p.columns for p in merged.partials if p.columns), [])
    report: dict[str, Any] = {
        "input_files": [f for p in merged.partials for f in p.files],
        "rows_read": merged.rows_read,
        "rows_rejected": merged.rows_rejected,
        "rejected_fraction": round(fraction, 6),
        "max_rejected_fraction": settings.max_rejected_fraction,
        "rejection_reasons": merged.rejection_reasons,
        "dropped_columns": merged.dropped_columns,
        "pii": {p.column: p.action for p in schema.pii},
        "hosts": merged.hosts,
        "rows_read_per_host": {p.host: p.rows_read for p in merged.partials},
    }
    failed = fraction > settings.max_rejected_fraction
    result = Plan(merged, fit_categories(schema, merged.categories), label_counts, failed, 0)
    result.report = report
    if failed:
        return result
    if min(label_counts.values()) < 3:
        raise PreprocessError(f"both classes need at least 3 rows, got {label_counts}")
    for name in SPLITS:
        negative, positive = merged.split_labels[name]
        if min(negative, positive) == 0:
            raise PreprocessError(
                f"the {name} split has {positive} positive and {negative} negative rows; "
                "every split needs both classes (more data, or larger fractions)"
            )
    shards = sum(min(settings.train_shards, p.train_rows) for p in merged.partials)
    train_rows = sum(merged.split_labels["train"])
    if settings.training_instance_count > shards:
        raise PreprocessError(
            f"{_too_many_hosts(settings.training_instance_count, shards)} (only {train_rows} "
            "training rows)"
        )
    result.train_shards_total = shards
    report.update(
        split_method=split_method(schema, columns),
        numerical={
            name: {
                "count": s.count,
                "missing": s.missing,
                "mean": s.total / s.count if s.count else None,
                "min": s.minimum,
                "max": s.maximum,
            }
            for name, s in merged.numerical.items()
        },
    )
    return result


class _CsvSink:
    """A CSV file opened at its first write, so an empty part leaves no file."""

    def __init__(self, path: Path, *, header: bool) -> None:
        self.path = path
        self.header = header
        self.writer: pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            options = (
                pacsv.WriteOptions(include_header=True)
                if self.header
                else pacsv.WriteOptions(include_header=False, quoting_style="none")
            )
            self.writer = pacsv.CSVWriter(self.path, table.schema, write_options=options)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def matrix_table(labels: np.ndarray, features: np.ndarray) -> pa.Table:
    """Label + features as a table the CSV writer turns into XGBoost's layout
    (NaN becomes an empty field, which XGBoost reads as missing)."""
    arrays = [pa.array(labels.astype(np.int8))]
    for j in range(features.shape[1]):
        arrays.append(pa.array(features[:, j], from_pandas=True))
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])


def encode_host(
    files: list[Path],
    schema: DatasetSchema,
    settings: Settings,
    salt: str | None,
    the_plan: Plan,
    host: str,
    output_dir: Path,
    *,
    keys: list[str],
    started: float,
    splits: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Stream this host's files again and write its part of every output.

    `splits`: the split codes of each batch, as fit_host collected them over these files.
    """
    merged = the_plan.merged
    hosts = merged.hosts
    own = merged.partial(host)
    check_inputs(merged, host, files, keys)
    single = len(hosts) == 1
    lead = host == hosts[0]
    before = sum(p.rows_rejected for p in merged.partials[: hosts.index(host)])
    allowance = max(0, min(own.rows_rejected, REJECTED_ROWS_SHOWN - before))
    report_dir = output_dir / "report"
    suffix = "" if single else f"-{host}"
    rejected = _CsvSink(report_dir / f"rejected_rows{suffix}.csv", header=True)
    sinks = {
        VALIDATION: _CsvSink(output_dir / "validation" / f"validation{suffix}.csv", header=False),
        TEST: _CsvSink(output_dir / "test" / f"test{suffix}.csv", header=False),
    }
    meta = _CsvSink(output_dir / "test" / f"test_meta{suffix}.csv", header=True)
    shard_count = min(settings.train_shards, own.train_rows)
    shards = [
        _CsvSink(
            output_dir
            / "train"
            / (f"train-{k:05d}.csv" if single else f"train-{host}-{k:05d}.csv"),
            header=False,
        )
        for k in range(shard_count)
    ]
    hide = [p.column for p in schema.pii if p.column != schema.id_column]
    meta_columns = [c for c in [schema.id_column, *schema.sensitive] if c]
    train_seen = 0
    test_seen = 0
    check = InputCheck(keys, host, own.inputs)
    batches = read_batches(files, settings.block_bytes, check)
    outputs = [rejected, meta, *sinks.values(), *shards]
    try:
        for number, raw in enumerate(batches):
            known = None
            if splits is not None:
                if number >= len(splits) or len(splits[number]) != raw.table.num_rows:
                    index = files.index(raw.file)
                    raise check.changed(index, "its rows differ from those the fit pass read")
                known = splits[number]
            batch = prepare(raw, schema, salt, settings, split=known)
            bad = np.flatnonzero(~batch.ok)[: max(0, allowance - rejected.rows)]
            if len(bad) or rejected.writer is None:
                rejected.write(_rejected_table(batch, bad, hide))
            if the_plan.failed:
                continue
            features = encode_features(batch.table, schema, batch.numbers, the_plan.categories)
            for code in (VALIDATION, TEST):
                rows = np.flatnonzero(batch.ok & (batch.split == code))
                if len(rows):
                    sinks[code].write(matrix_table(batch.labels[rows], features[rows]))
            rows = np.flatnonzero(batch.ok & (batch.split == TEST))
            if len(rows):
                meta.write(_meta_table(batch.table, meta_columns, rows, test_seen))
                test_seen += len(rows)
            rows = np.flatnonzero(batch.ok & (batch.split == TRAIN))
            # round-robin over the shards in reading order: equal sizes (+-1), and each
            # shard a sample of the whole host's rows rather than a range of its files
            shard_of = (train_seen + np.arange(len(rows))) % max(1, shard_count)
            for k in range(shard_count):
                part = rows[shard_of == k]
                if len(part):
                    shards[k].write(matrix_table(batch.labels[part], features[part]))
            train_seen += len(rows)
    except Exception as exc:
        # a file that changed since the fit pass may fail to parse or validate before its
        # digest is known: then the change is the reason to give
        changed = None if isinstance(exc, InputChanged) else check.settle()
        _discard(outputs)
        if changed is not None:
            raise changed from None
        raise
    finally:
        for sink in outputs:
            sink.close()
        batches.close()
    report = dict(the_plan.report)
    if the_plan.failed:
        report["status"] = "failed"
        if lead:
            _write_json(report_dir / "preprocess_report.json", report)
        top = "; ".join(f"{k} ({v})" for k, v in list(merged.rejection_reasons.items())[:5])
        fraction = merged.rows_rejected / merged.rows_read
        raise PreprocessError(
            f"{merged.rows_rejected} of {merged.rows_read} rows ({fraction:.1%}) were rejected, "
            f"more than the allowed {settings.max_rejected_fraction:.1%}. Most common reasons: "
            f"{top}. Rejected rows: {report_dir / rejected.path.name}"
        )
    split_rows = {name: sum(merged.split_labels[name]) for name in SPLITS}
    manifest = build_manifest(schema, the_plan.categories, the_plan.label_counts)
    report.update(
        status="completed",
        rows_kept=merged.rows_read - merged.rows_rejected,
        label_counts=the_plan.label_counts,
        split_rows=split_rows,
        split_positive_rate={
            name: round(merged.split_labels[name][1] / split_rows[name], 4)
            if split_rows[name]
            else None
            for name in SPLITS
        },
        train_shards=the_plan.train_shards_total,
        features=[c["name"] for c in manifest["columns"]],
        seconds=round(time.monotonic() - started, 3),
    )
    if lead:
        _write_json(output_dir / "manifest" / "feature_manifest.json", manifest)
        _write_json(report_dir / "preprocess_report.json", report)
    log(
        f"{host}: wrote {train_seen} training rows in {shard_count} shard(s), "
        f"{sinks[VALIDATION].rows} validation, {sinks[TEST].rows} test, "
        f"{rejected.rows} rejected row(s) shown"
    )
    return report


def check_inputs(merged: Merged, host: str, files: list[Path], keys: list[str]) -> None:
    """Before any output: this host's raw files are the files its fit pass read, in the
    same order and of the same sizes (their digests are verified as they are read).

    Each host sees only its share of the files (ShardedByS3Key), so each checks its own
    against its own partial, matched by host name; a file dealt to another host than in
    the fit pass, or added or removed, fails the host that sees the difference.
    """
    own = merged.partial(host)
    recorded = {f.key: f for f in own.inputs}
    here = set(keys)
    problems = []
    unrecorded = [k for k in own.files if k not in recorded]
    if unrecorded:
        problems.append(f"no size or digest recorded for {_names(unrecorded)}")
    mine = set(own.files)
    elsewhere = [k for k in keys if k not in mine and k in merged.file_hosts]
    new = [k for k in keys if k not in merged.file_hosts]
    gone = [k for k in own.files if k not in here]
    if new:
        problems.append(f"new since the fit pass: {_names(new)}")
    if elsewhere:
        owners = sorted({merged.file_hosts[k] for k in elsewhere})
        problems.append(
            f"read by {', '.join(owners)} in the fit pass (the files were dealt to the "
            f"hosts differently): {_names(elsewhere)}"
        )
    if gone:
        problems.append(f"gone since the fit pass: {_names(gone)}")
    resized = []
    for file, key in zip(files, keys, strict=True):
        if key in recorded:
            size = file.stat().st_size
            if size != recorded[key].size:
                resized.append(f"{key} ({recorded[key].size} bytes then, {size} now)")
    if resized:
        problems.append(f"changed in size: {_names(resized)}")
    if not problems and keys != own.files:
        problems.append("the same files, read in another order")
    if problems:
        raise InputChanged(
            f"the raw files of host {host} differ from those its fit pass read: "
            f"{'; '.join(problems)}. The encode pass must read exactly the files the fit "
            "pass read: run both passes on the same instance count over input that does not "
            "change between them"
        )


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def _discard(sinks: list[_CsvSink]) -> None:
    """Close and remove what these sinks wrote: no part of a host's output is kept."""
    for sink in sinks:
        opened = sink.writer is not None
        sink.close()
        if opened:
            sink.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sink.path.parent.rmdir()  # only when empty


def _shard_name(host: str, k: int, single: bool) -> str:
    return f"train-{k:05d}.csv" if single else f"train-{host}-{k:05d}.csv"


def _rejected_table(batch: Batch, rows: np.ndarray, hide: list[str]) -> pa.Table:
    """Rejected rows with their reasons, without the (already hashed) PII columns."""
    out = batch.table.drop_columns([c for c in hide if c in batch.table.column_names])
    out = out.take(pa.array(rows, type=pa.int64()))
    name = batch.raw.file.name
    texts = ["; ".join(r) for r in row_reasons(batch.checks, rows)]
    reasons = pa.array(texts, type=pa.string())
    origins = pa.array([f"{name}:{batch.raw.first_line + i}" for i in rows], type=pa.string())
    return out.add_column(0, "reasons", reasons).add_column(0, "origin", origins)


def _meta_table(table: pa.Table, columns: list[str], rows: np.ndarray, offset: int) -> pa.Table:
    present = [c for c in columns if c in table.column_names]
    if not present:
        return pa.table({"row": pa.array(np.arange(offset, offset + len(rows)))})
    return table.select(present).take(pa.array(rows))


# ---------------------------------------------------------------- entry points


def load(schema_path: Path) -> DatasetSchema:
    return load_schema(find_schema(schema_path))


def run_fit(
    input_path: Path,
    schema_path: Path,
    fit_dir: Path,
    settings: Settings,
    *,
    salt: str | None,
    hosts: list[str],
    host: str,
) -> Path:
    settings.check(len(hosts))
    schema = load(schema_path)
    files = host_inputs(input_path, hosts, host)
    keys = input_keys(input_path, files)
    return write_partial(fit_dir, fit_host(files, schema, settings, salt, host, keys=keys))


def run_encode(
    input_path: Path,
    schema_path: Path,
    fit_input: Path,
    output_dir: Path,
    settings: Settings,
    *,
    salt: str | None,
    hosts: list[str],
    host: str,
) -> dict[str, Any]:
    started = time.monotonic()
    settings.check(len(hosts))
    schema = load(schema_path)
    merged = merge(read_partials(fit_input))
    if merged.hosts != hosts:
        raise PreprocessError(
            f"the fit step ran on hosts {merged.hosts} but this step runs on {hosts}: run both "
            "passes with the same instance count"
        )
    try:
        files = host_inputs(input_path, hosts, host)
    except PreprocessError:
        if merged.partial(host).files:
            check_inputs(merged, host, [], [])  # every file the fit pass read here is gone
        raise
    the_plan = plan(merged, schema, settings, salt)
    keys = input_keys(input_path, files)
    return encode_host(
        files, schema, settings, salt, the_plan, host, output_dir, keys=keys, started=started
    )


def preprocess(
    input_path: Path,
    schema_path: Path,
    output_dir: Path,
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    train_shards: int = 4,
    max_rejected_fraction: float = 0.05,
    seed: int = 42,
    salt: str | None = None,
    training_instance_count: int = 1,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, Any]:
    """Fit then encode in one process, on one host (the default, no --pass).

    `seed` is accepted for the callers that pass it; the split needs none (hashes).
    """
    del seed
    started = time.monotonic()
    settings = Settings(
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        train_shards=train_shards,
        max_rejected_fraction=max_rejected_fraction,
        training_instance_count=training_instance_count,
        block_bytes=block_bytes,
    )
    settings.check()
    schema = load(schema_path)
    files = find_inputs(input_path)
    host = "algo-1"
    splits: list[np.ndarray] = []
    keys = input_keys(input_path, files)
    partial = fit_host(files, schema, settings, salt, host, keys=keys, splits=splits)
    if partial.rows_read == 0:
        raise PreprocessError(f"no data rows in {input_path}")
    the_plan = plan(merge([partial]), schema, settings, salt)
    return encode_host(
        files,
        schema,
        settings,
        salt,
        the_plan,
        host,
        output_dir,
        keys=keys,
        started=started,
        splits=splits,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def log(message: str) -> None:
    print(f"preprocess: {message}", flush=True)


def _too_many_hosts(hosts: int, shards: int) -> str:
    return f"{hosts} training instances but {shards} training shard(s): hosts would get no data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pass",
        dest="pass_",
        choices=("fit", "encode"),
        default=None,
        help="one pass of a job on several instances; without it, both, on one instance",
    )
    p.add_argument("--input", type=Path, default=PROCESSING / "input" / "data")
    p.add_argument("--schema", type=Path, default=PROCESSING / "input" / "schema")
    p.add_argument("--output-dir", type=Path, default=PROCESSING / "output")
    p.add_argument(
        "--fit-input",
        type=Path,
        default=PROCESSING / "input" / "fit",
        help="--pass encode: every host's fit-<host>.json (the fit step's output)",
    )
    p.add_argument(
        "--resource-config",
        type=Path,
        default=None,
        help=f"the host list (default: $BOOSTLINE_RESOURCE_CONFIG or {RESOURCE_CONFIG})",
    )
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--train-shards", type=int, default=4, help="training files per host")
    p.add_argument("--max-rejected-fraction", type=float, default=0.05)
    p.add_argument(
        "--seed", type=int, default=42, help="accepted and unused: the split is by hashes"
    )
    p.add_argument(
        "--training-instance-count",
        type=int,
        default=1,
        help="hosts of the training step; each needs a shard of its own",
    )
    p.add_argument(
        "--block-bytes",
        type=int,
        default=DEFAULT_BLOCK_BYTES,
        help="bytes of CSV read per batch; bounds the memory",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings(
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            train_shards=args.train_shards,
            max_rejected_fraction=args.max_rejected_fraction,
            training_instance_count=args.training_instance_count,
            block_bytes=args.block_bytes,
        )
        hosts, host = job_hosts(resource_config=args.resource_config)
        if args.pass_ is None:
            if len(hosts) > 1:
                raise PreprocessError(
                    f"{len(hosts)} instances: run --pass fit, then --pass encode, as two steps"
                )
            preprocess(
                args.input,
                args.schema,
                args.output_dir,
                validation_fraction=args.validation_fraction,
                test_fraction=args.test_fraction,
                train_shards=args.train_shards,
                max_rejected_fraction=args.max_rejected_fraction,
                salt=read_salt(),
                training_instance_count=args.training_instance_count,
                block_bytes=args.block_bytes,
            )
        elif args.pass_ == "fit":
            run_fit(
                args.input,
                args.schema,
                args.output_dir / "fit",
                settings,
                salt=read_salt(),
                hosts=hosts,
                host=host,
            )
        else:
            run_encode(
                args.input,
                args.schema,
                args.fit_input,
                args.output_dir,
                settings,
                salt=read_salt(),
                hosts=hosts,
                host=host,
            )
    except Exception as exc:  # noqa: BLE001 - every failure must end with a clear message
        message = f"preprocessing failed: {exc}"
        report_failure(message)
        return 1
    return 0


def read_salt() -> str | None:
    """The PII salt from the environment, or from Secrets Manager on AWS."""
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV]
    arn = os.environ.get(SALT_SECRET_ENV)
    if not arn:
        return None
    import boto3  # in the SageMaker image; only needed on AWS

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


if __name__ == "__main__":
    sys.exit(main())
