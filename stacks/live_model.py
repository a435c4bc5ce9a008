"""The live model as stack parameters: one definition for the serving and monitoring stacks.

The deployer sets these on the serving stack (UpdateStack with the previous
template) and, once that update is complete, copies the same values to the
monitoring stack, so the monitors always check the model that is in service.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnCondition, CfnParameter, Fn, Stack

NONE = "none"


@dataclass(frozen=True)
class LiveModel:
    model_package: CfnParameter
    statistics: CfnParameter
    constraints: CfnParameter
    threshold: CfnParameter
    has_model: CfnCondition


def live_model_parameters(stack: Stack) -> LiveModel:
    """The four parameters (logical ids as the deployer names them) and `HasModel`."""
    model_package = CfnParameter(
        stack,
        "ModelPackageArn",
        type="String",
        default=NONE,
        description="The live model package version (set by the deployer); none: no endpoint",
    )
    statistics = CfnParameter(
        stack,
        "BaselineStatisticsUri",
        type="String",
        default=NONE,
        description="Data-quality baseline statistics.json of the live model; none: no monitor",
    )
    constraints = CfnParameter(
        stack,
        "BaselineConstraintsUri",
        type="String",
        default=NONE,
        description="Data-quality baseline constraints.json of the live model",
    )
    threshold = CfnParameter(
        stack,
        "DecisionThreshold",
        type="String",
        default="0.5",
        allowed_pattern=r"^(0(\.\d+)?|1(\.0+)?)$",
        description="Probability at or above which the model answers 'default'",
    )
    has_model = CfnCondition(
        stack, "HasModel", expression=Fn.condition_not(Fn.condition_equals(model_package, NONE))
    )
    return LiveModel(model_package, statistics, constraints, threshold, has_model)


def has_baseline(stack: Stack, live: LiveModel) -> CfnCondition:
    """A live model with data-quality baselines: what every monitor needs."""
    return CfnCondition(
        stack,
        "HasBaseline",
        expression=Fn.condition_and(
            live.has_model,
            Fn.condition_not(Fn.condition_equals(live.statistics, NONE)),
            Fn.condition_not(Fn.condition_equals(live.constraints, NONE)),
        ),
    )
