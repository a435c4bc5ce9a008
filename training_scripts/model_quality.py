"""Model-quality baseline and check for the binary classifier, in Model Monitor's format.

The other half of monitoring (data_quality.py watches the inputs): this one
joins what the endpoint predicted (its data capture) with the outcomes that
arrive later (ground truth), computes the model's quality on that traffic and
compares it with constraints derived from the evaluation. It runs as a
SageMaker Processing job when the managed analyzer is not used, and locally.

Inputs

* Data capture (``--capture-dir``; ``.jsonl`` or ``.jsonl.gz`` files searched
  recursively, e.g. ``<capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/``), one record
  per request as the endpoint writes it. The predictions are read from the
  captured *output*: our JSON ``{"predictions": [{"probability": p, "default":
  bool, "decision": ...}, ...]}`` (the built-in algorithm's ``{"score": p}`` too),
  JSON Lines, or CSV lines ``probability[,decision[,...]]``. A request may hold
  several rows.
* Ground truth (``--ground-truth-dir``; ``<dir>/yyyy/mm/dd/hh/*.jsonl``, searched
  recursively), SageMaker's format, one line per captured request::

      {"groundTruthData": {"data": "1", "encoding": "CSV"},
       "eventMetadata": {"eventId": "<inference id or event id>"}, "eventVersion": "0"}

  As in Model Monitor, a capture is matched by its ``eventMetadata.inferenceId``
  when the caller sent one (``X-Amzn-SageMaker-Inference-Id``), else by its
  ``eventId``; the ground truth always names it in ``eventMetadata.eventId``.
  Labels are 1 (default) or 0 (``true``/``false`` are accepted too).

Joining rules (beyond Model Monitor, which expects one row per record)

* A request of n rows needs n labels, in row order: CSV ``"1,0,1"`` (or one per
  line), or JSON ``[1, 0, 1]`` with encoding "JSON". A label count that differs
  from the row count joins nothing and is counted (``label_count_mismatch``).
* Captures without ground truth and ground truth without a capture are ignored
  and counted; so are unreadable lines. When two ground-truth records name the
  same id the later file wins (``duplicate_ground_truth_ids``). Two captures
  sharing one inference id (a client reusing ids) both join its label.
* Health-check invocations of boostline.serving.endpoints (inference id
  ``boostline-health-check-...``) are skipped.
* The predicted class is ``probability >= threshold``, where the threshold is
  ``--threshold`` if given, else the decision threshold recorded in the
  constraints (the evaluation's, so the check compares like with like), else the
  endpoint's own decision in the capture, else 0.5. statistics.json records
  which one was used.

Outputs (``--output-dir``)

* ``statistics.json``: ``{"version": 0.0, "dataset": {"item_count": n,
  "evaluation_time": ...}, "binary_classification_metrics": {...}}`` with
  Model Monitor's binary-classification metrics (confusion_matrix, recall,
  precision, accuracy, *_best_constant_classifier, true/false positive/negative
  rates, receiver_operating_characteristic_curve, precision_recall_curve, auc,
  f0_5, f1, f2) plus our evaluation's pr_auc, ks and brier, each
  ``{"value", "standard_deviation"}``. As in Model Monitor, the standard
  deviation comes from five random 80 % subsamples and only with at least 200
  rows; otherwise it is "NaN". The best constant classifier predicts the
  positive class for every row (recall 1, precision = accuracy = prevalence), as
  Model Monitor's documented example shows. The confusion matrix is keyed
  actual label -> predicted label. A ``"boostline"`` block holds the join counts,
  the threshold used and the outcome.
* ``constraint_violations.json``: ``{"violations": [{"metric_name",
  "constraint_check_type", "description"}]}``, where the check type is the
  constraint's comparison operator (LessThanThreshold, ...).

The baseline (``baseline``) writes ``constraints.json``::

    {"version": 0.0,
     "binary_classification_constraints": {
         "auc": {"threshold": 0.81, "comparison_operator": "LessThanThreshold"}, ...},
     "boostline": {"decision_threshold": t, "tolerance": {...}, "baseline": {...}}}

Each threshold is the baseline metric minus a tolerance (default 0.05, or per
metric), for auc, f1, precision and recall unless ``--metrics`` says otherwise;
a check value strictly below it is a violation. Also a ``statistics.json`` with
the baseline metrics. The baseline comes from the evaluation job's
evaluation.json (its binary_classification_metrics and decision_threshold) or
from labelled predictions (a header-less CSV of ``label,probability``).

Outcome, printed and, on SageMaker, left in /opt/ml/output/message (the job's
ExitMessage): ``Completed: Job completed successfully with no violations.``,
``CompletedWithViolations: Job completed successfully with N violations.``, or,
when fewer than ``--min-rows`` labelled rows joined (or only one class did),
``Completed: Job completed successfully; insufficient data: ...`` with an empty
violation list: too little evidence is neither a crash nor an alarm.

CLI::

    python model_quality.py baseline --evaluation evaluation.json --output-dir OUT \
        [--tolerance 0.05 | --tolerance auc=0.03,f1=0.08] [--metrics auc,f1,precision,recall]
    python model_quality.py baseline --predictions preds.csv --threshold 0.3 --output-dir OUT
    python model_quality.py check --capture-dir D --ground-truth-dir D --constraints F \
        --output-dir OUT [--threshold 0.5] [--min-rows 50] [--start-time ISO] [--end-time ISO]
        [--fail-on-violations]

Errors go to stderr and to $BOOSTLINE_OUTPUT_DIR/message (default
/opt/ml/output/message, the processing job's failure reason); exit status 1.
Runs in the SageMaker XGBoost image: stdlib and numpy (plus the sibling modules).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import data_quality as dq
    import evaluate as ev
    from job_message import report_failure, write_message
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import data_quality as dq
    from training_scripts import evaluate as ev
    from training_scripts.job_message import report_failure, write_message

PROBLEM_TYPE = "BinaryClassification"
CONSTRAINED_METRICS = ("auc", "f1", "precision", "recall")
DEFAULT_TOLERANCE = 0.05
DEFAULT_MIN_ROWS = 50
DEFAULT_THRESHOLD = 0.5
STD_MIN_ROWS = 200  # Model Monitor: standard deviations only from 200 rows on
STD_SAMPLES = 5
STD_FRACTION = 0.8
HEALTH_CHECK_ID_PREFIX = "boostline-health-check-"  # boostline.serving.endpoints
COMPARISONS = {
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
}
COUNT_KEYS = (  # statistics.json's boostline.counts
    "capture_records",
    "unreadable_capture_records",
    "health_check_captures",
    "captures_outside_window",
    "ground_truth_records",
    "invalid_ground_truth_records",
    "duplicate_ground_truth_ids",
    "duplicate_capture_ids",
    "captures_without_ground_truth",
    "ground_truth_without_capture",
    "label_count_mismatch",
    "joined_requests",
    "joined_rows",
)
COMPLETED = "Completed"
COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"
INSUFFICIENT_DATA = "InsufficientData"
_TRUE = frozenset(("1", "1.0", "true", "yes"))
_FALSE = frozenset(("0", "0.0", "false", "no"))


class ModelQualityError(ValueError):
    """Input that cannot be monitored; the message says why."""


def log(message: str) -> None:
    print(f"model_quality: {message}", flush=True)


# ---------------------------------------------------------------- captured predictions


@dataclass
class CapturedRequest:
    key: str  # what ground truth names: the inference id if the caller sent one, else event id
    probabilities: list[float]
    decisions: list[bool | None]  # the endpoint's own decision per row, when it said one
    inference_time: datetime | None = None


def read_captures(
    capture_dir: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    counts: Counter | None = None,
) -> list[CapturedRequest]:
    """Every readable captured request under capture_dir, oldest file first.

    start/end (UTC) keep requests with start <= inferenceTime < end; a record
    without an inferenceTime is kept.
    """
    counts = counts if counts is not None else Counter()
    requests = []
    for path in _jsonl_files(capture_dir):
        for number, line in enumerate(dq._read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            counts["capture_records"] += 1
            try:
                request = _captured_request(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
                counts["unreadable_capture_records"] += 1
                if counts["unreadable_capture_records"] <= 3:
                    log(f"skipping {path}:{number}: {exc}")
                continue
            if request is None:
                counts["health_check_captures"] += 1
                continue
            when = request.inference_time
            if when is not None and (
                (start is not None and when < start) or (end is not None and when >= end)
            ):
                counts["captures_outside_window"] += 1
                continue
            requests.append(request)
    return requests


def _captured_request(record: Mapping[str, Any]) -> CapturedRequest | None:
    metadata = record["eventMetadata"]
    key = metadata.get("inferenceId") or metadata["eventId"]
    if not isinstance(key, str) or not key:
        raise ValueError("eventMetadata has no eventId")
    if key.startswith(HEALTH_CHECK_ID_PREFIX):
        return None
    block = record["captureData"]["endpointOutput"]
    text = _block_text(block)
    content_type = str(block.get("observedContentType") or "").lower()
    rows = _prediction_rows(text, content_type)
    if not rows:
        raise ValueError("the captured output holds no prediction")
    probabilities = [p for p, _ in rows]
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities):
        raise ValueError("a captured probability is not in [0, 1]")
    when = metadata.get("inferenceTime")
    return CapturedRequest(
        key=key,
        probabilities=probabilities,
        decisions=[d for _, d in rows],
        inference_time=parse_time(when) if when else None,
    )


def _block_text(block: Mapping[str, Any]) -> str:
    data = block.get("data", "")
    if str(block.get("encoding", "")).upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return str(data)


def _prediction_rows(text: str, content_type: str) -> list[tuple[float, bool | None]]:
    """(probability, decision or None) per row of one captured response."""
    stripped = text.strip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        if "jsonlines" in content_type or "jsonl" in content_type:
            items: list[Any] = [json.loads(x) for x in stripped.splitlines() if x.strip()]
        else:
            document = json.loads(stripped)
            if isinstance(document, dict) and "predictions" in document:
                document = document["predictions"]
            items = document if isinstance(document, list) else [document]
        return [_json_prediction(item) for item in items]
    rows = []
    for fields in csv.reader(io.StringIO(stripped)):
        if not fields:
            continue
        decision = _decision(fields[1]) if len(fields) > 1 else None
        rows.append((float(fields[0]), decision))
    return rows


def _json_prediction(item: Any) -> tuple[float, bool | None]:
    if isinstance(item, bool):
        raise ValueError("a prediction is a bare boolean, not a probability")
    if isinstance(item, (int, float)):
        return float(item), None
    if not isinstance(item, dict):
        raise ValueError(f"a prediction is a {type(item).__name__}")
    value = item.get("probability", item.get("score"))
    if value is None or isinstance(value, bool):
        raise ValueError("a prediction has no probability or score")
    decision = item.get("default")
    if not isinstance(decision, bool):
        decision = _decision(item["decision"]) if "decision" in item else None
    return float(value), decision


def _decision(text: Any) -> bool | None:
    value = str(text).strip().lower()
    if value in ("reject", "default") or value in _TRUE:
        return True
    if value in ("approve",) or value in _FALSE:
        return False
    return None


# ---------------------------------------------------------------- ground truth


def read_ground_truth(
    ground_truth_dir: Path, counts: Counter | None = None
) -> dict[str, list[int]]:
    """Labels per id (one per row of the captured request), later files winning."""
    counts = counts if counts is not None else Counter()
    labels: dict[str, list[int]] = {}
    for path in _jsonl_files(ground_truth_dir):
        for number, line in enumerate(dq._read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            counts["ground_truth_records"] += 1
            try:
                record = json.loads(line)
                key = record["eventMetadata"]["eventId"]
                if not isinstance(key, str) or not key:
                    raise ValueError("eventMetadata.eventId is empty")
                values = parse_labels(record["groundTruthData"])
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                counts["invalid_ground_truth_records"] += 1
                if counts["invalid_ground_truth_records"] <= 3:
                    log(f"skipping ground truth {path}:{number}: {exc}")
                continue
            if key in labels:
                counts["duplicate_ground_truth_ids"] += 1
            labels[key] = values
    return labels


def parse_labels(block: Mapping[str, Any]) -> list[int]:
    """The labels of one groundTruthData block: "1", "1,0,1", JSON 1 / [1, 0, 1]."""
    encoding = str(block.get("encoding", "CSV")).upper()
    data = block["data"]
    if encoding == "BASE64":
        data, encoding = base64.b64decode(data).decode("utf-8"), "CSV"
    if encoding == "JSON":
        value = json.loads(data) if isinstance(data, str) else data
        values = value if isinstance(value, list) else [value]
    else:
        values = [v for line in str(data).splitlines() for v in line.split(",")]
    labels = [_label(v) for v in values]
    if not labels:
        raise ValueError("no label")
    return labels


def _label(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    text = str(value).strip().strip('"').lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"label {value!r} is not 0 or 1")


# ---------------------------------------------------------------- join


@dataclass
class Joined:
    labels: np.ndarray  # int8, 0/1
    probabilities: np.ndarray  # float64
    decisions: list[bool | None]  # the endpoint's decision per row (None: not said)
    counts: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.labels)


def join(requests: Sequence[CapturedRequest], truth: Mapping[str, list[int]]) -> Joined:
    """Captured predictions with their labels, row by row."""
    counts: Counter = Counter()
    labels: list[int] = []
    probabilities: list[float] = []
    decisions: list[bool | None] = []
    seen: Counter = Counter(r.key for r in requests)
    counts["duplicate_capture_ids"] = sum(n - 1 for n in seen.values() if n > 1)
    matched: set[str] = set()
    for request in requests:
        values = truth.get(request.key)
        if values is None:
            counts["captures_without_ground_truth"] += 1
            continue
        matched.add(request.key)
        if len(values) != len(request.probabilities):
            counts["label_count_mismatch"] += 1
            continue
        counts["joined_requests"] += 1
        labels.extend(values)
        probabilities.extend(request.probabilities)
        decisions.extend(request.decisions)
    counts["ground_truth_without_capture"] = sum(1 for key in truth if key not in matched)
    counts["joined_rows"] = len(labels)
    return Joined(
        labels=np.asarray(labels, dtype=np.int8),
        probabilities=np.asarray(probabilities, dtype=np.float64),
        decisions=decisions,
        counts=counts,
    )


# ---------------------------------------------------------------- metrics


def _scalar_metrics(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Every scalar metric of one sample (both classes must be present)."""
    y = labels.astype(bool)
    n = len(y)
    positives = float(y.sum())
    negatives = float(n - positives)
    tp = float(np.count_nonzero(predicted & y))
    fp = float(np.count_nonzero(predicted & ~y))
    point = ev._point_metrics(tp, fp, positives, negatives)
    fn = positives - tp
    tp_curve, fp_curve = ev.Ranking.of(labels, probabilities).counts()
    prevalence = positives / n
    return {
        "recall": point["recall"],
        "precision": point["precision"],
        "accuracy": point["accuracy"],
        "recall_best_constant_classifier": 1.0,
        "precision_best_constant_classifier": prevalence,
        "accuracy_best_constant_classifier": prevalence,
        "true_positive_rate": point["true_positive_rate"],
        "true_negative_rate": point["true_negative_rate"],
        "false_positive_rate": point["false_positive_rate"],
        "false_negative_rate": point["false_negative_rate"],
        "auc": ev.roc_auc(tp_curve, fp_curve),
        "f0_5": _f_beta(0.5, tp, fp, fn),
        "f1": point["f1"],
        "f2": _f_beta(2.0, tp, fp, fn),
        "pr_auc": ev.average_precision(tp_curve, fp_curve),
        "ks": ev.ks_statistic(tp_curve, fp_curve),
        "brier": float(np.mean((probabilities - labels) ** 2)),
    }


