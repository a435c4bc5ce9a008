"""A rough daily cost estimate for a stage: instance-hours from the config times list prices.

`estimate(config, stage)` returns a small text table: what the stage costs per day
when idle (key, secret, VPC endpoints) and per pipeline run (processing and
training instance-hours). It is a planning aid, not a bill: prices are on-demand
list prices copied by hand (see PRICES_NOTE), storage and requests are ignored,
and managed spot training is usually much cheaper than the on-demand figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from boostline.config import BoostlineConfig

PRICES_NOTE = (
    "On-demand list prices in USD for SageMaker training/processing instances, "
    "AWS KMS, Secrets Manager and VPC interface endpoints, from the AWS pricing pages "
    "as of 2025-06; check the current pages before relying on them."
)
# USD per instance-hour (SageMaker training and processing), by region.
INSTANCE_HOUR_USD: dict[str, dict[str, float]] = {
    "us-east-1": {
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.m5.2xlarge": 0.461,
        "ml.m5.4xlarge": 0.922,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
    },
    "eu-west-1": {
        "ml.m5.large": 0.128,
        "ml.m5.xlarge": 0.256,
        "ml.m5.2xlarge": 0.512,
        "ml.m5.4xlarge": 1.024,
        "ml.c5.xlarge": 0.23,
        "ml.c5.2xlarge": 0.46,
    },
}
KMS_KEY_USD_PER_MONTH = 1.00
SECRET_USD_PER_MONTH = 0.40
INTERFACE_ENDPOINT_USD_PER_AZ_HOUR = {"us-east-1": 0.01, "eu-west-1": 0.011}
INTERFACE_ENDPOINTS = 2  # Secrets Manager, SageMaker API (the S3 gateway endpoint is free)
DAYS_PER_MONTH = 30.4
# Assumed wall-clock hours of each processing job on the reference data set; the
# config bounds only training (max_runtime_seconds).
PREPROCESS_HOURS = 0.25
# Preprocessing is two jobs (PreprocessFit, then Preprocess), each on
# preprocess.instance_count instances.
PREPROCESS_JOBS = 2
EVALUATE_HOURS = 0.25
# Assumed wall-clock hours of one monitoring execution on hourly traffic.
MONITOR_RUN_HOURS = 0.1


@dataclass(frozen=True)
class Line:
    item: str
    detail: str
    usd: float


def instance_price(region: str, instance_type: str) -> float:
    try:
        return INSTANCE_HOUR_USD[region][instance_type]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_HOUR_USD))
        raise KeyError(
            f"no price for {instance_type} in {region} (regions with prices: {known}); "
            "add it to boostline/cost.py"
        ) from None


def idle_lines(config: BoostlineConfig, stage: str) -> list[Line]:
    stage_config = config.stage(stage)
    lines = [
        Line("KMS key", "1 customer-managed key", KMS_KEY_USD_PER_MONTH / DAYS_PER_MONTH),
        Line("Secrets Manager", "1 secret (PII salt)", SECRET_USD_PER_MONTH / DAYS_PER_MONTH),
    ]
    if stage_config.vpc.enabled:
        zones = len(stage_config.vpc.availability_zones) or 2
        hourly = INTERFACE_ENDPOINT_USD_PER_AZ_HOUR.get(stage_config.region, 0.011)
        lines.append(
            Line(
                "VPC endpoints",
                f"{INTERFACE_ENDPOINTS} interface endpoint x {zones} AZ x 24 h",
                INTERFACE_ENDPOINTS * zones * 24 * hourly,
            )
        )
    return lines


def run_lines(config: BoostlineConfig, stage: str) -> list[Line]:
    region = config.stage(stage).region
    processing = config.preprocess.instance_type
    training = config.training
    tuning = config.tuning
    training_hours = tuning.max_jobs * training.instance_count * training.max_runtime_seconds / 3600
    hosts = config.preprocess.instance_count
    return [
        Line(
            "Preprocess",
            f"{PREPROCESS_JOBS} jobs (fit, encode) x {hosts} x {processing} x "
            f"{PREPROCESS_HOURS:g} h (assumed)",
            PREPROCESS_JOBS * hosts * PREPROCESS_HOURS * instance_price(region, processing),
        ),
        Line(
            "Tuning (upper bound)",
            f"{tuning.max_jobs} jobs x {training.instance_count} x {training.instance_type} x "
            f"{training.max_runtime_seconds / 3600:g} h",
            training_hours * instance_price(region, training.instance_type),
        ),
        Line(
            "Evaluate",
            f"1 x {processing} x {EVALUATE_HOURS:g} h (assumed)",
            EVALUATE_HOURS * instance_price(region, processing),
        ),
    ]


def serving_lines(config: BoostlineConfig, stage: str) -> list[Line]:
    """A day with a live model: endpoint instances and the monitoring schedules."""
    stage_config = config.stage(stage)
    region = stage_config.region
    serving = stage_config.serving
    if serving.serverless.enabled:
        return [Line("Endpoint", "serverless: billed per request and GB-second", 0.0)]
    price = instance_price(region, serving.instance_type)
    low = serving.autoscaling.min_instances
    high = serving.autoscaling.max_instances
    lines = [
        Line("Endpoint (idle)", f"{low} x {serving.instance_type} x 24 h", low * 24 * price),
        Line(
            "Endpoint (at max scale)",
            f"{high} x {serving.instance_type} x 24 h",
            high * 24 * price,
        ),
    ]
    monitoring = stage_config.monitoring
    if monitoring.enabled:
        jobs = monitoring_jobs_per_day(config, stage)
        engine = "own checks" if monitoring.engine == "own" else "Model Monitor"
        lines.append(
            Line(
                "Monitoring",
                f"{jobs} jobs/day ({engine}) x {monitoring.instance_type} x "
                f"{MONITOR_RUN_HOURS:g} h (assumed)",
                jobs * MONITOR_RUN_HOURS * instance_price(region, monitoring.instance_type),
            )
        )
    return lines


def monitoring_jobs_per_day(config: BoostlineConfig, stage: str) -> int:
    """Processing jobs the monitoring schedule starts per day: one per check per run."""
    monitoring = config.stage(stage).monitoring
    if not monitoring.enabled:
        return 0
    checks = 2 if monitoring.model_quality else 1
    runs = 24 if "* ? * * *" in monitoring.schedule else 1
    return checks * runs


def estimate(config: BoostlineConfig, stage: str, runs_per_day: float = 1.0) -> str:
    """The estimate for a stage as a printable table."""
    idle = idle_lines(config, stage)
    run = run_lines(config, stage)
    serve = serving_lines(config, stage)
    idle_total = sum(line.usd for line in idle)
    run_total = sum(line.usd for line in run)
    width = max(len(line.detail) for line in idle + run + serve)
    # Columns line up whatever the longest item and detail are.
    item = max(len(line.item) for line in idle + run + serve) + 2
    rows = [f"Boostline cost estimate: stage {stage} ({config.stage(stage).region}), USD"]
    rows.append("")
    rows.append("Idle, per day")
    rows += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in idle]
    rows.append(f"  {'total':<{item}}{'':<{width}}  {idle_total:8.2f}")
    rows.append("")
    rows.append("One training pipeline run (on-demand)")
    rows += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in run]
    rows.append(f"  {'total':<{item}}{'':<{width}}  {run_total:8.2f}")
    rows.append("")
    rows.append("With a live model, per day (on-demand)")
    rows += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in serve]
    rows.append("")
    live = sum(line.usd for line in serve if line.item != "Endpoint (at max scale)")
    peak = sum(line.usd for line in serve if line.item != "Endpoint (idle)")
    daily = idle_total + runs_per_day * run_total
    rows.append(f"Idle with a live model: {idle_total + live:.2f} per day")
    rows.append(
        f"Under load ({runs_per_day:g} run/day, endpoint at max scale): {daily + peak:.2f} per day"
    )
    if config.training.spot.enabled:
        rows.append("Managed spot training is on: tuning usually costs well below the figure.")
    rows.append("Not included: S3 storage and requests, CloudWatch, Lambda, data transfer.")
    rows.append(PRICES_NOTE)
    return "\n".join(rows)
