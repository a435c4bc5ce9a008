"""The batch pipeline in the serving stack: the live model, under HasModel, least privilege."""

from __future__ import annotations

import json
import shlex

import pytest

from boostline.local.assembly import Assembly
from stacks.batch_definition import SCRIPT, STEP
from training_scripts import batch_score

STACK = "Serving"
PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/boostline-dev-models/3"
LIVE = {
    "ModelPackageArn": PACKAGE,
    "DecisionThreshold": "0.42",
}


def _policy(synth, role_name: str) -> list[dict]:
    template = synth.template(STACK)
    roles = {
        logical: r
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"].get("RoleName") == role_name
    }
    (role_id,) = roles
    (policy,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        and {"Ref": role_id} in r["Properties"].get("Roles", [])
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _by_sid(statements: list[dict]) -> dict[str, dict]:
    return {s["Sid"]: s for s in statements}


@pytest.fixture(scope="module")
def rendered(dev) -> tuple[str, dict]:
    found = Assembly(dev.outdir).batch_pipeline("eu-west-1", LIVE)
    assert found is not None
    return found


def test_the_pipeline_exists_only_while_a_model_is_live(dev) -> None:
    (pipeline,) = dev.resources(STACK, "AWS::SageMaker::Pipeline").values()
    assert pipeline["Condition"] == "HasModel"
    assert pipeline["Properties"]["PipelineName"] == "boostline-dev-batch"
    assert Assembly(dev.outdir).batch_pipeline("eu-west-1", {}) is None  # ModelPackageArn none
    assert dev.template(STACK)["Outputs"]["BatchPipelineName"]["Condition"] == "HasModel"


def test_it_scores_with_the_live_package_and_threshold_by_default(rendered) -> None:
    name, definition = rendered
    assert name == "boostline-dev-batch"
    defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert defaults["ModelPackageArn"] == LIVE["ModelPackageArn"]
    assert defaults["DecisionThreshold"] == "0.42"
    raw = "s3://boostline-dev-raw-123456789012-eu-west-1"
    assert defaults["InputUri"] == f"{raw}/batch/input/"
    assert defaults["OutputUri"] == f"{raw}/batch/output"


def test_the_step_runs_batch_score_with_arguments_it_accepts(rendered, dev) -> None:
    _, definition = rendered
    (step,) = definition["Steps"]
    assert (step["Name"], step["Type"]) == (STEP, "Processing")
    args = step["Arguments"]
    cluster = args["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == dev.config.stage("dev").batch.instance_type
    entry = args["AppSpecification"]["ContainerEntrypoint"]
    assert f"exec python3 {shlex.quote(SCRIPT)}" in entry[2]
    container_args = [
        a if isinstance(a, str) else f"<{a['Get']}>"
        for a in args["AppSpecification"]["ContainerArguments"]
    ]
    parsed = batch_score.parse_args(
        [a.replace("<Parameters.DecisionThreshold>", "0.42") for a in container_args]
    )
    assert parsed.model_package == "<Parameters.ModelPackageArn>"
    assert parsed.threshold == 0.42
    inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
    assert inputs["data"]["S3Uri"] == {"Get": "Parameters.InputUri"}
    assert str(parsed.input_dir) == inputs["data"]["LocalPath"]
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    assert str(parsed.output_dir) == output["S3Output"]["LocalPath"]
    # Each execution writes under its own id: no run overwrites another's scores.
    assert output["S3Output"]["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [{"Get": "Parameters.OutputUri"}, {"Get": "Execution.PipelineExecutionId"}],
        }
    }
    assert args["RoleArn"].endswith(":role/boostline-dev-batch-job")
    assert args["ProcessingOutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:")


def test_the_job_role_reads_batch_input_and_writes_batch_output_only(dev) -> None:
    statements = _by_sid(_policy(dev, "boostline-dev-batch-job"))
    text = json.dumps(statements)
    assert "raw/" not in text.replace("-raw-", "")  # never the retrain trigger's prefix
    listing = statements["ListBatchInput"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batch/input", "batch/input/*"]}}
    reads = json.dumps(statements["ReadBatchInputAndModel"]["Resource"])
    assert "/batch/input/*" in reads and "/models/*" in reads and "batch/output" not in reads
    assert statements["ReadBatchInputAndModel"]["Action"] == "s3:GetObject"
    writes = statements["WriteScores"]
    assert writes["Action"] == "s3:PutObject"
    assert "/batch/output/*" in json.dumps(writes["Resource"])
    describe = statements["DescribeLiveModelPackage"]
    assert describe["Action"] == "sagemaker:DescribeModelPackage"
    assert "model-package/boostline-dev-models/*" in json.dumps(describe["Resource"])
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not any(a == "*" or a.endswith(":*") for a in actions)


def test_the_pipeline_role_passes_only_the_job_role(dev) -> None:
    statements = _by_sid(_policy(dev, "boostline-dev-batch-pipeline"))
    passed = statements["PassJobRole"]
    assert passed["Action"] == "iam:PassRole"
    assert passed["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    (resource,) = (
        [passed["Resource"]] if isinstance(passed["Resource"], dict) else passed["Resource"]
    )
    assert "BatchScoringJobRole" in json.dumps(resource)
    assert set(statements) == {"RunProcessingSteps", "PassJobRole"}
