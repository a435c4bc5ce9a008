"""The synthesized dev pipeline definition, executed on small generated data, and broken
copies of its assembly that must break the run where AWS would: a changed definition,
or a role's policy without a grant its job needs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from light_stage import Light

from boostline.config import BoostlineConfig, load_config
from boostline.data.generator import generate_to_dir
from boostline.local.assembly import Assembly, AssemblyError, open_assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.pipeline import (
    PipelineFailed,
    PipelineRun,
    champion_model_data_url,
    local_s3,
    run_pipeline,
)
from boostline.local.pipeline_executor import ExecutionError, PipelineExecutor
from boostline.local.workdir import Workdir
from boostline.progress import Progress
from boostline.registry import ModelPackage, Registry

pytestmark = pytest.mark.slow

ROWS = 5000
REGION = "eu-west-1"


def _workdir(root: Path) -> Workdir:
    workdir = Workdir.at(root)
    generate_to_dir(ROWS, workdir.bucket("raw") / "raw" / "loans", seed=0, shards=2)
    return workdir


def _run(
    workdir: Workdir,
    assembly: Assembly,
    config: BoostlineConfig | None = None,
    **parameters: Any,
) -> PipelineRun:
    """A run of the assembly's definition; `config` is the one it was synthesized from."""
    return run_pipeline(
        workdir,
        config or load_config(),
        stage="dev",
        parameters={"TrainingInstanceCount": 2, **parameters},
        assembly=assembly,
        max_trials=2,
        progress=Progress(quiet=True),
    )


def _mutated(
    assembly: Assembly, target: Path, change: Callable[[dict[str, Any]], None]
) -> Assembly:
    """A copy of the assembly whose pipeline definition body `change` edited in place."""
    shutil.copytree(assembly.dir, target, symlinks=True)
    template_path = target / "Pipeline.template.json"
    template = json.loads(template_path.read_text())
    (resource,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline"
    ]
    sub = resource["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    definition = json.loads(sub[0])
    change(definition)
    sub[0] = json.dumps(definition)
    template_path.write_text(json.dumps(template))
    return open_assembly(target)


def _without_grant(assembly: Assembly, target: Path, policy: str, sid: str) -> Assembly:
    """A copy of the assembly whose Pipeline-stack policy `policy` (logical id prefix)
    lost its statement `sid`."""
    shutil.copytree(assembly.dir, target, symlinks=True)
    template_path = target / "Pipeline.template.json"
    template = json.loads(template_path.read_text())
    (resource,) = [r for k, r in template["Resources"].items() if k.startswith(policy)]
    statements = resource["Properties"]["PolicyDocument"]["Statement"]
    kept = [s for s in statements if s.get("Sid") != sid]
    assert len(kept) == len(statements) - 1, f"{policy} has no statement {sid}"
    statements[:] = kept
    template_path.write_text(json.dumps(template))
    return open_assembly(target)


def _step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    steps = list(definition["Steps"])
    while steps:
        step = steps.pop(0)
        if step["Name"] == name:
            return step
        steps += step.get("Arguments", {}).get("IfSteps", [])
        steps += step.get("Arguments", {}).get("ElseSteps", [])
    raise KeyError(name)


def assert_registered_threshold_is_the_evaluations(package: ModelPackage) -> None:
    """The threshold the deployer serves (the package's metadata) is the one evaluate chose."""
    evaluation = json.loads(package.evaluation.read_text())
    registered = package.data["CustomerMetadataProperties"].get("decision_threshold")
    assert registered is not None, "the package carries no decision_threshold"
    assert float(registered) == pytest.approx(evaluation["decision_threshold"])
    environment = package.data["InferenceSpecification"]["Containers"][0]["Environment"]
    assert float(environment["BOOSTLINE_DECISION_THRESHOLD"]) == float(registered)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, dev_assembly: Assembly):
    workdir = _workdir(tmp_path_factory.mktemp("executed"))
    run = _run(workdir, dev_assembly, TriggerReason="schedule")
    return workdir, run


