"""Automation stack: the two Lambdas, their rules (exact patterns), table, DLQs and alarms."""

from __future__ import annotations

import json

import pytest

from stacks.automation_stack import event_patterns
from stacks.naming import names_for

STACK = "Automation"


def _functions(synth):
    return {
        res["Properties"]["FunctionName"]: res["Properties"]
        for res in synth.resources(STACK, "AWS::Lambda::Function").values()
        if "FunctionName" in res["Properties"]
    }


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_rule_patterns_equal_the_handlers_patterns(variant, request):
    synth = request.getfixturevalue(variant)
    names = names_for(synth.config, synth.stage)
    patterns = event_patterns()
    # The raw bucket name carries account and region tokens, as the stack renders them.
    raw_bucket = {
        "Fn::Join": [
            "",
            [f"{names.prefix}-raw-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}],
        ]
    }
    expected = {
        **patterns.retrain_trigger_patterns(
            raw_bucket="RAW",
            pipeline_name=names.pipeline,
            monitoring_schedule_prefix=f"{names.prefix}-",
            drift_alarm_prefix=f"{names.prefix}-drift-",
            endpoint=names.endpoint,
        ),
        **patterns.deployer_patterns(
            model_package_group=names.model_package_group,
            serving_stack=names.stack("serving"),
            monitoring_stack=names.stack("monitoring"),
        ),
    }
    expected["new-data"]["detail"]["bucket"]["name"] = [raw_bucket]
    rules = {
        res["Properties"]["Name"]: res["Properties"]
        for res in synth.resources(STACK, "AWS::Events::Rule").values()
    }
    for rule_name, pattern in expected.items():
        assert rules[f"{names.prefix}-{rule_name}"]["EventPattern"] == pattern, rule_name
    schedule = rules[f"{names.prefix}-retrain-schedule"]
    assert schedule["ScheduleExpression"] == synth.config.stage(synth.stage).retrain.schedule
    assert "EventPattern" not in schedule
    functions = {fid: res for fid, res in synth.resources(STACK, "AWS::Lambda::Function").items()}
    trigger_id = next(f for f in functions if f.startswith("RetrainTrigger"))
    deployer_id = next(f for f in functions if f.startswith("Deployer"))
    for rule_name, props in rules.items():
        (target,) = props["Targets"]
        to_deployer = rule_name.endswith(("model-package-state", "serving-stack-settled"))
        want = deployer_id if to_deployer else trigger_id
        assert target["Arn"] == {"Fn::GetAtt": [want, "Arn"]}, rule_name


def test_default_schedule_is_the_handlers_default(dev_config):
    assert dev_config.stage("prod").retrain.schedule == event_patterns().DEFAULT_RETRAIN_SCHEDULE


def test_functions_settings_and_environment(dev):
    names = names_for(dev.config, "dev")
    functions = _functions(dev)
    trigger = functions[f"{names.prefix}-retrain-trigger"]
    deployer = functions[f"{names.prefix}-deployer"]
    for fn in (trigger, deployer):
        assert fn["Runtime"] == "python3.14"
        assert fn["Handler"] == "app.lambda_handler"
        assert "KmsKeyArn" in fn and "TargetArn" in fn["DeadLetterConfig"]
        # Powertools travels in the function's own asset (stacks/lambda_bundle.py).
        assert "Layers" not in fn
    assert (trigger["Timeout"], deployer["Timeout"]) == (60, 900)
    # dev must deploy into a new account (concurrency quota 10, none reservable).
    assert not dev.config.stage("dev").reserve_lambda_concurrency
    assert "ReservedConcurrentExecutions" not in trigger
    assert "ReservedConcurrentExecutions" not in deployer
    env = trigger["Environment"]["Variables"]
    retrain = dev.config.stage("dev").retrain
    assert env["PIPELINE_NAME"] == names.pipeline
    assert env["MODEL_PACKAGE_GROUP"] == names.model_package_group
    assert env["MIN_NEW_FILES"] == str(retrain.min_new_files)
    assert env["MIN_INTERVAL_SECONDS"] == str(retrain.min_interval_seconds)
    assert env["DRIFT_ALARM_PREFIX"] == f"{names.prefix}-drift-"
    assert env["MONITORING_SCHEDULE_PREFIX"] == f"{names.prefix}-"
    assert "Ref" in env["IDEMPOTENCY_TABLE"]
    assert deployer["Environment"]["Variables"]["SERVING_STACK_NAME"] == names.stack("serving")
    invoke = [
        r["Properties"] for r in dev.resources(STACK, "AWS::Lambda::EventInvokeConfig").values()
    ]
    assert sorted(i["MaximumRetryAttempts"] for i in invoke) == [2, 2]


def test_table_and_dead_letter_queues_are_encrypted(dev):
    (table,) = dev.resources(STACK, "AWS::DynamoDB::GlobalTable").values()
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"]["SSEType"] == "KMS"
    (replica,) = props["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    queues = dev.resources(STACK, "AWS::SQS::Queue")
    assert len(queues) == 2
    assert all("KmsMasterKeyId" in q["Properties"] for q in queues.values())
    alarms = [a["Properties"] for a in dev.resources(STACK, "AWS::CloudWatch::Alarm").values()]
    assert sorted(a["MetricName"] for a in alarms) == [
        *["ApproximateNumberOfMessagesVisible"] * 2,
        "DeployDecision",  # the deployer's permanent errors, which skip the DLQ
    ]
    assert all(a["AlarmActions"] for a in alarms)


def test_deployer_may_update_only_the_serving_stack(dev):
    names = names_for(dev.config, "dev")
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for pid, p in dev.resources(STACK, "AWS::IAM::Policy").items()
        if pid.startswith("DeployerRole")
    ]
    (statements,) = policies
    cfn = [s for s in statements if "cloudformation:UpdateStack" in s["Action"]]
    (update,) = cfn
    assert f"stack/{names.stack('serving')}/*" in str(update["Resource"])
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }
    assert not any("sagemaker:Create" in str(s["Action"]) for s in statements)


