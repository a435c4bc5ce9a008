"""A Lambda function run locally has each boto3 call checked against its role's synthesized
policy: allowed as synthesized (the local table name mapped onto the deployed one), and
denied, naming the role, the action and the resource, when the grant is gone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from boostline.local import events
from boostline.local.access_checks import StageAccess
from boostline.local.assembly import Assembly, open_assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.handlers import LocalFunction
from boostline.local.iam import AccessDenied

REGION = "eu-west-1"
PIPELINE = "boostline-dev-training"
# Not the deployed table's name (boostline-dev-retrain-state), as in the demo's emulator.
LOCAL_TABLE = "boostline-dev-retrain-idempotency"
ENV = {
    "PIPELINE_NAME": PIPELINE,
    "MODEL_PACKAGE_GROUP": "boostline-dev-models",
    "RAW_BUCKET": f"boostline-dev-raw-{ACCOUNT}-{REGION}",
    "RAW_PREFIX": "raw/",
    "IDEMPOTENCY_TABLE": LOCAL_TABLE,
    "MIN_NEW_FILES": "1",
    "MIN_INTERVAL_SECONDS": "0",
    "POWERTOOLS_SERVICE_NAME": "retrain-trigger",
    "POWERTOOLS_METRICS_NAMESPACE": "BoostlineTest",
}


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=LOCAL_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("sagemaker", region_name=REGION).create_pipeline(
            PipelineName=PIPELINE,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/boostline-dev-pipeline",
        )
        yield


def _schedule() -> dict:
    return events.scheduled(REGION, "boostline-dev-retrain-schedule")


def test_the_retrain_triggers_calls_are_checked_and_allowed(
    emulated: None, dev_assembly: Assembly, tmp_path: Path
) -> None:
    with StageAccess(dev_assembly, account=ACCOUNT, region=REGION) as access:
        function = LocalFunction("retrain_trigger", ENV, log_dir=tmp_path, access=access)
        assert function.invoke(_schedule())["decision"] == "started"
        assert function.accesses_checked >= 3  # idempotency record, listing, the start
        checked, allowed = access.counts()["boostline-dev-retrain-trigger"]
        assert checked == allowed == function.accesses_checked
        tables = {
            d.access.resource
            for d in access.checker.decisions
            if d.access.action == "dynamodb:PutItem"
        }
        assert tables == {f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/boostline-dev-retrain-state"}


def test_without_start_pipeline_execution_the_invocation_is_denied(
    emulated: None, dev_assembly: Assembly, tmp_path: Path
) -> None:
    target = tmp_path / "assembly"
    shutil.copytree(dev_assembly.dir, target, symlinks=True)
    path = target / "Automation.template.json"
    template = json.loads(path.read_text())
    policy = template["Resources"]["RetrainTriggerRoleDefaultPolicyD6D31E77"]
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "sagemaker:StartPipelineExecution" in statement["Action"]:
            statement["Action"].remove("sagemaker:StartPipelineExecution")
    path.write_text(json.dumps(template))
    with StageAccess(open_assembly(target), account=ACCOUNT, region=REGION) as access:
        function = LocalFunction("retrain_trigger", ENV, log_dir=tmp_path, access=access)
        with pytest.raises(AccessDenied) as denied:
            function.invoke(_schedule())
    assert str(denied.value).startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/boostline-dev-retrain-trigger/"
        "boostline-dev-retrain-trigger is not authorized to perform: "
        f"sagemaker:StartPipelineExecution on resource: arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
        f"pipeline/{PIPELINE} because no identity-based policy allows"
    )
