"""SageMaker Model Monitor's resources (engine: model-monitor), and monitoring event patterns.

`EndpointMonitor` builds a job definition and an hourly/daily monitoring schedule
from a small set of inputs: the type (data quality or model quality), the endpoint,
the baselines, the role and the key. Everything it creates carries the caller's
CloudFormation condition, so no monitor exists while no model is deployed.

Job definitions are create-only in CloudFormation (a new baseline replaces them), so
they take generated names; the schedules keep fixed names
(`{project}-{stage}-data-quality`, `{project}-{stage}-model-quality`), which the
retrain trigger's `monitoring-violations` rule matches by prefix.

Also here: the event patterns of failed or stopped monitoring runs (both engines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from aws_cdk import CfnCondition, CfnResource, Fn
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

MonitorType = Literal["data-quality", "model-quality"]
PROCESSING = "/opt/ml/processing"
CAPTURE_PATH = f"{PROCESSING}/input/endpoint"
GROUND_TRUTH_PATH = f"{PROCESSING}/input/ground_truth"
OUTPUT_PATH = f"{PROCESSING}/output"


def js(value: Any) -> Any:
    """Nested L1 property dicts with the camelCase keys jsii expects (snake_case in, here)."""
    if isinstance(value, dict):
        return {
            (
                re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), k)
                if re.fullmatch(r"[a-z0-9_]+", k)
                else k
            ): js(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [js(v) for v in value]
    return value


def l1(cls: Any, scope: Construct, construct_id: str, **props: Any) -> Any:
    """An L1 resource whose nested dict properties are converted by `js`."""
    return cls(scope, construct_id, **{k: js(v) for k, v in props.items()})


def model_monitor_image_uri(region: str) -> str:
    """SageMaker's managed analyzer image, from the SDK's bundled image config (no lookup)."""
    from . import sagemaker_offline

    sagemaker_offline.offline_session(region)
    from sagemaker.core import image_uris

    return image_uris.retrieve(framework="model-monitor", region=region)


def schedule_arn_wildcard(schedule_prefix: str) -> str:
    """The retrain trigger's wildcard for our schedules (lambda/event_patterns.py)."""
    from .automation_stack import event_patterns  # loaded by path: `lambda` is a keyword

    return event_patterns().monitoring_schedule_arn_wildcard(schedule_prefix)


def monitoring_failed_pattern(schedule_prefix: str) -> dict[str, Any]:
    """A monitoring execution (processing job) of one of our schedules that failed or stopped.

    The same event as the retrain trigger's `monitoring-violations` rule, with the
    statuses of a run that produced no report.
    """
    if not schedule_prefix:
        raise ValueError("schedule_prefix is required")
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobStatus": ["Failed", "Stopped"],
            "MonitoringScheduleArn": [{"wildcard": schedule_arn_wildcard(schedule_prefix)}],
        },
    }


def monitor_pipeline_failed_pattern(pipeline_name: str) -> dict[str, Any]:
    """An execution of the own-code monitoring pipeline that failed or was stopped."""
    if not pipeline_name:
        raise ValueError("pipeline_name is required")
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        "detail": {
            "currentPipelineExecutionStatus": ["Failed", "Stopped"],
            "pipelineArn": [{"wildcard": f"arn:*:sagemaker:*:*:pipeline/{pipeline_name}"}],
        },
    }


def schedule_period_hours(schedule: str) -> int:
    """The period of a Model Monitor cron: 1 (hourly `cron(0 * ? * * *)`) or 24 (daily)."""
    return 1 if re.fullmatch(r"cron\(0 \* \? \* \* \*\)", schedule) else 24


@dataclass(frozen=True)
class MonitorInputs:
    """What every monitor of one endpoint shares."""

    endpoint_name: str
    role_arn: str
    key_arn: str
    analyzer_image: str
    instance_type: str
    max_runtime_seconds: int
    schedule: str
    reports_uri: str  # s3://<monitoring bucket>/<prefix>
    condition: CfnCondition


