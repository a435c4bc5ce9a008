"""Train the loan-default classifier: the entry point of a SageMaker XGBoost script-mode job.

Runs unchanged in the sagemaker-xgboost 3.0-5 image (Python 3.10; stdlib, numpy, pyarrow
and xgboost, and the image's scikit-learn for the linear margin) and in the local stand-in,
boostline/local/training_job.py.

Inputs
  hyperparameters  `--name value` arguments (and the JSON dict in SM_HPS)
  train            SM_CHANNEL_TRAIN: headerless CSV files, label 0/1 first, numeric
                   features after it, an empty field is a missing value
  validation       SM_CHANNEL_VALIDATION (optional): same format; enables early stopping
  manifest         SM_CHANNEL_MANIFEST (optional): copied to $SM_MODEL_DIR/boostline/;
                   the `columns` of feature_manifest.json name the features
Outputs
  $SM_MODEL_DIR/xgboost-model           the booster (rank 0 only)
  $SM_MODEL_DIR/boostline/calibration.json      the calibration of its scores (rank 0;
                                        calibration.py)
  $SM_MODEL_DIR/boostline/linear_margin.json    cross-validated jobs with `linear_margin`
                                        auto: the regression the booster starts from
                                        (linear_margin.py); the booster needs it to score
  $SM_MODEL_DIR/boostline/holdout_scores.csv    cross-validated jobs only, one line per
                                        train + validation row: `label,calibrated
                                        probability,booster probability`, out of fold
  $SM_OUTPUT_DATA_DIR/model-digest.txt  sha256 of the final booster (every rank)
  $SM_OUTPUT_DATA_DIR/metrics.json      rows, best round and score, timings (every rank)
  $SM_OUTPUT_DIR/failure                why the job failed, on failure only; the image's
                                        toolkit overwrites it, so the reason is also
                                        printed on stderr: `Boostline failure: <reason>`

With several hosts (SM_HOSTS) the first sorted host runs the XGBoost tracker and every
host trains on the files in its own channel dirs.

Small data (fewer training rows than `cv_max_rows`, all hosts): the job scores itself by
`cv_folds`-fold stratified cross-validation on train + validation (cross_validation.py),
prints the folds' mean as its one `validation-<metric>:` line (what the tuner reads), and
trains the model on all of those rows for the rounds the folds chose. Each of its rounds
grows `cv_parallel_trees` trees (4) on different row and column samples and averages them,
which steadies small-data models (bench/bench_quality.py). Otherwise early stopping watches
the validation channel, whose best score is the metric line.

Linear margin (`linear_margin`: auto, the default, on or off): with cross-validation,
every row can start from the log-odds of a logistic regression (the evaluation's baseline,
fitted on train + validation; baseline.py) instead of the booster's constant base score,
so the trees learn what a linear model misses. The rows' starting margins come from
regressions fitted without their own fold (out of fold), so the folds' scores stay honest;
the stored regression, fitted on all of the rows, is what serving adds. With `auto` the
folds run both ways and the start with the better mean stopping metric (log loss) is kept:
where the signal is mostly linear the margin wins (few rows, smooth effects), where it is
not the trees from a constant do (bench/bench_quality.py). On several hosts rank 0 fits
the regression on every host's rows.

Class weighting: none unless `scale_pos_weight` is given, so the scores stay probabilities.

Leaf size (`min_child_rows`, tuned by the shipped config): min_child_weight in rows at the
training rows' base rate p; XGBoost gets min_child_rows * p * (1 - p), the Hessian of that
many rows before the first tree, so one range suits balanced and imbalanced books alike.

Calibration (`calibration`: platt, the default, isotonic, identity or auto): a map from
the booster's probability to a calibrated one, fitted on rows the final model never trained
on: the out-of-fold predictions of cross-validation (every train + validation row, from the
fold model that left it out, at the chosen rounds), or without cross-validation the final
model's predictions on the validation channel; no validation rows: identity. `auto` keeps
the method with the lowest cross-fitted log-loss (calibration.choose); `platt` or
`isotonic` is kept only if its cross-fitted log-loss beats no map at all (identity) by
calibration.MIN_GAIN: a booster started from a logistic regression is often calibrated
already, and a map fitted on a few hundred rows then only adds noise (measured on
breast_cancer: identity on every seed, test Brier .0253 against Platt's .0258). Platt is the default
by measurement (bench/bench_quality.py, 4 books x 5 seeds): it lowered or kept the mean test
Brier score and log-loss on every book and keeps the order of the scores (so the AUC),
where isotonic's ties cost AUC on every book and its log-loss was worse on three.

Categorical features (`categorical`: codes, the default, or native): preprocessing writes
each category as its index in the manifest's `categories`. With `native` the columns the
manifest marks `categorical` train as XGBoost categorical features (a split is a set of
codes); the booster stores that in its trees, so inference.py scores the same float array
either way. An unseen category (open list) or a missing one is encoded as missing, here
and at the endpoint alike, and takes each split's default branch.

Data larger than memory (`external_memory`: auto, the default, on or off): with `auto`,
when any host's train files exceed `external_memory_share` (0.25) of its RAM (or of its
container's memory limit), every host parses its channels once, in bounded blocks, into a
float32 spool on local disk and trains from an xgboost.ExtMemQuantileDMatrix built over it
(shard_iterator.py; quantile sketches merged through the collective; hist only), paging to
a hidden folder beside the channels (BOOSTLINE_SCRATCH_DIR moves it), removed at the end.
Peak memory then stays flat in rows; the metric lines, the model format and the
checkpoints (their data fingerprint too) are the in-memory ones. Cross-validated (small)
jobs always train in memory.

Checkpoints: rank 0 saves the booster every `checkpoint_interval` rounds under
/opt/ml/checkpoints/<TRAINING_JOB_NAME>/ (SageMaker sets TRAINING_JOB_NAME and syncs the
whole of /opt/ml/checkpoints with CheckpointConfig.S3Uri, which every trial of a tuning
job shares). Without TRAINING_JOB_NAME (a run by hand) they go in /opt/ml/checkpoints
itself. Each checkpoint carries a fingerprint of the data (a hash of every host's rows,
their counts) and of the hyperparameters it was trained with; a restarted job resumes
from the newest checkpoint whose fingerprint matches its own, and says why it passes
over any other. BOOSTLINE_CHECKPOINT_DIR moves /opt/ml/checkpoints (local runs).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import resource
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb
from xgboost import collective
from xgboost.tracker import RabitTracker

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import baseline
    import calibration
    import linear_margin
    import shard_iterator
    from cross_validation import CvResult, cross_validate, stratified_folds
    from job_message import FAILURE_LINE_LIMIT, positions_only, print_failure
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import baseline, calibration, linear_margin, shard_iterator
    from training_scripts.cross_validation import CvResult, cross_validate, stratified_folds
    from training_scripts.job_message import FAILURE_LINE_LIMIT, positions_only, print_failure

MODEL_FILE = "xgboost-model"
# The built-in XGBoost server loads every top-level file of the model dir as a booster.
EXTRAS_DIR = "boostline"
FEATURE_MANIFEST = "feature_manifest.json"
DIGEST_FILE = "model-digest.txt"
METRICS_FILE = "metrics.json"
FAILURE_FILE = "failure"
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_OUTPUT_DIR = "/opt/ml/output"
DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"
JOB_NAME_ENV = "TRAINING_JOB_NAME"
# SageMaker's job names are [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; a local name may add . and _.
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FINGERPRINT_ATTR = "boostline_fingerprint"
DEFAULT_TRACKER_PORT = 9099
TRACKER_WAIT_SECONDS = 900.0
TRACKER_SHUTDOWN_SECONDS = 60
CHECKPOINTS_KEPT = 2
# Scoring the training set is a full AUC sort of it; every round would cost more than
# the boosting itself on large data.
TRAIN_METRIC_EVERY = 25

OBJECTIVES = ("binary:logistic", "binary:logitraw")
EVAL_METRICS = ("auc", "aucpr", "logloss", "error")
MAXIMIZED_METRICS = ("auc", "aucpr")
TREE_METHODS = ("hist", "approx", "exact")
# Hyperparameters SageMaker itself adds (sagemaker_program, _tuning_objective_metric).
RESERVED_PREFIXES = ("sagemaker_", "_")


def metric_definitions(metric: str = "auc") -> list[dict[str, str]]:
    """Metric definitions for a training or tuning job; the last match is the final value."""
    number = r"([0-9\.]+)"
    return [
        {"Name": f"validation:{metric}", "Regex": f"validation-{metric}: {number}"},
        {"Name": f"train:{metric}", "Regex": f"train-{metric}: {number}"},
    ]


METRIC_DEFINITIONS = metric_definitions("auc")


class TrainingError(Exception):
    """A problem with the job's inputs; the message becomes the job's failure reason."""


class HyperparameterError(TrainingError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"hyperparameter '{name}': {reason}")
        self.name = name


# -- hyperparameters ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    parse: Callable[[str], Any]
    valid: Callable[[Any], bool]
    expected: str


def _to_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # a tuner may send "6.0"
        if not value.is_integer():
            raise
        return int(value)


def _number(
    low: float, high: float = math.inf, *, low_open: bool = False, integer: bool = False
) -> _Rule:
    def valid(value: float) -> bool:
        above = value > low if low_open else value >= low
        return above and value <= high

    kind = "an integer" if integer else "a number"
    if math.isinf(high):
        expected = f"{kind} {'>' if low_open else '>='} {low:.15g}"
    else:
        expected = f"{kind} in {'(' if low_open else '['}{low:.15g}, {high:.15g}]"
    return _Rule(_to_int if integer else _to_float, valid, expected)


def _choice(*options: str) -> _Rule:
    return _Rule(str.strip, lambda value: value in options, f"one of {', '.join(options)}")


def _on_off(text: str) -> str:
    # YAML 1.1 reads an unquoted on/off as a boolean, which reaches here as true/false.
    value = text.strip()
    return {"true": "on", "false": "off"}.get(value.lower(), value)


_FRACTION = _number(0, 1, low_open=True)
# Passed to XGBoost as they are.
_BOOSTER_RULES: dict[str, _Rule] = {
    "alpha": _number(0),
    "colsample_bylevel": _FRACTION,
    "colsample_bytree": _FRACTION,
    "eta": _FRACTION,
    "gamma": _number(0),
    "lambda": _number(0),
    "max_bin": _number(2, integer=True),
    "max_delta_step": _number(0),
    "max_depth": _number(0, integer=True),
    "min_child_weight": _number(0),
    "num_parallel_tree": _number(1, integer=True),
    "subsample": _FRACTION,
}
# Fields of Hyperparameters.
_CONTROL_RULES: dict[str, _Rule] = {
    "calibration": _choice("auto", *calibration.METHODS),
    "categorical": _choice("codes", "native"),
    "checkpoint_interval": _number(1, integer=True),
    "cv_folds": _number(2, 20, integer=True),
    "cv_early_stopping_rounds": _number(1, integer=True),
    "cv_max_rows": _number(0, integer=True),
    "cv_num_round": _number(1, integer=True),
    "cv_parallel_trees": _number(1, integer=True),
    "cv_stopping_metric": _choice(*EVAL_METRICS),
    "early_stopping_rounds": _number(1, integer=True),
    "eval_metric": _choice(*EVAL_METRICS),
    "external_memory": _Rule(_on_off, lambda v: v in ("auto", "on", "off"), "one of auto, on, off"),
    "external_memory_share": _FRACTION,
    "linear_margin": _Rule(_on_off, lambda v: v in ("auto", "on", "off"), "one of auto, on, off"),
    "min_child_rows": _number(0, low_open=True),
    "nthread": _number(1, integer=True),
    "num_round": _number(1, integer=True),
    "objective": _choice(*OBJECTIVES),
    "scale_pos_weight": _number(0, low_open=True),
    "seed": _number(0, 2**31 - 1, integer=True),
    "tree_method": _choice(*TREE_METHODS),
}
HYPERPARAMETERS = tuple(sorted({**_BOOSTER_RULES, **_CONTROL_RULES}))


@dataclass(frozen=True)
class Hyperparameters:
    num_round: int = 100
    objective: str = "binary:logistic"
    eval_metric: str = "auc"
    tree_method: str = "hist"
    seed: int = 0
    nthread: int | None = None  # None: SM_NUM_CPUS
    checkpoint_interval: int = 10
    early_stopping_rounds: int | None = None
    # Below cv_max_rows training rows (all hosts), the job scores itself by cv_folds-fold
    # cross-validation on train + validation and trains on all of them (0: never).
    cv_folds: int = 5
    cv_max_rows: int = 0
    # what picks the round and stops the folds early; the tuner still reads eval_metric
    cv_stopping_metric: str = "logloss"
    # rounds and patience of the folds: on small data a low learning rate needs more
    # rounds, and they cost seconds (num_round and early_stopping_rounds bound the rest)
    cv_num_round: int = 1000
    cv_early_stopping_rounds: int = 50
    # with cross-validation, each round grows this many trees on different row and column
    # samples and averages them (XGBoost's num_parallel_tree, unless that is given): on
    # small data one tree per round follows its sample's noise
    cv_parallel_trees: int = 4
    # 1 unless given: class-ratio weighting (negatives / positives) would make the scores
    # stop being probabilities; the evaluation's cost-based threshold handles imbalance.
    scale_pos_weight: float = 1.0
    # "auto": the calibration method with the lowest cross-fitted log-loss on held-out rows
    calibration: str = "platt"
    # "native": the manifest's categorical columns are XGBoost categorical features (their
    # codes split as sets); "codes": every column is a number, as before
    categorical: str = "codes"
    # "auto": train through XGBoost's external memory (batches paged to local disk) when
    # a host's train files exceed external_memory_share of its RAM; every host follows
    # the largest. Cross-validation (small data) always trains in memory.
    external_memory: str = "auto"
    external_memory_share: float = 0.25
    # with cross-validation, whether the booster starts from a logistic regression's
    # log-odds (linear_margin.py): "auto" when the folds score better so, "on" always,
    # "off" never (it starts from its constant base score)
    linear_margin: str = "auto"
    # min_child_weight in rows at the base rate p of the rows the model trains on: XGBoost
    # gets min_child_rows * p * (1 - p), a row's Hessian before the first tree. A fixed
    # min_child_weight of 1 asks a leaf for 4 rows on a balanced book but 18 on a 6 % one.
    min_child_rows: float | None = None
    booster: dict[str, float] = field(default_factory=dict)

    @property
    def maximize(self) -> bool:
        return self.eval_metric in MAXIMIZED_METRICS

    def xgb_params(self, nthread: int, scale_pos_weight: float) -> dict[str, Any]:
        return {
            **self.booster,
            "objective": self.objective,
            "eval_metric": self.eval_metric,
            "tree_method": self.tree_method,
            "seed": self.seed,
            "nthread": nthread,
            "scale_pos_weight": scale_pos_weight,
        }


def parse_hyperparameters(argv: Sequence[str], sm_hps: str | None = None) -> Hyperparameters:
    """Typed, validated hyperparameters from `--name value` arguments over SM_HPS."""
    raw = _from_sm_hps(sm_hps)
    raw.update(_from_argv(argv))
    control: dict[str, Any] = {}
    booster: dict[str, float] = {}
    for name, text in sorted(raw.items()):
        if name.startswith(RESERVED_PREFIXES):
            continue
        if name in _BOOSTER_RULES:
            booster[name] = _apply(name, _BOOSTER_RULES[name], text)
        elif name in _CONTROL_RULES:
            control[name] = _apply(name, _CONTROL_RULES[name], text)
        else:
            accepted = ", ".join(HYPERPARAMETERS)
            raise HyperparameterError(name, f"unknown hyperparameter (accepted: {accepted})")
    hps = Hyperparameters(booster=booster, **control)
    if hps.tree_method == "exact" and booster.get("max_depth") == 0:
        raise HyperparameterError("max_depth", "0 (unlimited) needs tree_method hist or approx")
    if hps.external_memory == "on" and hps.tree_method != "hist":
        raise HyperparameterError("external_memory", "'on' needs tree_method hist")
    if hps.min_child_rows is not None and "min_child_weight" in booster:
        raise HyperparameterError(
            "min_child_rows", "is min_child_weight in rows: give one of the two, not both"
        )
    return hps


def min_child_weight_of(min_child_rows: float, rows: int, positives: int) -> float:
    """XGBoost's min_child_weight for a leaf of `min_child_rows` rows at the base rate of
    `positives` in `rows`: each row's log-loss Hessian there is p * (1 - p)."""
    rate = positives / rows
    return min_child_rows * rate * (1.0 - rate)


