"""A rough daily cost estimate for a stage: instance-hours from the config times list prices.

`estimate(config, stage)` returns a small text table: what the stage costs per day
when idle (key, secret, VPC endpoints) and per pipeline run (processing and
training instance-hours). It is a planning aid, not a bill: prices are on-demand
list prices copied by hand (see PRICES_NOTE), storage and requests are ignored,
and managed spot training is usually much cheaper than the on-demand figure.

With `rows` (`boostline cost --rows N`), each step of a run on a book of N rows is
sized from measured throughput (the *_ROWS_PER_VCPU_SECOND constants) instead of
the fixed assumed hours and the tuning budget's upper bound.
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

# ---------------------------------------------------------------- a run of N rows
# Throughput of each step in rows of the raw book per vCPU-second: the book's rows over
# the CPU time (user + system) of the step's processes, measured on the project's 2-core
# development machine. CPU time, not wall time: that machine was shared while measuring
# (wall time ran 2-3x the CPU time). Measured on books of `boostline data generate
# --rows N --shards 2`:
# - PreprocessFit, Preprocess: `preprocess.py --pass fit|encode` on 800,000 rows: 5.5 s
#   and 9.5 s of CPU (2.4 s and 3.4 s on 200,000, 3.7 s and 5.5 s on 400,000);
# - Tune, Evaluate: `boostline pipeline run` on 400,000 rows with the shipped config
#   (6 trials on 2 hosts, num_round 300 with early stopping): 103 s of CPU over the six
#   trials (68 s on 200,000), 11 s for Evaluate (12 s on 200,000: its logistic baseline
#   and SHAP use fixed-size samples, so most of it does not grow with the rows).
# Each rate is the largest book's average, fixed start-up CPU included, so it overstates
# the hours of bigger books. Assumption: an instance with V vCPUs does V times one vCPU's
# rows (an ml.m5.xlarge has 4 vCPUs), as train.py's XGBoost does (nthread = SM_NUM_CPUS);
# preprocess.py and evaluate.py are partly single-threaded, so on instances with many
# vCPUs their hours are understated.
PREPROCESS_FIT_ROWS_PER_VCPU_SECOND = 145_000.0
PREPROCESS_ROWS_PER_VCPU_SECOND = 84_000.0
# One tuning trial (one training job), its rows shared by its hosts.
TRAIN_ROWS_PER_VCPU_SECOND = 23_000.0
EVALUATE_ROWS_PER_VCPU_SECOND = 36_000.0
# SageMaker bills training and processing per second; a job's billed time also holds
# its start-up (image pull, S3 download) and its upload at the end: assumed 3 minutes,
# which is also the least a job is billed here.
JOB_OVERHEAD_SECONDS = 180
SIZED_NOTE = (
    "Step hours: the rows at each step's measured rows per vCPU-second times the "
    f"instance's vCPUs, plus {JOB_OVERHEAD_SECONDS // 60} minutes of start-up per job "
    "(boostline/cost.py says where the rates come from)."
)
# vCPUs per instance type (the AWS instance pages); a type priced above needs one here.
INSTANCE_VCPUS: dict[str, int] = {
    "ml.m5.large": 2,
    "ml.m5.xlarge": 4,
    "ml.m5.2xlarge": 8,
    "ml.m5.4xlarge": 16,
    "ml.c5.xlarge": 4,
    "ml.c5.2xlarge": 8,
}


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


def instance_vcpus(instance_type: str) -> int:
    try:
        return INSTANCE_VCPUS[instance_type]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_VCPUS))
        raise KeyError(
            f"no vCPU count for {instance_type} (known: {known}); add it to "
            "INSTANCE_VCPUS in boostline/cost.py"
        ) from None


@dataclass(frozen=True)
class SizedStep:
    """One pipeline step of a run of a given size: `jobs` jobs on `instances` each."""

    step: str
    jobs: int
    instances: int
    instance_type: str
    hours: float  # per instance and job, JOB_OVERHEAD_SECONDS included
    capped: bool = False  # at the job's max_runtime_seconds

    @property
    def instance_hours(self) -> float:
        return self.jobs * self.instances * self.hours


def job_hours(rows_per_host: float, rows_per_vcpu_second: float, instance_type: str) -> float:
    """Billed hours of one host of a job: its rows at the instance's rate, plus the overhead."""
    rate = rows_per_vcpu_second * instance_vcpus(instance_type)
    return (JOB_OVERHEAD_SECONDS + rows_per_host / rate) / 3600


def cross_validation_factor(config: BoostlineConfig, rows: int) -> float:
    """How many times a trial's training work exceeds the measured one (1 unless small).

    Below cv_max_rows training rows a trial trains cv_folds fold models on (k-1)/k of
    train + validation and then the model on all of it: k times train + validation,
    where the measured trials trained once on train. With `linear_margin: auto` the folds
    run from both starts, and each round grows cv_parallel_trees trees (num_parallel_tree
    where given), where the measured trials grew one.
    """
    pre = config.preprocess
    hps = config.training.parsed_hyperparameters()
    train_share = 1 - pre.validation_fraction - pre.test_fraction
    if not hps.cv_max_rows or rows * train_share >= hps.cv_max_rows:
        return 1.0
    starts = 2 if hps.linear_margin == "auto" else 1
    trees = int(hps.booster.get("num_parallel_tree", hps.cv_parallel_trees))
    return hps.cv_folds * (1 - pre.test_fraction) / train_share * starts * trees