class EndpointMonitor(Construct):
    """A job definition and its monitoring schedule (managed analyzer)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        monitor_type: MonitorType,
        schedule_name: str,
        inputs: MonitorInputs,
        baseline_statistics_uri: str | None = None,
        baseline_constraints_uri: str | None = None,
        ground_truth_uri: str | None = None,
        probability_threshold: float = 0.5,
    ) -> None:
        super().__init__(scope, construct_id)
        self.monitor_type = monitor_type
        self.schedule_name = schedule_name
        endpoint_input = {
            "endpoint_name": inputs.endpoint_name,
            "local_path": CAPTURE_PATH,
            "s3_input_mode": "File",
            "s3_data_distribution_type": "FullyReplicated",
        }
        output = {
            "kms_key_id": inputs.key_arn,
            "monitoring_outputs": [
                {
                    "s3_output": {
                        "local_path": OUTPUT_PATH,
                        "s3_uri": f"{inputs.reports_uri}/{monitor_type}",
                        "s3_upload_mode": "EndOfJob",
                    }
                }
            ],
        }
        resources = {
            "cluster_config": {
                "instance_count": 1,
                "instance_type": inputs.instance_type,
                "volume_size_in_gb": 20,
                "volume_kms_key_id": inputs.key_arn,
            }
        }
        stopping = {"max_runtime_in_seconds": inputs.max_runtime_seconds}
        # Monitoring jobs reach S3 and CloudWatch only; no other traffic leaves them.
        network = {
            "enable_inter_container_traffic_encryption": True,
            "enable_network_isolation": True,
        }

        if monitor_type == "data-quality":
            if baseline_statistics_uri is None or baseline_constraints_uri is None:
                raise ValueError("a data-quality monitor needs baseline statistics and constraints")
            self.job_definition: CfnResource = l1(
                sagemaker.CfnDataQualityJobDefinition,
                self,
                "JobDefinition",
                data_quality_app_specification={"image_uri": inputs.analyzer_image},
                data_quality_baseline_config={
                    "constraints_resource": {"s3_uri": baseline_constraints_uri},
                    "statistics_resource": {"s3_uri": baseline_statistics_uri},
                },
                data_quality_job_input={"endpoint_input": endpoint_input},
                data_quality_job_output_config=output,
                job_resources=resources,
                role_arn=inputs.role_arn,
                stopping_condition=stopping,
                network_config=network,
            )
            monitoring_type = "DataQuality"
        else:
            if ground_truth_uri is None:
                raise ValueError("a model-quality monitor needs a ground-truth prefix")
            self.job_definition = l1(
                sagemaker.CfnModelQualityJobDefinition,
                self,
                "JobDefinition",
                model_quality_app_specification={
                    "image_uri": inputs.analyzer_image,
                    "problem_type": "BinaryClassification",
                },
                model_quality_job_input={
                    "endpoint_input": {
                        **endpoint_input,
                        # The inference script answers probability,decision per row (CSV).
                        "probability_attribute": "0",
                        "probability_threshold_attribute": probability_threshold,
                    },
                    "ground_truth_s3_input": {"s3_uri": ground_truth_uri},
                },
                model_quality_job_output_config=output,
                job_resources=resources,
                role_arn=inputs.role_arn,
                stopping_condition=stopping,
                network_config=network,
            )
            monitoring_type = "ModelQuality"
        self.job_definition.cfn_options.condition = inputs.condition

        self.schedule = l1(
            sagemaker.CfnMonitoringSchedule,
            self,
            "Schedule",
            monitoring_schedule_name=schedule_name,
            monitoring_schedule_config={
                "monitoring_job_definition_name": Fn.get_att(
                    self.job_definition.logical_id, "JobDefinitionName"
                ).to_string(),
                "monitoring_type": monitoring_type,
                "schedule_config": {"schedule_expression": inputs.schedule},
            },
        )
        self.schedule.cfn_options.condition = inputs.condition
        self.schedule.add_resource_dependency(self.job_definition)
