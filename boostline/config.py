"""The one typed configuration read by the local runner and the CDK app.

`config/boostline.yaml` (in a checkout; the embedded default `boostline/data/boostline.yaml`
otherwise) holds the stages (where and how the system is
deployed), the preprocessing split, the training hyperparameters and their
tuning ranges, and the quality-gate thresholds. Any mistake is reported with
the file, the key and the reason before anything runs or is synthesized.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if typing.TYPE_CHECKING:
    from training_scripts.train import Hyperparameters

REPO_ROOT = Path(__file__).resolve().parent.parent
# The default ships inside the package, so an installed boostline runs without a
# checkout; a checkout's config/boostline.yaml is a link to this same file.
EMBEDDED_CONFIG = Path(__file__).resolve().parent / "data" / "boostline.yaml"
CHECKOUT_CONFIG = REPO_ROOT / "config" / "boostline.yaml"
DEFAULT_CONFIG = CHECKOUT_CONFIG if CHECKOUT_CONFIG.is_file() else EMBEDDED_CONFIG
# A config named by the environment, for scripts and installed copies.
CONFIG_ENV = "BOOSTLINE_CONFIG"

HyperparameterValue = int | float | str


class ConfigError(ValueError):
    """A configuration file is wrong; the message names file, key and reason."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        lines = [f"{source}: {key}: {reason}" for key, reason in problems]
        super().__init__("\n".join(lines))
        self.source = source
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TuningRange(_Strict):
    """One hyperparameter range, as a SageMaker tuning job declares it."""

    type: Literal["continuous", "integer", "categorical"]
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"

    @model_validator(mode="after")
    def _check(self) -> TuningRange:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical range needs 'values'")
            return self
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} range needs 'min' and 'max'")
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        if self.type == "integer" and not (self.min.is_integer() and self.max.is_integer()):
            raise ValueError("an integer range needs whole-number bounds")
        if self.scaling == "Logarithmic" and self.min <= 0:
            raise ValueError("Logarithmic scaling needs min > 0")
        return self


class TuningConfig(_Strict):
    strategy: Literal["Bayesian", "Random"] = "Bayesian"
    objective_metric: str = "validation:auc"
    objective_type: Literal["Maximize", "Minimize"] = "Maximize"
    max_jobs: int = Field(8, ge=1, le=500)
    max_parallel_jobs: int = Field(2, ge=1, le=100)
    ranges: dict[str, TuningRange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TuningConfig:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("max_parallel_jobs must not exceed max_jobs")
        return self


class SpotConfig(_Strict):
    enabled: bool = False
    max_wait_seconds: int = Field(7200, ge=60)


# SageMaker's per-job limits: a training job or a processing job runs on 1 to 100
# instances (the account's quotas may allow fewer).
MAX_TRAINING_INSTANCES = 100
MAX_PROCESSING_INSTANCES = 100


class TrainingConfig(_Strict):
    framework_version: str = "3.0-5"
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(2, ge=1, le=MAX_TRAINING_INSTANCES)
    volume_size_gb: int = Field(30, ge=1)
    max_runtime_seconds: int = Field(3600, ge=60)
    spot: SpotConfig = SpotConfig()
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)

    def parsed_hyperparameters(self) -> Hyperparameters:
        """The hyperparameters as train.py reads them, its defaults filled in."""
        import json

        from training_scripts.train import parse_hyperparameters

        return parse_hyperparameters([], json.dumps(self.hyperparameters))

    def eval_metric(self) -> str:
        """The metric train.py evaluates and prints (its default when not set here)."""
        return self.parsed_hyperparameters().eval_metric

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.spot.enabled and self.spot.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError("spot.max_wait_seconds must be at least max_runtime_seconds")
        return self


class PreprocessConfig(_Strict):
    instance_type: str = "ml.m5.xlarge"
    # Hosts of each preprocessing step (fit, then encode), each with its own raw files
    # (ShardedByS3Key hands out whole files): at most the raw file count, which only the
    # run knows, so the fit pass refuses more hosts than files.
    instance_count: int = Field(1, ge=1, le=MAX_PROCESSING_INSTANCES)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    train_shards: int = Field(4, ge=1, le=1000)
    max_rejected_fraction: float = Field(0.05, ge=0, le=1)
    seed: int = 42

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)

    def arguments(self, training_instance_count: Any) -> list[Any]:
        """preprocess.py's command-line settings, the same locally and on SageMaker.

        training_instance_count: the training step's host count, as text (on SageMaker
        a pipeline expression of the TrainingInstanceCount parameter), so preprocessing
        refuses a run whose hosts would outnumber its shards.
        """
        return [
            "--validation-fraction", str(self.validation_fraction),
            "--test-fraction", str(self.test_fraction),
            "--train-shards", str(self.train_shards),
            "--max-rejected-fraction", str(self.max_rejected_fraction),
            "--seed", str(self.seed),
            "--training-instance-count", training_instance_count,
        ]  # fmt: skip


