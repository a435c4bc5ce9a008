"""One run of our own data-quality monitor (monitoring.use_managed_analyzer: false).

The monitoring pipeline `{project}-{stage}-monitoring` runs this script in the XGBoost
image on the monitoring schedule. It gathers what the managed analyzer would get,
runs `data_quality.check` on it and reports like the managed analyzer does:

1. the live model's feature manifest: the model package's model.tar.gz
   (`ModelDataUrl` from DescribeModelPackage), member `boostline/feature_manifest.json`;
2. the baseline statistics and constraints of the live model;
3. the endpoint's data capture of the last `--hours` full hours
   (`<capture prefix>/yyyy/mm/dd/hh/*.jsonl`);
4. writes `statistics.json` and `constraint_violations.json` to `--output-dir`
   (uploaded to the monitoring bucket as the job's output);
5. publishes `DataQualityViolations` and `DataQualityRows` (dimension `Endpoint`)
   to the CloudWatch namespace `BOOSTLINE_METRICS_NAMESPACE`. The alarm
   `{project}-{stage}-drift-data-quality` watches the first; it is how violations
   reach the retrain trigger.

Every location may be an `s3://` URI or a local path, so the script runs (and is
tested) without AWS; `--no-metrics` (or no namespace) skips CloudWatch.

CLI::

    python monitor_job.py --model-package ARN|none [--model-data URI] \
        --baseline-statistics URI --constraints URI --captures URI --endpoint NAME \
        --output-dir DIR [--hours 1] [--now 2026-11-12T02:00:00Z] [--no-metrics]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import data_quality as dq
    from job_message import report_failure
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import data_quality as dq
    from training_scripts.job_message import report_failure

MANIFEST_MEMBER = "boostline/feature_manifest.json"
NAMESPACE_ENV = "BOOSTLINE_METRICS_NAMESPACE"
VIOLATIONS_METRIC = "DataQualityViolations"
ROWS_METRIC = "DataQualityRows"
NONE = "none"

ClientFactory = Callable[[str], Any]


class MonitorError(RuntimeError):
    """The monitor cannot run (missing input, unreadable model)."""


def _boto3_client(service: str) -> Any:  # pragma: no cover - needs AWS
    import boto3

    return boto3.client(service)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise MonitorError(f"{uri}: not an S3 URI")
    return bucket, key


def fetch_file(uri: str, dest: Path, client: ClientFactory = _boto3_client) -> Path:
    """Copy one object (s3://...) or local file to dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        client("s3").download_file(bucket, key, str(dest))
    else:
        source = Path(uri)
        if not source.is_file():
            raise MonitorError(f"{uri} does not exist")
        shutil.copyfile(source, dest)
    return dest


def fetch_prefix(uri: str, dest: Path, client: ClientFactory = _boto3_client) -> int:
    """Copy every object under a prefix (or a local directory) to dest; the count copied."""
    copied = 0
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        s3 = client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                relative = item["Key"][len(key) :].lstrip("/") or Path(item["Key"]).name
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
                copied += 1
        return copied
    source = Path(uri)
    if not source.is_dir():
        return 0
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += 1
    return copied


def capture_hours(now: datetime, hours: int) -> list[str]:
    """The `yyyy/mm/dd/hh` partitions of the last `hours` full hours before now, oldest first."""
    if hours < 1:
        raise MonitorError("--hours must be at least 1")
    current = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return [(current - timedelta(hours=h)).strftime("%Y/%m/%d/%H") for h in range(hours, 0, -1)]


def model_data_url(model_package: str, client: ClientFactory = _boto3_client) -> str:
    """The live model's model.tar.gz, from its model package version."""
    if not model_package or model_package == NONE:
        raise MonitorError("no live model package: nothing to monitor")
    described = client("sagemaker").describe_model_package(ModelPackageName=model_package)
    containers = described.get("InferenceSpecification", {}).get("Containers", [])
    for container in containers:
        if container.get("ModelDataUrl"):
            return container["ModelDataUrl"]
    raise MonitorError(f"{model_package} has no ModelDataUrl")


def read_manifest(model_tar: Path) -> dict[str, Any]:
    """The feature manifest inside the model archive (read, not extracted)."""
    try:
        with tarfile.open(model_tar, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.lstrip("./") == MANIFEST_MEMBER:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return json.loads(handle.read().decode("utf-8"))
    except (tarfile.TarError, OSError, json.JSONDecodeError) as exc:
        raise MonitorError(f"cannot read {model_tar}: {exc}") from None
    raise MonitorError(f"{model_tar} has no {MANIFEST_MEMBER}")


def publish_metrics(
    namespace: str, endpoint: str, violations: int, rows: int, client: ClientFactory
) -> None:
    dimensions = [{"Name": "Endpoint", "Value": endpoint}]
    client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": VIOLATIONS_METRIC,
                "Dimensions": dimensions,
                "Value": float(violations),
                "Unit": "Count",
            },
            {
                "MetricName": ROWS_METRIC,
                "Dimensions": dimensions,
                "Value": float(rows),
                "Unit": "Count",
            },
        ],
    )


