"""Model evaluation, run as a SageMaker Processing job (or locally, the same way).

Scores the candidate model (and the approved "champion", if any) on the
held-out test set and writes what the pipeline's quality gate, the model
registry, the risk officer and drift monitoring need.

Inputs (defaults under /opt/ml/processing/input/<name>):
  --model-dir            model.tar.gz, or an extracted model (xgboost-model,
                         boostline/feature_manifest.json)
  --test-dir             test.csv (label first, no header), test_meta.csv; from a
                         preprocessing run on N hosts, test-<host>.csv and
                         test_meta-<host>.csv per host (read in host order)
  --train-dir            train-*.csv shards (label first, no header)
  --training-sample-rows the training rows held in memory, and as many validation rows:
                         seeded uniform samples (row_sample.py) that the logistic
                         baseline, the score PSI and the baseline's distributions read;
                         rows, counts and moments are exact over every row
                         (training_statistics.py)

  --manifest-dir         feature_manifest.json; default: the one in the model
  --champion-model-dir   the approved model's model.tar.gz; empty/missing = none
  --pipeline-execution-id, --pipeline-execution-arn, --model-package-group
                         lineage: the run and where the model will be registered
  --tuning-job-name      the tuning job's trials are read with boto3
                         (sagemaker:DescribeHyperParameterTuningJob and
                         ListTrainingJobsForHyperParameterTuningJob); without it, or when
                         the API cannot be reached, the lineage says "not recorded"

Every CSV is read in blocks of BATCH_BYTES and scored block by block, so memory grows
with the samples' sizes and with one label and a few scores per test row, not with the
files; the bootstrap resamples those per-row scores.

Outputs under --output-dir (default /opt/ml/processing/output):
  evaluation/evaluation.json   SageMaker model-quality format
                               ("binary_classification_metrics"), plus
                               decision_threshold, threshold_rule,
                               expected_cost_per_application, champion
                               {auc, min_auc_required}, calibration (ECE, mean
                               predicted vs observed), logistic_baseline {auc, brier,
                               min_auc_required}, fairness, explanations,
                               credit_risk {gini, gains_lift, score_psi,
                               cost_curve, importance_disagreement},
                               lineage {run_id, pipeline_execution_arn,
                               model_package_group, model_version, evaluated_at,
                               training_data, model_hyperparameters, model_file, tuning}
  report/index.html, report/report.md, report/*.png
  baseline/statistics.json, baseline/constraints.json
                               Model Monitor data-quality baseline of the
                               training features (see data_quality.py)

Conventions: the positive class (label 1) is a default (bad loan). An
application is predicted to default, and so rejected, when P(default) >=
decision_threshold; "approved" means P(default) < decision_threshold. The
confusion matrix is keyed actual label -> predicted label. Standard deviations
come from a seeded bootstrap of the test set (the threshold held fixed); above
--bootstrap-max-rows (200,000) test rows, of a seeded sample of them, the spreads scaled
to the whole test set (BootstrapRows).

The logistic-regression baseline (baseline.py) is fitted on the training rows (and the
validation rows, which a small-data model trains on too) and scored on the same test set;
the gate refuses a candidate whose AUC falls below the baseline's minus --baseline-auc-margin.

Runs in the SageMaker XGBoost image: stdlib, numpy, pandas, pyarrow, scipy,
matplotlib, scikit-learn, xgboost.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import baseline as lr_baseline
    import calibration as calib
    import credit_risk as cr
    import data_quality as dq
    import linear_margin as lm
    import training_statistics as ts
    from job_message import report_failure
    from row_sample import RowReservoir, Sample
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import baseline as lr_baseline
    from training_scripts import calibration as calib
    from training_scripts import credit_risk as cr
    from training_scripts import data_quality as dq
    from training_scripts import linear_margin as lm
    from training_scripts import training_statistics as ts
    from training_scripts.job_message import report_failure
    from training_scripts.row_sample import RowReservoir, Sample

PROCESSING = Path("/opt/ml/processing")
MODEL_FILE = "xgboost-model"
MANIFEST_IN_MODEL = Path("boostline") / "feature_manifest.json"
MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10
MIN_GROUP_SIZE = 30  # smaller fairness groups are reported but not used as the reference
FOUR_FIFTHS = 0.8
# Rows the evaluation holds of the training (and validation) rows: a seeded uniform
# sample, which the logistic baseline, the score PSI and the baseline's distributions
# read; counts and moments are exact over every row (training_statistics.py).
TRAINING_SAMPLE_ROWS = 200_000
# CSV bytes parsed at a time. pyarrow's streaming reader reads blocks ahead of a slow
# consumer (scoring is one), so memory is a few blocks, not one: kept small.
BATCH_BYTES = 1 << 20
MISSING_GROUP = "(missing)"
MIN_CORRELATION_ROWS = 30


class EvaluationError(RuntimeError):
    """Evaluation cannot go on; the message says why and what to do."""


def log(message: str) -> None:
    print(f"evaluate: {message}", flush=True)


# ---------------------------------------------------------------- models


@dataclass
class Model:
    booster: Any  # xgboost.Booster
    manifest: dict[str, Any] | None
    source: Path
    objective: str
    # The map train.py fitted from the booster's probability to the one the endpoint
    # answers (calibration.py, the same code inference.py runs); None in older models.
    calibrator: Any = None
    # `label,probability,booster probability` of rows the final model never trained on.
    holdout: Path | None = None
    # The regression whose log-odds the booster starts from (linear_margin.py), if any.
    linear: Any = None


def load_model(model_dir: Path, scratch: Path, role: str = "model") -> Model:
    """A booster from a model.tar.gz or an extracted model directory."""
    import xgboost as xgb

    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise EvaluationError(f"{role} directory {model_dir} does not exist")
    root = model_dir
    archive = _find_archive(model_dir)
    if archive is not None:
        root = scratch / role
        root.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(root, filter="data")
                else:  # pragma: no cover - Pythons without extraction filters
                    tar.extractall(root)  # noqa: S202 - our own pipeline's artefact
        except (tarfile.TarError, OSError) as exc:
            raise EvaluationError(f"{role}: cannot extract {archive}: {exc}") from None
    booster_path = root / MODEL_FILE
    if not booster_path.is_file():
        listing = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise EvaluationError(
            f"{role}: no {MODEL_FILE} found in {model_dir}"
            + (f" (archive {archive.name})" if archive else "")
            + f"; expected model.tar.gz or an extracted model holding {MODEL_FILE}; "
            f"found: {listing or 'nothing'}"
        )
    booster = xgb.Booster()
    try:
        booster.load_model(str(booster_path))
    except xgb.core.XGBoostError as exc:
        raise EvaluationError(f"{role}: {booster_path} is not an XGBoost model: {exc}") from None
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective not in ("binary:logistic", "reg:logistic", "binary:logitraw"):
        raise EvaluationError(
            f"{role}: objective {objective!r} is not a binary classifier (expected binary:logistic)"
        )
    manifest = None
    manifest_path = root / MANIFEST_IN_MODEL
    if manifest_path.is_file():
        manifest = _read_json(manifest_path, f"{role} manifest")
    try:
        calibrator = calib.load(root)
    except calib.CalibrationError as exc:
        raise EvaluationError(f"{role}: {exc}") from None
    try:
        linear = lm.load(root)
    except lm.LinearMarginError as exc:
        raise EvaluationError(f"{role}: {exc}") from None
    if linear is not None and linear.width > booster.num_features():
        raise EvaluationError(
            f"{role}: {lm.LINEAR_MARGIN_FILE} reads column {linear.width}, "
            f"the booster has {booster.num_features()} features"
        )
    holdout = root / calib.HOLDOUT_FILE
    return Model(
        booster=booster,
        manifest=manifest,
        source=archive or booster_path,
        objective=objective,
        calibrator=calibrator,
        holdout=holdout if holdout.is_file() else None,
        linear=linear,
    )


def _find_archive(model_dir: Path) -> Path | None:
    if model_dir.is_file():
        return model_dir if model_dir.name.endswith((".tar.gz", ".tgz", ".tar")) else None
    if (model_dir / "model.tar.gz").is_file():
        return model_dir / "model.tar.gz"
    if (model_dir / MODEL_FILE).is_file():
        return None
    archives = sorted(p for p in model_dir.glob("*.tar.gz") if not p.name.startswith("."))
    return archives[0] if len(archives) == 1 else None


def predict(model: Model, features: np.ndarray, nthread: int = 0) -> np.ndarray:
    """P(default) per row, as the endpoint answers it: the booster's probability (float32
    from XGBoost, as float64) through the model's calibration, where it has one."""
    dm = _dmatrix(model, features, nthread)
    if model.objective == "binary:logitraw":
        margin = model.booster.predict(dm).astype(np.float64)
        raw = 1.0 / (1.0 + np.exp(-margin))
    else:
        raw = model.booster.predict(dm).astype(np.float64)
    return model.calibrator.apply(raw) if model.calibrator is not None else raw


