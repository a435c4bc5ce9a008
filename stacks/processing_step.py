"""One Processing step of a hand-written pipeline definition: a job script from the source archive.

The batch pipeline (stacks/batch_definition.py) and our own monitors
(stacks/monitor_definition.py) each run a script of training_scripts/ in the XGBoost
image, as a plain CreateProcessingJob request in the step's arguments: the archive
unpacked from the `code` input, the job's one output uploaded at its end, the stage key
on the volume and the output, and traffic between containers encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pipeline_definition import entry_command

PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
OUTPUT_DIR = f"{PROCESSING}/output"


@dataclass(frozen=True)
class ProcessingJob:
    """What every step's job needs: where it runs, as whom, and from which archive."""

    image: str
    role_arn: str
    kms_key_arn: str
    source_uri: str
    source_key: str
    instance_type: str
    max_runtime_seconds: int
    region: str


def parameter(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def per_execution(prefix: Any) -> dict[str, Any]:
    """`<prefix>/<execution id>`, so that no execution overwrites another's output."""
    return {"Std:Join": {"On": "/", "Values": [prefix, {"Get": "Execution.PipelineExecutionId"}]}}


def s3_input(name: str, uri: Any, local_path: str) -> dict[str, Any]:
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


def processing_step(
    job: ProcessingJob,
    *,
    name: str,
    description: str,
    script: str,
    arguments: list[Any],
    output: tuple[str, Any],
    volume_size_gb: int,
    inputs: tuple[dict[str, Any], ...] = (),
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The step running `script` with `arguments`; `output` is (name, S3 URI) of OUTPUT_DIR."""
    output_name, output_uri = output
    return {
        "Name": name,
        "Type": "Processing",
        "Description": description,
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": job.instance_type,
                    "InstanceCount": 1,
                    "VolumeSizeInGB": volume_size_gb,
                    "VolumeKmsKeyId": job.kms_key_arn,
                }
            },
            "AppSpecification": {
                "ImageUri": job.image,
                "ContainerEntrypoint": entry_command(script, f"{CODE_DIR}/{job.source_key}"),
                "ContainerArguments": arguments,
            },
            "RoleArn": job.role_arn,
            "ProcessingInputs": [s3_input("code", job.source_uri, CODE_DIR), *inputs],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": output_name,
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": output_uri,
                            "LocalPath": OUTPUT_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": job.kms_key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
            # The image's boto3 reads AWS_DEFAULT_REGION only, and the jobs call AWS
            # themselves (SageMaker for the live package, and what their own code publishes).
            "Environment": {**(environment or {}), "AWS_DEFAULT_REGION": job.region},
            "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        },
    }
