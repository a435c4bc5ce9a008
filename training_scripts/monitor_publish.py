"""What a monitoring run tells: CloudWatch metrics and the EventBridge event it ends with.

One namespace (`BOOSTLINE_METRICS_NAMESPACE`, the only one the job role may write)
and one dimension set per metric kind:

- run metrics, dimension `Endpoint`: DataQualityViolations, DataQualityRows,
  ModelQualityViolations, ModelQualityRows, and the live model's `auc` per window
  (only when enough labelled rows joined);
- drift per feature, dimensions `Endpoint` and `Feature`: FeatureDrift, the
  L-infinity distance between the baseline's and the window's distributions.

Every run ends with one event on the default bus (source `boostline.monitoring`,
detail type `Boostline Monitoring Run Completed`); the retrain trigger's
`own-monitoring-violations` rule listens for the ones whose status is
`CompletedWithViolations` (lambda/event_patterns.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

try:
    from monitor_io import ClientFactory
except ImportError:  # pragma: no cover - imported as a package
    from training_scripts.monitor_io import ClientFactory

NAMESPACE_ENV = "BOOSTLINE_METRICS_NAMESPACE"
EVENT_SOURCE = "boostline.monitoring"
EVENT_DETAIL_TYPE = "Boostline Monitoring Run Completed"
DATA_QUALITY = "data-quality"
MODEL_QUALITY = "model-quality"

VIOLATIONS_METRIC = {DATA_QUALITY: "DataQualityViolations", MODEL_QUALITY: "ModelQualityViolations"}
ROWS_METRIC = {DATA_QUALITY: "DataQualityRows", MODEL_QUALITY: "ModelQualityRows"}
AUC_METRIC = "auc"
FEATURE_DRIFT_METRIC = "FeatureDrift"
# PutMetricData takes at most 1,000 datums a call; a wide schema stays far below it.
_BATCH = 500


def _datum(name: str, value: float, dimensions: list[dict[str, str]], unit: str) -> dict:
    return {"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": unit}


def run_metrics(
    monitor: str,
    endpoint: str,
    *,
    violations: int,
    rows: int,
    auc: float | None = None,
    drift: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The datums of one run (see the module docstring)."""
    dims = [{"Name": "Endpoint", "Value": endpoint}]
    data = [
        _datum(VIOLATIONS_METRIC[monitor], violations, dims, "Count"),
        _datum(ROWS_METRIC[monitor], rows, dims, "Count"),
    ]
    if auc is not None:
        data.append(_datum(AUC_METRIC, auc, dims, "None"))
    for feature, distance in sorted((drift or {}).items()):
        data.append(
            _datum(
                FEATURE_DRIFT_METRIC,
                distance,
                [*dims, {"Name": "Feature", "Value": feature}],
                "None",
            )
        )
    return data


def publish_metrics(namespace: str, data: list[dict[str, Any]], client: ClientFactory) -> None:
    cloudwatch = client("cloudwatch")
    for start in range(0, len(data), _BATCH):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + _BATCH])


def completion_detail(
    monitor: str,
    endpoint: str,
    *,
    status: str,
    violations: int,
    rows: int,
    window: Mapping[str, str],
    report_uri: str,
    model_package: str,
    message: str,
) -> dict[str, Any]:
    return {
        "monitor": monitor,
        "endpoint": endpoint,
        "status": status,
        "violations": violations,
        "rows": rows,
        **window,
        "reportUri": report_uri,
        "modelPackageArn": model_package,
        "exitMessage": message,
    }


def put_completion_event(detail: Mapping[str, Any], client: ClientFactory) -> None:
    """One event on the default bus; a rejected entry fails the run (it would be lost)."""
    answer = client("events").put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": EVENT_DETAIL_TYPE,
                "Detail": json.dumps(detail, sort_keys=True),
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        entry = (answer.get("Entries") or [{}])[0]
        raise RuntimeError(
            "the completion event was refused: "
            f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
        )