def test_the_dev_definition_runs_end_to_end(executed, dev_assembly: Assembly) -> None:
    workdir, run = executed
    definition = dev_assembly.pipeline_definition(REGION, ACCOUNT)
    assert run.status == "Succeeded"
    top = [s["Name"] for s in definition["Steps"]]
    assert list(run.steps) == [*top, "RegisterModel"]
    assert all(s["status"] == "Succeeded" for s in run.steps.values())
    assert run.steps["QualityGate"]["outcome"] is True
    assert run.model_package_version == 1
    assert run.model_approval_status == "Approved"  # the dev stage's ModelApprovalStatus default
    assert len(run.steps["Tune"]["trials"]) == 2
    assert run.parameters["TrainingInstanceCount"] == 2
    assert run.report is not None and run.report.is_file()
    # every job's accesses were checked against its role's synthesized policy, and allowed
    assert set(run.access_checks) == {
        "boostline-dev-preprocess",
        "boostline-dev-training",
        "boostline-dev-evaluate",
    }
    for role, counted in run.access_checks.items():
        assert counted["checked"] == counted["allowed"] > 0, role
    for step in ("PreprocessFit", "Preprocess", "Tune", "Evaluate"):
        assert run.steps[step]["accesses_checked"] > 0, step
    for step in ("PreprocessFit", "Preprocess"):
        assert run.steps[step]["instance_count"] == 1, step
    # every job step records its largest process's peak RSS, each trial its own
    for step in ("PreprocessFit", "Preprocess", "Tune", "Evaluate"):
        assert run.steps[step]["peak_rss_mb"] > 0, step
    trials = run.steps["Tune"]["trials"]
    assert run.steps["Tune"]["peak_rss_mb"] == max(t["peak_rss_mb"] for t in trials)


def test_the_evaluation_reads_the_tuners_own_trials_through_the_sagemaker_api(
    executed,
) -> None:
    _, run = executed
    tune = run.steps["Tune"]
    lineage = run.evaluation["lineage"]
    assert lineage["run_id"] == run.run_id
    assert lineage["pipeline_execution_arn"].endswith(f"/execution/{run.run_id}")
    assert lineage["model_package_group"] == "boostline-dev-models"
    tuning = lineage["tuning"]
    assert tuning["status"] == "recorded", tuning
    assert tuning["job_name"] == tune["tuning_job"]
    assert tuning["best_training_job"] == tune["best_training_job"]
    assert tuning["best_objective"] == pytest.approx(tune["best_objective"])
    ran = {
        f"{tune['tuning_job']}-{t['number']:03d}": (t["objective"], t["hyperparameters"])
        for t in tune["trials"]
    }
    read = {t["training_job"]: (t["objective"], t["hyperparameters"]) for t in tuning["trials"]}
    assert set(read) == set(ran)
    for job, (objective, hyperparameters) in ran.items():
        assert read[job][0] == pytest.approx(objective)
        assert {k: float(v) for k, v in read[job][1].items()} == pytest.approx(
            {k: float(v) for k, v in hyperparameters.items()}, rel=1e-5
        )
    assert tuning["static_hyperparameters"]  # the config's fixed ones, sagemaker_* left out
    assert not any(k.startswith("sagemaker_") for k in tuning["static_hyperparameters"])
    values = lineage["model_hyperparameters"]["values"]
    assert values == {**tuning["static_hyperparameters"], **tuning["best_hyperparameters"]}
    # the calls were checked against the evaluation role's synthesized policy
    assert run.steps["Evaluate"]["accesses_checked"] > 0
    report = run.report.read_text()
    for job in ran:
        assert job in report


