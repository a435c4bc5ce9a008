"""Turn an EventBridge event into a retrain signal, or say why it is ignored.

Every field is read defensively: an event of an unexpected shape gives an
`Ignored` with the reason, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

VIOLATIONS_PREFIX = "CompletedWithViolations"
PIPELINE_FINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped", "CompletedWithFailures"})


@dataclass(frozen=True)
class Filters:
    """What counts as ours; from the function's environment."""

    raw_bucket: str
    raw_prefix: str
    pipeline_name: str
    monitoring_schedule_prefix: str = ""  # empty: any monitoring schedule
    drift_alarm_prefix: str = ""  # empty: any alarm


@dataclass(frozen=True)
class NewData:
    bucket: str
    key: str
    size: int
    kind: str = "new-data"


@dataclass(frozen=True)
class Drift:
    source: str  # the monitoring job or the alarm name
    via: str  # "monitoring" or "alarm"
    kind: str = "drift"


@dataclass(frozen=True)
class Schedule:
    rule: str
    kind: str = "schedule"


@dataclass(frozen=True)
class PipelineFinished:
    execution_arn: str
    status: str
    kind: str = "pipeline-finished"
    # Why a Failed execution failed; not in the event: the handler reads it (failure.py).
    failure_reason: str = ""


@dataclass(frozen=True)
class Ignored:
    reason: str
    kind: str = "unknown"


Signal = NewData | Drift | Schedule | PipelineFinished


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name_from_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


def classify(raw: Any, filters: Filters) -> Signal | Ignored:
    if not isinstance(raw, dict):
        return Ignored(f"not an EventBridge event (a {type(raw).__name__})")
    event = EventBridgeEvent(raw)
    if not _str(event.get("id")):
        return Ignored("not an EventBridge event (no id)")
    source = _str(event.get("source"))
    detail_type = _str(event.get("detail-type"))
    detail = _dict(event.get("detail"))

    if source == "aws.s3" and detail_type == "Object Created":
        return _new_data(detail, filters)
    if source == "aws.sagemaker" and detail_type == "SageMaker Processing Job State Change":
        return _monitoring(detail, filters)
    if source == "aws.cloudwatch" and detail_type == "CloudWatch Alarm State Change":
        return _alarm(detail, filters)
    if source == "aws.events" and detail_type == "Scheduled Event":
        resources = event.get("resources")
        rule = resources[0] if isinstance(resources, list) and resources else ""
        return Schedule(rule=_name_from_arn(_str(rule)) or "schedule")
    if (
        source == "aws.sagemaker"
        and detail_type == "SageMaker Model Building Pipeline Execution Status Change"
    ):
        return _pipeline(detail, filters)
    return Ignored(f"unexpected event: source={source!r} detail-type={detail_type!r}")


def _new_data(detail: dict[str, Any], filters: Filters) -> NewData | Ignored:
    bucket = _str(_dict(detail.get("bucket")).get("name"))
    obj = _dict(detail.get("object"))
    key = _str(obj.get("key"))
    size = obj.get("size")
    if bucket != filters.raw_bucket:
        return Ignored(f"object in bucket {bucket!r}, not the raw bucket", kind="new-data")
    if not key.startswith(filters.raw_prefix):
        return Ignored(f"object {key!r} is outside {filters.raw_prefix!r}", kind="new-data")
    if key.endswith("/"):
        return Ignored(f"{key!r} is a folder marker", kind="new-data")
    size_bytes = int(size) if isinstance(size, int | float) and size >= 0 else 0
    return NewData(bucket=bucket, key=key, size=size_bytes)


def _monitoring(detail: dict[str, Any], filters: Filters) -> Drift | Ignored:
    job = _str(detail.get("ProcessingJobName"))
    schedule = _name_from_arn(_str(detail.get("MonitoringScheduleArn")))
    status = _str(detail.get("ProcessingJobStatus"))
    exit_message = _str(detail.get("ExitMessage"))
    if not schedule:
        return Ignored(f"processing job {job!r} is not a monitoring execution", kind="drift")
    prefix = filters.monitoring_schedule_prefix.lower()
    if prefix and not schedule.lower().startswith(prefix):
        return Ignored(f"monitoring schedule {schedule!r} is not ours", kind="drift")
    if status != "Completed" or not exit_message.startswith(VIOLATIONS_PREFIX):
        return Ignored(
            f"monitoring job {job!r} ended {status!r} without violations ({exit_message[:80]!r})",
            kind="drift",
        )
    return Drift(source=job or schedule, via="monitoring")


def _alarm(detail: dict[str, Any], filters: Filters) -> Drift | Ignored:
    name = _str(detail.get("alarmName"))
    state = _str(_dict(detail.get("state")).get("value"))
    if not name:
        return Ignored("alarm event without alarmName", kind="drift")
    if filters.drift_alarm_prefix and not name.startswith(filters.drift_alarm_prefix):
        return Ignored(f"alarm {name!r} is not a drift alarm", kind="drift")
    if state != "ALARM":
        return Ignored(f"alarm {name!r} entered {state!r}, not ALARM", kind="drift")
    return Drift(source=name, via="alarm")


def _pipeline(detail: dict[str, Any], filters: Filters) -> PipelineFinished | Ignored:
    pipeline_arn = _str(detail.get("pipelineArn"))
    status = _str(detail.get("currentPipelineExecutionStatus"))
    if _name_from_arn(pipeline_arn).lower() != filters.pipeline_name.lower():
        return Ignored(f"pipeline {pipeline_arn!r} is not ours", kind="pipeline-finished")
    if status not in PIPELINE_FINAL_STATUSES:
        return Ignored(f"pipeline execution is {status!r}, not final", kind="pipeline-finished")
    return PipelineFinished(execution_arn=_str(detail.get("pipelineExecutionArn")), status=status)
