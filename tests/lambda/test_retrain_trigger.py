"""The retrain trigger against moto (SageMaker pipelines and registry, DynamoDB)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
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


@pytest.mark.parametrize("name", sorted(IGNORED_EVENTS))
def test_events_it_does_not_act_on_are_ignored_with_a_log_line(
    trigger: Trigger, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = trigger(IGNORED_EVENTS[name]())

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