def _f_beta(beta: float, tp: float, fp: float, fn: float) -> float:
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denominator if denominator else 0.0


_BEFORE_CURVES = (
    "recall",
    "precision",
    "accuracy",
    "recall_best_constant_classifier",
    "precision_best_constant_classifier",
    "accuracy_best_constant_classifier",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
)
_AFTER_CURVES = ("auc", "f0_5", "f1", "f2", "pr_auc", "ks", "brier")


def binary_classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray, *, seed: int = 0
) -> dict[str, Any]:
    """Model Monitor's binary_classification_metrics for labelled predictions."""
    labels = np.asarray(labels).astype(np.int8)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=bool)
    n = len(labels)
    positives = int(labels.sum())
    if positives in (0, n):
        raise ModelQualityError(
            f"metrics need both classes; the {n} rows hold {positives} defaults"
        )
    values = _scalar_metrics(labels, probabilities, predicted)
    deviations: dict[str, Any] = dict.fromkeys(values, "NaN")
    if n >= STD_MIN_ROWS:
        rng = np.random.default_rng(seed)
        size = int(n * STD_FRACTION)
        samples: dict[str, list[float]] = {k: [] for k in values}
        for _ in range(STD_SAMPLES):
            idx = rng.choice(n, size=size, replace=False)
            if labels[idx].min() == labels[idx].max():
                continue
            for key, value in _scalar_metrics(
                labels[idx], probabilities[idx], predicted[idx]
            ).items():
                samples[key].append(value)
        deviations = {
            k: float(np.std(v, ddof=1)) if len(v) > 1 else "NaN" for k, v in samples.items()
        }
    y = labels.astype(bool)
    tp = int(np.count_nonzero(predicted & y))
    fp = int(np.count_nonzero(predicted & ~y))
    fn = int(positives - tp)
    tn = int(n - positives - fp)
    metrics: dict[str, Any] = {
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    }
    for key in _BEFORE_CURVES:  # Model Monitor's order
        metrics[key] = {"value": values[key], "standard_deviation": deviations[key]}
    ranking = ev.Ranking.of(labels, probabilities)
    tp_curve, fp_curve = ranking.counts()
    tpr = np.r_[0.0, tp_curve / positives]
    fpr = np.r_[0.0, fp_curve / (n - positives)]
    roc_keep = ev._downsample(len(tpr))
    precisions = tp_curve / (tp_curve + fp_curve)
    recalls = tp_curve / positives
    pr_keep = ev._downsample(len(precisions))
    metrics["receiver_operating_characteristic_curve"] = {
        "false_positive_rates": ev._rounded(fpr[roc_keep]),
        "true_positive_rates": ev._rounded(tpr[roc_keep]),
    }
    metrics["precision_recall_curve"] = {
        "precisions": ev._rounded(precisions[pr_keep]),
        "recalls": ev._rounded(recalls[pr_keep]),
    }
    for key in _AFTER_CURVES:
        metrics[key] = {"value": values[key], "standard_deviation": deviations[key]}
    return metrics


