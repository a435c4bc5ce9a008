"""Turn an EventBridge event into a retrain signal, or say why it is ignored.

Every field is read defensively: an event of an unexpected shape gives an
`Ignored` with the reason, never an exception. Every field a signal is made of
is validated against what AWS sends (ARNs and names of their documented shape,
an object size that is a whole number of bytes, no control characters): a field
that fails is never acted on, and the reason names the field, not its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

VIOLATIONS_PREFIX = "CompletedWithViolations"
# Our own monitors' completion events (training_scripts/monitor_publish.py).
OWN_MONITOR_SOURCE = "boostline.monitoring"
OWN_MONITOR_DETAIL_TYPE = "Boostline Monitoring Run Completed"
OWN_MONITORS = frozenset({"data-quality", "model-quality"})
PIPELINE_FINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped", "CompletedWithFailures"})


@dataclass(frozen=True)
class Filters:
    """What counts as ours; from the function's environment."""

    raw_bucket: str
    raw_prefix: str
    pipeline_name: str
    monitoring_schedule_prefix: str = ""  # empty: any monitoring schedule
    drift_alarm_prefix: str = ""  # empty: any alarm
    endpoint: str = ""  # our own monitors' endpoint; empty: their events are ignored


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


MAX_OBJECT_SIZE = 5 * 1024**4  # S3's largest object, 5 TiB
MAX_KEY_BYTES = 1024  # S3's longest key
MAX_NAME_LENGTH = 255  # CloudWatch's longest alarm name
MAX_EVENT_ID_LENGTH = 256

