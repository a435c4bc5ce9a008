"""One IAM role per component, each with one customer-managed policy.

Roles are scoped to named buckets and prefixes, the stage's key and named SageMaker
resources. No AWS managed policy is attached. Statements are written out (rather
than produced by `grant_*`) so a reviewer reads each role's whole permission set in
one place, and so they land in a managed policy instead of an inline one.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from . import nag

SAGEMAKER = "sagemaker.amazonaws.com"


def arn(service: str, resource: str, region: str = Aws.REGION) -> str:
    return f"arn:{Aws.PARTITION}:{service}:{region}:{Aws.ACCOUNT_ID}:{resource}"


def bucket_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{name}"


def objects_arn(name: str, prefix: str) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{name}/{prefix}"


class ServiceRole(Construct):
    """A role SageMaker assumes, with its own managed policy.

    Only principals acting for this account may assume it (aws:SourceAccount), which
    guards against the confused-deputy problem.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        description: str,
        service: str = SAGEMAKER,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            description=description,
            assumed_by=iam.ServicePrincipal(service).with_conditions(
                {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
        )
        self.policy = iam.ManagedPolicy(
            self, "Policy", description=f"Permissions of {role_name}", roles=[self.role]
        )

    def allow(
        self,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: dict | None = None,
        sid: str | None = None,
    ) -> None:
        self.policy.add_statements(
            iam.PolicyStatement(
                sid=sid,
                actions=sorted(actions),
                resources=list(resources),
                conditions=conditions,
            )
        )

    def read_assets(self, assets: Sequence[s3_assets.Asset], sid: str) -> None:
        """Read CDK file assets that a job receives as S3Prefix inputs.

        SageMaker lists an S3Prefix input before it downloads it, so the job needs
        s3:ListBucket on the asset bucket as well as s3:GetObject on the objects. The
        listing is limited to exactly these keys (s3:prefix), so the role cannot
        enumerate the other assets of the bootstrap bucket.
        """
        self.allow(
            ["s3:GetObject"],
            [asset.bucket.arn_for_objects(asset.s3_object_key) for asset in assets],
            sid=f"Read{sid}",
        )
        # Every file asset of a stack goes to the one bootstrap staging bucket.
        self.allow(
            ["s3:ListBucket"],
            [assets[0].bucket.bucket_arn],
            conditions={"StringEquals": {"s3:prefix": [a.s3_object_key for a in assets]}},
            sid=f"List{sid}",
        )

    def acknowledge_wildcard(self, finding: str, reason: str) -> None:
        """Acknowledge one AwsSolutions-IAM5 finding on this role's policy."""
        nag.acknowledge(nag.cfn(self.policy), f"AwsSolutions-IAM5[{finding}]", reason)

    # ------------------------------------------------------------ common grants

    def run_processing_steps(self) -> None:
        """What a SageMaker Pipeline's role needs for its Processing steps."""
        self.allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
            ],
            [arn("sagemaker", "processing-job/pipelines-*")],
            sid="RunProcessingSteps",
        )
        self.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            "processing-job/pipelines-*",
            "SageMaker Pipelines names each processing job pipelines-<execution>-<step>-<id> "
            "at run time.",
        )

    def pass_to_sagemaker(self, role_arns: Sequence[str], sid: str) -> None:
        """Pass the job roles to SageMaker, and to nothing else."""
        self.allow(
            ["iam:PassRole"],
            list(role_arns),
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            sid=sid,
        )

    def use_key(self, key: kms.IKey) -> None:
        """Encrypt and decrypt with the stage key; let SageMaker grant it to job volumes."""
        self.allow(
            [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
            ],
            [key.key_arn],
            sid="UseStageKey",
        )
        self.allow(
            ["kms:CreateGrant"],
            [key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            sid="GrantKeyToSageMakerVolumes",
        )
        self.acknowledge_wildcard(
            "Action::kms:GenerateDataKey*",
            "GenerateDataKey* covers the two data-key calls S3 and SageMaker make with this "
            "one key.",
        )
        self.acknowledge_wildcard(
            "Action::kms:ReEncrypt*",
            "ReEncrypt* covers re-encryption from and to this one key, which S3 uses when "
            "objects are copied.",
        )

    def job_basics(
        self,
        kind: str,
        image_account: str,
        image_repository: str,
        metric_namespaces: Sequence[str] = (),
    ) -> None:
        """Logs, metrics and the image pull every SageMaker job needs.

        kind: "ProcessingJobs" or "TrainingJobs" (the log group and metric namespace).
        metric_namespaces: the namespaces the job's own code publishes to, besides
        SageMaker's; callers pass the constants their alarms read, so the permission
        and the publisher cannot drift apart.
        """
        group = f"/aws/sagemaker/{kind}"
        self.allow(
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            [arn("logs", f"log-group:{group}"), arn("logs", f"log-group:{group}:log-stream:*")],
            sid="WriteJobLogs",
        )
        self.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{group}:log-stream:*",
            "SageMaker names one log stream per job and instance at run time, all in this "
            "one log group.",
        )
        self.allow(
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={
                "StringEquals": {
                    "cloudwatch:namespace": [f"/aws/sagemaker/{kind}", *metric_namespaces]
                }
            },
            sid="PutJobMetrics",
        )
        self.acknowledge_wildcard(
            "Resource::*",
            "CloudWatch metrics and the ECR login token have no resource ARN; the metric "
            "namespace is pinned by a condition.",
        )
        self.allow(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin")
        self.allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{image_account}:repository/{image_repository}"],
            sid="PullSageMakerXGBoostImage",
        )

    def vpc_access(self, subnet_arns: Sequence[str], security_group_arns: Sequence[str]) -> None:
        """What SageMaker needs to attach a job to the private subnets."""
        self.allow(
            [
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
            ],
            ["*"],
            sid="DescribeNetwork",
        )
        self.allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            [*subnet_arns, *security_group_arns, arn("ec2", "network-interface/*")],
            sid="JobNetworkInterfaces",
        )
        self.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*",
            "SageMaker creates the job's network interfaces at run time, so their ids are "
            "unknown; subnets and security group are named.",
        )