def test_prod_reserves_concurrency_one_deployer_at_a_time(prod_vpc):
    names = names_for(prod_vpc.config, "prod")
    functions = _functions(prod_vpc)
    assert prod_vpc.config.stage("prod").reserve_lambda_concurrency
    assert functions[f"{names.prefix}-deployer"]["ReservedConcurrentExecutions"] == 1
    assert functions[f"{names.prefix}-retrain-trigger"]["ReservedConcurrentExecutions"] == 5


def _role_statements(synth, role_suffix: str) -> list[dict]:
    resources = synth.template(STACK)["Resources"]
    (logical,) = [
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"]["RoleName"].endswith(role_suffix)
    ]
    return [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": logical} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_retrain_trigger_may_read_why_a_run_failed(dev):
    statements = _role_statements(dev, "-retrain-trigger")

    def resources(action: str) -> str:
        return json.dumps([s["Resource"] for s in statements if action in json.dumps(s["Action"])])

    steps = resources("sagemaker:ListPipelineExecutionSteps")
    assert f"pipeline/{names_for(dev.config, 'dev').pipeline}/execution/*" in steps
    logs = resources("logs:FilterLogEvents")
    for group in ("/aws/sagemaker/TrainingJobs:*", "/aws/sagemaker/ProcessingJobs:*"):
        assert f"log-group:{group}" in logs


def test_a_permanent_deploy_error_pages_through_the_alerts_topic(dev):
    names = names_for(dev.config, "dev")
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in dev.resources(STACK, "AWS::CloudWatch::Alarm").values()
    }
    alarm = alarms[f"{names.prefix}-deployer-permanent-error"]
    deployer = _functions(dev)[f"{names.prefix}-deployer"]["Environment"]["Variables"]
    assert alarm["Namespace"] == deployer["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == "DeployDecision"
    dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dims == {"service": deployer["POWERTOOLS_SERVICE_NAME"], "decision": "permanent-error"}
    assert alarm["AlarmActions"]