class GateConfig(_Strict):
    min_auc: float = Field(0.70, ge=0.5, le=1.0)
    # A candidate may be at most this much worse than the approved model.
    max_auc_drop: float = Field(0.01, ge=0.0, le=0.5)
    # ... and at most this much worse than a logistic regression fitted on the same rows
    # in the evaluation job (a model worse than logistic regression does not ship).
    max_auc_below_logistic: float = Field(0.01, ge=0.0, le=0.5)
    # The largest expected calibration error (10 equal-width bins, test set) a candidate
    # may have beyond what the test set's size alone gives a calibrated model (the 95th
    # percentile of its ECE with labels drawn from the scores); null: not checked.
    max_ece: float | None = Field(None, gt=0.0, le=1.0)


class EvaluationConfig(_Strict):
    """The Evaluate step: its instance, and how evaluate.py picks the decision threshold."""

    # max_f1: the threshold with the best F1. min_cost: the one with the lowest
    # expected cost, a missed default costing cost_false_negative and a
    # rejected good loan cost_false_positive.
    threshold_rule: Literal["max_f1", "min_cost"] = "min_cost"
    cost_false_negative: float = Field(5.0, gt=0)
    cost_false_positive: float = Field(1.0, gt=0)
    shap_sample_rows: int = Field(2000, ge=10, le=100_000)
    # The Evaluate step's instance (one host: evaluate.py reads every test row itself).
    instance_type: str = "ml.m5.xlarge"

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)

    def arguments(self, auc_margin: float, baseline_auc_margin: float = 0.01) -> list[str]:
        """evaluate.py's command-line settings, the same locally and on SageMaker."""
        return [
            "--threshold-rule", self.threshold_rule,
            "--cost-false-negative", str(self.cost_false_negative),
            "--cost-false-positive", str(self.cost_false_positive),
            "--auc-margin", str(auc_margin),
            "--baseline-auc-margin", str(baseline_auc_margin),
            "--shap-sample-rows", str(self.shap_sample_rows),
        ]  # fmt: skip


class VpcConfig(_Strict):
    """VPC mode: SageMaker jobs run in private subnets reaching AWS through VPC endpoints,
    and training runs with network isolation."""

    enabled: bool = False
    cidr: str = "10.40.0.0/16"
    # Two or more AZ names; empty means "<region>a" and "<region>b". Listing them keeps
    # synth free of AZ lookups even when the stage names its account.
    availability_zones: list[str] = Field(default_factory=list)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])", value):
            raise ValueError(f"{value!r} is not an IPv4 CIDR block between /16 and /24")
        return value

    @field_validator("availability_zones")
    @classmethod
    def _azs(cls, value: list[str]) -> list[str]:
        if value and len(value) < 2:
            raise ValueError("list at least two availability zones, or none")
        for name in value:
            if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]", name):
                raise ValueError(f"{name!r} is not an availability zone name")
        return value


class StorageConfig(_Strict):
    """How long S3 keeps what is not current (days)."""

    noncurrent_version_days: int = Field(30, ge=1)
    capture_days: int = Field(90, ge=1)  # endpoint data capture
    access_log_days: int = Field(365, ge=1)


class AutoscalingConfig(_Strict):
    """Target tracking on SageMakerVariantInvocationsPerInstance (instance endpoints only)."""

    min_instances: int = Field(1, ge=1, le=100)
    max_instances: int = Field(2, ge=1, le=100)
    # Invocations per instance per minute; size it as max RPS x 0.5 x 60.
    target_invocations_per_instance: int = Field(300, ge=1)
    scale_out_cooldown_seconds: int = Field(60, ge=0, le=3600)
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=3600)
    # The scale-in guard: never remove instances automatically (production stages).
    disable_scale_in: bool = False

    @model_validator(mode="after")
    def _check(self) -> AutoscalingConfig:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances must not exceed max_instances")
        return self


