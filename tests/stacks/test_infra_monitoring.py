"""The monitoring stack: our own monitors by default, Model Monitor only when asked for."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO, synthesize

from boostline.config import load_config
from boostline.naming import names_for

MONITORING = "Monitoring"
SERVING = "Serving"
MANAGED_TYPES = (
    "AWS::SageMaker::MonitoringSchedule",
    "AWS::SageMaker::DataQualityJobDefinition",
    "AWS::SageMaker::ModelQualityJobDefinition",
)
LIVE_PARAMETERS = (
    "ModelPackageArn",
    "BaselineStatisticsUri",
    "BaselineConstraintsUri",
    "DecisionThreshold",
)


def _config_with_engine(tmp_path_factory, engine: str):
    raw = yaml.safe_load((REPO / "config" / "boostline.yaml").read_text())
    raw["dataset_schema"] = str((REPO / "boostline" / "data" / "loan_schema.yaml").resolve())
    raw["stages"]["dev"]["monitoring"]["engine"] = engine
    path = tmp_path_factory.mktemp(f"config_{engine}") / "boostline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    result = synthesize(
        _config_with_engine(tmp_path_factory, "model-monitor"),
        "dev",
        tmp_path_factory.mktemp("managed"),
    )
    assert result.error is None, result.error
    return result


def _types(synth) -> dict[str, set[str]]:
    return {
        stack: {r["Type"] for r in template["Resources"].values()}
        for stack, template in synth.templates.items()
    }


def _by_name(synth, type_: str, key: str) -> dict[str, dict]:
    return {r["Properties"][key]: r for r in synth.resources(MONITORING, type_).values()}


def _definition(synth) -> dict:
    (pipeline,) = synth.resources(MONITORING, "AWS::SageMaker::Pipeline").values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    return json.loads(body)


# ---------------------------------------------------------------- which engine, which stack


def test_no_stage_uses_model_monitor_by_default(any_synth):
    for stack, types in _types(any_synth).items():
        assert not types & set(MANAGED_TYPES), stack
    assert "AWS::SageMaker::Pipeline" in _types(any_synth)[MONITORING]


def test_model_monitor_comes_back_when_asked_for_in_the_monitoring_stack_only(managed):
    types = _types(managed)
    assert set(MANAGED_TYPES) <= types[MONITORING]
    assert "AWS::SageMaker::Pipeline" not in types[MONITORING]
    for stack, found in types.items():
        if stack != MONITORING:
            assert not found & set(MANAGED_TYPES), stack


def test_the_serving_stack_holds_no_monitor(any_synth):
    types = _types(any_synth)[SERVING]
    assert not types & set(MANAGED_TYPES)
    # Its one pipeline is the batch scoring pipeline, not a monitor.
    pipelines = any_synth.resources(SERVING, "AWS::SageMaker::Pipeline").values()
    prefix = names_for(any_synth.config, any_synth.stage).prefix
    assert [p["Properties"]["PipelineName"] for p in pipelines] == [f"{prefix}-batch"]
    alarms = any_synth.resources(SERVING, "AWS::CloudWatch::Alarm").values()
    assert all("monitoring" not in a["Properties"]["AlarmName"] for a in alarms)


def test_the_monitoring_stack_takes_the_live_model_as_the_serving_stack_does(any_synth):
    serving = any_synth.template(SERVING)["Parameters"]
    monitoring = any_synth.template(MONITORING)["Parameters"]
    for name in LIVE_PARAMETERS:
        assert monitoring[name] == serving[name], name
    # Every monitoring resource waits for a live model with baselines.
    for logical, resource in any_synth.template(MONITORING)["Resources"].items():
        if resource["Type"].startswith(("AWS::SageMaker", "AWS::Events", "AWS::CloudWatch")):
            assert resource.get("Condition") == "HasBaseline", logical


def test_the_monitoring_stack_is_deployed_after_the_serving_stack(dev):
    manifest = json.loads((dev.outdir / "manifest.json").read_text())
    assert "Serving" in manifest["artifacts"]["Monitoring"]["dependencies"]


# ---------------------------------------------------------------- our own monitors


def test_the_schedule_starts_the_pipeline_with_the_live_model(dev):
    names = names_for(dev.config, "dev")
    (rule,) = [
        r
        for r in dev.resources(MONITORING, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    props = rule["Properties"]
    assert props["ScheduleExpression"] == dev.config.stage("dev").monitoring.schedule
    (target,) = props["Targets"]
    assert target["Arn"]["Fn::Join"][1][-1].endswith(f"pipeline/{names.prefix}-monitoring")
    parameters = {
        p["Name"]: p["Value"]
        for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert parameters == {name: {"Ref": name} for name in LIVE_PARAMETERS}


def test_each_check_is_a_step_running_the_monitor_job(dev):
    definition = _definition(dev)
    declared = {p["Name"] for p in definition["Parameters"]}
    assert declared == {*LIVE_PARAMETERS, "WindowStart", "WindowEnd"}
    steps = {s["Name"]: s for s in definition["Steps"]}
    assert set(steps) == {"DataQualityCheck", "ModelQualityCheck"}
    for name, check in (
        ("DataQualityCheck", "data-quality"),
        ("ModelQualityCheck", "model-quality"),
    ):
        app = steps[name]["Arguments"]["AppSpecification"]
        assert "python3 monitor_job.py" in app["ContainerEntrypoint"][2]
        assert app["ContainerArguments"][0] == check
        env = steps[name]["Arguments"]["Environment"]
        assert env == {
            "BOOSTLINE_METRICS_NAMESPACE": "Boostline/Monitoring",
            "AWS_DEFAULT_REGION": "${AWS::Region}",
        }
    assert "PipelineExperimentConfig" not in definition
    quality = steps["ModelQualityCheck"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert quality[quality.index("--threshold") + 1] == {"Get": "Parameters.DecisionThreshold"}
    assert quality[quality.index("--ground-truth") + 1].endswith("/ground-truth")


def _statements(synth, role_name: str) -> list[dict]:
    roles = {
        logical: res["Properties"]["RoleName"]
        for logical, res in synth.resources(MONITORING, "AWS::IAM::Role").items()
    }
    found = []
    for policy in synth.resources(MONITORING, "AWS::IAM::ManagedPolicy").values():
        attached = {roles.get(r.get("Ref")) for r in policy["Properties"].get("Roles", [])}
        if role_name in attached:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _allowing(statements: list[dict], action: str) -> list[dict]:
    return [s for s in statements if action in json.dumps(s["Action"])]


def test_the_job_role_publishes_one_namespace_and_one_event_source(dev):
    statements = _statements(dev, "boostline-dev-monitor-job")
    (metrics,) = _allowing(statements, "cloudwatch:PutMetricData")
    namespaces = metrics["Condition"]["StringEquals"]["cloudwatch:namespace"]
    assert "Boostline/Monitoring" in namespaces and len(namespaces) == 2  # and its job logs'
    (put_events,) = _allowing(statements, "events:PutEvents")
    assert put_events["Condition"] == {
        "ForAllValues:StringEquals": {
            "events:source": ["boostline.monitoring"],
            "events:detail-type": ["Boostline Monitoring Run Completed"],
        }
    }
    assert "event-bus/default" in json.dumps(put_events["Resource"])
    (listing,) = [
        s for s in _allowing(statements, "s3:ListBucket") if "StringLike" in s["Condition"]
    ]
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert prefixes == ["capture/boostline-dev-endpoint/*", "ground-truth/*"]


def test_the_own_monitor_job_can_list_and_read_its_code(dev):
    from test_infra_iam import _assert_listed_and_read, _asset_inputs_by_role, _role_policies

    inputs = _asset_inputs_by_role(dev, MONITORING)
    assert set(inputs) == {"boostline-dev-monitor-job"}
    _assert_listed_and_read(_role_policies(dev, MONITORING), inputs)


# ---------------------------------------------------------------- alarms, both engines

ALARMS = {
    "monitoring-data-quality-violations",
    "drift-model-quality-auc",
    "monitoring-failed",
    "monitoring-model-quality-stale",
}


def _alarms(synth) -> dict[str, dict]:
    prefix = names_for(synth.config, "dev").prefix + "-"
    return {
        a["Properties"]["AlarmName"].removeprefix(prefix): a["Properties"]
        for a in synth.resources(MONITORING, "AWS::CloudWatch::Alarm").values()
    }


def test_both_engines_raise_the_same_alarms(dev, managed):
    assert set(_alarms(dev)) == ALARMS | {"monitoring-data-quality-stale"}
    # Model Monitor publishes no per-run data-quality metric to go stale on.
    assert set(_alarms(managed)) == ALARMS


def test_the_own_alarms_read_what_the_job_publishes(dev):
    from training_scripts import monitor_publish as pub

    names = names_for(dev.config, "dev")
    data = pub.run_metrics(pub.DATA_QUALITY, names.endpoint, violations=2, rows=10)
    quality = pub.run_metrics(pub.MODEL_QUALITY, names.endpoint, violations=1, rows=9, auc=0.6)
    published = {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in data + quality
    }
    read = 0
    for props in _alarms(dev).values():
        if props.get("Namespace") != "Boostline/Monitoring":
            continue
        dims = tuple(sorted((d["Name"], d["Value"]) for d in props["Dimensions"]))
        assert (props["MetricName"], dims) in published, props["AlarmName"]
        read += 1
    assert read == 4  # violations, auc and the two stale alarms


def test_the_auc_alarm_is_the_gates_minimum(dev, managed):
    for synth in (dev, managed):
        auc = _alarms(synth)["drift-model-quality-auc"]
        assert auc["Threshold"] == synth.config.gate.min_auc
        assert auc["ComparisonOperator"] == "LessThanThreshold"
        assert auc["MetricName"] == "auc"


def _matches(pattern: dict, event: dict) -> bool:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def test_a_failed_monitoring_run_notifies_and_alarms(dev):
    names = names_for(dev.config, "dev")
    rules = _by_name(dev, "AWS::Events::Rule", "Name")
    rule = rules[f"{names.prefix}-monitoring-failed"]["Properties"]
    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "detail": {
            "currentPipelineExecutionStatus": "Failed",
            "pipelineArn": (
                f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{names.prefix}-monitoring"
            ),
            "pipelineExecutionArn": "x",
        },
    }
    assert _matches(rule["EventPattern"], event)
    event["detail"]["currentPipelineExecutionStatus"] = "Succeeded"
    assert not _matches(rule["EventPattern"], event)
    assert "alerts" in json.dumps(rule["Targets"][0]["Arn"])


def test_the_dashboard_shows_drift_per_feature_and_auc_per_window(dev, managed):
    from training_scripts.dataset_schema import load_schema

    features = load_schema(dev.config.schema_path()).feature_names
    for synth, drift_metric in ((dev, "FeatureDrift"), (managed, "feature_baseline_drift_")):
        (dashboard,) = synth.resources(MONITORING, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert body.count(drift_metric) >= len(features)
        for feature in features:
            assert feature in body
        assert "AUC per window" in body


def test_the_model_monitor_synthesis_is_cfn_lint_and_cdk_nag_clean(managed):
    from pathlib import Path

    from cfnlint.api import ManualArgs, lint_file
    from test_infra_cfn_lint import IGNORED_WARNINGS

    assert managed.error is None  # a cdk-nag finding fails synth
    template = managed.outdir / "Monitoring.template.json"
    matches = lint_file(
        Path(template),
        ManualArgs(
            regions=[managed.config.stage("dev").region], ignore_checks=sorted(IGNORED_WARNINGS)
        ),
    )
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_model_monitor_acknowledgements_match_real_findings(tmp_path_factory):
    from stacks import nag

    recorded: list[tuple[str, str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            nag, "acknowledge", lambda r, rule, reason: recorded.append((r.node.path, rule))
        )
        result = synthesize(
            _config_with_engine(tmp_path_factory, "model-monitor"),
            "dev",
            tmp_path_factory.mktemp("managed_unacked"),
        )
    assert result.error is not None
    findings = set()
    for plugin in result.validation_report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                findings.add((construct["constructPath"], violation["ruleName"]))
    assert set(recorded) == findings
