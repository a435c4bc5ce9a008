"""What the rendered serving stack asks of the endpoint, read as SageMaker reads it.

The local endpoint is started from the serving template as CloudFormation renders
it with the stack's current parameters (boostline.local.cfn_render): the Endpoint
names its EndpointConfig, whose variant names the Model, whose container names the
model package and carries the environment — so the decision threshold, the capture
settings and the blue/green policy come from where AWS takes them, not from a
second description of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boostline.local.cfn_render import RenderedStack
from training_scripts.inference import THRESHOLD_ENV


class ServingSpecError(ValueError):
    """The rendered serving stack does not describe one servable endpoint."""


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_name: str
    model_package_arn: str
    environment: dict[str, str]  # the Model container's environment
    variant_name: str
    instance_type: str | None  # None: serverless
    instance_count: int
    capture_percent: int  # 0: no data capture
    capture_destination: str | None  # s3://bucket/prefix; files go under <endpoint>/<variant>/
    capture_csv_types: tuple[str, ...]
    capture_json_types: tuple[str, ...]
    wait_seconds: int  # blue/green: how long the new fleet is watched before it takes over
    termination_wait_seconds: int
    rollback_alarms: tuple[str, ...]

    @property
    def threshold(self) -> float | None:
        value = self.environment.get(THRESHOLD_ENV)
        return float(value) if value is not None else None


def _named(stack: RenderedStack, type_: str, name: str, what: str) -> dict[str, Any]:
    """The one resource of type_ whose physical name is name (a Ref/GetAtt of it)."""
    for logical, resource in stack.of_type(type_).items():
        if stack.physical_names[logical] == name:
            return resource["Properties"]
    raise ServingSpecError(f"{what} names {type_} {name!r}, which the stack does not hold")


def endpoint_spec(stack: RenderedStack) -> EndpointSpec | None:
    """The endpoint the rendered stack deploys; None while it deploys none (no model yet)."""
    endpoints = list(stack.of_type("AWS::SageMaker::Endpoint").values())
    if not endpoints:
        return None
    if len(endpoints) > 1:
        raise ServingSpecError(f"the serving stack holds {len(endpoints)} endpoints, not one")
    endpoint = endpoints[0]["Properties"]
    name = endpoint["EndpointName"]
    config = _named(
        stack, "AWS::SageMaker::EndpointConfig", endpoint["EndpointConfigName"], f"endpoint {name}"
    )
    variants = config["ProductionVariants"]
    if len(variants) != 1:
        raise ServingSpecError(f"endpoint {name} has {len(variants)} variants; one is served")
    variant = variants[0]
    model = _named(
        stack, "AWS::SageMaker::Model", variant["ModelName"], f"variant {variant['VariantName']}"
    )
    containers = model.get("Containers") or [model.get("PrimaryContainer", {})]
    if len(containers) != 1 or "ModelPackageName" not in containers[0]:
        raise ServingSpecError(f"model {variant['ModelName']} is not one model-package container")
    container = containers[0]
    capture = config.get("DataCaptureConfig") or {}
    capturing = bool(capture) and capture.get("EnableCapture", True)
    headers = capture.get("CaptureContentTypeHeader", {})
    deployment = endpoint.get("DeploymentConfig", {})
    blue_green = deployment.get("BlueGreenUpdatePolicy", {})
    routing = blue_green.get("TrafficRoutingConfiguration", {})
    alarms = deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])
    return EndpointSpec(
        endpoint_name=name,
        model_package_arn=container["ModelPackageName"],
        environment={k: str(v) for k, v in container.get("Environment", {}).items()},
        variant_name=variant["VariantName"],
        instance_type=variant.get("InstanceType"),
        instance_count=int(variant.get("InitialInstanceCount", 1)),
        capture_percent=int(capture.get("InitialSamplingPercentage", 0)) if capturing else 0,
        capture_destination=capture.get("DestinationS3Uri") if capturing else None,
        capture_csv_types=tuple(headers.get("CsvContentTypes", ())),
        capture_json_types=tuple(headers.get("JsonContentTypes", ())),
        wait_seconds=int(routing.get("WaitIntervalInSeconds", 0)),
        termination_wait_seconds=int(blue_green.get("TerminationWaitInSeconds", 0)),
        rollback_alarms=tuple(a["AlarmName"] for a in alarms),
    )