def _apply(name: str, rule: _Rule, text: str) -> Any:
    try:
        value = rule.parse(text)
    except ValueError:
        value = None
    if value is None or not rule.valid(value):
        raise HyperparameterError(name, f"must be {rule.expected}, got {text!r}")
    return value


def _from_argv(argv: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        if not token.startswith("--") or len(token) < 3:
            raise TrainingError(f"unexpected argument {token!r}: expected --name value")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            if position + 1 >= len(argv):
                raise HyperparameterError(name, "has no value")
            position += 1
            value = argv[position]
        values[name] = value
        position += 1
    return values


def _from_sm_hps(sm_hps: str | None) -> dict[str, str]:
    if not sm_hps:
        return {}
    try:
        loaded = json.loads(sm_hps)
    except ValueError as exc:
        raise TrainingError(f"SM_HPS is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise TrainingError("SM_HPS is not a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in loaded.items()}


# -- the job's environment ---------------------------------------------------------------


@dataclass(frozen=True)
class JobEnv:
    hosts: list[str]  # sorted
    current_host: str
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    channels: dict[str, Path]
    checkpoint_dir: Path  # this job's own folder (see the module docstring)
    job_name: str | None
    num_cpus: int
    tracker_host: str
    tracker_port: int
    scratch_root: Path | None = None  # BOOSTLINE_SCRATCH_DIR (see scratch_dir)

    @property
    def distributed(self) -> bool:
        return len(self.hosts) > 1

    @property
    def is_tracker_host(self) -> bool:
        return self.current_host == self.hosts[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobEnv:
        hosts = sorted(_json_list(env, "SM_HOSTS") or [env.get("SM_CURRENT_HOST", "algo-1")])
        current = env.get("SM_CURRENT_HOST", hosts[0])
        if current not in hosts:
            raise TrainingError(f"SM_CURRENT_HOST {current!r} is not in SM_HOSTS {hosts}")
        output_dir = Path(env.get("SM_OUTPUT_DIR", DEFAULT_OUTPUT_DIR))
        job_name = env.get(JOB_NAME_ENV) or None
        if job_name is not None and not _JOB_NAME.match(job_name):
            raise TrainingError(f"{JOB_NAME_ENV} {job_name!r} cannot name a checkpoint folder")
        checkpoints = Path(env.get("BOOSTLINE_CHECKPOINT_DIR", DEFAULT_CHECKPOINT_DIR))
        prefix = "SM_CHANNEL_"
        return cls(
            hosts=hosts,
            current_host=current,
            model_dir=Path(env.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR)),
            output_dir=output_dir,
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", str(output_dir / "data"))),
            channels={
                k[len(prefix) :].lower(): Path(v) for k, v in env.items() if k.startswith(prefix)
            },
            checkpoint_dir=checkpoints / job_name if job_name else checkpoints,
            job_name=job_name,
            num_cpus=_positive_int(env, "SM_NUM_CPUS", os.cpu_count() or 1),
            tracker_host=env.get("BOOSTLINE_TRACKER_HOST") or hosts[0],
            tracker_port=_positive_int(env, "BOOSTLINE_TRACKER_PORT", DEFAULT_TRACKER_PORT),
            scratch_root=Path(env[SCRATCH_ENV]) if env.get(SCRATCH_ENV) else None,
        )


def _json_list(env: Mapping[str, str], name: str) -> list[str]:
    text = env.get(name)
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainingError(f"{name} must be a JSON list of strings, got {text!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise TrainingError(f"{name} must be a positive integer, got {text!r}")
    return value


# -- data ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """One channel's rows on this host; `columns` counts the label, None when no files."""

    features: np.ndarray  # float32, rows x features, NaN where missing
    labels: np.ndarray  # float32, 0 or 1
    columns: int | None
    files: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])

    def with_columns(self, columns: int) -> Dataset:
        """This dataset, or an empty one of the given width when this host has no files."""
        if self.columns is not None:
            return self
        empty = np.empty((0, columns - 1), dtype=np.float32)
        return Dataset(empty, self.labels, columns, self.files)