_ARN_HEAD = r"arn:aws(?:-[a-z]+)*:{service}:[a-z]{{2}}(?:-[a-z]+)+-\d:\d{{12}}:"
_SAGEMAKER_NAME = r"[A-Za-z0-9](?:-*[A-Za-z0-9]){{0,{most}}}"
SCHEDULE_ARN = re.compile(
    _ARN_HEAD.format(service="sagemaker")
    + "monitoring-schedule/"
    + _SAGEMAKER_NAME.format(most=62),
    re.ASCII,
)
JOB_NAME = re.compile(_SAGEMAKER_NAME.format(most=62))
PIPELINE_ARN = re.compile(
    _ARN_HEAD.format(service="sagemaker") + "pipeline/(" + _SAGEMAKER_NAME.format(most=255) + ")",
    re.ASCII,
)
EXECUTION_ID = re.compile(r"[A-Za-z0-9]{1,64}")
RULE_ARN = re.compile(
    _ARN_HEAD.format(service="events") + r"rule/(?:[.\-_A-Za-z0-9]{1,256}/)?[.\-_A-Za-z0-9]{1,64}",
    re.ASCII,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _plain_text(value: str, most: int) -> bool:
    """Not empty, at most `most` bytes in UTF-8 and no control characters."""
    return 0 < len(value.encode("utf-8", "surrogatepass")) <= most and not _CONTROL.search(value)


def _what(value: Any) -> str:
    """A field's type and length for a reason: never its value, which may be anything."""
    if isinstance(value, str):
        return f"a {len(value)}-character string"
    return f"a {type(value).__name__}"


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
    if not _plain_text(event["id"], MAX_EVENT_ID_LENGTH):
        return Ignored(f"not an EventBridge event (its id is {_what(event['id'])})")
    source = _str(event.get("source"))
    detail_type = _str(event.get("detail-type"))
    detail = _dict(event.get("detail"))

    if source == "aws.s3" and detail_type == "Object Created":
        return _new_data(detail, filters)
    if source == "aws.sagemaker" and detail_type == "SageMaker Processing Job State Change":
        return _monitoring(detail, filters)
    if source == OWN_MONITOR_SOURCE and detail_type == OWN_MONITOR_DETAIL_TYPE:
        return _own_monitoring(detail, filters)
    if source == "aws.cloudwatch" and detail_type == "CloudWatch Alarm State Change":
        return _alarm(detail, filters)
    if source == "aws.events" and detail_type == "Scheduled Event":
        resources = event.get("resources")
        rule = resources[0] if isinstance(resources, list) and resources else None
        if not isinstance(rule, str) or not RULE_ARN.fullmatch(rule):
            return Ignored(
                f"scheduled event whose resource is not an EventBridge rule ARN ({_what(rule)})",
                kind="schedule",
            )
        return Schedule(rule=_name_from_arn(rule))
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
    if not _plain_text(key, MAX_KEY_BYTES):
        return Ignored(
            f"object key is not an S3 key of at most {MAX_KEY_BYTES} bytes without control "
            f"characters ({_what(obj.get('key'))})",
            kind="new-data",
        )
    if not key.startswith(filters.raw_prefix):
        return Ignored(f"object {key!r} is outside {filters.raw_prefix!r}", kind="new-data")
    if key.endswith("/"):
        return Ignored(f"{key!r} is a folder marker", kind="new-data")
    if type(size) is not int or not 0 <= size <= MAX_OBJECT_SIZE:
        return Ignored(
            f"object {key!r} has no valid size (object.size is {_what(size)}, not a whole "
            f"number of bytes from 0 to {MAX_OBJECT_SIZE})",
            kind="new-data",
        )
    return NewData(bucket=bucket, key=key, size=size)


def _monitoring(detail: dict[str, Any], filters: Filters) -> Drift | Ignored:
    raw_job = detail.get("ProcessingJobName")
    if not isinstance(raw_job, str) or not JOB_NAME.fullmatch(raw_job):
        return Ignored(
            f"processing job event without a valid ProcessingJobName ({_what(raw_job)})",
            kind="drift",
        )
    job = raw_job
    schedule_arn = detail.get("MonitoringScheduleArn")
    status = _str(detail.get("ProcessingJobStatus"))
    exit_message = _str(detail.get("ExitMessage"))
    if schedule_arn is None or schedule_arn == "":
        return Ignored(f"processing job {job!r} is not a monitoring execution", kind="drift")
    if not isinstance(schedule_arn, str) or not SCHEDULE_ARN.fullmatch(schedule_arn):
        return Ignored(
            f"processing job {job!r}: MonitoringScheduleArn is not a monitoring schedule ARN "
            f"({_what(schedule_arn)})",
            kind="drift",
        )
    schedule = _name_from_arn(schedule_arn)
    prefix = filters.monitoring_schedule_prefix.lower()
    if prefix and not schedule.lower().startswith(prefix):
        return Ignored(f"monitoring schedule {schedule!r} is not ours", kind="drift")
    if status != "Completed" or not exit_message.startswith(VIOLATIONS_PREFIX):
        return Ignored(
            f"monitoring job {job!r} ended {status!r} without violations ({exit_message[:80]!r})",
            kind="drift",
        )
    return Drift(source=job or schedule, via="monitoring")


def _own_monitoring(detail: dict[str, Any], filters: Filters) -> Drift | Ignored:
    """A run of our own monitors: drift when it completed with at least one violation."""
    endpoint = detail.get("endpoint")
    monitor = detail.get("monitor")
    status = detail.get("status")
    violations = detail.get("violations")
    if not isinstance(endpoint, str) or not JOB_NAME.fullmatch(endpoint):
        return Ignored(
            f"monitoring run event without a valid endpoint ({_what(endpoint)})", kind="drift"
        )
    if not filters.endpoint or endpoint != filters.endpoint:
        return Ignored(f"monitoring run of endpoint {endpoint!r}, not ours", kind="drift")
    if monitor not in OWN_MONITORS:
        return Ignored(f"monitoring run event whose monitor is {_what(monitor)}", kind="drift")
    # bool is an int in Python: a `true` count is garbage, not one violation.
    if isinstance(violations, bool) or not isinstance(violations, int) or violations < 0:
        return Ignored(f"{monitor} run event whose violations is {_what(violations)}", kind="drift")
    if status != VIOLATIONS_PREFIX or violations == 0:
        return Ignored(
            f"{monitor} run of {endpoint!r} ended {_str(status)[:40]!r} without violations",
            kind="drift",
        )
    return Drift(source=f"{endpoint} {monitor}", via="monitoring")


def _alarm(detail: dict[str, Any], filters: Filters) -> Drift | Ignored:
    name = _str(detail.get("alarmName"))
    state = _str(_dict(detail.get("state")).get("value"))
    if not name:
        return Ignored("alarm event without alarmName", kind="drift")
    if not _plain_text(name, MAX_NAME_LENGTH):
        return Ignored(
            f"alarm event whose alarmName is not a CloudWatch alarm name ({_what(name)})",
            kind="drift",
        )
    if filters.drift_alarm_prefix and not name.startswith(filters.drift_alarm_prefix):
        return Ignored(f"alarm {name!r} is not a drift alarm", kind="drift")
    if state != "ALARM":
        return Ignored(f"alarm {name!r} entered {state!r}, not ALARM", kind="drift")
    return Drift(source=name, via="alarm")


def _pipeline(detail: dict[str, Any], filters: Filters) -> PipelineFinished | Ignored:
    pipeline_arn = _str(detail.get("pipelineArn"))
    status = _str(detail.get("currentPipelineExecutionStatus"))
    matched = PIPELINE_ARN.fullmatch(pipeline_arn)
    if matched is None:
        return Ignored(
            f"pipeline event whose pipelineArn is not a pipeline ARN "
            f"({_what(detail.get('pipelineArn'))})",
            kind="pipeline-finished",
        )
    if matched.group(1).lower() != filters.pipeline_name.lower():
        return Ignored(f"pipeline {pipeline_arn!r} is not ours", kind="pipeline-finished")
    if status not in PIPELINE_FINAL_STATUSES:
        return Ignored(
            f"pipeline execution is {status[:40]!r}, not final", kind="pipeline-finished"
        )
    execution_arn = detail.get("pipelineExecutionArn")
    head, sep, execution_id = (
        execution_arn.rpartition("/execution/") if isinstance(execution_arn, str) else ("", "", "")
    )
    if head != pipeline_arn or not sep or not EXECUTION_ID.fullmatch(execution_id):
        return Ignored(
            f"pipeline event whose pipelineExecutionArn is not an execution of {pipeline_arn!r} "
            f"({_what(execution_arn)})",
            kind="pipeline-finished",
        )
    return PipelineFinished(execution_arn=execution_arn, status=status)
