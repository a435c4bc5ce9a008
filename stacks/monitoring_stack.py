"""Monitoring: our own monitors of the live endpoint (or Model Monitor), alarms, dashboard.

A stack of its own, so a monitoring failure can never roll the endpoint back. It
takes the live model as the same four parameters as the serving stack; the
deployer copies them here once a serving update is complete (the endpoint is in
service). With `none` (no live model, or one without baselines) it holds nothing
but its parameters.

`monitoring.engine` picks what runs the checks:

- `own` (default, works in every account): stacks/own_monitor.py;
- `model-monitor` (accounts that already use SageMaker Model Monitor):
  stacks/managed_monitor.py.

Both feed the same alarms and dashboard (stacks/monitor_alarms.py) and end in
events the retrain trigger listens to.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack, Stage
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import Construct

from boostline.config import BoostlineConfig
from training_scripts.dataset_schema import load_schema

from .live_model import has_baseline, live_model_parameters
from .managed_monitor import MODEL_MONITOR_DATA_NAMESPACE, MODEL_MONITOR_NAMESPACE, ManagedMonitors
from .monitor_alarms import MonitorAlarms, MonitorSignals, alerts_topic_arn, rule_metric
from .monitoring import monitor_pipeline_failed_pattern, monitoring_failed_pattern
from .naming import Names
from .own_monitor import OWN_MONITOR_NAMESPACE, OwnMonitor
from .storage_stack import StorageRefs


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        storage: StorageRefs,
        archive_dir: Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        archive_dir = archive_dir or Path(Stage.of(self).outdir) / "boostline-sourcedir"
        monitoring = config.stage(stage).monitoring
        self.live = live_model_parameters(self)
        self.condition = has_baseline(self, self.live)
        nag_bucket = {
            p: names.bucket(p, "<AWS::AccountId>", "<AWS::Region>")
            for p in ("capture", "monitoring", "artifacts")
        }
        features = load_schema(config.schema_path()).feature_names
        common = dict(
            config=config,
            stage=stage,
            names=names,
            storage=storage,
            live=self.live,
            condition=self.condition,
            nag_bucket=nag_bucket,
        )
        self.own: OwnMonitor | None = None
        self.managed: ManagedMonitors | None = None
        if monitoring.engine == "own":
            self.own = OwnMonitor(self, "OwnMonitor", archive_dir=archive_dir, **common)
            signals = own_signals(names, self.own, features, monitoring.model_quality)
        else:
            self.managed = ManagedMonitors(self, "ModelMonitor", **common)
            signals = managed_signals(
                names, features, monitoring.model_quality, monitoring.schedule
            )
        self.alarms = MonitorAlarms(
            self,
            "Alarms",
            names=names,
            signals=signals,
            min_auc=config.gate.min_auc,
            condition=self.condition,
            alerts_topic=sns.Topic.from_topic_arn(self, "Alerts", alerts_topic_arn(names)),
        )


def _metric(namespace: str, name: str, dims: dict[str, str], statistic: str, hours: int):
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=Duration.hours(hours),
    )


def own_signals(
    names: Names, own: OwnMonitor, features: list[str], model_quality: bool
) -> MonitorSignals:
    """Our jobs' metrics (training_scripts/monitor_publish.py) and the pipeline's failures."""
    dims = {"Endpoint": names.endpoint}
    hours = own.hours

    def metric(name: str, statistic: str, **extra: str) -> cloudwatch.Metric:
        return _metric(OWN_MONITOR_NAMESPACE, name, {**dims, **extra}, statistic, hours)

    return MonitorSignals(
        data_violations=metric("DataQualityViolations", "Maximum"),
        data_reported=metric("DataQualityRows", "SampleCount"),
        auc=metric("auc", "Minimum") if model_quality else None,
        model_reported=metric("ModelQualityRows", "SampleCount") if model_quality else None,
        feature_drift=[
            metric("FeatureDrift", "Maximum", Feature=f).with_(label=f) for f in features
        ],
        failure_pattern=monitor_pipeline_failed_pattern(own.pipeline_name),
        failure_paths={
            "execution": "$.detail.pipelineExecutionArn",
            "status": "$.detail.currentPipelineExecutionStatus",
        },
        failure_message=f"{names.prefix}: monitoring run <execution> ended <status>",
    )


def managed_signals(
    names: Names, features: list[str], model_quality: bool, schedule: str
) -> MonitorSignals:
    """Model Monitor's metrics, and its executions' events."""
    from .automation_stack import event_patterns
    from .monitoring import schedule_period_hours

    hours = schedule_period_hours(schedule)
    data_schedule = f"{names.prefix}-data-quality"
    data_dims = {"Endpoint": names.endpoint, "MonitoringSchedule": data_schedule}
    quality_dims = {
        "Endpoint": names.endpoint,
        "MonitoringSchedule": f"{names.prefix}-model-quality",
    }
    violations_rule = f"{names.prefix}-monitoring-data-quality-violations"
    return MonitorSignals(
        # The analyzer publishes no violation count: its executions' events carry it.
        data_violations=rule_metric(violations_rule),
        # Per-feature metrics appear only when the baseline asks for them: no stale alarm.
        data_reported=None,
        auc=_metric(MODEL_MONITOR_NAMESPACE, "auc", quality_dims, "Minimum", hours)
        if model_quality
        else None,
        model_reported=_metric(MODEL_MONITOR_NAMESPACE, "auc", quality_dims, "SampleCount", hours)
        if model_quality
        else None,
        feature_drift=[
            _metric(
                MODEL_MONITOR_DATA_NAMESPACE,
                f"feature_baseline_drift_{f}",
                data_dims,
                "Maximum",
                hours,
            ).with_(label=f)
            for f in features
        ],
        failure_pattern=monitoring_failed_pattern(f"{names.prefix}-"),
        failure_paths={
            "job": "$.detail.ProcessingJobName",
            "status": "$.detail.ProcessingJobStatus",
        },
        failure_message=f"{names.prefix}: monitoring execution <job> ended <status>",
        violation_rules={
            violations_rule: (
                event_patterns().monitoring_violations_pattern(data_schedule),
                {"job": "$.detail.ProcessingJobName"},
                f"{names.prefix}: data-quality execution <job> found violations",
            )
        },
    )
