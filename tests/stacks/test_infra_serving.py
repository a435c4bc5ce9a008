"""Serving stack: conditional endpoint, data capture, blue/green with rollback alarms, scaling."""

from __future__ import annotations

import pytest
import yaml

from boostline.config import ConfigError, load_config
from stacks.naming import names_for

STACK = "Serving"


def _one(synth, type_):
    found = synth.resources(STACK, type_)
    assert len(found) == 1, found
    return next(iter(found.items()))


def test_parameters_default_to_no_model(dev):
    params = dev.template(STACK)["Parameters"]
    assert params["ModelPackageArn"]["Default"] == "none"
    assert params["BaselineStatisticsUri"]["Default"] == "none"
    assert params["BaselineConstraintsUri"]["Default"] == "none"
    assert params["DecisionThreshold"]["Default"] == "0.5"
    condition = dev.template(STACK)["Conditions"]["HasModel"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPackageArn"}, "none"]}]}


def test_every_serving_resource_waits_for_a_model(dev):
    conditional = (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::SageMaker::Pipeline",  # batch scoring (test_infra_batch.py)
    )
    resources = dev.template(STACK)["Resources"]
    seen = set()
    for name, res in resources.items():
        if res["Type"] in conditional:
            seen.add(res["Type"])
            assert res.get("Condition") in {"HasModel", "HasBaseline", "ScalingInStep"}, name
    assert seen == set(conditional)


def test_model_comes_from_the_package_with_the_threshold(dev):
    _, model = _one(dev, "AWS::SageMaker::Model")
    (container,) = model["Properties"]["Containers"]
    assert container["ModelPackageName"] == {"Ref": "ModelPackageArn"}
    assert container["Environment"] == {
        "BOOSTLINE_DECISION_THRESHOLD": {"Ref": "DecisionThreshold"}
    }


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_data_capture_is_on_encrypted_and_sampled_from_config(variant, request):
    synth = request.getfixturevalue(variant)
    _, config = _one(synth, "AWS::SageMaker::EndpointConfig")
    capture = config["Properties"]["DataCaptureConfig"]
    serving = synth.config.stage(synth.stage).serving
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == serving.capture_percent
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert "KmsKeyId" in capture and "KmsKeyId" in config["Properties"]
    assert "-capture-" in str(capture["DestinationS3Uri"])
    (variant_props,) = config["Properties"]["ProductionVariants"]
    assert variant_props["InstanceType"] == {"Ref": "DeployedInstanceType"}
    assert synth.template(STACK)["Parameters"]["DeployedInstanceType"]["Default"] == (
        serving.instance_type
    )


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_endpoint_rolls_back_on_its_own_alarms(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    _, endpoint = _one(synth, "AWS::SageMaker::Endpoint")
    props = endpoint["Properties"]
    assert props["EndpointName"] == names.endpoint
    rollback = {
        a["AlarmName"] for a in props["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    }
    alarms = {
        res["Properties"]["AlarmName"]: res
        for res in synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
    }
    assert len(rollback) == 2 and rollback <= set(alarms)
    metrics = {alarms[n]["Properties"]["MetricName"] for n in rollback}
    assert metrics == {"Invocation5XXErrors", "ModelLatency"}
    for name in rollback:
        assert not name.startswith(f"{names.prefix}-drift-"), "a rollback alarm must not retrain"
        dims = {d["Name"]: d["Value"] for d in alarms[name]["Properties"]["Dimensions"]}
        assert dims == {"EndpointName": names.endpoint, "VariantName": "AllTraffic"}
        assert alarms[name]["Properties"]["AlarmActions"]
    policy = props["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    deployment = synth.config.stage(synth.stage).serving.deployment
    routing = policy["TrafficRoutingConfiguration"]
    assert routing["Type"] == deployment.traffic_routing
    assert routing["WaitIntervalInSeconds"] == deployment.wait_seconds
    if deployment.traffic_routing == "CANARY":
        assert routing["CanarySize"] == {
            "Type": "CAPACITY_PERCENT",
            "Value": deployment.step_percent,
        }


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_autoscaling_targets_the_variant_with_the_service_linked_role(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    scaling = synth.config.stage(synth.stage).serving.autoscaling
    _, target = _one(synth, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ResourceId"] == f"endpoint/{names.endpoint}/variant/AllTraffic"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert props["ServiceNamespace"] == "sagemaker"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (
        scaling.min_instances,
        scaling.max_instances,
    )
    role = str(props["RoleARN"])
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in role
    assert "ExecutionRole" not in role
    _, policy = _one(synth, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == scaling.target_invocations_per_instance
    assert tracking["ScaleInCooldown"] == scaling.scale_in_cooldown_seconds
    assert tracking["ScaleOutCooldown"] == scaling.scale_out_cooldown_seconds


def _config(dev_config, tmp_path, **serving):
    raw = yaml.safe_load(dev_config.source.read_text())
    raw["dataset_schema"] = str(dev_config.schema_path())
    raw["stages"]["dev"]["serving"] = {**raw["stages"]["dev"]["serving"], **serving}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_serverless_refuses_capture_and_monitoring(dev_config, tmp_path):
    path = _config(dev_config, tmp_path, serverless={"enabled": True})
    with pytest.raises(ConfigError, match="serverless cannot capture"):
        load_config(path)
    path = _config(dev_config, tmp_path, serverless={"enabled": True}, capture_percent=0)
    with pytest.raises(ConfigError, match="serverless cannot be monitored"):
        load_config(path)


def test_monitoring_needs_capture_and_scaling_bounds_are_checked(dev_config, tmp_path):
    with pytest.raises(ConfigError, match="monitoring needs data capture"):
        load_config(_config(dev_config, tmp_path, capture_percent=0))
    with pytest.raises(ConfigError, match="min_instances must not exceed"):
        load_config(
            _config(dev_config, tmp_path, autoscaling={"min_instances": 3, "max_instances": 2})
        )


def _statements_of(synth, role_name: str) -> list[dict]:
    resources = synth.template(STACK)["Resources"]
    (logical,) = [
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"]["RoleName"] == role_name
    ]
    return [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::ManagedPolicy" and {"Ref": logical} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_the_endpoint_role_writes_capture_under_the_endpoints_own_prefix(variant, request):
    # SageMaker writes captured requests as the model's execution role.
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    _, model = _one(synth, "AWS::SageMaker::Model")
    _, config = _one(synth, "AWS::SageMaker::EndpointConfig")
    destination = str(config["Properties"]["DataCaptureConfig"]["DestinationS3Uri"])
    assert destination.endswith("/capture']]}"), destination
    role_ref = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    role_name = synth.template(STACK)["Resources"][role_ref]["Properties"]["RoleName"]
    writes = [
        s
        for s in _statements_of(synth, role_name)
        if "s3:PutObject" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    (write,) = writes
    text = str(write["Resource"])
    assert "-capture-" in text and f"/capture/{names.endpoint}/*" in text


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_a_model_swap_keeps_the_scaled_out_capacity(variant, request):
    synth = request.getfixturevalue(variant)
    _, endpoint = _one(synth, "AWS::SageMaker::Endpoint")
    props = endpoint["Properties"]
    assert props["RetainAllVariantProperties"] is True
    # Capture settings of the new config still apply; instance count and weight stay.
    assert props["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DataCaptureConfig"}
    ]


def test_an_instance_type_change_takes_autoscaling_off_until_the_second_deploy(dev):
    template = dev.template(STACK)
    serving = dev.config.stage("dev").serving
    param = template["Parameters"]["DeployedInstanceType"]
    assert param["Default"] == serving.instance_type
    _, config = _one(dev, "AWS::SageMaker::EndpointConfig")
    (variant_props,) = config["Properties"]["ProductionVariants"]
    # The variant runs the deployed type (a parameter cdk deploy keeps) ...
    assert variant_props["InstanceType"] == {"Ref": "DeployedInstanceType"}
    # ... and the scaling target exists only while it equals the configured type.
    condition = template["Conditions"]["ScalingInStep"]
    assert condition == {
        "Fn::And": [
            {"Condition": "HasModel"},
            {"Fn::Equals": [{"Ref": "DeployedInstanceType"}, serving.instance_type]},
        ]
    }
    for type_ in (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
    ):
        _, res = _one(dev, type_)
        assert res["Condition"] == "ScalingInStep"
    output = template["Outputs"]["InstanceTypeChangePending"]
    assert output["Condition"] == "InstanceTypeChanged"
    assert f"DeployedInstanceType={serving.instance_type}" in output["Value"]
