"""The SageMaker Pipeline definition, built at synth time with the SageMaker Python SDK v3.

PreprocessFit (Processing: preprocess.py --pass fit) -> Preprocess (Processing:
--pass encode) -> Tune (Tuning: train.py, Bayesian) -> Evaluate (Processing,
evaluation.json as a property file) -> Gate (Condition: absolute AUC threshold and
champion comparison) -> Register (RegisterModel with metrics and drift baselines)
or Fail.

Values that only exist once CloudFormation deploys (role ARNs, the key ARN, the
source archive's bucket, the subnets) enter as `${Name}` placeholders: the pipeline
stack hands the definition to `Fn::Sub` with a value for each. Bucket names use
`${AWS::AccountId}` and `${AWS::Region}` the same way. So the SDK only ever sees
plain strings, and the definition is a pure function of the config.

Why the script-mode settings are spelled out instead of using the SDK's
`SourceCode`: in v3, `SourceCode` makes the SDK package and upload the source
directory and its own driver scripts at definition time (with a timestamp in the
S3 key), which breaks both "no upload by the SDK" and "same input, same
definition". Here the source archive is a CDK asset; processing steps untar it,
training gets it as the `code` channel plus `sagemaker_program` and
`sagemaker_submit_directory` (the layout the framework container reads, which
also works with network isolation).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any

from boostline.config import BoostlineConfig, TuningRange
from stacks.naming import Names

from . import sagemaker_offline

DEFINITION_VERSION = "2020-12-01"
PROCESSING = "/opt/ml/processing"
CODE_DIR = "/opt/ml/code"
CODE_CHANNEL = "code"
TRAINING_CODE_DIR = f"/opt/ml/input/data/{CODE_CHANNEL}"
EVALUATION_FILE = "evaluation.json"
APPROVAL = {"auto": "Approved", "manual": "PendingManualApproval"}

# Step names: they appear in the console, in EventBridge events and in S3 keys.
PREPROCESS_FIT = "PreprocessFit"
PREPROCESS = "Preprocess"
TUNE = "Tune"
EVALUATE = "Evaluate"
GATE = "QualityGate"
REGISTER = "RegisterModel"
FAIL = "GateFailed"


def _role_arn(name: str) -> str:
    return f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}"


@dataclass(frozen=True)
class DefinitionRefs:
    """Deploy-time values, as the strings the definition carries.

    `placeholders()` gives the `${Name}` form used at synth; the pipeline stack maps
    each name to the real value with Fn::Sub. Tests can pass concrete strings.
    """

    preprocess_role_arn: str
    training_role_arn: str
    evaluate_role_arn: str
    kms_key_arn: str
    salt_secret_arn: str
    asset_bucket: str  # the CDK file-asset bucket
    source_key: str  # sourcedir.tar.gz, as an asset object key
    schema_key: str  # the dataset schema file, as an asset object key
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()

    @classmethod
    def placeholders(cls, source_key: str, schema_key: str, vpc_subnets: int = 0) -> DefinitionRefs:
        return cls(
            # ARN-shaped: the SDK looks up anything else with iam:GetRole.
            preprocess_role_arn=_role_arn("${PreprocessRole}"),
            training_role_arn=_role_arn("${TrainingRole}"),
            evaluate_role_arn=_role_arn("${EvaluateRole}"),
            kms_key_arn="${KmsKeyArn}",
            salt_secret_arn="${SaltSecretArn}",
            asset_bucket="${AssetBucket}",
            source_key=source_key,
            schema_key=schema_key,
            subnet_ids=tuple(f"${{Subnet{i}}}" for i in range(1, vpc_subnets + 1)),
            security_group_ids=("${JobSecurityGroup}",) if vpc_subnets else (),
        )

    @staticmethod
    def placeholder_names(refs: DefinitionRefs) -> list[str]:
        """The `${Name}` placeholders in refs (what Fn::Sub must be given)."""
        found: list[str] = []
        for field in fields(refs):
            value = getattr(refs, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                found.extend(re.findall(r"\$\{([A-Za-z0-9]+)\}", item))
        return sorted(set(found))

    @property
    def source_uri(self) -> str:
        return f"s3://{self.asset_bucket}/{self.source_key}"

    @property
    def schema_uri(self) -> str:
        return f"s3://{self.asset_bucket}/{self.schema_key}"


@dataclass(frozen=True)
class Buckets:
    raw: str
    processed: str
    artifacts: str

    @classmethod
    def for_names(cls, names: Names, account: str, region: str) -> Buckets:
        return cls(
            raw=names.bucket("raw", account, region),
            processed=names.bucket("processed", account, region),
            artifacts=names.bucket("artifacts", account, region),
        )


# Prefixes inside the buckets; the IAM policies are scoped to the same ones.
class Prefix:
    RAW_INPUT = "raw/"
    RUNS = "runs"  # processed and artifacts: runs/<execution id>/<what>
    FIT = "fit"  # processed: runs/<execution id>/fit/fit-<host>.json, the fit step's partials
    MODELS = "models"  # artifacts: models/<execution id>/<training job>/output/model.tar.gz
    CHECKPOINTS = "checkpoints"  # artifacts: checkpoints/<execution id>/...


def approval_status(config: BoostlineConfig, stage: str) -> str:
    return APPROVAL[config.stage(stage).model_approval]


def entry_command(script: str, archive: str, before: str = "") -> list[str]:
    """Processing entry: unpack the source archive, run the script with the job's arguments.

    The container arguments arrive as "$@" (`sh -c SCRIPT NAME ARGS...`).
    """
    lines = [
        "set -eu",
        f"mkdir -p {CODE_DIR}",
        f"tar -xzf {shlex.quote(archive)} -C {CODE_DIR}",
        before,
        f"cd {CODE_DIR}",
        f'exec python3 {shlex.quote(script)} "$@"',
    ]
    return ["/bin/sh", "-c", "\n".join(line for line in lines if line), "boostline"]


# Fetches the champion's model.tar.gz when ChampionModelDataUrl is an S3 URI: a processing
# input cannot be optional, and evaluate.py treats an empty champion directory as "none".
FETCH_CHAMPION = (
    f"mkdir -p {PROCESSING}/champion\n"
    'case "$BOOSTLINE_CHAMPION_MODEL_URL" in\n'
    '  s3://*) python3 -c \'import sys, boto3; b, k = sys.argv[1][5:].split("/", 1); '
    'boto3.client("s3").download_file(b, k, sys.argv[2])\' '
    f'"$BOOSTLINE_CHAMPION_MODEL_URL" {PROCESSING}/champion/model.tar.gz ;;\n'
    "esac"
)


def _range(spec: TuningRange) -> Any:
    from sagemaker.core.parameter import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
    )

    if spec.type == "categorical":
        return CategoricalParameter(list(spec.values or []))
    cls = IntegerParameter if spec.type == "integer" else ContinuousParameter
    low, high = (int(spec.min), int(spec.max)) if spec.type == "integer" else (spec.min, spec.max)
    return cls(low, high, scaling_type=spec.scaling)


def build_definition(
    config: BoostlineConfig, stage: str, names: Names, refs: DefinitionRefs
) -> dict[str, Any]:
    """The pipeline definition as a dict (JSON-ready), built offline with the SDK."""
    from training_scripts.train import metric_definitions

    config = config.for_stage(stage)  # the stage's job sizes (stages.<name>.jobs)
    stage_config = config.stage(stage)
    region = stage_config.region
    session = sagemaker_offline.offline_session(region)
    image = sagemaker_offline.image_uri(config.training.framework_version, region)
    buckets = Buckets.for_names(names, "${AWS::AccountId}", "${AWS::Region}")

    from sagemaker.core.drift_check_baselines import DriftCheckBaselines
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import NetworkConfig, Processor
    from sagemaker.core.shapes import (
        Channel,
        CheckpointConfig,
        DataSource,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
        S3DataSource,
    )
    from sagemaker.core.training.configs import (
        Compute,
        Networking,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.core.workflow.conditions import (
        ConditionGreaterThanOrEqualTo,
        ConditionLessThanOrEqualTo,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import (
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TuningStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.tuner import HyperparameterTuner

    execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID
    vpc = stage_config.vpc.enabled

    def s3(*parts: Any) -> Any:
        return Join(on="/", values=["s3:/", *parts])

    # ------------------------------------------------------------------ parameters
    input_prefix = ParameterString(
        name="InputDataPrefix", default_value=f"s3://{buckets.raw}/{Prefix.RAW_INPUT}"
    )
    processing_instance_type = ParameterString(
        name="ProcessingInstanceType", default_value=config.preprocess.instance_type
    )
    processing_instance_count = ParameterInteger(
        name="ProcessingInstanceCount", default_value=config.preprocess.instance_count
    )
    training_instance_type = ParameterString(
        name="TrainingInstanceType", default_value=config.training.instance_type
    )
    training_instance_count = ParameterInteger(
        name="TrainingInstanceCount", default_value=config.training.instance_count
    )
    evaluation_instance_type = ParameterString(
        name="EvaluationInstanceType", default_value=config.evaluation.instance_type
    )
    auc_threshold = ParameterFloat(name="AucThreshold", default_value=config.gate.min_auc)
    approval = ParameterString(
        name="ModelApprovalStatus",
        default_value=approval_status(config, stage),
        enum_values=["Approved", "PendingManualApproval", "Rejected"],
    )
    trigger_reason = ParameterString(name="TriggerReason", default_value="manual")
    champion_url = ParameterString(name="ChampionModelDataUrl", default_value="none")
    parameters = [
        input_prefix,
        processing_instance_type,
        processing_instance_count,
        training_instance_type,
        training_instance_count,
        evaluation_instance_type,
        auc_threshold,
        approval,
        trigger_reason,
        champion_url,
    ]

    network = (
        NetworkConfig(
            subnets=list(refs.subnet_ids),
            security_group_ids=list(refs.security_group_ids),
            encrypt_inter_container_traffic=True,
        )
        if vpc
        else None
    )
    code_input = ProcessingInput(
        input_name="code",
        s3_input=ProcessingS3Input(
            s3_uri=refs.source_uri,
            local_path=f"{PROCESSING}/input/code",
            s3_data_type="S3Prefix",
            s3_input_mode="File",
        ),
    )
    archive_in_processing = f"{PROCESSING}/input/code/{refs.source_key}"

    def processor(
        role: str,
        script: str,
        instance_type: Any,
        before: str = "",
        env: dict | None = None,
        instance_count: Any = 1,
    ) -> Processor:
        return Processor(
            role=role,
            image_uri=image,
            instance_count=instance_count,
            instance_type=instance_type,
            entrypoint=entry_command(script, archive_in_processing, before),
            volume_size_in_gb=30,
            volume_kms_key=refs.kms_key_arn,
            output_kms_key=refs.kms_key_arn,
            sagemaker_session=session,
            env={"BOOSTLINE_TRIGGER_REASON": trigger_reason, **(env or {})},
            network_config=network,
        )

    def s3_in(name: str, uri: Any, path: str, distribution: str = "FullyReplicated") -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=uri,
                local_path=path,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type=distribution,
            ),
        )

    def s3_out(name: str, uri: Any, path: str) -> Any:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=uri, local_path=path, s3_upload_mode="EndOfJob"),
        )

    # ------------------------------------------------------------------ preprocess
    # Two steps on ProcessingInstanceCount instances, each host with its own share of the
    # raw files (ShardedByS3Key: whole files, so preprocess.py refuses more hosts than
    # files). Every host uploads its output folders to the same S3 prefixes; the file
    # names carry the host, so the uploads never overwrite each other.
    pre = config.preprocess
    processed = (buckets.processed, Prefix.RUNS, execution_id)
    raw_data = s3_in("data", input_prefix, f"{PROCESSING}/input/data", "ShardedByS3Key")
    schema_input = s3_in("schema", refs.schema_uri, f"{PROCESSING}/input/schema")
    fit_dir = f"{PROCESSING}/input/fit"
    common_arguments = [
        "--input",
        f"{PROCESSING}/input/data",
        "--schema",
        f"{PROCESSING}/input/schema",
        "--output-dir",
        f"{PROCESSING}/output",
        # A string, as container arguments must be.
        *pre.arguments(Join(on="", values=[training_instance_count])),
    ]

    def preprocessor() -> Processor:
        # Both passes read the salt: fit records a check of it in its partials (when
        # the id is hashed), encode refuses partials made with another salt.
        return processor(
            refs.preprocess_role_arn,
            "preprocess.py",
            processing_instance_type,
            env={"BOOSTLINE_PII_SALT_SECRET_ARN": refs.salt_secret_arn},
            instance_count=processing_instance_count,
        )

    fit_args = preprocessor().run(
        inputs=[code_input, schema_input, raw_data],
        outputs=[s3_out("fit", s3(*processed, Prefix.FIT), f"{PROCESSING}/output/fit")],
        arguments=["--pass", "fit", *common_arguments],
    )
    preprocess_fit = ProcessingStep(
        name=PREPROCESS_FIT,
        step_args=fit_args,
        description="Validate the raw data and fit category levels and statistics, per shard",
    )
    fit_output = preprocess_fit.properties.ProcessingOutputConfig.Outputs["fit"].S3Output.S3Uri
    preprocess_outputs = ("train", "validation", "test", "manifest", "report")
    preprocess_args = preprocessor().run(
        inputs=[code_input, schema_input, raw_data, s3_in("fit", fit_output, fit_dir)],
        outputs=[
            s3_out(name, s3(*processed, name), f"{PROCESSING}/output/{name}")
            for name in preprocess_outputs
        ],
        arguments=["--pass", "encode", *common_arguments, "--fit-input", fit_dir],
    )
    preprocess = ProcessingStep(
        name=PREPROCESS,
        step_args=preprocess_args,
        description="Merge the fits; mask PII, encode, split and shard each host's raw data",
    )

    def preprocessed(name: str) -> Any:
        return preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # ------------------------------------------------------------------ tune
    training = config.training
    spot = training.spot.enabled
    static_hyperparameters: dict[str, Any] = {
        **{str(k): v for k, v in training.hyperparameters.items()},
        # Script mode, read by the framework container: run train.py from the archive
        # that arrives as the `code` channel.
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": f"{TRAINING_CODE_DIR}/{refs.source_key}",
        "sagemaker_region": region,
    }
    models_path = s3(buckets.artifacts, Prefix.MODELS, execution_id)
    trainer = ModelTrainer(
        training_image=image,
        role=refs.training_role_arn,
        sagemaker_session=session,
        base_job_name=names.prefix,
        compute=Compute(
            instance_type=training_instance_type,
            instance_count=training_instance_count,
            volume_size_in_gb=training.volume_size_gb,
            volume_kms_key_id=refs.kms_key_arn,
            enable_managed_spot_training=spot or None,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=training.max_runtime_seconds,
            max_wait_time_in_seconds=training.spot.max_wait_seconds if spot else None,
        ),
        output_data_config=OutputDataConfig(
            s3_output_path=models_path, kms_key_id=refs.kms_key_arn
        ),
        checkpoint_config=(
            CheckpointConfig(
                s3_uri=s3(buckets.artifacts, Prefix.CHECKPOINTS, execution_id),
                local_path="/opt/ml/checkpoints",
            )
            if spot
            else None
        ),
        networking=(
            Networking(
                subnets=list(refs.subnet_ids), security_group_ids=list(refs.security_group_ids)
            )
            if vpc
            else None
        ),
        hyperparameters=static_hyperparameters,
    )

    def channel(name: str, uri: Any, distribution: str, content_type: str | None) -> Any:
        return Channel(
            channel_name=name,
            content_type=content_type,
            data_source=DataSource(
                s3_data_source=S3DataSource(
                    s3_data_type="S3Prefix", s3_uri=uri, s3_data_distribution_type=distribution
                )
            ),
        )

    tuning = config.tuning
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=tuning.objective_metric,
        objective_type=tuning.objective_type,
        hyperparameter_ranges={name: _range(spec) for name, spec in sorted(tuning.ranges.items())},
        # train.py prints the lines of its eval_metric; the objective is one of them (config)
        metric_definitions=metric_definitions(config.training.eval_metric()),
        strategy=tuning.strategy,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
    )
    tune_args = tuner.tune(
        inputs=[
            # Each training instance gets its own shards; train.py runs them as one
            # distributed XGBoost job.
            channel("train", preprocessed("train"), "ShardedByS3Key", "text/csv"),
            channel("validation", preprocessed("validation"), "FullyReplicated", "text/csv"),
            channel("manifest", preprocessed("manifest"), "FullyReplicated", None),
            channel(CODE_CHANNEL, refs.source_uri, "FullyReplicated", None),
        ],
        wait=False,
    )
    tune = TuningStep(
        name=TUNE,
        step_args=tune_args,
        description=f"{tuning.strategy} search over train.py hyperparameters",
    )
    best_model = s3(
        buckets.artifacts,
        Prefix.MODELS,
        execution_id,
        tune.properties.BestTrainingJob.TrainingJobName,
        "output",
        "model.tar.gz",
    )

    # ------------------------------------------------------------------ evaluate
    ev = config.evaluation
    artifacts_run = (buckets.artifacts, Prefix.RUNS, execution_id)
    evaluation_file = PropertyFile(
        name="Evaluation", output_name="evaluation", path=EVALUATION_FILE
    )
    evaluate_outputs = ("evaluation", "baseline", "report", "code")
    evaluate_args = processor(
        refs.evaluate_role_arn,
        "evaluate.py",
        evaluation_instance_type,
        before="\n".join(
            [
                FETCH_CHAMPION,
                # The registered model package points at this copy of the archive, in a
                # bucket this app owns, not at the CDK asset (which `cdk gc` may delete).
                f"mkdir -p {PROCESSING}/output/code",
                f"cp {shlex.quote(archive_in_processing)} "
                f"{PROCESSING}/output/code/sourcedir.tar.gz",
            ]
        ),
        env={"BOOSTLINE_CHAMPION_MODEL_URL": champion_url},
    ).run(
        inputs=[
            code_input,
            s3_in("model", best_model, f"{PROCESSING}/input/model"),
            s3_in("test", preprocessed("test"), f"{PROCESSING}/input/test"),
            s3_in("validation", preprocessed("validation"), f"{PROCESSING}/input/validation"),
            s3_in("train", preprocessed("train"), f"{PROCESSING}/input/train"),
            s3_in("manifest", preprocessed("manifest"), f"{PROCESSING}/input/manifest"),
        ],
        outputs=[
            s3_out(name, s3(*artifacts_run, name), f"{PROCESSING}/output/{name}")
            for name in evaluate_outputs
        ],
        arguments=[
            "--model-dir",
            f"{PROCESSING}/input/model",
            "--test-dir",
            f"{PROCESSING}/input/test",
            "--train-dir",
            f"{PROCESSING}/input/train",
            "--validation-dir",  # the threshold is chosen there, then applied to test
            f"{PROCESSING}/input/validation",
            "--manifest-dir",
            f"{PROCESSING}/input/manifest",
            "--champion-model-dir",
            f"{PROCESSING}/champion",
            "--output-dir",
            f"{PROCESSING}/output",
            *ev.arguments(config.gate.max_auc_drop, config.gate.max_auc_below_logistic),
            # Lineage: the run, where the model is registered, and the tuning job whose
            # trials the evaluation reads back (DescribeHyperParameterTuningJob).
            "--pipeline-execution-id",
            execution_id,
            "--pipeline-execution-arn",
            ExecutionVariables.PIPELINE_EXECUTION_ARN,
            "--model-package-group",
            names.model_package_group,
            "--tuning-job-name",
            tune.properties.HyperParameterTuningJobName,
        ],
    )
    evaluate = ProcessingStep(
        name=EVALUATE,
        step_args=evaluate_args,
        property_files=[evaluation_file],
        description="Score the candidate (and the champion) on the held-out test set",
    )

    def evaluated(name: str) -> Any:
        return evaluate.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    def metric(path: str) -> Any:
        return JsonGet(step_name=EVALUATE, property_file=evaluation_file, json_path=path)

    auc = metric("binary_classification_metrics.auc.value")
    # A string, as container environment values and package metadata must be. The
    # deployer and the model-quality monitor read it from the package's metadata.
    decision_threshold = Join(on="", values=[metric("decision_threshold")])

    # ------------------------------------------------------------------ register / fail
    json_source = "application/json"
    builder = ModelBuilder(
        image_uri=image,
        s3_model_data_url=best_model,
        sagemaker_session=session,
        # Not used by a model package; ModelBuilder wants a role to be constructed.
        role_arn=refs.evaluate_role_arn,
        log_level=logging.ERROR,
        env_vars={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": Join(
                on="/", values=[evaluated("code"), "sourcedir.tar.gz"]
            ),
            "SAGEMAKER_REGION": region,
            "BOOSTLINE_DECISION_THRESHOLD": decision_threshold,
        },
    )
    register_args = builder.register(
        model_package_group_name=names.model_package_group,
        content_types=["text/csv"],
        response_types=["text/csv", "application/json"],
        # The stage's serving type among them: the deployer serves this package on it.
        inference_instances=sorted(
            {"ml.m5.large", "ml.m5.xlarge", stage_config.serving.instance_type}
        ),
        transform_instances=["ml.m5.xlarge"],
        approval_status=approval,
        description=f"{config.project} {stage}: XGBoost {config.training.framework_version}",
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(
                content_type=json_source,
                s3_uri=Join(on="/", values=[evaluated("evaluation"), EVALUATION_FILE]),
            ),
            model_data_statistics=MetricsSource(
                content_type=json_source,
                s3_uri=Join(on="/", values=[evaluated("baseline"), "statistics.json"]),
            ),
            model_data_constraints=MetricsSource(
                content_type=json_source,
                s3_uri=Join(on="/", values=[evaluated("baseline"), "constraints.json"]),
            ),
        ),
        drift_check_baselines=DriftCheckBaselines(
            model_data_statistics=MetricsSource(
                content_type=json_source,
                s3_uri=Join(on="/", values=[evaluated("baseline"), "statistics.json"]),
            ),
            model_data_constraints=MetricsSource(
                content_type=json_source,
                s3_uri=Join(on="/", values=[evaluated("baseline"), "constraints.json"]),
            ),
        ),
        customer_metadata_properties={
            "trigger_reason": trigger_reason,
            "pipeline_execution_id": execution_id,
            "decision_threshold": decision_threshold,
            "auc": Join(on="", values=[auc]),
        },
    )
    register = ModelStep(name=REGISTER, step_args=register_args)
    gate_config = config.gate
    conditions = [
        ConditionGreaterThanOrEqualTo(left=auc, right=auc_threshold),
        ConditionGreaterThanOrEqualTo(left=auc, right=metric("champion.min_auc_required")),
        ConditionGreaterThanOrEqualTo(left=auc, right=metric("logistic_baseline.min_auc_required")),
    ]
    ece_words: list[Any] = []
    if gate_config.max_ece is not None:
        ece = metric("calibration.expected_calibration_error_beyond_noise")
        conditions.append(ConditionLessThanOrEqualTo(left=ece, right=gate_config.max_ece))
        ece_words = [
            ", and its calibration error beyond the test set's noise ",
            ece,
            f" at most {gate_config.max_ece:g}",
        ]
    fail = FailStep(
        name=FAIL,
        error_message=Join(
            on="",
            values=[
                "Quality gate failed: test AUC ",
                auc,
                " must be at least AucThreshold ",
                auc_threshold,
                ", the champion's AUC minus the allowed drop ",
                metric("champion.min_auc_required"),
                " and the logistic-regression baseline's AUC minus its margin ",
                metric("logistic_baseline.min_auc_required"),
                *ece_words,
                ". The model was not registered; see the evaluation report at ",
                evaluated("report"),
            ],
        ),
    )
    gate = ConditionStep(
        name=GATE,
        conditions=conditions,
        if_steps=[register],
        else_steps=[fail],
    )

    pipeline = Pipeline(
        name=names.pipeline,
        parameters=parameters,
        steps=[preprocess_fit, preprocess, tune, evaluate, gate],
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )
    definition = json.loads(pipeline.definition())
    _patch_tuning_job(definition, volume_kms_key=refs.kms_key_arn, network_isolation=vpc)
    if definition.get("MlflowConfig") is None:
        definition.pop("MlflowConfig", None)
    return definition


def _patch_tuning_job(
    definition: dict[str, Any], volume_kms_key: str, network_isolation: bool
) -> None:
    """Settings the v3 tuner (3.27) drops between ModelTrainer and the job definition."""
    for step in definition["Steps"]:
        if step["Type"] != "Tuning":
            continue
        job = step["Arguments"]["TrainingJobDefinition"]
        job["ResourceConfig"]["VolumeKmsKeyId"] = volume_kms_key
        # Distributed training: the hosts exchange gradients-to-be (histograms); encrypt them.
        job["EnableInterContainerTrafficEncryption"] = True
        if network_isolation:
            job["EnableNetworkIsolation"] = True


def definition_json(definition: dict[str, Any]) -> str:
    """The definition body: compact, keys in SDK order, stable across runs."""
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=True)