def statistics_document(
    item_count: int,
    metrics: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
    evaluation_time: datetime | None = None,
) -> dict[str, Any]:
    when = evaluation_time or datetime.now(timezone.utc)
    document: dict[str, Any] = {
        "version": 0.0,
        "dataset": {"item_count": int(item_count), "evaluation_time": format_time(when)},
        "binary_classification_metrics": dict(metrics or {}),
    }
    if extra:
        document["boostline"] = dict(extra)
    return document


# ---------------------------------------------------------------- constraints


def suggest_constraints(
    metrics: Mapping[str, Any],
    *,
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    metric_names: Iterable[str] = CONSTRAINED_METRICS,
    decision_threshold: float | None = None,
) -> dict[str, Any]:
    """constraints.json: each metric must not fall below its baseline minus the tolerance.

    metrics: binary_classification_metrics ({"auc": {"value": v, ...}, ...} or
    plain numbers). A metric missing from it, or not a number, is left out and
    listed under boostline.skipped.
    """
    constraints: dict[str, Any] = {}
    baseline: dict[str, float] = {}
    tolerances: dict[str, float] = {}
    skipped = []
    for name in metric_names:
        value = _value(metrics.get(name))
        if value is None:
            skipped.append(name)
            continue
        tol = _tolerance(tolerance, name)
        constraints[name] = {
            "threshold": max(0.0, value - tol),
            "comparison_operator": "LessThanThreshold",
        }
        baseline[name] = value
        tolerances[name] = tol
    if not constraints:
        raise ModelQualityError(
            f"the baseline holds none of the metrics {list(metric_names)} as numbers"
        )
    extension: dict[str, Any] = {
        "problem_type": PROBLEM_TYPE,
        "decision_threshold": decision_threshold,
        "baseline": baseline,
        "tolerance": tolerances,
    }
    if skipped:
        extension["skipped"] = skipped
    return {
        "version": 0.0,
        "binary_classification_constraints": constraints,
        "boostline": extension,
    }


