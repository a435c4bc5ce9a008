"""The retrain trigger against moto (SageMaker pipelines and registry, DynamoDB)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from lambda_test_helpers import (
    ACCOUNT,
    LAMBDA_DIR,
    REGION,
    FakeClock,
    FakeContext,
    bind_output,
    emf_records,
    load_handler,
    load_module,
    log_records,
    new_id,
    sample_event,
)

PIPELINE = "loan-default-training"  # the names in the sample events
GROUP = "loan-default"
BUCKET = "example-data-bucket"
TABLE = "boostline-dev-retrain"
PIPELINE_DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "InputDataPrefix", "Type": "String", "DefaultValue": f"s3://{BUCKET}/raw/"},
        {"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"},
        {"Name": "ChampionModelDataUrl", "Type": "String", "DefaultValue": "none"},
    ],
    "Steps": [],
}


@dataclass
class Trigger:
    app: ModuleType
    sagemaker: Any
    dynamodb: Any
    clock: FakeClock
    context: FakeContext

    def __call__(self, event: Any) -> dict[str, Any]:
        bind_output(self.app)  # log lines go to what capsys reads in this phase
        return self.app.lambda_handler(event, self.context)

    def executions(self) -> list[dict[str, Any]]:
        page = self.sagemaker.list_pipeline_executions(PipelineName=PIPELINE)
        return page["PipelineExecutionSummaries"]

    def parameters(self, execution_arn: str) -> dict[str, str]:
        page = self.sagemaker.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=execution_arn
        )
        return {p["Name"]: p["Value"] for p in page["PipelineParameters"]}

    def state(self) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=TABLE, Key={"id": {"S": f"retrain-state#{PIPELINE}"}}, ConsistentRead=True
        ).get("Item")
        return item

    def set_status(self, execution_arn: str, status: str) -> None:
        """moto finishes executions at once; real ones run for minutes."""
        from moto.sagemaker.models import sagemaker_backends

        pipeline = sagemaker_backends[ACCOUNT][REGION].pipelines[PIPELINE]
        pipeline.pipeline_executions[execution_arn].pipeline_execution_status = status


def s3_event(key: str = "raw/loans/2026/11/12/applications-0002.csv", size: int = 1024) -> dict:
    event = sample_event("s3", id=new_id())
    event["detail"]["object"]["key"] = key
    event["detail"]["object"]["size"] = size
    return event


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "MODEL_PACKAGE_GROUP": GROUP,
        "RAW_BUCKET": BUCKET,
        "RAW_PREFIX": "raw/",
        "IDEMPOTENCY_TABLE": TABLE,
        "MIN_NEW_FILES": "1",
        "MIN_NEW_BYTES": "0",
        "MIN_INTERVAL_SECONDS": "3600",
        "START_GRACE_SECONDS": "300",
        "POWERTOOLS_SERVICE_NAME": "retrain-trigger",
        "ENDPOINT_NAME": "loan-default-endpoint",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def trigger(moto: None, settings_env: None) -> Trigger:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps(PIPELINE_DEFINITION),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
    )
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    app = load_handler("retrain_trigger")
    clock = FakeClock()
    app.clock = clock
    return Trigger(app, sagemaker, dynamodb, clock, FakeContext())


def register(sagemaker: Any, status: str, model_url: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "example/xgboost:3.0-5", "ModelDataUrl": model_url}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


# --- new data ------------------------------------------------------------------------


def test_new_data_starts_a_run_with_the_pipeline_parameters(trigger: Trigger) -> None:
    result = trigger(sample_event("s3"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "new-data: 1 file"
    [execution] = trigger.executions()
    assert execution["PipelineExecutionArn"] == result["pipeline_execution_arn"]
    assert trigger.parameters(result["pipeline_execution_arn"]) == {
        "InputDataPrefix": f"s3://{BUCKET}/raw/",
        "TriggerReason": "new-data: 1 file",
        "ChampionModelDataUrl": "none",
    }
    assert execution["PipelineExecutionDescription"].startswith("new-data: 1 file")
    state = trigger.state()
    assert state is not None
    assert state["pending_files"]["N"] == "0"
    assert state["last_execution_arn"]["S"] == result["pipeline_execution_arn"]


def test_client_request_token_is_derived_from_the_event_id(trigger: Trigger) -> None:
    token = trigger.app.client_request_token("17793124-05d4-b198-2fde-7ededc63b103")
    assert token == trigger.app.client_request_token("17793124-05d4-b198-2fde-7ededc63b103")
    assert token != trigger.app.client_request_token("another-event")
    assert 32 <= len(token) <= 128


def test_duplicate_delivery_of_the_same_event_starts_exactly_one_run(
    trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    event = sample_event("s3")

    first = trigger(event)
    second = trigger(sample_event("s3"))  # the same event, delivered again

    assert first["decision"] == "started"
    assert second["decision"] == "duplicate"
    assert second["original_decision"] == "started"
    assert second["pipeline_execution_arn"] == first["pipeline_execution_arn"]
    assert len(trigger.executions()) == 1
    records = trigger.dynamodb.scan(TableName=TABLE)["Items"]
    idempotency = [r for r in records if r["id"]["S"].startswith(f"retrain-event#{PIPELINE}#")]
    assert len(idempotency) == 1 and idempotency[0]["status"]["S"] == "COMPLETED"
    decisions = [
        dims["decision"]
        for dims in emf_records(capsys.readouterr().out)
        if dims["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BoostlineTest"
        and "RetrainDecision" in dims
    ]
    assert decisions == ["started", "duplicate"]


def test_redelivery_after_the_idempotency_record_expired_still_starts_no_second_run(
    trigger: Trigger,
) -> None:
    first = trigger(sample_event("s3"))
    for item in trigger.dynamodb.scan(TableName=TABLE)["Items"]:
        if not item["id"]["S"].startswith("retrain-state#"):
            trigger.dynamodb.delete_item(TableName=TABLE, Key={"id": item["id"]})

    trigger.clock.advance(7200)
    again = trigger(sample_event("s3"))

    assert again["decision"] == "duplicate"
    assert first["pipeline_execution_arn"] in again["why"]
    assert len(trigger.executions()) == 1


# --- one run at a time -----------------------------------------------------------------


def test_a_running_pipeline_blocks_a_second_run_until_it_finishes(trigger: Trigger) -> None:
    running = trigger.sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken="manual-run-0000000000000000000000000000"
    )["PipelineExecutionArn"]
    trigger.set_status(running, "Executing")

    busy = trigger(s3_event())

    assert busy["decision"] == "busy"
    assert busy["running_executions"] == [running]
    assert busy["pending"]["files"] == 1
    assert [e["PipelineExecutionArn"] for e in trigger.executions()] == [running]

    trigger.set_status(running, "Stopping")
    assert trigger(sample_event("monitoring"))["decision"] == "busy"
    assert len(trigger.executions()) == 1

    trigger.set_status(running, "Succeeded")
    finished = sample_event("pipeline", id=new_id())
    finished["detail"]["pipelineExecutionArn"] = running
    result = trigger(finished)

    assert result["decision"] == "started"
    assert result["trigger_reason"] == (
        "drift: model-monitoring-202611120100-abc123; new-data: 1 file"
    )
    assert len(trigger.executions()) == 2


def test_pipeline_finished_with_nothing_pending_is_ignored(trigger: Trigger) -> None:
    result = trigger(sample_event("pipeline"))

    assert result["decision"] == "ignored"
    assert result["why"] == "pipeline finished; no pending work"
    assert trigger.executions() == []


def test_a_concurrent_start_wins_and_the_other_invocation_is_busy(trigger: Trigger) -> None:
    """Two invocations decide at once: the state item's version lets only one start."""
    app = trigger.app
    original = app.running_executions
    calls = 0

    def racing(sagemaker: Any, pipeline_name: str) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:  # another invocation starts a run while this one is deciding
            assert trigger(sample_event("schedule", id=new_id()))["decision"] == "started"
            return []
        return original(sagemaker, pipeline_name)

    app.running_executions = racing
    result = trigger(sample_event("schedule"))

    assert result["decision"] == "busy"
    assert len(trigger.executions()) == 1