class DeploymentPolicyConfig(_Strict):
    """Blue/green traffic shifting of a new model, rolled back by the endpoint's alarms."""

    traffic_routing: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "CANARY"
    # CANARY: share of capacity the canary gets; LINEAR: the step size (percent).
    step_percent: int = Field(10, ge=1, le=50)
    wait_seconds: int = Field(300, ge=0, le=3600)
    termination_wait_seconds: int = Field(300, ge=0, le=3600)
    max_execution_timeout_seconds: int = Field(3600, ge=600, le=14400)


class ServerlessConfig(_Strict):
    """Serverless inference: no data capture, no Model Monitor, no autoscaling policy."""

    enabled: bool = False
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(5, ge=1, le=200)


class ServingConfig(_Strict):
    instance_type: str = "ml.m5.large"
    initial_instance_count: int = Field(1, ge=1, le=100)
    variant_name: str = Field("AllTraffic", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    # Share of requests captured for monitoring; 0 turns data capture off.
    capture_percent: int = Field(100, ge=0, le=100)
    serverless: ServerlessConfig = ServerlessConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    deployment: DeploymentPolicyConfig = DeploymentPolicyConfig()
    # Rollback alarms (per minute, on the live variant).
    max_5xx_errors_per_minute: int = Field(5, ge=1)
    max_model_latency_ms: int = Field(1000, ge=1)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)


class MonitoringConfig(_Strict):
    """Scheduled data-quality and model-quality checks of the live endpoint."""

    enabled: bool = True
    # own: our own checks (training_scripts/monitor_job.py running data_quality.py and
    # model_quality.py) as a small SageMaker pipeline in the XGBoost image, in the
    # monitoring stack; works in every account. model-monitor: SageMaker Model Monitor's
    # schedules, only for accounts that already use it (it is closed to new customers).
    engine: Literal["own", "model-monitor"] = "own"
    # Model Monitor accepts hourly or daily cron expressions.
    schedule: str = "cron(0 * ? * * *)"
    instance_type: str = "ml.m5.xlarge"
    max_runtime_seconds: int = Field(1800, ge=60, le=3600)
    model_quality: bool = True
    # Labels that arrive later: s3://<capture bucket>/<ground_truth_prefix>yyyy/mm/dd/hh/
    ground_truth_prefix: str = Field("ground-truth/", pattern=r"^[a-z0-9][a-z0-9/_-]*/$")

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not re.fullmatch(r"cron\(0 (\*|\d{1,2}) \? \* \* \*\)", value):
            raise ValueError(
                f"{value!r}: Model Monitor runs hourly 'cron(0 * ? * * *)' or daily "
                "'cron(0 H ? * * *)'"
            )
        return value


class BatchConfig(_Strict):
    """The batch scoring pipeline's job (stacks/batch_scoring.py): one host."""

    instance_type: str = "ml.m5.xlarge"

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value)


class EvaluationSize(_Strict):
    """A stage's instance type for one of the pipeline's jobs; unset: the top-level
    section's."""

    instance_type: str | None = None

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str | None) -> str | None:
        return None if value is None else _check_instance_type(value)

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class JobSize(EvaluationSize):
    """... and its instance count."""

    instance_count: int | None = Field(None, ge=1, le=MAX_PROCESSING_INSTANCES)


class StageJobs(_Strict):
    """Per-stage instance types and counts of the training pipeline's jobs, over the
    top-level preprocess, training and evaluation sections (prod on a large book, say,
    with more preprocessing hosts than dev)."""

    preprocess: JobSize = JobSize()
    training: JobSize = JobSize()
    evaluation: EvaluationSize = EvaluationSize()


class RetrainConfig(_Strict):
    """The retrain trigger's debounce and its schedule (lambda/README.md)."""

    schedule: str = "cron(0 3 1 * ? *)"
    min_new_files: int = Field(1, ge=0)
    min_new_bytes: int = Field(0, ge=0)
    min_interval_seconds: int = Field(3600, ge=0)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not re.fullmatch(r"(cron|rate)\(.+\)", value):
            raise ValueError(f"{value!r} is not an EventBridge schedule expression")
        return value


