"""Automation: the retrain trigger and the deployer Lambdas, their rules, table and DLQs.

Each function is an asset of its directory under lambda/ with the pinned Powertools
copied in (stacks/lambda_bundle.py; boto3 comes with the runtime). The EventBridge
patterns come from lambda/event_patterns.py, the same functions the handler tests
check against the sample events. The stack also owns the alerts topic every alarm of the stage
notifies (`{project}-{stage}-alerts`, with its own key so CloudWatch and
EventBridge may publish to it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack, Stage
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from boostline.config import BoostlineConfig

from . import nag
from .iam import arn
from .lambda_bundle import build_function_code
from .naming import Names
from .storage_stack import StorageRefs

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = REPO_ROOT / "lambda"
RUNTIME = lambda_.Runtime.PYTHON_3_14
# The functions' Powertools metrics (dimensions: service, decision).
FUNCTION_METRICS_NAMESPACE = "Boostline"


def event_patterns() -> ModuleType:
    """lambda/event_patterns.py (`lambda` is a keyword, so it is loaded by path)."""
    path = LAMBDA_DIR / "event_patterns.py"
    spec = importlib.util.spec_from_file_location("boostline_event_patterns", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class AutomationStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage_config = config.stage(stage)
        retrain = stage_config.retrain
        key = storage.key
        patterns = event_patterns()
        raw_bucket = names.bucket("raw", Aws.ACCOUNT_ID, Aws.REGION)
        removal = RemovalPolicy.RETAIN if stage_config.retain_data else RemovalPolicy.DESTROY

        # ------------------------------------------------------------ alerts
        alerts_key = kms.Key(
            self,
            "AlertsKey",
            description=f"{names.prefix}: the alerts topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            alerts_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Publish{service.split('.')[0].title()}",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )
        self.alerts = sns.Topic(
            self,
            "Alerts",
            topic_name=f"{names.prefix}-alerts",
            display_name=f"{names.prefix} alerts",
            master_key=alerts_key,
            enforce_ssl=True,
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.alerts.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[self.alerts.topic_arn],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )

        # ------------------------------------------------------------ state table
        self.table = dynamodb.TableV2(
            self,
            "RetrainState",
            table_name=f"{names.prefix}-retrain-state",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expiration",
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal,
        )

        # Each function's asset holds its handler and the pinned Powertools (no layer).
        code_dir = Path(Stage.of(self).outdir) / "boostline-functions"

        reserve = stage_config.reserve_lambda_concurrency

        def function(
            construct_id: str,
            directory: str,
            service: str,
            timeout: int,
            reserved: int,
            environment: dict[str, str],
        ) -> tuple[lambda_.Function, iam.Role, sqs.Queue]:
            dlq = sqs.Queue(
                self,
                f"{construct_id}Dlq",
                queue_name=f"{names.prefix}-{directory.replace('_', '-')}-dlq",
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=key,
                enforce_ssl=True,
                retention_period=Duration.days(14),
            )
            log_group = logs.LogGroup(
                self,
                f"{construct_id}Logs",
                log_group_name=f"/aws/lambda/{names.prefix}-{directory.replace('_', '-')}",
                retention=logs.RetentionDays.ONE_YEAR,
                removal_policy=removal,
            )
            nag.acknowledge(
                nag.cfn(log_group),
                "NIST.800.53.R5-CloudWatchLogGroupEncrypted",
                "The logs hold decisions and resource names, no customer data, and CloudWatch "
                "encrypts them at rest with its own key.",
            )
            role = iam.Role(
                self,
                f"{construct_id}Role",
                role_name=f"{names.job_prefix}-{directory.replace('_', '-')}",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"{names.prefix}: the {service} function",
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{log_group.log_group_arn}"],
                )
            )
            fn = lambda_.Function(
                self,
                construct_id,
                function_name=f"{names.prefix}-{directory.replace('_', '-')}",
                description=f"{names.prefix}: {service}",
                runtime=RUNTIME,
                handler="app.lambda_handler",
                code=lambda_.Code.from_asset(
                    str(build_function_code(LAMBDA_DIR / directory, code_dir / directory))
                ),
                role=role,
                timeout=Duration.seconds(timeout),
                memory_size=256,
                reserved_concurrent_executions=reserved if reserve else None,
                dead_letter_queue=dlq,
                retry_attempts=2,
                max_event_age=Duration.hours(6),
                environment_encryption=key,
                log_group=log_group,
                environment={
                    "POWERTOOLS_SERVICE_NAME": service,
                    "POWERTOOLS_METRICS_NAMESPACE": FUNCTION_METRICS_NAMESPACE,
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    **environment,
                },
            )
            if not reserve:
                nag.acknowledge(
                    nag.cfn(fn),
                    "NIST.800.53.R5-LambdaConcurrency",
                    "The stage's account cannot reserve concurrency (a new account's quota "
                    "of 10 must stay unreserved); reserve_lambda_concurrency turns it on.",
                )
            nag.acknowledge(
                nag.cfn(fn),
                "NIST.800.53.R5-LambdaInsideVPC",
                "The function calls only AWS APIs, so a VPC would add endpoints and cost "
                "without narrowing what it can reach.",
            )
            key_actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
            role.add_to_policy(iam.PolicyStatement(actions=key_actions, resources=[key.key_arn]))
            cloudwatch.Alarm(
                self,
                f"{construct_id}DlqAlarm",
                alarm_name=f"{names.prefix}-{directory.replace('_', '-')}-dlq",
                alarm_description=f"Events the {service} function failed on twice wait in its DLQ",
                metric=dlq.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ).add_alarm_action(cloudwatch_actions.SnsAction(self.alerts))
            return fn, role, dlq

        # ------------------------------------------------------------ retrain trigger
        trigger, trigger_role, _ = function(
            "RetrainTrigger",
            "retrain_trigger",
            "retrain-trigger",
            timeout=60,
            reserved=5,
            environment={
                "PIPELINE_NAME": names.pipeline,
                "MODEL_PACKAGE_GROUP": names.model_package_group,
                "RAW_BUCKET": raw_bucket,
                "RAW_PREFIX": "raw/",
                "IDEMPOTENCY_TABLE": self.table.table_name,
                "MIN_NEW_FILES": str(retrain.min_new_files),
                "MIN_NEW_BYTES": str(retrain.min_new_bytes),
                "MIN_INTERVAL_SECONDS": str(retrain.min_interval_seconds),
                "MONITORING_SCHEDULE_PREFIX": f"{names.prefix}-",
                "DRIFT_ALARM_PREFIX": f"{names.prefix}-drift-",
                "ENDPOINT_NAME": names.endpoint,
            },
        )
        group = names.model_package_group
        trigger_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
                resources=[arn("sagemaker", f"pipeline/{names.pipeline}")],
            )
        )
        trigger_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[arn("sagemaker", f"model-package/{group}/*")],
            )
        )
        trigger_role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        # A failed run: its failed steps, then the script's own "Boostline failure:" line
        # from the job's logs (the toolkit overwrites FailureReason; failure.py).
        trigger_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:ListPipelineExecutionSteps"],
                resources=[
                    arn("sagemaker", f"pipeline/{names.pipeline}"),
                    arn("sagemaker", f"pipeline/{names.pipeline}/execution/*"),
                ],
            )
        )
        job_log_groups = [
            arn("logs", f"log-group:/aws/sagemaker/{kind}:*")
            for kind in ("TrainingJobs", "ProcessingJobs")
        ]
        trigger_role.add_to_policy(
            iam.PolicyStatement(actions=["logs:FilterLogEvents"], resources=job_log_groups)
        )
        trigger_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                resources=[self.table.table_arn],
            )
        )

        # ------------------------------------------------------------ deployer
        serving_stack = names.stack("serving")
        # The deployer copies the live model to the monitoring stack once the serving
        # stack's update is complete (stacks/monitoring_stack.py).
        monitoring_stack = (
            names.stack("monitoring") if config.stage(stage).monitoring.enabled else ""
        )
        deployer, deployer_role, _ = function(
            "Deployer",
            "deployer",
            "deployer",
            timeout=900,
            reserved=1,
            environment={
                "MODEL_PACKAGE_GROUP": group,
                "SERVING_STACK_NAME": serving_stack,
                "MONITORING_STACK_NAME": monitoring_stack,
                "DEPLOY_RETRY_SECONDS": "600",
                "ON_REJECT_WITHOUT_FALLBACK": "keep",
            },
        )
        deployer_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack"],
                resources=[
                    arn("cloudformation", f"stack/{name}/*")
                    for name in (serving_stack, monitoring_stack)
                    if name
                ],
            )
        )
        deployer_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[arn("sagemaker", f"model-package/{group}/*")],
            )
        )
        deployer_role.add_to_policy(
            iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        # UpdateStack reuses the serving stack's CloudFormation service role (the CDK
        # bootstrap's cfn-exec role): passing it is the deployer's only IAM permission.
        deployer_role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-*-cfn-exec-role-*"],
                conditions={
                    "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                },
            )
        )
        deployer_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameters"],
                resources=[arn("ssm", "parameter/cdk-bootstrap/*/version")],
            )
        )
        for role, reasons in (
            (
                trigger_role,
                {
                    "Resource::*": "ListModelPackages is a list action with no resource ARN.",
                    f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                    f"model-package/{group}/*": "The function reads the versions of this one "
                    "model package group, numbered at registration.",
                    f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                    f"pipeline/{names.pipeline}/execution/*": "The function lists the steps "
                    "of this one pipeline's failed executions, whose ids SageMaker assigns.",
                    "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                    "log-group:/aws/sagemaker/TrainingJobs:*": "FilterLogEvents is scoped to "
                    "a log group; the streams are named per job at run time.",
                    "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                    "log-group:/aws/sagemaker/ProcessingJobs:*": "FilterLogEvents is scoped "
                    "to a log group; the streams are named per job at run time.",
                },
            ),
            (
                deployer_role,
                {
                    "Resource::*": "ListModelPackages is a list action with no resource ARN.",
                    f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                    f"model-package/{group}/*": "The function reads the versions of this one "
                    "model package group, numbered at registration.",
                    f"Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:"
                    f"<AWS::AccountId>:stack/{serving_stack}/*": "A stack ARN ends in an id "
                    "CloudFormation assigns, and the name pins the one serving stack.",
                    **(
                        {
                            f"Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:"
                            f"<AWS::AccountId>:stack/{monitoring_stack}/*": "A stack ARN ends "
                            "in an id CloudFormation assigns, and the name pins the one "
                            "monitoring stack."
                        }
                        if monitoring_stack
                        else {}
                    ),
                    "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
                    "cdk-*-cfn-exec-role-*": "The bootstrap qualifier names the CDK "
                    "CloudFormation execution role, and passing is limited to CloudFormation.",
                    "Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:"
                    "parameter/cdk-bootstrap/*/version": "The bootstrap qualifier in the "
                    "version parameter's name is chosen when the account is bootstrapped.",
                },
            ),
        ):
            policy = role.node.find_child("DefaultPolicy").node.default_child
            for finding, reason in reasons.items():
                nag.acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)
            nag.acknowledge(
                policy,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "The policy belongs to this one function role, where CDK also writes the "
                "dead-letter queue and key grants it makes.",
            )

        # Errors a retry cannot fix are not retried, so they never reach the DLQ and its
        # alarm: the deployer counts them in its decision metric instead.
        cloudwatch.Alarm(
            self,
            "DeployerPermanentErrorAlarm",
            alarm_name=f"{names.prefix}-deployer-permanent-error",
            alarm_description=(
                "The deployer refused an approval it can never deploy (missing package, "
                "bad decision threshold, stuck serving stack); its log says why"
            ),
            metric=cloudwatch.Metric(
                namespace=FUNCTION_METRICS_NAMESPACE,
                metric_name="DeployDecision",
                dimensions_map={"service": "deployer", "decision": "permanent-error"},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ).add_alarm_action(cloudwatch_actions.SnsAction(self.alerts))

        # ------------------------------------------------------------ rules
        trigger_target = targets.LambdaFunction(
            trigger, retry_attempts=4, max_event_age=Duration.hours(2)
        )
        self.rules: dict[str, events.CfnRule] = {}
        trigger_patterns = patterns.retrain_trigger_patterns(
            raw_bucket=raw_bucket,
            pipeline_name=names.pipeline,
            monitoring_schedule_prefix=f"{names.prefix}-",
            drift_alarm_prefix=f"{names.prefix}-drift-",
            endpoint=names.endpoint,
        )
        deploy_patterns = patterns.deployer_patterns(
            model_package_group=group,
            serving_stack=serving_stack if monitoring_stack else None,
            monitoring_stack=monitoring_stack or None,
        )
        for target_fn, found in (
            (trigger_target, trigger_patterns),
            (targets.LambdaFunction(deployer, retry_attempts=4), deploy_patterns),
        ):
            for rule_name, pattern in found.items():
                construct_id = "".join(part.title() for part in rule_name.split("-")) + "Rule"
                rule = events.Rule(
                    self,
                    construct_id,
                    rule_name=f"{names.prefix}-{rule_name}",
                    description=f"{names.prefix}: {rule_name}",
                    event_pattern=events.EventPattern(source=pattern["source"]),
                    targets=[target_fn],
                )
                # The pattern exactly as event_patterns.py writes it (a plain dict).
                nag.cfn(rule).add_property_override("EventPattern", pattern)
                self.rules[rule_name] = nag.cfn(rule)
        schedule = events.Rule(
            self,
            "ScheduleRule",
            rule_name=f"{names.prefix}-retrain-schedule",
            description=f"{names.prefix}: the retrain cadence",
            schedule=events.Schedule.expression(retrain.schedule),
            targets=[trigger_target],
        )
        self.rules["schedule"] = nag.cfn(schedule)

        CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic_arn)
        CfnOutput(self, "RetrainTriggerName", value=trigger.function_name)
        CfnOutput(self, "DeployerName", value=deployer.function_name)
