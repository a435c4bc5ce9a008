"""Deployer: keep the serving stack on the newest Approved model package.

Events: `SageMaker Model Package State Change` for our model package group.

- Approved: if the version is still Approved and is the newest Approved version
  of the group, update the serving stack to it (deploy.deploy_model_package).
  An Approved event for an older version (e.g. its metadata changed) does not
  take the stack back; use `boostline rollback` for that.
- Rejected: if the version is the live one (the stack's ModelPackageArn), roll
  back to the newest other Approved version. With no Approved version left the
  rejected model stays live by default (ON_REJECT_WITHOUT_FALLBACK=keep) and an
  ERROR log plus the `DeployDecision{decision=rollback-impossible}` metric call
  for a person; "undeploy" serves nothing instead (README has the reasoning).
- `CloudFormation Stack Status Change` of the serving stack, UPDATE_COMPLETE or
  UPDATE_ROLLBACK_COMPLETE (with MONITORING_STACK_NAME set): copy the live model,
  the serving stack's parameters, to the monitoring stack
  (deploy.sync_monitoring_stack). The endpoint is in service by then, and a
  monitoring stack that fails to update rolls back alone.
- Anything else (other groups, other statuses, stale events) is ignored.

Errors that a retry cannot cure (the package does not exist, its decision_threshold
is missing or invalid, a validation error from SageMaker or CloudFormation, a
serving stack stuck in UPDATE_ROLLBACK_FAILED or ROLLBACK_COMPLETE) are
`permanent-error` decisions: one ERROR line with the reason (for a stuck stack,
its state and the recovery), the `DeployDecision{decision=permanent-error}`
metric, and a normal return, so the event is not retried into the dead-letter
queue. Other failures (throttling, a stack busy for longer than the retry budget,
a package still being created) raise: the event is retried, then dead-lettered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import deploy as deploy_module
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from botocore.config import Config
from botocore.exceptions import ClientError
from deploy import (
    NONE,
    SUPERSEDED,
    UPDATING,
    Backoff,
    DeployError,
    DeployResult,
    StackMissing,
    StackStuck,
    deploy_model_package,
    live_model_package_arn,
    newest_approved,
    sync_monitoring_stack,
    undeploy,
)

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "deployer")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.getenv("POWERTOOLS_METRICS_NAMESPACE", "Boostline"), service=SERVICE)
# deploy.py logs through the standard library (the CLI uses it too); give it our JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={deploy_module.__name__})

DETAIL_TYPE = "SageMaker Model Package State Change"
STACK_DETAIL_TYPE = "CloudFormation Stack Status Change"
SETTLED = ("UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
PERMANENT = "permanent-error"
# Error codes of requests that are wrong in themselves: sending them again cannot help.
# SageMaker: ValidationException (e.g. "Model package ... not found"), ResourceNotFound;
# CloudFormation: ValidationError (busy and "No updates" are handled in deploy.py).
PERMANENT_CODES = frozenset({"ValidationException", "ValidationError", "ResourceNotFound"})
KEEP = "keep"
UNDEPLOY = "undeploy"
SAFETY_MARGIN_SECONDS = 20.0
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
)

# Injectable for tests and the local runtime: the backoff's sleep and clock.
sleep: Callable[[float], None] = time.sleep
monotonic: Callable[[], float] = time.monotonic
_clients: dict[str, Any] = {}


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid."""


def client(name: str) -> Any:
    """A boto3 client, created on first use (region and credentials from the environment)."""
    if name not in _clients:
        _clients[name] = boto3.client(name, config=BOTO_CONFIG)
    return _clients[name]


@dataclass(frozen=True)
class Settings:
    model_package_group: str
    stack_name: str
    retry_seconds: float = 600.0
    on_reject_without_fallback: str = KEEP
    monitoring_stack: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [n for n in ("MODEL_PACKAGE_GROUP", "SERVING_STACK_NAME") if not env.get(n)]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        raw_retry = env.get("DEPLOY_RETRY_SECONDS", "600")
        try:
            retry = float(raw_retry)
        except ValueError as error:
            raise ConfigurationError(
                f"DEPLOY_RETRY_SECONDS={raw_retry!r} is not a number"
            ) from error
        policy = env.get("ON_REJECT_WITHOUT_FALLBACK", KEEP).strip().lower() or KEEP
        if policy not in (KEEP, UNDEPLOY):
            raise ConfigurationError(
                f"ON_REJECT_WITHOUT_FALLBACK={policy!r}; expected {KEEP!r} or {UNDEPLOY!r}"
            )
        return cls(
            model_package_group=env["MODEL_PACKAGE_GROUP"],
            stack_name=env["SERVING_STACK_NAME"],
            retry_seconds=max(0.0, retry),
            on_reject_without_fallback=policy,
            monitoring_stack=env.get("MONITORING_STACK_NAME", ""),
        )


@dataclass(frozen=True)
class StateChange:
    event_id: str
    group: str
    arn: str
    version: int
    status: str


