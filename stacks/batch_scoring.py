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

from pathlib import Path

from aws_cdk import Aws, CfnCondition, CfnOutput
from constructs import Construct

from boostline.config import BoostlineConfig

from .batch_definition import BatchJob, batch_pipeline_definition
from .iam import bucket_arn, objects_arn
from .live_model import LiveModel
from .live_model_job import LiveModelJob
from .naming import Names
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
        self.pipeline_name = f"{names.prefix}-batch"
        raw = names.bucket("raw", Aws.ACCOUNT_ID, Aws.REGION)
        nag_raw = names.bucket("raw", "<AWS::AccountId>", "<AWS::Region>")

        # ------------------------------------------------------------ job role
        live_job = LiveModelJob(
            self,
            config=config,
            stage=stage,
            names=names,
            storage=storage,
            archive_dir=archive_dir,
            role_name=f"{names.job_prefix}-batch-job",
            description=f"{names.prefix}: the batch scoring job",
        )
        job = live_job.role
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
            [objects_arn(raw, f"{BATCH_INPUT_PREFIX}/*"), live_job.model_archives],
            sid="ReadBatchInputAndModel",
        )
        job.allow(
            ["s3:PutObject"], [objects_arn(raw, f"{BATCH_OUTPUT_PREFIX}/*")], sid="WriteScores"
        )
        live_job.describe_live_package()
        for finding, reason in (
            (
                f"{nag_raw}/{BATCH_INPUT_PREFIX}/*",
                "Data owners name the files they put under the batch input prefix.",
            ),
            (
                f"{nag_raw}/{BATCH_OUTPUT_PREFIX}/*",
                "Each batch execution writes its scores under its own execution id.",
            ),
        ):
            job.acknowledge_wildcard(f"Resource::arn:<AWS::Partition>:s3:::{finding}", reason)
        self.job_role = job

        # ------------------------------------------------------------ pipeline and its role
        raw_uri = f"s3://{names.bucket('raw', '${AWS::AccountId}', '${AWS::Region}')}"
        definition = batch_pipeline_definition(
            BatchJob(
                **live_job.definition_fields(),
                instance_type=config.stage(stage).batch.instance_type,
                max_runtime_seconds=MAX_RUNTIME_SECONDS,
                input_uri=f"{raw_uri}/{BATCH_INPUT_PREFIX}/",
                output_uri=f"{raw_uri}/{BATCH_OUTPUT_PREFIX}",
                model_package="${ModelPackageArn}",
                threshold="${DecisionThreshold}",
            )
        )
        self.pipeline_role, self.pipeline = live_job.pipeline(
            pipeline_name=self.pipeline_name,
            role_name=f"{names.job_prefix}-batch-pipeline",
            description=f"{names.prefix}: data owners' CSVs scored by the live model",
            definition=definition,
            condition=condition,
            substitutions={
                "ModelPackageArn": live.model_package.value_as_string,
                "DecisionThreshold": live.threshold.value_as_string,
            },
        )

        CfnOutput(
            scope,
            "BatchPipelineName",
            value=self.pipeline_name,
            condition=condition,
            description="Scores data owners' CSVs with the live model (docs/infrastructure.md)",
        )
