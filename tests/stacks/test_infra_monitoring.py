"""Monitoring construct: data-quality and model-quality schedules against the live baselines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from boostline.config import load_config
from stacks.monitoring import schedule_period_hours
from stacks.naming import names_for

STACK = "Serving"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_schedules_point_at_the_live_baselines(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    template = synth.template(STACK)
    assert template["Conditions"]["HasBaseline"]["Fn::And"][0] == {"Condition": "HasModel"}
    ((dq_id, dq),) = synth.resources(STACK, "AWS::SageMaker::DataQualityJobDefinition").items()
    baseline = dq["Properties"]["DataQualityBaselineConfig"]
    assert baseline["StatisticsResource"]["S3Uri"] == {"Ref": "BaselineStatisticsUri"}
    assert baseline["ConstraintsResource"]["S3Uri"] == {"Ref": "BaselineConstraintsUri"}
    endpoint_input = dq["Properties"]["DataQualityJobInput"]["EndpointInput"]
    assert endpoint_input["EndpointName"] == names.endpoint
    assert "KmsKeyId" in dq["Properties"]["DataQualityJobOutputConfig"]
    assert "VolumeKmsKeyId" in dq["Properties"]["JobResources"]["ClusterConfig"]
    assert (
        "sagemaker-model-monitor-analyzer"
        in dq["Properties"]["DataQualityAppSpecification"]["ImageUri"]
    )
    schedules = {
        res["Properties"]["MonitoringScheduleName"]: res
        for res in synth.resources(STACK, "AWS::SageMaker::MonitoringSchedule").values()
    }
    assert set(schedules) == {f"{names.prefix}-data-quality", f"{names.prefix}-model-quality"}
    for name, res in schedules.items():
        assert name.startswith(f"{names.prefix}-")
        assert res["Condition"] == "HasBaseline"
        config = res["Properties"]["MonitoringScheduleConfig"]
        cron = synth.config.stage(synth.stage).monitoring.schedule
        assert config["ScheduleConfig"]["ScheduleExpression"] == cron
    data_schedule = schedules[f"{names.prefix}-data-quality"]["Properties"]
    assert data_schedule["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == {
        "Fn::GetAtt": [dq_id, "JobDefinitionName"]
    }


def test_model_quality_reads_ground_truth_for_binary_classification(dev):
    names = names_for(dev.config, "dev")
    (mq,) = dev.resources(STACK, "AWS::SageMaker::ModelQualityJobDefinition").values()
    props = mq["Properties"]
    assert props["ModelQualityAppSpecification"]["ProblemType"] == "BinaryClassification"
    ground_truth = str(props["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"])
    assert "-capture-" in ground_truth and "/ground-truth" in ground_truth
    role = props["RoleArn"]["Fn::GetAtt"][0]
    assert role.startswith("MonitoringRole")
    alarms = [
        res["Properties"]
        for res in dev.resources(STACK, "AWS::CloudWatch::Alarm").values()
        if res["Properties"]["AlarmName"].startswith(f"{names.prefix}-drift-")
    ]
    assert [a["MetricName"] for a in alarms] == ["auc"]
    assert alarms[0]["Threshold"] == dev.config.gate.min_auc
    assert alarms[0]["ComparisonOperator"] == "LessThanThreshold"


def test_monitoring_role_is_not_the_endpoint_role(dev):
    roles = {
        res["Properties"]["RoleName"] for res in dev.resources(STACK, "AWS::IAM::Role").values()
    }
    assert roles == {"boostline-dev-endpoint", "boostline-dev-monitoring"}


def _alarms(synth) -> dict[str, dict]:
    return {
        res["Properties"]["AlarmName"]: res
        for res in synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
    }


def _monitoring_event(status: str, schedule: str | None) -> dict:
    detail = {
        "ProcessingJobName": "model-monitoring-202611120100-abc123",
        "ProcessingJobStatus": status,
    }
    if schedule is not None:
        detail["MonitoringScheduleArn"] = (
            f"arn:aws:sagemaker:eu-west-1:123456789012:monitoring-schedule/{schedule}"
        )
    return {
        "version": "0",
        "id": "8e5ad8a1-3d2f-4f8f-9a2b-6c1e2e4f5a01",
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-12T02:10:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


def _matches(pattern: dict, event: dict) -> bool:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_failed_monitoring_executions_notify_and_alarm(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    rules = {
        res["Properties"]["Name"]: res
        for res in synth.resources(STACK, "AWS::Events::Rule").values()
    }
    rule = rules[f"{names.prefix}-monitoring-failed"]
    assert rule["Condition"] == "HasBaseline"
    pattern = rule["Properties"]["EventPattern"]
    for status in ("Failed", "Stopped"):
        for schedule in ("data-quality", "model-quality"):
            assert _matches(pattern, _monitoring_event(status, f"{names.prefix}-{schedule}"))
    assert not _matches(pattern, _monitoring_event("Completed", f"{names.prefix}-data-quality"))
    assert not _matches(pattern, _monitoring_event("Failed", "someone-else-data-quality"))
    assert not _matches(pattern, _monitoring_event("Failed", None))  # not a monitoring job
    (target,) = rule["Properties"]["Targets"]
    assert f":{names.prefix}-alerts" in json.dumps(target["Arn"])
    assert "<job>" in target["InputTransformer"]["InputTemplate"]

    alarms = _alarms(synth)
    failed = alarms[f"{names.prefix}-monitoring-failed"]
    props = failed["Properties"]
    assert failed["Condition"] == "HasBaseline"
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Events", "TriggeredRules")
    assert props["Dimensions"] == [
        {"Name": "RuleName", "Value": f"{names.prefix}-monitoring-failed"}
    ]
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["Threshold"] == 1
    assert props["AlarmActions"]
    # A broken monitor is an operator's problem: no monitoring-health alarm retrains.
    for name in alarms:
        if "-monitoring-" in name:
            assert not name.startswith(f"{names.prefix}-drift-"), name


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_a_quiet_model_quality_monitor_alarms_after_two_periods(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    stale = _alarms(synth)[f"{names.prefix}-monitoring-model-quality-stale"]
    props = stale["Properties"]
    assert stale["Condition"] == "HasBaseline"
    assert props["Namespace"] == "aws/sagemaker/Endpoints/model-metrics"
    assert (props["MetricName"], props["Statistic"]) == ("auc", "SampleCount")
    assert props["Period"] == 3600  # the hourly schedule of both stages
    assert props["EvaluationPeriods"] == 2
    assert props["ComparisonOperator"] == "LessThanThreshold"
    assert props["TreatMissingData"] == "breaching"


def test_schedule_period_follows_the_cron():
    assert schedule_period_hours("cron(0 * ? * * *)") == 1
    assert schedule_period_hours("cron(0 3 ? * * *)") == 24


def test_model_quality_uses_the_live_decision_threshold(dev):
    (mq,) = dev.resources(STACK, "AWS::SageMaker::ModelQualityJobDefinition").values()
    endpoint_input = mq["Properties"]["ModelQualityJobInput"]["EndpointInput"]
    assert endpoint_input["ProbabilityThresholdAttribute"] == {"Ref": "DecisionThreshold"}
    assert endpoint_input["ProbabilityAttribute"] == "0"


def _dashboard_body(synth) -> str:
    ((_, dashboard),) = synth.resources(STACK, "AWS::CloudWatch::Dashboard").items()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_dashboard_shows_the_monitors(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    body = _dashboard_body(synth)
    assert "Monitoring executions failed or stopped" in body
    assert "TriggeredRules" in body and f"{names.prefix}-monitoring-failed" in body
    assert "Live model quality (from ground truth)" in body
    assert "aws/sagemaker/Endpoints/model-metrics" in body
    for metric in ("auc", "f1", "precision", "recall"):
        assert f'\\"{metric}\\"' in body, metric
    assert "Monitoring alarms" in body
    for alarm in ("drift-model-quality-auc", "monitoring-failed", "monitoring-model-quality-stale"):
        assert f"alarm:{names.prefix}-{alarm}" in body, alarm
    # Alarms by name, not GetAtt: they exist only with baselines, the dashboard with a model.
    template = synth.template(STACK)
    ((_, dashboard),) = synth.resources(STACK, "AWS::CloudWatch::Dashboard").items()
    conditional = {
        logical
        for logical, res in template["Resources"].items()
        if res.get("Condition") not in (None, dashboard["Condition"])
    }
    assert conditional
    refs = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert not any(f'"{logical}"' in refs for logical in conditional)


# ---------------------------------------------------------------- own-code monitor


@dataclass
class OwnSynth:
    """A synth of a config variant this module needs (like conftest's Synth)."""

    config: Any
    outdir: Path
    error: str | None = None

    def template(self, stack: str) -> dict:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())

    def resources(self, stack: str, type_: str) -> dict[str, dict]:
        return {
            name: res
            for name, res in self.template(stack)["Resources"].items()
            if res["Type"] == type_
        }

    @property
    def validation_report(self) -> dict:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synthesize(config, stage: str, outdir: Path) -> OwnSynth:
    from stacks import build_app, new_app

    app = new_app(stage, str(outdir))
    build_app(app, config, stage)
    result = OwnSynth(config=config, outdir=outdir)
    try:
        app.synth()
    except RuntimeError as exc:  # jsii wraps the validation failure
        result.error = str(exc)
    return result


