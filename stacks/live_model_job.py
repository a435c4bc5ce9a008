"""A processing pipeline whose job reads the live model package.

The batch pipeline (stacks/batch_scoring.py) and our own monitors (stacks/own_monitor.py)
are each one: a script of the source archive run in the XGBoost image; a job role that
uses the stage key, reads the archive, describes the live package version and reads its
model; a pipeline role that runs the Processing steps and passes that job role to
SageMaker, and nothing else; and the pipeline, its definition substituted with the job
role, the key and the asset bucket. What else the job reads and writes is the caller's.

Everything is built in the caller's own scope, under the ids it always had there
(SourceDir, JobRole, PipelineRole, Pipeline): logical IDs follow construct paths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnCondition, Fn
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from boostline.config import BoostlineConfig

from . import sagemaker_offline
from .iam import ServiceRole, arn, objects_arn
from .naming import Names
from .pipeline_stack import SOURCE_DIR
from .sourcedir import build_archive
from .storage_stack import StorageRefs

MODEL_ARCHIVES = "models/*"  # in the artifacts bucket, under each training job


class LiveModelJob:
    """The source archive (`SourceDir`), the image and the job role (`JobRole`) in scope."""

    def __init__(
        self,
        scope: Construct,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        archive_dir: Path,
        role_name: str,
        description: str,
        metric_namespaces: Sequence[str] = (),
    ) -> None:
        self.scope = scope
        self.names = names
        self.storage = storage
        self.source = s3_assets.Asset(
            scope, "SourceDir", path=str(build_archive(SOURCE_DIR, archive_dir))
        )
        self.image = sagemaker_offline.image_uri(
            config.training.framework_version, config.stage(stage).region
        )
        role = ServiceRole(scope, "JobRole", role_name=role_name, description=description)
        role.use_key(storage.key)
        role.job_basics(
            "ProcessingJobs",
            self.image.split(".", 1)[0],
            self.image.split("/", 1)[1].split(":")[0],
            metric_namespaces=metric_namespaces,
        )
        role.read_assets([self.source], "SourceArchive")  # an S3Prefix input: listed, then read
        self.role = role
        # The caller lists it in its own s3:GetObject statement, beside its other reads.
        self.model_archives = objects_arn(
            names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION), MODEL_ARCHIVES
        )

    def describe_live_package(self) -> None:
        """DescribeModelPackage on the group's versions, and the two wildcards acknowledged:
        the live version's and its model archive's (model_archives)."""
        group = self.names.model_package_group
        self.role.allow(
            ["sagemaker:DescribeModelPackage"],
            [arn("sagemaker", f"model-package/{group}/*")],
            sid="DescribeLiveModelPackage",
        )
        artifacts = self.names.bucket("artifacts", "<AWS::AccountId>", "<AWS::Region>")
        self.role.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{artifacts}/{MODEL_ARCHIVES}",
            "The live model's archive sits under its training job, known only at deploy time.",
        )
        self.role.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{group}/*",
            "The live version of the model package group is a stack parameter set at deploy time.",
        )

    def definition_fields(self) -> dict[str, str]:
        """The definition's job fields that `pipeline` substitutes (with `${AWS::...}`)."""
        return {
            "image": self.image,
            "role_arn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRole}",
            "kms_key_arn": "${KmsKeyArn}",
            "source_uri": f"s3://${{AssetBucket}}/{self.source.s3_object_key}",
            "source_key": self.source.s3_object_key,
            "region": "${AWS::Region}",
        }

    def pipeline(
        self,
        *,
        pipeline_name: str,
        role_name: str,
        description: str,
        definition: dict[str, Any],
        condition: CfnCondition,
        substitutions: dict[str, str] | None = None,
    ) -> tuple[ServiceRole, sagemaker.CfnPipeline]:
        """The pipeline role (`PipelineRole`) and the pipeline (`Pipeline`), under condition.

        `substitutions`: the definition's `${Name}`s besides definition_fields'.
        """
        pipeline_role = ServiceRole(
            self.scope,
            "PipelineRole",
            role_name=role_name,
            description=f"{self.names.prefix}: the SageMaker Pipeline {pipeline_name}",
        )
        pipeline_role.run_processing_steps()
        pipeline_role.pass_to_sagemaker([self.role.role.role_arn], sid="PassJobRole")
        pipeline = sagemaker.CfnPipeline(
            self.scope,
            "Pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=description,
            role_arn=pipeline_role.role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": Fn.sub(
                    json.dumps(definition, separators=(",", ":")),
                    {
                        "JobRole": self.role.role.role_name,
                        "KmsKeyArn": self.storage.key.key_arn,
                        "AssetBucket": self.source.s3_bucket_name,
                        **(substitutions or {}),
                    },
                )
            },
        )
        pipeline.cfn_options.condition = condition
        for role in (self.role, pipeline_role):
            pipeline.node.add_dependency(role.policy)
        return pipeline_role, pipeline
