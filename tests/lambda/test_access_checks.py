"""The handlers' boto3 calls are checked against their function's synthesized policy: a
retrain trigger whose role lost sagemaker:StartPipelineExecution fails with AccessDenied."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import iam_stage
import pytest
from lambda_test_helpers import (
    ACCOUNT,
    REGION,
    FakeContext,
    bind_output,
    check_handler_calls,
    load_handler,
    new_id,
    sample_event,
)

from boostline.local.iam import AccessDenied, CallRecorder

PIPELINE = "boostline-dev-training"  # the deployed names: no renaming in this test
TABLE = "boostline-dev-automation-RetrainState95848E6C"


def retrain_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    environment = {
        "PIPELINE_NAME": PIPELINE,
        "MODEL_PACKAGE_GROUP": "boostline-dev-models",
        "RAW_BUCKET": f"boostline-dev-raw-{ACCOUNT}-{REGION}",
        "RAW_PREFIX": "raw/",
        "IDEMPOTENCY_TABLE": TABLE,
        "MIN_NEW_FILES": "1",
        "MIN_NEW_BYTES": "0",
        "MIN_INTERVAL_SECONDS": "3600",
        "POWERTOOLS_SERVICE_NAME": "retrain-trigger",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/boostline-dev-pipeline",
    )
    app = load_handler("retrain_trigger")
    event = sample_event("s3", id=new_id())
    event["detail"]["bucket"]["name"] = environment["RAW_BUCKET"]
    event["detail"]["object"]["key"] = "raw/loans/applications-0002.csv"
    with CallRecorder() as recorder:
        bind_output(app)
        app.lambda_handler(event, FakeContext())
    assert sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]
    return recorder.calls


def test_the_retrain_triggers_calls_are_all_allowed(moto: None, monkeypatch) -> None:
    calls = retrain_calls(monkeypatch)
    assert check_handler_calls(calls, iam_stage.rendered()) >= 3


def test_without_start_pipeline_execution_the_trigger_is_denied(moto: None, monkeypatch) -> None:
    template = copy.deepcopy(iam_stage.template("Automation"))
    policy = template["Resources"]["RetrainTriggerRoleDefaultPolicyD6D31E77"]
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "sagemaker:StartPipelineExecution" in statement["Action"]:
            statement["Action"].remove("sagemaker:StartPipelineExecution")
    mutated = iam_stage.rendered({"Automation": template})
    calls = retrain_calls(monkeypatch)
    with pytest.raises(AccessDenied) as denied:
        check_handler_calls(calls, mutated)
    pipeline = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
    assert str(denied.value).startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/boostline-dev-retrain-trigger/"
        "boostline-dev-retrain-trigger is not authorized to perform: "
        f"sagemaker:StartPipelineExecution on resource: {pipeline} because no "
        "identity-based policy allows the sagemaker:StartPipelineExecution action"
    )
