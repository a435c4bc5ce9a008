"""The deployer against moto (SageMaker registry, CloudFormation, SSM for the stack's resources)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from lambda_test_helpers import (
    ACCOUNT,
    REGION,
    FakeClock,
    FakeContext,
    bind_output,
    emf_records,
    load_handler,
    log_records,
    new_id,
    sample_event,
)

GROUP = "loan-default"  # the names in the sample events
STACK = "loan-default-serving"
LIVE_MODEL_SSM = "/boostline/test/live-model"
SERVING_TEMPLATE = {
    "Parameters": {
        "ModelPackageArn": {"Type": "String", "Default": "none"},
        "BaselineStatisticsUri": {"Type": "String", "Default": "none"},
        "BaselineConstraintsUri": {"Type": "String", "Default": "none"},
        "DecisionThreshold": {"Type": "String", "Default": "0.5"},
        "InstanceType": {"Type": "String", "Default": "ml.m5.large"},
    },
    "Conditions": {"HasModel": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPackageArn"}, "none"]}]}},
    "Resources": {
        # Cheap stand-ins for the serving resources: one always there, one only with a model.
        "InstanceTypeRecord": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Type": "String",
                "Name": "/boostline/test/instance-type",
                "Value": {"Ref": "InstanceType"},
            },
        },
        "LiveModelRecord": {
            "Type": "AWS::SSM::Parameter",
            "Condition": "HasModel",
            "Properties": {
                "Type": "String",
                "Name": LIVE_MODEL_SSM,
                "Value": {"Ref": "ModelPackageArn"},
            },
        },
    },
}


@dataclass
class Deployer:
    app: ModuleType
    deploy: ModuleType
    sagemaker: Any
    cfn: Any
    ssm: Any
    clock: FakeClock
    context: FakeContext

    def __call__(self, event: Any) -> dict[str, Any]:
        bind_output(self.app)
        return self.app.lambda_handler(event, self.context)

    def parameters(self) -> dict[str, str]:
        stack = self.cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}

    def live_record(self) -> str | None:
        try:
            return self.ssm.get_parameter(Name=LIVE_MODEL_SSM)["Parameter"]["Value"]
        except ClientError:
            return None

    def register(
        self,
        status: str,
        *,
        threshold: str | None = "0.4",
        container_threshold: str | None = None,
        drift_baselines: bool = True,
        model_metrics: bool = False,
    ) -> str:
        version = len(self.versions()) + 1
        base = f"s3://example-artifacts-bucket/models/v{version}"
        container: dict[str, Any] = {
            "Image": "example/xgboost:3.0-5",
            "ModelDataUrl": f"{base}/model.tar.gz",
        }
        if container_threshold is not None:
            container["Environment"] = {"BOOSTLINE_DECISION_THRESHOLD": container_threshold}
        request: dict[str, Any] = {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [container],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        }
        quality = {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{base}/statistics.json"},
            "Constraints": {"ContentType": "application/json", "S3Uri": f"{base}/constraints.json"},
        }
        if drift_baselines:
            request["DriftCheckBaselines"] = {"ModelDataQuality": quality}
        if model_metrics:
            request["ModelMetrics"] = {
                "ModelDataQuality": {
                    key: {**value, "S3Uri": value["S3Uri"].replace(".json", "-metrics.json")}
                    for key, value in quality.items()
                }
            }
        if threshold is not None:
            request["CustomerMetadataProperties"] = {"decision_threshold": threshold}
        return self.sagemaker.create_model_package(**request)["ModelPackageArn"]

    def versions(self) -> list[dict[str, Any]]:
        page = self.sagemaker.list_model_packages(ModelPackageGroupName=GROUP)
        return page["ModelPackageSummaryList"]

    def set_status(self, arn: str, status: str) -> None:
        self.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)

    def set_stack_status(self, status: str) -> None:
        """moto's stacks never fail; a real update can leave them in a state like this."""
        from moto.cloudformation.models import cloudformation_backends

        stacks = cloudformation_backends[ACCOUNT][REGION].stacks
        [stack] = [stack for stack in stacks.values() if stack.name == STACK]
        stack.status = status


