"""The monitors' alarms, failure rules and dashboard: the same for both engines.

Each engine says where its signals are (`MonitorSignals`); the alarms keep one set
of names whichever engine runs:

- `{prefix}-monitoring-data-quality-violations`: a data-quality run found violations;
- `{prefix}-drift-model-quality-auc`: the live AUC from ground truth fell below the
  gate's minimum (drift-named: it also starts a retrain);
- `{prefix}-monitoring-failed`: a monitoring run failed or was stopped (its rule
  also notifies the alerts topic with the run and its status);
- `{prefix}-monitoring-data-quality-stale` / `-model-quality-stale`: a monitor that
  has not reported for two schedule periods.

Retraining on violations is started by the runs' own events (the retrain
trigger's monitoring rules); only the AUC alarm carries the drift prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import CfnCondition, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from constructs import Construct

from . import nag
from .iam import arn
from .monitoring import l1
from .naming import Names


@dataclass
class MonitorSignals:
    """Where one engine's monitors report."""

    data_violations: cloudwatch.IMetric
    data_reported: cloudwatch.IMetric | None  # a sample every run
    auc: cloudwatch.IMetric | None
    model_reported: cloudwatch.IMetric | None
    feature_drift: list[cloudwatch.IMetric]
    failure_pattern: dict[str, Any]
    failure_paths: dict[str, str]
    failure_message: str
    # Engine-specific rules that feed data_violations (alerts too); made by MonitorAlarms.
    violation_rules: dict[str, dict[str, Any]] = field(default_factory=dict)


class MonitorAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        signals: MonitorSignals,
        min_auc: float,
        condition: CfnCondition,
        alerts_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = names
        self.min_auc = min_auc
        self.condition = condition
        self.alerts_topic = alerts_topic
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.rules: dict[str, events.CfnRule] = {}
        prefix = names.prefix
        for rule_name, (pattern, paths, message) in signals.violation_rules.items():
            self._rule(
                "ViolationsRule",
                rule_name,
                pattern,
                paths,
                message,
                "A monitoring run found violations; notifies the alerts topic",
            )

        self._alarm(
            "DataQualityViolations",
            f"{prefix}-monitoring-data-quality-violations",
            signals.data_violations,
            1,
            "A data-quality run found violations in the captured traffic",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        if signals.auc is not None:
            self._alarm(
                "ModelQualityAuc",
                f"{prefix}-drift-model-quality-auc",
                signals.auc,
                min_auc,
                "Live AUC from ground truth is below the quality gate; starts a retrain",
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            )
        failed = self._rule(
            "MonitoringFailedRule",
            f"{prefix}-monitoring-failed",
            signals.failure_pattern,
            signals.failure_paths,
            signals.failure_message,
            "A monitoring run of the live endpoint failed or stopped, so no drift check ran",
        )
        self._alarm(
            "MonitoringFailed",
            f"{prefix}-monitoring-failed",
            failed,
            1,
            "A monitoring run of the live endpoint failed or stopped, so no drift check ran",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        for check, metric in (
            ("data-quality", signals.data_reported),
            ("model-quality", signals.model_reported),
        ):
            if metric is None:
                continue
            self._alarm(
                f"{check.title().replace('-', '')}Stale",
                f"{prefix}-monitoring-{check}-stale",
                metric,
                1,
                f"No {check} run has reported in two schedule periods",
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=2,
                missing=cloudwatch.TreatMissingData.BREACHING,
            )
        self._dashboard(signals, failed)

    # ------------------------------------------------------------ pieces

    def _alarm(
        self,
        construct_id: str,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        *,
        comparison: cloudwatch.ComparisonOperator,
        evaluation_periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        made = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            treat_missing_data=missing,
        )
        nag.cfn(made).cfn_options.condition = self.condition
        made.add_alarm_action(cloudwatch_actions.SnsAction(self.alerts_topic))
        self.alarms[name] = made
        return made

    def _rule(
        self,
        construct_id: str,
        rule_name: str,
        pattern: dict[str, Any],
        paths: dict[str, str],
        message: str,
        description: str,
    ) -> cloudwatch.Metric:
        """A rule that sends matching events to the alerts topic; returns its metric.

        The rule is L1: the alerts topic is the automation stack's, by name, and an L2
        rule with an imported target in an unresolved environment fails synth.
        """
        rule = l1(
            events.CfnRule,
            self,
            construct_id,
            name=rule_name,
            description=description,
            event_pattern=pattern,
            state="ENABLED",
            targets=[
                {
                    "id": "Alerts",
                    "arn": self.alerts_topic.topic_arn,
                    "input_transformer": {
                        "input_paths_map": paths,
                        "input_template": json.dumps(message),
                    },
                }
            ],
        )
        rule.cfn_options.condition = self.condition
        self.rules[rule_name] = rule
        return rule_metric(rule_name)

    def _dashboard(self, signals: MonitorSignals, failed: cloudwatch.IMetric) -> None:
        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Drift per feature (distance to the baseline)",
                left=signals.feature_drift,
                width=24,
                height=8,
            ),
            cloudwatch.GraphWidget(
                title="Data-quality violations per run",
                left=[signals.data_violations],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Monitoring runs failed or stopped",
                left=[failed],
                width=8,
            ),
        ]
        if signals.auc is not None:
            widgets.append(
                cloudwatch.GraphWidget(
                    title="Live model AUC per window (from ground truth)",
                    left=[signals.auc],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=self.min_auc, label="gate minimum")
                    ],
                    width=8,
                )
            )
        widgets.append(
            cloudwatch.AlarmStatusWidget(
                title="Monitoring alarms", alarms=list(self.alarms.values()), width=24
            )
        )
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self.names.prefix}-monitoring"
        )
        dashboard.add_widgets(*widgets)
        nag.cfn(dashboard).cfn_options.condition = self.condition


def rule_metric(rule_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Events",
        metric_name="TriggeredRules",
        dimensions_map={"RuleName": rule_name},
        statistic="Sum",
        period=Duration.minutes(5),
    )


def alerts_topic_arn(names: Names) -> str:
    """The automation stack's alerts topic, by name (no cross-stack export needed)."""
    return arn("sns", f"{names.prefix}-alerts")