def _dmatrix(model: Model, features: np.ndarray, nthread: int = 0) -> Any:
    import xgboost as xgb

    booster = model.booster
    types = booster.feature_types
    return xgb.DMatrix(
        features,
        missing=np.nan,
        feature_names=booster.feature_names,
        feature_types=types,
        enable_categorical=bool(types and "c" in types),
        nthread=nthread or None,
        base_margin=None if model.linear is None else model.linear.margin(features),
    )


def check_model_matches(model: Model, names: list[str], role: str = "model") -> None:
    booster = model.booster
    if booster.num_features() != len(names):
        raise EvaluationError(
            f"{role} was trained on {booster.num_features()} features but the feature "
            f"manifest lists {len(names)}: {names}"
        )
    trained = booster.feature_names
    if trained and list(trained) != names and not all(n == f"f{i}" for i, n in enumerate(trained)):
        raise EvaluationError(
            f"{role} was trained on features {list(trained)} but the feature manifest lists {names}"
        )


def manifest_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Why two manifests do not encode the same model input (empty when they do)."""

    def spec(manifest: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        return [
            (c["name"], c["kind"], tuple(c.get("categories", ()) or ()))
            for c in manifest.get("columns", [])
        ]

    a, b = spec(ours), spec(theirs)
    out = []
    if [x[0] for x in a] != [x[0] for x in b]:
        out.append(f"columns differ: candidate {[x[0] for x in a]} vs champion {[x[0] for x in b]}")
        return out
    for (name, kind_a, cats_a), (_, kind_b, cats_b) in zip(a, b, strict=True):
        if kind_a != kind_b:
            out.append(f"{name}: kind {kind_a} vs {kind_b}")
        elif cats_a != cats_b:
            out.append(f"{name}: category codes differ ({list(cats_a)} vs {list(cats_b)})")
    return out


# ---------------------------------------------------------------- data


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"cannot read {what} {path}: {exc}") from None


def load_manifest(path: Path | None, model: Model) -> dict[str, Any]:
    if path is None:
        if model.manifest is None:
            raise EvaluationError(
                f"the model holds no {MANIFEST_IN_MODEL}; pass --manifest-dir "
                "(the preprocessing job's manifest output)"
            )
        return model.manifest
    file = path / "feature_manifest.json" if path.is_dir() else path
    if not file.is_file():
        raise EvaluationError(f"no feature_manifest.json at {path}")
    return _read_json(file, "feature manifest")


def _arrow_reason(exc: Exception, numbers: bool = True) -> str:
    """pyarrow's reason without the row text it quotes (the rows may hold personal data)."""
    text = str(exc)
    for pattern in (r"Expected \d+ columns, got \d+", r"[Ee]mpty CSV file"):
        found = re.search(pattern, text)
        if found:
            return found.group(0)
    column = re.search(r"column #(\d+)", text)
    if column:
        what = "values that are not numbers" if numbers else "values that cannot be read"
        return f"column {int(column.group(1)) + 1} holds {what}"
    return text.split(":", 1)[0]


def iter_labelled_csv(
    path: Path, n_features: int, what: str, block_size: int = BATCH_BYTES
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels as int8, features as float64 with NaN = missing) of a header-less CSV, one
    block of `block_size` bytes at a time: memory is bounded by the block, not the file."""
    if not path.is_file():
        raise EvaluationError(f"{what}: {path} does not exist")
    width = n_features + 1
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=block_size),
            # typed up front: a later block cannot then disagree with the first one's guess
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{j}": pa.float64() for j in range(width)}
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        reason = _arrow_reason(exc)
        if "mpty CSV file" in reason:
            raise EvaluationError(f"{what}: {path} has no rows") from None
        raise EvaluationError(f"{what}: {path} cannot be read as CSV: {reason}") from None
    columns = len(reader.schema)
    if columns != width:
        raise EvaluationError(
            f"{what}: {path} has {columns} columns but the feature manifest lists "
            f"{n_features} features (expected label + {n_features} = {width} columns); "
            "was it made by the same preprocessing run as the manifest?"
        )
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError) as exc:
            raise EvaluationError(
                f"{what}: {path} cannot be read as CSV after row {rows}: {_arrow_reason(exc)}"
            ) from None
        if batch.num_rows == 0:
            continue
        rows += batch.num_rows
        matrix = np.column_stack(
            [column.to_numpy(zero_copy_only=False) for column in batch.columns]
        )
        labels = matrix[:, 0]
        if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
            raise EvaluationError(f"{what}: {path} first column must be the label, 0 or 1")
        yield labels.astype(np.int8), np.ascontiguousarray(matrix[:, 1:])
    if rows == 0:
        raise EvaluationError(f"{what}: {path} has no rows")


def read_labelled_csv(path: Path, n_features: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, features) of a whole header-less CSV; see iter_labelled_csv."""
    parts = list(iter_labelled_csv(path, n_features, what))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def split_files(directory: Path, split: str) -> list[Path]:
    """A split's files: `<split>.csv` from one preprocessing host, or `<split>-<host>.csv`
    from each of N (a host with no rows of the split writes none)."""
    single = directory / f"{split}.csv"
    if single.is_file():
        return [single]
    return sorted(p for p in directory.glob(f"{split}-*.csv") if not p.name.startswith("."))


def required_split_files(directory: Path, split: str, what: str) -> list[Path]:
    if not directory.is_dir():
        raise EvaluationError(f"{what}: {directory} does not exist")
    files = split_files(directory, split)
    if not files:
        raise EvaluationError(f"{what}: no {split}.csv or {split}-<host>.csv in {directory}")
    return files


def training_files(train_dir: Path) -> list[Path]:
    """Every train-*.csv shard (any *.csv when there is none), in file order."""
    if not train_dir.is_dir():
        raise EvaluationError(f"training data directory {train_dir} does not exist")
    files = sorted(p for p in train_dir.glob("train-*.csv") if not p.name.startswith("."))
    if not files:
        files = sorted(p for p in train_dir.glob("*.csv") if not p.name.startswith("."))
    if not files:
        raise EvaluationError(f"no train-*.csv shards in {train_dir}")
    return files


@dataclass(frozen=True)
class Groups:
    """A text column as codes into its distinct values: four bytes a row, however long
    the column, instead of a Python string each."""

    levels: list[str]
    codes: np.ndarray  # int32 index into levels

    def texts(self) -> list[str]:
        return [self.levels[c] for c in self.codes.tolist()]

    def __len__(self) -> int:
        return len(self.codes)

    @staticmethod
    def concat(parts: list[Groups]) -> Groups:
        levels: dict[str, int] = {}
        codes = []
        for part in parts:
            mapping = np.array(
                [levels.setdefault(level, len(levels)) for level in part.levels], dtype=np.int32
            )
            codes.append(mapping[part.codes] if len(part.codes) else part.codes)
        return Groups(list(levels), np.concatenate(codes) if codes else np.empty(0, np.int32))


def _groups(column: Any) -> Groups:
    encoded = column.dictionary_encode()
    levels = [str(v) for v in encoded.dictionary.to_pylist()]
    codes = encoded.indices.fill_null(len(levels)).to_numpy(zero_copy_only=False)
    if encoded.null_count:
        levels.append(MISSING_GROUP)
    return Groups.concat([Groups(levels, codes.astype(np.int32))])  # one name, one code


