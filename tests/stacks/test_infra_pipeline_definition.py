"""The SageMaker Pipeline definition as synthesized: steps, wiring, parameters, gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from stacks import pipeline_definition as pd
from stacks import sagemaker_offline
from training_scripts.train import METRIC_DEFINITIONS


def _pipeline(synth) -> dict:
    (pipeline,) = synth.resources("Pipeline", "AWS::SageMaker::Pipeline").values()
    return pipeline


def _body_and_variables(synth) -> tuple[str, dict]:
    sub = _pipeline(synth)["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    return sub[0], sub[1]


def _definition(synth) -> dict:
    body, _ = _body_and_variables(synth)
    return json.loads(body)


def _steps(definition: dict) -> dict[str, dict]:
    steps = {}
    for step in definition["Steps"]:
        steps[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for inner in step.get("Arguments", {}).get(branch, []):
                steps[inner["Name"]] = inner
    return steps


def _get(ref) -> str:
    assert isinstance(ref, dict) and set(ref) == {"Get"}, ref
    return ref["Get"]


def test_steps_and_types(dev):
    definition = _definition(dev)
    assert definition["Version"] == "2020-12-01"
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("PreprocessFit", "Processing"),
        ("Preprocess", "Processing"),
        ("Tune", "Tuning"),
        ("Evaluate", "Processing"),
        ("QualityGate", "Condition"),
    ]
    gate = definition["Steps"][4]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [("RegisterModel", "RegisterModel")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("GateFailed", "Fail")]


def test_parameters_and_defaults_come_from_config(dev, prod_vpc):
    params = {p["Name"]: p for p in _definition(dev)["Parameters"]}
    assert set(params) == {
        "InputDataPrefix",
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "TrainingInstanceCount",
        "EvaluationInstanceType",
        "AucThreshold",
        "ModelApprovalStatus",
        "TriggerReason",
        "ChampionModelDataUrl",
    }
    config = dev.config
    assert params["InputDataPrefix"]["DefaultValue"] == (
        "s3://boostline-dev-raw-${AWS::AccountId}-${AWS::Region}/raw/"
    )
    assert params["TrainingInstanceType"]["DefaultValue"] == config.training.instance_type
    assert params["EvaluationInstanceType"] == {
        "Name": "EvaluationInstanceType",
        "Type": "String",
        "DefaultValue": config.evaluation.instance_type,
    }
    assert params["TrainingInstanceCount"] == {
        "Name": "TrainingInstanceCount",
        "Type": "Integer",
        "DefaultValue": config.training.instance_count,
    }
    assert params["ProcessingInstanceCount"] == {
        "Name": "ProcessingInstanceCount",
        "Type": "Integer",
        "DefaultValue": config.preprocess.instance_count,
    }
    assert params["AucThreshold"]["Type"] == "Float"
    assert params["AucThreshold"]["DefaultValue"] == config.gate.min_auc
    assert params["ChampionModelDataUrl"]["DefaultValue"] == "none"
    # Approval: auto in dev, manual in prod.
    assert params["ModelApprovalStatus"]["DefaultValue"] == "Approved"
    prod = {p["Name"]: p for p in _definition(prod_vpc)["Parameters"]}
    assert prod["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"


def test_preprocessing_is_two_steps_on_the_processing_instance_count(dev):
    steps = _steps(_definition(dev))
    fit, encode = steps["PreprocessFit"]["Arguments"], steps["Preprocess"]["Arguments"]
    for step in (fit, encode):
        cluster = step["ProcessingResources"]["ClusterConfig"]
        assert cluster["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
        assert cluster["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
        inputs = {i["InputName"]: i["S3Input"] for i in step["ProcessingInputs"]}
        # each host its own raw files; the code and the schema on every host
        assert inputs["data"]["S3DataDistributionType"] == "ShardedByS3Key"
        assert _get(inputs["data"]["S3Uri"]) == "Parameters.InputDataPrefix"
        assert inputs["code"]["S3DataDistributionType"] == "FullyReplicated"
        assert inputs["schema"]["S3DataDistributionType"] == "FullyReplicated"
        # both passes read the salt (fit checks it in its partials, encode hashes with it)
        assert step["Environment"]["BOOSTLINE_PII_SALT_SECRET_ARN"] == "${SaltSecretArn}"
        assert step["RoleArn"] == fit["RoleArn"]
    fit_args = fit["AppSpecification"]["ContainerArguments"]
    encode_args = encode["AppSpecification"]["ContainerArguments"]
    assert fit_args[:2] == ["--pass", "fit"] and "--fit-input" not in fit_args
    assert encode_args[:2] == ["--pass", "encode"]
    # the same settings in both passes, or the partials would not fit the encoding
    assert fit_args[2:] == encode_args[2 : encode_args.index("--fit-input")]
    (fit_out,) = fit["ProcessingOutputConfig"]["Outputs"]
    assert fit_out["OutputName"] == "fit"
    assert fit_out["S3Output"]["LocalPath"] == "/opt/ml/processing/output/fit"
    assert fit_out["S3Output"]["S3Uri"]["Std:Join"]["Values"][2:] == [
        "runs",
        {"Get": "Execution.PipelineExecutionId"},
        "fit",
    ]
    # every host's partials reach every encode host, where --fit-input says
    partials = {i["InputName"]: i["S3Input"] for i in encode["ProcessingInputs"]}["fit"]
    assert _get(partials["S3Uri"]) == (
        "Steps.PreprocessFit.ProcessingOutputConfig.Outputs['fit'].S3Output.S3Uri"
    )
    assert partials["S3DataDistributionType"] == "FullyReplicated"
    assert partials["LocalPath"] == "/opt/ml/processing/input/fit"
    assert encode_args[encode_args.index("--fit-input") + 1] == partials["LocalPath"]


def test_the_processing_instance_count_defaults_to_the_config(dev_config):
    config = dev_config.model_copy(
        update={"preprocess": dev_config.preprocess.model_copy(update={"instance_count": 3})}
    )
    from stacks.naming import names_for

    refs = pd.DefinitionRefs.placeholders(source_key="a.tar.gz", schema_key="b.yaml")
    definition = pd.build_definition(config, "dev", names_for(config, "dev"), refs)
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["ProcessingInstanceCount"]["DefaultValue"] == 3


def test_each_step_runs_on_its_own_instance_parameters(dev_config):
    from stacks.naming import names_for

    config = dev_config.model_copy(
        update={
            "evaluation": dev_config.evaluation.model_copy(
                update={"instance_type": "ml.m5.2xlarge"}
            ),
            "preprocess": dev_config.preprocess.model_copy(
                update={"instance_type": "ml.c5.xlarge"}
            ),
        }
    )
    refs = pd.DefinitionRefs.placeholders(source_key="a.tar.gz", schema_key="b.yaml")
    definition = pd.build_definition(config, "dev", names_for(config, "dev"), refs)
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["EvaluationInstanceType"] == "ml.m5.2xlarge"
    assert params["ProcessingInstanceType"] == "ml.c5.xlarge"
    steps = _steps(definition)
    clusters = {
        name: steps[name]["Arguments"]["ProcessingResources"]["ClusterConfig"]
        for name in ("PreprocessFit", "Preprocess", "Evaluate")
    }
    for name in ("PreprocessFit", "Preprocess"):
        assert clusters[name]["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
        assert clusters[name]["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    # One host: evaluate.py reads every test row itself.
    assert clusters["Evaluate"]["InstanceType"] == {"Get": "Parameters.EvaluationInstanceType"}
    assert clusters["Evaluate"]["InstanceCount"] == 1
    resources = steps["Tune"]["Arguments"]["TrainingJobDefinition"]["ResourceConfig"]
    assert resources["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert resources["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}


def test_preprocess_reads_the_input_parameter_and_writes_per_execution(dev):
    step = _steps(_definition(dev))["Preprocess"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in step["ProcessingInputs"]}
    assert _get(inputs["data"]["S3Uri"]) == "Parameters.InputDataPrefix"
    assert inputs["code"]["S3Uri"].startswith("s3://${AssetBucket}/")
    assert inputs["schema"]["S3Uri"].startswith("s3://${AssetBucket}/")
    assert inputs["schema"]["S3Uri"].endswith(".yaml")
    outputs = {o["OutputName"]: o["S3Output"] for o in step["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {"train", "validation", "test", "manifest", "report"}
    for name, out in outputs.items():
        values = out["S3Uri"]["Std:Join"]["Values"]
        assert values[2:] == ["runs", {"Get": "Execution.PipelineExecutionId"}, name]
    args = step["AppSpecification"]["ContainerArguments"]
    pre = dev.config.preprocess
    assert args[args.index("--train-shards") + 1] == str(pre.train_shards)
    assert args[args.index("--seed") + 1] == str(pre.seed)
    assert step["Environment"]["BOOSTLINE_PII_SALT_SECRET_ARN"] == "${SaltSecretArn}"
    entry = step["AppSpecification"]["ContainerEntrypoint"]
    assert entry[:2] == ["/bin/sh", "-c"] and 'exec python3 preprocess.py "$@"' in entry[2]


def test_tuning_reads_preprocess_outputs_sharded_and_uses_config(dev):
    step = _steps(_definition(dev))["Tune"]["Arguments"]
    job = step["TrainingJobDefinition"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "manifest", "code"}
    for name in ("train", "validation", "manifest"):
        assert _get(channels[name]["S3Uri"]) == (
            f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"
        )
    assert channels["train"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert channels["validation"]["S3DataDistributionType"] == "FullyReplicated"
    assert channels["manifest"]["S3DataDistributionType"] == "FullyReplicated"
    # Distributed: the instance count is a parameter (default > 1 in the config).
    assert _get(job["ResourceConfig"]["InstanceCount"]) == "Parameters.TrainingInstanceCount"
    assert dev.config.training.instance_count > 1
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    assert job["OutputDataConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    assert job["EnableInterContainerTrafficEncryption"] is True
    # Script mode from the code channel.
    static = job["StaticHyperParameters"]
    assert static["sagemaker_program"] == "train.py"
    key = channels["code"]["S3Uri"].removeprefix("s3://${AssetBucket}/")
    assert static["sagemaker_submit_directory"] == f"/opt/ml/input/data/code/{key}"
    for name, value in dev.config.training.hyperparameters.items():
        assert static[name] == str(value)
    # Tuning: Bayesian, budget, objective and metric regexes from the same config and train.py.
    tuning = dev.config.tuning
    config = step["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == tuning.strategy
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": tuning.max_jobs,
        "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
    }
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": tuning.objective_type,
        "MetricName": "validation:auc",
    }
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    ranges = {
        r["Name"]: (kind, r) for kind, items in config["ParameterRanges"].items() for r in items
    }
    assert set(ranges) == set(tuning.ranges)
    for name, spec in tuning.ranges.items():
        kind, r = ranges[name]
        assert kind.lower().startswith(spec.type)
        assert float(r["MinValue"]) == spec.min and float(r["MaxValue"]) == spec.max
        assert r["ScalingType"] == spec.scaling
        assert name not in static


def test_spot_training_with_checkpoints_follows_config(dev):
    job = _steps(_definition(dev))["Tune"]["Arguments"]["TrainingJobDefinition"]
    spot = dev.config.training.spot
    assert spot.enabled
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {
        "MaxRuntimeInSeconds": dev.config.training.max_runtime_seconds,
        "MaxWaitTimeInSeconds": spot.max_wait_seconds,
    }
    values = job["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
    assert values[1].startswith("boostline-dev-artifacts-") and values[2] == "checkpoints"
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"


def test_evaluate_reads_the_best_model_and_the_test_split(dev):
    step = _steps(_definition(dev))["Evaluate"]
    args = step["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in args["ProcessingInputs"]}
    model = inputs["model"]["Std:Join"]["Values"]
    assert {"Get": "Steps.Tune.BestTrainingJob.TrainingJobName"} in model
    assert model[-2:] == ["output", "model.tar.gz"]
    for name in ("test", "train", "manifest"):
        assert _get(inputs[name]) == (
            f"Steps.Preprocess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"
        )
    assert step["PropertyFiles"] == [
        {
            "PropertyFileName": "Evaluation",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ]
    assert _get(args["Environment"]["BOOSTLINE_CHAMPION_MODEL_URL"]) == (
        "Parameters.ChampionModelDataUrl"
    )
    cli = args["AppSpecification"]["ContainerArguments"]
    assert cli[cli.index("--auc-margin") + 1] == str(dev.config.gate.max_auc_drop)
    margin = cli[cli.index("--baseline-auc-margin") + 1]
    assert margin == str(dev.config.gate.max_auc_below_logistic)
    assert cli[cli.index("--threshold-rule") + 1] == dev.config.evaluation.threshold_rule


def test_evaluate_is_told_its_run_its_model_group_and_its_tuning_job(dev):
    args = _steps(_definition(dev))["Evaluate"]["Arguments"]
    cli = args["AppSpecification"]["ContainerArguments"]

    def after(flag: str):
        return cli[cli.index(flag) + 1]

    assert after("--pipeline-execution-id") == {"Get": "Execution.PipelineExecutionId"}
    assert after("--pipeline-execution-arn") == {"Get": "Execution.PipelineExecutionArn"}
    assert after("--model-package-group") == "boostline-dev-models"
    assert after("--tuning-job-name") == {"Get": "Steps.Tune.HyperParameterTuningJobName"}


def test_gate_reads_auc_from_the_property_file(dev):
    gate = _steps(_definition(dev))["QualityGate"]["Arguments"]
    absolute, champion, baseline, ece = gate["Conditions"]
    for condition in (absolute, champion, baseline):
        assert condition["Type"] == "GreaterThanOrEqualTo"
        assert condition["LeftValue"] == {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Evaluation"},
                "Path": "binary_classification_metrics.auc.value",
            }
        }
    assert absolute["RightValue"] == {"Get": "Parameters.AucThreshold"}
    assert champion["RightValue"]["Std:JsonGet"]["Path"] == "champion.min_auc_required"
    # a model worse than logistic regression does not ship, nor one off in its probabilities
    assert baseline["RightValue"]["Std:JsonGet"]["Path"] == "logistic_baseline.min_auc_required"
    assert ece["Type"] == "LessThanOrEqualTo"
    path = "calibration.expected_calibration_error_beyond_noise"
    assert ece["LeftValue"]["Std:JsonGet"]["Path"] == path
    assert ece["RightValue"] == dev.config.gate.max_ece
    fail = _steps(_definition(dev))["GateFailed"]["Arguments"]["ErrorMessage"]
    assert "Quality gate failed" in json.dumps(fail)
    assert "logistic-regression baseline" in json.dumps(fail)


def test_register_model_carries_metrics_baselines_and_inference_settings(dev):
    register = _steps(_definition(dev))["RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == "boostline-dev-models"
    assert _get(register["ModelApprovalStatus"]) == "Parameters.ModelApprovalStatus"
    (container,) = register["InferenceSpecification"]["Containers"]
    assert container["Image"] == sagemaker_offline.image_uri(
        dev.config.training.framework_version, "eu-west-1"
    )
    assert {"Get": "Steps.Tune.BestTrainingJob.TrainingJobName"} in (
        container["ModelDataUrl"]["Std:Join"]["Values"]
    )
    env = container["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['code'].S3Output.S3Uri"},
        "sourcedir.tar.gz",
    ]
    threshold = env["BOOSTLINE_DECISION_THRESHOLD"]["Std:Join"]["Values"][0]["Std:JsonGet"]
    assert threshold["Path"] == "decision_threshold"
    metrics = register["ModelMetrics"]
    assert metrics["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]["Values"][-1] == (
        "evaluation.json"
    )
    for block in (metrics["ModelDataQuality"], register["DriftCheckBaselines"]["ModelDataQuality"]):
        assert block["Statistics"]["S3Uri"]["Std:Join"]["Values"][-1] == "statistics.json"
        assert block["Constraints"]["S3Uri"]["Std:Join"]["Values"][-1] == "constraints.json"


def test_every_placeholder_has_a_value_and_nothing_else_is_substituted(any_synth):
    body, variables = _body_and_variables(any_synth)
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    pseudo = {n for n in names if n.startswith("AWS::")}
    assert pseudo <= {"AWS::AccountId", "AWS::Region", "AWS::Partition"}
    assert names - pseudo == set(variables)
    assert sagemaker_offline.UNUSED_BUCKET not in body


def test_vpc_mode_puts_jobs_in_private_subnets_and_isolates_training(prod_vpc, dev):
    steps = _steps(_definition(prod_vpc))
    for name in ("PreprocessFit", "Preprocess", "Evaluate"):
        network = steps[name]["Arguments"]["NetworkConfig"]
        assert network["VpcConfig"] == {
            "SecurityGroupIds": ["${JobSecurityGroup}"],
            "Subnets": ["${Subnet1}", "${Subnet2}"],
        }
        assert network["EnableInterContainerTrafficEncryption"] is True
    job = steps["Tune"]["Arguments"]["TrainingJobDefinition"]
    assert job["EnableNetworkIsolation"] is True
    assert job["VpcConfig"] == {
        "SecurityGroupIds": ["${JobSecurityGroup}"],
        "Subnets": ["${Subnet1}", "${Subnet2}"],
    }
    dev_steps = _steps(_definition(dev))
    assert "NetworkConfig" not in dev_steps["PreprocessFit"]["Arguments"]
    assert "NetworkConfig" not in dev_steps["Preprocess"]["Arguments"]
    assert "EnableNetworkIsolation" not in dev_steps["Tune"]["Arguments"]["TrainingJobDefinition"]


def test_definition_is_byte_identical_across_synths(dev, dev_again):
    assert _body_and_variables(dev) == _body_and_variables(dev_again)
    assert dev.template("Pipeline") == dev_again.template("Pipeline")
    for path in sorted(dev.outdir.glob("asset.*")):
        twin = dev_again.outdir / path.name
        assert twin.exists(), path.name
        if path.is_file():
            assert path.read_bytes() == twin.read_bytes(), path.name


def test_definition_builder_refuses_network_calls():
    session = sagemaker_offline.offline_session("eu-west-1")
    with pytest.raises(sagemaker_offline.OfflineViolation):
        session.boto_session.client("s3").list_buckets()


def test_definition_is_a_pure_function_of_config_and_refs(dev_config):
    from stacks.naming import names_for

    refs = pd.DefinitionRefs.placeholders(source_key="a.tar.gz", schema_key="b.yaml")
    names = names_for(dev_config, "dev")
    first = pd.definition_json(pd.build_definition(dev_config, "dev", names, refs))
    second = pd.definition_json(pd.build_definition(dev_config, "dev", names, refs))
    assert first == second
    assert pd.DefinitionRefs.placeholder_names(refs) == sorted(
        [
            "AssetBucket",
            "EvaluateRole",
            "KmsKeyArn",
            "PreprocessRole",
            "SaltSecretArn",
            "TrainingRole",
        ]
    )


def test_registered_package_carries_the_decision_threshold_the_deployer_reads(dev):
    # The deployer and the model-quality monitor read the threshold from the package's
    # CustomerMetadataProperties; without it every deploy would serve at 0.5.
    steps = _steps(_definition(dev))
    properties = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    env = steps["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"][0][
        "Environment"
    ]
    assert properties["decision_threshold"] == env["BOOSTLINE_DECISION_THRESHOLD"]
    (value,) = properties["decision_threshold"]["Std:Join"]["Values"]
    assert value["Std:JsonGet"]["Path"] == "decision_threshold"
    assert value["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.Evaluate.PropertyFiles.Evaluation"
    }
    (auc,) = properties["auc"]["Std:Join"]["Values"]
    assert auc["Std:JsonGet"]["Path"] == "binary_classification_metrics.auc.value"


@pytest.mark.parametrize("step", ["PreprocessFit", "Preprocess"])
def test_preprocess_refuses_more_training_hosts_than_shards(dev, step):
    # The TrainingInstanceCount parameter can be raised per execution; preprocessing
    # gets it and fails the run before anything is trained (training_scripts/preprocess.py).
    args = _steps(_definition(dev))[step]["Arguments"]["AppSpecification"]["ContainerArguments"]
    flag = args.index("--training-instance-count")
    assert args[flag + 1] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.TrainingInstanceCount"}]}
    }
    shards = args[args.index("--train-shards") + 1]
    assert shards == str(dev.config.preprocess.train_shards)


def test_a_stage_sizes_its_own_jobs(tmp_path):
    from boostline.config import load_config
    from stacks.naming import names_for

    repo = Path(__file__).resolve().parents[2]
    raw = yaml.safe_load((repo / "config" / "boostline.yaml").read_text())
    raw["dataset_schema"] = str(repo / "boostline" / "data" / "loan_schema.yaml")
    raw["stages"]["prod"]["jobs"] = {
        "preprocess": {"instance_type": "ml.m5.2xlarge", "instance_count": 4},
        "training": {"instance_count": 3},
        "evaluation": {"instance_type": "ml.m5.4xlarge"},
    }
    path = tmp_path / "boostline.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    refs = pd.DefinitionRefs.placeholders(source_key="a.tar.gz", schema_key="b.yaml")
    defaults = {}
    for stage in ("dev", "prod"):
        definition = pd.build_definition(config, stage, names_for(config, stage), refs)
        defaults[stage] = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert defaults["prod"]["ProcessingInstanceType"] == "ml.m5.2xlarge"
    assert defaults["prod"]["ProcessingInstanceCount"] == 4
    assert defaults["prod"]["TrainingInstanceCount"] == 3
    assert defaults["prod"]["TrainingInstanceType"] == config.training.instance_type  # unset
    assert defaults["prod"]["EvaluationInstanceType"] == "ml.m5.4xlarge"
    # dev keeps the top-level sizes
    assert defaults["dev"]["ProcessingInstanceType"] == config.preprocess.instance_type
    assert defaults["dev"]["ProcessingInstanceCount"] == config.preprocess.instance_count
    assert defaults["dev"]["TrainingInstanceCount"] == config.training.instance_count


def test_the_tuner_reads_the_lines_of_the_configured_eval_metric(tmp_path):
    from boostline.config import load_config
    from stacks.naming import names_for
    from training_scripts.train import metric_definitions

    repo = Path(__file__).resolve().parents[2]
    raw = yaml.safe_load((repo / "config" / "boostline.yaml").read_text())
    raw["dataset_schema"] = str(repo / "boostline" / "data" / "loan_schema.yaml")
    raw["training"]["hyperparameters"]["eval_metric"] = "logloss"
    raw["tuning"].update(objective_metric="validation:logloss", objective_type="Minimize")
    path = tmp_path / "boostline.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    refs = pd.DefinitionRefs.placeholders(source_key="a.tar.gz", schema_key="b.yaml")
    definition = pd.build_definition(config, "dev", names_for(config, "dev"), refs)
    tune = _steps(definition)["Tune"]["Arguments"]
    job = tune["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions("logloss")
    assert tune["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "validation:logloss",
    }
    assert job["StaticHyperParameters"]["eval_metric"] == "logloss"
