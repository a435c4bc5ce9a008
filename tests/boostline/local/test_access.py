"""Accesses of the pipeline's jobs and the endpoint, checked against the synthesized policies
with the real IAM evaluator (@cloud-copilot/iam-simulate): all allowed as synthesized, and a
dropped grant is denied naming the role, the action and the resource."""

from __future__ import annotations

import copy
from typing import Any

import iam_stage
import pytest

from boostline.local.iam import (
    RULES,
    Access,
    AccessChecker,
    AccessDenied,
    Stage,
    UnresolvedRequest,
    accesses_for_request,
    request_role,
)
from boostline.local.iam.stage import bucket_keys

JOBS = [
    ("PreprocessFit", "Processing"),
    ("Preprocess", "Processing"),
    ("Tune", "Tuning"),
    ("Evaluate", "Processing"),
]


@pytest.fixture(scope="module")
def stacks() -> dict[str, Any]:
    return iam_stage.rendered()


@pytest.fixture(scope="module")
def definition(stacks: dict[str, Any]) -> dict[str, Any]:
    return iam_stage.pipeline_definition(stacks)


def stage_of(stacks: dict[str, Any]) -> Stage:
    return Stage(
        iam_stage.ACCOUNT, iam_stage.REGION, bucket_keys=bucket_keys(stacks), list_objects=listed
    )


def listed(bucket: str, prefix: str) -> list[str]:
    """What an S3Prefix input's listing finds: the fit step's output is a folder of every
    host's partials; any other prefix stands for one object, the prefix itself."""
    if prefix.endswith("/fit"):
        return [f"{prefix}/fit-algo-1.json", f"{prefix}/fit-algo-2.json"]
    return [prefix]


def checker_of(stacks: dict[str, Any]) -> AccessChecker:
    return AccessChecker(iam_stage.evaluator(), stacks, account=iam_stage.ACCOUNT)


def test_every_rule_names_its_aws_page() -> None:
    assert len({rule.rule for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.doc.startswith("https://docs.aws.amazon.com/"), rule.rule
        assert rule.actions and rule.kinds


@pytest.mark.parametrize(("step", "kind"), JOBS)
def test_each_job_is_allowed_every_access_sagemaker_makes(
    stacks: dict[str, Any], definition: dict[str, Any], step: str, kind: str
) -> None:
    request = iam_stage.resolve_step(definition, step)
    role = request_role(kind, request)
    accesses = accesses_for_request(kind, request, stage_of(stacks), name=f"{step.lower()}-1")
    decisions = checker_of(stacks).evaluate(role, accesses, session="SageMaker")
    denied = [(d.access.action, d.access.resource) for d in decisions if not d.allowed]
    assert denied == []
    actions = {a.action for a in accesses}
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "kms:Decrypt"} <= actions
    assert {"kms:GenerateDataKey", "ecr:BatchGetImage", "logs:PutLogEvents"} <= actions


@pytest.mark.parametrize(("step", "inputs"), [("PreprocessFit", 3), ("Preprocess", 4)])
def test_the_preprocess_requests_list_their_inputs_with_their_prefix(
    stacks: dict[str, Any], definition: dict[str, Any], step: str, inputs: int
) -> None:
    request = iam_stage.resolve_step(definition, step)
    assert request_role("Processing", request) == "boostline-dev-preprocess"
    lists = [
        (a.resource, a.context["s3:prefix"])
        for a in accesses_for_request("Processing", request, stage_of(stacks))
        if a.action == "s3:ListBucket"
    ]
    raw = f"arn:aws:s3:::boostline-dev-raw-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    assert (raw, "raw/") in lists
    assert len(lists) == inputs  # code, schema, data (and the fit step's partials)
    processed = f"arn:aws:s3:::boostline-dev-processed-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    fit = (processed, f"runs/{iam_stage.EXECUTION_ID}/fit")
    assert (fit in lists) == (step == "Preprocess")


def test_without_reading_the_fit_partials_the_encode_step_is_denied(
    definition: dict[str, Any],
) -> None:
    template = copy.deepcopy(iam_stage.template("Pipeline"))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            statements[:] = [s for s in statements if s.get("Sid") != "ListFitPartials"]
    mutated = iam_stage.rendered({"Pipeline": template})
    checker = checker_of(mutated)
    fit_request = iam_stage.resolve_step(definition, "PreprocessFit")
    # the fit step reads no partials: it is allowed without them
    checker.check(
        "boostline-dev-preprocess",
        accesses_for_request("Processing", fit_request, stage_of(mutated)),
        session="SageMaker",
    )
    request = iam_stage.resolve_step(definition, "Preprocess")
    with pytest.raises(AccessDenied) as denied:
        checker.check(
            "boostline-dev-preprocess",
            accesses_for_request("Processing", request, stage_of(mutated)),
            session="SageMaker",
        )
    processed = f"arn:aws:s3:::boostline-dev-processed-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    assert f"s3:ListBucket on resource: {processed} because" in str(denied.value)
    # ... and the role lists nothing else of the processed bucket
    [decision] = checker_of(iam_stage.rendered()).evaluate(
        "boostline-dev-preprocess",
        [Access("s3:ListBucket", processed, {"s3:prefix": "runs/execution-1/train"})],
    )
    assert decision.result == "ImplicitlyDenied"


def test_without_list_bucket_the_preprocess_step_is_denied_naming_action_and_bucket(
    definition: dict[str, Any],
) -> None:
    template = copy.deepcopy(iam_stage.template("Pipeline"))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            statements[:] = [s for s in statements if s.get("Sid") != "ListRawData"]
    mutated = iam_stage.rendered({"Pipeline": template})
    request = iam_stage.resolve_step(definition, "Preprocess")
    accesses = accesses_for_request("Processing", request, stage_of(mutated))
    with pytest.raises(AccessDenied) as denied:
        checker_of(mutated).check("boostline-dev-preprocess", accesses, session="SageMaker")
    bucket = f"arn:aws:s3:::boostline-dev-raw-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    assert str(denied.value).startswith(
        f"User: arn:aws:sts::{iam_stage.ACCOUNT}:assumed-role/boostline-dev-preprocess/SageMaker"
        f" is not authorized to perform: s3:ListBucket on resource: {bucket} because no "
        "identity-based policy allows the s3:ListBucket action"
    )
    assert denied.value.role == "boostline-dev-preprocess"


