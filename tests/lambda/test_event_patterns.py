"""The EventBridge patterns against the sample events, with moto's EventBridge matcher.

Two checks: moto's pattern matcher (`moto.events.models.EventPattern`, the code
behind its rules) on every pattern x sample pair, and the real path — rules on a
moto event bus with SQS targets, the samples sent with PutEvents.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest
from lambda_test_helpers import REGION, SAMPLES, load_event_patterns, sample_event

# The names in the sample events.
RAW_BUCKET = "example-data-bucket"
PIPELINE = "loan-default-training"
GROUP = "loan-default"
SCHEDULE_PREFIX = "loan-default-"
DRIFT_ALARM_PREFIX = "loan-default-feature-drift"

# rule -> the sample it is for; every other sample must not match it.
EXPECTED = {
    "new-data": "s3",
    "monitoring-violations": "monitoring",
    "drift-alarm": "alarm",
    "pipeline-finished": "pipeline",
    "model-package-state": "model_package",
    "own-monitoring-violations": "own_monitoring",
    "serving-stack-settled": "stack",
}
ENDPOINT = "loan-default-endpoint"
SERVING_STACK = "loan-default-serving"


@pytest.fixture(scope="module")
def patterns_module() -> ModuleType:
    return load_event_patterns()


@pytest.fixture(scope="module")
def rules(patterns_module: ModuleType) -> dict[str, dict[str, Any]]:
    rules = patterns_module.retrain_trigger_patterns(
        raw_bucket=RAW_BUCKET,
        pipeline_name=PIPELINE,
        monitoring_schedule_prefix=SCHEDULE_PREFIX,
        drift_alarm_prefix=DRIFT_ALARM_PREFIX,
        endpoint=ENDPOINT,
    )
    rules.update(
        patterns_module.deployer_patterns(
            model_package_group=GROUP,
            serving_stack=SERVING_STACK,
            monitoring_stack="loan-default-monitoring",
        )
    )
    return rules


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def test_every_rule_has_a_sample_and_every_sample_but_the_schedule_a_rule(
    rules: dict[str, dict[str, Any]],
) -> None:
    assert set(rules) == set(EXPECTED)
    assert set(SAMPLES) - set(EXPECTED.values()) == {"schedule"}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_each_pattern_matches_its_sample_and_no_other(
    rules: dict[str, dict[str, Any]], rule: str, sample: str
) -> None:
    assert matches(rules[rule], sample_event(sample)) is (EXPECTED[rule] == sample)


def _variant(kind: str, path: list[str], value: Any) -> dict[str, Any]:
    event = sample_event(kind)
    node = event
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return event


NEAR_MISSES = {
    "new-data": [
        _variant("s3", ["detail", "bucket", "name"], "another-bucket"),
        _variant("s3", ["detail", "object", "key"], "processed/train/part-0.csv"),
        _variant("s3", ["detail-type"], "Object Deleted"),
    ],
    "monitoring-violations": [
        _variant("monitoring", ["detail", "ExitMessage"], "Completed: Job completed successfully."),
        _variant("monitoring", ["detail", "ProcessingJobStatus"], "Failed"),
        _variant("monitoring", ["detail", "MonitoringScheduleArn"], None),
        _variant(
            "monitoring",
            ["detail", "MonitoringScheduleArn"],
            "arn:aws:sagemaker:eu-west-1:123456789012:monitoring-schedule/other-project-dq",
        ),
    ],
    "drift-alarm": [
        _variant("alarm", ["detail", "state", "value"], "OK"),
        _variant("alarm", ["detail", "alarmName"], "loan-default-endpoint-5xx"),
    ],
    "pipeline-finished": [
        _variant("pipeline", ["detail", "currentPipelineExecutionStatus"], "Executing"),
        _variant(
            "pipeline",
            ["detail", "pipelineArn"],
            "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/loan-default-training-v2",
        ),
    ],
    "own-monitoring-violations": [
        _variant("own_monitoring", ["detail", "status"], "Completed"),
        _variant("own_monitoring", ["detail", "status"], "InsufficientData"),
        _variant("own_monitoring", ["detail", "endpoint"], "another-endpoint"),
        _variant("own_monitoring", ["source"], "aws.sagemaker"),
    ],
    "serving-stack-settled": [
        _variant("stack", ["detail", "status-details", "status"], "UPDATE_IN_PROGRESS"),
        _variant("stack", ["detail", "status-details", "status"], "UPDATE_FAILED"),
        _variant(
            "stack",
            ["detail", "stack-id"],
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/loan-default-pipeline/1",
        ),
        _variant("stack", ["detail", "status-details", "status"], "DELETE_COMPLETE"),
    ],
    "model-package-state": [
        _variant("model_package", ["detail", "ModelPackageGroupName"], "another-group"),
        _variant("model_package", ["detail", "ModelApprovalStatus"], "PendingManualApproval"),
    ],
}


@pytest.mark.parametrize(
    ("rule", "index"),
    [(rule, index) for rule, events in NEAR_MISSES.items() for index in range(len(events))],
)
def test_near_misses_do_not_match(rules: dict[str, dict[str, Any]], rule: str, index: int) -> None:
    assert not matches(rules[rule], NEAR_MISSES[rule][index])


def test_variants_that_must_still_match(rules: dict[str, dict[str, Any]]) -> None:
    rejected = _variant("model_package", ["detail", "ModelApprovalStatus"], "Rejected")
    failed = _variant("pipeline", ["detail", "currentPipelineExecutionStatus"], "Failed")
    deeper = _variant("s3", ["detail", "object", "key"], "raw/2027/01/01/x.parquet")
    assert matches(rules["model-package-state"], rejected)
    assert matches(rules["pipeline-finished"], failed)
    assert matches(rules["new-data"], deeper)


def test_patterns_route_the_samples_through_an_event_bus(
    moto: None, rules: dict[str, dict[str, Any]], patterns_module: ModuleType
) -> None:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queues = {}
    for rule, pattern in rules.items():
        url = sqs.create_queue(QueueName=f"rule-{rule}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
        queues[rule] = url
    # The schedule rule is a schedule expression, not a pattern.
    events.put_rule(
        Name="retrain-schedule", ScheduleExpression=patterns_module.DEFAULT_RETRAIN_SCHEDULE
    )

    for sample in sorted(SAMPLES):
        event = sample_event(sample)
        response = events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                }
            ]
        )
        assert response["FailedEntryCount"] == 0

    for rule, url in queues.items():
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        received = [json.loads(m["Body"]) for m in messages]
        expected = sample_event(EXPECTED[rule])
        assert [(e["source"], e["detail-type"]) for e in received] == [
            (expected["source"], expected["detail-type"])
        ], rule
        assert received[0]["detail"] == expected["detail"]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.new_data_pattern(""),
        lambda m: m.new_data_pattern("bucket", ""),
        lambda m: m.drift_alarm_pattern([]),
        lambda m: m.monitoring_violations_pattern(""),
        lambda m: m.pipeline_finished_pattern(""),
        lambda m: m.model_package_state_pattern(""),
        lambda m: m.own_monitoring_violations_pattern(""),
        lambda m: m.serving_stack_settled_pattern(""),
    ],
)
def test_empty_names_are_refused(patterns_module: ModuleType, call: Any) -> None:
    with pytest.raises(ValueError):
        call(patterns_module)


def test_the_own_monitor_sample_has_the_shape_the_job_puts(patterns_module: ModuleType) -> None:
    """The sample's detail carries exactly the keys monitor_publish.py writes."""
    from training_scripts import monitor_publish as pub

    sample = sample_event("own_monitoring")
    assert (sample["source"], sample["detail-type"]) == (pub.EVENT_SOURCE, pub.EVENT_DETAIL_TYPE)
    assert (patterns_module.OWN_MONITOR_SOURCE, patterns_module.OWN_MONITOR_DETAIL_TYPE) == (
        pub.EVENT_SOURCE,
        pub.EVENT_DETAIL_TYPE,
    )
    made = pub.completion_detail(
        "data-quality",
        ENDPOINT,
        status="CompletedWithViolations",
        violations=3,
        rows=1500,
        window={"windowStart": "a", "windowEnd": "b"},
        report_uri="s3://r",
        model_package="arn",
        message="m",
    )
    assert set(made) == set(sample["detail"])
