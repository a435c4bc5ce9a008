"""Storage and security: the customer-managed key, the buckets, the PII salt secret.

Everything stateful lives here, so the other stacks can be destroyed and redeployed
freely. In production stages (`retain_data: true`) the key, the buckets and the
secret outlive the stack; in the others they are deleted with it, buckets emptied
first, so `cdk destroy` leaves nothing that bills.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Aws,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from boostline.config import BoostlineConfig, StageConfig

from . import nag
from .naming import Names


@dataclass(frozen=True)
class StorageRefs:
    """What the other stacks use from this one."""

    key: kms.IKey
    salt_secret: secretsmanager.ISecret
    buckets: dict[str, s3.IBucket]


class SecureBucket(Construct):
    """A versioned, KMS-encrypted, TLS-only, private bucket that logs its access."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        log_prefix: str,
        key: kms.IKey,
        access_logs: s3.IBucket,
        retain: bool,
        storage_days: int,
        lifecycle_rules: list[s3.LifecycleRule] | None = None,
        event_bridge: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(storage_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                *(lifecycle_rules or []),
            ],
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
            auto_delete_objects=not retain,
        )
        if event_bridge:
            # Natively in CloudFormation: the L2 `event_bridge_enabled` would add a
            # notifications Lambda just to flip this switch.
            cfn_bucket = nag.cfn(self.bucket)
            cfn_bucket.add_property_override(
                "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
            )
        nag.acknowledge(
            nag.cfn(self.bucket),
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Cross-region replication is a disaster-recovery choice left to each deployment; "
            "objects are versioned and, in production stages, retained.",
        )


class StorageStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage_config: StageConfig = config.stage(stage)
        retain = stage_config.retain_data
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        lifecycle = stage_config.storage

        self.key = kms.Key(
            self,
            "Key",
            alias=names.key_alias,
            description=f"{names.prefix}: data, jobs, data capture, monitoring, Lambda env",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=Duration.days(30 if retain else 7),
        )

        # S3 server access logs can only be delivered to an SSE-S3 bucket.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=names.bucket("access-logs", Aws.ACCOUNT_ID, Aws.REGION),
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(lifecycle.access_log_days),
                    noncurrent_version_expiration=Duration.days(1),
                )
            ],
            removal_policy=removal,
            auto_delete_objects=not retain,
        )
        access_logs_resource = nag.cfn(self.access_logs)
        nag.acknowledge(
            access_logs_resource,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 delivers server access logs only to buckets encrypted with SSE-S3, not SSE-KMS.",
        )
        nag.acknowledge(
            access_logs_resource,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs are kept for a fixed period in the region they describe.",
        )

        def bucket(purpose: str, construct_id: str, **extra) -> s3.IBucket:
            return SecureBucket(
                self,
                construct_id,
                bucket_name=names.bucket(purpose, Aws.ACCOUNT_ID, Aws.REGION),
                log_prefix=f"{purpose}/",
                key=self.key,
                access_logs=self.access_logs,
                retain=retain,
                storage_days=lifecycle.noncurrent_version_days,
                **extra,
            ).bucket

        self.buckets: dict[str, s3.IBucket] = {
            # New raw data raises EventBridge events (the retrain trigger listens).
            "raw": bucket("raw", "RawData", event_bridge=True),
            "processed": bucket("processed", "ProcessedData"),
            "artifacts": bucket(
                "artifacts",
                "Artifacts",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        id="expire-spot-checkpoints",
                        prefix="checkpoints/",
                        expiration=Duration.days(lifecycle.noncurrent_version_days),
                    )
                ],
            ),
            "capture": bucket(
                "capture",
                "DataCapture",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        id="expire-old-captures",
                        expiration=Duration.days(lifecycle.capture_days),
                    )
                ],
            ),
            "monitoring": bucket("monitoring", "MonitoringReports"),
        }

        self.salt_secret = secretsmanager.Secret(
            self,
            "PiiSalt",
            secret_name=names.salt_secret,
            description=f"{names.prefix}: salt for hashing PII columns in preprocessing",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
            removal_policy=removal,
        )
        reason = (
            "Rotating the salt would change every hashed identifier and break joins with "
            "earlier data, so it is rotated by hand with a full reprocessing."
        )
        nag.acknowledge(nag.cfn(self.salt_secret), "AwsSolutions-SMG4", reason)
        nag.acknowledge(
            nag.cfn(self.salt_secret), "NIST.800.53.R5-SecretsManagerRotationEnabled", reason
        )

        self.refs = StorageRefs(key=self.key, salt_secret=self.salt_secret, buckets=self.buckets)
        CfnOutput(self, "KmsKeyArn", value=self.key.key_arn, description="The data key")
        for purpose, b in {**self.buckets, "access-logs": self.access_logs}.items():
            label = "".join(part.title() for part in purpose.split("-"))
            CfnOutput(
                self,
                f"{label}BucketName",
                value=b.bucket_name,
                export_name=f"{names.prefix}-{purpose}-bucket",
            )
        CfnOutput(self, "PiiSaltSecretArn", value=self.salt_secret.secret_arn)