def _value(metric: Any) -> float | None:
    if isinstance(metric, Mapping):
        metric = metric.get("value")
    if isinstance(metric, bool) or not isinstance(metric, (int, float)):
        return None
    return float(metric) if math.isfinite(metric) else None


def _tolerance(tolerance: float | Mapping[str, float], name: str) -> float:
    value = tolerance.get(name, DEFAULT_TOLERANCE) if isinstance(tolerance, Mapping) else tolerance
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ModelQualityError(f"tolerance for {name} must be a non-negative number")
    return value


def check_constraints(
    statistics: Mapping[str, Any], constraints: Mapping[str, Any]
) -> dict[str, Any]:
    """constraint_violations.json for statistics against constraints."""
    metrics = statistics.get("binary_classification_metrics", {})
    violations = []
    for name, constraint in _constraints(constraints).items():
        value = _value(metrics.get(name))
        if value is None:
            raise ModelQualityError(f"the statistics hold no value for constrained metric {name}")
        operator = constraint["comparison_operator"]
        threshold = float(constraint["threshold"])
        if COMPARISONS[operator](value, threshold):
            deviation = (
                metrics[name].get("standard_deviation")
                if isinstance(metrics[name], Mapping)
                else None
            )
            spread = f" +/- {deviation:.4f}" if isinstance(deviation, (int, float)) else ""
            violations.append(
                {
                    "metric_name": name,
                    "constraint_check_type": operator,
                    "description": (
                        f"Metric {name} with {value:.4f}{spread} was {operator} {threshold:.4f}"
                    ),
                }
            )
    return {"violations": violations}


