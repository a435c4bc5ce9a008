"""The batch pipeline's definition: data owners' CSVs scored by the live model.

One Processing step runs training_scripts/batch_score.py in the XGBoost image from the
same source archive as the training pipeline. Written out by hand (a plain
CreateProcessingJob request as the step's arguments), so it is deterministic and needs
no SDK; the local runtime executes this same definition.

Parameters: `InputUri` (an S3 prefix of CSVs with their header) and `OutputUri` (the
scores go to `<OutputUri>/<execution id>/`, one CSV per input file, so no run overwrites
another's); `ModelPackageArn` and `DecisionThreshold` default to the live model's, which
the serving stack substitutes from its own parameters, so a plain start scores with the
model in service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .monitor_definition import CODE_DIR, PROCESSING
from .pipeline_definition import DEFINITION_VERSION, entry_command

STEP = "ScoreBatch"
INPUT_DIR = f"{PROCESSING}/input/data"
OUTPUT_DIR = f"{PROCESSING}/output"
SCRIPT = "batch_score.py"


@dataclass(frozen=True)
class BatchJob:
    image: str
    role_arn: str
    kms_key_arn: str
    source_uri: str
    source_key: str
    instance_type: str
    max_runtime_seconds: int
    region: str
    input_uri: str  # the parameters' defaults
    output_uri: str
    model_package: str
    threshold: str


def _param(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def _output_uri() -> dict[str, Any]:
    return {
        "Std:Join": {
            "On": "/",
            "Values": [_param("OutputUri"), {"Get": "Execution.PipelineExecutionId"}],
        }
    }


def _s3_input(name: str, uri: Any, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _step(job: BatchJob) -> dict[str, Any]:
    return {
        "Name": STEP,
        "Type": "Processing",
        "Description": "Score data owners' CSVs with the live model, ids joined back",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": job.instance_type,
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                    "VolumeKmsKeyId": job.kms_key_arn,
                }
            },
            "AppSpecification": {
                "ImageUri": job.image,
                "ContainerEntrypoint": entry_command(SCRIPT, f"{CODE_DIR}/{job.source_key}"),
                "ContainerArguments": [
                    "--input-dir",
                    INPUT_DIR,
                    "--output-dir",
                    OUTPUT_DIR,
                    "--model-package",
                    _param("ModelPackageArn"),
                    "--threshold",
                    _param("DecisionThreshold"),
                ],
            },
            "RoleArn": job.role_arn,
            "ProcessingInputs": [
                _s3_input("code", job.source_uri, CODE_DIR),
                _s3_input("data", _param("InputUri"), INPUT_DIR),
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "scores",
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": _output_uri(),
                            "LocalPath": OUTPUT_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": job.kms_key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
            # The image's boto3 reads AWS_DEFAULT_REGION only; the job describes the package.
            "Environment": {"AWS_DEFAULT_REGION": job.region},
            "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        },
    }


def batch_pipeline_definition(job: BatchJob) -> dict[str, Any]:
    parameters = [
        ("InputUri", job.input_uri),
        ("OutputUri", job.output_uri),
        ("ModelPackageArn", job.model_package),
        ("DecisionThreshold", job.threshold),
    ]
    return {
        "Version": DEFINITION_VERSION,
        "Metadata": {},
        "Parameters": [{"Name": n, "Type": "String", "DefaultValue": v} for n, v in parameters],
        "Steps": [_step(job)],
    }