class StageConfig(_Strict):
    account: str | None = None
    region: str = "eu-west-1"
    model_approval: Literal["auto", "manual"] = "manual"
    retain_data: bool = True
    # Reserve Lambda concurrency (5 for the retrain trigger, 1 for the deployer). A
    # reservation counts against the account's quota and must leave 10 unreserved,
    # so an account whose quota is still the new-account 10 fails `cdk deploy` with
    # it on. Off, the deployer still serialises updates: a busy stack is waited for.
    reserve_lambda_concurrency: bool = True
    vpc: VpcConfig = VpcConfig()
    storage: StorageConfig = StorageConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    batch: BatchConfig = BatchConfig()
    jobs: StageJobs = StageJobs()
    retrain: RetrainConfig = RetrainConfig()

    @model_validator(mode="after")
    def _serverless_limits(self) -> StageConfig:
        # Serverless endpoints support neither data capture nor Model Monitor.
        if self.serving.serverless.enabled:
            if self.serving.capture_percent:
                raise ValueError("serving.serverless cannot capture data: set capture_percent: 0")
            if self.monitoring.enabled:
                raise ValueError(
                    "serving.serverless cannot be monitored: set monitoring.enabled: false"
                )
        elif self.monitoring.enabled and not self.serving.capture_percent:
            raise ValueError("monitoring needs data capture: capture_percent must be above 0")
        return self

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{12}", value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value


class BoostlineConfig(_Strict):
    project: str = Field("boostline", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    dataset_schema: Path
    stages: dict[str, StageConfig]
    preprocess: PreprocessConfig = PreprocessConfig()
    training: TrainingConfig = TrainingConfig()
    tuning: TuningConfig = TuningConfig()
    gate: GateConfig = GateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    source: Path = Field(DEFAULT_CONFIG, exclude=True)

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: dict[str, StageConfig]) -> dict[str, StageConfig]:
        if not value:
            raise ValueError("at least one stage is needed")
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", name):
                raise ValueError(f"stage name {name!r} must be 2-16 lowercase letters/digits")
        return value

    @model_validator(mode="after")
    def _hosts_have_shards(self) -> BoostlineConfig:
        # ShardedByS3Key hands out whole files: each training host needs a shard.
        counts = {"training.instance_count": self.training.instance_count}
        for name, stage in self.stages.items():
            count = stage.jobs.training.instance_count
            if count is not None:
                counts[f"stages.{name}.jobs.training.instance_count"] = count
        for key, count in counts.items():
            if self.preprocess.train_shards < count:
                raise ValueError(
                    f"preprocess.train_shards ({self.preprocess.train_shards}) is below "
                    f"{key} ({count}): some training hosts would get no data"
                )
        return self

    def for_stage(self, name: str) -> BoostlineConfig:
        """This config with the stage's job sizes (stages.<name>.jobs) in place of the
        top-level ones: what that stage's pipeline runs on."""
        jobs = self.stage(name).jobs
        return self.model_copy(
            update={
                "preprocess": self.preprocess.model_copy(update=jobs.preprocess.settings()),
                "training": self.training.model_copy(update=jobs.training.settings()),
                "evaluation": self.evaluation.model_copy(update=jobs.evaluation.settings()),
            }
        )

    def stage(self, name: str) -> StageConfig:
        if name not in self.stages:
            known = ", ".join(sorted(self.stages))
            raise ConfigError(str(self.source), [("stages", f"no stage {name!r}; known: {known}")])
        return self.stages[name]

    def schema_path(self) -> Path:
        """The dataset schema file; a relative path is relative to the config file."""
        path = self.dataset_schema
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def _check_instance_type(value: str) -> str:
    if not re.fullmatch(r"ml\.[a-z0-9]+\.[a-z0-9]+", value):
        raise ValueError(f"{value!r} is not a SageMaker instance type (like ml.m5.xlarge)")
    return value


def default_config_path(environ: typing.Mapping[str, str] | None = None) -> Path:
    """The config used when none is named: $BOOSTLINE_CONFIG, else the checkout's or
    the embedded default."""
    named = (os.environ if environ is None else environ).get(CONFIG_ENV, "")
    return Path(named).expanduser() if named.strip() else DEFAULT_CONFIG