# --- debounce ------------------------------------------------------------------------


def test_new_data_below_the_threshold_is_pending_until_a_later_event(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_NEW_FILES", "3")

    first = trigger(s3_event("raw/a.csv"))
    second = trigger(s3_event("raw/b.csv"))

    assert (first["decision"], second["decision"]) == ("debounced", "debounced")
    assert second["pending"] == {"files": 2, "bytes": 2048, "drift": []}
    assert trigger.executions() == []
    assert trigger.state()["pending_files"]["N"] == "2"

    third = trigger(s3_event("raw/c.csv"))

    assert third["decision"] == "started"
    assert third["trigger_reason"] == "new-data: 3 files"
    [execution] = trigger.executions()
    assert trigger.parameters(execution["PipelineExecutionArn"])["TriggerReason"] == (
        "new-data: 3 files"
    )
    assert third["pending"]["files"] == 0


def test_the_schedule_starts_the_pending_new_data(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_NEW_FILES", "3")
    trigger(s3_event("raw/a.csv"))
    trigger(s3_event("raw/b.csv"))

    result = trigger(sample_event("schedule"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "schedule; new-data: 2 files"
    [execution] = trigger.executions()
    assert trigger.parameters(execution["PipelineExecutionArn"])["TriggerReason"] == (
        "schedule; new-data: 2 files"
    )


def test_runs_are_at_least_the_minimum_interval_apart(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_INTERVAL_SECONDS", "3600")
    assert trigger(s3_event("raw/a.csv"))["decision"] == "started"
    trigger.set_status(trigger.executions()[0]["PipelineExecutionArn"], "Succeeded")

    trigger.clock.advance(600)
    soon = trigger(s3_event("raw/b.csv"))
    assert soon["decision"] == "debounced"
    assert "minimum interval" in soon["why"]

    trigger.clock.advance(3000)
    later = trigger(s3_event("raw/c.csv"))
    assert later["decision"] == "started"
    assert later["trigger_reason"] == "new-data: 2 files"
    assert len(trigger.executions()) == 2


def test_work_that_waited_for_a_run_starts_when_it_ends(
    trigger: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The minimum interval throttles events while idle, not work a run held back."""
    monkeypatch.setenv("MIN_INTERVAL_SECONDS", "3600")
    assert trigger(s3_event("raw/a.csv"))["decision"] == "started"
    running = trigger.executions()[0]["PipelineExecutionArn"]
    trigger.set_status(running, "Executing")
    trigger.clock.advance(900)
    waiting = trigger(s3_event("raw/b.csv"))
    assert waiting["decision"] == "debounced"  # within the interval; kept as pending
    assert waiting["pending"]["files"] == 1

    trigger.clock.advance(900)  # the run ends 30 minutes after it started
    trigger.set_status(running, "Succeeded")
    finished = sample_event("pipeline", id=new_id())
    finished["detail"]["pipelineExecutionArn"] = running
    result = trigger(finished)

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "new-data: 1 file"
    assert len(trigger.executions()) == 2


def test_bytes_can_be_the_threshold(trigger: Trigger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_NEW_FILES", "0")
    monkeypatch.setenv("MIN_NEW_BYTES", str(2 * 1048576))

    assert trigger(sample_event("s3"))["decision"] == "debounced"  # 1 MiB
    result = trigger(s3_event("raw/big.csv", size=1048576))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "new-data: 2 files"


# --- monitoring, alarms, schedule ------------------------------------------------------


def test_a_monitoring_violation_starts_a_run_with_its_job_as_the_reason(
    trigger: Trigger,
) -> None:
    result = trigger(sample_event("monitoring"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "drift: model-monitoring-202611120100-abc123"
    [execution] = trigger.executions()
    parameters = trigger.parameters(execution["PipelineExecutionArn"])
    assert parameters["TriggerReason"] == "drift: model-monitoring-202611120100-abc123"


def test_our_own_monitors_violations_start_a_run(trigger: Trigger) -> None:
    result = trigger(sample_event("own_monitoring"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "drift: loan-default-endpoint data-quality"


def _own_run(**detail: Any) -> dict[str, Any]:
    event = sample_event("own_monitoring", id=new_id())
    for key, value in detail.items():
        if value is None:
            del event["detail"][key]
        else:
            event["detail"][key] = value
    return event


@pytest.mark.parametrize(
    "event",
    [
        _own_run(status="Completed", violations=0),
        _own_run(status="InsufficientData", violations=0),
        _own_run(violations=0),
        _own_run(violations=True),
        _own_run(violations="3"),
        _own_run(violations=None),
        _own_run(endpoint="another-endpoint"),
        _own_run(endpoint="\x00" * 8),
        _own_run(monitor="bias"),
    ],
)
def test_own_monitor_events_without_violations_or_with_garbage_start_nothing(
    trigger: Trigger, event: dict[str, Any]
) -> None:
    result = trigger(event)
    assert result["decision"] == "ignored"
    assert trigger.executions() == []


def test_a_drift_alarm_starts_a_run_with_the_alarm_as_the_reason(trigger: Trigger) -> None:
    result = trigger(sample_event("alarm"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "drift: loan-default-feature-drift"
    [execution] = trigger.executions()
    assert trigger.parameters(execution["PipelineExecutionArn"])["TriggerReason"] == (
        "drift: loan-default-feature-drift"
    )


def test_the_schedule_alone_starts_a_run(trigger: Trigger) -> None:
    result = trigger(sample_event("schedule"))

    assert result["decision"] == "started"
    assert result["trigger_reason"] == "schedule"
    assert len(trigger.executions()) == 1


def test_champion_model_data_url_is_the_newest_approved_package(trigger: Trigger) -> None:
    register(trigger.sagemaker, "Approved", "s3://artifacts/models/v1/model.tar.gz")
    register(trigger.sagemaker, "Approved", "s3://artifacts/models/v2/model.tar.gz")
    register(trigger.sagemaker, "Rejected", "s3://artifacts/models/v3/model.tar.gz")
    register(trigger.sagemaker, "PendingManualApproval", "s3://artifacts/models/v4/model.tar.gz")

    result = trigger(sample_event("schedule"))

    assert result["champion_model_data_url"] == "s3://artifacts/models/v2/model.tar.gz"
    parameters = trigger.parameters(result["pipeline_execution_arn"])
    assert parameters["ChampionModelDataUrl"] == "s3://artifacts/models/v2/model.tar.gz"


# --- what is ignored ---------------------------------------------------------------------


def _variant(kind: str, path: list[str], value: Any) -> dict[str, Any]:
    event = sample_event(kind, id=new_id())
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return event


IGNORED_EVENTS = {
    "model package event": lambda: sample_event("model_package"),
    "pipeline still executing": lambda: _variant(
        "pipeline", ["detail", "currentPipelineExecutionStatus"], "Executing"
    ),
    "another pipeline": lambda: _variant(
        "pipeline",
        ["detail", "pipelineArn"],
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/someone-elses-pipeline",
    ),
    "monitoring without violations": lambda: _variant(
        "monitoring", ["detail", "ExitMessage"], "Completed: Job completed successfully."
    ),
    "a processing job that is not monitoring": lambda: _variant(
        "monitoring", ["detail", "MonitoringScheduleArn"], None
    ),
    "alarm back to OK": lambda: _variant("alarm", ["detail", "state", "value"], "OK"),
    "object in another bucket": lambda: _variant(
        "s3", ["detail", "bucket", "name"], "another-bucket"
    ),
    "object outside the raw prefix": lambda: _variant(
        "s3", ["detail", "object", "key"], "processed/train/part-0.csv"
    ),
    "folder marker": lambda: _variant("s3", ["detail", "object", "key"], "raw/2026/"),
    "no detail": lambda: {"id": new_id(), "source": "aws.s3", "detail-type": "Object Created"},
    "unknown source": lambda: {"id": new_id(), "source": "custom.app", "detail-type": "Ping"},
    "not an EventBridge event": lambda: {"Records": [{"eventSource": "aws:sqs"}]},
    "not a dict": lambda: ["unexpected"],
}


NUL = "\x00" * 16

# Events of the real shapes with one field the trigger uses set to garbage.
GARBAGE_EVENTS = {
    "monitoring schedule ARN of NUL bytes": lambda: _variant(
        "monitoring", ["detail", "MonitoringScheduleArn"], NUL
    ),
    "monitoring schedule ARN not a string": lambda: _variant(
        "monitoring", ["detail", "MonitoringScheduleArn"], ["arn"]
    ),
    "monitoring schedule ARN of another service": lambda: _variant(
        "monitoring",
        ["detail", "MonitoringScheduleArn"],
        f"arn:aws:s3:{REGION}:{ACCOUNT}:monitoring-schedule/loan-default-data-quality",
    ),
    "monitoring schedule name with a NUL byte": lambda: _variant(
        "monitoring",
        ["detail", "MonitoringScheduleArn"],
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/loan\x00default",
    ),
    "monitoring job name of NUL bytes": lambda: _variant(
        "monitoring", ["detail", "ProcessingJobName"], NUL
    ),
    "monitoring job name missing": lambda: _variant(
        "monitoring", ["detail", "ProcessingJobName"], None
    ),
    "object size None": lambda: _variant("s3", ["detail", "object", "size"], None),
    "object size true": lambda: _variant("s3", ["detail", "object", "size"], True),
    "object size a string": lambda: _variant("s3", ["detail", "object", "size"], "1024"),
    "object size negative": lambda: _variant("s3", ["detail", "object", "size"], -1),
    "object size a fraction": lambda: _variant("s3", ["detail", "object", "size"], 1.5),
    "object size over 5 TiB": lambda: _variant("s3", ["detail", "object", "size"], 2**60),
    "object size a mapping": lambda: _variant("s3", ["detail", "object", "size"], {}),
    "object key with a NUL byte": lambda: _variant(
        "s3", ["detail", "object", "key"], f"raw/{NUL}.csv"
    ),
    "object key over 1024 bytes": lambda: _variant(
        "s3", ["detail", "object", "key"], "raw/" + "a" * 1024
    ),
    "alarm name of NUL bytes": lambda: _variant("alarm", ["detail", "alarmName"], NUL),
    "alarm name with a newline": lambda: _variant(
        "alarm", ["detail", "alarmName"], "loan-default-feature-drift\nforged log line"
    ),
    "schedule rule ARN of NUL bytes": lambda: _variant("schedule", ["resources"], [NUL]),
    "schedule without resources": lambda: _variant("schedule", ["resources"], []),
    "schedule resource not a string": lambda: _variant("schedule", ["resources"], [7]),
    "pipeline ARN of NUL bytes": lambda: _variant("pipeline", ["detail", "pipelineArn"], NUL),
    "pipeline execution ARN of NUL bytes": lambda: _variant(
        "pipeline", ["detail", "pipelineExecutionArn"], NUL
    ),
    "pipeline execution ARN missing": lambda: _variant(
        "pipeline", ["detail", "pipelineExecutionArn"], None
    ),
    "pipeline execution of another pipeline": lambda: _variant(
        "pipeline",
        ["detail", "pipelineExecutionArn"],
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/other/execution/p4jn9xou8a8s",
    ),
    "event id of NUL bytes": lambda: {**sample_event("schedule"), "id": NUL},
}


@pytest.mark.parametrize("name", sorted(IGNORED_EVENTS | GARBAGE_EVENTS))
def test_events_it_does_not_act_on_are_ignored_with_a_log_line(
    trigger: Trigger, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = trigger((IGNORED_EVENTS | GARBAGE_EVENTS)[name]())

    assert result["decision"] == "ignored"
    assert result["why"]
    assert trigger.executions() == []
    assert trigger.dynamodb.scan(TableName=TABLE)["Items"] == []  # no state, no idempotency
    out = capsys.readouterr().out
    [line] = [r for r in log_records(out) if r.get("message") == "retrain decision: ignored"]
    assert line["retrain"]["why"] == result["why"]
    assert line["service"] == "retrain-trigger"
    [metric] = [m for m in emf_records(out) if "RetrainDecision" in m]
    assert metric["decision"] == "ignored"
    [dimensions] = metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions) == ["decision", "service"]
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BoostlineTest"
    assert "\x00" not in result["why"] and "\n" not in result["why"]


# --- failures --------------------------------------------------------------------------


def test_a_failed_start_raises_restores_the_state_and_a_retry_starts_it(
    trigger: Trigger,
) -> None:
    sagemaker = trigger.app.client("sagemaker")
    real_start = sagemaker.start_pipeline_execution

    def throttled(**kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ResourceLimitExceeded", "Message": "too many executions"}},
            "StartPipelineExecution",
        )

    sagemaker.start_pipeline_execution = throttled
    event = sample_event("s3")
    with pytest.raises(ClientError, match="too many executions"):
        trigger(event)

    # The state is as before the event (the retry adds the event's file again).
    state = trigger.state()
    assert state["pending_files"]["N"] == "0"
    assert "last_started_at" not in state
    assert state["last_event_id"]["S"] == ""
    assert trigger.executions() == []

    sagemaker.start_pipeline_execution = real_start
    retried = trigger(sample_event("s3"))  # the same event, retried by Lambda

    assert retried["decision"] == "started"
    assert retried["trigger_reason"] == "new-data: 1 file"
    assert len(trigger.executions()) == 1


def test_a_missing_pipeline_is_a_real_failure(trigger: Trigger) -> None:
    trigger.sagemaker.delete_pipeline(PipelineName=PIPELINE, ClientRequestToken="x" * 32)
    with pytest.raises(ClientError):
        trigger(sample_event("schedule"))


def test_missing_configuration_raises(trigger: Trigger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_NAME")
    with pytest.raises(trigger.app.ConfigurationError, match="PIPELINE_NAME"):
        trigger(sample_event("schedule"))


def test_the_handler_runs_without_a_lambda_context(trigger: Trigger) -> None:
    bind_output(trigger.app)
    assert trigger.app.lambda_handler(sample_event("schedule"))["decision"] == "started"


# --- the pure decision -----------------------------------------------------------------


@pytest.fixture
def decide_module() -> ModuleType:
    return load_module(LAMBDA_DIR / "retrain_trigger" / "decide.py", name="decide")


def test_decide_asks_for_running_executions_only_when_it_would_start(
    decide_module: ModuleType,
) -> None:
    classify = sys.modules["classify"]
    asked = []

    def running() -> bool:
        asked.append(True)
        return True

    thresholds = decide_module.Thresholds(min_new_files=5)
    decision = decide_module.decide(
        classify.NewData(bucket=BUCKET, key="raw/a.csv", size=10),
        decide_module.State(),
        now=100.0,
        event_id="e1",
        thresholds=thresholds,
        pipeline_running=running,
    )
    assert decision.action == "debounced"
    assert asked == []

    decision = decide_module.decide(
        classify.Schedule(rule="monthly"),
        decision.state,
        now=100.0,
        event_id="e2",
        thresholds=thresholds,
        pipeline_running=running,
    )
    assert decision.action == "busy"
    assert decision.state.pending_files == 1
    assert asked == [True]


def test_decide_keeps_at_most_ten_drift_reasons_and_shortens_long_reasons(
    decide_module: ModuleType,
) -> None:
    classify = sys.modules["classify"]
    state = decide_module.State()
    for index in range(15):
        state = decide_module.with_signal(
            state, classify.Drift(source=f"alarm-{index:02d}-" + "x" * 30, via="alarm"), 1.0
        )
    assert len(state.pending_drift) == decide_module.MAX_PENDING_DRIFT
    reason = decide_module.trigger_reason(state, schedule=False)
    assert len(reason) <= decide_module.MAX_REASON_LENGTH
    assert reason.startswith("drift: alarm-05-")


# --- a failed execution: the script's own reason reaches the person ----------------------

EXECUTION = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/p4jn9xou8a8s"
TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOGS = "/aws/sagemaker/ProcessingJobs"
GENERIC = (
    'AlgorithmError: ExecuteUserScriptError:\nCommand "/miniconda3/bin/python3 -m train '
    '--eta 0.1 --max_depth 6 --num_round 200"'
)
SHARDS = (
    "the train channel holds 1 file for 2 training instances: ShardedByS3Key leaves a host "
    "without data; write at least 2 files or train on 1 instance"
)
STARTED_AT = datetime.now(timezone.utc) - timedelta(minutes=20)
JOB_ARN_TYPES = {
    "TrainingJob": "training-job",
    "TuningJob": "hyper-parameter-tuning-job",
    "ProcessingJob": "processing-job",
}


def failed_event(execution_arn: str = EXECUTION) -> dict[str, Any]:
    event = sample_event("pipeline", id=new_id())
    event["detail"]["currentPipelineExecutionStatus"] = "Failed"
    event["detail"]["pipelineExecutionArn"] = execution_arn
    return event


def step(
    name: str,
    status: str = "Failed",
    *,
    job_type: str = "",
    job: str = "",
    reason: str = GENERIC,
    fail_message: str = "",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "StepName": name,
        "StepStatus": status,
        "StartTime": STARTED_AT,
        "EndTime": STARTED_AT + timedelta(minutes=5),
        "AttemptCount": 1,
        "Metadata": {},
    }
    if status == "Failed" and reason:
        entry["FailureReason"] = reason
    if job_type:
        # SageMaker writes job names in ARNs in lower case; the log streams keep the case.
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{JOB_ARN_TYPES[job_type]}/{job.lower()}"
        entry["Metadata"][job_type] = {"Arn": arn}
    if fail_message:
        entry["Metadata"]["Fail"] = {"ErrorMessage": fail_message}
    return entry


class StepsStub:
    """ListPipelineExecutionSteps, which moto does not implement, through botocore's Stubber.

    Only that call is stubbed: every other SageMaker call of the handler still goes to moto.
    """

    def __init__(self, trigger: Trigger):
        self.client = boto3.client("sagemaker", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()
        sagemaker = trigger.app.client("sagemaker")
        sagemaker.list_pipeline_execution_steps = self.client.list_pipeline_execution_steps

    def page(
        self,
        steps: list[dict[str, Any]],
        *,
        token: str | None = None,
        next_token: str | None = None,
        execution_arn: str = EXECUTION,
    ) -> None:
        expected: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": 100}
        if token:
            expected["NextToken"] = token
        response: dict[str, Any] = {"PipelineExecutionSteps": steps}
        if next_token:
            response["NextToken"] = next_token
        self.stubber.add_response("list_pipeline_execution_steps", response, expected)


@pytest.fixture
def steps(trigger: Trigger) -> Iterator[StepsStub]:
    stub = StepsStub(trigger)
    yield stub
    stub.stubber.assert_no_pending_responses()


def job_log(group: str, stream: str, *lines: str, start: datetime = STARTED_AT) -> None:
    """Log lines of a job in moto's CloudWatch Logs, one event per line, a second apart."""
    logs = boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    first = int(start.timestamp() * 1000) + 60_000
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": first + index * 1000, "message": line} for index, line in enumerate(lines)
        ],
    )


def filter_requests(trigger: Trigger) -> list[dict[str, Any]]:
    """The FilterLogEvents requests the handler's logs client sends (recorded, not changed)."""
    requests: list[dict[str, Any]] = []
    trigger.app.client("logs").meta.events.register(
        "provide-client-params.logs.FilterLogEvents",
        lambda params, **_: requests.append(dict(params)),
    )
    return requests


def errors(out: str) -> list[dict[str, Any]]:
    return [r for r in log_records(out) if r.get("level") == "ERROR"]


@pytest.mark.parametrize(
    ("job_type", "job", "group", "stream"),
    [
        (
            "TrainingJob",
            "pipelines-p4jn9xou8a8s-Train-Kq2Ws9aB1c",
            TRAINING_LOGS,
            "pipelines-p4jn9xou8a8s-Train-Kq2Ws9aB1c/algo-1-1795000000",
        ),
        (
            "TuningJob",
            "p4jn9xou8a8s-Tune-a1b2c3d4e5",
            TRAINING_LOGS,
            "p4jn9xou8a8s-Tune-a1b2c3d4e5-001-6f0c2a1e/algo-1-1795000000",
        ),
        (
            "ProcessingJob",
            "pipelines-p4jn9xou8a8s-Preprocess-Zx81",
            PROCESSING_LOGS,
            "pipelines-p4jn9xou8a8s-Preprocess-Zx81/algo-1-1795000000",
        ),
    ],
)
def test_a_failed_execution_reports_the_scripts_own_reason_once_and_records_it(
    trigger: Trigger,
    steps: StepsStub,
    capsys: pytest.CaptureFixture[str],
    job_type: str,
    job: str,
    group: str,
    stream: str,
) -> None:
    job_log(
        group,
        stream,
        "INFO boostline: reading /opt/ml/input/data/train",
        f"Boostline failure: {SHARDS}",
        "Traceback (most recent call last):",
    )
    steps.page([step("Preprocess", "Succeeded"), step("Work", job_type=job_type, job=job)])
    requests = filter_requests(trigger)

    result = trigger(failed_event())

    assert result["decision"] == "ignored"  # nothing was pending
    failure = result["pipeline_failure"]
    assert failure["reason"] == f"Work: {SHARDS}"
    [work] = failure["steps"]
    assert work["failure_reason"] == " ".join(GENERIC.split())  # SageMaker's, kept alongside
    assert (work["job_type"], work["job_name"], work["log_group"]) == (
        job_type,
        job.lower(),
        group,
    )
    assert work["log_stream"] == stream
    [request] = requests
    assert request["logGroupName"] == group
    # The stream prefix is matched without case in the handler (the ARN's name is lower
    # case, the stream's is not), so it is not sent; the step's window narrows instead.
    assert "logStreamNamePrefix" not in request
    assert request["filterPattern"] == '"Boostline failure:"'
    assert request["startTime"] == int(STARTED_AT.timestamp() * 1000) - 60_000
    assert request["endTime"] == int(STARTED_AT.timestamp() * 1000) + 5 * 60_000 + 60_000

    out = capsys.readouterr().out
    [error] = errors(out)
    assert error["message"] == f"pipeline execution p4jn9xou8a8s failed: Work: {SHARDS}"
    assert error["pipeline_failure"]["execution_arn"] == EXECUTION
    [decision] = [r for r in log_records(out) if r.get("message") == "retrain decision: ignored"]
    assert decision["retrain"]["pipeline_failure"]["reason"] == f"Work: {SHARDS}"
    state = trigger.state()
    assert state["last_failed_execution_arn"]["S"] == EXECUTION
    assert state["last_failure_reason"]["S"] == f"Work: {SHARDS}"
    assert float(state["last_failed_at"]["N"]) == trigger.clock.now


def test_a_redelivered_failure_event_is_reported_once(
    trigger: Trigger, steps: StepsStub, capsys: pytest.CaptureFixture[str]
) -> None:
    steps.page([step("Evaluate", reason="ClientError: the evaluation found no test rows")])
    event = failed_event()

    first = trigger(event)
    second = trigger(json.loads(json.dumps(event)))  # the same event id, delivered again

    assert second["decision"] == "duplicate"
    assert second["pipeline_failure"] == first["pipeline_failure"]
    assert len(errors(capsys.readouterr().out)) == 1


def test_the_reason_comes_from_the_failed_job_and_the_host_that_failed_of_its_own_accord(
    trigger: Trigger, steps: StepsStub
) -> None:
    tuning = "p4jn9xou8a8s-Tune-a1b2c3d4e5"
    # The peer lost its connection first and says so; the cause is on algo-1.
    job_log(
        TRAINING_LOGS,
        f"{tuning}-001-6f0c2a1e/algo-2-1795000000",
        "Boostline failure: [algo-2] collective communication failed: Connection reset by peer",
        start=STARTED_AT - timedelta(seconds=30),
    )
    job_log(
        TRAINING_LOGS, f"{tuning}-001-6f0c2a1e/algo-1-1795000000", f"Boostline failure: {SHARDS}"
    )
    # Another tuning job whose name extends this one's: not this execution's.
    job_log(
        TRAINING_LOGS,
        f"{tuning}x-001-00000000/algo-1-1795000000",
        "Boostline failure: another job's reason",
        start=STARTED_AT - timedelta(minutes=1),
    )
    steps.page([step("Tune", job_type="TuningJob", job=tuning, reason="No training job succeeded")])

    result = trigger(failed_event())

    assert result["pipeline_failure"]["reason"] == f"Tune: {SHARDS}"
    assert result["pipeline_failure"]["steps"][0]["log_stream"].endswith("/algo-1-1795000000")


def test_without_logs_the_reason_is_sagemakers_failure_reason(
    trigger: Trigger, steps: StepsStub, capsys: pytest.CaptureFixture[str]
) -> None:
    steps.page([step("Train", job_type="TrainingJob", job="pipelines-p4jn9xou8a8s-Train-1")])

    result = trigger(failed_event())  # no log group at all: moto has none yet

    failure = result["pipeline_failure"]
    assert failure["reason"] == f"Train: {' '.join(GENERIC.split())}"
    assert "ResourceNotFoundException" in failure["steps"][0]["note"]
    [error] = errors(capsys.readouterr().out)
    assert "ExecuteUserScriptError" in error["message"]
    assert trigger.state()["last_failure_reason"]["S"] == failure["reason"]


def test_logs_without_the_scripts_line_leave_sagemakers_failure_reason(
    trigger: Trigger, steps: StepsStub
) -> None:
    job = "pipelines-p4jn9xou8a8s-Train-2"
    job_log(TRAINING_LOGS, f"{job}/algo-1-1795000000", "Killed", "MemoryError")
    steps.page([step("Train", job_type="TrainingJob", job=job, reason="OutOfMemory: ...")])

    result = trigger(failed_event())

    [train] = result["pipeline_failure"]["steps"]
    assert train["script_reason"] == ""
    assert "no 'Boostline failure:' line" in train["note"]
    assert result["pipeline_failure"]["reason"] == "Train: OutOfMemory: ..."


def test_a_fail_step_reports_its_error_message(trigger: Trigger, steps: StepsStub) -> None:
    message = "TrainingInstanceCount 4 is above the 2 train shards"
    steps.page([step("CheckShards", reason="", fail_message=message)])

    result = trigger(failed_event())

    assert result["pipeline_failure"]["reason"] == f"CheckShards: {message}"


def test_steps_that_cannot_be_listed_still_leave_a_recorded_failure(
    trigger: Trigger, steps: StepsStub, capsys: pytest.CaptureFixture[str]
) -> None:
    steps.stubber.add_client_error(
        "list_pipeline_execution_steps",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: sagemaker:ListPipelineExecutionSteps",
        http_status_code=400,
    )

    result = trigger(failed_event())

    assert result["decision"] == "ignored"
    reason = result["pipeline_failure"]["reason"]
    assert reason.startswith("reason unavailable (ListPipelineExecutionSteps: AccessDenied")
    [error] = errors(capsys.readouterr().out)
    assert reason in error["message"]
    assert trigger.state()["last_failure_reason"]["S"] == reason


def test_an_emulator_without_the_steps_api_still_records_the_failure(
    trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto (the local runtime's emulator) does not implement ListPipelineExecutionSteps."""
    result = trigger(failed_event())

    assert result["decision"] == "ignored"
    assert "NotImplementedError" in result["pipeline_failure"]["reason"]
    out = capsys.readouterr().out
    assert len(errors(out)) == 1
    assert [r["level"] for r in log_records(out)].count("WARNING") == 1
    assert trigger.state()["last_failed_execution_arn"]["S"] == EXECUTION


def test_the_lookup_reads_at_most_two_pages_of_steps(trigger: Trigger, steps: StepsStub) -> None:
    steps.page([step("Preprocess", "Succeeded")], next_token="page-2")
    steps.page([step("Tune", "Succeeded")], token="page-2", next_token="page-3")

    result = trigger(failed_event())  # a third page would be an unstubbed call

    assert result["pipeline_failure"]["reason"] == "reason unavailable (no failed step listed)"


def test_the_lookup_reads_the_logs_of_at_most_three_jobs(
    trigger: Trigger, steps: StepsStub
) -> None:
    jobs = [f"pipelines-p4jn9xou8a8s-Train-{n}" for n in range(5)]
    for job in jobs:
        job_log(TRAINING_LOGS, f"{job}/algo-1-1795000000", f"Boostline failure: {job} failed")
    steps.page([step(f"Train{n}", job_type="TrainingJob", job=job) for n, job in enumerate(jobs)])
    requests = filter_requests(trigger)

    result = trigger(failed_event())

    assert len(requests) == 3
    found = result["pipeline_failure"]["steps"]
    assert [s["script_reason"] for s in found[:3]] == [f"{job} failed" for job in jobs[:3]]
    assert [s["note"] for s in found[3:]] == ["not read: lookup limit reached"] * 2
    assert found[3]["failure_reason"]  # SageMaker's reason is still there


def test_the_lookup_reads_at_most_two_pages_of_log_events(
    trigger: Trigger, steps: StepsStub
) -> None:
    """FilterLogEvents may answer empty pages with a token while it searches; moto never does."""
    job = "pipelines-p4jn9xou8a8s-Train-3"
    steps.page([step("Train", job_type="TrainingJob", job=job)])
    logs = trigger.app.client("logs")
    stubber = Stubber(logs)
    for token in ("t1", "t2"):
        stubber.add_response("filter_log_events", {"events": [], "nextToken": token})
    with stubber:
        result = trigger(failed_event())
    stubber.assert_no_pending_responses()  # exactly the two pages

    [train] = result["pipeline_failure"]["steps"]
    assert "no 'Boostline failure:' line" in train["note"]


def test_the_lookup_stops_when_its_time_budget_is_spent(trigger: Trigger, steps: StepsStub) -> None:
    job = "pipelines-p4jn9xou8a8s-Train-4"
    job_log(TRAINING_LOGS, f"{job}/algo-1-1795000000", f"Boostline failure: {SHARDS}")
    steps.page([step("Train", job_type="TrainingJob", job=job)])
    slow = FakeClock(0.0)
    trigger.app.monotonic = lambda: (slow.advance(15.0), slow())[1]  # each look costs 15 s

    result = trigger(failed_event())

    [train] = result["pipeline_failure"]["steps"]
    assert train["note"] == "not read: lookup limit reached"
    assert result["pipeline_failure"]["reason"].startswith("Train: AlgorithmError")


def test_a_succeeded_or_stopped_execution_is_not_looked_into(
    trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Any] = []
    sagemaker = trigger.app.client("sagemaker")
    sagemaker.list_pipeline_execution_steps = lambda **kwargs: calls.append(kwargs)

    for status in ("Succeeded", "Stopped"):
        event = failed_event()
        event["detail"]["currentPipelineExecutionStatus"] = status
        result = trigger(event)
        assert "pipeline_failure" not in result

    assert calls == []
    assert errors(capsys.readouterr().out) == []
    assert trigger.state() is None  # nothing changed, nothing written


def test_work_held_back_by_a_failed_run_starts_and_the_failure_stays_recorded(
    trigger: Trigger, steps: StepsStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_INTERVAL_SECONDS", "0")
    assert trigger(sample_event("schedule"))["decision"] == "started"
    running = trigger.executions()[0]["PipelineExecutionArn"]
    trigger.set_status(running, "Executing")
    trigger.clock.advance(600)
    assert trigger(s3_event())["decision"] == "busy"
    trigger.set_status(running, "Failed")
    steps.page([step("Evaluate", reason="AlgorithmError: see the logs")], execution_arn=running)

    result = trigger(failed_event(running))

    assert result["decision"] == "started"
    assert result["pipeline_failure"]["execution_arn"] == running
    state = trigger.state()
    assert state["last_failed_execution_arn"]["S"] == running
    assert state["last_failure_reason"]["S"] == "Evaluate: AlgorithmError: see the logs"
    assert state["last_execution_arn"]["S"] == result["pipeline_execution_arn"]

    trigger.clock.advance(600)
    trigger.set_status(result["pipeline_execution_arn"], "Executing")
    later = trigger(s3_event("raw/later.csv"))  # a later decision keeps the failure
    assert later["decision"] == "busy"
    assert trigger.state()["last_failure_reason"]["S"] == "Evaluate: AlgorithmError: see the logs"