def read_meta(path: Path, rows: int, columns: list[str] | None = None) -> dict[str, Groups] | None:
    """The columns of a test_meta file (all, or those of `columns` it has), batch by batch."""
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        wanted = header if columns is None else [c for c in header if c in set(columns)]
        # Read as text, as written: type inference would turn "01" into "1" and "NA" into
        # missing, and differently for each host's file.
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BATCH_BYTES),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                include_columns=wanted or header[:1],  # [] would read every column
            ),
        )
        parts: dict[str, list[Groups]] = {name: [] for name in wanted}
        count = 0
        for batch in reader:
            count += batch.num_rows
            for name in wanted:
                parts[name].append(_groups(batch.column(name)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        reason = _arrow_reason(exc, numbers=False)
        raise EvaluationError(f"{path} cannot be read as CSV: {reason}") from None
    if count != rows:
        raise EvaluationError(
            f"{path} has {count} rows but its test rows number {rows}; "
            "they must come from the same preprocessing run"
        )
    return {name: Groups.concat(parts[name]) for name in wanted}


def read_split_meta(
    files: list[Path], rows: list[int], columns: list[str] | None = None
) -> dict[str, Groups] | None:
    """The test rows' meta: test_meta.csv beside test.csv, test_meta-<host>.csv beside
    test-<host>.csv; None when there is none."""
    metas = [f.with_name("test_meta" + f.name.removeprefix("test")) for f in files]
    found = [m.is_file() for m in metas]
    if not any(found):
        return None
    if not all(found):
        missing = [m.name for m, ok in zip(metas, found, strict=True) if not ok]
        raise EvaluationError(f"test meta missing beside its test rows: {', '.join(missing)}")
    parts = [read_meta(m, n, columns) or {} for m, n in zip(metas, rows, strict=True)]
    names = list(parts[0])  # every host writes the same columns
    return {name: Groups.concat([part[name] for part in parts]) for name in names}


# ---------------------------------------------------------------- ranking metrics


@dataclass
class Ranking:
    """Test rows sorted once by score; counts at each distinct score (the thresholds)."""

    order: np.ndarray  # row indices, highest score first
    ends: np.ndarray  # index (in sorted order) of the last row of each tie group
    thresholds: np.ndarray  # distinct scores, descending
    labels_sorted: np.ndarray  # float64 0/1 in sorted order

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray) -> Ranking:
        order = np.argsort(-scores, kind="mergesort")
        sorted_scores = scores[order]
        ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
        return cls(order, ends, sorted_scores[ends], labels[order].astype(np.float64))

    def counts(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(true positives, false positives) when rows scoring >= each threshold are flagged."""
        y = self.labels_sorted
        if weights is None:
            tp = np.cumsum(y)[self.ends]
            return tp, (self.ends + 1) - tp
        w = weights[self.order]
        tp = np.cumsum(w * y)[self.ends]
        return tp, np.cumsum(w)[self.ends] - tp


def roc_auc(tp: np.ndarray, fp: np.ndarray) -> float:
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(tp: np.ndarray, fp: np.ndarray) -> float:
    """Area under the PR curve as a step sum (scikit-learn's average_precision_score)."""
    precision = tp / np.maximum(tp + fp, 1e-300)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ks_statistic(tp: np.ndarray, fp: np.ndarray) -> float:
    return float(np.max(np.r_[0.0, tp / tp[-1] - fp / fp[-1]]))


def pick_threshold_index(
    tp: np.ndarray,
    fp: np.ndarray,
    rule: str,
    cost_false_negative: float,
    cost_false_positive: float,
) -> int:
    """Index of the chosen threshold; -1 means flag nothing (approve everyone)."""
    positives = tp[-1]
    if rule == "max_f1":
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        return int(np.argmax(f1))
    if rule == "min_cost":
        cost = np.r_[
            cost_false_negative * positives,
            cost_false_negative * (positives - tp) + cost_false_positive * fp,
        ]
        return int(np.argmin(cost)) - 1  # ties: the highest threshold (fewest rejections)
    raise EvaluationError(f"unknown threshold rule {rule!r}; use max_f1 or min_cost")


def threshold_value(thresholds: np.ndarray, index: int) -> float:
    """A cut strictly between the chosen score and the next lower one (p >= cut flags)."""
    if index < 0:  # flag nothing; a probability threshold must stay below 1
        return float(min(np.nextafter(thresholds[0], np.inf), np.nextafter(1.0, 0.0)))
    if index + 1 < len(thresholds):
        return float((thresholds[index] + thresholds[index + 1]) / 2)
    return float(thresholds[index])


def choose_threshold(
    labels: np.ndarray,
    scores: np.ndarray,
    rule: str,
    cost_false_negative: float = 1.0,
    cost_false_positive: float = 1.0,
) -> float:
    """The decision threshold the rule picks on (labels, scores)."""
    ranking = Ranking.of(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    tp, fp = ranking.counts()
    index = pick_threshold_index(tp, fp, rule, cost_false_negative, cost_false_positive)
    return threshold_value(ranking.thresholds, index)


def _index_at(thresholds: np.ndarray, threshold: float) -> int:
    """The last distinct score at or above `threshold` (-1: none is)."""
    return int(np.searchsorted(-thresholds, -threshold, side="right")) - 1


# Above this many test rows the bootstrap resamples a seeded uniform sample of them (the
# m-out-of-n bootstrap) and scales its spreads by sqrt(m / n): these statistics' spread
# falls as 1 / sqrt(rows). 100 resamples of 750,000 rows took 3.3 s (the metrics) and 6.3 s
# (the paired baseline), growing with the rows, for a third digit of a standard deviation.
BOOTSTRAP_MAX_ROWS = 200_000


@dataclass(frozen=True)
class BootstrapRows:
    """The rows the bootstrap resamples: all of them, or a seeded sample of max_rows."""

    index: np.ndarray | None  # None: every row
    rows: int  # m, the rows each resample draws
    total: int  # n, the test rows
    scale: float  # sqrt(m / n): a sample's spread times this is the test set's

    @classmethod
    def of(cls, total: int, max_rows: int, seed: int) -> BootstrapRows:
        if max_rows <= 0 or total <= max_rows:
            return cls(None, total, total, 1.0)
        rng = np.random.default_rng([seed, total])  # not the resamples' stream
        index = np.sort(rng.choice(total, size=max_rows, replace=False))
        return cls(index, max_rows, total, math.sqrt(max_rows / total))

    def take(self, values: np.ndarray) -> np.ndarray:
        return values if self.index is None else values[self.index]

    def describe(self, samples: int, seed: int) -> dict[str, Any]:
        return {
            "samples": int(samples),
            "seed": int(seed),
            "rows": self.rows,
            "of_rows": self.total,
        }


def _at(tp: np.ndarray, fp: np.ndarray, index: int) -> tuple[float, float]:
    return (0.0, 0.0) if index < 0 else (float(tp[index]), float(fp[index]))


def _point_metrics(tp: float, fp: float, positives: float, negatives: float) -> dict[str, float]:
    fn, tn = positives - tp, negatives - fp
    total = positives + negatives
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "accuracy": (tp + tn) / total if total else 0.0,
        "true_positive_rate": recall,
        "false_positive_rate": fp / negatives if negatives else 0.0,
        "true_negative_rate": tn / negatives if negatives else 0.0,
        "false_negative_rate": fn / positives if positives else 0.0,
    }


def _downsample(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.int64))


def binary_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    rule: str,
    cost_false_negative: float,
    cost_false_positive: float,
    bootstrap_samples: int = 100,
    seed: int = 0,
    threshold: float | None = None,
    bootstrap_max_rows: int = BOOTSTRAP_MAX_ROWS,
) -> dict[str, Any]:
    """Every test-set metric, the threshold and its cost; see the module docstring.

    `threshold`, when given, was chosen elsewhere (on the validation set) and is only
    applied here, so the point metrics are not fitted to the rows that report them.
    """
    labels = np.asarray(labels).astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(labels)
    positives = float(labels.sum())
    negatives = float(n - positives)
    if positives == 0 or negatives == 0:
        raise EvaluationError(
            f"the test set needs both classes; it has {int(positives)} defaults and "
            f"{int(negatives)} good loans"
        )
    ranking = Ranking.of(labels, scores)
    tp, fp = ranking.counts()
    if threshold is None:
        index = pick_threshold_index(tp, fp, rule, cost_false_negative, cost_false_positive)
        threshold = threshold_value(ranking.thresholds, index)
    else:  # flag every score >= threshold: the last distinct score at or above it
        index = _index_at(ranking.thresholds, threshold)
    tp_at, fp_at = _at(tp, fp, index)

    def cost_per_application(tp_: float, fp_: float, pos: float, total: float) -> float:
        return (cost_false_negative * (pos - tp_) + cost_false_positive * fp_) / total

    values = {
        "auc": roc_auc(tp, fp),
        "pr_auc": average_precision(tp, fp),
        "ks": ks_statistic(tp, fp),
        "brier": float(np.mean((scores - labels) ** 2)),
        **_point_metrics(tp_at, fp_at, positives, negatives),
        "expected_cost_per_application": cost_per_application(tp_at, fp_at, positives, n),
    }

    # bootstrap: resample rows (multinomial weights), keep the threshold fixed
    boot = BootstrapRows.of(n, bootstrap_max_rows, seed)
    b_labels, b_scores = boot.take(labels), boot.take(scores)
    b_ranking = ranking if boot.index is None else Ranking.of(b_labels, b_scores)
    b_index = index if boot.index is None else _index_at(b_ranking.thresholds, threshold)
    squared = (b_scores - b_labels) ** 2
    m = boot.rows
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in values}
    for _ in range(max(0, bootstrap_samples)):
        w = np.bincount(rng.integers(0, m, m), minlength=m).astype(np.float64)
        btp, bfp = b_ranking.counts(w)
        bpos, bneg = btp[-1], bfp[-1]
        if bpos == 0 or bneg == 0:
            continue
        t_at, f_at = _at(btp, bfp, b_index)
        point = _point_metrics(t_at, f_at, bpos, bneg)
        replicate = {
            "auc": roc_auc(btp, bfp),
            "pr_auc": average_precision(btp, bfp),
            "ks": ks_statistic(btp, bfp),
            "brier": float(np.sum(w * squared) / m),
            **point,
            "expected_cost_per_application": cost_per_application(t_at, f_at, bpos, m),
        }
        for key, value in replicate.items():
            samples[key].append(value)
    std = {
        k: boot.scale * float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in samples.items()
    }

    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    roc_keep = _downsample(len(tpr))
    precisions = tp / (tp + fp)
    recalls = tp / positives
    pr_keep = _downsample(len(precisions))
    tn_at, fn_at = negatives - fp_at, positives - tp_at

    metrics: dict[str, Any] = {
        key: {"value": values[key], "standard_deviation": std[key]}
        for key in (
            "auc",
            "precision",
            "recall",
            "f1",
            "accuracy",
            "true_positive_rate",
            "false_positive_rate",
            "true_negative_rate",
            "false_negative_rate",
            "pr_auc",
            "ks",
            "brier",
        )
    }
    metrics["confusion_matrix"] = {
        "0": {"0": int(tn_at), "1": int(fp_at)},
        "1": {"0": int(fn_at), "1": int(tp_at)},
    }
    metrics["receiver_operating_characteristic_curve"] = {
        "false_positive_rates": _rounded(fpr[roc_keep]),
        "true_positive_rates": _rounded(tpr[roc_keep]),
    }
    metrics["precision_recall_curve"] = {
        "precisions": _rounded(precisions[pr_keep]),
        "recalls": _rounded(recalls[pr_keep]),
    }

    alternatives = {}
    for alt in ("max_f1", "min_cost"):
        j = pick_threshold_index(tp, fp, alt, cost_false_negative, cost_false_positive)
        a_tp, a_fp = _at(tp, fp, j)
        point = _point_metrics(a_tp, a_fp, positives, negatives)
        alternatives[alt] = {
            "threshold": threshold_value(ranking.thresholds, j),
            "precision": point["precision"],
            "recall": point["recall"],
            "f1": point["f1"],
            "approval_rate": (n - a_tp - a_fp) / n,
            "expected_cost_per_application": cost_per_application(a_tp, a_fp, positives, n),
        }
    return {
        "binary_classification_metrics": metrics,
        "decision_threshold": threshold,
        "threshold_rule": rule,
        "expected_cost_per_application": values["expected_cost_per_application"],
        "expected_cost_per_application_standard_deviation": std["expected_cost_per_application"],
        "threshold": {
            "rule": rule,
            "value": threshold,
            "comparison": "an application is predicted to default (rejected) when "
            "P(default) >= value",
            "cost_false_negative": cost_false_negative,
            "cost_false_positive": cost_false_positive,
            "approval_rate": (n - tp_at - fp_at) / n,
            "alternatives": alternatives,
        },
        "bootstrap": boot.describe(bootstrap_samples, seed),
    }


