"""Preprocessing, run as a SageMaker Processing job (or locally, the same way).

validate rows against the dataset schema -> drop or hash PII -> stratified
train/validation/test split -> encode categoricals -> write the CSV layout the
XGBoost image and Model Monitor expect (no header, label first, numbers only),
the training set in shards for ShardedByS3Key, and a feature manifest that
serving uses so training and serving encode alike.

Outputs under --output-dir (default /opt/ml/processing/output):
  train/train-00000.csv ...     label + features, no header
  validation/validation.csv     label + features, no header
  test/test.csv                 label + features, no header
  test/test_meta.csv            per test row: id (hashed if PII), sensitive columns
  manifest/feature_manifest.json
  report/preprocess_report.json, report/rejected_rows.csv

Runs in the SageMaker XGBoost image: stdlib, numpy, pandas, pyarrow, PyYAML.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

try:  # run as a script from the source dir (SageMaker) or imported as a package
    from dataset_schema import DatasetSchema, load_schema, normalise_label
    from job_message import positions_only, report_failure
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts.dataset_schema import DatasetSchema, load_schema, normalise_label
    from training_scripts.job_message import positions_only, report_failure

PROCESSING = Path("/opt/ml/processing")
MANIFEST_VERSION = 1
SALT_ENV = "BOOSTLINE_PII_SALT"
SALT_SECRET_ENV = "BOOSTLINE_PII_SALT_SECRET_ARN"  # on AWS: a Secrets Manager secret
CSV_SUFFIXES = (".csv", ".csv.gz")


class PreprocessError(RuntimeError):
    """Preprocessing cannot go on; the message says why and what to do."""


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


def find_schema(path: Path) -> Path:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        if len(found) != 1:
            raise PreprocessError(f"expected one schema file in {path}, found {len(found)}")
        return found[0]
    return path


def read_raw(files: list[Path]) -> tuple[pa.Table, list[str]]:
    """All columns as nullable strings, plus a 'file:line' origin per row."""
    tables, origins = [], []
    for file in files:
        header = _header(file)
        try:
            table = pacsv.read_csv(
                file,
                read_options=pacsv.ReadOptions(block_size=_block_size(file)),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            # pyarrow's message can quote a raw row, PII and all: keep only where it failed
            where = _bad_width_row(file) if "columns, got" in str(exc) else None
            raise PreprocessError(f"{file}: {where or positions_only(str(exc))}") from None
        if tables and table.column_names != tables[0].column_names:
            raise PreprocessError(
                f"{file}: columns differ from {files[0].name}: "
                f"{table.column_names} vs {tables[0].column_names}"
            )
        tables.append(table)
        # line 1 is the header, so data row i sits on line i + 2
        origins.extend(f"{file.name}:{i + 2}" for i in range(table.num_rows))
    return pa.concat_tables(tables), origins


def _header(file: Path) -> list[str]:
    """The header row, read with Python's csv reader (quotes understood); names repeated
    or missing are refused here, naming the file, line and column, never a value."""
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
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


# pyarrow's CSV reader needs every row to fit in one block: a long free-text field
# otherwise fails with "straddling object straddles two block boundaries". The whole
# file is read into memory anyway, so a block as large as the file (within a cap) costs
# nothing more.
MIN_BLOCK_BYTES = 1 << 20
MAX_BLOCK_BYTES = 1 << 30


def _block_size(file: Path) -> int:
    return max(MIN_BLOCK_BYTES, min(file.stat().st_size + 1, MAX_BLOCK_BYTES))


def _bad_width_row(file: Path) -> str | None:
    """Line and column of the first record whose field count differs from the header's.

    Names positions and the header's column names only, never a value. None when the
    file cannot be scanned here (the caller then says what pyarrow's message allows).
    """
    try:
        with file.open(encoding="utf-8", newline="") as f:
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
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


# ---------------------------------------------------------------- PII


def salted_hash(values: pa.ChunkedArray, salt: str) -> pa.Array:
    """SHA-256 of salt + value, 32 hex chars; nulls stay null."""
    key = salt.encode()
    out = [
        None if v is None else hashlib.sha256(key + v.encode()).hexdigest()[:32]
        for v in values.to_pylist()
    ]
    return pa.array(out, type=pa.string())


def apply_pii(table: pa.Table, schema: DatasetSchema, salt: str | None) -> pa.Table:
    """Drop PII columns, or replace them with a salted hash where joins need them."""
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
        table = table.set_column(index, pii.column, salted_hash(table[pii.column], salt))
    return table


# ---------------------------------------------------------------- validation


def _add_reason(reasons: list[list[str]], mask: np.ndarray, text: str) -> None:
    for i in np.flatnonzero(mask):
        reasons[i].append(text)


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


def validate(
    table: pa.Table, schema: DatasetSchema
) -> tuple[np.ndarray, dict[str, np.ndarray], list[list[str]]]:
    """Labels (1 = positive), parsed numerical columns, and per-row rejection reasons."""
    n = table.num_rows
    reasons: list[list[str]] = [[] for _ in range(n)]
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
            pc.is_in(raw_text, pa.array(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"]))
            .fill_null(False)
            .to_numpy(zero_copy_only=False),
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


def _labels(column: pa.ChunkedArray, schema: DatasetSchema, reasons: list[list[str]]) -> np.ndarray:
    known = {schema.positive_value}
    if schema.negative_value is not None:
        known.add(schema.negative_value)
    mapping: dict[str | None, int] = {}
    for raw in pc.unique(column).to_pylist():
        label = None if raw is None else normalise_label(raw)
        if label is None or label == "":
            mapping[raw] = -1
        elif label == schema.positive_value:
            mapping[raw] = 1
        elif schema.negative_value is None or label in known:
            mapping[raw] = 0
        else:
            mapping[raw] = -2
    codes = np.array([mapping[v] for v in column.to_pylist()], dtype=np.int8)
    _add_reason(reasons, codes == -1, f"{schema.target_column}: missing label")
    _add_reason(
        reasons, codes == -2, f"{schema.target_column}: unknown label (allowed: {sorted(known)})"
    )
    return codes


# ---------------------------------------------------------------- split and encode


def stratified_split(
    labels: np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split, each class divided in the same proportions."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * validation_fraction))
        parts["test"].append(idx[:n_test])
        parts["validation"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def stable_split(
    ids: list[str | None], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split, decided by a hash of each row's id.

    A row lands in the same split on every run, however the data grows, so a
    retrained model is never compared with its predecessor on rows that the
    predecessor was trained on. Classes are balanced across splits in
    expectation (the hash ignores the label); rows without an id are split at
    random.
    """
    rng = np.random.default_rng(seed)
    unit = np.array(
        [
            rng.random()
            if key is None
            else int.from_bytes(hashlib.sha256(f"split:{key}".encode()).digest()[:8], "big")
            / 2.0**64
            for key in ids
        ]
    )
    masks = {
        "test": unit < test_fraction,
        "validation": (unit >= test_fraction) & (unit < test_fraction + validation_fraction),
    }
    masks["train"] = ~(masks["test"] | masks["validation"])
    return {name: rng.permutation(np.flatnonzero(mask)) for name, mask in masks.items()}


def fit_categories(
    column: pa.ChunkedArray, train_rows: np.ndarray, allowed: tuple[str, ...] | None
) -> list[str]:
    """Category order fixes the codes: the schema's list, else by training frequency."""
    if allowed is not None:
        return list(allowed)
    values = pc.utf8_trim_whitespace(column).take(pa.array(train_rows)).to_pylist()
    counts = Counter(v for v in values if v is not None)
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


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
            value_set=pa.array(categories[feature.name]),
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


# ---------------------------------------------------------------- writing


def write_matrix(path: Path, labels: np.ndarray | None, features: np.ndarray) -> None:
    """Header-less CSV; NaN becomes an empty field, which XGBoost reads as missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = []
    if labels is not None:
        arrays.append(pa.array(labels.astype(np.int8)))
    for j in range(features.shape[1]):
        arrays.append(pa.array(features[:, j], from_pandas=True))
    names = [f"c{i}" for i in range(len(arrays))]
    pacsv.write_csv(
        pa.Table.from_arrays(arrays, names=names),
        path,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )


def write_rejections(
    path: Path,
    table: pa.Table,
    origins: list[str],
    reasons: list[list[str]],
    hide: list[str],
    limit: int,
) -> int:
    """Rejected rows with their reasons, without the (already hashed) PII columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rejected = [i for i, r in enumerate(reasons) if r]
    shown = rejected[:limit]
    out = table.drop_columns([c for c in hide if c in table.column_names])
    out = out.take(pa.array(shown, type=pa.int64()))
    out = out.add_column(0, "reasons", pa.array(["; ".join(reasons[i]) for i in shown]))
    out = out.add_column(0, "origin", pa.array([origins[i] for i in shown]))
    pacsv.write_csv(out, path)
    return len(rejected)


# ---------------------------------------------------------------- main


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
) -> dict[str, Any]:
    started = time.monotonic()
    if train_shards < 1:
        raise PreprocessError("--train-shards must be at least 1")
    # ShardedByS3Key hands out whole files: a training host beyond the shard count
    # gets no data and is paid for nothing. Stop before any work is done.
    if training_instance_count > train_shards:
        raise PreprocessError(
            f"{_too_many_hosts(training_instance_count, train_shards)}; raise "
            "preprocess.train_shards or lower the TrainingInstanceCount parameter"
        )
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise PreprocessError("split fractions must lie between 0 and 1")
    if validation_fraction + test_fraction >= 0.9:
        raise PreprocessError(
            f"validation ({validation_fraction}) and test ({test_fraction}) fractions leave "
            "less than 10 % of the rows for training"
        )
    schema = load_schema(find_schema(schema_path))
    files = find_inputs(input_path)
    table, origins = read_raw(files)
    if table.num_rows == 0:
        raise PreprocessError(f"no data rows in {input_path}")
    log(f"read {table.num_rows} rows from {len(files)} file(s)")

    table = apply_pii(table, schema, salt)
    known = {
        schema.target_column,
        *schema.feature_names,
        *schema.pii_columns,
        *schema.sensitive,
        *([schema.id_column] if schema.id_column else []),
    }
    unknown_columns = sorted(set(table.column_names) - known)
    if unknown_columns:
        # a column the schema does not name could be PII nobody listed: never pass it on
        log(f"dropping columns the schema does not name: {unknown_columns}")
        table = table.drop_columns(unknown_columns)

    labels, numbers, reasons = validate(table, schema)
    ok = np.array([not r for r in reasons])
    n_rejected = int((~ok).sum())
    fraction = n_rejected / table.num_rows
    report: dict[str, Any] = {
        "input_files": [str(f) for f in files],
        "rows_read": table.num_rows,
        "rows_rejected": n_rejected,
        "rejected_fraction": round(fraction, 6),
        "max_rejected_fraction": max_rejected_fraction,
        "rejection_reasons": dict(Counter(r for rs in reasons for r in rs).most_common()),
        "dropped_columns": unknown_columns,
        "pii": {p.column: p.action for p in schema.pii},
    }
    report_dir = output_dir / "report"
    write_rejections(
        report_dir / "rejected_rows.csv",
        table,
        origins,
        reasons,
        hide=[p.column for p in schema.pii if p.column != schema.id_column],
        limit=10_000,
    )
    if fraction > max_rejected_fraction:
        report["status"] = "failed"
        _write_json(report_dir / "preprocess_report.json", report)
        top = "; ".join(f"{k} ({v})" for k, v in list(report["rejection_reasons"].items())[:5])
        raise PreprocessError(
            f"{n_rejected} of {table.num_rows} rows ({fraction:.1%}) were rejected, more than "
            f"the allowed {max_rejected_fraction:.1%}. Most common reasons: {top}. "
            f"Rejected rows: {report_dir / 'rejected_rows.csv'}"
        )

    keep = np.flatnonzero(ok)
    table = table.take(pa.array(keep))
    labels = labels[keep]
    numbers = {k: v[keep] for k, v in numbers.items()}
    label_counts = {"positive": int((labels == 1).sum()), "negative": int((labels == 0).sum())}
    if min(label_counts.values()) < 3:
        raise PreprocessError(f"both classes need at least 3 rows, got {label_counts}")

    if schema.id_column and schema.id_column in table.column_names:
        split_method = f"stable, by a hash of {schema.id_column}"
        ids = table[schema.id_column].to_pylist()
        splits = stable_split(ids, validation_fraction, test_fraction, seed)
    else:
        split_method = "stratified at random"
        splits = stratified_split(labels, validation_fraction, test_fraction, seed)
    categories = {
        f.name: fit_categories(table[f.name], splits["train"], f.values) for f in schema.categorical
    }
    features = encode_features(table, schema, numbers, categories)

    for name, rows in splits.items():
        counts = np.bincount(labels[rows], minlength=2)
        if counts.min() == 0:
            raise PreprocessError(
                f"the {name} split has {counts[1]} positive and {counts[0]} negative rows; "
                "every split needs both classes (more data, or larger fractions)"
            )
    train = splits["train"]
    shards = np.array_split(train, min(train_shards, len(train)))
    if training_instance_count > len(shards):
        raise PreprocessError(
            f"{_too_many_hosts(training_instance_count, len(shards))} (only {len(train)} "
            "training rows)"
        )
    for k, rows in enumerate(shards):
        write_matrix(output_dir / "train" / f"train-{k:05d}.csv", labels[rows], features[rows])
    for name in ("validation", "test"):
        rows = splits[name]
        write_matrix(output_dir / name / f"{name}.csv", labels[rows], features[rows])
    _write_test_meta(output_dir / "test" / "test_meta.csv", table, schema, splits["test"])

    manifest = build_manifest(schema, categories, label_counts)
    _write_json(output_dir / "manifest" / "feature_manifest.json", manifest)
    report.update(
        status="completed",
        rows_kept=int(len(keep)),
        label_counts=label_counts,
        split_rows={k: int(len(v)) for k, v in splits.items()},
        split_method=split_method,
        split_positive_rate={
            k: round(float(labels[v].mean()), 4) if len(v) else None for k, v in splits.items()
        },
        train_shards=len(shards),
        features=[c["name"] for c in manifest["columns"]],
        seconds=round(time.monotonic() - started, 3),
    )
    _write_json(report_dir / "preprocess_report.json", report)
    log(
        f"kept {len(keep)} rows ({n_rejected} rejected); split "
        + ", ".join(f"{k}={len(v)}" for k, v in splits.items())
        + f"; {len(shards)} training shard(s)"
    )
    return report