def package_event(arn: str, status: str, group: str = GROUP) -> dict[str, Any]:
    event = sample_event("model_package", id=new_id())
    detail = event["detail"]
    detail["ModelPackageArn"] = arn
    detail["ModelPackageVersion"] = int(arn.rsplit("/", 1)[-1])
    detail["ModelApprovalStatus"] = status
    detail["ModelPackageGroupName"] = group
    event["resources"] = [arn]
    return event


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PACKAGE_GROUP", GROUP)
    monkeypatch.setenv("SERVING_STACK_NAME", STACK)
    monkeypatch.setenv("DEPLOY_RETRY_SECONDS", "120")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "deployer")
    monkeypatch.delenv("ON_REJECT_WITHOUT_FALLBACK", raising=False)


@pytest.fixture
def deployer(moto: None, settings_env: None) -> Deployer:
    cfn = boto3.client("cloudformation", region_name=REGION)
    # Every parameter is passed explicitly: moto's UsePreviousValue only knows the
    # values given at creation, not the defaults (real CloudFormation knows both).
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(SERVING_TEMPLATE),
        Parameters=[
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in {
                "ModelPackageArn": "none",
                "BaselineStatisticsUri": "none",
                "BaselineConstraintsUri": "none",
                "DecisionThreshold": "0.5",
                "InstanceType": "ml.c5.xlarge",
            }.items()
        ],
    )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    app = load_handler("deployer")
    clock = FakeClock()
    app.sleep = clock.sleep
    app.monotonic = clock
    return Deployer(
        app=app,
        deploy=app.deploy_module,
        sagemaker=sagemaker,
        cfn=cfn,
        ssm=boto3.client("ssm", region_name=REGION),
        clock=clock,
        context=FakeContext(remaining_ms=900_000),
    )


class BusyStack:
    """The CloudFormation client, except that UpdateStack finds the stack busy `times` times."""

    def __init__(self, cfn: Any, times: int):
        self._cfn = cfn
        self.times = times
        self.calls = 0

    def update_stack(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack:arn:aws:cloudformation:{REGION}:123456789012:stack/"
                        f"{STACK}/1 is in UPDATE_IN_PROGRESS state and can not be updated.",
                    }
                },
                "UpdateStack",
            )
        return self._cfn.update_stack(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfn, name)


# --- approval ----------------------------------------------------------------------------


def test_approval_deploys_the_package_through_the_serving_stack(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    deployer.register("Approved", threshold="0.31")
    deployer.register("Approved", threshold="0.35")
    v3 = deployer.register("Approved", threshold="0.42")
    event = sample_event("model_package")  # version 3 of loan-default, Approved
    assert event["detail"]["ModelPackageArn"] == v3

    result = deployer(event)

    assert result["decision"] == "deployed"
    assert deployer.parameters() == {
        "ModelPackageArn": v3,
        "BaselineStatisticsUri": "s3://example-artifacts-bucket/models/v3/statistics.json",
        "BaselineConstraintsUri": "s3://example-artifacts-bucket/models/v3/constraints.json",
        "DecisionThreshold": "0.42",
        "InstanceType": "ml.c5.xlarge",  # kept with UsePreviousValue
    }
    assert deployer.live_record() == v3  # the conditional resource now exists
    assert result["deployment"]["previous_model_package_arn"] == "none"
    out = capsys.readouterr().out
    [metric] = [m for m in emf_records(out) if "DeployDecision" in m]
    assert metric["decision"] == "deployed"
    [line] = [r for r in log_records(out) if r.get("message") == "deploy decision: deployed"]
    assert line["deploy"]["deployment"]["model_package_arn"] == v3


def test_a_redelivered_approval_is_a_successful_no_op(deployer: Deployer) -> None:
    v1 = deployer.register("Approved", threshold="0.4")
    assert deployer(package_event(v1, "Approved"))["decision"] == "deployed"

    again = deployer(package_event(v1, "Approved"))

    assert again["decision"] == "unchanged"
    assert deployer.parameters()["ModelPackageArn"] == v1


def test_baselines_fall_back_to_model_metrics(deployer: Deployer) -> None:
    v1 = deployer.register("Approved", threshold="0.27", drift_baselines=False, model_metrics=True)

    deployer(package_event(v1, "Approved"))

    parameters = deployer.parameters()
    assert parameters["BaselineStatisticsUri"].endswith("/v1/statistics-metrics.json")
    assert parameters["BaselineConstraintsUri"].endswith("/v1/constraints-metrics.json")
    assert parameters["DecisionThreshold"] == "0.27"


def test_an_approval_of_an_older_version_does_not_replace_a_newer_one(
    deployer: Deployer,
) -> None:
    v1 = deployer.register("Approved")
    v2 = deployer.register("Approved")
    deployer(package_event(v2, "Approved"))

    result = deployer(package_event(v1, "Approved"))  # e.g. its metadata was edited

    assert result["decision"] == "ignored"
    assert "version 2 is the newest Approved" in result["why"]
    assert deployer.parameters()["ModelPackageArn"] == v2


def test_a_stale_approval_event_is_ignored(deployer: Deployer) -> None:
    v1 = deployer.register("Rejected")

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "ignored"
    assert "stale" in result["why"]
    assert deployer.parameters()["ModelPackageArn"] == "none"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda arn: package_event(arn, "Approved", group="other-group"), id="group"),
        pytest.param(lambda arn: package_event(arn, "PendingManualApproval"), id="pending"),
        pytest.param(lambda arn: sample_event("s3"), id="s3"),
        pytest.param(lambda arn: {"id": "x", "detail-type": DETAIL}, id="no-source"),
        pytest.param(lambda arn: None, id="none"),
    ],
)
def test_other_events_are_ignored(deployer: Deployer, event: Any) -> None:
    v1 = deployer.register("Approved")

    result = deployer(event(v1))

    assert result["decision"] == "ignored"
    assert result["why"]
    assert deployer.parameters()["ModelPackageArn"] == "none"


