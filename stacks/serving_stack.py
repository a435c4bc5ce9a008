"""Serving: the endpoint of the live model, its autoscaling, monitors, alarms and dashboard.

The stack takes the live model package as a CloudFormation parameter. With the
default `none` it holds no serving resource (the condition `HasModel` is false), so
the first `cdk deploy` of a stage succeeds before any model exists. The deployer
Lambda later calls UpdateStack with the previous template and a new
`ModelPackageArn` (and its baselines and decision threshold); `cdk deploy` keeps the
previous values. Order below follows the dependencies: model -> endpoint config
(data capture) -> rollback alarms -> endpoint (blue/green) -> autoscaling ->
monitors -> their alarms -> dashboard.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import (
    Aws,
    CfnCondition,
    CfnOutput,
    CfnParameter,
    Duration,
    Fn,
    Stack,
    Stage,
    Token,
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from boostline.config import BoostlineConfig

from . import nag, sagemaker_offline
from .iam import ServiceRole, arn, bucket_arn, objects_arn
from .monitoring import (
    OWN_MONITOR_NAMESPACE,
    EndpointMonitor,
    MonitorInputs,
    l1,
    model_monitor_image_uri,
    monitor_pipeline_failed_pattern,
    monitoring_failed_pattern,
    own_code_pipeline_definition,
    schedule_period_hours,
)
from .naming import Names
from .pipeline_stack import SOURCE_DIR
from .sourcedir import build_archive
from .storage_stack import StorageRefs

NONE = "none"
CAPTURE_PREFIX = "capture"  # in the capture bucket: capture/<endpoint>/<variant>/yyyy/mm/dd/hh/
MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
MODEL_MONITOR_NAMESPACES = ("aws/sagemaker/Endpoints/data-metrics", MODEL_MONITOR_NAMESPACE)
# Model Monitor's binary-classification metrics shown on the dashboard (auc also alarms).
MODEL_QUALITY_METRICS = ("auc", "f1", "precision", "recall")


def alerts_topic_arn(names: Names) -> str:
    """The automation stack's alerts topic, by name (no cross-stack export needed)."""
    return arn("sns", f"{names.prefix}-alerts")


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        archive_dir: Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Where the own-code monitor's source archive is built (the training pipeline's).
        archive_dir = archive_dir or Path(Stage.of(self).outdir) / "boostline-sourcedir"
        stage_config = config.stage(stage)
        serving = stage_config.serving
        monitoring = stage_config.monitoring
        key = storage.key
        capture_bucket = names.bucket("capture", Aws.ACCOUNT_ID, Aws.REGION)
        reports_bucket = names.bucket("monitoring", Aws.ACCOUNT_ID, Aws.REGION)
        nag_bucket = {
            p: names.bucket(p, "<AWS::AccountId>", "<AWS::Region>")
            for p in ("capture", "monitoring", "artifacts")
        }
        endpoint_name = names.endpoint
        variant = serving.variant_name
        alerts_topic = sns.Topic.from_topic_arn(self, "Alerts", alerts_topic_arn(names))
        self.alerts_topic = alerts_topic
        alerts = cloudwatch_actions.SnsAction(alerts_topic)

        # ------------------------------------------------------------ parameters
        model_package = CfnParameter(
            self,
            "ModelPackageArn",
            type="String",
            default=NONE,
            description="The live model package version (set by the deployer); none: no endpoint",
        )
        statistics = CfnParameter(
            self,
            "BaselineStatisticsUri",
            type="String",
            default=NONE,
            description="Data-quality baseline statistics.json of the live model; none: no monitor",
        )
        constraints = CfnParameter(
            self,
            "BaselineConstraintsUri",
            type="String",
            default=NONE,
            description="Data-quality baseline constraints.json of the live model",
        )
        threshold = CfnParameter(
            self,
            "DecisionThreshold",
            type="String",
            default="0.5",
            allowed_pattern=r"^(0(\.\d+)?|1(\.0+)?)$",
            description="Probability at or above which the model answers 'default'",
        )
        has_model = CfnCondition(
            self, "HasModel", expression=Fn.condition_not(Fn.condition_equals(model_package, NONE))
        )
        self.has_model = has_model
        # ------------------------------------------------------------ execution role
        execution = ServiceRole(
            self,
            "ExecutionRole",
            role_name=f"{names.job_prefix}-endpoint",
            description=f"{names.prefix}: the endpoint's model container",
        )
        execution.use_key(key)
        image = sagemaker_offline.image_uri(config.training.framework_version, stage_config.region)
        execution.job_basics(
            f"Endpoints/{endpoint_name}",
            image.split(".", 1)[0],
            image.split("/", 1)[1].split(":")[0],
        )
        group = names.model_package_group
        execution.allow(
            ["sagemaker:DescribeModelPackage"],
            [arn("sagemaker", f"model-package/{group}/*")],
            sid="DescribeModelPackages",
        )
        execution.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{group}/*",
            "The live version of the model package group is a stack parameter set at deploy time.",
        )
        execution.allow(
            ["s3:GetObject"],
            [
                objects_arn(names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION), "models/*"),
                objects_arn(names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION), "runs/*"),
            ],
            sid="ReadModelAndCode",
        )
        if serving.capture_percent:
            # SageMaker writes data capture as the model's execution role (with the KMS
            # grants of use_key), under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/.
            execution.allow(
                ["s3:PutObject"],
                [objects_arn(capture_bucket, f"{CAPTURE_PREFIX}/{endpoint_name}/*")],
                sid="WriteDataCapture",
            )
            execution.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['capture']}/"
                f"{CAPTURE_PREFIX}/{endpoint_name}/*",
                "Data capture files are named per variant and hour by SageMaker at run time.",
            )
        for prefix in ("models", "runs"):
            execution.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/{prefix}/*",
                "The model data and its code archive sit under the pipeline execution id of the "
                "live model, known only at deploy time.",
            )

        # ------------------------------------------------------------ model
        model = l1(
            sagemaker.CfnModel,
            self,
            "Model",
            execution_role_arn=execution.role.role_arn,
            containers=[
                {
                    "model_package_name": model_package.value_as_string,
                    "environment": {"BOOSTLINE_DECISION_THRESHOLD": threshold.value_as_string},
                }
            ],
            enable_network_isolation=False,
        )
        model.cfn_options.condition = has_model
        model.node.add_dependency(execution.policy)

        # ------------------------------------------------------------ endpoint config
        # SageMaker refuses an instance-type change on a variant that is registered for
        # autoscaling, and CloudFormation would deregister the old target only after the
        # endpoint update. So a change is two deploys: `cdk deploy` keeps this parameter's
        # previous value (the type in service) and removes the scaling target; then
        # `cdk deploy --parameters <stack>:DeployedInstanceType=<new>` moves the endpoint
        # and registers the target again (docs/infrastructure.md).
        deployed_type = scaling_in_step = None
        if not serving.serverless.enabled:
            deployed_type = CfnParameter(
                self,
                "DeployedInstanceType",
                type="String",
                default=serving.instance_type,
                allowed_pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
                description="Instance type the endpoint runs on; see the runbook to change it",
            )
            scaling_in_step = CfnCondition(
                self,
                "ScalingInStep",
                expression=Fn.condition_and(
                    has_model, Fn.condition_equals(deployed_type, serving.instance_type)
                ),
            )

        variant_props: dict = {"model_name": model.attr_model_name, "variant_name": variant}
        if serving.serverless.enabled:
            variant_props["serverless_config"] = {
                "memory_size_in_mb": serving.serverless.memory_mb,
                "max_concurrency": serving.serverless.max_concurrency,
            }
        else:
            variant_props.update(
                initial_instance_count=serving.initial_instance_count,
                instance_type=deployed_type.value_as_string,
                initial_variant_weight=1.0,
            )
        capture = None
        if serving.capture_percent:
            capture = {
                "enable_capture": True,
                "initial_sampling_percentage": serving.capture_percent,
                "destination_s3_uri": f"s3://{capture_bucket}/{CAPTURE_PREFIX}",
                "kms_key_id": key.key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "csv_content_types": ["text/csv"],
                    "json_content_types": ["application/json"],
                },
            }
        endpoint_config = l1(
            sagemaker.CfnEndpointConfig,
            self,
            "EndpointConfig",
            production_variants=[variant_props],
            data_capture_config=capture,
            kms_key_id=None if serving.serverless.enabled else key.key_arn,
        )
        endpoint_config.cfn_options.condition = has_model
        if serving.serverless.enabled:
            nag.acknowledge(
                endpoint_config,
                "AwsSolutions-SM2",
                "Serverless endpoints take no storage volume key, since they keep no volume "
                "of their own.",
            )
            nag.acknowledge(
                endpoint_config,
                "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
                "Serverless endpoints take no storage volume key, since they keep no volume "
                "of their own.",
            )

        # ------------------------------------------------------------ rollback alarms
        dims = {"EndpointName": endpoint_name, "VariantName": variant}

        def alarm(
            construct_id: str,
            name: str,
            metric: cloudwatch.IMetric,
            threshold_value: float,
            description: str,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods: int = 1,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> cloudwatch.Alarm:
            made = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_name=name,
                alarm_description=description,
                metric=metric,
                threshold=threshold_value,
                comparison_operator=comparison,
                evaluation_periods=evaluation_periods,
                treat_missing_data=missing,
            )
            cfn_alarm = nag.cfn(made)
            cfn_alarm.cfn_options.condition = has_model
            made.add_alarm_action(alerts)
            return made

        def endpoint_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=Duration.minutes(1),
            )

        # Rollback alarm names are outside the drift prefix: they never start a retrain.
        errors = alarm(
            "Invocation5xxAlarm",
            f"{names.prefix}-endpoint-5xx",
            endpoint_metric("Invocation5XXErrors", "Sum"),
            serving.max_5xx_errors_per_minute,
            "The endpoint answers server errors; rolls a deployment back",
            evaluation_periods=2,
        )
        latency = alarm(
            "ModelLatencyAlarm",
            f"{names.prefix}-endpoint-latency",
            endpoint_metric("ModelLatency", "p99"),
            serving.max_model_latency_ms * 1000,  # ModelLatency is in microseconds
            "The model's p99 latency is above the configured limit; rolls a deployment back",
            evaluation_periods=3,
        )
        rollback_alarms = [errors, latency]
        rollback_alarm_names = [f"{names.prefix}-endpoint-5xx", f"{names.prefix}-endpoint-latency"]
        self.rollback_alarms = rollback_alarms

        # ------------------------------------------------------------ endpoint
        deployment = serving.deployment
        routing: dict = {
            "type": deployment.traffic_routing,
            "wait_interval_in_seconds": deployment.wait_seconds,
        }
        step = {"type": "CAPACITY_PERCENT", "value": deployment.step_percent}
        if deployment.traffic_routing == "CANARY":
            routing["canary_size"] = step
        elif deployment.traffic_routing == "LINEAR":
            routing["linear_step_size"] = step
        deployment_config = None
        if not serving.serverless.enabled:
            deployment_config = {
                "blue_green_update_policy": {
                    "traffic_routing_configuration": routing,
                    "termination_wait_in_seconds": deployment.termination_wait_seconds,
                    "maximum_execution_timeout_in_seconds": (
                        deployment.max_execution_timeout_seconds
                    ),
                },
                "auto_rollback_configuration": {
                    # Plain names (not Refs), so the rollback alarms read the same here
                    # as in the console.
                    "alarms": [{"alarm_name": n} for n in rollback_alarm_names]
                },
            }
        self.endpoint = l1(
            sagemaker.CfnEndpoint,
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
            deployment_config=deployment_config,
            # A model swap is a new endpoint config; without this the variant falls back
            # to its initial instance count even while autoscaling holds it higher. The
            # capture settings still come from the new config.
            retain_all_variant_properties=True,
            exclude_retained_variant_properties=[{"variant_property_type": "DataCaptureConfig"}],
        )
        self.endpoint.cfn_options.condition = has_model
        for a in rollback_alarms:
            self.endpoint.add_resource_dependency(nag.cfn(a))

        # ------------------------------------------------------------ autoscaling
        scaling_resource_id = f"endpoint/{endpoint_name}/variant/{variant}"
        if not serving.serverless.enabled:
            scaling = serving.autoscaling
            # Application Auto Scaling's service-linked role for SageMaker, never the
            # endpoint's execution role (and no role of our own).
            scaling_role = iam.Role.from_role_arn(
                self,
                "ScalingRole",
                f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
                "sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            )
            target = appscaling.ScalableTarget(
                self,
                "ScalableTarget",
                service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
                resource_id=scaling_resource_id,
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                role=scaling_role,
                min_capacity=scaling.min_instances,
                max_capacity=scaling.max_instances,
            )
            policy = target.scale_to_track_metric(
                "InvocationsPerInstance",
                target_value=scaling.target_invocations_per_instance,
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                scale_out_cooldown=Duration.seconds(scaling.scale_out_cooldown_seconds),
                scale_in_cooldown=Duration.seconds(scaling.scale_in_cooldown_seconds),
                disable_scale_in=scaling.disable_scale_in,
            )
            cfn_target = nag.cfn(target)
            cfn_target.cfn_options.condition = scaling_in_step
            cfn_target.add_resource_dependency(self.endpoint)
            cfn_policy = policy.node.default_child
            cfn_policy.cfn_options.condition = scaling_in_step
            self.scalable_target = cfn_target
            CfnOutput(
                self,
                "InstanceTypeChangePending",
                condition=CfnCondition(
                    self,
                    "InstanceTypeChanged",
                    expression=Fn.condition_and(
                        has_model,
                        Fn.condition_not(Fn.condition_equals(deployed_type, serving.instance_type)),
                    ),
                ),
                value=(
                    f"The endpoint stays on the deployed instance type and autoscaling is off "
                    f"until you deploy again with --parameters "
                    f"{Stack.of(self).stack_name}:DeployedInstanceType={serving.instance_type}"
                ),
                description="An instance-type change is half done (docs/infrastructure.md)",
            )

        # ------------------------------------------------------------ monitoring
        self.monitors: list[EndpointMonitor] = []
        self.monitoring_alarms: list[cloudwatch.Alarm] = []
        self.drift_alarms: list[cloudwatch.Alarm] = []
        self.monitor_alarm_names: list[str] = []
        self.health_rules: dict[str, events.CfnRule] = {}
        self.own_code_failure_metrics: list[cloudwatch.IMetric] = []
        self.own_code_widgets: list[cloudwatch.IWidget] = []
        self.monitoring_widgets: list[cloudwatch.IWidget] = []
        if monitoring.enabled:
            self._monitoring(
                config=config,
                stage=stage,
                names=names,
                storage=storage,
                statistics=statistics.value_as_string,
                constraints=constraints.value_as_string,
                baseline_param=statistics,
                constraints_param=constraints,
                has_model=has_model,
                capture_bucket=capture_bucket,
                reports_bucket=reports_bucket,
                nag_bucket=nag_bucket,
                alarm=alarm,
                alerts_topic=alerts_topic,
                threshold=threshold,
                model_package=model_package,
                archive_dir=archive_dir,
            )

        # ------------------------------------------------------------ dashboard
        self._dashboard(names, endpoint_metric, rollback_alarms, has_model)

        CfnOutput(
            self,
            "EndpointName",
            value=endpoint_name,
            condition=has_model,
            description="The live endpoint",
        )
        CfnOutput(self, "LiveModelPackageArn", value=model_package.value_as_string)
        CfnOutput(self, "ExecutionRoleArn", value=execution.role.role_arn)

    # ---------------------------------------------------------------- monitoring
    def _monitoring(
        self,
        *,
        config,
        stage,
        names: Names,
        storage: StorageRefs,
        statistics: str,
        constraints: str,
        baseline_param: CfnParameter,
        constraints_param: CfnParameter,
        has_model: CfnCondition,
        capture_bucket: str,
        reports_bucket: str,
        nag_bucket: dict[str, str],
        alarm,
        alerts_topic: sns.ITopic,
        threshold: CfnParameter,
        model_package: CfnParameter,
        archive_dir: Path,
    ) -> None:
        stage_config = config.stage(stage)
        monitoring = stage_config.monitoring
        has_baseline = CfnCondition(
            self,
            "HasBaseline",
            expression=Fn.condition_and(
                has_model,
                Fn.condition_not(Fn.condition_equals(baseline_param, NONE)),
                Fn.condition_not(Fn.condition_equals(constraints_param, NONE)),
            ),
        )
        # The managed analyzer runs the data-quality monitor unless our own check
        # replaces it; the model-quality monitor always uses it.
        if (monitoring.engine == "model-monitor") or monitoring.model_quality:
            role = ServiceRole(
                self,
                "MonitoringRole",
                role_name=f"{names.job_prefix}-monitoring",
                description=f"{names.prefix}: the endpoint's monitoring jobs",
            )
            role.use_key(storage.key)
            analyzer = model_monitor_image_uri(stage_config.region)
            role.job_basics(
                "ProcessingJobs",
                analyzer.split(".", 1)[0],
                analyzer.split("/", 1)[1].split(":")[0],
                # What the Model Monitor analyzer publishes, as the job role.
                metric_namespaces=MODEL_MONITOR_NAMESPACES,
            )
            ground_truth = f"s3://{capture_bucket}/{monitoring.ground_truth_prefix.rstrip('/')}"
            role.allow(
                ["s3:ListBucket"],
                [
                    bucket_arn(capture_bucket),
                    bucket_arn(names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION)),
                ],
                sid="ListCaptureAndBaselines",
            )
            role.allow(
                ["s3:GetObject"],
                [
                    objects_arn(capture_bucket, "*"),
                    objects_arn(names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION), "runs/*"),
                ],
                sid="ReadCaptureGroundTruthAndBaselines",
            )
            role.allow(
                ["s3:PutObject"], [objects_arn(reports_bucket, "reports/*")], sid="WriteReports"
            )
            role.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['capture']}/*",
                "The monitor reads the endpoint's data capture and the ground truth, both "
                "partitioned by hour under this bucket.",
            )
            role.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/runs/*",
                "The baselines sit under the pipeline execution id of the live model, known only "
                "at deploy time.",
            )
            role.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['monitoring']}/reports/*",
                "Each monitoring execution writes its reports under its own dated prefix.",
            )
            inputs = MonitorInputs(
                endpoint_name=names.endpoint,
                role_arn=role.role.role_arn,
                key_arn=storage.key.key_arn,
                analyzer_image=analyzer,
                instance_type=monitoring.instance_type,
                max_runtime_seconds=monitoring.max_runtime_seconds,
                schedule=monitoring.schedule,
                reports_uri=f"s3://{reports_bucket}/reports",
                condition=has_baseline,
            )
            if (monitoring.engine == "model-monitor"):
                data = EndpointMonitor(
                    self,
                    "DataQualityMonitor",
                    monitor_type="data-quality",
                    schedule_name=f"{names.prefix}-data-quality",
                    inputs=inputs,
                    baseline_statistics_uri=statistics,
                    baseline_constraints_uri=constraints,
                )
                self.monitors.append(data)
            if monitoring.model_quality:
                quality = EndpointMonitor(
                    self,
                    "ModelQualityMonitor",
                    monitor_type="model-quality",
                    schedule_name=f"{names.prefix}-model-quality",
                    inputs=inputs,
                    ground_truth_uri=ground_truth,
                    # The live model's own threshold, the one the endpoint decides with.
                    probability_threshold=Token.as_number(threshold.value_as_string),
                )
                self.monitors.append(quality)
            for monitor in self.monitors:
                monitor.job_definition.node.add_dependency(role.policy)
                monitor.schedule.add_resource_dependency(self.endpoint)
        if not (monitoring.engine == "model-monitor"):
            self._own_code_monitor(
                config=config,
                stage=stage,
                names=names,
                storage=storage,
                statistics=statistics,
                constraints=constraints,
                model_package=model_package,
                condition=has_baseline,
                capture_bucket=capture_bucket,
                reports_bucket=reports_bucket,
                nag_bucket=nag_bucket,
                alarm=alarm,
                archive_dir=archive_dir,
            )

        # Model-quality degradation: a drift alarm (the retrain trigger listens to the
        # drift prefix). Data-quality violations reach it through the
        # monitoring-violations rule instead, so they have no drift-named alarm.
        if monitoring.model_quality:
            gate = config.gate
            for metric_name, threshold in (("auc", gate.min_auc),):
                made = alarm(
                    f"ModelQuality{metric_name.title()}Alarm",
                    f"{names.prefix}-drift-model-quality-{metric_name}",
                    cloudwatch.Metric(
                        namespace=MODEL_MONITOR_NAMESPACE,
                        metric_name=metric_name,
                        dimensions_map={
                            "Endpoint": names.endpoint,
                            "MonitoringSchedule": f"{names.prefix}-model-quality",
                        },
                        statistic="Minimum",
                        period=Duration.hours(1),
                    ),
                    threshold,
                    f"Live {metric_name.upper()} from ground truth is below the quality gate; "
                    "starts a retrain",
                    comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                )
                nag.cfn(made).cfn_options.condition = has_baseline
                self.drift_alarms.append(made)
                self.monitor_alarm_names.append(f"{names.prefix}-drift-model-quality-{metric_name}")

        self._monitor_health(
            names=names,
            schedule=monitoring.schedule,
            managed_schedules=bool(self.monitors),
            model_quality=monitoring.model_quality,
            condition=has_baseline,
            alarm=alarm,
            alerts_topic=alerts_topic,
        )

    # ---------------------------------------------------------------- own-code monitor
    def _own_code_monitor(
        self,
        *,
        config,
        stage,
        names: Names,
        storage: StorageRefs,
        statistics: str,
        constraints: str,
        model_package: CfnParameter,
        condition: CfnCondition,
        capture_bucket: str,
        reports_bucket: str,
        nag_bucket: dict[str, str],
        alarm,
        archive_dir: Path,
    ) -> None:
        """Our own data-quality check instead of the managed analyzer.

        A one-step SageMaker Pipeline runs training_scripts/monitor_job.py in the XGBoost
        image from the same source archive as the training pipeline; an EventBridge
        schedule starts it with the live model's package and baselines. The job
        publishes DataQualityViolations, and the drift-named alarm on it is how
        violations reach the retrain trigger.
        """
        stage_config = config.stage(stage)
        monitoring = stage_config.monitoring
        pipeline_name = f"{names.prefix}-monitoring"
        artifacts = names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION)
        group = names.model_package_group
        hours = schedule_period_hours(monitoring.schedule)
        source = s3_assets.Asset(
            self, "MonitorSourceDir", path=str(build_archive(SOURCE_DIR, archive_dir))
        )
        image = sagemaker_offline.image_uri(config.training.framework_version, stage_config.region)

        # ------------------------------------------------------------ job role
        job = ServiceRole(
            self,
            "MonitorJobRole",
            role_name=f"{names.job_prefix}-monitor-job",
            description=f"{names.prefix}: the own-code data-quality monitor job",
        )
        job.use_key(storage.key)
        job.job_basics(
            "ProcessingJobs",
            image.split(".", 1)[0],
            image.split("/", 1)[1].split(":")[0],
            metric_namespaces=[OWN_MONITOR_NAMESPACE],
        )
        job.read_assets([source], "SourceArchive")  # an S3Prefix input: listed, then read
        capture_prefix = f"{CAPTURE_PREFIX}/{names.endpoint}/"
        job.allow(
            ["s3:ListBucket"],
            [bucket_arn(capture_bucket)],
            conditions={"StringLike": {"s3:prefix": [f"{capture_prefix}*"]}},
            sid="ListCapture",
        )
        job.allow(
            ["s3:GetObject"],
            [
                objects_arn(capture_bucket, f"{capture_prefix}*"),
                objects_arn(artifacts, "runs/*"),
                objects_arn(artifacts, "models/*"),
            ],
            sid="ReadCaptureBaselinesAndModel",
        )
        job.allow(["s3:PutObject"], [objects_arn(reports_bucket, "reports/*")], sid="WriteReports")
        job.allow(
            ["sagemaker:DescribeModelPackage"],
            [arn("sagemaker", f"model-package/{group}/*")],
            sid="DescribeLiveModelPackage",
        )
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['capture']}/{capture_prefix}*",
            "The monitor reads the endpoint's data capture, partitioned by variant and hour.",
        )
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/runs/*",
            "The baselines sit under the pipeline execution id of the live model, known only "
            "at deploy time.",
        )
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/models/*",
            "The live model's archive sits under its training job, known only at deploy time.",
        )
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['monitoring']}/reports/*",
            "Each monitoring execution writes its reports under its own execution id.",
        )
        job.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{group}/*",
            "The live version of the model package group is a stack parameter set at deploy time.",
        )

        # ------------------------------------------------------------ pipeline role
        pipeline_role = ServiceRole(
            self,
            "MonitorPipelineRole",
            role_name=f"{names.job_prefix}-monitor-pipeline",
            description=f"{names.prefix}: the SageMaker Pipeline {pipeline_name}",
        )
        pipeline_role.allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
            ],
            [arn("sagemaker", "processing-job/pipelines-*")],
            sid="RunProcessingStep",
        )
        pipeline_role.allow(
            ["iam:PassRole"],
            [job.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            sid="PassJobRole",
        )
        pipeline_role.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            "processing-job/pipelines-*",
            "SageMaker Pipelines names each processing job pipelines-<execution>-<step>-<id> "
            "at run time.",
        )

        # ------------------------------------------------------------ the pipeline
        definition = own_code_pipeline_definition(
            image=image,
            role_arn="arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRole}",
            kms_key_arn="${KmsKeyArn}",
            source_uri=f"s3://${{AssetBucket}}/{source.s3_object_key}",
            source_key=source.s3_object_key,
            instance_type=monitoring.instance_type,
            max_runtime_seconds=monitoring.max_runtime_seconds,
            captures_uri=(
                f"s3://{names.bucket('capture', '${AWS::AccountId}', '${AWS::Region}')}/"
                f"{capture_prefix}{stage_config.serving.variant_name}"
            ),
            reports_uri=(
                f"s3://{names.bucket('monitoring', '${AWS::AccountId}', '${AWS::Region}')}/"
                "reports/data-quality"
            ),
            endpoint=names.endpoint,
            hours=hours,
            namespace=OWN_MONITOR_NAMESPACE,
        )
        pipeline = sagemaker.CfnPipeline(
            self,
            "MonitorPipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=f"{names.prefix}: own-code data-quality check of the endpoint",
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
        self.monitor_pipeline = pipeline

        # ------------------------------------------------------------ the schedule
        pipeline_arn = arn("sagemaker", f"pipeline/{pipeline_name}")
        starter = ServiceRole(
            self,
            "MonitorScheduleRole",
            role_name=f"{names.job_prefix}-monitor-schedule",
            description=f"{names.prefix}: EventBridge starts {pipeline_name}",
            service="events.amazonaws.com",
        )
        starter.allow(
            ["sagemaker:StartPipelineExecution"], [pipeline_arn], sid="StartMonitorPipeline"
        )
        schedule_rule = l1(
            events.CfnRule,
            self,
            "MonitorScheduleRule",
            name=f"{names.prefix}-monitoring-schedule",
            description=f"{names.prefix}: runs {pipeline_name} on the monitoring schedule",
            schedule_expression=monitoring.schedule,
            state="ENABLED",
            targets=[
                {
                    "id": "MonitorPipeline",
                    "arn": pipeline_arn,
                    "role_arn": starter.role.role_arn,
                    "sage_maker_pipeline_parameters": {
                        "pipeline_parameter_list": [
                            {"name": "ModelPackageArn", "value": model_package.value_as_string},
                            {"name": "BaselineStatisticsUri", "value": statistics},
                            {"name": "BaselineConstraintsUri", "value": constraints},
                        ]
                    },
                }
            ],
        )
        schedule_rule.cfn_options.condition = condition
        schedule_rule.add_resource_dependency(pipeline)
        schedule_rule.node.add_dependency(starter.policy)
        self.monitor_schedule_rule = schedule_rule

        # ------------------------------------------------------------ alarms
        period = Duration.hours(hours)
        dims = {"Endpoint": names.endpoint}

        def own_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=OWN_MONITOR_NAMESPACE,
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=period,
            )

        drift_name = f"{names.prefix}-drift-data-quality"
        drift = alarm(
            "DataQualityDriftAlarm",
            drift_name,
            own_metric("DataQualityViolations", "Maximum"),
            1,
            "The data-quality check found violations in the captured traffic; starts a retrain",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        nag.cfn(drift).cfn_options.condition = condition
        self.drift_alarms.append(drift)
        self.monitor_alarm_names.append(drift_name)
        self._stale_alarm(
            "DataQualityStaleAlarm",
            f"{names.prefix}-monitoring-data-quality-stale",
            own_metric("DataQualityViolations", "SampleCount"),
            "No data-quality check has completed in two schedule periods",
            condition=condition,
            alarm=alarm,
        )
        self.own_code_failure_metrics.append(
            self._failure_alarm(
                "MonitorPipelineFailed",
                f"{names.prefix}-monitoring-pipeline-failed",
                monitor_pipeline_failed_pattern(pipeline_name),
                {
                    "execution": "$.detail.pipelineExecutionArn",
                    "status": "$.detail.currentPipelineExecutionStatus",
                },
                f"{names.prefix}: data-quality check <execution> ended <status>",
                "A data-quality check of the live endpoint failed or stopped, so no drift "
                "check ran",
                condition=condition,
                alarm=alarm,
                alerts_topic=self.alerts_topic,
            )
        )
        self.own_code_widgets.append(
            cloudwatch.GraphWidget(
                title="Data-quality check (own code)",
                left=[own_metric("DataQualityViolations", "Maximum")],
                right=[own_metric("DataQualityRows", "Sum")],
                width=8,
            )
        )

    # ---------------------------------------------------------------- monitor health
    def _monitor_health(
        self,
        *,
        names: Names,
        schedule: str,
        managed_schedules: bool,
        model_quality: bool,
        condition: CfnCondition,
        alarm,
        alerts_topic: sns.ITopic,
    ) -> None:
        """Alert on monitoring executions that fail or stop, and on a monitor gone quiet.

        A monitor that stops running raises no drift alarm, so its failures alarm on
        their own. None of these alarm names starts with the drift prefix: a broken
        monitor is an operator's problem, not a reason to retrain.
        """
        failure_metrics: list[cloudwatch.IMetric] = []
        if managed_schedules:
            # Failed or stopped executions of our schedules: each one notifies the
            # alerts topic (job name and status), and the rule's metric alarms.
            failure_metrics.append(
                self._failure_alarm(
                    "MonitoringFailed",
                    f"{names.prefix}-monitoring-failed",
                    monitoring_failed_pattern(f"{names.prefix}-"),
                    {
                        "job": "$.detail.ProcessingJobName",
                        "status": "$.detail.ProcessingJobStatus",
                    },
                    f"{names.prefix}: monitoring execution <job> ended <status>",
                    "A monitoring execution of the live endpoint failed or stopped, so no "
                    "drift check ran",
                    condition=condition,
                    alarm=alarm,
                    alerts_topic=alerts_topic,
                )
            )
        failure_metrics.extend(self.own_code_failure_metrics)

        # A model-quality run publishes its metrics every period; none for two periods
        # means the schedule stopped (or never started). The managed data-quality
        # metrics are named per feature and only published when the baseline asks for
        # them, so that schedule has no such alarm (see docs/infrastructure.md).
        period = Duration.hours(schedule_period_hours(schedule))
        quality_dims = {
            "Endpoint": names.endpoint,
            "MonitoringSchedule": f"{names.prefix}-model-quality",
        }
        if model_quality:
            self._stale_alarm(
                "ModelQualityStaleAlarm",
                f"{names.prefix}-monitoring-model-quality-stale",
                cloudwatch.Metric(
                    namespace=MODEL_MONITOR_NAMESPACE,
                    metric_name="auc",
                    dimensions_map=quality_dims,
                    statistic="SampleCount",
                    period=period,
                ),
                "No model-quality execution has completed in two schedule periods",
                condition=condition,
                alarm=alarm,
            )

        # ------------------------------------------------------------ dashboard widgets
        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Monitoring executions failed or stopped",
                left=failure_metrics,
                width=8,
            )
        ]
        if model_quality:
            widgets.append(
                cloudwatch.GraphWidget(
                    title="Live model quality (from ground truth)",
                    left=[
                        cloudwatch.Metric(
                            namespace=MODEL_MONITOR_NAMESPACE,
                            metric_name=name,
                            dimensions_map=quality_dims,
                            statistic="Average",
                            period=period,
                        )
                        for name in MODEL_QUALITY_METRICS
                    ],
                    width=8,
                )
            )
        widgets.extend(self.own_code_widgets)
        # By name, not by reference: the dashboard exists with a model, these alarms only
        # once it has baselines too.
        widgets.append(
            cloudwatch.AlarmStatusWidget(
                title="Monitoring alarms",
                alarms=[
                    cloudwatch.Alarm.from_alarm_arn(
                        self, f"AlarmRef{i}", arn("cloudwatch", f"alarm:{name}")
                    )
                    for i, name in enumerate(self.monitor_alarm_names)
                ],
                width=8,
            )
        )
        self.monitoring_widgets.extend(widgets)

    def _stale_alarm(
        self,
        construct_id: str,
        name: str,
        metric: cloudwatch.Metric,
        description: str,
        *,
        condition: CfnCondition,
        alarm,
    ) -> cloudwatch.Alarm:
        """ALARM when a metric every run publishes has no sample in two periods."""
        made = alarm(
            construct_id,
            name,
            metric,
            1,
            description,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        nag.cfn(made).cfn_options.condition = condition
        self.monitoring_alarms.append(made)
        self.monitor_alarm_names.append(name)
        return made

    def _failure_alarm(
        self,
        construct_id: str,
        rule_name: str,
        pattern: dict,
        input_paths: dict[str, str],
        message: str,
        description: str,
        *,
        condition: CfnCondition,
        alarm,
        alerts_topic: sns.ITopic,
    ) -> cloudwatch.Metric:
        """A rule that sends matching events to the alerts topic, and an alarm on its metric.

        The rule is L1: the alerts topic is the automation stack's, by name, and an L2
        rule with an imported target in an unresolved environment fails synth.
        """
        rule = l1(
            events.CfnRule,
            self,
            f"{construct_id}Rule",
            name=rule_name,
            description=description,
            event_pattern=pattern,
            state="ENABLED",
            targets=[
                {
                    "id": "Alerts",
                    "arn": alerts_topic.topic_arn,
                    "input_transformer": {
                        "input_paths_map": input_paths,
                        "input_template": json.dumps(message),
                    },
                }
            ],
        )
        rule.cfn_options.condition = condition
        self.health_rules[rule_name] = rule
        metric = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="TriggeredRules",
            dimensions_map={"RuleName": rule_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )
        made = alarm(
            f"{construct_id}Alarm",
            rule_name,
            metric,
            1,
            description,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        nag.cfn(made).cfn_options.condition = condition
        self.monitoring_alarms.append(made)
        self.monitor_alarm_names.append(rule_name)
        return metric

    # ---------------------------------------------------------------- dashboard
    def _dashboard(self, names: Names, endpoint_metric, rollback_alarms, has_model) -> None:
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{names.prefix}-serving",
            widgets=[
                [
                    cloudwatch.GraphWidget(
                        title="Invocations",
                        left=[endpoint_metric("Invocations", "Sum")],
                        right=[
                            endpoint_metric("Invocation4XXErrors", "Sum"),
                            endpoint_metric("Invocation5XXErrors", "Sum"),
                        ],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Model latency (microseconds)",
                        left=[
                            endpoint_metric("ModelLatency", "p50"),
                            endpoint_metric("ModelLatency", "p99"),
                        ],
                        width=12,
                    ),
                ],
                [
                    cloudwatch.AlarmStatusWidget(
                        title="Alarms",
                        alarms=rollback_alarms,
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Training pipeline executions",
                        left=[
                            cloudwatch.Metric(
                                namespace="AWS/Sagemaker/ModelBuildingPipeline",
                                metric_name=name,
                                dimensions_map={"PipelineName": names.pipeline},
                                statistic="Sum",
                                period=Duration.hours(1),
                            )
                            for name in ("ExecutionSucceeded", "ExecutionFailed")
                        ],
                        width=12,
                    ),
                ],
            ],
        )
        if self.monitoring_widgets:
            dashboard.add_widgets(*self.monitoring_widgets)
        nag.cfn(dashboard).cfn_options.condition = has_model