def _write_test_meta(path: Path, table: pa.Table, schema: DatasetSchema, rows: np.ndarray) -> None:
    columns = [c for c in [schema.id_column, *schema.sensitive] if c and c in table.column_names]
    meta = table.select(columns).take(pa.array(rows)) if columns else pa.table({})
    if not columns:
        meta = pa.table({"row": pa.array(np.arange(len(rows)))})
    pacsv.write_csv(meta, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def log(message: str) -> None:
    print(f"preprocess: {message}", flush=True)


def _too_many_hosts(hosts: int, shards: int) -> str:
    return f"{hosts} training instances but {shards} training shard(s): hosts would get no data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, default=PROCESSING / "input" / "data")
    p.add_argument("--schema", type=Path, default=PROCESSING / "input" / "schema")
    p.add_argument("--output-dir", type=Path, default=PROCESSING / "output")
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--train-shards", type=int, default=4)
    p.add_argument("--max-rejected-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--training-instance-count",
        type=int,
        default=1,
        help="hosts of the training step; each needs a shard of its own",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        preprocess(
            args.input,
            args.schema,
            args.output_dir,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            train_shards=args.train_shards,
            max_rejected_fraction=args.max_rejected_fraction,
            seed=args.seed,
            salt=read_salt(),
            training_instance_count=args.training_instance_count,
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