_NULLS = frozenset(pacsv.ConvertOptions().null_values)


def list_data_files(directory: Path) -> list[Path]:
    """The channel's non-hidden *.csv files (any depth), sorted."""
    if not directory.is_dir():
        raise TrainingError(f"channel directory {directory} does not exist")
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() == ".csv":
            found.append(path)
        else:
            print(f"ignoring {relative}: not a .csv file", flush=True)
    return found


def load_channel(directory: Path) -> Dataset:
    """Read every CSV file of a channel dir: label first, float32 features, NaN = missing."""
    files = [path for path in list_data_files(directory) if path.stat().st_size > 0]
    if not files:
        return Dataset(np.empty((0, 0), np.float32), np.empty(0, np.float32), None)
    columns = _count_columns(files[0])
    if columns < 2:
        raise TrainingError(f"{_name(directory, files[0])}: needs a label and features")
    tables = [_read_csv(directory, path, columns) for path in files]
    names = [_name(directory, path) for path in files]
    return Dataset(*_to_numpy(tables, columns), columns, names)


def _name(directory: Path, path: Path) -> str:
    return f"{directory.name}/{path.relative_to(directory).as_posix()}"


def _count_columns(path: Path) -> int:
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    return first.count(",") + 1


def _read_csv(directory: Path, path: Path, columns: int) -> pa.Table:
    names = [f"c{i}" for i in range(columns)]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float32())),
        )
    except pa.ArrowInvalid as exc:
        # pyarrow's message quotes the offending row or value; a reason only says where
        detail = _find_bad_cell(path, columns) or positions_only(str(exc))
        raise TrainingError(f"{_name(directory, path)}: {detail}") from None
    _check_labels(_name(directory, path), table.column(0).to_numpy())
    return table


def _find_bad_cell(path: Path, columns: int) -> str | None:
    """Line and column of the first value pyarrow refused; slow, only used on error.

    The value itself is not quoted: a failure reason reaches logs and people.
    """
    with path.open(newline="", errors="replace") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            header = " (the files must not have a header row)" if line == 1 else ""
            if not row:
                continue
            if len(row) != columns:
                return (
                    f"line {line} has {len(row)} columns, expected {columns} like the "
                    f"channel's first file{header}"
                )
            for column, cell in enumerate(row, start=1):
                if not _is_number(cell):
                    return f"line {line}, column {column} is not a number{header}"
    return None


def _is_number(cell: str) -> bool:
    if cell.strip() in _NULLS:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_labels(name: str, labels: np.ndarray, first_line: int = 1) -> None:
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        value = labels[bad[0]]
        shown = "missing" if np.isnan(value) else f"{value:g}"
        raise TrainingError(
            f"{name}: line {bad[0] + first_line}: label is {shown}; the first column must be 0 or 1"
        )


def _to_numpy(tables: list[pa.Table], columns: int) -> tuple[np.ndarray, np.ndarray]:
    rows = sum(table.num_rows for table in tables)
    features = np.empty((rows, columns - 1), dtype=np.float32)
    labels = np.empty(rows, dtype=np.float32)
    start = 0
    for table in tables:
        end = start + table.num_rows
        labels[start:end] = table.column(0).to_numpy()
        for j in range(1, columns):
            features[start:end, j - 1] = table.column(j).to_numpy()
        start = end
    return features, labels


@dataclass(frozen=True)
class ChannelScan:
    """One channel's files on this host, parsed once into a float32 spool on local disk
    (shard_iterator.Spool): external memory reads them from there in batches."""

    spool: shard_iterator.Spool
    columns: int | None
    positives: int
    files: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.spool.rows

    def batches(self, columns: int) -> Iterator[shard_iterator.Batch]:
        """Every row in file order, in batches of `columns - 1` float32 features."""
        return self.spool.batches(columns - 1)


def scan_channel(directory: Path, spool_dir: Path) -> ChannelScan:
    """A channel's files checked as load_channel checks them and spooled to `spool_dir`,
    with memory bounded by one block: column count, rows and positives."""
    paths = [path for path in list_data_files(directory) if path.stat().st_size > 0]
    spool = shard_iterator.Spool(spool_dir)
    if not paths:
        return ChannelScan(spool, None, 0)
    columns = _count_columns(paths[0])
    if columns < 2:
        raise TrainingError(f"{_name(directory, paths[0])}: needs a label and features")
    positives = 0
    with spool.writer() as write:
        for path in paths:
            for labels, features in _stream(directory, path, columns):
                positives += int(np.count_nonzero(labels))
                write(labels, features)
    names = [_name(directory, path) for path in paths]
    return ChannelScan(spool, columns, positives, names)


def _stream(directory: Path, path: Path, columns: int) -> Iterator[shard_iterator.Batch]:
    """One file's blocks, with load_channel's errors: the bad cell's place, a bad label's line."""
    line = 0
    try:
        for labels, features in shard_iterator.stream_csv(path, columns):
            _check_labels(_name(directory, path), labels, first_line=line + 1)
            line += labels.size
            yield labels, features
    except pa.ArrowInvalid as exc:
        detail = _find_bad_cell(path, columns) or positions_only(str(exc))
        raise TrainingError(f"{_name(directory, path)}: {detail}") from None


def read_feature_names(manifest_dir: Path | None) -> list[str] | None:
    """Feature names from the manifest's `columns`, or None without one."""
    if manifest_dir is None or not (manifest_dir / FEATURE_MANIFEST).is_file():
        return None
    path = manifest_dir / FEATURE_MANIFEST
    try:
        columns = json.loads(path.read_text()).get("columns")
        names = None if columns is None else [str(column["name"]) for column in columns]
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        raise TrainingError(f"{path.name}: cannot read columns[i].name: {exc!r}") from None
    if names is not None:
        _check_feature_names(path.name, names)
    return names