def write_default_config(directory: str | Path) -> Path:
    """Write an editable copy of the embedded default config and its dataset schema
    into `directory` (the schema at the same relative path the config names); refuses
    to overwrite either. Returns the config's path."""
    directory = Path(directory)
    config = load_config(EMBEDDED_CONFIG)
    copies = {
        EMBEDDED_CONFIG: directory / "boostline.yaml",
        config.schema_path(): directory / config.dataset_schema,
    }
    existing = [str(target) for target in copies.values() if target.exists()]
    if existing:
        raise ConfigError(
            str(directory), [("(file)", f"already exists, not overwritten: {', '.join(existing)}")]
        )
    for source, target in copies.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return copies[EMBEDDED_CONFIG]


def load_config(path: str | Path | None = None) -> BoostlineConfig:
    """Read and check a config file; raise ConfigError naming file, key and reason."""
    path = Path(path) if path is not None else default_config_path()
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, [("(file)", "file not found")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [("(file)", f"not valid YAML: {exc}")]) from None
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> BoostlineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(str(path), [("(root)", "must be a mapping")])
    try:
        config = BoostlineConfig.model_validate({**raw, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(str(path), _problems(exc)) from None
    _check_hyperparameters(config)
    return config


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(root)"
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and error["loc"]:
            known = _keys_beside(error["loc"])
            close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
            reason += f"; did you mean {close[0]!r}?" if close else ""
            if known:
                reason += f" (known here: {', '.join(sorted(known))})"
        problems.append((key, reason))
    return problems


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the model an annotation holds, whether it sits under a dict key)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) is dict:
        model, _ = _model_in(typing.get_args(annotation)[1])
        return model, True
    for arg in typing.get_args(annotation):
        model, keyed = _model_in(arg)
        if model is not None:
            return model, keyed
    return None, False


def _keys_beside(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at loc[:-1] accepts (for a misspelt key's suggestion)."""
    model: type[BaseModel] | None = BoostlineConfig
    parts = list(loc[:-1])
    while parts and model is not None:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        model, keyed = _model_in(field.annotation)
        if keyed and parts:
            parts.pop(0)  # the dict's own key (a stage name, a range name)
    if model is None:
        return []
    return [name for name in model.model_fields if name != "source"]


def _objective_problems(config: BoostlineConfig) -> list[tuple[str, str]]:
    """The tuning objective must be a metric train.py prints, optimised its right way."""
    from training_scripts.train import MAXIMIZED_METRICS, metric_definitions

    metric = config.training.eval_metric()
    names = [d["Name"] for d in metric_definitions(metric)]
    objective = config.tuning.objective_metric
    if objective not in names:
        return [
            (
                "tuning.objective_metric",
                f"{objective!r} is not a metric the training jobs report; with eval_metric "
                f"{metric!r} they report {' and '.join(names)}",
            )
        ]
    direction = "Maximize" if metric in MAXIMIZED_METRICS else "Minimize"
    if config.tuning.objective_type != direction:
        return [
            (
                "tuning.objective_type",
                f"{metric} is better {'higher' if direction == 'Maximize' else 'lower'}: "
                f"the objective type must be {direction}",
            )
        ]
    return []


def _check_hyperparameters(config: BoostlineConfig) -> None:
    """Fixed hyperparameters and tuning ranges must name what train.py accepts."""
    import json

    from training_scripts.train import TrainingError, parse_hyperparameters

    def validate_hyperparameters(values: dict[str, HyperparameterValue]) -> None:
        parse_hyperparameters([], json.dumps(values))

    source = str(config.source)
    problems: list[tuple[str, str]] = []
    try:
        validate_hyperparameters(dict(config.training.hyperparameters))
    except (ValueError, TrainingError) as exc:
        problems.append(("training.hyperparameters", str(exc)))
    else:
        problems += _objective_problems(config)
    probes: dict[str, HyperparameterValue] = {}
    for name, spec in config.tuning.ranges.items():
        probe = spec.values[0] if spec.values else spec.min
        if spec.type == "integer" and probe is not None:
            probe = int(probe)
        try:
            validate_hyperparameters({name: probe})
        except (ValueError, TrainingError) as exc:
            problems.append((f"tuning.ranges.{name}", str(exc)))
        else:
            probes[name] = probe
    if not problems:
        # each is valid alone; a trial gets them together (min_child_rows excludes
        # min_child_weight, for one)
        try:
            validate_hyperparameters({**config.training.hyperparameters, **probes})
        except (ValueError, TrainingError) as exc:
            problems.append(("tuning.ranges", str(exc)))
    if problems:
        raise ConfigError(source, problems)
