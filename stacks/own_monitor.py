"""Our own monitors (monitoring.engine: own): a small SageMaker pipeline on a schedule.

The pipeline (stacks/monitor_definition.py) runs training_scripts/monitor_job.py
once per check in the XGBoost image. An EventBridge schedule rule starts it with
the live model as its parameters. A rule rather than EventBridge Scheduler: a
rule's SageMaker Pipeline target takes the pipeline parameters directly, the
retrain schedule is a rule too, and a Scheduler schedule would add a schedule
group and a second way to read the same cron.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws, CfnCondition, Fn
from aws_cdk import aws_events as events
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from boostline.config import BoostlineConfig

from . import sagemaker_offline
from .iam import ServiceRole, arn, bucket_arn, objects_arn
from .live_model import LiveModel
from .monitor_definition import STEPS, MonitorJob, monitoring_pipeline_definition
from .monitoring import l1, schedule_period_hours
from .naming import Names
from .pipeline_stack import SOURCE_DIR
from .sourcedir import build_archive
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
        group = names.model_package_group
        source = s3_assets.Asset(
            self, "SourceDir", path=str(build_archive(SOURCE_DIR, archive_dir))
        )
        image = sagemaker_offline.image_uri(config.training.framework_version, stage_config.region)
        capture_prefix = f"{CAPTURE_PREFIX}/{names.endpoint}/"
        truth_prefix = monitoring.ground_truth_prefix

        # ------------------------------------------------------------ job role
        job = ServiceRole(
            self,
            "JobRole",
            role_name=f"{names.job_prefix}-monitor-job",
            description=f"{names.prefix}: the own-code monitor jobs",
        )
        job.use_key(storage.key)
        job.job_basics(
            "ProcessingJobs",
            image.split(".", 1)[0],
            image.split("/", 1)[1].split(":")[0],
            metric_namespaces=[OWN_MONITOR_NAMESPACE],
        )
        job.read_assets([source], "SourceArchive")  # an S3Prefix input: listed, then read
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
                objects_arn(artifacts, "models/*"),
            ],
            sid="ReadCaptureGroundTruthBaselinesAndModel",
        )
        job.allow(["s3:PutObject"], [objects_arn(reports_bucket, "reports/*")], sid="WriteReports")
        job.allow(
            ["sagemaker:DescribeModelPackage"],
            [arn("sagemaker", f"model-package/{group}/*")],
            sid="DescribeLiveModelPackage",
        )
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
                f"{nag_bucket['artifacts']}/models/*",
                "The live model's archive sits under its training job, known only at deploy time.",
            ),
            (
                f"{nag_bucket['monitoring']}/reports/*",
                "Each monitoring execution writes its reports under its own execution id.",
            ),
        ):
            job.acknowledge_wildcard(f"Resource::arn:<AWS::Partition>:s3:::{finding}", reason)
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{group}/*",
            "The live version of the model package group is a stack parameter set at deploy time.",
        )
        self.job_role = job

        # ------------------------------------------------------------ pipeline role
        pipeline_role = ServiceRole(
            self,
            "PipelineRole",
            role_name=f"{names.job_prefix}-monitor-pipeline",
            description=f"{names.prefix}: the SageMaker Pipeline {self.pipeline_name}",
        )
        pipeline_role.run_processing_steps()
        pipeline_role.pass_to_sagemaker([job.role.role_arn], sid="PassJobRole")

        # ------------------------------------------------------------ the pipeline
        sub = "${AWS::AccountId}", "${AWS::Region}"
        definition = monitoring_pipeline_definition(
            MonitorJob(
                image=image,
                role_arn="arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRole}",
                kms_key_arn="${KmsKeyArn}",
                source_uri=f"s3://${{AssetBucket}}/{source.s3_object_key}",
                source_key=source.s3_object_key,
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
                region="${AWS::Region}",
            ),
            self.checks,
        )
        pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.pipeline_name,
            pipeline_display_name=self.pipeline_name,
            pipeline_description=f"{names.prefix}: our own monitors of the endpoint",
            role_arn=pipeline_role.role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": Fn.sub(
                    json.dumps(definition, separators=(",", ":")),
                    {
                        "JobRole": job.role.role_name,
                        "KmsKeyArn": storage.key.key_arn,
                        "AssetBucket": source.s3_bucket_name,
                    },
                )
            },
        )
        pipeline.cfn_options.condition = condition
        for role in (job, pipeline_role):
            pipeline.node.add_dependency(role.policy)
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