def test_the_registered_package_is_the_definitions_request(executed) -> None:
    workdir, run = executed
    package = Registry(workdir.root).describe(1)
    metadata = package.data["CustomerMetadataProperties"]
    assert set(metadata) == {"trigger_reason", "pipeline_execution_id", "decision_threshold", "auc"}
    assert metadata["trigger_reason"] == "schedule"
    assert metadata["pipeline_execution_id"] == run.run_id
    assert float(metadata["auc"]) == pytest.approx(
        run.evaluation["binary_classification_metrics"]["auc"]["value"]
    )
    assert_registered_threshold_is_the_evaluations(package)
    # the model the package names is the tuning job's best trial, in the artifacts bucket
    url = package.data["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    best = run.steps["Tune"]["best_training_job"]
    assert url == (
        f"s3://boostline-dev-artifacts-{ACCOUNT}-{REGION}/models/{run.run_id}/{best}/output/"
        "model.tar.gz"
    )
    local = workdir.bucket("artifacts") / url.split("/", 3)[3]
    assert local.read_bytes() == package.model_tar.read_bytes()


def test_the_jobs_ran_the_assemblys_code_archive(executed, dev_assembly: Assembly) -> None:
    workdir, run = executed
    assets = dev_assembly.file_assets(REGION, ACCOUNT)
    archive = next(p for (_, key), p in assets.items() if key.endswith(".gz"))
    job = workdir.job_dir(run.steps["Preprocess"]["job"])
    staged = list((job / "opt/ml/processing/input/code").iterdir())
    assert [p.read_bytes() for p in staged] == [archive.read_bytes()]
    schema = next(p for (_, key), p in assets.items() if key.endswith(".yaml"))
    assert [p.read_bytes() for p in (job / "opt/ml/processing/input/schema").iterdir()] == [
        schema.read_bytes()
    ]


def _rows(folder: Path, pattern: str) -> list[str]:
    return sorted(line for f in folder.glob(pattern) for line in f.read_text().splitlines())


def test_preprocessing_on_two_instances_splits_and_encodes_as_one_does(
    executed, tmp_path: Path, light: Light
) -> None:
    one_workdir, one = executed
    workdir = _workdir(tmp_path / "work")  # the same book: two raw files
    run = _run(
        workdir, light.assembly, light.config, ProcessingInstanceCount=2, TriggerReason="schedule"
    )
    assert run.status == "Succeeded"
    assert run.parameters["ProcessingInstanceCount"] == 2
    for step in ("PreprocessFit", "Preprocess"):
        assert run.steps[step]["instance_count"] == 2, step
        job = workdir.job_dir(run.steps[step]["job"])
        hosts = sorted(p.name for p in job.iterdir())
        assert hosts == ["algo-1", "algo-2"]
        for index, host in enumerate(hosts):
            root = job / host / "opt" / "ml"
            config = json.loads((root / "config" / "resourceconfig.json").read_text())
            assert config == {"current_host": host, "hosts": hosts}
            # ShardedByS3Key: each host got one of the two raw files, whole
            (raw,) = (root / "processing" / "input" / "data").rglob("*.csv")
            assert raw.name == f"loans-{index:05d}.csv"
        if step == "Preprocess":  # every host got every host's partials
            for host in hosts:
                fit = job / host / "opt/ml/processing/input/fit"
                assert sorted(p.name for p in fit.iterdir()) == [
                    "fit-algo-1.json",
                    "fit-algo-2.json",
                ]
    processed = workdir.bucket("processed") / "runs" / run.run_id
    assert sorted(p.name for p in (processed / "fit").iterdir()) == [
        "fit-algo-1.json",
        "fit-algo-2.json",
    ]
    assert sorted(p.name for p in (processed / "test").iterdir()) == [
        "test-algo-1.csv",
        "test-algo-2.csv",
        "test_meta-algo-1.csv",
        "test_meta-algo-2.csv",
    ]
    assert len(list((processed / "train").glob("train-algo-*-*.csv"))) == 8
    # The split is by id and the encoding by the merged fit: two hosts write the rows
    # one host writes, in another order.
    single = one_workdir.bucket("processed") / "runs" / one.run_id
    for split, pattern in (
        ("train", "*.csv"),
        ("validation", "*.csv"),
        ("test", "test*.csv"),
    ):
        if split == "test":
            got = _rows(processed / split, "test-*.csv")
            want = _rows(single / split, "test.csv")
        else:
            got, want = _rows(processed / split, pattern), _rows(single / split, pattern)
        assert got == want and got, split
    manifest = "manifest/feature_manifest.json"
    assert json.loads((processed / manifest).read_text()) == json.loads(
        (single / manifest).read_text()
    )
    # the downstream steps read the hosts' files as one set
    assert run.evaluation["binary_classification_metrics"]["auc"]["value"] == pytest.approx(
        one.evaluation["binary_classification_metrics"]["auc"]["value"], abs=0.05
    )


def test_more_preprocessing_hosts_than_raw_files_fail_the_fit_step(
    tmp_path: Path, light: Light
) -> None:
    workdir = _workdir(tmp_path / "work")  # two raw files
    with pytest.raises(PipelineFailed) as failed:
        _run(workdir, light.assembly, light.config, ProcessingInstanceCount=3)
    message = str(failed.value)
    assert message.startswith("step PreprocessFit failed: processing job "), message
    assert "algo-3: preprocessing failed: host algo-3 of 3 got no raw CSV file" in message
    record = json.loads(next((workdir.root / "runs").glob("*.json")).read_text())
    assert record["failure_step"] == "PreprocessFit"
    assert list(record["steps"]) == ["PreprocessFit"]
    assert not (workdir.bucket("processed") / "runs").exists()  # nothing uploaded


@pytest.mark.parametrize("count", [0, 101])
def test_a_processing_instance_count_sagemaker_refuses_stops_the_run_before_any_job(
    tmp_path: Path, dev_assembly: Assembly, count: int
) -> None:
    workdir = _workdir(tmp_path / "work")
    with pytest.raises(PipelineFailed, match=rf"step PreprocessFit: InstanceCount {count} is"):
        _run(workdir, dev_assembly, ProcessingInstanceCount=count)
    assert not (workdir.root / "jobs").exists()


def test_a_retrain_compares_with_the_champion_it_is_given(executed, dev_assembly) -> None:
    workdir, _ = executed
    s3 = local_s3(workdir, load_config(), "dev", dev_assembly)
    champion = champion_model_data_url(Registry(workdir.root), s3)
    assert champion.startswith("s3://") and champion.endswith("/output/model.tar.gz")
    try:
        run = _run(workdir, dev_assembly, ChampionModelDataUrl=champion, TriggerReason="drift: x")
    except PipelineFailed as failed:
        # Trained on the same data, the retrain may fall just short of the champion's AUC
        # minus the allowed drop: the gate's message then carries the champion's bar.
        bar = re.search(r"champion's AUC minus the allowed drop ([0-9]+(?:\.[0-9]+)?)", str(failed))
        assert bar is not None and float(bar.group(1)) > 0, failed
        return
    # evaluate.py fetched the champion with boto3 from the local endpoint and scored it
    assert run.evaluation["champion"]["auc"] is not None
    assert run.evaluation["champion"]["min_auc_required"] > 0


def test_a_changed_property_file_path_fails_the_condition_naming_it(
    tmp_path: Path, light: Light
) -> None:
    def change(definition: dict[str, Any]) -> None:
        _step(definition, "Evaluate")["PropertyFiles"][0]["FilePath"] = "metrics/eval.json"

    broken = _mutated(light.assembly, tmp_path / "assembly", change)
    with pytest.raises(PipelineFailed, match=r"QualityGate.*metrics/eval\.json"):
        _run(_workdir(tmp_path / "work"), broken, light.config)
    record = json.loads(next((tmp_path / "work" / "runs").glob("*.json")).read_text())
    assert record["failure_step"] == "QualityGate"
    assert record["steps"]["Evaluate"]["status"] == "Succeeded"
    assert "RegisterModel" not in record["steps"]


def test_an_unknown_step_type_stops_the_run_before_any_job(
    tmp_path: Path, dev_assembly: Assembly
) -> None:
    def change(definition: dict[str, Any]) -> None:
        _step(definition, "Tune")["Type"] = "EMR"

    broken = _mutated(dev_assembly, tmp_path / "assembly", change)
    workdir = _workdir(tmp_path / "work")
    with pytest.raises(PipelineFailed, match=r"step Tune: .*type 'EMR'"):
        _run(workdir, broken)
    assert not (workdir.root / "jobs").exists()


@pytest.mark.parametrize(
    "expression, understood",
    [
        ({"Std:Concat": {"Values": ["a", "b"]}}, "Std:Concat"),
        ({"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}, None),
        ({"Get": "Steps.NoSuchStep.Outputs"}, "Steps.NoSuchStep.Outputs"),
        ({"Get": "Parameters.NoSuchParameter"}, "Parameters.NoSuchParameter"),
        ({"Get": "Execution.PipelineExecutionStartedBy"}, "PipelineExecutionStartedBy"),
    ],
)
def test_an_unknown_expression_stops_the_run_naming_the_step(
    tmp_path: Path, dev_assembly: Assembly, expression: dict[str, Any], understood: str | None
) -> None:
    definition = dev_assembly.pipeline_definition(REGION, ACCOUNT)
    _step(definition, "Evaluate")["Arguments"]["Environment"]["EXTRA"] = expression
    workdir = Workdir.at(tmp_path)

    def build() -> PipelineExecutor:
        return _executor(definition, workdir, dev_assembly)

    if understood is None:  # a property path the executor records: accepted
        build()
        return
    with pytest.raises(ExecutionError, match=r"step Evaluate: .*" + understood) as caught:
        build()
    assert caught.value.step == "Evaluate"


def test_a_dropped_decision_threshold_is_not_in_the_registry(tmp_path: Path, light: Light) -> None:
    def change(definition: dict[str, Any]) -> None:
        del _step(definition, "RegisterModel")["Arguments"]["CustomerMetadataProperties"][
            "decision_threshold"
        ]

    broken = _mutated(light.assembly, tmp_path / "assembly", change)
    workdir = _workdir(tmp_path / "work")
    run = _run(workdir, broken, light.config)
    package = Registry(workdir.root).describe(run.model_package_version or 0)
    assert "decision_threshold" not in package.data["CustomerMetadataProperties"]
    assert package.threshold is None
    with pytest.raises(AssertionError, match="no decision_threshold"):
        assert_registered_threshold_is_the_evaluations(package)


def test_parameters_are_typed_and_checked(tmp_path: Path, dev_assembly: Assembly) -> None:
    definition = dev_assembly.pipeline_definition(REGION, ACCOUNT)
    workdir = Workdir.at(tmp_path)

    def build(**parameters: Any) -> PipelineExecutor:
        return _executor(definition, workdir, dev_assembly, parameters)

    executor = build(TrainingInstanceCount="1", AucThreshold="0.75")  # as the API sends them
    assert executor.parameters["TrainingInstanceCount"] == 1
    assert executor.parameters["AucThreshold"] == 0.75
    assert executor.parameters["InputDataPrefix"] == (
        f"s3://boostline-dev-raw-{ACCOUNT}-{REGION}/raw/"
    )
    with pytest.raises(ExecutionError, match="no parameters"):
        build(NoSuchParameter="x")
    with pytest.raises(ExecutionError, match="not one of"):
        build(ModelApprovalStatus="Maybe")
    with pytest.raises(ExecutionError, match="not of type Integer"):
        build(TrainingInstanceCount="two")


def test_a_local_trial_budget_above_the_definitions_is_refused(
    tmp_path: Path, dev_assembly: Assembly
) -> None:
    definition = dev_assembly.pipeline_definition(REGION, ACCOUNT)
    tuning = _step(definition, "Tune")["Arguments"]["HyperParameterTuningJobConfig"]
    budget = tuning["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    workdir = Workdir.at(tmp_path)
    assert _executor(definition, workdir, dev_assembly, max_trials=budget).max_trials == budget
    with pytest.raises(ExecutionError, match=rf"{budget + 1} tuning trials is above .* {budget}"):
        _executor(definition, workdir, dev_assembly, max_trials=budget + 1)


def test_a_placeholder_with_no_value_breaks_the_rendering(
    tmp_path: Path, dev_assembly: Assembly
) -> None:
    def change(definition: dict[str, Any]) -> None:
        definition["Steps"][0]["Arguments"]["Environment"]["EXTRA"] = "${NoSuchVariable}"

    broken = _mutated(dev_assembly, tmp_path / "assembly", change)
    with pytest.raises(AssemblyError, match="NoSuchVariable"):
        broken.pipeline_definition(REGION, ACCOUNT)


def test_without_list_assets_the_run_stops_at_preprocess_naming_action_and_bucket(
    tmp_path: Path, dev_assembly: Assembly
) -> None:
    broken = _without_grant(
        dev_assembly, tmp_path / "assembly", "PreprocessRolePolicy", "ListAssets"
    )
    workdir = _workdir(tmp_path / "work")
    assets = f"arn:aws:s3:::cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
    with pytest.raises(PipelineFailed) as failed:
        _run(workdir, broken)
    message = str(failed.value)
    assert message.startswith("step PreprocessFit failed: processing job ")
    assert (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/boostline-dev-preprocess/SageMaker is not "
        f"authorized to perform: s3:ListBucket on resource: {assets} because no "
        "identity-based policy allows the s3:ListBucket action"
    ) in message
    record = json.loads(next((workdir.root / "runs").glob("*.json")).read_text())
    assert record["failure_step"] == "PreprocessFit"
    assert list(record["steps"]) == ["PreprocessFit"]
    assert record["steps"]["PreprocessFit"]["access_denied"] == {
        "role": "boostline-dev-preprocess",
        "action": "s3:ListBucket",
        "resource": assets,
    }
    assert not (workdir.root / "jobs").exists()  # denied before the job started


def test_without_its_data_listing_every_tuning_trial_is_denied_before_it_runs(
    tmp_path: Path, dev_assembly: Assembly
) -> None:
    broken = _without_grant(
        dev_assembly, tmp_path / "assembly", "TrainingRolePolicy", "ListProcessedData"
    )
    workdir = _workdir(tmp_path / "work")
    processed = f"arn:aws:s3:::boostline-dev-processed-{ACCOUNT}-{REGION}"
    with pytest.raises(
        PipelineFailed, match=r"step Tune failed: all 2 tuning trials failed"
    ) as failed:
        _run(workdir, broken)
    assert (
        "assumed-role/boostline-dev-training/SageMaker is not authorized to perform: "
        f"s3:ListBucket on resource: {processed} "
    ) in str(failed.value)
    record = json.loads(next((workdir.root / "runs").glob("*.json")).read_text())
    assert record["steps"]["Preprocess"]["status"] == "Succeeded"
    assert record["steps"]["Tune"]["access_denied"]["action"] == "s3:ListBucket"
    jobs = {p.name for p in (workdir.root / "jobs").iterdir()}
    # no trial started
    assert jobs == {record["steps"][s]["job"] for s in ("PreprocessFit", "Preprocess")}


def _executor(
    definition: dict[str, Any],
    workdir: Workdir,
    assembly: Assembly,
    parameters: dict[str, Any] | None = None,
    max_trials: int | None = None,
) -> PipelineExecutor:
    """An executor of the definition, built (and so checked) but not run."""
    return PipelineExecutor(
        definition,
        s3=local_s3(workdir, load_config(), "dev", assembly),
        workdir=workdir,
        registry=Registry(workdir.root),
        execution_id="abc123def456",
        pipeline_name="boostline-dev-training",
        region=REGION,
        account=ACCOUNT,
        parameters=parameters or {},
        max_trials=max_trials,
    )


def test_without_reading_its_tuning_job_the_evaluation_is_denied_naming_the_call(
    tmp_path: Path, light: Light
) -> None:
    broken = _without_grant(
        light.assembly, tmp_path / "assembly", "EvaluateRolePolicy", "ReadTuningTrials"
    )
    workdir = _workdir(tmp_path / "work")
    with pytest.raises(PipelineFailed) as failed:
        _run(workdir, broken, light.config)
    message = str(failed.value)
    record = json.loads(next((workdir.root / "runs").glob("*.json")).read_text())
    assert record["failure_step"] == "Evaluate"
    tuning_job = record["steps"]["Tune"]["tuning_job"]
    resource = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{tuning_job}"
    assert message.startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/boostline-dev-evaluate/SageMaker is not "
        f"authorized to perform: sagemaker:DescribeHyperParameterTuningJob on resource: "
        f"{resource}"
    ), message
    assert record["steps"]["Evaluate"]["access_denied"] == {
        "role": "boostline-dev-evaluate",
        "action": "sagemaker:DescribeHyperParameterTuningJob",
        "resource": resource,
    }
    assert "RegisterModel" not in record["steps"]
