"""Our own monitors (monitoring.engine: own): a small SageMaker pipeline on a schedule.

The pipeline (stacks/monitor_definition.py) runs training_scripts/monitor_job.py
once per check in the XGBoost image. An EventBridge schedule rule starts it with
the live model as its parameters. A rule rather than EventBridge Scheduler: a
rule's SageMaker Pipeline target takes the pipeline parameters directly, the
retrain schedule is a rule too, and a Scheduler schedule would add a schedule
group and a second way to read the same cron.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnCondition
from aws_cdk import aws_events as events
from constructs import Construct

from boostline.config import BoostlineConfig

from .iam import ServiceRole, arn, bucket_arn, objects_arn
from .live_model import LiveModel
from .live_model_job import LiveModelJob
from .monitor_definition import STEPS, MonitorJob, monitoring_pipeline_definition
from .monitoring import l1, schedule_period_hours
from .naming import Names
from .storage_stack import StorageRefs

OWN_MONITOR_NAMESPACE = "Boostline/Monitoring"
# What monitor_job.py puts on the default bus (training_scripts/monitor_publish.py).
OWN_MONITOR_EVENT_SOURCE = "boostline.monitoring"
OWN_MONITOR_DETAIL_TYPE = "Boostline Monitoring Run Completed"
CAPTURE_PREFIX = "capture"  # in the capture bucket: capture/<endpoint>/<variant>/yyyy/mm/dd/hh/


class OwnMonitor(Construct):
    """Job role, pipeline role, the monitoring pipeline and its schedule rule."""

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
        archive_dir: Path,
        nag_bucket: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stage_config = config.stage(stage)
        monitoring = stage_config.monitoring
        self.pipeline_name = f"{names.prefix}-monitoring"
        self.checks = (
            ("data-quality", "model-quality") if monitoring.model_quality else ("data-quality",)
        )
        self.hours = schedule_period_hours(monitoring.schedule)
        artifacts = names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION)
        capture_bucket = names.bucket("capture", Aws.ACCOUNT_ID, Aws.REGION)
        reports_bucket = names.bucket("monitoring", Aws.ACCOUNT_ID, Aws.REGION)
        capture_prefix = f"{CAPTURE_PREFIX}/{names.endpoint}/"
        truth_prefix = monitoring.ground_truth_prefix

        # ------------------------------------------------------------ job role
        live_job = LiveModelJob(
            self,
            config=config,
            stage=stage,
            names=names,
            storage=storage,
            archive_dir=archive_dir,
            role_name=f"{names.job_prefix}-monitor-job",
            description=f"{names.prefix}: the own-code monitor jobs",
            metric_namespaces=[OWN_MONITOR_NAMESPACE],
        )
        job = live_job.role
        job.allow(
            ["s3:ListBucket"],
            [bucket_arn(capture_bucket)],
            conditions={"StringLike": {"s3:prefix": [f"{capture_prefix}*", f"{truth_prefix}*"]}},
            sid="ListCaptureAndGroundTruth",
        )
        job.allow(
            ["s3:GetObject"],
            [
                objects_arn(capture_bucket, f"{capture_prefix}*"),
                objects_arn(capture_bucket, f"{truth_prefix}*"),
                objects_arn(artifacts, "runs/*"),
                live_job.model_archives,
            ],
            sid="ReadCaptureGroundTruthBaselinesAndModel",
        )
        job.allow(["s3:PutObject"], [objects_arn(reports_bucket, "reports/*")], sid="WriteReports")
        live_job.describe_live_package()
        job.allow(
            ["events:PutEvents"],
            [arn("events", "event-bus/default")],
            # events:source is multivalued (one value per entry): every entry must be ours.
            conditions={
                "ForAllValues:StringEquals": {
                    "events:source": [OWN_MONITOR_EVENT_SOURCE],
                    "events:detail-type": [OWN_MONITOR_DETAIL_TYPE],
                }
            },
            sid="PutCompletionEvent",
        )
        for finding, reason in (
            (
                f"{nag_bucket['capture']}/{capture_prefix}*",
                "The monitor reads the endpoint's data capture, partitioned by variant and hour.",
            ),
            (
                f"{nag_bucket['capture']}/{truth_prefix}*",
                "The ground truth arrives partitioned by hour.",
            ),
            (
                f"{nag_bucket['artifacts']}/runs/*",
                "The baselines sit under the pipeline execution id of the live model, known "
                "only at deploy time.",
            ),
            (
                f"{nag_bucket['monitoring']}/reports/*",
                "Each monitoring execution writes its reports under its own execution id.",
            ),
        ):
            job.acknowledge_wildcard(f"Resource::arn:<AWS::Partition>:s3:::{finding}", reason)
        self.job_role = job

        # ------------------------------------------------------------ pipeline and its role
        sub = "${AWS::AccountId}", "${AWS::Region}"
        definition = monitoring_pipeline_definition(
            MonitorJob(
                **live_job.definition_fields(),
                instance_type=monitoring.instance_type,
                max_runtime_seconds=monitoring.max_runtime_seconds,
                captures_uri=(
                    f"s3://{names.bucket('capture', *sub)}/"
                    f"{capture_prefix}{stage_config.serving.variant_name}"
                ),
                ground_truth_uri=f"s3://{names.bucket('capture', *sub)}/{truth_prefix.rstrip('/')}",
                reports_uri=f"s3://{names.bucket('monitoring', *sub)}/reports",
                endpoint=names.endpoint,
                hours=self.hours,
                namespace=OWN_MONITOR_NAMESPACE,
            ),
            self.checks,
        )
        self.pipeline_role, pipeline = live_job.pipeline(
            pipeline_name=self.pipeline_name,
            role_name=f"{names.job_prefix}-monitor-pipeline",
            description=f"{names.prefix}: our own monitors of the endpoint",
            definition=definition,
            condition=condition,
        )
        self.pipeline = pipeline
        self.step_names = [STEPS[c] for c in self.checks]

        # ------------------------------------------------------------ the schedule
        pipeline_arn = arn("sagemaker", f"pipeline/{self.pipeline_name}")
        starter = ServiceRole(
            self,
            "ScheduleRole",
            role_name=f"{names.job_prefix}-monitor-schedule",
            description=f"{names.prefix}: EventBridge starts {self.pipeline_name}",
            service="events.amazonaws.com",
        )
        starter.allow(
            ["sagemaker:StartPipelineExecution"], [pipeline_arn], sid="StartMonitorPipeline"
        )
        rule = l1(
            events.CfnRule,
            self,
            "ScheduleRule",
            name=f"{names.prefix}-monitoring-schedule",
            description=f"{names.prefix}: runs {self.pipeline_name} on the monitoring schedule",
            schedule_expression=monitoring.schedule,
            state="ENABLED",
            targets=[
                {
                    "id": "MonitorPipeline",
                    "arn": pipeline_arn,
                    "role_arn": starter.role.role_arn,
                    "sage_maker_pipeline_parameters": {
                        "pipeline_parameter_list": [
                            {
                                "name": "ModelPackageArn",
                                "value": live.model_package.value_as_string,
                            },
                            {
                                "name": "BaselineStatisticsUri",
                                "value": live.statistics.value_as_string,
                            },
                            {
                                "name": "BaselineConstraintsUri",
                                "value": live.constraints.value_as_string,
                            },
                            {"name": "DecisionThreshold", "value": live.threshold.value_as_string},
                        ]
                    },
                }
            ],
        )
        rule.cfn_options.condition = condition
        rule.add_resource_dependency(pipeline)
        rule.node.add_dependency(starter.policy)
        self.schedule_rule = rule