def _rounded(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def _ece(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    index = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    observed = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    return float(np.abs(predicted - observed).sum() / len(scores))


def ece_noise(
    scores: np.ndarray, bins: int = CALIBRATION_BINS, samples: int = 200, seed: int = 0
) -> float:
    """The 95th percentile of the ECE a perfectly calibrated model would show on these rows.

    Labels drawn as Bernoulli(score): what the test set's size alone makes of the ECE. On a
    few hundred rows it is several points, and a bound that ignores it refuses good models.
    """
    rng = np.random.default_rng(seed)
    draws = [_ece(rng.random(len(scores)) < scores, scores, bins) for _ in range(samples)]
    return float(np.quantile(draws, 0.95))


def calibration(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS, min_count: int = 30
) -> dict[str, Any]:
    """Reliability bins of equal width on [0, 1], with expected and maximum calibration error.

    The maximum is taken over bins of at least `min_count` rows, where it means something.
    """
    index = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    predicted = np.bincount(index, weights=scores, minlength=bins)
    observed = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    out_bins, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        if not counts[b]:
            continue
        mean_p, rate = predicted[b] / counts[b], observed[b] / counts[b]
        gap = abs(mean_p - rate)
        ece += counts[b] / len(scores) * gap
        if counts[b] >= min_count:
            mce = max(mce, gap)
        out_bins.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": int(counts[b]),
                "mean_predicted": float(mean_p),
                "observed_rate": float(rate),
            }
        )
    noise = ece_noise(scores, bins)
    return {
        "bins": out_bins,
        "expected_calibration_error": float(ece),
        # what the gate's bound (gate.max_ece) is compared with: the ECE beyond what
        # the test set's size alone would give a calibrated model
        "ece_noise_95": noise,
        "expected_calibration_error_beyond_noise": max(0.0, float(ece) - noise),
        "max_calibration_error": float(mce),
        "max_calibration_error_min_count": min_count,
        "mean_predicted": float(scores.mean()),
        "observed_rate": float(labels.mean()),
    }


# ---------------------------------------------------------------- fairness


def fairness(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    meta: dict[str, Groups] | None,
    sensitive: list[str],
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Per group of each sensitive attribute: approvals, defaults, error rates, and gaps."""
    out: dict[str, Any] = {
        "threshold": threshold,
        "favourable_outcome": "approved: P(default) < threshold",
        "min_group_size": min_group_size,
        "attributes": {},
    }
    if not sensitive:
        out["status"] = "the feature manifest names no sensitive attributes"
        return out
    if meta is None:
        out["status"] = "skipped: test_meta.csv not found"
        return out
    predicted_default = scores >= threshold
    for attribute in sensitive:
        if attribute not in meta:
            out["attributes"][attribute] = {"status": "not in test_meta.csv"}
            continue
        values = meta[attribute]
        groups = []
        for code, group in sorted(enumerate(values.levels), key=lambda item: item[1]):
            mask = values.codes == code
            if not mask.any():
                continue
            y, flagged = labels[mask], predicted_default[mask]
            n, pos = int(mask.sum()), int(y.sum())
            neg = n - pos
            groups.append(
                {
                    "group": str(group),
                    "count": n,
                    "approval_rate": float(1 - flagged.mean()),
                    "default_rate": float(pos / n),
                    # a good applicant rejected / a defaulter approved
                    "false_positive_rate": float((flagged & (y == 0)).sum() / neg) if neg else None,
                    "false_negative_rate": float((~flagged & (y == 1)).sum() / pos)
                    if pos
                    else None,
                    "small_group": n < min_group_size,
                }
            )
        out["attributes"][attribute] = _gaps(groups)
    return out


def _gaps(groups: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [g for g in groups if not g["small_group"]] or groups
    best_approval = max(judged, key=lambda g: g["approval_rate"])
    fprs = [g["false_positive_rate"] for g in judged if g["false_positive_rate"] is not None]
    fnrs = [g["false_negative_rate"] for g in judged if g["false_negative_rate"] is not None]
    best_fpr, best_fnr = min(fprs, default=None), min(fnrs, default=None)
    for g in groups:
        ref = best_approval["approval_rate"]
        g["approval_rate_gap"] = ref - g["approval_rate"]
        g["adverse_impact_ratio"] = g["approval_rate"] / ref if ref else None
        g["false_positive_rate_gap"] = (
            g["false_positive_rate"] - best_fpr
            if g["false_positive_rate"] is not None and best_fpr is not None
            else None
        )
        g["false_negative_rate_gap"] = (
            g["false_negative_rate"] - best_fnr
            if g["false_negative_rate"] is not None and best_fnr is not None
            else None
        )
    judged_names = {g["group"] for g in judged}
    considered = [g for g in groups if g["group"] in judged_names]
    ratios = [
        g["adverse_impact_ratio"] for g in considered if g["adverse_impact_ratio"] is not None
    ]
    min_ratio = min(ratios, default=None)
    return {
        "reference_group": best_approval["group"],
        "groups": groups,
        "max_approval_rate_gap": max(g["approval_rate_gap"] for g in considered),
        "min_adverse_impact_ratio": min_ratio,
        "passes_four_fifths_rule": bool(min_ratio is None or min_ratio >= FOUR_FIFTHS),
        "max_false_positive_rate_gap": max(
            (
                g["false_positive_rate_gap"]
                for g in considered
                if g["false_positive_rate_gap"] is not None
            ),
            default=None,
        ),
        "max_false_negative_rate_gap": max(
            (
                g["false_negative_rate_gap"]
                for g in considered
                if g["false_negative_rate_gap"] is not None
            ),
            default=None,
        ),
        "groups_too_small_to_judge": [g["group"] for g in groups if g["group"] not in judged_names],
    }


# ---------------------------------------------------------------- explanations


def shap_values(
    model: Model, features: np.ndarray, rows: int, seed: int = 0, nthread: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sampled row indices, SHAP contributions incl. bias column, margin) from XGBoost."""
    n = len(features)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, rows), replace=False)) if rows < n else np.arange(n)
    dm = _dmatrix(model, features[sample], nthread)
    contributions = model.booster.predict(dm, pred_contribs=True).astype(np.float64)
    if model.linear is not None:  # the regression's shares: moved from the bias to features
        contributions = lm.with_shares(contributions, model.linear, features[sample])
    margin = model.booster.predict(dm, output_margin=True).astype(np.float64)
    return sample, contributions, margin