def test_a_list_outside_the_granted_asset_prefixes_is_denied(stacks: dict[str, Any]) -> None:
    asset_bucket = f"arn:aws:s3:::cdk-hnb659fds-assets-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    [decision] = checker_of(stacks).evaluate(
        "boostline-dev-preprocess", [Access("s3:ListBucket", asset_bucket, {"s3:prefix": ""})]
    )
    assert decision.result == "ImplicitlyDenied"


def test_the_endpoint_reads_its_model_and_writes_its_capture(stacks: dict[str, Any]) -> None:
    artifacts = f"boostline-dev-artifacts-{iam_stage.ACCOUNT}-{iam_stage.REGION}"
    serving = iam_stage.template("Serving")
    model = serving["Resources"]["Model"]["Properties"]
    config = serving["Resources"]["EndpointConfig"]["Properties"]
    key = next(iter(bucket_keys(stacks).values()))
    request = {
        "Model": {
            "ExecutionRoleArn": f"arn:aws:iam::{iam_stage.ACCOUNT}:role/boostline-dev-endpoint",
            "Containers": [
                {
                    "ModelPackageName": f"arn:aws:sagemaker:{iam_stage.REGION}:"
                    f"{iam_stage.ACCOUNT}:model-package/boostline-dev-models/1"
                }
            ],
        },
        "ModelPackage": {
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/"
                        "sagemaker-xgboost:3.0-5",
                        "ModelDataUrl": f"s3://{artifacts}/models/e-1/t-1/output/model.tar.gz",
                        "Environment": {
                            "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{artifacts}/runs/e-1/code/"
                            "sourcedir.tar.gz"
                        },
                    }
                ]
            }
        },
        "EndpointConfig": {
            "DataCaptureConfig": {
                **config["DataCaptureConfig"],
                "DestinationS3Uri": f"s3://boostline-dev-capture-{iam_stage.ACCOUNT}-"
                f"{iam_stage.REGION}/capture",
                "KmsKeyId": key,
            },
            "ProductionVariants": [{"VariantName": "AllTraffic"}],
        },
    }
    assert "ModelPackageName" in model["Containers"][0]  # the shape the template has
    role = request_role("Endpoint", request)
    accesses = accesses_for_request(
        "Endpoint", request, stage_of(stacks), name="boostline-dev-endpoint"
    )
    checker = checker_of(stacks)
    checker.check(role, accesses, session="SageMaker")
    assert {"sagemaker:DescribeModelPackage", "s3:GetObject", "s3:PutObject"} <= {
        a.action for a in accesses
    }
    other = copy.deepcopy(request)
    other["EndpointConfig"]["DataCaptureConfig"]["DestinationS3Uri"] = f"s3://{artifacts}/x"
    with pytest.raises(AccessDenied, match=r"s3:PutObject on resource: arn:aws:s3:::"):
        checker.check(
            role,
            accesses_for_request(
                "Endpoint", other, stage_of(stacks), name="boostline-dev-endpoint"
            ),
        )
    assert checker.counts()[role][0] > 0


def test_an_unevaluated_expression_is_refused(definition: dict[str, Any]) -> None:
    request = iam_stage.steps(definition)["Preprocess"]["Arguments"]
    with pytest.raises(UnresolvedRequest, match="ProcessingInputs"):
        accesses_for_request("Processing", request, Stage(iam_stage.ACCOUNT, iam_stage.REGION))