@dataclass(frozen=True)
class StackSettled:
    event_id: str
    stack_id: str
    status: str


def parse_stack_event(
    raw: dict[str, Any], serving_stack: str, monitoring_stack: str = ""
) -> StackSettled | str:
    """A completed (or rolled back) serving update, or the monitoring stack's creation;
    otherwise why the event is ignored (the monitoring stack's own updates among them)."""
    detail = raw.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    stack_id = detail.get("stack-id")
    status_details = detail.get("status-details")
    status = status_details.get("status") if isinstance(status_details, dict) else None
    if not isinstance(stack_id, str):
        return "stack event without a stack-id"
    if f":stack/{serving_stack}/" in stack_id:
        wanted: tuple[str, ...] = SETTLED
    elif monitoring_stack and f":stack/{monitoring_stack}/" in stack_id:
        wanted = ("CREATE_COMPLETE",)
    else:
        return f"stack {stack_id[:200]!r} is not the serving or monitoring stack"
    if status not in wanted:
        return f"stack status {str(status)[:40]!r} needs no action"
    return StackSettled(event_id=str(raw.get("id", "")), stack_id=stack_id, status=status)


def on_serving_settled(change: StackSettled, settings: Settings, context: Any) -> dict[str, Any]:
    if not settings.monitoring_stack:
        return {"decision": "ignored", "why": "no monitoring stack (MONITORING_STACK_NAME)"}
    try:
        result = sync_monitoring_stack(
            client("cloudformation"),
            settings.stack_name,
            settings.monitoring_stack,
            backoff=_backoff(settings, context),
        )
    except StackMissing as error:
        # Its creation event comes later and copies the live model then.
        logger.warning("not copying the live model: %s", error)
        return {"decision": "ignored", "why": str(error)}
    return {
        "decision": "monitoring-updated" if result.status == UPDATING else "monitoring-unchanged",
        "why": f"{change.stack_id.split(':stack/')[-1].split('/')[0]} {change.status}: "
        "the monitors follow the live model",
        "deployment": result.as_dict(),
    }


def parse(raw: Any, group: str) -> StateChange | str:
    """The state change of one of our versions, or the reason the event is ignored."""
    if not isinstance(raw, dict):
        return f"not an EventBridge event (a {type(raw).__name__})"
    event = EventBridgeEvent(raw)
    if event.get("source") != "aws.sagemaker" or event.get("detail-type") != DETAIL_TYPE:
        return (
            f"unexpected event: source={event.get('source')!r} "
            f"detail-type={event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    event_group = detail.get("ModelPackageGroupName")
    status = detail.get("ModelApprovalStatus")
    arn = detail.get("ModelPackageArn")
    if event_group != group:
        return f"model package group {event_group!r} is not ours ({group!r})"
    if status not in ("Approved", "Rejected"):
        return f"approval status {status!r} needs no action"
    if not isinstance(arn, str) or not arn:
        return "event without ModelPackageArn"
    version = detail.get("ModelPackageVersion")
    return StateChange(
        event_id=str(event.get("id", "")),
        group=group,
        arn=arn,
        version=int(version) if isinstance(version, int | str) and str(version).isdigit() else 0,
        status=status,
    )


def _backoff(settings: Settings, context: Any) -> Backoff:
    budget = settings.retry_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, max(0.0, remaining() / 1000.0 - SAFETY_MARGIN_SECONDS))
    return Backoff(budget_seconds=budget, sleep=sleep, clock=monotonic)


def _deployed(decision: str, why: str, result: DeployResult) -> dict[str, Any]:
    return {"decision": decision, "why": why, "deployment": result.as_dict()}


def on_approved(change: StateChange, settings: Settings, context: Any) -> dict[str, Any]:
    sagemaker, cfn = client("sagemaker"), client("cloudformation")
    package = sagemaker.describe_model_package(ModelPackageName=change.arn)
    now = package.get("ModelApprovalStatus")
    if now != "Approved":
        return {"decision": "ignored", "why": f"stale event: the version is now {now}"}
    newest = newest_approved(sagemaker, settings.model_package_group)
    if newest is not None and newest.get("ModelPackageArn") != change.arn:
        return {
            "decision": "ignored",
            "why": (
                f"version {newest.get('ModelPackageVersion')} is the newest Approved version; "
                f"version {change.version} is not deployed over it "
                "(use `boostline rollback` to serve an older version)"
            ),
        }

    def still_wanted() -> str | None:
        newest = newest_approved(sagemaker, settings.model_package_group)
        if newest is None or newest.get("ModelPackageArn") != change.arn:
            return f"version {change.version} is no longer the newest Approved version"
        return None

    result = deploy_model_package(
        cfn,
        sagemaker,
        settings.stack_name,
        change.arn,
        backoff=_backoff(settings, context),
        still_wanted=still_wanted,
    )
    decision = {UPDATING: "deployed", SUPERSEDED: "superseded"}.get(result.status, "unchanged")
    return _deployed(decision, f"version {change.version} approved", result)


