"""The monitoring pipeline's definition: our own checks of the live endpoint.

One Processing step per check (data quality, and model quality when configured),
each running training_scripts/monitor_job.py in the XGBoost image from the same
source archive as the training pipeline. Written out by hand (plain
CreateProcessingJob requests as the steps' arguments), so it is deterministic and
needs no SDK; the local runtime executes this same definition.

Parameters: the live model (set by the schedule from the monitoring stack's
parameters) and the window (`auto`: the last full schedule period; a person or
the local runtime may pass ISO times to check another window). Reports go to
`<reports_uri>/<check>/<execution id>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pipeline_definition import DEFINITION_VERSION, entry_command

PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
OUTPUT_DIR = f"{PROCESSING}/output"
LIVE_MODEL_PARAMETERS = (
    "ModelPackageArn",
    "BaselineStatisticsUri",
    "BaselineConstraintsUri",
    "DecisionThreshold",
)
WINDOW_PARAMETERS = ("WindowStart", "WindowEnd")
STEPS = {"data-quality": "DataQualityCheck", "model-quality": "ModelQualityCheck"}


@dataclass(frozen=True)
class MonitorJob:
    """What both checks' jobs share."""

    image: str
    role_arn: str
    kms_key_arn: str
    source_uri: str
    source_key: str
    instance_type: str
    max_runtime_seconds: int
    captures_uri: str
    ground_truth_uri: str
    reports_uri: str
    endpoint: str
    hours: int
    namespace: str
    region: str


def _param(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def _report_uri(job: MonitorJob, check: str) -> dict[str, Any]:
    return {
        "Std:Join": {
            "On": "/",
            "Values": [f"{job.reports_uri}/{check}", {"Get": "Execution.PipelineExecutionId"}],
        }
    }


def _arguments(job: MonitorJob, check: str) -> list[Any]:
    args: list[Any] = [
        check,
        "--model-package",
        _param("ModelPackageArn"),
        "--captures",
        job.captures_uri,
        "--endpoint",
        job.endpoint,
        "--hours",
        str(job.hours),
        "--window-start",
        _param("WindowStart"),
        "--window-end",
        _param("WindowEnd"),
        "--output-dir",
        OUTPUT_DIR,
        "--report-uri",
        _report_uri(job, check),
    ]
    if check == "data-quality":
        args += [
            "--baseline-statistics",
            _param("BaselineStatisticsUri"),
            "--constraints",
            _param("BaselineConstraintsUri"),
        ]
    else:
        args += ["--threshold", _param("DecisionThreshold"), "--ground-truth", job.ground_truth_uri]
    return args


def _step(job: MonitorJob, check: str) -> dict[str, Any]:
    return {
        "Name": STEPS[check],
        "Type": "Processing",
        "Description": f"Our own {check} check of the endpoint's captured traffic",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": job.instance_type,
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 20,
                    "VolumeKmsKeyId": job.kms_key_arn,
                }
            },
            "AppSpecification": {
                "ImageUri": job.image,
                "ContainerEntrypoint": entry_command(
                    "monitor_job.py", f"{CODE_DIR}/{job.source_key}"
                ),
                "ContainerArguments": _arguments(job, check),
            },
            "RoleArn": job.role_arn,
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "AppManaged": False,
                    "S3Input": {
                        "S3Uri": job.source_uri,
                        "LocalPath": CODE_DIR,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "report",
                        "AppManaged": False,
                        "S3Output": {
                            "S3Uri": _report_uri(job, check),
                            "LocalPath": OUTPUT_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": job.kms_key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
            # The image's boto3 reads AWS_DEFAULT_REGION only; the jobs call SageMaker,
            # CloudWatch and EventBridge themselves.
            "Environment": {
                "BOOSTLINE_METRICS_NAMESPACE": job.namespace,
                "AWS_DEFAULT_REGION": job.region,
            },
            "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        },
    }


def monitoring_pipeline_definition(job: MonitorJob, checks: tuple[str, ...]) -> dict[str, Any]:
    """The pipeline: one independent step per check, so one failing leaves the other's report."""
    parameters = [
        {"Name": n, "Type": "String", "DefaultValue": "none"} for n in LIVE_MODEL_PARAMETERS
    ]
    parameters += [{"Name": n, "Type": "String", "DefaultValue": "auto"} for n in WINDOW_PARAMETERS]
    return {
        "Version": DEFINITION_VERSION,
        "Metadata": {},
        "Parameters": parameters,
        # No PipelineExperimentConfig: an experiment trial per hourly run is clutter, and
        # the pipeline role has no Experiments permission (the training pipeline has none).
        "Steps": [_step(job, check) for check in checks],
    }
