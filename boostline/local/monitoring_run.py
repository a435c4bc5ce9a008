"""One scheduled monitoring run on this machine: the monitoring stack's own pipeline, executed.

The monitoring stack is rendered with the live model's parameters (as the deployer
left them); its schedule rule's target gives the pipeline parameters, its pipeline
resource the definition, and boostline.local.live_pipeline runs it over the
local buckets (the endpoint's capture and the ground truth). What the jobs publish
is recorded by the local AWS endpoint; the stack's own alarms are evaluated on it
(boostline.local.alarms) and the events the jobs put are matched against the
rendered rules (boostline.local.event_bus), so the caller can deliver them to the
retrain trigger as EventBridge would. The window is passed as the pipeline's
WindowStart/WindowEnd parameters: "advancing the schedule by hand".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from boostline.config import BoostlineConfig
from boostline.local.access_checks import StageAccess
from boostline.local.alarms import AlarmState, datums, evaluate, rule_datums
from boostline.local.assembly import Assembly, definition_body
from boostline.local.cfn_render import RenderedStack
from boostline.local.emulator import ACCOUNT
from boostline.local.event_bus import envelope, route
from boostline.local.iam.access import Access, AccessDenied
from boostline.local.live_pipeline import execute_live
from boostline.local.pipeline import new_execution_id
from boostline.local.workdir import Workdir
from boostline.progress import Progress


def live_parameters(package: Any, config: BoostlineConfig, stage: str) -> dict[str, str]:
    """What the deployer gives the monitoring stack for a local registry version.

    The deployer's own function on the package's description, with the ARN the stage's
    model package group gives the version (the local registry names it otherwise).
    """
    from boostline.local.handlers import LAMBDA_DIR, load_module
    from boostline.naming import names_for

    deploy = load_module(LAMBDA_DIR / "deployer" / "deploy.py")
    names = names_for(config, stage)
    arn = (
        f"arn:aws:sagemaker:{names.region}:{ACCOUNT}:model-package/"
        f"{names.model_package_group}/{package.version}"
    )
    return {**deploy.serving_parameters(package.data), "ModelPackageArn": arn}


class MonitoringUnavailable(RuntimeError):
    """The monitoring stack holds no monitor to run (no live model with baselines, ...)."""


@dataclass
class MonitoringRun:
    execution_id: str
    window_start: str
    window_end: str
    status: str = "Executing"
    failure: str = ""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # check -> event detail
    reports: dict[str, Path] = field(default_factory=dict)  # check -> local report folder
    events: list[dict[str, Any]] = field(default_factory=list)  # as EventBridge delivers them
    routes: list[tuple[dict[str, Any], str, list[str]]] = field(default_factory=list)
    alarms: dict[str, AlarmState] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "window": {"start": self.window_start, "end": self.window_end},
            "status": self.status,
            "failure": self.failure,
            "results": self.results,
            "reports": {k: str(v) for k, v in self.reports.items()},
            "alarms": {k: v.as_dict() for k, v in sorted(self.alarms.items())},
            "events_routed": [
                {"rule": rule, "targets": targets, "status": event["detail"].get("status")}
                for event, rule, targets in self.routes
            ],
        }


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_parameters(stack: RenderedStack) -> tuple[str, dict[str, str]]:
    """(pipeline name, parameters) of the monitoring schedule rule's pipeline target."""
    for resource in stack.of_type("AWS::Events::Rule").values():
        props = resource["Properties"]
        if "ScheduleExpression" not in props:
            continue
        for target in props.get("Targets", []):
            given = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList")
            if given is not None:
                name = str(target["Arn"]).rsplit("/", 1)[-1]
                return name, {p["Name"]: str(p["Value"]) for p in given}
    raise MonitoringUnavailable("the monitoring stack has no schedule that starts a pipeline")


def _pipeline_status_event(
    name: str, execution_id: str, status: str, region: str
) -> dict[str, Any]:
    """What SageMaker emits when the monitoring pipeline's execution ends."""
    arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:pipeline/{name}"
    return {
        "version": "0",
        "id": execution_id,
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": _iso(datetime.now(timezone.utc)),
        "region": region,
        "resources": [arn, f"{arn}/execution/{execution_id}"],
        "detail": {
            "pipelineArn": arn,
            "pipelineExecutionArn": f"{arn}/execution/{execution_id}",
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionStartTime": _iso(datetime.now(timezone.utc)),
            "executionEndTime": _iso(datetime.now(timezone.utc)),
        },
    }