DETAIL = "SageMaker Model Package State Change"


# --- rejection ----------------------------------------------------------------------------


def test_rejecting_the_live_version_rolls_back_to_the_previous_approved_one(
    deployer: Deployer,
) -> None:
    v1 = deployer.register("Approved", threshold="0.33")
    v2 = deployer.register("Approved", threshold="0.44", drift_baselines=False)
    v3 = deployer.register("Approved", threshold="0.55")
    deployer(package_event(v3, "Approved"))
    deployer.set_status(v2, "Rejected")  # not live: nothing happens
    assert deployer(package_event(v2, "Rejected"))["decision"] == "ignored"
    assert deployer.parameters()["ModelPackageArn"] == v3

    deployer.set_status(v3, "Rejected")
    result = deployer(package_event(v3, "Rejected"))

    assert result["decision"] == "rolled-back"
    assert result["deployment"]["previous_model_package_arn"] == v3
    parameters = deployer.parameters()
    assert parameters["ModelPackageArn"] == v1  # v2 is rejected too
    assert parameters["DecisionThreshold"] == "0.33"
    assert parameters["BaselineStatisticsUri"].endswith("/v1/statistics.json")
    assert deployer.live_record() == v1


def test_rejecting_the_only_version_keeps_it_live_and_logs_an_error(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = deployer.register("Approved")
    deployer(package_event(v1, "Approved"))
    deployer.set_status(v1, "Rejected")

    result = deployer(package_event(v1, "Rejected"))

    assert result["decision"] == "rollback-impossible"
    assert deployer.parameters()["ModelPackageArn"] == v1
    out = capsys.readouterr().out
    [error] = [r for r in log_records(out) if r.get("level") == "ERROR"]
    assert "STAYS LIVE" in error["message"]
    assert error["model_package_arn"] == v1
    [metric] = [m for m in emf_records(out) if m.get("decision") == "rollback-impossible"]
    assert metric["DeployDecision"] == [1.0]


def test_rejecting_the_only_version_can_undeploy_when_configured(
    deployer: Deployer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ON_REJECT_WITHOUT_FALLBACK", "undeploy")
    v1 = deployer.register("Approved")
    deployer(package_event(v1, "Approved"))
    deployer.set_status(v1, "Rejected")

    result = deployer(package_event(v1, "Rejected"))

    assert result["decision"] == "undeployed"
    parameters = deployer.parameters()
    assert parameters["ModelPackageArn"] == "none"
    assert parameters["BaselineStatisticsUri"] == "none"
    assert parameters["InstanceType"] == "ml.c5.xlarge"
    # (moto keeps a resource whose condition turned false on update, so the stand-in
    # resource is not checked here; CloudFormation deletes it.)


# --- stack busy ----------------------------------------------------------------------------


def test_an_update_in_progress_is_retried_with_backoff_until_it_succeeds(
    deployer: Deployer,
) -> None:
    v1 = deployer.register("Approved", threshold="0.4")
    busy = BusyStack(deployer.app.client("cloudformation"), times=3)
    deployer.app._clients["cloudformation"] = busy

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "deployed"
    assert result["deployment"]["attempts"] == 4
    assert busy.calls == 4
    assert deployer.clock.sleeps == [5.0, 10.0, 20.0]
    assert deployer.parameters()["ModelPackageArn"] == v1


def test_a_newer_approval_while_waiting_for_a_busy_stack_wins(deployer: Deployer) -> None:
    v1 = deployer.register("Approved")
    busy = BusyStack(deployer.app.client("cloudformation"), times=2)
    deployer.app._clients["cloudformation"] = busy
    v2: list[str] = []
    deployer.clock.on_sleep = lambda: v2 or v2.append(deployer.register("Approved"))

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "superseded"
    assert busy.calls == 1  # no update after the newer version appeared
    assert deployer.parameters()["ModelPackageArn"] == "none"
    assert deployer(package_event(v2[0], "Approved"))["decision"] == "deployed"
    assert deployer.parameters()["ModelPackageArn"] == v2[0]


def test_a_stack_busy_for_longer_than_the_budget_raises_so_the_event_is_retried(
    deployer: Deployer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_RETRY_SECONDS", "60")
    v1 = deployer.register("Approved")
    busy = BusyStack(deployer.app.client("cloudformation"), times=1000)
    deployer.app._clients["cloudformation"] = busy
    deploy = deployer.deploy
    with pytest.raises(deploy.StackBusy, match="UPDATE_IN_PROGRESS"):
        deployer(package_event(v1, "Approved"))

    assert sum(deployer.clock.sleeps) == pytest.approx(60)
    assert deployer.clock.sleeps[:4] == [5.0, 10.0, 20.0, 25.0]
    assert deployer.parameters()["ModelPackageArn"] == "none"


def test_the_retry_budget_leaves_time_before_the_lambda_timeout(deployer: Deployer) -> None:
    settings = deployer.app.Settings.from_env()
    backoff = deployer.app._backoff(settings, FakeContext(remaining_ms=50_000))
    assert backoff.budget_seconds == pytest.approx(30.0)


def test_a_missing_serving_stack_is_a_permanent_error(deployer: Deployer) -> None:
    v1 = deployer.register("Approved")
    deployer.cfn.delete_stack(StackName=STACK)

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "permanent-error"
    assert "does not exist" in result["why"]
    assert deployer.clock.sleeps == []


# --- errors no retry can cure ----------------------------------------------------------------


class RefusingStack:
    """The CloudFormation client, except that UpdateStack fails with `code` and `message`."""

    def __init__(self, cfn: Any, code: str, message: str):
        self._cfn = cfn
        self.error = {"Error": {"Code": code, "Message": message}}
        self.calls = 0

    def update_stack(self, **kwargs: Any) -> Any:
        self.calls += 1
        raise ClientError(self.error, "UpdateStack")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfn, name)


def permanent_error(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one ERROR line and the one metric of a permanent-error decision."""
    [error] = [r for r in log_records(out) if r.get("level") == "ERROR"]
    [metric] = [m for m in emf_records(out) if m.get("decision") == "permanent-error"]
    assert metric["DeployDecision"] == [1.0]
    assert metric["service"] == "deployer"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BoostlineTest"
    assert error["message"].startswith("deploy decision: permanent-error: ")
    return error, metric


def test_an_approval_for_a_package_that_does_not_exist_is_not_retried(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    deployer.register("Approved")
    missing = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/7"

    result = deployer(package_event(missing, "Approved"))  # returns: no retry, no DLQ

    assert result["decision"] == "permanent-error"
    assert result["why"].startswith("DescribeModelPackage: ValidationException: ")
    assert missing in result["why"]
    error, _ = permanent_error(capsys.readouterr().out)
    assert result["why"] in error["message"]
    assert error["deploy"]["error"] == "ValidationException"
    assert error["model_package_arn"] == missing
    assert deployer.parameters()["ModelPackageArn"] == "none"
    assert deployer.clock.sleeps == []


def test_a_validation_error_from_cloudformation_is_not_retried(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = deployer.register("Approved")
    refusing = RefusingStack(
        deployer.app.client("cloudformation"),
        "ValidationError",
        "Parameter DecisionThreshold failed to satisfy constraint: Malformed input-Parameter "
        "DecisionThreshold must match pattern ^(0(\\.\\d+)?|1(\\.0+)?)$",
    )
    deployer.app._clients["cloudformation"] = refusing

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "permanent-error"
    assert result["why"].startswith("UpdateStack: ValidationError: Parameter DecisionThreshold")
    assert refusing.calls == 1
    assert deployer.clock.sleeps == []
    permanent_error(capsys.readouterr().out)


def test_a_throttled_request_still_raises_so_the_event_is_retried(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = deployer.register("Approved")
    deployer.app._clients["cloudformation"] = RefusingStack(
        deployer.app.client("cloudformation"), "Throttling", "Rate exceeded"
    )

    with pytest.raises(ClientError, match="Rate exceeded"):
        deployer(package_event(v1, "Approved"))

    out = capsys.readouterr().out
    [metric] = [m for m in emf_records(out) if "DeployDecision" in m]
    assert metric["decision"] == "error"


@pytest.mark.parametrize(
    ("status", "recovery"),
    [
        ("UPDATE_ROLLBACK_FAILED", "ContinueUpdateRollback"),
        ("ROLLBACK_COMPLETE", "cdk deploy"),
    ],
)
def test_a_stuck_serving_stack_names_its_state_and_the_recovery(
    deployer: Deployer, capsys: pytest.CaptureFixture[str], status: str, recovery: str
) -> None:
    v1 = deployer.register("Approved")
    deployer.set_stack_status(status)

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "permanent-error"
    assert result["stack_status"] == status
    assert recovery in result["recovery"]
    assert f"is in {status}" in result["why"] and recovery in result["why"]
    assert deployer.clock.sleeps == []  # never waited for as if it were busy
    error, _ = permanent_error(capsys.readouterr().out)
    assert status in error["message"] and recovery in error["message"]
    assert deployer.parameters()["ModelPackageArn"] == "none"


def test_a_stack_that_gets_stuck_between_describe_and_update_is_recognised(
    deployer: Deployer,
) -> None:
    v1 = deployer.register("Approved")
    refusing = RefusingStack(
        deployer.app.client("cloudformation"),
        "ValidationError",
        f"Stack:arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/1 is in "
        "UPDATE_ROLLBACK_FAILED state and can not be updated.",
    )
    deployer.app._clients["cloudformation"] = refusing

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "permanent-error"
    assert result["error"] == "StackStuck"
    assert "ContinueUpdateRollback" in result["recovery"]
    assert refusing.calls == 1
    assert deployer.clock.sleeps == []


def test_the_cli_functions_raise_stack_stuck(deployer: Deployer) -> None:
    deployer.register("Approved")
    deployer.set_stack_status("UPDATE_ROLLBACK_FAILED")

    with pytest.raises(deployer.deploy.StackStuck, match="continue-update-rollback"):
        deployer.deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, 1)
    assert deployer.parameters()["ModelPackageArn"] == "none"


# --- the decision threshold -------------------------------------------------------------------


def test_a_package_without_a_decision_threshold_is_refused_not_served_at_half(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = deployer.register("Approved", threshold=None)

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "permanent-error"
    assert "no decision_threshold" in result["why"]
    assert deployer.parameters()["ModelPackageArn"] == "none"
    assert deployer.parameters()["DecisionThreshold"] == "0.5"  # the stack's, untouched
    error, _ = permanent_error(capsys.readouterr().out)
    assert "update-model-package" in error["message"]


def test_an_older_package_serves_the_threshold_in_its_container(deployer: Deployer) -> None:
    # Versions registered before the metadata carried the threshold hold it in the
    # inference container's environment, where the pipeline always wrote it.
    v1 = deployer.register("Approved", threshold=None, container_threshold="0.33")

    result = deployer(package_event(v1, "Approved"))

    assert result["decision"] == "deployed"
    assert deployer.parameters()["ModelPackageArn"] == v1
    assert deployer.parameters()["DecisionThreshold"] == "0.33"


def test_a_package_without_a_threshold_does_not_replace_the_live_model(
    deployer: Deployer,
) -> None:
    v1 = deployer.register("Approved", threshold="0.38")
    deployer(package_event(v1, "Approved"))
    v2 = deployer.register("Approved", threshold=None)

    result = deployer(package_event(v2, "Approved"))

    assert result["decision"] == "permanent-error"
    assert deployer.parameters()["ModelPackageArn"] == v1
    assert deployer.parameters()["DecisionThreshold"] == "0.38"


def test_a_rollback_target_without_a_threshold_leaves_the_rejected_model_live(
    deployer: Deployer, capsys: pytest.CaptureFixture[str]
) -> None:
    deployer.register("Approved", threshold=None)  # registered before thresholds were
    v2 = deployer.register("Approved", threshold="0.41")
    deployer(package_event(v2, "Approved"))
    deployer.set_status(v2, "Rejected")

    result = deployer(package_event(v2, "Rejected"))

    assert result["decision"] == "permanent-error"
    assert "no decision_threshold" in result["why"]
    assert deployer.parameters()["ModelPackageArn"] == v2
    permanent_error(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("raw", "served"), [("0.42", "0.42"), (" 0.3125 ", "0.3125"), ("1E-3", "0.001"), (".5", "0.5")]
)
def test_the_threshold_reaches_the_stack_as_a_plain_decimal(
    deployer: Deployer, raw: str, served: str
) -> None:
    v1 = deployer.register("Approved", threshold=raw)

    assert deployer(package_event(v1, "Approved"))["decision"] == "deployed"
    assert deployer.parameters()["DecisionThreshold"] == served


# --- the functions the CLI reuses -------------------------------------------------------------


def test_rollback_to_a_version_and_to_none(deployer: Deployer) -> None:
    deploy = deployer.deploy
    v1 = deployer.register("Approved", threshold="0.3")
    v2 = deployer.register("Approved", threshold="0.6")
    deploy.deploy_model_package(deployer.cfn, deployer.sagemaker, STACK, v2)
    assert deployer.parameters()["ModelPackageArn"] == v2

    result = deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, 1, wait=True)

    assert result.status == deploy.UPDATING
    assert result.stack_status == "UPDATE_COMPLETE"
    assert result.previous_model_package_arn == v2
    assert deployer.parameters()["ModelPackageArn"] == v1
    assert deployer.parameters()["DecisionThreshold"] == "0.3"

    none = deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, "none")
    assert none.model_package_arn == "none"
    assert deployer.parameters()["ModelPackageArn"] == "none"


def test_rollback_refuses_versions_that_are_not_approved_or_do_not_exist(
    deployer: Deployer,
) -> None:
    deploy = deployer.deploy
    deployer.register("Approved")
    deployer.register("Rejected")

    with pytest.raises(deploy.DeployError, match="version 2 .* is Rejected"):
        deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, 2)
    with pytest.raises(deploy.DeployError, match="no version 7"):
        deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, 7)
    with pytest.raises(deploy.DeployError, match="number or 'none'"):
        deploy.rollback_to(deployer.cfn, deployer.sagemaker, STACK, GROUP, "latest")
    assert deployer.parameters()["ModelPackageArn"] == "none"


def test_deploy_refuses_a_package_that_is_not_approved(deployer: Deployer) -> None:
    pending = deployer.register("PendingManualApproval")
    with pytest.raises(deployer.deploy.DeployError, match="PendingManualApproval"):
        deployer.deploy.deploy_model_package(deployer.cfn, deployer.sagemaker, STACK, pending)


@pytest.mark.parametrize("threshold", ["high", "1.5", "0", "1", "-0.2", "nan", "inf", " "])
def test_an_invalid_threshold_is_refused(deployer: Deployer, threshold: str) -> None:
    v1 = deployer.register("Approved", threshold=threshold)
    with pytest.raises(deployer.deploy.DeployError, match="decision_threshold"):
        deployer.deploy.deploy_model_package(deployer.cfn, deployer.sagemaker, STACK, v1)
    assert deployer.parameters()["ModelPackageArn"] == "none"

    result = deployer(package_event(v1, "Approved"))  # the handler: reported, not retried
    assert result["decision"] == "permanent-error"
    assert "decision_threshold" in result["why"]


def test_update_parameters_keep_every_other_parameter() -> None:
    from lambda_test_helpers import LAMBDA_DIR, load_module

    deploy = load_module(LAMBDA_DIR / "deployer" / "deploy.py", name="deploy_under_test")
    parameters = deploy.update_parameters(
        ["ModelPackageArn", "InstanceType", "BootstrapVersion"], {"ModelPackageArn": "arn:x"}
    )
    assert parameters == [
        {"ParameterKey": "ModelPackageArn", "ParameterValue": "arn:x"},
        {"ParameterKey": "InstanceType", "UsePreviousValue": True},
        {"ParameterKey": "BootstrapVersion", "UsePreviousValue": True},
    ]
    with pytest.raises(deploy.DeployError, match="DecisionThreshold"):
        deploy.update_parameters(["ModelPackageArn"], {"DecisionThreshold": "0.5"})


# --- the monitoring stack follows the serving stack ---------------------------------------

MONITORING_STACK = "loan-default-monitoring"
MONITORING_TEMPLATE = {
    "Parameters": {
        name: SERVING_TEMPLATE["Parameters"][name]
        for name in (
            "ModelPackageArn",
            "BaselineStatisticsUri",
            "BaselineConstraintsUri",
            "DecisionThreshold",
        )
    },
    "Resources": {
        "Marker": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Type": "String", "Name": "/boostline/test/monitored", "Value": "x"},
        }
    },
}


def _monitoring_stack(deployer: Deployer) -> dict[str, str]:
    stack = deployer.cfn.describe_stacks(StackName=MONITORING_STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


@pytest.fixture
def with_monitoring(deployer: Deployer, monkeypatch: pytest.MonkeyPatch) -> Deployer:
    monkeypatch.setenv("MONITORING_STACK_NAME", MONITORING_STACK)
    deployer.cfn.create_stack(
        StackName=MONITORING_STACK,
        TemplateBody=json.dumps(MONITORING_TEMPLATE),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v["Default"]}
            for k, v in MONITORING_TEMPLATE["Parameters"].items()
        ],
    )
    return deployer


def _settled(status: str = "UPDATE_COMPLETE", stack: str = STACK) -> dict[str, Any]:
    event = sample_event("stack", id=new_id())
    arn = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/6a1f0e70"
    event["detail"]["stack-id"] = arn
    event["detail"]["status-details"]["status"] = status
    return event


def test_a_completed_serving_update_copies_the_live_model_to_the_monitoring_stack(
    with_monitoring: Deployer,
) -> None:
    deployer = with_monitoring
    v1 = deployer.register("Approved", threshold="0.37")
    assert deployer(package_event(v1, "Approved"))["decision"] == "deployed"
    assert _monitoring_stack(deployer)["ModelPackageArn"] == "none"  # not before it is live

    result = deployer(_settled())

    assert result["decision"] == "monitoring-updated"
    assert _monitoring_stack(deployer) == {
        k: v for k, v in deployer.parameters().items() if k != "InstanceType"
    }
    assert _monitoring_stack(deployer)["DecisionThreshold"] == "0.37"
    assert deployer(_settled())["decision"] == "monitoring-unchanged"  # a redelivery


@pytest.mark.parametrize(
    "event",
    [
        _settled("UPDATE_IN_PROGRESS"),
        _settled("UPDATE_FAILED"),
        _settled(stack="another-stack"),
        _settled(stack=MONITORING_STACK),  # its own updates never loop back
        _settled("CREATE_COMPLETE"),  # the serving stack's creation holds no model
    ],
)
def test_other_stack_events_change_nothing(with_monitoring: Deployer, event: Any) -> None:
    assert with_monitoring(event)["decision"] == "ignored"
    assert _monitoring_stack(with_monitoring)["ModelPackageArn"] == "none"


def test_without_a_monitoring_stack_a_settled_serving_stack_is_ignored(
    deployer: Deployer,
) -> None:
    result = deployer(_settled())
    assert result["decision"] == "ignored" and "MONITORING_STACK_NAME" in result["why"]


def test_a_monitoring_stack_created_after_the_model_went_live_gets_it(
    deployer: Deployer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_STACK_NAME", MONITORING_STACK)
    v1 = deployer.register("Approved", threshold="0.33")
    assert deployer(package_event(v1, "Approved"))["decision"] == "deployed"
    # The serving update completes before the monitoring stack exists: nothing to copy to.
    early = deployer(_settled())
    assert early["decision"] == "ignored" and "does not exist" in early["why"]
    deployer.cfn.create_stack(
        StackName=MONITORING_STACK,
        TemplateBody=json.dumps(MONITORING_TEMPLATE),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v["Default"]}
            for k, v in MONITORING_TEMPLATE["Parameters"].items()
        ],
    )
    # Its creation event copies the live model.
    assert deployer(_settled("CREATE_COMPLETE", stack=MONITORING_STACK))["decision"] == (
        "monitoring-updated"
    )
    assert _monitoring_stack(deployer)["ModelPackageArn"] == v1