def _constraints(constraints: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    block = constraints.get("binary_classification_constraints")
    if not isinstance(block, Mapping) or not block:
        raise ModelQualityError(
            "the constraints hold no binary_classification_constraints "
            "(is this a data-quality constraints file?)"
        )
    for name, constraint in block.items():
        if not isinstance(constraint, Mapping) or "threshold" not in constraint:
            raise ModelQualityError(f"constraint {name} has no threshold")
        if constraint.get("comparison_operator") not in COMPARISONS:
            raise ModelQualityError(
                f"constraint {name}: comparison_operator "
                f"{constraint.get('comparison_operator')!r} is not one of {sorted(COMPARISONS)}"
            )
    return dict(block)


# ---------------------------------------------------------------- baseline


def baseline_from_evaluation(
    evaluation: Mapping[str, Any],
    *,
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    metric_names: Iterable[str] = CONSTRAINED_METRICS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics, constraints) from evaluate.py's evaluation.json."""
    metrics = evaluation.get("binary_classification_metrics")
    if not isinstance(metrics, Mapping):
        raise ModelQualityError("the evaluation holds no binary_classification_metrics")
    threshold = evaluation.get("decision_threshold")
    threshold = float(threshold) if isinstance(threshold, (int, float)) else None
    item_count = (evaluation.get("dataset") or {}).get("test_rows")
    if item_count is None:
        matrix = metrics.get("confusion_matrix") or {}
        item_count = sum(int(v) for row in matrix.values() for v in row.values())
    statistics = statistics_document(
        int(item_count),
        metrics,
        {"source": "evaluation", "decision_threshold": threshold},
    )
    constraints = suggest_constraints(
        metrics, tolerance=tolerance, metric_names=metric_names, decision_threshold=threshold
    )
    return statistics, constraints


def baseline_from_predictions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    *,
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    metric_names: Iterable[str] = CONSTRAINED_METRICS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics, constraints) from labelled predictions (e.g. on validation data)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    metrics = binary_classification_metrics(labels, probabilities, probabilities >= threshold)
    statistics = statistics_document(
        len(labels), metrics, {"source": "predictions", "decision_threshold": threshold}
    )
    constraints = suggest_constraints(
        metrics, tolerance=tolerance, metric_names=metric_names, decision_threshold=threshold
    )
    return statistics, constraints


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) from a header-less CSV of label,probability."""
    labels, probabilities = [], []
    try:
        text = dq._read_text(path)
    except OSError as exc:
        raise ModelQualityError(f"cannot read {path}: {exc}") from None
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields:
            continue
        try:
            labels.append(_label(fields[0]))
            p = float(fields[1])
        except (ValueError, IndexError):
            raise ModelQualityError(
                f"{path}:{number}: expected label,probability (0 or 1, then a number)"
            ) from None
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ModelQualityError(f"{path}:{number}: probability {p} is not in [0, 1]")
        probabilities.append(p)
    if not labels:
        raise ModelQualityError(f"{path} holds no predictions")
    return np.asarray(labels, dtype=np.int8), np.asarray(probabilities)


# ---------------------------------------------------------------- the check


@dataclass
class CheckOutcome:
    status: str  # Completed, CompletedWithViolations or InsufficientData
    message: str  # the ExitMessage
    statistics: dict[str, Any]
    violations: dict[str, Any]
    counts: dict[str, int]


def run_check(
    capture_dir: Path,
    ground_truth_dir: Path,
    constraints: Mapping[str, Any],
    *,
    threshold: float | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
    start: datetime | None = None,
    end: datetime | None = None,
    output_dir: Path | None = None,
    seed: int = 0,
) -> CheckOutcome:
    """Join, measure, compare; writes statistics.json and constraint_violations.json."""
    if min_rows < 1:
        raise ModelQualityError("min_rows must be at least 1")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ModelQualityError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    _constraints(constraints)  # a bad constraints file fails before any work
    counts: Counter = Counter(dict.fromkeys(COUNT_KEYS, 0))
    notes = []
    for label, directory in (("capture", capture_dir), ("ground truth", ground_truth_dir)):
        if not Path(directory).is_dir():
            notes.append(f"no {label} directory {directory}")
    requests = read_captures(capture_dir, start=start, end=end, counts=counts)
    truth = read_ground_truth(ground_truth_dir, counts)
    joined = join(requests, truth)
    counts.update(joined.counts)
    n = len(joined)
    positives = int(joined.labels.sum()) if n else 0

    used, source = _threshold(threshold, constraints, joined)
    extra: dict[str, Any] = {
        "problem_type": PROBLEM_TYPE,
        "decision_threshold": used,
        "decision_threshold_source": source,
        "min_rows": min_rows,
        "positives": positives,
        "counts": dict(sorted(counts.items())),
    }
    if notes:
        extra["notes"] = notes
    if n < min_rows or positives in (0, n):
        why = (
            f"{n} labelled rows joined, at least {min_rows} needed"
            if n < min_rows
            else f"the {n} joined rows hold only one class ({positives} defaults)"
        )
        message = (
            f"Completed: Job completed successfully; insufficient data: {why}, "
            "so no constraint was checked."
        )
        extra["outcome"] = INSUFFICIENT_DATA
        statistics = statistics_document(n, None, extra)
        violations: dict[str, Any] = {
            "violations": [],
            "boostline": {"outcome": INSUFFICIENT_DATA, "reason": why},
        }
        status = INSUFFICIENT_DATA
    else:
        if source == "endpoint decision":
            predicted = np.array([bool(d) for d in joined.decisions])
        else:
            predicted = joined.probabilities >= used
        metrics = binary_classification_metrics(
            joined.labels, joined.probabilities, predicted, seed=seed
        )
        statistics = statistics_document(n, metrics, extra)
        violations = check_constraints(statistics, constraints)
        count = len(violations["violations"])
        status = COMPLETED_WITH_VIOLATIONS if count else COMPLETED
        message = (
            f"CompletedWithViolations: Job completed successfully with {count} violations."
            if count
            else "Completed: Job completed successfully with no violations."
        )
        statistics["boostline"]["outcome"] = status
    if output_dir is not None:
        _write_json(Path(output_dir) / "statistics.json", statistics)
        _write_json(Path(output_dir) / "constraint_violations.json", violations)
    return CheckOutcome(status, message, statistics, violations, dict(counts))


def _threshold(
    threshold: float | None, constraints: Mapping[str, Any], joined: Joined
) -> tuple[float | None, str]:
    if threshold is not None:
        return float(threshold), "argument"
    recorded = (constraints.get("boostline") or {}).get("decision_threshold")
    if isinstance(recorded, (int, float)) and 0.0 < recorded < 1.0:
        return float(recorded), "constraints"
    if joined.decisions and all(d is not None for d in joined.decisions):
        return None, "endpoint decision"
    return DEFAULT_THRESHOLD, "default"


# ---------------------------------------------------------------- files and times


def _jsonl_files(root: Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.name.endswith((".jsonl", ".jsonl.gz"))
    )


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; 'Z' or no zone means UTC."""
    return dq.parse_utc_time(text)