def sized_steps(config: BoostlineConfig, rows: int) -> list[SizedStep]:
    """Each step of one pipeline run on a book of `rows` rows."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    pre = config.preprocess
    training = config.training
    evaluation_type = config.evaluation.instance_type
    steps = [
        SizedStep(
            step,
            1,
            pre.instance_count,
            pre.instance_type,
            job_hours(rows / pre.instance_count, rate, pre.instance_type),
        )
        for step, rate in (
            ("PreprocessFit", PREPROCESS_FIT_ROWS_PER_VCPU_SECOND),
            ("Preprocess", PREPROCESS_ROWS_PER_VCPU_SECOND),
        )
    ]
    trial = job_hours(
        rows * cross_validation_factor(config, rows) / training.instance_count,
        TRAIN_ROWS_PER_VCPU_SECOND,
        training.instance_type,
    )
    cap = training.max_runtime_seconds / 3600
    steps.append(
        SizedStep(
            "Tune",
            config.tuning.max_jobs,
            training.instance_count,
            training.instance_type,
            min(trial, cap),
            capped=trial > cap,
        )
    )
    steps.append(
        SizedStep(
            "Evaluate",
            1,
            1,
            evaluation_type,
            job_hours(rows, EVALUATE_ROWS_PER_VCPU_SECOND, evaluation_type),
        )
    )
    return steps


def sized_run_lines(config: BoostlineConfig, stage: str, rows: int) -> list[Line]:
    """One pipeline run on a book of `rows` rows, step by step."""
    config = config.for_stage(stage)  # the stage's job sizes (stages.<name>.jobs)
    region = config.stage(stage).region
    lines = []
    for step in sized_steps(config, rows):
        jobs = f"{step.jobs} trials x " if step.step == "Tune" else ""
        capped = " (max_runtime_seconds)" if step.capped else ""
        lines.append(
            Line(
                step.step,
                f"{jobs}{step.instances} x {step.instance_type} x {step.hours:.3f} h{capped}",
                step.instance_hours * instance_price(region, step.instance_type),
            )
        )
    return lines


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
    config = config.for_stage(stage)  # the stage's job sizes (stages.<name>.jobs)
    region = config.stage(stage).region
    processing = config.preprocess.instance_type
    evaluation = config.evaluation.instance_type
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
            f"1 x {evaluation} x {EVALUATE_HOURS:g} h (assumed)",
            EVALUATE_HOURS * instance_price(region, evaluation),
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


def estimate(
    config: BoostlineConfig, stage: str, runs_per_day: float = 1.0, rows: int | None = None
) -> str:
    """The estimate for a stage as a printable table; with `rows`, a run of that size."""
    idle = idle_lines(config, stage)
    run = run_lines(config, stage) if rows is None else sized_run_lines(config, stage, rows)
    serve = serving_lines(config, stage)
    idle_total = sum(line.usd for line in idle)
    run_total = sum(line.usd for line in run)
    width = max(len(line.detail) for line in idle + run + serve)
    # Columns line up whatever the longest item and detail are.
    item = max(len(line.item) for line in idle + run + serve) + 2
    out = [f"Boostline cost estimate: stage {stage} ({config.stage(stage).region}), USD"]
    out.append("")
    out.append("Idle, per day")
    out += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in idle]
    out.append(f"  {'total':<{item}}{'':<{width}}  {idle_total:8.2f}")
    out.append("")
    size = "" if rows is None else f" of {rows:,} rows"
    out.append(f"One training pipeline run{size} (on-demand)")
    out += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in run]
    out.append(f"  {'total':<{item}}{'':<{width}}  {run_total:8.2f}")
    out.append("")
    out.append("With a live model, per day (on-demand)")
    out += [f"  {line.item:<{item}}{line.detail:<{width}}  {line.usd:8.2f}" for line in serve]
    out.append("")
    live = sum(line.usd for line in serve if line.item != "Endpoint (at max scale)")
    peak = sum(line.usd for line in serve if line.item != "Endpoint (idle)")
    daily = idle_total + runs_per_day * run_total
    out.append(f"Idle with a live model: {idle_total + live:.2f} per day")
    out.append(
        f"Under load ({runs_per_day:g} run/day, endpoint at max scale): {daily + peak:.2f} per day"
    )
    if rows is not None:
        out.append(SIZED_NOTE)
    if config.training.spot.enabled:
        out.append("Managed spot training is on: tuning usually costs well below the figure.")
    out.append("Not included: S3 storage and requests, CloudWatch, Lambda, data transfer.")
    out.append(PRICES_NOTE)
    return "\n".join(out)