def _own_code_config(tmp_path_factory):
    raw = yaml.safe_load((REPO / "config" / "boostline.yaml").read_text())
    raw["dataset_schema"] = str((REPO / "boostline" / "data" / "loan_schema.yaml").resolve())
    raw["stages"]["dev"]["monitoring"]["engine"] = "own"
    path = tmp_path_factory.mktemp("own_config") / "boostline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="module")
def own_code(tmp_path_factory):
    result = synthesize(_own_code_config(tmp_path_factory), "dev", tmp_path_factory.mktemp("own"))
    assert result.error is None, result.error
    return result


def _by_name(synth, type_: str, key: str) -> dict[str, dict]:
    return {res["Properties"][key]: res for res in synth.resources(STACK, type_).values()}


def _definition(synth) -> tuple[dict, dict]:
    (pipeline,) = synth.resources(STACK, "AWS::SageMaker::Pipeline").values()
    body, variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    return json.loads(body), variables


def test_own_code_check_replaces_the_managed_data_quality_monitor(own_code):
    names = names_for(own_code.config, "dev")
    assert not own_code.resources(STACK, "AWS::SageMaker::DataQualityJobDefinition")
    # Model quality keeps the managed analyzer.
    schedules = _by_name(own_code, "AWS::SageMaker::MonitoringSchedule", "MonitoringScheduleName")
    assert set(schedules) == {f"{names.prefix}-model-quality"}
    (pipeline,) = own_code.resources(STACK, "AWS::SageMaker::Pipeline").values()
    assert pipeline["Properties"]["PipelineName"] == f"{names.prefix}-monitoring"
    assert pipeline["Condition"] == "HasBaseline"

    definition, variables = _definition(own_code)
    assert set(variables) == {"JobRole", "KmsKeyArn", "AssetBucket"}
    assert [p["Name"] for p in definition["Parameters"]] == [
        "ModelPackageArn",
        "BaselineStatisticsUri",
        "BaselineConstraintsUri",
    ]
    (step,) = definition["Steps"]
    assert step["Type"] == "Processing"
    args = step["Arguments"]
    assert "sagemaker-xgboost" in args["AppSpecification"]["ImageUri"]
    entry = args["AppSpecification"]["ContainerEntrypoint"]
    assert entry[:2] == ["/bin/sh", "-c"] and "python3 monitor_job.py" in entry[2]
    argv = args["AppSpecification"]["ContainerArguments"]
    assert argv[argv.index("--model-package") + 1] == {"Get": "Parameters.ModelPackageArn"}
    assert argv[argv.index("--constraints") + 1] == {"Get": "Parameters.BaselineConstraintsUri"}
    captures = argv[argv.index("--captures") + 1]
    assert captures.endswith(f"/capture/{names.endpoint}/AllTraffic")
    assert "-capture-" in captures
    assert argv[argv.index("--endpoint") + 1] == names.endpoint
    assert argv[argv.index("--hours") + 1] == "1"
    (code,) = args["ProcessingInputs"]
    assert code["S3Input"]["S3Uri"].startswith("s3://${AssetBucket}/")
    assert args["Environment"] == {"BOOSTLINE_METRICS_NAMESPACE": "Boostline/Monitoring"}
    assert args["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    output = args["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]["Std:Join"]
    assert "-monitoring-" in output["Values"][0]


