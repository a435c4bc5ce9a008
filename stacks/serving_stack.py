"""Serving: the endpoint of the live model, its autoscaling, rollback alarms and dashboard.

The stack takes the live model package as a CloudFormation parameter. With the
default `none` it holds no serving resource (the condition `HasModel` is false), so
the first `cdk deploy` of a stage succeeds before any model exists. The deployer
Lambda later calls UpdateStack with the previous template and a new
`ModelPackageArn` (and its baselines and decision threshold); `cdk deploy` keeps the
previous values. Order below follows the dependencies: model -> endpoint config
(data capture) -> rollback alarms -> endpoint (blue/green) -> autoscaling ->
dashboard. The monitors are the monitoring stack's (stacks/monitoring_stack.py):
a monitoring failure never rolls this stack back. The batch pipeline
(stacks/batch_scoring.py) is here, beside the parameters it scores with.
"""

from __future__ import annotations

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
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from boostline.config import BoostlineConfig

from . import nag, sagemaker_offline
from .batch_scoring import BatchScoring
from .iam import ServiceRole, arn, objects_arn
from .live_model import live_model_parameters
from .monitor_alarms import alerts_topic_arn
from .monitoring import l1
from .naming import Names
from .own_monitor import CAPTURE_PREFIX
from .storage_stack import StorageRefs

NONE = "none"


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
        archive_dir = archive_dir or Path(Stage.of(self).outdir) / "boostline-sourcedir"
        stage_config = config.stage(stage)
        serving = stage_config.serving
        key = storage.key
        capture_bucket = names.bucket("capture", Aws.ACCOUNT_ID, Aws.REGION)
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
        live = live_model_parameters(self)
        model_package, threshold = live.model_package, live.threshold
        has_model = live.has_model
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

        # ------------------------------------------------------------ dashboard
        self._dashboard(names, endpoint_metric, rollback_alarms, has_model)

        # ------------------------------------------------------------ batch scoring
        self.batch = BatchScoring(
            self,
            "BatchScoring",
            config=config,
            stage=stage,
            names=names,
            storage=storage,
            live=live,
            condition=has_model,
            archive_dir=archive_dir,
        )

        CfnOutput(
            self,
            "EndpointName",
            value=endpoint_name,
            condition=has_model,
            description="The live endpoint",
        )
        # What is live, as the deployer set it; it copies these to the monitoring stack.
        CfnOutput(self, "LiveModelPackageArn", value=model_package.value_as_string)
        CfnOutput(self, "LiveBaselineStatisticsUri", value=live.statistics.value_as_string)
        CfnOutput(self, "LiveBaselineConstraintsUri", value=live.constraints.value_as_string)
        CfnOutput(self, "ExecutionRoleArn", value=execution.role.role_arn)

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
        nag.cfn(dashboard).cfn_options.condition = has_model
