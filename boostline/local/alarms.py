"""CloudWatch alarms of a rendered stack, evaluated on the datapoints a local run produced.

The alarms are the synthesized ones (rendered by cfn_render), so a local run checks
exactly what the deployed alarm reads: namespace, metric name, the full dimension
set, statistic, threshold and comparison. Datapoints come from what the jobs sent to
PutMetricData (local_aws.LocalAwsEndpoint records it) and, for `AWS/Events`
`TriggeredRules`, from the rules the run's events matched. One run stands for every
period the alarm evaluates: an alarm with no datapoint follows its TreatMissingData
(breaching: ALARM, as a stale-monitor alarm after that many quiet periods;
notBreaching: OK; otherwise INSUFFICIENT_DATA).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from boostline.local.cfn_render import RenderedStack

ALARM, OK, NO_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    value: float


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    value: float | None
    threshold: float
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "metric": self.metric,
        }


def datums(put_metric_data: Iterable[Mapping[str, Any]]) -> list[Datum]:
    """The datapoints of PutMetricData requests."""
    found = []
    for request in put_metric_data:
        for item in request.get("MetricData", []):
            dims = frozenset((d["Name"], str(d["Value"])) for d in item.get("Dimensions", []))
            found.append(
                Datum(request["Namespace"], item["MetricName"], dims, float(item["Value"]))
            )
    return found


def rule_datums(triggered: Mapping[str, int]) -> list[Datum]:
    """AWS/Events TriggeredRules for each rule the run's events matched."""
    return [
        Datum("AWS/Events", "TriggeredRules", frozenset({("RuleName", name)}), float(count))
        for name, count in triggered.items()
        if count
    ]


def _statistic(name: str, values: list[float]) -> float:
    if name == "SampleCount":
        return float(len(values))
    if name == "Sum":
        return sum(values)
    if name == "Average":
        return sum(values) / len(values)
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    raise ValueError(f"statistic {name!r} is not evaluated locally")


def evaluate(stack: RenderedStack, data: Iterable[Datum]) -> dict[str, AlarmState]:
    """Alarm name -> its state after this run, for every single-metric alarm of the stack."""
    data = list(data)
    states = {}
    for resource in stack.of_type("AWS::CloudWatch::Alarm").values():
        props = resource["Properties"]
        if "MetricName" not in props:  # metric math: not used by these stacks
            continue
        dims = frozenset((d["Name"], str(d["Value"])) for d in props.get("Dimensions", []))
        values = [
            d.value
            for d in data
            if (d.namespace, d.name, d.dimensions)
            == (props["Namespace"], props["MetricName"], dims)
        ]
        threshold = float(props["Threshold"])
        metric = f"{props['Namespace']} {props['MetricName']} {dict(sorted(dims))}"
        name = props["AlarmName"]
        if not values:
            missing = props.get("TreatMissingData", "missing")
            state = {"breaching": ALARM, "notBreaching": OK}.get(missing, NO_DATA)
            states[name] = AlarmState(name, state, None, threshold, metric)
            continue
        value = _statistic(props["Statistic"], values)
        crossed = _COMPARE[props["ComparisonOperator"]](value, threshold)
        states[props["AlarmName"]] = AlarmState(
            props["AlarmName"], ALARM if crossed else OK, value, threshold, metric
        )
    return states
