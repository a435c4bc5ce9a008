"""`boostline cost` estimate and resource naming."""

from __future__ import annotations

import pytest
import yaml

from boostline.config import ConfigError, load_config
from boostline.cost import INSTANCE_HOUR_USD, estimate, run_lines, serving_lines
from stacks.naming import names_for


def test_estimate_uses_config_instance_hours(dev_config):
    text = estimate(dev_config, "prod")
    assert "stage prod (eu-west-1)" in text
    tuning = next(line for line in run_lines(dev_config, "prod") if line.item.startswith("Tuning"))
    training = dev_config.training
    expected = (
        dev_config.tuning.max_jobs
        * training.instance_count
        * training.max_runtime_seconds
        / 3600
        * INSTANCE_HOUR_USD["eu-west-1"][training.instance_type]
    )
    assert tuning.usd == pytest.approx(expected)
    assert f"{expected:8.2f}" in text
    assert "Under load (1 run/day, endpoint at max scale)" in text


def test_estimate_counts_the_endpoint_from_the_serving_config(dev_config):
    serving = dev_config.stage("prod").serving
    price = INSTANCE_HOUR_USD["eu-west-1"][serving.instance_type]
    lines = {line.item: line.usd for line in serving_lines(dev_config, "prod")}
    assert lines["Endpoint (idle)"] == pytest.approx(serving.autoscaling.min_instances * 24 * price)
    assert lines["Endpoint (at max scale)"] == pytest.approx(
        serving.autoscaling.max_instances * 24 * price
    )


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_estimate_counts_the_monitoring_jobs_the_schedule_starts(dev, stage):
    """As many as the synthesized monitoring pipeline has steps, times the schedule's runs."""
    import json

    from boostline.cost import monitoring_jobs_per_day

    (pipeline,) = dev.resources("Monitoring", "AWS::SageMaker::Pipeline").values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    steps = len(json.loads(body)["Steps"])
    schedule = dev.config.stage(stage).monitoring.schedule
    runs = 24 if schedule == "cron(0 * ? * * *)" else 1
    assert monitoring_jobs_per_day(dev.config, stage) == steps * runs
    line = next(line for line in serving_lines(dev.config, stage) if line.item == "Monitoring")
    assert line.detail.startswith(f"{steps * runs} jobs/day (own checks)")
    price = INSTANCE_HOUR_USD["eu-west-1"][dev.config.stage(stage).monitoring.instance_type]
    assert line.usd == pytest.approx(steps * runs * 0.1 * price)


@pytest.mark.parametrize("hosts", [1, 3])
def test_estimate_counts_two_preprocessing_jobs_on_each_instance(dev_config, hosts):
    preprocess = dev_config.preprocess.model_copy(update={"instance_count": hosts})
    config = dev_config.model_copy(update={"preprocess": preprocess})
    line = next(line for line in run_lines(config, "prod") if line.item == "Preprocess")
    price = INSTANCE_HOUR_USD["eu-west-1"][preprocess.instance_type]
    assert (
        line.detail
        == f"2 jobs (fit, encode) x {hosts} x {preprocess.instance_type} x 0.25 h (assumed)"
    )
    assert line.usd == pytest.approx(2 * hosts * 0.25 * price)
    assert f"{line.usd:8.2f}" in estimate(config, "prod")


@pytest.mark.parametrize("hosts", [1, 100])
def test_estimate_columns_line_up(dev_config, hosts):
    preprocess = dev_config.preprocess.model_copy(update={"instance_count": hosts})
    config = dev_config.model_copy(update={"preprocess": preprocess})
    rows = [r for r in estimate(config, "prod").splitlines() if r.startswith("  ")]
    ends = {len(r) for r in rows}
    assert len(ends) == 1, rows


def test_estimate_names_missing_prices(dev_config, tmp_path):
    raw = yaml.safe_load(dev_config.source.read_text())
    raw["dataset_schema"] = str(dev_config.schema_path())
    raw["training"]["instance_type"] = "ml.p5.48xlarge"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(KeyError, match="ml.p5.48xlarge"):
        estimate(load_config(path), "dev")


def test_names_carry_project_and_stage(dev_config):
    names = names_for(dev_config, "prod")
    assert names.pipeline == "boostline-prod-training"
    assert names.model_package_group == "boostline-prod-models"
    assert names.bucket("raw", "123456789012", "eu-west-1") == (
        "boostline-prod-raw-123456789012-eu-west-1"
    )
    assert names_for(dev_config, "dev").pipeline != names.pipeline


def test_too_long_bucket_names_are_a_config_error(dev_config, tmp_path):
    raw = yaml.safe_load(dev_config.source.read_text())
    raw["dataset_schema"] = str(dev_config.schema_path())
    raw["project"] = "a-very-long-project-name-indeed"
    raw["stages"]["productionstage"] = {"region": "ap-southeast-2"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="S3 allows 63"):
        names_for(load_config(path), "productionstage")
    with pytest.raises(ConfigError, match="no stage"):
        names_for(dev_config, "qa")