def on_rejected(change: StateChange, settings: Settings, context: Any) -> dict[str, Any]:
    sagemaker, cfn = client("sagemaker"), client("cloudformation")
    live = live_model_package_arn(cfn, settings.stack_name)
    if live != change.arn:
        return {
            "decision": "ignored",
            "why": f"version {change.version} is not live (live: {live})",
        }
    package = sagemaker.describe_model_package(ModelPackageName=change.arn)
    if package.get("ModelApprovalStatus") == "Approved":
        return {"decision": "ignored", "why": "stale event: the version is Approved again"}
    target = newest_approved(sagemaker, settings.model_package_group, exclude=[change.arn])
    if target is not None:
        result = deploy_model_package(
            cfn,
            sagemaker,
            settings.stack_name,
            str(target["ModelPackageArn"]),
            backoff=_backoff(settings, context),
        )
        why = (
            f"live version {change.version} rejected; rolled back to version "
            f"{target.get('ModelPackageVersion')}"
        )
        return _deployed("rolled-back", why, result)
    if settings.on_reject_without_fallback == UNDEPLOY:
        result = undeploy(cfn, settings.stack_name, backoff=_backoff(settings, context))
        why = f"live version {change.version} rejected and no Approved version left; serving none"
        return _deployed("undeployed", why, result)
    logger.error(
        "live model version %s was rejected and there is no other Approved version to roll "
        "back to: it STAYS LIVE. Approve a version (it deploys itself) or run "
        "`boostline rollback --to none` to stop serving.",
        change.version,
        extra={"model_package_arn": change.arn, "stack_name": settings.stack_name},
    )
    return {
        "decision": "rollback-impossible",
        "why": f"live version {change.version} rejected; no Approved version to roll back to",
        "live_model_package_arn": live if live != NONE else None,
    }


def permanent_failure(error: Exception) -> dict[str, Any] | None:
    """The decision record for an error no retry can cure; None when a retry may help."""
    if isinstance(error, DeployError):
        if not error.permanent:
            return None
        result: dict[str, Any] = {"decision": PERMANENT, "why": str(error)}
        result["error"] = type(error).__name__
        if isinstance(error, StackStuck):
            result.update(stack_status=error.status, recovery=error.recovery)
        return result
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        if code not in PERMANENT_CODES:
            return None
        message = str(details.get("Message", "")) or str(error)
        return {
            "decision": PERMANENT,
            "why": f"{error.operation_name}: {code}: {message}",
            "error": code,
        }
    return None


def _emit(result: dict[str, Any]) -> None:
    decision = str(result["decision"])
    if decision == PERMANENT:
        logger.error(
            f"deploy decision: {PERMANENT}: {result['why']} (not retried; the serving "
            "stack was not changed)",
            extra={"deploy": result},
        )
    else:
        logger.info(f"deploy decision: {decision}", extra={"deploy": result})
    metrics.add_dimension(name="decision", value=decision)
    metrics.add_metric(name="DeployDecision", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def _handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        settings = Settings.from_env()
        change: StateChange | StackSettled | str
        if isinstance(event, dict) and (event.get("source"), event.get("detail-type")) == (
            "aws.cloudformation",
            STACK_DETAIL_TYPE,
        ):
            change = parse_stack_event(event, settings.stack_name, settings.monitoring_stack)
        else:
            change = parse(event, settings.model_package_group)
        if isinstance(change, str):
            result: dict[str, Any] = {"decision": "ignored", "why": change}
        else:
            if isinstance(change, StackSettled):
                logger.append_keys(event_id=change.event_id, stack_status=change.status)
                handle: Callable[..., dict[str, Any]] = on_serving_settled
            else:
                logger.append_keys(
                    event_id=change.event_id,
                    model_package_arn=change.arn,
                    approval_status=change.status,
                )
                handle = on_approved if change.status == "Approved" else on_rejected
            try:
                result = handle(change, settings, context)
            except Exception as error:
                permanent = permanent_failure(error)
                if permanent is None:
                    raise
                result = permanent
    except Exception:
        logger.exception("deployer failed; the event will be retried")
        metrics.add_dimension(name="decision", value="error")
        metrics.add_metric(name="DeployDecision", unit=MetricUnit.Count, value=1)
        raise
    result["event_id"] = event.get("id") if isinstance(event, dict) else None
    _emit(result)
    return result


@dataclass
class LocalContext:
    """A stand-in Lambda context for callers outside Lambda (the local runtime)."""

    function_name: str = SERVICE
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:local:000000000000:function:{SERVICE}"
    aws_request_id: str = "local"
    timeout_seconds: float = 900.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self.started)
        return max(0, int(left * 1000))


def lambda_handler(event: Any, context: Any = None) -> dict[str, Any]:
    return _handler(event, context if context is not None else LocalContext())