def run(args: argparse.Namespace, client: ClientFactory = _boto3_client) -> dict[str, Any]:
    """One monitoring run; returns the violations report (also written to output_dir)."""
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="boostline-monitor-") as tmp:
        work = Path(tmp)
        model_url = args.model_data or model_data_url(args.model_package, client)
        manifest = read_manifest(fetch_file(model_url, work / "model.tar.gz", client))
        statistics_file = fetch_file(args.baseline_statistics, work / "statistics.json", client)
        constraints_file = fetch_file(args.constraints, work / "constraints.json", client)
        baseline = json.loads(statistics_file.read_text(encoding="utf-8"))
        constraints = json.loads(constraints_file.read_text(encoding="utf-8"))

        captures = work / "captures"
        base = args.captures.rstrip("/")
        for hour in capture_hours(args.now, args.hours):
            fetch_prefix(f"{base}/{hour}/", captures / hour, client)
        names, kinds, categories = dq.feature_spec(manifest)
        rows = dq.read_rows(dq.find_data_files(captures), names) if captures.is_dir() else []

    if rows:
        columns = dq.rows_to_columns(rows)
        current = dq.compute_statistics(columns, names, kinds, categories=categories)
        report = dq.check(current, baseline, constraints)
        dq._write_json(output / "statistics.json", current)
    else:
        # No traffic in the window: nothing drifted, and the metrics say so (0 rows).
        report = {"violations": []}
    dq._write_json(output / "constraint_violations.json", report)
    violations = len(report["violations"])
    namespace = os.environ.get(NAMESPACE_ENV, "")
    if namespace and not args.no_metrics:
        publish_metrics(namespace, args.endpoint, violations, len(rows), client)
    if not rows:
        print("Completed: no captured data in the monitoring window.", flush=True)
    elif violations:
        print(f"CompletedWithViolations: Job completed successfully with {violations} violations.")
    else:
        print("Completed: Job completed successfully with no violations.")
    return report


def _timestamp(value: str) -> datetime:
    return dq.parse_utc_time(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Own-code data-quality monitor of the live endpoint")
    p.add_argument("--model-package", default=NONE, help="live model package version ARN")
    p.add_argument("--model-data", default="", help="model.tar.gz (instead of the package)")
    p.add_argument("--baseline-statistics", required=True)
    p.add_argument("--constraints", required=True)
    p.add_argument("--captures", required=True, help="data-capture prefix of the endpoint variant")
    p.add_argument("--endpoint", required=True, help="the metrics' Endpoint dimension")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--hours", type=int, default=1, help="full hours of capture to check")
    p.add_argument("--now", type=_timestamp, default=None, help="ISO time (default: now)")
    p.add_argument("--no-metrics", action="store_true", help="do not publish to CloudWatch")
    args = p.parse_args(argv)
    if args.now is None:
        args.now = datetime.now(timezone.utc)
    return args


def main(argv: list[str] | None = None, client: ClientFactory = _boto3_client) -> int:
    try:
        run(parse_args(argv), client)
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure ends with a clear message
        message = f"data quality monitor failed: {exc}"
        report_failure(message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
