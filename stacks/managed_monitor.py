"""SageMaker Model Monitor (monitoring.engine: model-monitor), for accounts that already use it.

Model Monitor is closed to new customers: in an account that never used it,
creating these schedules fails. They live in the monitoring stack, so such a
failure rolls back the monitoring stack's update, never the endpoint.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, Token
from constructs import Construct

from boostline.config import BoostlineConfig

from .iam import ServiceRole, bucket_arn, objects_arn
from .live_model import LiveModel
from .monitoring import EndpointMonitor, MonitorInputs, model_monitor_image_uri
from .naming import Names
from .storage_stack import StorageRefs

MODEL_MONITOR_DATA_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"


class ManagedMonitors(Construct):
    """The analyzer's role, and a job definition and schedule per check."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        live: LiveModel,
        condition: CfnCondition,
        nag_bucket: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stage_config = config.stage(stage)
        monitoring = stage_config.monitoring
        capture_bucket = names.bucket("capture", Aws.ACCOUNT_ID, Aws.REGION)
        artifacts = names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION)
        reports_bucket = names.bucket("monitoring", Aws.ACCOUNT_ID, Aws.REGION)
        role = ServiceRole(
            self,
            "Role",
            role_name=f"{names.job_prefix}-monitoring",
            description=f"{names.prefix}: the endpoint's Model Monitor jobs",
        )
        role.use_key(storage.key)
        analyzer = model_monitor_image_uri(stage_config.region)
        role.job_basics(
            "ProcessingJobs",
            analyzer.split(".", 1)[0],
            analyzer.split("/", 1)[1].split(":")[0],
            # What the Model Monitor analyzer publishes, as the job role.
            metric_namespaces=(MODEL_MONITOR_DATA_NAMESPACE, MODEL_MONITOR_NAMESPACE),
        )
        role.allow(
            ["s3:ListBucket"],
            [bucket_arn(capture_bucket), bucket_arn(artifacts)],
            sid="ListCaptureAndBaselines",
        )
        role.allow(
            ["s3:GetObject"],
            [objects_arn(capture_bucket, "*"), objects_arn(artifacts, "runs/*")],
            sid="ReadCaptureGroundTruthAndBaselines",
        )
        role.allow(["s3:PutObject"], [objects_arn(reports_bucket, "reports/*")], sid="WriteReports")
        for finding, reason in (
            (
                f"{nag_bucket['capture']}/*",
                "The monitor reads the endpoint's data capture and the ground truth, both "
                "partitioned by hour under this bucket.",
            ),
            (
                f"{nag_bucket['artifacts']}/runs/*",
                "The baselines sit under the pipeline execution id of the live model, known "
                "only at deploy time.",
            ),
            (
                f"{nag_bucket['monitoring']}/reports/*",
                "Each monitoring execution writes its reports under its own dated prefix.",
            ),
        ):
            role.acknowledge_wildcard(f"Resource::arn:<AWS::Partition>:s3:::{finding}", reason)
        inputs = MonitorInputs(
            endpoint_name=names.endpoint,
            role_arn=role.role.role_arn,
            key_arn=storage.key.key_arn,
            analyzer_image=analyzer,
            instance_type=monitoring.instance_type,
            max_runtime_seconds=monitoring.max_runtime_seconds,
            schedule=monitoring.schedule,
            reports_uri=f"s3://{reports_bucket}/reports",
            condition=condition,
        )
        self.monitors: list[EndpointMonitor] = [
            EndpointMonitor(
                self,
                "DataQualityMonitor",
                monitor_type="data-quality",
                schedule_name=f"{names.prefix}-data-quality",
                inputs=inputs,
                baseline_statistics_uri=live.statistics.value_as_string,
                baseline_constraints_uri=live.constraints.value_as_string,
            )
        ]
        if monitoring.model_quality:
            ground_truth = f"s3://{capture_bucket}/{monitoring.ground_truth_prefix.rstrip('/')}"
            self.monitors.append(
                EndpointMonitor(
                    self,
                    "ModelQualityMonitor",
                    monitor_type="model-quality",
                    schedule_name=f"{names.prefix}-model-quality",
                    inputs=inputs,
                    ground_truth_uri=ground_truth,
                    # The live model's own threshold, the one the endpoint decides with.
                    probability_threshold=Token.as_number(live.threshold.value_as_string),
                )
            )
        for monitor in self.monitors:
            monitor.job_definition.node.add_dependency(role.policy)
        self.role = role