def _check_feature_names(source: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise TrainingError(f"{source}: feature names are not unique")
    for name in names:
        if not name or any(char in name for char in "[]<"):
            raise TrainingError(f"{source}: feature name {name!r} is empty or has [, ] or <")


def copy_manifest(manifest_dir: Path, model_dir: Path) -> None:
    target = model_dir / EXTRAS_DIR
    for path in sorted(manifest_dir.rglob("*")):
        relative = path.relative_to(manifest_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


# -- the collective --------------------------------------------------------------------------


@contextlib.contextmanager
def collective_context(job: JobEnv) -> Iterator[None]:
    """Join the other hosts (first sorted host runs the tracker); a no-op on one host."""
    if not job.distributed:
        yield
        return
    deadline = time.monotonic() + TRACKER_WAIT_SECONDS
    address = _resolve(job.tracker_host, deadline)
    tracker = None
    if job.is_tracker_host:
        tracker = RabitTracker(
            n_workers=len(job.hosts), host_ip=address, port=job.tracker_port, sortby="task"
        )
        tracker.start()
    try:
        context = _join(
            deadline,
            dmlc_communicator="rabit",
            dmlc_tracker_uri=address,
            dmlc_tracker_port=job.tracker_port,
            dmlc_task_id=job.current_host,  # with sortby="task", ranks follow host order
            dmlc_retry=1,  # _join retries an absent tracker; XGBoost's backoff is slow
        )
        try:
            yield
        finally:
            context.__exit__(None, None, None)
        if tracker is not None:
            _wait_for_shutdown(tracker)
    finally:
        if tracker is not None:
            with contextlib.suppress(xgb.core.XGBoostError):
                tracker.free()


def _join(deadline: float, **args: Any) -> collective.CommunicatorContext:
    # The tracker may start after this host (another instance, another process).
    while True:
        context = collective.CommunicatorContext(**args)
        try:
            context.__enter__()
            return context
        except xgb.core.XGBoostError as exc:
            absent = "Failed to connect to the tracker" in str(exc)
            if not absent or time.monotonic() > deadline:
                raise TrainingError(
                    f"could not join the tracker at {args['dmlc_tracker_uri']}:"
                    f"{args['dmlc_tracker_port']}: {failure_reason(exc)}"
                ) from None
            print("waiting for the tracker to start", flush=True)
            time.sleep(1.0)


def _wait_for_shutdown(tracker: RabitTracker) -> None:
    try:
        tracker.wait_for(TRACKER_SHUTDOWN_SECONDS)
    except xgb.core.XGBoostError as exc:  # training is over; only the goodbyes failed
        print(f"warning: the tracker did not shut down cleanly: {failure_reason(exc)}")


def _resolve(host: str, deadline: float) -> str:
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                raise TrainingError(f"cannot resolve the tracker host {host!r}") from None
            time.sleep(1.0)


def _allreduce(values: Sequence[float], op: collective.Op, distributed: bool) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return collective.allreduce(array, op) if distributed else array


def _rank(job: JobEnv) -> int:
    return collective.get_rank() if job.distributed else 0


# -- global facts about the data ---------------------------------------------------------------


@dataclass(frozen=True)
class DataSummary:
    """Facts about the data of all hosts together."""

    columns: int
    train_rows: int
    negatives: int
    positives: int
    validation_rows: int
    validation_positives: int


_NO_COLUMNS = 2.0**40


Channel = Dataset | ChannelScan  # rows in memory, or counted on disk (external memory)


def summarise(train: Channel, validation: Channel | None, distributed: bool) -> DataSummary:
    """Column counts and class counts summed over all hosts; every rank gets the same."""
    datasets = [train, validation if validation is not None else train]
    widths = [d.columns if d.columns is not None else -1 for d in datasets]
    narrow = [d.columns if d.columns is not None else _NO_COLUMNS for d in datasets]
    widest = _allreduce(widths, collective.Op.MAX, distributed)
    narrowest = _allreduce(narrow, collective.Op.MIN, distributed)
    counts = _allreduce(
        _class_counts(train) + _class_counts(validation), collective.Op.SUM, distributed
    )
    columns = _check_widths("train", train, widest[0], narrowest[0])
    valid_columns = columns
    if validation is not None:
        valid_columns = _check_widths("validation", validation, widest[1], narrowest[1])
    if valid_columns != columns:
        raise TrainingError(f"validation files have {valid_columns} columns, train files {columns}")
    negatives, positives, valid_negatives, valid_positives = (int(c) for c in counts)
    return DataSummary(
        columns,
        negatives + positives,
        negatives,
        positives,
        valid_negatives + valid_positives,
        valid_positives,
    )


def _class_counts(data: Channel | None) -> list[float]:
    if data is None:
        return [0.0, 0.0]
    if isinstance(data, ChannelScan):
        positives = float(data.positives)
    else:
        positives = float(np.count_nonzero(data.labels))
    return [data.rows - positives, positives]


def _check_widths(channel: str, local: Channel, widest: float, narrowest: float) -> int:
    if widest < 0:
        raise TrainingError(f"the {channel} channel has no data: no non-empty *.csv file")
    if widest != narrowest:
        here = f"{local.files[0]} has {local.columns}" if local.files else "no files here"
        raise TrainingError(
            f"{channel} files differ in column count between hosts: "
            f"{int(narrowest)} and {int(widest)} ({here})"
        )
    return int(widest)


def check_summary(summary: DataSummary, hps: Hyperparameters, validation: bool) -> None:
    if summary.positives == 0 or summary.negatives == 0:
        raise TrainingError(
            f"the training data has only one class ({summary.negatives} rows labelled 0, "
            f"{summary.positives} labelled 1)"
        )
    if not validation:
        return
    if summary.validation_rows == 0:
        raise TrainingError("the validation channel has no rows")
    one_class = summary.validation_positives in (0, summary.validation_rows)
    if one_class and hps.eval_metric in MAXIMIZED_METRICS:
        raise TrainingError(
            f"the validation data has only one class, so {hps.eval_metric} is undefined"
        )


# -- checkpoints ---------------------------------------------------------------------------------

# Hyperparameters that do not change the trees of the rounds done so far: a job restarted
# with more (or fewer) rounds, another checkpoint interval or another thread count may
# resume (train() cuts a longer booster down to num_round).
_NOT_FINGERPRINTED = ("nthread",)


@dataclass(frozen=True)
class Fingerprint:
    """What a checkpoint was trained on and with; a job resumes only an equal one."""

    data: str  # sha256 over every host's rows and the feature names, in rank order
    train_rows: int
    validation_rows: int
    features: int
    params: dict[str, Any]  # the XGBoost parameters but nthread, and early stopping

    def to_text(self) -> str:
        return json.dumps(
            {
                "data": self.data,
                "train_rows": self.train_rows,
                "validation_rows": self.validation_rows,
                "features": self.features,
                "params": self.params,
            },
            sort_keys=True,
        )

    @classmethod
    def from_text(cls, text: str | None) -> Fingerprint | None:
        try:
            value = json.loads(text) if text else None
            return cls(
                data=str(value["data"]),
                train_rows=int(value["train_rows"]),
                validation_rows=int(value["validation_rows"]),
                features=int(value["features"]),
                params=dict(value["params"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def mismatch(self, other: Fingerprint | None) -> str | None:
        """Why a checkpoint with fingerprint `other` is not this job's; None if it is."""
        if other is None:
            return "it carries no data and hyperparameter fingerprint"
        if other.data != self.data:
            counts = [
                f"{label} {theirs} -> {ours}"
                for label, theirs, ours in (
                    ("train rows", other.train_rows, self.train_rows),
                    ("validation rows", other.validation_rows, self.validation_rows),
                    ("features", other.features, self.features),
                )
                if theirs != ours
            ]
            detail = ", ".join(counts) or "same row and feature counts, other values"
            return f"it was trained on other data ({detail})"
        if other.params != self.params:
            names = sorted(set(other.params) | set(self.params))
            changes = [
                f"{name} {other.params.get(name, '(unset)')} -> {self.params.get(name, '(unset)')}"
                for name in names
                if other.params.get(name) != self.params.get(name)
            ]
            return f"it was trained with other hyperparameters ({', '.join(changes)})"
        return None


def fingerprint(
    train: Channel,
    validation: Channel | None,
    names: list[str] | None,
    summary: DataSummary,
    params: Mapping[str, Any],
    early_stopping_rounds: int | None,
    job: JobEnv,
    rank: int,
) -> Fingerprint:
    """This job's fingerprint, the same on every rank (a collective call on several hosts).

    Hashes the rows as loaded (float32 features and labels, in file order): one pass
    over memory that is already there, cheaper than reading the files again. A scanned
    channel (external memory) is read again in batches and hashes to the same digest, so
    checkpoints resume across the two.
    """
    digest = hashlib.sha256(json.dumps(names).encode())
    for data in (train, validation):
        if data is None:
            digest.update(b"no channel;")
        elif isinstance(data, ChannelScan):
            _digest_scan(digest, data)
        else:
            digest.update(f"{data.features.shape};".encode())
            digest.update(np.ascontiguousarray(data.features).data)
            digest.update(np.ascontiguousarray(data.labels).data)
    local = digest.hexdigest()
    if job.distributed:  # every host's digest, in rank order
        parts = [collective.broadcast(local if rank == r else "", r) for r in range(len(job.hosts))]
        local = hashlib.sha256(",".join(parts).encode()).hexdigest()
    kept = {k: v for k, v in params.items() if k not in _NOT_FINGERPRINTED}
    kept["early_stopping_rounds"] = early_stopping_rounds
    return Fingerprint(
        data=local,
        train_rows=summary.train_rows,
        validation_rows=summary.validation_rows,
        features=summary.columns - 1,
        params=json.loads(json.dumps(kept, sort_keys=True)),  # as it reads back from a file
    )


def _digest_scan(digest: Any, data: ChannelScan) -> None:
    # The spool holds the very bytes of load_channel's arrays: features, then labels.
    features = data.columns - 1 if data.columns is not None else 0
    digest.update(f"{(data.rows, features)};".encode())
    for path in (data.spool.features_path, data.spool.labels_path):
        if path.is_file():
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)


class Checkpoints:
    """Rank 0's checkpoints: `xgboost-checkpoint-<rounds>.ubj`, written atomically, each
    with the job's fingerprint in the booster attribute `boostline_fingerprint`."""

    PATTERN = re.compile(r"^xgboost-checkpoint-(\d+)\.ubj$")

    def __init__(
        self, directory: Path, fingerprint: Fingerprint, keep: int = CHECKPOINTS_KEPT
    ) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.keep = keep
        self.enabled = True
        self._ours: set[int] = set()  # rounds of the checkpoints that match, to prune among

    def existing(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = self.PATTERN.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> tuple[int, bytes] | None:
        """The newest checkpoint that loads and matches this job, as (rounds, UBJSON bytes).

        Any other is left where it is (never deleted) and named in the log with the reason.
        """
        best: tuple[int, bytes] | None = None
        passed_over = 0
        for rounds, path in reversed(self.existing()):
            raw = path.read_bytes()
            try:
                booster = xgb.Booster(model_file=bytearray(raw))
            except xgb.core.XGBoostError:
                print(f"skipping unreadable checkpoint {path.name}", flush=True)
                continue
            why = self.fingerprint.mismatch(Fingerprint.from_text(booster.attr(FINGERPRINT_ATTR)))
            if why is not None:
                passed_over += 1
                print(f"not resuming checkpoint {path.name}: {why}", flush=True)
                continue
            self._ours.add(rounds)
            if best is None:
                best = (rounds, raw)
        if best is None and passed_over:
            print(
                "no checkpoint matches this job's data and hyperparameters: training from scratch",
                flush=True,
            )
        return best

    def save(self, booster: xgb.Booster, rounds: int) -> None:
        if not self.enabled:
            return
        final = self.directory / f"xgboost-checkpoint-{rounds:08d}.ubj"
        temporary = self.directory / f".{final.name}.tmp"
        # On the live booster only while it is serialised: the final model must not carry it.
        booster.set_attr(**{FINGERPRINT_ATTR: self.fingerprint.to_text()})
        try:
            raw = booster.save_raw("ubj")
        finally:
            booster.set_attr(**{FINGERPRINT_ATTR: None})
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
            self._ours.add(rounds)
            for old in sorted(self._ours)[: -self.keep]:
                (self.directory / f"xgboost-checkpoint-{old:08d}.ubj").unlink(missing_ok=True)
                self._ours.discard(old)
            print(f"checkpoint saved: {final.name}", flush=True)
        except OSError as exc:
            self.enabled = False
            print(f"checkpoints disabled: cannot write to {self.directory}: {exc}", flush=True)


def initial_model(checkpoints: Checkpoints | None, distributed: bool) -> xgb.Booster | None:
    """Rank 0's latest matching checkpoint, broadcast so every rank resumes from the same
    booster (the fingerprint attribute removed)."""
    found = checkpoints.latest() if checkpoints is not None else None
    raw = found[1] if found else b""
    if distributed:
        raw = collective.broadcast(raw, 0)
    if not raw:
        return None
    booster = xgb.Booster(model_file=bytearray(raw))
    booster.set_attr(**{FINGERPRINT_ATTR: None})
    return booster


# -- training ----------------------------------------------------------------------------------


@dataclass
class TrainResult:
    booster: xgb.Booster
    resumed_from: int  # rounds in the checkpoint training resumed from, 0 for a fresh start
    best_iteration: int | None  # 0-based round of the best validation score
    best_score: float | None
    stopped_early: bool


class _Monitor(xgb.callback.TrainingCallback):
    """Prints metrics (rank 0), tracks the best validation score, stops early, checkpoints.

    The best round and score live in the booster's attributes, so a checkpoint carries
    the early-stopping state and every rank decides alike from the same global metrics.
    """

    def __init__(
        self,
        *,
        metric: str,
        maximize: bool,
        patience: int | None,
        dtrain: xgb.DMatrix,
        last_round: int,
        checkpoints: Checkpoints | None,
        checkpoint_interval: int,
        verbose: bool,
    ) -> None:
        super().__init__()
        self.metric, self.maximize, self.patience = metric, maximize, patience
        self.dtrain, self.last_round = dtrain, last_round
        self.checkpoints, self.interval = checkpoints, checkpoint_interval
        self.verbose = verbose
        self.start = 0
        self.best: tuple[int, float] | None = None
        self.stopped_early = False

    def before_training(self, model: xgb.Booster) -> xgb.Booster:
        self.start = model.num_boosted_rounds()
        iteration, score = model.attr("best_iteration"), model.attr("best_score")
        if iteration is not None and score is not None:
            self.best = (int(iteration), float(score))
        return model

    def before_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        return self._exhausted(self.start + epoch - 1)

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        iteration = self.start + epoch
        scores: dict[str, float] = {}
        if iteration % TRAIN_METRIC_EVERY == 0 or iteration == self.last_round:
            scores["train"] = self._train_score(model, iteration)
        if "validation" in evals_log:
            scores["validation"] = float(evals_log["validation"][self.metric][-1])
            self._track(model, iteration, scores["validation"])
        if self.verbose and scores:
            shown = " ".join(f"{name}-{self.metric}: {v:.6f}" for name, v in scores.items())
            print(f"round {iteration} {shown}", flush=True)
        if self.checkpoints is not None and (iteration + 1) % self.interval == 0:
            self.checkpoints.save(model, iteration + 1)
        return self._exhausted(iteration)

    def _train_score(self, model: xgb.Booster, iteration: int) -> float:
        text = model.eval_set([(self.dtrain, "train")], iteration)
        match = re.search(rf"train-{re.escape(self.metric)}:(\S+)", text)
        return float(match.group(1)) if match else math.nan

    def _track(self, model: xgb.Booster, iteration: int, score: float) -> None:
        if math.isnan(score):
            return
        if self.best is not None:
            best = self.best[1]
            if not (score > best if self.maximize else score < best):
                return
        self.best = (iteration, score)
        model.set_attr(best_iteration=str(iteration), best_score=repr(score))

    def _exhausted(self, iteration: int) -> bool:
        if self.patience is None or self.best is None or iteration < 0:
            return False
        if iteration - self.best[0] >= self.patience:
            self.stopped_early = True
        return self.stopped_early


def train(
    params: Mapping[str, Any],
    dtrain: xgb.DMatrix,
    num_round: int,
    *,
    dvalid: xgb.DMatrix | None = None,
    early_stopping_rounds: int | None = None,
    maximize: bool = True,
    start: xgb.Booster | None = None,
    checkpoints: Checkpoints | None = None,
    checkpoint_interval: int = 10,
    verbose: bool = True,
) -> TrainResult:
    """Boost up to `num_round` rounds in all (resuming `start`); with early stopping on, the
    returned booster ends at the best validation round."""
    metric = str(params["eval_metric"])
    done = start.num_boosted_rounds() if start is not None else 0
    patience = early_stopping_rounds if dvalid is not None else None
    monitor = _Monitor(
        metric=metric,
        maximize=maximize,
        patience=patience,
        dtrain=dtrain,
        last_round=num_round - 1,
        checkpoints=checkpoints,
        checkpoint_interval=checkpoint_interval,
        verbose=verbose,
    )
    booster = xgb.train(
        dict(params),
        dtrain,
        num_boost_round=max(0, num_round - done),
        evals=[(dvalid, "validation")] if dvalid is not None else [],
        verbose_eval=False,
        xgb_model=start,
        callbacks=[monitor],
    )
    keep = booster.num_boosted_rounds()
    if patience is not None and monitor.best is not None:
        keep = monitor.best[0] + 1
    if keep < booster.num_boosted_rounds() or booster.num_boosted_rounds() > num_round:
        booster = booster[: min(keep, num_round)]
    if monitor.best is not None:
        booster.set_attr(best_iteration=str(monitor.best[0]), best_score=repr(monitor.best[1]))
        if verbose:
            best_round, best_score = monitor.best
            print(f"best validation-{metric}: {best_score:.6f} at round {best_round}", flush=True)
    best = monitor.best
    return TrainResult(
        booster=booster,
        resumed_from=done,
        best_iteration=best[0] if best else None,
        best_score=best[1] if best else None,
        stopped_early=monitor.stopped_early,
    )


# -- the job -----------------------------------------------------------------------------------


def run_job(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """Parse, join the other hosts, load, train, save; returns this rank's metrics."""
    hps = parse_hyperparameters(argv, env.get("SM_HPS"))
    job = JobEnv.from_env(env)
    if "train" not in job.channels:
        raise TrainingError("no train channel: SM_CHANNEL_TRAIN is not set")
    if job.distributed and hps.tree_method == "exact":
        raise HyperparameterError("tree_method", "'exact' cannot train on several hosts")
    with collective_context(job):
        return _train_on_this_host(hps, job, _rank(job))


def _train_on_this_host(hps: Hyperparameters, job: JobEnv, rank: int) -> dict[str, Any]:
    scratch = scratch_dir(job)
    try:
        return _train_with_scratch(hps, job, rank, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            scratch.parent.rmdir()  # when no other host of a local run still uses it


def _train_with_scratch(
    hps: Hyperparameters, job: JobEnv, rank: int, scratch: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    nthread = hps.nthread or job.num_cpus
    external = uses_external_memory(hps, job, rank)

    def read(name: str) -> Channel:
        directory = job.channels[name]
        return scan_channel(directory, scratch / name) if external else load_channel(directory)

    train_data = read("train")
    valid_dir = job.channels.get("validation")
    valid_data = read("validation") if valid_dir is not None else None
    summary = summarise(train_data, valid_data, job.distributed)
    check_summary(summary, hps, valid_data is not None)
    names = _shared_feature_names(job, summary.columns - 1)
    types = _shared_feature_types(job, hps, summary.columns - 1)
    use_cv = uses_cross_validation(hps, summary, rank, len(job.hosts))
    if use_cv and external:
        if rank == 0:
            print("external memory: off, cross-validation trains in memory", flush=True)
        external = False
        train_data = load_channel(job.channels["train"])
        valid_data = load_channel(valid_dir) if valid_dir is not None else None
    dvalid, fold = None, None
    linear, linear_seconds = None, 0.0
    if use_cv:
        assert isinstance(train_data, Dataset) and not isinstance(valid_data, ChannelScan)
        pool = pooled(train_data, valid_data, summary.columns, rank, len(job.hosts))
        dtrain = _dmatrix(pool, names, nthread, types)
        fold = stratified_folds(pool.labels, hps.cv_folds, hps.seed, offset=rank)
        if hps.linear_margin != "off":
            began = time.perf_counter()
            kinds = read_feature_types(job.channels.get("manifest"))
            linear, start_margin = fit_linear_margin(pool, fold, kinds, hps, job, rank)
            linear_seconds = time.perf_counter() - began
    elif isinstance(train_data, ChannelScan):
        max_bin = int(hps.booster.get("max_bin", DEFAULT_MAX_BIN))
        build = (summary.columns, names, types, nthread, max_bin)
        dtrain = external_dmatrix(train_data, scratch / "train-pages", *build)
        if isinstance(valid_data, ChannelScan):
            dvalid = external_dmatrix(valid_data, scratch / "validation-pages", *build, ref=dtrain)
    else:
        dtrain = _dmatrix(train_data.with_columns(summary.columns), names, nthread, types)
        if isinstance(valid_data, Dataset):
            dvalid = _dmatrix(valid_data.with_columns(summary.columns), names, nthread, types)
    load_seconds = time.perf_counter() - started

    spw = hps.scale_pos_weight
    params = hps.xgb_params(nthread, spw)
    if use_cv:
        params.setdefault("num_parallel_tree", hps.cv_parallel_trees)
    if hps.min_child_rows is not None:
        rows, positives = (
            pooled_counts(summary, len(job.hosts))
            if use_cv
            else (summary.train_rows, summary.positives)
        )
        params["min_child_weight"] = min_child_weight_of(hps.min_child_rows, rows, positives)
    stopping = hps.early_stopping_rounds if dvalid is not None else None
    cv_settings = {
        "cv_folds": hps.cv_folds,
        "cv_num_round": hps.cv_num_round,
        "cv_early_stopping_rounds": hps.cv_early_stopping_rounds,
        "cv_stopping_metric": hps.cv_stopping_metric,
        "cv_parallel_trees": hps.cv_parallel_trees,
    }
    if use_cv:
        cv_settings["linear_margin"] = hps.linear_margin
    marked = {**params, **cv_settings} if use_cv else params
    if types is not None:
        marked = {**marked, "categorical": hps.categorical}
    mark = fingerprint(train_data, valid_data, names, summary, marked, stopping, job, rank)
    checkpoints = None
    if rank == 0:
        _announce(job, hps, summary, spw, nthread, dvalid is not None or use_cv)
        if hps.min_child_rows is not None:
            print(
                f"min_child_rows {hps.min_child_rows:.6g}: "
                f"min_child_weight {params['min_child_weight']:.6g}",
                flush=True,
            )
        if job.job_name is None:
            print(
                f"{JOB_NAME_ENV} is not set: checkpoints are kept in {job.checkpoint_dir}",
                flush=True,
            )
        checkpoints = Checkpoints(job.checkpoint_dir, mark)
    start = initial_model(checkpoints, job.distributed)
    if start is not None:
        print(f"resuming from checkpoint at round {start.num_boosted_rounds()}", flush=True)

    began = time.perf_counter()
    num_round, cv, linear_choice = hps.num_round, None, None
    if use_cv:
        stopping_maximize = hps.cv_stopping_metric in MAXIMIZED_METRICS

        def folds_of(data: xgb.DMatrix) -> CvResult:
            return cross_validate(
                params,
                data,
                fold,
                hps.cv_folds,
                hps.cv_num_round,
                early_stopping_rounds=hps.cv_early_stopping_rounds,
                maximize=hps.maximize,
                stopping_metric=hps.cv_stopping_metric,
                stopping_maximize=stopping_maximize,
            )

        if linear is None or hps.linear_margin == "auto":
            cv = folds_of(dtrain)
        if linear is not None:
            dlinear = _dmatrix(pool, names, nthread, types)
            dlinear.set_base_margin(start_margin)
            cv_linear = folds_of(dlinear)
            linear_choice = choose_linear_margin(hps, cv_linear, cv, stopping_maximize, rank)
            if linear_choice["used"]:
                cv, dtrain = cv_linear, dlinear
            else:
                linear = None
        assert cv is not None
        num_round = cv.rounds
        if rank == 0:
            _announce_cv(cv, hps.eval_metric, pooled_counts(summary, len(job.hosts))[0])
    result = train(
        params,
        dtrain,
        num_round,
        dvalid=dvalid,
        early_stopping_rounds=hps.early_stopping_rounds,
        maximize=hps.maximize,
        start=start,
        checkpoints=checkpoints,
        checkpoint_interval=hps.checkpoint_interval,
        verbose=rank == 0,
    )
    train_seconds = time.perf_counter() - began
    began = time.perf_counter()
    labels = pool.labels if use_cv else None
    held_out = held_out_predictions(hps, cv, labels, fold, result.booster, dvalid, job, rank)
    calibrator = holdout = None
    if rank == 0:
        calibrator, holdout = fit_calibration(hps, held_out)
    calibration_seconds = time.perf_counter() - began
    if names is not None:
        # A host without rows would otherwise end with an unnamed (so different) booster.
        result.booster.feature_names = names
    metrics = {
        "host": job.current_host,
        "rank": rank,
        "world_size": len(job.hosts),
        "rows": train_data.rows,
        "rows_all_hosts": summary.train_rows,
        "validation_rows_all_hosts": summary.validation_rows,
        "features": summary.columns - 1,
        "num_round": hps.num_round,
        "rounds": result.booster.num_boosted_rounds(),
        "resumed_from_round": result.resumed_from,
        "best_iteration": cv.rounds - 1 if cv else result.best_iteration,
        "best_validation_score": cv.score if cv else result.best_score,
        "cross_validation": None
        if cv is None
        else {
            "folds": cv.folds,
            "rounds": cv.rounds,
            "score": cv.score,
            "std": cv.std,
            "rows_all_hosts": pooled_counts(summary, len(job.hosts))[0],
        },
        "eval_metric": hps.eval_metric,
        "stopped_early": result.stopped_early,
        "scale_pos_weight": spw,
        "min_child_weight": params.get("min_child_weight"),
        "nthread": nthread,
        "data_fingerprint": mark.data,
        "calibration": None if calibrator is None else calibration_summary(calibrator),
        "linear_margin": None
        if linear_choice is None
        else {**linear_choice, "fit_seconds": round(linear_seconds, 3)},
        "external_memory": external,
        "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
        "load_seconds": round(load_seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "calibration_seconds": round(calibration_seconds, 3),
    }
    save_outputs(job, rank, result.booster, metrics, calibrator, holdout, linear)
    return metrics


# -- external memory -----------------------------------------------------------------------

DEFAULT_MAX_BIN = 256  # XGBoost's; the matrix's max_bin must be the booster's
SCRATCH_ENV = "BOOSTLINE_SCRATCH_DIR"
SCRATCH_NAME = ".boostline-scratch"


def scratch_dir(job: JobEnv) -> Path:
    """Where external memory pages its cache: BOOSTLINE_SCRATCH_DIR, else a hidden folder
    beside the train channel (/opt/ml/input/data/ on SageMaker: the ML storage volume
    that File mode downloads the data to, sized with it; /tmp is the container's own disk)."""
    base = job.scratch_root or job.channels["train"].parent / SCRATCH_NAME
    return base / job.current_host


def total_memory_bytes() -> int:
    """This host's RAM, or the container's memory limit (cgroup v2 or v1) when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            total = min(total, int(Path(limit).read_text().strip()))
    return total


def peak_rss_bytes() -> int:
    """This process's peak resident memory: VmHWM. Not ru_maxrss, which execve keeps, so a
    process started by a large one reports its parent's size."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def channel_bytes(directory: Path | None) -> int:
    if directory is None or not directory.is_dir():
        return 0
    return sum(path.stat().st_size for path in list_data_files(directory))


def uses_external_memory(hps: Hyperparameters, job: JobEnv, rank: int) -> bool:
    """Whether every host trains through external memory (the same answer on every rank):
    `on`, or `auto` when any host's train files exceed its share of that host's RAM."""
    if hps.external_memory != "auto":
        return hps.external_memory == "on"
    size = channel_bytes(job.channels["train"])
    limit = hps.external_memory_share * total_memory_bytes()
    over = _allreduce([size / limit], collective.Op.MAX, job.distributed)[0]
    if over <= 1:
        return False
    if hps.tree_method != "hist":
        if rank == 0:
            print(
                f"external memory: off, tree_method {hps.tree_method} trains in memory only "
                f"(train files at {over:.2f} x external_memory_share of RAM)",
                flush=True,
            )
        return False
    if rank == 0:
        print(
            f"external memory: on, a host's train files are {over:.2f} x "
            f"external_memory_share {hps.external_memory_share:g} of its RAM",
            flush=True,
        )
    return True


def external_dmatrix(
    data: ChannelScan,
    cache: Path,
    columns: int,
    names: list[str] | None,
    types: list[str] | None,
    nthread: int,
    max_bin: int,
    ref: xgb.DMatrix | None = None,
) -> xgb.ExtMemQuantileDMatrix:
    """The channel's rows as an external-memory quantile matrix, paged under `cache`.

    On several hosts each builds its own from its files; the quantile sketches are merged
    through the collective, so every host's histogram bins are the same.
    """
    cache.mkdir(parents=True, exist_ok=True)
    categorical = types is not None and "c" in types
    iterator = shard_iterator.ShardIterator(
        lambda: data.batches(columns),
        cache_prefix=str(cache / "cache"),
        feature_names=names,
        feature_types=types if categorical else None,
    )
    return xgb.ExtMemQuantileDMatrix(
        iterator,
        missing=np.nan,
        nthread=nthread,
        max_bin=max_bin,
        ref=ref,
        enable_categorical=categorical,
    )


@dataclass(frozen=True)
class HeldOut:
    """Raw P(default) of rows the final model did not train on, their labels and folds."""

    source: str  # "out_of_fold" or "validation"
    probabilities: np.ndarray
    labels: np.ndarray
    fold: np.ndarray


def held_out_predictions(
    hps: Hyperparameters,
    cv: CvResult | None,
    labels: np.ndarray | None,
    fold: np.ndarray | None,
    booster: xgb.Booster,
    dvalid: xgb.DMatrix | None,
    job: JobEnv,
    rank: int,
) -> HeldOut | None:
    """What the calibration is fitted on, on rank 0 (None elsewhere, or with no held-out rows).

    With cross-validation each host holds the out-of-fold margins of its own rows: every
    host sends them to all (a collective call, in rank order). Otherwise the validation
    channel, which every host holds whole, is scored by the final model on rank 0.
    """
    if cv is not None and labels is not None and fold is not None:
        parts = [(cv.out_of_fold, labels, fold)]
        if job.distributed:
            mine = (cv.out_of_fold, labels, fold)
            parts = [
                collective.broadcast(mine if r == rank else None, r) for r in range(len(job.hosts))
            ]
        if rank != 0:
            return None
        margins, ys, folds = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return HeldOut("out_of_fold", calibration.sigmoid(margins), ys.astype(np.float64), folds)
    if rank != 0 or dvalid is None or dvalid.num_row() == 0:
        return None
    margins = booster.predict(dvalid, output_margin=True).astype(np.float64)
    ys = dvalid.get_label().astype(np.float64)
    folds = stratified_folds(ys, hps.cv_folds, hps.seed)
    return HeldOut("validation", calibration.sigmoid(margins), ys, folds)


def fit_calibration(
    hps: Hyperparameters, held_out: HeldOut | None
) -> tuple[calibration.Calibrator, np.ndarray | None]:
    """The calibrator (identity without held-out rows) and, after cross-validation, the
    held-out rows as `label, calibrated probability, booster probability` columns."""
    if held_out is None or min(held_out.labels.sum(), (1 - held_out.labels).sum()) < 2:
        print("calibration: identity (no held-out rows with both classes)", flush=True)
        return calibration.Calibrator("identity", fitted_on={"source": "none", "rows": 0}), None
    if hps.calibration == "auto":
        methods: tuple[str, ...] = calibration.METHODS
    elif hps.calibration == "identity":
        methods = ("identity",)
    else:  # the map is kept only where it beats no map on the held-out rows
        methods = ("identity", hps.calibration)
    chosen = calibration.choose(
        held_out.probabilities, held_out.labels, held_out.fold, methods, source=held_out.source
    )
    scores = chosen.selection["scores"]
    shown = ", ".join(f"{m} {s['log_loss']:.5f}" for m, s in scores.items())
    print(
        f"calibration: {chosen.method}, fitted on {len(held_out.labels)} {held_out.source} "
        f"rows (cross-fitted log-loss: {shown})",
        flush=True,
    )
    holdout = None
    if held_out.source == "out_of_fold":
        calibrated = chosen.apply(held_out.probabilities)
        holdout = np.column_stack([held_out.labels, calibrated, held_out.probabilities])
    return chosen, holdout


def calibration_summary(calibrator: calibration.Calibrator) -> dict[str, Any]:
    return {
        "method": calibrator.method,
        "fitted_on": calibrator.fitted_on,
        "selection": calibrator.selection,
    }


def pooled_counts(summary: DataSummary, hosts: int) -> tuple[int, int]:
    """(rows, positives) of train + validation, each row once: the summary counts the
    FullyReplicated validation channel on every host."""
    return (
        summary.train_rows + summary.validation_rows // hosts,
        summary.positives + summary.validation_positives // hosts,
    )


def uses_cross_validation(
    hps: Hyperparameters, summary: DataSummary, rank: int, hosts: int
) -> bool:
    """Whether this job scores itself by k-fold cross-validation (same answer on every rank)."""
    if not hps.cv_max_rows or summary.train_rows >= hps.cv_max_rows:
        return False
    rows, positives = pooled_counts(summary, hosts)
    fewest = min(positives, rows - positives)
    if fewest < hps.cv_folds:
        if rank == 0:
            print(
                f"{fewest} rows of the rarer class are too few for {hps.cv_folds}-fold "
                "cross-validation: scoring on the validation set instead",
                flush=True,
            )
        return False
    return True


def pooled(
    train: Dataset, validation: Dataset | None, columns: int, rank: int, hosts: int
) -> Dataset:
    """This host's train rows plus its share of the validation rows.

    The validation channel is FullyReplicated (every host holds all of it): host r takes
    rows r, r + hosts, ... so that together the hosts hold each row once.
    """
    parts = [train.with_columns(columns)]
    if validation is not None:
        valid = validation.with_columns(columns)
        mine = np.arange(valid.rows) % hosts == rank
        parts.append(Dataset(valid.features[mine], valid.labels[mine], columns))
    return Dataset(
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.labels for p in parts]),
        columns,
        [f for p in parts for f in p.files],
    )


def fit_linear_margin(
    pool: Dataset,
    fold: np.ndarray,
    kinds: list[str] | None,
    hps: Hyperparameters,
    job: JobEnv,
    rank: int,
) -> tuple[linear_margin.LinearMargin, np.ndarray]:
    """The regression fitted on every host's pooled rows, and this host's rows' starting
    margins, each from the regression fitted without the row's own fold.

    On several hosts every host sends its rows to all (collective broadcasts in rank
    order), rank 0 fits, and its answer goes back to all: one regression, every host.

    Every tuning trial fits the same regression: on Caravan (about 4,000 rows, 85
    features) 0.67 s of a trial's 14 s of training, measured. Fitting it once would take
    a job of its own before the tuner, whose start on SageMaker costs minutes, so each
    trial fits its own.
    """
    parts = [(pool.features, pool.labels, fold)]
    if job.distributed:
        mine = parts[0]
        hosts = range(len(job.hosts))
        parts = [collective.broadcast(mine if r == rank else None, r) for r in hosts]
    answer = None
    if rank == 0:
        features, labels, folds = (np.concatenate([p[i] for p in parts]) for i in range(3))
        categorical = [k == "c" for k in kinds] if kinds else [False] * features.shape[1]
        if len(categorical) != features.shape[1]:
            raise TrainingError(
                f"{FEATURE_MANIFEST} lists {len(categorical)} feature columns, "
                f"the data has {features.shape[1]}"
            )
        fitted = baseline.fit(labels, features, categorical, seed=hps.seed)
        linear = linear_margin.from_baseline(fitted, features, categorical)
        start = np.empty(len(labels), dtype=np.float64)
        for f in range(hps.cv_folds):
            out = folds == f
            # the full fit's C: a fold's regression differs by its rows only
            part = baseline.fit(
                labels[~out], features[~out], categorical, seed=hps.seed, cs=(fitted.C,)
            )
            start[out] = part.model.decision_function(features[out])
        answer = (linear.to_json(), start)
        print(
            f"linear margin: logistic regression (C {fitted.C:g}) on {len(labels)} rows; "
            "the booster starts from its out-of-fold log-odds",
            flush=True,
        )
    if job.distributed:
        answer = collective.broadcast(answer, 0)
    assert answer is not None
    document, start = answer
    offset = sum(len(p[1]) for p in parts[:rank])
    mine_start = start[offset : offset + len(pool.labels)]
    return linear_margin.LinearMargin.from_json(document), mine_start


def choose_linear_margin(
    hps: Hyperparameters,
    with_margin: CvResult,
    without: CvResult | None,
    maximize: bool,
    rank: int,
) -> dict[str, Any]:
    """Whether the model starts from the linear margin: with `auto`, when the folds' mean
    stopping metric (log loss by default) is better with it than without; with `on`,
    always. The same scores on every host, so the same answer."""
    metric = hps.cv_stopping_metric
    if without is None:
        used, reason = True, "linear_margin on"
    else:
        a, b = with_margin.stopping_score, without.stopping_score
        used = a > b if maximize else a < b
        reason = f"folds' {metric} {a:.6f} with it, {b:.6f} without"
    if rank == 0:
        print(f"linear margin: {'used' if used else 'not used'} ({reason})", flush=True)
    return {
        "used": used,
        "setting": hps.linear_margin,
        "metric": metric,
        "score_with": with_margin.stopping_score,
        "score_without": None if without is None else without.stopping_score,
        "rounds_with": with_margin.rounds,
        "rounds_without": None if without is None else without.rounds,
    }


def _announce_cv(cv: CvResult, metric: str, rows: int) -> None:
    # The line carries the metric the tuner reads (validation-<metric>: the CV mean), once.
    print(
        f"{cv.folds}-fold cross-validation on {rows} rows (train + validation): "
        f"best round {cv.rounds - 1}, validation-{metric}: {cv.score:.6f} "
        f"(mean of the folds, std {cv.std:.6f}); the final model trains on all "
        f"{rows} rows for {cv.rounds} rounds",
        flush=True,
    )


def _shared_feature_names(job: JobEnv, features: int) -> list[str] | None:
    names = read_feature_names(job.channels.get("manifest"))
    if job.distributed:
        names = collective.broadcast(names or [], 0) or None  # rank 0's manifest rules
    if names is not None and len(names) != features:
        raise TrainingError(
            f"{FEATURE_MANIFEST} names {len(names)} feature columns, the data has {features}"
        )
    return names


def _shared_feature_types(job: JobEnv, hps: Hyperparameters, features: int) -> list[str] | None:
    """'c' (categorical) or 'q' per feature from the manifest's kinds with
    `categorical native`; None (every feature a number) otherwise."""
    if hps.categorical != "native":
        return None
    types = read_feature_types(job.channels.get("manifest"))
    if job.distributed:
        types = collective.broadcast(types or [], 0) or None
    if types is None:
        raise HyperparameterError(
            "categorical", "'native' needs the manifest channel (feature_manifest.json kinds)"
        )
    if len(types) != features:
        raise TrainingError(
            f"{FEATURE_MANIFEST} lists {len(types)} feature columns, the data has {features}"
        )
    return types


def read_feature_types(manifest_dir: Path | None) -> list[str] | None:
    if manifest_dir is None or not (manifest_dir / FEATURE_MANIFEST).is_file():
        return None
    path = manifest_dir / FEATURE_MANIFEST
    try:
        columns = json.loads(path.read_text())["columns"]
        return ["c" if column["kind"] == "categorical" else "q" for column in columns]
    except (ValueError, TypeError, KeyError) as exc:
        raise TrainingError(f"{path.name}: cannot read columns[i].kind: {exc!r}") from None


def _dmatrix(
    data: Dataset, names: list[str] | None, nthread: int, types: list[str] | None = None
) -> xgb.DMatrix:
    categorical = types is not None and "c" in types
    return xgb.DMatrix(
        data.features,
        label=data.labels,
        missing=np.nan,
        feature_names=names,
        feature_types=types if categorical else None,
        enable_categorical=categorical,
        nthread=nthread,
    )


def _announce(
    job: JobEnv,
    hps: Hyperparameters,
    summary: DataSummary,
    spw: float,
    nthread: int,
    validation: bool,
) -> None:
    stopping = hps.early_stopping_rounds if validation else None
    print(
        f"training on {summary.train_rows} rows x {summary.columns - 1} features "
        f"({len(job.hosts)} host(s)), validation rows {summary.validation_rows}, "
        f"scale_pos_weight {spw:.6g}, nthread {nthread}, num_round {hps.num_round}, "
        f"early_stopping_rounds {stopping}",
        flush=True,
    )


def save_outputs(
    job: JobEnv,
    rank: int,
    booster: xgb.Booster,
    metrics: dict[str, Any],
    calibrator: calibration.Calibrator | None = None,
    holdout: np.ndarray | None = None,
    linear: linear_margin.LinearMargin | None = None,
) -> None:
    raw = bytes(booster.save_raw("ubj"))
    digest = hashlib.sha256(raw).hexdigest()
    metrics["model_sha256"] = digest
    if rank == 0:
        job.model_dir.mkdir(parents=True, exist_ok=True)
        temporary = job.model_dir / f".{MODEL_FILE}.tmp"
        temporary.write_bytes(raw)
        os.replace(temporary, job.model_dir / MODEL_FILE)
        if "manifest" in job.channels:
            copy_manifest(job.channels["manifest"], job.model_dir)
        if calibrator is not None:
            calibration.save(calibrator, job.model_dir)
        if linear is not None:
            linear_margin.save(linear, job.model_dir)
        if holdout is not None:
            path = job.model_dir / calibration.HOLDOUT_FILE
            calibration.write_holdout(path, holdout[:, 0], holdout[:, 1], holdout[:, 2])
    job.output_data_dir.mkdir(parents=True, exist_ok=True)
    (job.output_data_dir / DIGEST_FILE).write_text(digest + "\n")
    text = json.dumps(metrics, indent=2, sort_keys=True)
    (job.output_data_dir / METRICS_FILE).write_text(text + "\n")


# -- failures -----------------------------------------------------------------------------------


def failure_reason(exc: BaseException) -> str:
    """One paragraph saying why the job failed."""
    if isinstance(exc, TrainingError):
        reason = str(exc)
    elif isinstance(exc, xgb.core.XGBoostError):
        text = " ".join(line.strip() for line in str(exc).split("Stack trace:")[0].splitlines())
        peer = any(word in text for word in ("allreduce", "allgather", "Socket", "broadcast"))
        hint = "lost contact with another host (see its failure reason): " if peer else ""
        reason = f"XGBoost error: {hint}{text.strip()}"
    else:
        reason = f"unexpected error: {type(exc).__name__}: {exc}"
    return " ".join(reason.split())[:FAILURE_LINE_LIMIT]


def write_failure(output_dir: Path, reason: str) -> None:
    with contextlib.suppress(OSError):
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / FAILURE_FILE).write_text(reason + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        run_job(arguments, os.environ)
    except Exception as exc:
        if not isinstance(exc, TrainingError):
            traceback.print_exc()
        reason = failure_reason(exc)
        print_failure(reason)
        write_failure(Path(os.environ.get("SM_OUTPUT_DIR", DEFAULT_OUTPUT_DIR)), reason)
        sys.exit(1)


if __name__ == "__main__":
    main()
