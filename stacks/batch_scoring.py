"""Batch scoring from the live model: the pipeline `{prefix}-batch` and its two roles.

Data owners put CSVs (with their header) under `batch/input/` in the raw bucket; one
execution of the pipeline (stacks/batch_definition.py) scores a prefix of them into
`batch/output/<execution id>/`. It lives in the serving stack because that stack holds
the live model's parameters, which the deployer keeps current: the definition's
ModelPackageArn and DecisionThreshold defaults are substituted from them, so the
pipeline always scores with the model in service, and exists only while one is
(`HasModel`). Outside `batch/` in the raw bucket lies what the retrain trigger watches
(`raw/`); the job role can neither read it nor write there.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws, CfnCondition, CfnOutput, Fn
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from boostline.config import BoostlineConfig

from . import sagemaker_offline
from .batch_definition import BatchJob, batch_pipeline_definition
from .iam import ServiceRole, arn, bucket_arn, objects_arn
from .live_model import LiveModel
from .naming import Names
from .pipeline_stack import SOURCE_DIR
from .sourcedir import build_archive
from .storage_stack import StorageRefs

BATCH_INPUT_PREFIX = "batch/input"
BATCH_OUTPUT_PREFIX = "batch/output"
MAX_RUNTIME_SECONDS = 6 * 3600


class BatchScoring(Construct):
    """Job role, pipeline role and the batch pipeline, under `condition`."""

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
    ) -> None:
        super().__init__(scope, construct_id)
        stage_config = config.stage(stage)
        self.pipeline_name = f"{names.prefix}-batch"
        raw = names.bucket("raw", Aws.ACCOUNT_ID, Aws.REGION)
        artifacts = names.bucket("artifacts", Aws.ACCOUNT_ID, Aws.REGION)
        nag_raw = names.bucket("raw", "<AWS::AccountId>", "<AWS::Region>")
        nag_artifacts = names.bucket("artifacts", "<AWS::AccountId>", "<AWS::Region>")
        group = names.model_package_group
        source = s3_assets.Asset(
            self, "SourceDir", path=str(build_archive(SOURCE_DIR, archive_dir))
        )
        image = sagemaker_offline.image_uri(config.training.framework_version, stage_config.region)

        # ------------------------------------------------------------ job role
        job = ServiceRole(
            self,
            "JobRole",
            role_name=f"{names.job_prefix}-batch-job",
            description=f"{names.prefix}: the batch scoring job",
        )
        job.use_key(storage.key)
        job.job_basics(
            "ProcessingJobs", image.split(".", 1)[0], image.split("/", 1)[1].split(":")[0]
        )
        job.read_assets([source], "SourceArchive")  # an S3Prefix input: listed, then read
        job.allow(
            ["s3:ListBucket"],
            [bucket_arn(raw)],
            conditions={
                "StringLike": {"s3:prefix": [BATCH_INPUT_PREFIX, f"{BATCH_INPUT_PREFIX}/*"]}
            },
            sid="ListBatchInput",
        )
        job.allow(
            ["s3:GetObject"],
            [objects_arn(raw, f"{BATCH_INPUT_PREFIX}/*"), objects_arn(artifacts, "models/*")],
            sid="ReadBatchInputAndModel",
        )
        job.allow(
            ["s3:PutObject"], [objects_arn(raw, f"{BATCH_OUTPUT_PREFIX}/*")], sid="WriteScores"
        )
        job.allow(
            ["sagemaker:DescribeModelPackage"],
            [arn("sagemaker", f"model-package/{group}/*")],
            sid="DescribeLiveModelPackage",
        )
        for finding, reason in (
            (
                f"{nag_raw}/{BATCH_INPUT_PREFIX}/*",
                "Data owners name the files they put under the batch input prefix.",
            ),
            (
                f"{nag_raw}/{BATCH_OUTPUT_PREFIX}/*",
                "Each batch execution writes its scores under its own execution id.",
            ),
            (
                f"{nag_artifacts}/models/*",
                "The live model's archive sits under its training job, known only at deploy time.",
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
            role_name=f"{names.job_prefix}-batch-pipeline",
            description=f"{names.prefix}: the SageMaker Pipeline {self.pipeline_name}",
        )
        pipeline_role.run_processing_steps()
        pipeline_role.pass_to_sagemaker([job.role.role_arn], sid="PassJobRole")
        self.pipeline_role = pipeline_role

        # ------------------------------------------------------------ the pipeline
        definition = batch_pipeline_definition(
            BatchJob(
                image=image,
                role_arn="arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${JobRole}",
                kms_key_arn="${KmsKeyArn}",
                source_uri=f"s3://${{AssetBucket}}/{source.s3_object_key}",
                source_key=source.s3_object_key,
                instance_type=config.preprocess.instance_type,
                max_runtime_seconds=MAX_RUNTIME_SECONDS,
                region="${AWS::Region}",
                input_uri=f"s3://{names.bucket('raw', '${AWS::AccountId}', '${AWS::Region}')}/"
                f"{BATCH_INPUT_PREFIX}/",
                output_uri=f"s3://{names.bucket('raw', '${AWS::AccountId}', '${AWS::Region}')}/"
                f"{BATCH_OUTPUT_PREFIX}",
                model_package="${ModelPackageArn}",
                threshold="${DecisionThreshold}",
            )
        )
        pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.pipeline_name,
            pipeline_display_name=self.pipeline_name,
            pipeline_description=f"{names.prefix}: data owners' CSVs scored by the live model",
            role_arn=pipeline_role.role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": Fn.sub(
                    json.dumps(definition, separators=(",", ":")),
                    {
                        "JobRole": job.role.role_name,
                        "KmsKeyArn": storage.key.key_arn,
                        "AssetBucket": source.s3_bucket_name,
                        "ModelPackageArn": live.model_package.value_as_string,
                        "DecisionThreshold": live.threshold.value_as_string,
                    },
                )
            },
        )
        pipeline.cfn_options.condition = condition
        for role in (job, pipeline_role):
            pipeline.node.add_dependency(role.policy)
        self.pipeline = pipeline
        CfnOutput(
            scope,
            "BatchPipelineName",
            value=self.pipeline_name,
            condition=condition,
            description="Scores data owners' CSVs with the live model (docs/infrastructure.md)",
        )
