"""The training pipeline: job roles, the model package group and the SageMaker Pipeline.

The pipeline definition comes from `pipeline_definition.build_definition` (the
SageMaker SDK, offline). It holds `${Name}` placeholders for what only exists at
deploy time; this stack resolves them with `Fn::Sub`. The training scripts and the
dataset schema reach SageMaker as CDK file assets.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from boostline.config import BoostlineConfig

from . import pipeline_definition as pd
from . import sagemaker_offline
from .iam import ServiceRole, arn, bucket_arn, objects_arn
from .naming import Names
from .network_stack import NetworkRefs
from .sourcedir import build_archive
from .storage_stack import StorageRefs

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPO_ROOT / "training_scripts"


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        network: NetworkRefs | None,
        archive_dir: Path,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage_config = config.stage(stage)
        retain = stage_config.retain_data
        key = storage.key
        # Bucket names come from the config, so no cross-stack export is needed for them.
        bucket = {p: names.bucket(p, Aws.ACCOUNT_ID, Aws.REGION) for p in storage.buckets}
        # ... and this is how cdk-nag spells them in finding ids.
        nag_bucket = {p: names.bucket(p, "<AWS::AccountId>", "<AWS::Region>") for p in bucket}
        image = sagemaker_offline.image_uri(config.training.framework_version, stage_config.region)
        image_account = image.split(".", 1)[0]
        image_repository = image.split("/", 1)[1].split(":", 1)[0]

        # ------------------------------------------------------------ code and schema
        source = s3_assets.Asset(
            self, "SourceDir", path=str(build_archive(SOURCE_DIR, archive_dir))
        )
        schema = s3_assets.Asset(self, "DatasetSchema", path=str(config.schema_path()))

        # ------------------------------------------------------------ roles
        def job_role(construct_id: str, suffix: str, what: str, kind: str) -> ServiceRole:
            # The code archive (and, for preprocessing, the dataset schema) arrive as
            # S3Prefix inputs on the CDK asset bucket.
            role = ServiceRole(
                self,
                construct_id,
                role_name=f"{names.job_prefix}-{suffix}",
                description=f"{names.prefix}: {what}",
            )
            role.use_key(key)
            role.job_basics(kind, image_account, image_repository)
            role.read_assets([schema, source] if suffix == "preprocess" else [source], "Assets")
            if network is not None:
                role.vpc_access(network.subnet_arns, network.security_group_arns)
            return role

        runs = f"{pd.Prefix.RUNS}/*"
        preprocess = job_role("PreprocessRole", "preprocess", "preprocessing job", "ProcessingJobs")
        preprocess.allow(["s3:ListBucket"], [bucket_arn(bucket["raw"])], sid="ListRawData")
        preprocess.allow(["s3:GetObject"], [objects_arn(bucket["raw"], "*")], sid="ReadRawData")
        preprocess.allow(
            ["s3:PutObject"], [objects_arn(bucket["processed"], runs)], sid="WriteProcessedData"
        )
        # The encode step reads every host's partials, the fit step's output: an S3Prefix
        # input, listed (runs/<execution id>/fit) and then read.
        fit = f"{pd.Prefix.RUNS}/*/{pd.Prefix.FIT}"
        preprocess.allow(
            ["s3:ListBucket"],
            [bucket_arn(bucket["processed"])],
            conditions={"StringLike": {"s3:prefix": [fit, f"{fit}/*"]}},
            sid="ListFitPartials",
        )
        preprocess.allow(
            ["s3:GetObject"], [objects_arn(bucket["processed"], f"{fit}/*")], sid="ReadFitPartials"
        )
        preprocess.allow(
            ["secretsmanager:GetSecretValue"], [storage.salt_secret.secret_arn], sid="ReadPiiSalt"
        )
        preprocess.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['raw']}/*",
            "The input prefix is a pipeline parameter, so the job may read any raw-data key.",
        )
        preprocess.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['processed']}/runs/*",
            "Each pipeline execution writes under runs/<execution id>/, known only at run time.",
        )
        preprocess.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['processed']}/{fit}/*",
            "The encode step reads the fit step's partials of its own execution, under "
            "runs/<execution id>/fit/, known only at run time.",
        )

        training = job_role(
            "TrainingRole", "training", "training jobs of the tuner", "TrainingJobs"
        )
        training.allow(
            ["s3:ListBucket"], [bucket_arn(bucket["processed"])], sid="ListProcessedData"
        )
        training.allow(
            ["s3:GetObject"], [objects_arn(bucket["processed"], runs)], sid="ReadProcessedData"
        )
        training.allow(
            ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
            [
                objects_arn(bucket["artifacts"], f"{pd.Prefix.MODELS}/*"),
                objects_arn(bucket["artifacts"], f"{pd.Prefix.CHECKPOINTS}/*"),
            ],
            sid="WriteModelsAndCheckpoints",
        )
        training.allow(
            ["s3:ListBucket"],
            [bucket_arn(bucket["artifacts"])],
            conditions={"StringLike": {"s3:prefix": [f"{pd.Prefix.CHECKPOINTS}/*"]}},
            sid="ListOwnCheckpoints",
        )
        training.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['processed']}/runs/*",
            "Each pipeline execution reads under runs/<execution id>/, known only at run time.",
        )
        for prefix in (pd.Prefix.MODELS, pd.Prefix.CHECKPOINTS):
            training.acknowledge_wildcard(
                f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/{prefix}/*",
                f"Training jobs write under {prefix}/<execution id>/<job name>/, known only at "
                "run time.",
            )

        evaluate = job_role("EvaluateRole", "evaluate", "evaluation job", "ProcessingJobs")
        evaluate.allow(
            ["s3:ListBucket"],
            [bucket_arn(bucket["processed"]), bucket_arn(bucket["artifacts"])],
            sid="ListInputs",
        )
        evaluate.allow(
            ["s3:GetObject"],
            [
                objects_arn(bucket["processed"], runs),
                objects_arn(bucket["artifacts"], f"{pd.Prefix.MODELS}/*"),
            ],
            sid="ReadTestDataAndModels",
        )
        evaluate.allow(
            ["s3:PutObject"], [objects_arn(bucket["artifacts"], runs)], sid="WriteEvaluation"
        )
        # The evaluation report's lineage: the tuning job's settings and its trials.
        evaluate.allow(
            [
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
            ],
            [arn("sagemaker", "hyper-parameter-tuning-job/*")],
            sid="ReadTuningTrials",
        )
        evaluate.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            "hyper-parameter-tuning-job/*",
            "SageMaker Pipelines generates the tuning job name at run time; the evaluation "
            "only reads the job and its trials.",
        )
        evaluate.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['processed']}/runs/*",
            "Each pipeline execution reads under runs/<execution id>/, known only at run time.",
        )
        evaluate.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/models/*",
            "The candidate and the champion are models of past or current executions.",
        )
        evaluate.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/runs/*",
            "Each pipeline execution writes under runs/<execution id>/, known only at run time.",
        )

        # ------------------------------------------------------------ model package group
        group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=names.model_package_group,
            model_package_group_description=f"{names.prefix}: loan-default XGBoost models",
        )
        group.apply_removal_policy(RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY)

        # ------------------------------------------------------------ pipeline role
        pipeline_role = ServiceRole(
            self,
            "PipelineRole",
            role_name=f"{names.job_prefix}-pipeline",
            description=f"{names.prefix}: the SageMaker Pipeline {names.pipeline}",
        )
        pipeline_role.run_processing_steps()
        pipeline_role.allow(
            [
                "sagemaker:AddTags",
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                "sagemaker:StopHyperParameterTuningJob",
            ],
            [arn("sagemaker", "hyper-parameter-tuning-job/*")],
            sid="RunTuningStep",
        )
        pipeline_role.allow(
            ["sagemaker:AddTags", "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            [
                arn("sagemaker", f"model-package-group/{names.model_package_group}"),
                arn("sagemaker", f"model-package/{names.model_package_group}/*"),
            ],
            sid="RegisterModels",
        )
        pipeline_role.pass_to_sagemaker(
            [preprocess.role.role_arn, training.role.role_arn, evaluate.role.role_arn],
            sid="PassJobRoles",
        )
        # The gate and the register step read evaluation.json (the property file).
        pipeline_role.allow(
            ["s3:GetObject"],
            [objects_arn(bucket["artifacts"], f"{pd.Prefix.RUNS}/*/evaluation/*")],
            sid="ReadEvaluation",
        )
        pipeline_role.allow(["kms:Decrypt"], [key.key_arn], sid="DecryptEvaluation")
        pipeline_role.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            "hyper-parameter-tuning-job/*",
            "SageMaker Pipelines generates the tuning job name at run time.",
        )
        pipeline_role.acknowledge_wildcard(
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"model-package/{names.model_package_group}/*",
            "Each registration creates a new numbered version in this one model package group.",
        )
        pipeline_role.acknowledge_wildcard(
            f"Resource::arn:<AWS::Partition>:s3:::{nag_bucket['artifacts']}/runs/*/evaluation/*",
            "The evaluation file sits under the execution id, known only at run time.",
        )

        # ------------------------------------------------------------ the pipeline
        subnets = network.subnet_ids if network is not None else ()
        refs = pd.DefinitionRefs.placeholders(
            source_key=source.s3_object_key,
            schema_key=schema.s3_object_key,
            vpc_subnets=len(subnets),
        )
        definition = pd.build_definition(config, stage, names, refs)
        body = pd.definition_json(definition)
        variables = {
            "PreprocessRole": preprocess.role.role_name,
            "TrainingRole": training.role.role_name,
            "EvaluateRole": evaluate.role.role_name,
            "KmsKeyArn": key.key_arn,
            "SaltSecretArn": storage.salt_secret.secret_arn,
            "AssetBucket": source.s3_bucket_name,
        }
        if network is not None:
            variables["JobSecurityGroup"] = network.security_group_id
            for i, subnet in enumerate(subnets, start=1):
                variables[f"Subnet{i}"] = subnet
        missing = set(pd.DefinitionRefs.placeholder_names(refs)) - set(variables)
        if missing:
            raise ValueError(f"no value for pipeline definition placeholders {sorted(missing)}")
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=names.pipeline,
            pipeline_display_name=names.pipeline,
            pipeline_description=(
                f"{names.prefix}: preprocess (fit, encode), tune, evaluate, gate, register "
                f"(XGBoost {config.training.framework_version})"
            ),
            role_arn=pipeline_role.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": Fn.sub(body, variables)},
        )
        self.pipeline.add_resource_dependency(group)
        # The roles are referenced already; their policies must be attached before the
        # pipeline can run a step.
        for role in (preprocess, training, evaluate, pipeline_role):
            self.pipeline.node.add_dependency(role.policy)

        CfnOutput(
            self,
            "PipelineName",
            value=names.pipeline,
            export_name=f"{names.prefix}-pipeline-name",
        )
        CfnOutput(
            self,
            "ModelPackageGroupName",
            value=names.model_package_group,
            export_name=f"{names.prefix}-model-package-group-name",
        )
        CfnOutput(self, "PipelineRoleArn", value=pipeline_role.role.role_arn)
        CfnOutput(self, "SourceArchiveUri", value=source.s3_object_url)
