"""What a monitoring run reads: S3 objects (or local files), the live model, a time window.

Every location may be an `s3://` URI or a local path, so the monitors run (and are
tested) without AWS. Boto3 clients come from a factory argument.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ClientFactory = Callable[[str], Any]
# The local endpoint's own health-check requests (boostline.serving.endpoints): not traffic.
HEALTH_CHECK_ID_PREFIX = "boostline-health-check-"
MANIFEST_MEMBER = "boostline/feature_manifest.json"
NONE = "none"


class MonitorError(RuntimeError):
    """The monitor cannot run (missing input, unreadable model)."""


def boto3_client(service: str) -> Any:  # pragma: no cover - needs AWS or the local endpoint
    import boto3

    return boto3.client(service)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise MonitorError(f"{uri}: not an S3 URI")
    return bucket, key


def fetch_file(uri: str, dest: Path, client: ClientFactory = boto3_client) -> Path:
    """Copy one object (s3://...) or local file to dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        client("s3").download_file(bucket, key, str(dest))
    else:
        source = Path(uri)
        if not source.is_file():
            raise MonitorError(f"{uri} does not exist")
        shutil.copyfile(source, dest)
    return dest


def fetch_prefix(uri: str, dest: Path, client: ClientFactory = boto3_client) -> int:
    """Copy every object under a prefix (or a local directory) to dest; the count copied."""
    copied = 0
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
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


# ---------------------------------------------------------------- the window


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC: the traffic one monitoring run checks."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise MonitorError(f"the window ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def last_full_hours(cls, now: datetime, hours: int) -> Window:
        """The `hours` full hours before now: what a scheduled run checks."""
        if hours < 1:
            raise MonitorError("--hours must be at least 1")
        end = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return cls(end - timedelta(hours=hours), end)

    def partitions(self, until: datetime | None = None) -> list[str]:
        """The `yyyy/mm/dd/hh` partitions that hold records of [start, until or end)."""
        last = until or self.end
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        out = []
        while hour < last:
            out.append(hour.strftime("%Y/%m/%d/%H"))
            hour += timedelta(hours=1)
        return out

    def holds(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def as_dict(self) -> dict[str, str]:
        return {"windowStart": iso(self.start), "windowEnd": iso(self.end)}


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_partitions(
    uri: str, partitions: Iterable[str], dest: Path, client: ClientFactory = boto3_client
) -> int:
    base = uri.rstrip("/")
    return sum(fetch_prefix(f"{base}/{p}/", dest / p, client) for p in partitions)


def window_captures(
    source: Path, dest: Path, window: Window, parse_time: Callable[[str], datetime]
) -> dict[str, int]:
    """Copy the capture records whose inference time lies in the window into dest.

    A damaged line (a write cut short, not JSON, no readable time) is skipped and
    counted, so one bad record never fails the window; so are health checks.
    """
    dest.mkdir(parents=True, exist_ok=True)
    counts = {"records": 0, "outside_window": 0, "damaged_lines": 0, "health_checks": 0}
    kept: list[str] = []
    files = sorted(p for p in source.rglob("*.jsonl") if p.is_file()) if source.is_dir() else []
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                when = parse_time(str(record["eventMetadata"]["inferenceTime"]))
            except (ValueError, KeyError, TypeError):
                counts["damaged_lines"] += 1
                continue
            inference_id = str(record["eventMetadata"].get("inferenceId", ""))
            if inference_id.startswith(HEALTH_CHECK_ID_PREFIX):
                counts["health_checks"] += 1
            elif window.holds(when):
                kept.append(line)
                counts["records"] += 1
            else:
                counts["outside_window"] += 1
    (dest / "window.jsonl").write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return counts


# ---------------------------------------------------------------- the live model


def describe_package(model_package: str, client: ClientFactory = boto3_client) -> dict[str, Any]:
    if not model_package or model_package == NONE:
        raise MonitorError("no live model package: nothing to monitor")
    return client("sagemaker").describe_model_package(ModelPackageName=model_package)


def model_data_url(package: dict[str, Any]) -> str:
    """The live model's model.tar.gz, from its described model package version."""
    for container in package.get("InferenceSpecification", {}).get("Containers", []):
        if container.get("ModelDataUrl"):
            return container["ModelDataUrl"]
    raise MonitorError(f"{package.get('ModelPackageArn', 'the model package')} has no ModelDataUrl")


def evaluation_url(package: dict[str, Any]) -> str:
    """The live model's evaluation.json (ModelMetrics.ModelQuality.Statistics)."""
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    if not uri:
        raise MonitorError(
            f"{package.get('ModelPackageArn', 'the model package')} records no evaluation "
            "(ModelMetrics.ModelQuality.Statistics)"
        )
    return str(uri)


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
