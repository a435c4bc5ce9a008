"""Monitoring construct: data-quality and model-quality schedules against the live baselines."""

from __future__ import annotations

import pytest

from stacks.naming import names_for

STACK = "Serving"


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
