"""The Processing step both hand-written definitions (batch, own monitors) are made of."""

from __future__ import annotations

from stacks.processing_step import (
    CODE_DIR,
    OUTPUT_DIR,
    ProcessingJob,
    parameter,
    per_execution,
    processing_step,
    s3_input,
)

JOB = ProcessingJob(
    image="123.dkr.ecr.eu-west-1.amazonaws.com/xgb:1",
    role_arn="arn:role",
    kms_key_arn="arn:key",
    source_uri="s3://assets/src.tar.gz",
    source_key="src.tar.gz",
    instance_type="ml.m5.large",
    max_runtime_seconds=600,
    region="eu-west-1",
)


def _step(**given):
    return processing_step(
        JOB,
        name="Step",
        description="a step",
        script="job.py",
        arguments=["--output-dir", OUTPUT_DIR],
        output=("out", per_execution(parameter("OutputUri"))),
        volume_size_gb=20,
        **given,
    )["Arguments"]


def test_the_code_input_comes_first_then_the_callers() -> None:
    data = s3_input("data", parameter("InputUri"), "/opt/ml/processing/input/data")
    inputs = _step(inputs=(data,))["ProcessingInputs"]
    assert [i["InputName"] for i in inputs] == ["code", "data"]
    assert inputs[0]["S3Input"]["S3Uri"] == JOB.source_uri
    assert inputs[0]["S3Input"]["LocalPath"] == CODE_DIR


def test_the_script_runs_from_the_unpacked_archive() -> None:
    app = _step()["AppSpecification"]
    assert f"{CODE_DIR}/src.tar.gz" in app["ContainerEntrypoint"][2]
    assert "job.py" in app["ContainerEntrypoint"][2]
    assert app["ContainerArguments"] == ["--output-dir", OUTPUT_DIR]


def test_the_one_output_lands_per_execution_under_the_stage_key() -> None:
    config = _step()["ProcessingOutputConfig"]
    (output,) = config["Outputs"]
    assert output["OutputName"] == "out"
    assert output["S3Output"]["LocalPath"] == OUTPUT_DIR
    assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"][-1] == {
        "Get": "Execution.PipelineExecutionId"
    }
    assert config["KmsKeyId"] == JOB.kms_key_arn


def test_the_region_is_always_in_the_environment_after_the_callers() -> None:
    assert _step()["Environment"] == {"AWS_DEFAULT_REGION": "eu-west-1"}
    env = _step(environment={"NAMESPACE": "ns"})["Environment"]
    assert list(env) == ["NAMESPACE", "AWS_DEFAULT_REGION"]
