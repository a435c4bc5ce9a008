"""The offline CloudFormation renderer, on the stage's synthesized templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boostline.local.cfn_render import (
    CfnRenderError,
    StackContext,
    render_stage,
    render_template,
)

SNAPSHOTS = Path(__file__).resolve().parents[2] / "stacks" / "snapshots" / "dev"
ORDER = ["Storage", "Pipeline", "Automation", "Serving"]
PACKAGE = "arn:aws:sagemaker:eu-west-1:111122223333:model-package/boostline-dev-models/3"


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return {s: json.loads((SNAPSHOTS / f"{s}.template.json").read_text()) for s in ORDER}


def _stage(templates, serving: dict[str, str] | None = None):
    names = {s: f"boostline-dev-{s.lower()}" for s in ORDER}
    return render_stage(templates, ORDER, names, {"Serving": serving or {}}, account="111122223333")


def test_without_a_model_the_serving_stack_holds_no_endpoint(templates):
    serving = _stage(templates)["Serving"]
    assert serving.conditions["HasModel"] is False
    assert not serving.of_type("AWS::SageMaker::Endpoint")
    assert serving.of_type("AWS::IAM::Role")  # the roles exist from the first deploy


def test_a_model_renders_the_endpoint_as_cloudformation_would(templates):
    serving = _stage(
        templates,
        {
            "ModelPackageArn": PACKAGE,
            "DecisionThreshold": "0.31",
            "BaselineStatisticsUri": "s3://b/statistics.json",
            "BaselineConstraintsUri": "s3://b/constraints.json",
        },
    )["Serving"]
    (model,) = serving.of_type("AWS::SageMaker::Model").values()
    (container,) = model["Properties"]["Containers"]
    assert container == {
        "Environment": {"BOOSTLINE_DECISION_THRESHOLD": "0.31"},
        "ModelPackageName": PACKAGE,
    }
    assert model["Properties"]["ExecutionRoleArn"] == (
        "arn:aws:iam::111122223333:role/boostline-dev-endpoint"
    )
    (config,) = serving.of_type("AWS::SageMaker::EndpointConfig").values()
    capture = config["Properties"]["DataCaptureConfig"]
    assert (
        capture["DestinationS3Uri"] == "s3://boostline-dev-capture-111122223333-eu-west-1/capture"
    )
    # The key comes from the storage stack's export.
    assert capture["KmsKeyId"].startswith("arn:aws:kms:eu-west-1:111122223333:key/")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large"  # DeployedInstanceType's default
    (endpoint,) = serving.of_type("AWS::SageMaker::Endpoint").values()
    assert endpoint["Properties"]["EndpointConfigName"] == variant["ModelName"].replace(
        "Model", "EndpointConfig"
    )
    assert endpoint["Properties"]["RetainAllVariantProperties"] is True


def test_policies_resolve_to_plain_arns(templates):
    pipeline = _stage(templates)["Pipeline"]
    text = json.dumps(
        [p["Properties"] for p in pipeline.of_type("AWS::IAM::ManagedPolicy").values()]
    )
    assert "Fn::" not in text and '"Ref"' not in text
    assert "arn:aws:s3:::boostline-dev-raw-111122223333-eu-west-1/*" in text


def test_a_bad_parameter_value_is_refused_as_cloudformation_refuses_it(templates):
    with pytest.raises(CfnRenderError, match="DecisionThreshold"):
        _stage(templates, {"DecisionThreshold": "half"})
    with pytest.raises(CfnRenderError, match="not in the template"):
        _stage(templates, {"NoSuchParameter": "x"})


def test_an_import_no_stack_exports_fails_loudly(templates):
    with pytest.raises(CfnRenderError, match="no stack exports"):
        render_template(templates["Serving"], {"ModelPackageArn": PACKAGE}, StackContext())


def test_an_unsupported_intrinsic_names_where_it_stands():
    template = {
        "Resources": {
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"TopicName": {"Fn::FindInMap": ["M", "a", "b"]}},
            }
        }
    }
    with pytest.raises(CfnRenderError, match=r"Resources\.Topic\.Properties\.TopicName"):
        render_template(template)


def test_sub_resolves_references_attributes_and_literals():
    template = {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "r-${Env}"}},
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {
                    "DisplayName": {
                        "Fn::Sub": "${Env} ${Role.Arn} ${!Literal} ${AWS::Region} ${X}",
                    },
                    "TopicName": {"Fn::Sub": ["t-${Name}", {"Name": {"Ref": "Env"}}]},
                },
            },
        },
    }
    with pytest.raises(CfnRenderError, match="no parameter or resource named X"):
        render_template(template)
    template["Resources"]["Topic"]["Properties"]["DisplayName"]["Fn::Sub"] = (
        "${Env} ${Role.Arn} ${!Literal} ${AWS::Region}"
    )
    topic = render_template(template).resources["Topic"]["Properties"]
    # A RoleName is a plain string in CloudFormation: no substitution inside it.
    assert (
        topic["DisplayName"] == "dev arn:aws:iam::000000000000:role/r-${Env} ${Literal} eu-west-1"
    )
    assert topic["TopicName"] == "t-dev"