def importance(model: Model, names: list[str]) -> dict[str, dict[str, float]]:
    """Gain (average per split), total gain, splits ("weight") and average rows per split
    ("cover") per feature, by manifest name."""
    out = {}
    for kind in ("gain", "total_gain", "weight", "cover"):
        scores = model.booster.get_score(importance_type=kind)
        values = dict.fromkeys(names, 0.0)
        for key, value in scores.items():
            name = names[int(key[1:])] if key not in values and key[1:].isdigit() else key
            values[name] = float(value)
        out[kind] = dict(sorted(values.items(), key=lambda kv: -kv[1]))
    return out


def _rank(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def explain(
    model: Model,
    features: np.ndarray,
    names: list[str],
    kinds: list[str],
    categories: dict[str, list[str]],
    rows: int,
    nthread: int = 0,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Explanations for evaluation.json, and the raw SHAP sample for the plots."""
    sample, contributions, margin = shap_values(model, features, rows, nthread=nthread)
    phi = contributions[:, :-1]
    mean_abs = np.abs(phi).mean(axis=0)
    values = features[sample]
    drivers = []
    for j in np.argsort(-mean_abs):
        name = names[j]
        x, s = values[:, j], phi[:, j]
        present = ~np.isnan(x)
        entry: dict[str, Any] = {
            "feature": name,
            "kind": kinds[j],
            "mean_abs_shap": float(mean_abs[j]),
        }
        if kinds[j] == "categorical":
            cats = categories.get(name, [])
            per = {}
            for code in np.unique(x[present]):
                label = (
                    cats[int(code)] if 0 <= code < len(cats) and code == int(code) else str(code)
                )
                per[label] = float(s[present & (x == code)].mean())
            if (~present).any():
                per["(missing)"] = float(s[~present].mean())
            ranked = sorted(per.items(), key=lambda kv: -kv[1])
            entry["mean_shap_by_category"] = dict(ranked)
            up = [k for k, v in ranked if v > 0][:3]
            down = [k for k, v in reversed(ranked) if v < 0][:3]
            entry["direction"] = (
                f"raises risk: {', '.join(up) or 'none'}; lowers risk: {', '.join(down) or 'none'}"
            )
        else:
            corr = 0.0
            if present.sum() > 2 and np.ptp(x[present]) > 0 and np.ptp(s[present]) > 0:
                corr = float(np.corrcoef(_rank(x[present]), _rank(s[present]))[0, 1])
            entry["shap_value_rank_correlation"] = corr
            if corr > 0.3:
                entry["direction"] = "higher values raise risk"
            elif corr < -0.3:
                entry["direction"] = "higher values lower risk"
            else:
                entry["direction"] = "mixed (no simple direction)"
            if (~present).any():
                entry["mean_shap_when_missing"] = float(s[~present].mean())
        drivers.append(entry)
    additivity = float(np.max(np.abs(contributions.sum(axis=1) - margin))) if len(margin) else 0.0
    gains = importance(model, names)
    result = {
        "feature_importance": {"importance_type": "gain", **gains},
        "shap": {
            "method": "xgboost pred_contribs (TreeSHAP), in log-odds of default",
            "rows": int(len(sample)),
            "base_value": float(contributions[0, -1]) if len(contributions) else 0.0,
            "mean_abs_shap": {d["feature"]: d["mean_abs_shap"] for d in drivers},
            "max_additivity_error": additivity,
        },
        "top_drivers": drivers,
    }
    raw = {"sample": sample, "contributions": phi, "values": values}
    return result, raw


# ---------------------------------------------------------------- champion


# One-sided 95 %: the gate refuses a candidate only when it loses to the baseline by more
# than the margin beyond the noise of the test set (its paired bootstrap).
BASELINE_Z = 1.645


def baseline_section(
    fitted: lr_baseline.FittedLogistic,
    labels: np.ndarray,
    baseline_scores: np.ndarray,
    candidate_scores: np.ndarray,
    margin: float,
    seed: int,
    bootstrap_samples: int = 100,
    bootstrap_max_rows: int = BOOTSTRAP_MAX_ROWS,
) -> dict[str, Any]:
    """The logistic-regression baseline on the same test set, and the bar it sets.

    min_auc_required = baseline AUC - margin - 1.645 x the standard deviation of the
    (candidate - baseline) AUC difference over paired bootstrap resamples of the test
    set: on a few hundred test rows that difference is noise-sized, and a gate that
    ignores it refuses good models at random. Above `bootstrap_max_rows` test rows the
    resamples draw from a seeded sample of them (BootstrapRows).
    """
    ranking = Ranking.of(labels, baseline_scores)
    tp, fp = ranking.counts()
    auc = roc_auc(tp, fp)
    candidate = Ranking.of(labels, candidate_scores)
    candidate_auc = roc_auc(*candidate.counts())
    boot = BootstrapRows.of(len(labels), bootstrap_max_rows, seed)
    if boot.index is not None:
        b_labels = boot.take(labels)
        ranking = Ranking.of(b_labels, boot.take(baseline_scores))
        candidate = Ranking.of(b_labels, boot.take(candidate_scores))
    rng, m = np.random.default_rng(seed), boot.rows
    differences = []
    for _ in range(max(0, bootstrap_samples)):
        weights = np.bincount(rng.integers(0, m, m), minlength=m).astype(np.float64)
        btp, bfp = ranking.counts(weights)
        if btp[-1] == 0 or bfp[-1] == 0:  # a resample with one class has no AUC
            continue
        differences.append(roc_auc(*candidate.counts(weights)) - roc_auc(btp, bfp))
    spread = boot.scale * float(np.std(differences)) if len(differences) > 1 else 0.0
    cal = calibration(labels, baseline_scores)
    log(f"logistic-regression baseline AUC {auc:.4f} (C {fitted.C:g}, {fitted.rows} rows)")
    return {
        "model": "logistic_regression",
        "auc": auc,
        "pr_auc": average_precision(tp, fp),
        "brier": float(np.mean((baseline_scores - labels) ** 2)),
        "expected_calibration_error": cal["expected_calibration_error"],
        "mean_predicted": cal["mean_predicted"],
        "C": fitted.C,
        "training_rows": fitted.rows,
        "auc_margin": margin,
        "difference_standard_deviation": spread,
        "min_auc_required": auc - margin - BASELINE_Z * spread,
        "candidate_auc_minus_baseline": candidate_auc - auc,
    }


def load_champion(
    champion_dir: Path | None,
    scratch: Path,
    manifest: dict[str, Any],
    names: list[str],
) -> Model | None:
    """The approved model, checked to read the candidate's columns; None when there is none."""
    if champion_dir is None or not champion_dir.exists():
        log("no champion model: the gate compares with the absolute minimum only")
        return None
    if champion_dir.is_dir() and not any(
        not p.name.startswith(".") for p in champion_dir.iterdir()
    ):
        log(f"champion directory {champion_dir} is empty: no champion")
        return None
    champion = load_model(champion_dir, scratch, role="champion model")
    if champion.manifest is None:
        raise EvaluationError(
            f"the champion model in {champion_dir} holds no {MANIFEST_IN_MODEL}, so it cannot "
            "be shown to read the same columns; the models are incomparable"
        )
    differences = manifest_differences(manifest, champion.manifest)
    if differences:
        raise EvaluationError(
            "the champion model reads different input columns than the candidate, so it "
            "cannot be scored on this test set and the models are incomparable: "
            + "; ".join(differences)
            + ". Approve or reject the candidate by hand, or retrain the champion's "
            "features first."
        )
    check_model_matches(champion, names, "champion model")
    return champion


def champion_section(
    champion: Model | None, labels: np.ndarray, scores: np.ndarray | None, margin: float
) -> dict[str, Any]:
    if champion is None or scores is None:
        return {"auc": None, "min_auc_required": 0.0, "auc_margin": margin, "present": False}
    tp, fp = Ranking.of(labels, scores).counts()
    auc = roc_auc(tp, fp)
    log(f"champion AUC {auc:.4f} on the same test set")
    return {
        "auc": auc,
        "min_auc_required": auc - margin,
        "auc_margin": margin,
        "present": True,
        "pr_auc": average_precision(tp, fp),
        "brier": float(np.mean((scores - labels) ** 2)),
        "source": str(champion.source),
    }


# ---------------------------------------------------------------- credit-risk staples


def strongest_correlation(
    values: np.ndarray, names: list[str], kinds: list[str], name: str
) -> tuple[str, float] | None:
    """The numerical feature whose values rank-correlate most with `name`'s, on `values` rows.

    Category codes have no order, so categorical features are left out either side.
    """
    j = names.index(name)
    if kinds[j] == "categorical":
        return None
    best: tuple[str, float] | None = None
    for k, other in enumerate(names):
        if k == j or kinds[k] == "categorical":
            continue
        both = ~np.isnan(values[:, j]) & ~np.isnan(values[:, k])
        if both.sum() < MIN_CORRELATION_ROWS:
            continue
        x, y = values[both, j], values[both, k]
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        r = float(np.corrcoef(_rank(x), _rank(y))[0, 1])
        if best is None or abs(r) > abs(best[1]):
            best = (other, r)
    return best


def credit_risk_section(
    model: Model,
    labels: np.ndarray,
    scores: np.ndarray,
    training_sample: np.ndarray,
    training_rows: int,
    result: dict[str, Any],
    explanations: dict[str, Any],
    shap_values_sample: np.ndarray,
    names: list[str],
    kinds: list[str],
    seed: int,
    nthread: int,
) -> dict[str, Any]:
    """Gini, gains/lift, score PSI against training, cost against threshold, and where the
    gain and SHAP rankings disagree (see credit_risk.py)."""
    auc = result["binary_classification_metrics"]["auc"]
    psi = cr.score_psi(predict(model, training_sample, nthread), scores)
    if len(training_sample) < training_rows:
        psi["training_rows_sampled_from"] = int(training_rows)
    th = result["threshold"]
    gains = explanations["feature_importance"]
    disagreement = cr.ranking_disagreements(
        names,
        gains["gain"],
        explanations["shap"]["mean_abs_shap"],
        gains["weight"],
        gains["cover"],
        correlated=lambda name: strongest_correlation(shap_values_sample, names, kinds, name),
    )
    return {
        "gini": cr.gini(auc["value"], auc["standard_deviation"]),
        "gains_lift": cr.gains_table(labels, scores),
        "score_psi": psi,
        "cost_curve": cr.cost_curve(
            labels,
            scores,
            th["cost_false_negative"],
            th["cost_false_positive"],
            result["decision_threshold"],
        ),
        "importance_disagreement": disagreement,
    }


# ---------------------------------------------------------------- lineage


def model_file_settings(model: Model) -> dict[str, Any]:
    """What the model file itself records of its training. XGBoost does not save the tree
    parameters (max_depth, eta, ...) in the model: read back, they show defaults."""
    learner = json.loads(model.booster.save_config())["learner"]
    out: dict[str, Any] = {
        "objective": model.objective,
        "boosted_rounds": int(model.booster.num_boosted_rounds()),
        "num_features": int(model.booster.num_features()),
    }
    weight = learner.get("objective", {}).get("reg_loss_param", {}).get("scale_pos_weight")
    if weight is not None:
        out["scale_pos_weight"] = _setting(weight)
    best = model.booster.attr("best_iteration")
    if best is not None:
        out["best_iteration"] = _setting(best)
    return out


def hyperparameters_of_best_trial(tuning: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters the model was trained with: the tuning job's static ones and
    its best trial's tuned ones."""
    if tuning.get("status") != "recorded":
        return {"source": "not recorded", "reason": tuning.get("reason"), "values": None}
    return {
        "source": f"tuning job {tuning['job_name']}, best training job "
        f"{tuning['best_training_job']}: static and tuned hyperparameters",
        "values": {**tuning["static_hyperparameters"], **tuning["best_hyperparameters"]},
    }


def _setting(text: str) -> Any:
    """A saved-config value as a number where it is one ("0.300000012" -> 0.3: float32)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() else float(f"{value:.6g}")


def _objective_value(summary: dict[str, Any]) -> float | None:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = metric.get("Value")
    return float(value) if value is not None else None


def region_of(arn: str) -> str | None:
    """The region an ARN names (arn:partition:service:region:...), if any."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


def tuning_record(job_name: str, client: Any = None, region: str | None = None) -> dict[str, Any]:
    """The tuning job and its trials, from SageMaker's DescribeHyperParameterTuningJob and
    ListTrainingJobsForHyperParameterTuningJob; "not recorded" with the reason when the API
    cannot be reached. Never raises: lineage must not fail an evaluation."""
    if not job_name:
        return {"status": "not recorded", "reason": "no tuning job name was given"}
    try:
        if client is None:
            import boto3
            from botocore.config import Config

            # A processing container may have no region configured; the run's ARN has one.
            client = boto3.client(
                "sagemaker",
                region_name=os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or region,
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
            )
        described = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
        summaries: list[dict[str, Any]] = []
        token = None
        while True:
            request: dict[str, Any] = {"HyperParameterTuningJobName": job_name, "MaxResults": 100}
            if token:
                request["NextToken"] = token
            page = client.list_training_jobs_for_hyper_parameter_tuning_job(**request)
            summaries.extend(page.get("TrainingJobSummaries", []))
            token = page.get("NextToken")
            if not token:
                break
    except Exception as exc:  # noqa: BLE001 - any failure: lineage says so and goes on
        log(f"tuning job {job_name}: not recorded ({type(exc).__name__}: {exc})")
        return {
            "status": "not recorded",
            "job_name": job_name,
            "reason": f"{type(exc).__name__}: {exc}",
        }
    config = described.get("HyperParameterTuningJobConfig", {})
    objective = config.get("HyperParameterTuningJobObjective", {})
    maximise = objective.get("Type", "Maximize") == "Maximize"
    best = described.get("BestTrainingJob") or {}
    trials = [
        {
            "training_job": s.get("TrainingJobName"),
            "status": s.get("TrainingJobStatus"),
            "objective": _objective_value(s),
            "hyperparameters": dict(s.get("TunedHyperParameters", {})),
            "failure_reason": s.get("FailureReason"),
        }
        for s in summaries
    ]
    # Best first; trials without an objective (failed, stopped) last, by name.
    trials.sort(
        key=lambda t: (
            t["objective"] is None,
            -(t["objective"] or 0.0) if maximise else (t["objective"] or 0.0),
            str(t["training_job"]),
        )
    )
    static = described.get("TrainingJobDefinition", {}).get("StaticHyperParameters", {})
    return {
        "status": "recorded",
        "source": "SageMaker DescribeHyperParameterTuningJob and "
        "ListTrainingJobsForHyperParameterTuningJob",
        "job_name": job_name,
        "job_status": described.get("HyperParameterTuningJobStatus"),
        "strategy": config.get("Strategy"),
        "objective": {"metric": objective.get("MetricName"), "type": objective.get("Type")},
        "best_training_job": best.get("TrainingJobName"),
        "best_objective": _objective_value(best),
        "best_hyperparameters": dict(best.get("TunedHyperParameters", {})),
        "static_hyperparameters": {
            k: v for k, v in sorted(static.items()) if not k.startswith(("sagemaker_", "_"))
        },
        "trials": trials,
    }


def lineage(
    args: argparse.Namespace,
    manifest: dict[str, Any],
    model: Model,
    training_rows: int,
    training_defaults: int,
    validation_rows: int | None,
    tuning: dict[str, Any],
) -> dict[str, Any]:
    """Where this model and its evaluation come from; unknowns are null, with the reason."""
    group = args.model_package_group or None
    window = manifest.get("time_window")
    return {
        "run_id": args.pipeline_execution_id or None,
        "pipeline_execution_arn": args.pipeline_execution_arn or None,
        "model_package_group": group,
        "model_version": {
            "value": None,
            "why": "the evaluation runs before registration; the version is the "
            "ModelPackageVersion the RegisterModel step receives"
            + (f" in the model package group {group}" if group else "")
            + ", and that package's metadata pipeline_execution_id is this run id",
        },
        "evaluated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": {
            "rows": int(training_rows),
            "defaults": int(training_defaults),
            "validation_rows": validation_rows,
            "time_window": window,
            "time_window_note": None
            if window
            else "not recorded: the preprocessing manifest (feature_manifest.json) records "
            "no time window of the data",
            "schema_name": manifest.get("schema_name"),
        },
        "model_hyperparameters": hyperparameters_of_best_trial(tuning),
        "model_file": model_file_settings(model),
        "tuning": tuning,
    }


# ---------------------------------------------------------------- reading in batches


@dataclass(frozen=True)
class FitRows:
    """What the evaluation keeps of the rows the candidate trained on."""

    training: Sample  # a uniform sample of the training rows
    validation: Sample | None  # ... and of the validation rows, as many at most
    statistics: ts.StatisticsAccumulator  # exact totals of the training rows
    training_defaults: int
    validation_labels: np.ndarray | None
    validation_scores: np.ndarray | None  # the candidate's, where the threshold is chosen

    @property
    def training_rows(self) -> int:
        return self.training.seen

    def baseline_rows(self, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(labels, features, rows they stand for) the logistic baseline is fitted on:
        the training sample and validation rows in their share of the whole; while all
        rows fit, every training row then every validation row."""
        t, v = self.training, self.validation
        if v is None:
            return t.labels, t.features, t.seen
        want = min(len(v.labels), round(len(t.labels) * v.seen / t.seen))
        pick = np.arange(len(v.labels))
        if want < len(v.labels):
            pick = np.sort(np.random.default_rng(seed).choice(len(v.labels), want, replace=False))
        return (
            np.concatenate([t.labels, v.labels[pick]]),
            np.concatenate([t.features, v.features[pick]]),
            t.seen + v.seen,
        )


def read_fit_rows(
    args: argparse.Namespace,
    model: Model,
    n_features: int,
    kinds: list[str],
    score_validation: bool,
) -> FitRows:
    """Stream the training and validation rows once: uniform samples of each, exact
    training totals, and the candidate's validation scores when they are needed."""
    training = RowReservoir(args.training_sample_rows, args.seed)
    totals = ts.StatisticsAccumulator(kinds)
    defaults = 0
    for file in training_files(args.train_dir):
        for labels, features in iter_labelled_csv(file, n_features, "training data"):
            training.add(labels, features)
            totals.add(features)
            defaults += int(labels.sum())
    validation = val_labels = val_scores = None
    if args.validation_dir and split_files(args.validation_dir, "validation"):
        validation = RowReservoir(args.training_sample_rows, args.seed + 1)
        label_parts, score_parts = [], []
        for file in split_files(args.validation_dir, "validation"):
            for labels, features in iter_labelled_csv(file, n_features, "validation"):
                validation.add(labels, features)
                label_parts.append(labels)
                if score_validation:
                    score_parts.append(predict(model, features, args.nthread))
        val_labels = np.concatenate(label_parts)
        val_scores = np.concatenate(score_parts) if score_parts else None
    return FitRows(
        training=training.rows(),
        validation=validation.rows() if validation is not None else None,
        statistics=totals,
        training_defaults=defaults,
        validation_labels=val_labels,
        validation_scores=val_scores,
    )


@dataclass(frozen=True)
class TestSet:
    labels: np.ndarray
    scores: np.ndarray  # the candidate's
    champion_scores: np.ndarray | None
    baseline_scores: np.ndarray
    shap_rows: np.ndarray  # a seeded uniform sample of the test rows' features
    meta: dict[str, Groups] | None


def score_test_set(
    args: argparse.Namespace,
    model: Model,
    champion: Model | None,
    fitted: lr_baseline.FittedLogistic,
    n_features: int,
    sensitive: list[str],
) -> TestSet:
    """Score every test row with the candidate, the champion and the baseline, a batch at
    a time: what is kept per row is its label and three scores."""
    files = required_split_files(args.test_dir, "test", "test data")
    shap = RowReservoir(args.shap_sample_rows, args.seed)
    labels_, scores, champion_scores, baseline_scores = [], [], [], []
    rows_per_file = []
    for file in files:
        rows = 0
        for labels, features in iter_labelled_csv(file, n_features, "test data"):
            labels_.append(labels)
            scores.append(predict(model, features, args.nthread))
            if champion is not None:
                champion_scores.append(predict(champion, features, args.nthread))
            baseline_scores.append(fitted.scores(features))
            shap.add(labels, features)
            rows += len(labels)
        rows_per_file.append(rows)
    meta = read_split_meta(files, rows_per_file, sensitive)
    return TestSet(
        labels=np.concatenate(labels_),
        scores=np.concatenate(scores),
        champion_scores=np.concatenate(champion_scores) if champion is not None else None,
        baseline_scores=np.concatenate(baseline_scores),
        shap_rows=shap.rows().features,
        meta=meta,
    )


# ---------------------------------------------------------------- main


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    timings: dict[str, float] = {}
    last = [started]

    def lap(name: str) -> None:
        now = time.monotonic()
        timings[name] = round(now - last[0], 3)
        last[0] = now

    if args.auc_margin < 0:
        raise EvaluationError("--auc-margin must not be negative")
    if args.cost_false_negative <= 0 or args.cost_false_positive <= 0:
        raise EvaluationError("costs must be positive")
    if args.baseline_auc_margin < 0:
        raise EvaluationError("--baseline-auc-margin must not be negative")
    if args.shap_sample_rows < 1:
        raise EvaluationError("--shap-sample-rows must be at least 1")
    if args.training_sample_rows < 1:
        raise EvaluationError("--training-sample-rows must be at least 1")
    out = args.output_dir
    with tempfile.TemporaryDirectory(prefix="boostline-evaluate-") as tmp:
        scratch = Path(tmp)
        model = load_model(args.model_dir, scratch)
        manifest = load_manifest(args.manifest_dir, model)
        names, kinds, categories = dq.feature_spec(manifest)
        sensitive = list(manifest.get("sensitive", []))
        check_model_matches(model, names)
        champion = load_champion(args.champion_model_dir, scratch, manifest, names)
        required_split_files(args.test_dir, "test", "test data")  # before the long passes
        fit_rows = read_fit_rows(args, model, len(names), kinds, model.holdout is None)
        lap("load")

        # the baseline is fitted on the rows the candidate trained on (train, and
        # validation, which a small-data model trains on too): their sample
        fit_labels, fit_features, represented = fit_rows.baseline_rows(args.seed)
        fitted = lr_baseline.fit(
            fit_labels.astype(np.float64),
            fit_features,
            [k == "categorical" for k in kinds],
            seed=args.seed,
        )
        log(
            f"logistic-regression baseline: C {fitted.C:g}, fitted on {fitted.rows} of "
            f"{represented} rows"
        )
        lap("logistic_baseline_fit")
        test = score_test_set(args, model, champion, fitted, len(names), sensitive)
        labels, scores = test.labels, test.scores
        chosen_on, fixed = "test", None
        if model.holdout is not None:
            # A cross-validated model trained on the validation rows too: its threshold is
            # chosen on the out-of-fold scores, which no model saw while training.
            try:
                held_labels, held_scores, _ = calib.read_holdout(model.holdout)
            except (calib.CalibrationError, ValueError) as exc:
                raise EvaluationError(f"model: {exc}") from None
            fixed = choose_threshold(
                held_labels,
                held_scores,
                args.threshold_rule,
                args.cost_false_negative,
                args.cost_false_positive,
            )
            chosen_on = "out-of-fold"
        elif fit_rows.validation_labels is not None and fit_rows.validation_scores is not None:
            fixed = choose_threshold(
                fit_rows.validation_labels,
                fit_rows.validation_scores,
                args.threshold_rule,
                args.cost_false_negative,
                args.cost_false_positive,
            )
            chosen_on = "validation"
        lap("predict")
        result = binary_metrics(
            labels,
            scores,
            rule=args.threshold_rule,
            cost_false_negative=args.cost_false_negative,
            cost_false_positive=args.cost_false_positive,
            bootstrap_samples=args.bootstrap_samples,
            seed=args.seed,
            threshold=fixed,
            bootstrap_max_rows=args.bootstrap_max_rows,
        )
        result["threshold_chosen_on"] = chosen_on
        threshold = result["decision_threshold"]
        lap("metrics")
        champion_result = champion_section(champion, labels, test.champion_scores, args.auc_margin)
        lap("champion")
        baseline = baseline_section(
            fitted,
            labels,
            test.baseline_scores,
            scores,
            args.baseline_auc_margin,
            args.seed,
            args.bootstrap_samples,
            args.bootstrap_max_rows,
        )
        lap("logistic_baseline")
        explanations, shap_raw = explain(
            model, test.shap_rows, names, kinds, categories, len(test.shap_rows), args.nthread
        )
        lap("explanations")
        training_sample = fit_rows.training.features
        credit = credit_risk_section(
            model,
            labels,
            scores,
            training_sample,
            fit_rows.training_rows,
            result,
            explanations,
            shap_raw["values"],
            names,
            kinds,
            args.seed,
            args.nthread,
        )
        lap("credit_risk")
        validation_rows = (
            int(len(fit_rows.validation_labels)) if fit_rows.validation_labels is not None else None
        )
        provenance = lineage(
            args,
            manifest,
            model,
            fit_rows.training_rows,
            fit_rows.training_defaults,
            validation_rows,
            tuning_record(args.tuning_job_name, region=region_of(args.pipeline_execution_arn)),
        )
        lap("lineage")

        statistics = fit_rows.statistics.statistics(training_sample, names, categories=categories)
        constraints = dq.suggest_constraints(statistics, domains=categories)
        _write_json(out / "baseline" / "statistics.json", statistics)
        _write_json(out / "baseline" / "constraints.json", constraints)
        lap("baseline")

    target = manifest.get("target", {})
    evaluation: dict[str, Any] = {
        "binary_classification_metrics": result["binary_classification_metrics"],
        "decision_threshold": threshold,
        "threshold_rule": result["threshold_rule"],
        "threshold_chosen_on": result["threshold_chosen_on"],
        "expected_cost_per_application": result["expected_cost_per_application"],
        "champion": champion_result,
        "threshold": result["threshold"],
        "calibration": calibration(labels, scores),
        "logistic_baseline": baseline,
        "fairness": fairness(labels, scores, threshold, test.meta, sensitive),
        "explanations": explanations,
        "credit_risk": credit,
        "lineage": provenance,
        "dataset": {
            "test_rows": int(len(labels)),
            "test_defaults": int(labels.sum()),
            "test_default_rate": float(labels.mean()),
            "training_rows": int(fit_rows.training_rows),
            "training_rows_sampled": int(len(training_sample)),
            "target": target,
            "features": [{"name": n, "kind": k} for n, k in zip(names, kinds, strict=True)],
            "schema_name": manifest.get("schema_name"),
        },
        "model": {
            "objective": model.objective,
            "boosted_rounds": int(model.booster.num_boosted_rounds()),
            "num_features": int(model.booster.num_features()),
            # what turns the booster's probability into the one scored and served
            "calibration": (
                None
                if model.calibrator is None
                else {
                    "method": model.calibrator.method,
                    "fitted_on": model.calibrator.fitted_on,
                    "selection": model.calibrator.selection,
                }
            ),
            # the logistic regression whose log-odds the booster starts from, if any
            "linear_margin": None if model.linear is None else model.linear.fitted_on,
        },
        "bootstrap": result["bootstrap"],
        "baseline": {
            "statistics": "baseline/statistics.json",
            "constraints": "baseline/constraints.json",
            "feature_naming": "manifest names; column_index gives the _c<i> position",
        },
    }
    lap("fairness")
    _write_json(out / "evaluation" / "evaluation.json", evaluation)

    try:
        import report
    except ImportError:  # pragma: no cover - imported as a package
        from training_scripts import report
    report.write_report(
        out / "report",
        evaluation,
        labels=labels,
        scores=scores,
        shap=shap_raw,
        names=names,
        kinds=kinds,
    )
    lap("report")
    evaluation["timing_seconds"] = {**timings, "total": round(time.monotonic() - started, 3)}
    _write_json(out / "evaluation" / "evaluation.json", evaluation)
    metrics = evaluation["binary_classification_metrics"]
    log(
        f"AUC {metrics['auc']['value']:.4f} (+/- {metrics['auc']['standard_deviation']:.4f}), "
        f"threshold {threshold:.4f} ({args.threshold_rule}), "
        f"champion AUC {champion_result['auc']}, "
        f"min AUC required {champion_result['min_auc_required']:.4f}, logistic baseline AUC "
        f"{baseline['auc']:.4f}; "
        f"{evaluation['timing_seconds']['total']} s"
    )
    return evaluation


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2) + "\n", encoding="utf-8")


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    inputs = PROCESSING / "input"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=inputs / "model")
    p.add_argument("--test-dir", type=Path, default=inputs / "test")
    p.add_argument("--train-dir", type=Path, default=inputs / "train")
    p.add_argument(
        "--validation-dir",
        type=_optional_path,
        default=inputs / "validation",
        help="where the threshold is chosen (validation.csv); without it, on the test set",
    )
    p.add_argument("--manifest-dir", type=_optional_path, default=None)
    p.add_argument("--champion-model-dir", type=_optional_path, default=inputs / "champion")
    p.add_argument("--output-dir", type=Path, default=PROCESSING / "output")
    p.add_argument("--threshold-rule", choices=("max_f1", "min_cost"), default="min_cost")
    p.add_argument("--cost-false-negative", type=float, default=5.0)
    p.add_argument("--cost-false-positive", type=float, default=1.0)
    p.add_argument("--auc-margin", type=float, default=0.01)
    p.add_argument(
        "--baseline-auc-margin",
        type=float,
        default=0.01,
        help="how much lower than the logistic-regression baseline's AUC the candidate's may be",
    )
    p.add_argument("--shap-sample-rows", type=int, default=2000)
    p.add_argument(
        "--training-sample-rows",
        type=int,
        default=TRAINING_SAMPLE_ROWS,
        help="training and validation rows held in memory (a seeded uniform sample); "
        "counts and moments of the baseline statistics are exact over all of them",
    )
    p.add_argument("--bootstrap-samples", type=int, default=100)
    p.add_argument(
        "--bootstrap-max-rows",
        type=int,
        default=BOOTSTRAP_MAX_ROWS,
        help="above this many test rows the bootstrap resamples a seeded sample of them "
        "(spreads scaled by sqrt(sample / rows)); 0: always every row",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nthread", type=int, default=0, help="XGBoost threads; 0 = all cores")
    p.add_argument("--pipeline-execution-id", default="", help="the run id, for the lineage")
    p.add_argument("--pipeline-execution-arn", default="")
    p.add_argument("--model-package-group", default="", help="where the model is registered")
    p.add_argument(
        "--tuning-job-name",
        default="",
        help="the tuning job whose best model this is; its trials are read from SageMaker",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        evaluate(args)
    except Exception as exc:  # noqa: BLE001 - every failure must end with a clear message
        message = f"evaluation failed: {exc}"
        report_failure(message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
