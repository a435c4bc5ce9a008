"""Both live-model pipelines (batch, own monitors): what stacks/live_model_job.py gives each."""

from __future__ import annotations

import re

import pytest

PIPELINES = (("Serving", "boostline-dev-batch"), ("Monitoring", "boostline-dev-monitoring"))


def _pipeline(dev, stack: str, name: str) -> dict:
    (pipeline,) = [
        p
        for p in dev.resources(stack, "AWS::SageMaker::Pipeline").values()
        if p["Properties"]["PipelineName"] == name
    ]
    return pipeline


@pytest.mark.parametrize(("stack", "name"), PIPELINES)
def test_every_placeholder_of_the_definition_is_substituted(dev, stack: str, name: str) -> None:
    body, variables = _pipeline(dev, stack, name)["Properties"]["PipelineDefinition"][
        "PipelineDefinitionBody"
    ]["Fn::Sub"]
    named = {n for n in re.findall(r"\$\{([^}!]+)\}", body) if not n.startswith("AWS::")}
    assert {"JobRole", "KmsKeyArn", "AssetBucket"} <= named
    assert named == set(variables)


@pytest.mark.parametrize(("stack", "name"), PIPELINES)
def test_the_job_describes_only_its_groups_packages(dev, stack: str, name: str) -> None:
    template = dev.template(stack)
    statements = [
        s
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "DescribeLiveModelPackage"
    ]
    assert len(statements) == 1  # the job role's, and no other role's in the stack
    (statement,) = statements
    assert statement["Action"] == "sagemaker:DescribeModelPackage"
    assert "model-package/boostline-dev-models/*" in str(statement["Resource"])


@pytest.mark.parametrize(("stack", "name"), PIPELINES)
def test_the_pipeline_waits_for_both_roles_policies(dev, stack: str, name: str) -> None:
    pipeline = _pipeline(dev, stack, name)
    policies = {
        logical
        for logical, r in dev.template(stack)["Resources"].items()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
    }
    assert len(set(pipeline["DependsOn"]) & policies) == 2