def test_own_code_schedule_starts_the_pipeline_with_the_live_model(own_code):
    names = names_for(own_code.config, "dev")
    rule = _by_name(own_code, "AWS::Events::Rule", "Name")[f"{names.prefix}-monitoring-schedule"]
    assert rule["Condition"] == "HasBaseline"
    props = rule["Properties"]
    assert props["ScheduleExpression"] == own_code.config.stage("dev").monitoring.schedule
    (target,) = props["Targets"]
    assert f":pipeline/{names.prefix}-monitoring" in json.dumps(target["Arn"])
    params = {
        p["Name"]: p["Value"]
        for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert params == {
        "ModelPackageArn": {"Ref": "ModelPackageArn"},
        "BaselineStatisticsUri": {"Ref": "BaselineStatisticsUri"},
        "BaselineConstraintsUri": {"Ref": "BaselineConstraintsUri"},
    }
    # The schedule's role may start this one pipeline, nothing else.
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = own_code.template(STACK)["Resources"][role_id]
    (principal,) = [
        s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert principal == {"Service": "events.amazonaws.com"}
    policies = [
        res
        for res in own_code.resources(STACK, "AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in res["Properties"]["Roles"]
    ]
    ((statement,),) = [p["Properties"]["PolicyDocument"]["Statement"] for p in policies]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert f":pipeline/{names.prefix}-monitoring" in json.dumps(statement["Resource"])


def test_own_code_violations_raise_a_drift_alarm(own_code):
    names = names_for(own_code.config, "dev")
    alarms = _alarms(own_code)
    drift = alarms[f"{names.prefix}-drift-data-quality"]
    props = drift["Properties"]
    assert drift["Condition"] == "HasBaseline"
    assert (props["Namespace"], props["MetricName"]) == (
        "Boostline/Monitoring",
        "DataQualityViolations",
    )
    assert props["Dimensions"] == [{"Name": "Endpoint", "Value": names.endpoint}]
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["Threshold"] == 1
    stale = alarms[f"{names.prefix}-monitoring-data-quality-stale"]["Properties"]
    assert (stale["Statistic"], stale["EvaluationPeriods"]) == ("SampleCount", 2)
    assert stale["TreatMissingData"] == "breaching"
    failed = alarms[f"{names.prefix}-monitoring-pipeline-failed"]["Properties"]
    assert failed["Dimensions"] == [
        {"Name": "RuleName", "Value": f"{names.prefix}-monitoring-pipeline-failed"}
    ]
    rule = _by_name(own_code, "AWS::Events::Rule", "Name")[
        f"{names.prefix}-monitoring-pipeline-failed"
    ]
    pattern = rule["Properties"]["EventPattern"]
    event = {
        "version": "0",
        "id": "1",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-12T02:10:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "pipelineArn": (
                f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{names.prefix}-monitoring"
            ),
            "pipelineExecutionArn": "x",
            "currentPipelineExecutionStatus": "Failed",
        },
    }
    assert _matches(pattern, event)
    event["detail"]["currentPipelineExecutionStatus"] = "Succeeded"
    assert not _matches(pattern, event)
    event["detail"]["currentPipelineExecutionStatus"] = "Failed"
    event["detail"]["pipelineArn"] = event["detail"]["pipelineArn"].replace(
        "monitoring", "training"
    )
    assert not _matches(pattern, event)
    body = _dashboard_body(own_code)
    assert "DataQualityViolations" in body and f"alarm:{names.prefix}-drift-data-quality" in body


def test_own_code_job_role_reads_only_what_the_check_needs(own_code):
    roles = {
        res["Properties"]["RoleName"]
        for res in own_code.resources(STACK, "AWS::IAM::Role").values()
    }
    assert {"boostline-dev-monitor-job", "boostline-dev-monitor-pipeline"} <= roles
    policies = json.dumps(
        [p["Properties"] for p in own_code.resources(STACK, "AWS::IAM::ManagedPolicy").values()]
    )
    assert "Boostline/Monitoring" in _metric_permissions(own_code)
    assert "sagemaker:DescribeModelPackage" in policies


def test_own_code_acknowledgements_match_real_findings(tmp_path_factory):
    from stacks import nag

    recorded: list[tuple[str, str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            nag, "acknowledge", lambda r, rule, reason: recorded.append((r.node.path, rule))
        )
        result = synthesize(
            _own_code_config(tmp_path_factory), "dev", tmp_path_factory.mktemp("own_unacked")
        )
    assert result.error is not None
    findings = set()
    for plugin in result.validation_report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                findings.add((construct["constructPath"], violation["ruleName"]))
    assert set(recorded) == findings


def _metric_permissions(synth, role: str | None = None) -> set[str]:
    """Namespaces the serving stack's job roles (or just `role`) may publish metrics to."""
    roles = {
        logical: res["Properties"]["RoleName"]
        for logical, res in synth.resources(STACK, "AWS::IAM::Role").items()
    }
    allowed: set[str] = set()
    for policy in synth.resources(STACK, "AWS::IAM::ManagedPolicy").values():
        attached = {roles.get(r.get("Ref")) for r in policy["Properties"].get("Roles", [])}
        if role is not None and role not in attached:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "cloudwatch:PutMetricData" in json.dumps(statement["Action"]):
                namespaces = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
                allowed.update([namespaces] if isinstance(namespaces, str) else namespaces)
    return allowed


@pytest.mark.parametrize("variant", ["dev", "own_code"])
def test_every_alarmed_job_metric_is_one_its_job_may_publish(variant, request):
    # AWS/* namespaces are published by the services themselves; every other one is
    # published by a monitoring job, under its role.
    synth = request.getfixturevalue(variant)
    alarms = synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
    job_namespaces = {
        a["Properties"]["Namespace"]
        for a in alarms
        if "Namespace" in a["Properties"] and not a["Properties"]["Namespace"].startswith("AWS/")
    }
    assert job_namespaces, "no monitoring alarm reads a job's metric"
    for namespace in job_namespaces:
        # Who publishes it: our own monitor job, or the managed analyzer's job role.
        own = namespace == "Boostline/Monitoring"
        publisher = "boostline-dev-monitor-job" if own else "boostline-dev-monitoring"
        assert namespace in _metric_permissions(synth, publisher), (namespace, publisher)


def test_own_code_job_publishes_where_its_role_and_alarms_agree(own_code):
    from training_scripts import monitor_job

    names = names_for(own_code.config, "dev")
    (pipeline,) = [
        p
        for p in own_code.resources(STACK, "AWS::SageMaker::Pipeline").values()
        if "monitor" in p["Properties"]["PipelineName"]
    ]
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    (step,) = json.loads(body)["Steps"]
    namespace = step["Arguments"]["Environment"]["BOOSTLINE_METRICS_NAMESPACE"]
    assert namespace in _metric_permissions(own_code, "boostline-dev-monitor-job")

    calls: list[dict] = []

    class Recorder:
        def put_metric_data(self, **kwargs):
            calls.append(kwargs)

    monitor_job.publish_metrics(namespace, names.endpoint, 2, 10, lambda _service: Recorder())
    (call,) = calls
    published = {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in call["MetricData"]
    }
    for alarm in own_code.resources(STACK, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") != namespace:
            continue
        dims = tuple(sorted((d["Name"], d["Value"]) for d in props["Dimensions"]))
        assert (props["MetricName"], dims) in published, props["AlarmName"]


def test_the_own_code_monitor_job_can_list_and_read_its_code(own_code):
    # Its code archive is an S3Prefix input on the asset bucket, as the training jobs' is.
    from test_infra_iam import _assert_listed_and_read, _asset_inputs_by_role, _role_policies

    inputs = _asset_inputs_by_role(own_code, STACK)
    assert set(inputs) == {"boostline-dev-monitor-job"}
    _assert_listed_and_read(_role_policies(own_code, STACK), inputs)