def _check_job_calls(
    access: StageAccess, definition: dict[str, Any], requests: list[tuple[str, str, dict]]
) -> str:
    """AccessDenied's message for the first call the jobs' role may not make, else ''."""
    roles = {
        str(step["Arguments"]["RoleArn"]).rsplit("/", 1)[-1] for step in definition.get("Steps", [])
    }
    if len(roles) != 1:  # the checks share one role; a second would need per-job records
        return f"the monitoring steps run as {len(roles)} roles: {sorted(roles)}"
    (role,) = roles
    accesses = [
        Access(action, resource.replace("{account}", ACCOUNT), context, f"boto3 call ({action})")
        for action, resource, context in requests
    ]
    try:
        access.checker.check(role, accesses, session="monitor-job")
    except AccessDenied as exc:
        return str(exc)
    return ""


def run_monitoring(
    workdir: Workdir,
    config: BoostlineConfig,
    stage: str,
    *,
    assembly: Assembly,
    live: dict[str, str],
    window_start: datetime,
    window_end: datetime,
    access: StageAccess | None = None,
    progress: Progress | None = None,
) -> MonitoringRun:
    """Run the monitoring stack's pipeline for one window; see the module docstring."""
    progress = progress or Progress()
    region = config.stage(stage).region
    stacks = assembly.monitoring_render(region, live, ACCOUNT)
    monitoring = stacks[assembly.monitoring_holder()]
    pipelines = list(monitoring.of_type("AWS::SageMaker::Pipeline").values())
    if not pipelines:
        why = (
            "its engine is model-monitor, which runs in SageMaker only"
            if config.stage(stage).monitoring.engine != "own"
            else "the live model has no data-quality baselines (or no model is live)"
        )
        raise MonitoringUnavailable(f"the monitoring stack holds no pipeline to run: {why}")
    (pipeline,) = pipelines
    definition = definition_body(pipeline)
    name, parameters = schedule_parameters(monitoring)
    parameters.update(WindowStart=_iso(window_start), WindowEnd=_iso(window_end))
    run = MonitoringRun(new_execution_id(), parameters["WindowStart"], parameters["WindowEnd"])
    progress.say(f"monitoring execution {run.execution_id}: {run.window_start} to {run.window_end}")
    executed = execute_live(
        workdir,
        config,
        stage,
        assembly=assembly,
        definition=definition,
        pipeline_name=name,
        execution_id=run.execution_id,
        parameters=parameters,
        access=access,
        progress=progress,
    )
    run.status, run.failure = executed.status, executed.failure
    endpoint = executed.endpoint
    for step, props in executed.executor.properties.items():
        for output in props.get("ProcessingOutputConfig", {}).get("Outputs", {}).values():
            run.reports[step] = executed.s3.writable_path(output["S3Output"]["S3Uri"])
    if access is not None and run.status == "Succeeded":
        # The jobs' own AWS calls, against their role's synthesized policy.
        denied = _check_job_calls(access, definition, endpoint.requests)
        if denied:
            run.status, run.failure = "Failed", denied
    # A job refused an AWS call: on AWS it would have failed before its event went out.
    put = endpoint.events if not run.failure.startswith("User: ") else []
    run.events = [envelope(e, account=ACCOUNT, region=region) for e in put]
    for event in run.events:
        run.results[str(event["detail"].get("monitor"))] = event["detail"]
    triggered: dict[str, int] = {}
    ended = _pipeline_status_event(name, run.execution_id, run.status, region)
    for event in [*run.events, ended]:
        for rule, targets in route(stacks.values(), event):
            triggered[rule] = triggered.get(rule, 0) + 1
            run.routes.append((event, rule, targets))
    run.alarms = evaluate(monitoring, datums(endpoint.metrics) + rule_datums(triggered))
    record = workdir.root / "monitoring" / f"{run.execution_id}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(run.as_dict(), indent=2) + "\n")
    return run