def format_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ev._clean(dict(data)), indent=2) + "\n", encoding="utf-8")


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelQualityError(f"cannot read {what} {path}: {exc}") from None


# ---------------------------------------------------------------- CLI


def parse_tolerance(text: str) -> float | dict[str, float]:
    """'0.05' for every metric, or 'auc=0.03,f1=0.08' (others: the default)."""
    text = text.strip()
    try:
        if "=" not in text:
            return float(text)
        out = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            out[name.strip()] = float(value)
        return out
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"tolerance {text!r}: give a number or metric=number pairs"
        ) from None


def _metric_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one metric")
    return names


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Model Monitor-format model-quality baseline and check")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("baseline", help="constraints.json from the evaluation")
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--evaluation", type=Path, help="evaluate.py's evaluation.json")
    source.add_argument("--predictions", type=Path, help="header-less CSV: label,probability")
    b.add_argument("--threshold", type=float, default=None, help="with --predictions (default 0.5)")
    b.add_argument("--output-dir", type=Path, required=True)
    b.add_argument("--tolerance", type=parse_tolerance, default=DEFAULT_TOLERANCE)
    b.add_argument("--metrics", type=_metric_list, default=list(CONSTRAINED_METRICS))
    c = sub.add_parser("check", help="join captures with ground truth and compare")
    c.add_argument("--capture-dir", type=Path, required=True)
    c.add_argument("--ground-truth-dir", type=Path, required=True)
    c.add_argument("--constraints", type=Path, required=True)
    c.add_argument("--output-dir", type=Path, required=True)
    c.add_argument("--threshold", type=float, default=None, help="default: see the docstring")
    c.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS)
    c.add_argument("--start-time", type=_time, default=None, help="ISO 8601, inclusive")
    c.add_argument("--end-time", type=_time, default=None, help="ISO 8601, exclusive")
    c.add_argument("--fail-on-violations", action="store_true", help="exit 2 if any")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "baseline":
            if args.evaluation is not None:
                if args.threshold is not None:
                    raise ModelQualityError(
                        "--threshold goes with --predictions; the evaluation names its own"
                    )
                statistics, constraints = baseline_from_evaluation(
                    _load_json(args.evaluation, "evaluation"),
                    tolerance=args.tolerance,
                    metric_names=args.metrics,
                )
            else:
                threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
                if not 0.0 < threshold < 1.0:
                    raise ModelQualityError("--threshold must lie strictly between 0 and 1")
                labels, probabilities = read_predictions(args.predictions)
                statistics, constraints = baseline_from_predictions(
                    labels,
                    probabilities,
                    threshold,
                    tolerance=args.tolerance,
                    metric_names=args.metrics,
                )
            _write_json(args.output_dir / "statistics.json", statistics)
            _write_json(args.output_dir / "constraints.json", constraints)
            shown = ", ".join(
                f"{k} < {v['threshold']:.4f}"
                for k, v in constraints["binary_classification_constraints"].items()
            )
            log(f"baseline in {args.output_dir}: violation when {shown}")
            return 0
        outcome = run_check(
            args.capture_dir,
            args.ground_truth_dir,
            _load_json(args.constraints, "constraints"),
            threshold=args.threshold,
            min_rows=args.min_rows,
            start=args.start_time,
            end=args.end_time,
            output_dir=args.output_dir,
        )
        counts = outcome.counts
        log(
            f"{counts.get('joined_rows', 0)} rows joined from {counts.get('joined_requests', 0)} "
            f"requests; {counts.get('captures_without_ground_truth', 0)} captures without "
            f"ground truth, {counts.get('ground_truth_without_capture', 0)} ground-truth "
            "records without a capture"
        )
        for violation in outcome.violations["violations"]:
            log(violation["description"])
        print(outcome.message, flush=True)
        write_message(outcome.message, create=False)
        if args.fail_on_violations and outcome.status == COMPLETED_WITH_VIOLATIONS:
            return 2
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure ends with a clear message
        message = f"model quality {args.command} failed: {exc}"
        report_failure(message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
