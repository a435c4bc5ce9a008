"""EventBridge rule patterns for the retrain trigger and the deployer.

The CDK app builds its rules from these functions, the tests check them against
the sample events with an EventBridge pattern matcher, and the local runtime can
use them to route events to the same handlers. Every pattern is a plain dict of
the shape `events.EventPattern` / `AWS::Events::Rule.EventPattern` takes.

This module has no dependencies; load it by file path (``lambda`` is a Python
keyword, so ``import lambda.event_patterns`` is not possible)::

    spec = importlib.util.spec_from_file_location("event_patterns", path)

The handlers check every field again (events can also arrive from a replay, a
test or the local runtime), so a pattern only keeps noise and cost down.

Rules (name -> target):

- ``new-data`` -> retrain trigger: S3 ``Object Created`` in the raw bucket under
  the raw prefix. Needs EventBridge notifications enabled on the bucket.
- ``monitoring-violations`` -> retrain trigger: a Model Monitor execution (a
  processing job started by one of our monitoring schedules) that completed with
  violations.
- ``own-monitoring-violations`` -> retrain trigger: a run of our own monitors
  (monitoring.engine: own) that found violations; each run ends with one event
  (source ``boostline.monitoring``), put by training_scripts/monitor_publish.py.
- ``drift-alarm`` -> retrain trigger: a drift alarm entering ALARM. Only alarms
  whose names start with the given prefix(es), so that the endpoint's rollback
  alarms (5XX, latency) never start a training run.
- ``pipeline-finished`` -> retrain trigger: our training pipeline reached a final
  status; work that arrived while it ran (remembered as pending) starts then.
- ``model-package-state`` -> deployer: a version of our model package group
  became Approved or Rejected.
- ``serving-stack-settled`` -> deployer: an update of the serving stack completed
  (or rolled back); the deployer then copies the live model to the monitoring stack.
- The schedule rule has no pattern: it is a ``ScheduleExpression`` rule (see
  ``DEFAULT_RETRAIN_SCHEDULE``) whose target is the retrain trigger; the events
  it sends are ``Scheduled Event`` from ``aws.events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Pattern = dict[str, Any]

# A monthly retrain; the stack may take another from its config.
DEFAULT_RETRAIN_SCHEDULE = "cron(0 3 1 * ? *)"

# What our own monitors put on the default bus (training_scripts/monitor_publish.py).
OWN_MONITOR_SOURCE = "boostline.monitoring"
OWN_MONITOR_DETAIL_TYPE = "Boostline Monitoring Run Completed"
SERVING_SETTLED_STATUSES = ("UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
PIPELINE_FINAL_STATUSES = ("Succeeded", "Failed", "Stopped", "CompletedWithFailures")
DEPLOYER_STATUSES = ("Approved", "Rejected")


def _prefixes(value: str | Sequence[str]) -> list[dict[str, str]]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or any(not item for item in items):
        raise ValueError("at least one non-empty prefix is required")
    return [{"prefix": item} for item in items]


def new_data_pattern(raw_bucket: str, raw_prefix: str = "raw/") -> Pattern:
    """S3 `Object Created` for keys under `raw_prefix` in `raw_bucket`."""
    if not raw_bucket:
        raise ValueError("raw_bucket is required")
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [raw_bucket]},
            "object": {"key": _prefixes(raw_prefix)},
        },
    }


def monitoring_schedule_arn_wildcard(schedule_prefix: str) -> str:
    """An EventBridge wildcard for the ARNs of the monitoring schedules named prefix*."""
    return f"arn:*:sagemaker:*:*:monitoring-schedule/{schedule_prefix}*"


def monitoring_violations_pattern(monitoring_schedule_prefix: str) -> Pattern:
    """A monitoring execution of one of our schedules that completed with violations.

    Monitoring executions are processing jobs whose event carries
    `MonitoringScheduleArn`; a run without violations has the ExitMessage
    `Completed: ...`, one with violations `CompletedWithViolations: ...`.
    """
    if not monitoring_schedule_prefix:
        raise ValueError("monitoring_schedule_prefix is required")
    schedule_arn = monitoring_schedule_arn_wildcard(monitoring_schedule_prefix)
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobStatus": ["Completed"],
            "ExitMessage": [{"prefix": "CompletedWithViolations"}],
            "MonitoringScheduleArn": [{"wildcard": schedule_arn}],
        },
    }


def own_monitoring_violations_pattern(endpoint: str) -> Pattern:
    """A run of our own monitors of `endpoint` that completed with violations."""
    if not endpoint:
        raise ValueError("endpoint is required")
    return {
        "source": [OWN_MONITOR_SOURCE],
        "detail-type": [OWN_MONITOR_DETAIL_TYPE],
        "detail": {"endpoint": [endpoint], "status": ["CompletedWithViolations"]},
    }


def serving_stack_settled_pattern(stack_name: str, monitoring_stack: str = "") -> Pattern:
    """An update of the serving stack that completed or rolled back (and, with a
    monitoring stack, that stack's creation: it then needs the live model too)."""
    if not stack_name:
        raise ValueError("stack_name is required")
    stacks = [stack_name, *([monitoring_stack] if monitoring_stack else [])]
    statuses = [*SERVING_SETTLED_STATUSES, *(["CREATE_COMPLETE"] if monitoring_stack else [])]
    return {
        "source": ["aws.cloudformation"],
        "detail-type": ["CloudFormation Stack Status Change"],
        "detail": {
            "stack-id": [
                {"wildcard": f"arn:*:cloudformation:*:*:stack/{name}/*"} for name in stacks
            ],
            "status-details": {"status": statuses},
        },
    }


def drift_alarm_pattern(alarm_name_prefix: str | Sequence[str]) -> Pattern:
    """A CloudWatch alarm whose name starts with one of the prefixes entering ALARM."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {
            "alarmName": _prefixes(alarm_name_prefix),
            "state": {"value": ["ALARM"]},
        },
    }


def pipeline_finished_pattern(pipeline_name: str) -> Pattern:
    """Our training pipeline reached a final status."""
    if not pipeline_name:
        raise ValueError("pipeline_name is required")
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        "detail": {
            "currentPipelineExecutionStatus": list(PIPELINE_FINAL_STATUSES),
            "pipelineArn": [{"wildcard": f"arn:*:sagemaker:*:*:pipeline/{pipeline_name}"}],
        },
    }


def model_package_state_pattern(model_package_group: str) -> Pattern:
    """A version of our model package group became Approved or Rejected."""
    if not model_package_group:
        raise ValueError("model_package_group is required")
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [model_package_group],
            "ModelApprovalStatus": list(DEPLOYER_STATUSES),
        },
    }


def retrain_trigger_patterns(
    *,
    raw_bucket: str,
    pipeline_name: str,
    monitoring_schedule_prefix: str,
    drift_alarm_prefix: str | Sequence[str],
    endpoint: str,
    raw_prefix: str = "raw/",
) -> dict[str, Pattern]:
    """The rules whose target is the retrain trigger (plus the schedule rule)."""
    return {
        "new-data": new_data_pattern(raw_bucket, raw_prefix),
        "monitoring-violations": monitoring_violations_pattern(monitoring_schedule_prefix),
        "own-monitoring-violations": own_monitoring_violations_pattern(endpoint),
        "drift-alarm": drift_alarm_pattern(drift_alarm_prefix),
        "pipeline-finished": pipeline_finished_pattern(pipeline_name),
    }


def deployer_patterns(
    *,
    model_package_group: str,
    serving_stack: str | None = None,
    monitoring_stack: str | None = None,
) -> dict[str, Pattern]:
    """The rules whose target is the deployer (the second only with a monitoring stack)."""
    found = {"model-package-state": model_package_state_pattern(model_package_group)}
    if serving_stack:
        found["serving-stack-settled"] = serving_stack_settled_pattern(
            serving_stack, monitoring_stack or ""
        )
    return found
