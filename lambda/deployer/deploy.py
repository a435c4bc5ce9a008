"""Put a model package live through the serving stack, or take the stack back.

The serving CloudFormation stack takes the live model package as its
`ModelPackageArn` parameter ("none": no serving resources). Deploying is an
UpdateStack with the previous template, the new package's ARN, its drift
baselines and its decision threshold, and every other parameter kept with
UsePreviousValue — the endpoint is never edited behind the stack's back.

The functions take the boto3 clients as arguments, so the deployer Lambda and
the `boostline rollback` command share them. Only boto3 is needed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.exceptions import ClientError, WaiterError

logger = logging.getLogger(__name__)

PARAM_MODEL_PACKAGE = "ModelPackageArn"
PARAM_STATISTICS = "BaselineStatisticsUri"
PARAM_CONSTRAINTS = "BaselineConstraintsUri"
PARAM_THRESHOLD = "DecisionThreshold"
SERVING_PARAMETERS = (PARAM_MODEL_PACKAGE, PARAM_STATISTICS, PARAM_CONSTRAINTS, PARAM_THRESHOLD)
NONE = "none"
THRESHOLD_KEY = "decision_threshold"
# What the pipeline also puts in the package's inference container (inference.py reads it).
THRESHOLD_ENV = "BOOSTLINE_DECISION_THRESHOLD"
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")

NO_UPDATES = "No updates are to be performed"
NOT_UPDATABLE = re.compile(r"is in (\w+) state and can not be updated")

# Stack states that UpdateStack refuses until a person acts, and what to do.
_REDEPLOY = (
    "delete the stack (`aws cloudformation delete-stack --stack-name {stack}`) and deploy it "
    "again with `cdk deploy`"
)
RECOVERY = {
    "UPDATE_ROLLBACK_FAILED": (
        "continue the rollback with ContinueUpdateRollback (`aws cloudformation "
        "continue-update-rollback --stack-name {stack}`, adding `--resources-to-skip` for "
        "resources that cannot roll back) until the stack is UPDATE_ROLLBACK_COMPLETE"
    ),
    "ROLLBACK_COMPLETE": "its creation failed and it can only be deleted: " + _REDEPLOY,
    "ROLLBACK_FAILED": "its creation failed and so did the rollback: " + _REDEPLOY,
    "CREATE_FAILED": "its creation failed: " + _REDEPLOY,
    "DELETE_FAILED": (
        "a deletion failed: delete it again (`--retain-resources` for what cannot be "
        "deleted) and deploy it again with `cdk deploy`"
    ),
}

UPDATING = "updating"
UNCHANGED = "unchanged"
SUPERSEDED = "superseded"  # while it waited, the model to serve changed


class DeployError(RuntimeError):
    """The deployment cannot be done; the message says why.

    `permanent`: asking again with the same input cannot succeed (a person must act),
    so the deployer reports it instead of having the event retried.
    """

    permanent = True


class StackMissing(DeployError):
    """The stack does not exist (not deployed yet, or deleted)."""


class StackBusy(DeployError):
    """The stack stayed in an *_IN_PROGRESS state for longer than the retry budget."""

    permanent = False


class PackageNotReady(DeployError):
    """The model package is still being created (Pending / InProgress)."""

    permanent = False


class StackStuck(DeployError):
    """The stack is in a state that UpdateStack refuses until a person recovers it."""

    def __init__(self, stack_name: str, status: str):
        self.stack_name = stack_name
        self.status = status
        self.recovery = RECOVERY[status].format(stack=stack_name)
        super().__init__(
            f"serving stack {stack_name!r} is in {status} and cannot be updated; recovery: "
            f"{self.recovery}; then serve the wanted version with "
            "`boostline rollback --stage <stage> --to <version>`"
        )


@dataclass(frozen=True)
class Backoff:
    """How long to keep retrying a stack that is being updated, and how often."""

    budget_seconds: float = 600.0
    first_delay: float = 5.0
    max_delay: float = 30.0
    factor: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)


@dataclass(frozen=True)
class DeployResult:
    stack_name: str
    model_package_arn: str
    previous_model_package_arn: str
    status: str  # UPDATING (an update was started) or UNCHANGED (nothing to change)
    parameters: dict[str, str]
    attempts: int = 1
    stack_status: str = ""  # the final status when waited for

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading the stack and the registry ---------------------------------------------


def _error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", error))


def describe_stack(cfn: Any, stack_name: str) -> dict[str, Any]:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in _error_message(error):
            raise StackMissing(f"stack {stack_name!r} does not exist") from error
        raise
    if not stacks:
        raise StackMissing(f"stack {stack_name!r} does not exist")
    return stacks[0]


def _parameters(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}


def stack_parameters(cfn: Any, stack_name: str) -> dict[str, str]:
    return _parameters(describe_stack(cfn, stack_name))


def live_model_package_arn(cfn: Any, stack_name: str) -> str:
    """The stack's current ModelPackageArn ("none" when nothing is served)."""
    return stack_parameters(cfn, stack_name).get(PARAM_MODEL_PACKAGE, NONE) or NONE


def approved_versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """Approved versions of the group, newest (highest version) first."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    summaries: list[dict[str, Any]] = []
    while True:
        page = sagemaker.list_model_packages(**request)
        summaries.extend(page.get("ModelPackageSummaryList", []))
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return sorted(summaries, key=lambda s: int(s.get("ModelPackageVersion") or 0), reverse=True)


def newest_approved(
    sagemaker: Any, group: str, exclude: Iterable[str] = ()
) -> dict[str, Any] | None:
    """The Approved version with the highest number, leaving out the ARNs in `exclude`."""
    skip = set(exclude)
    for summary in approved_versions(sagemaker, group):
        if summary.get("ModelPackageArn") not in skip:
            return summary
    return None


def find_version(sagemaker: Any, group: str, version: int) -> dict[str, Any]:
    """The summary of version `version` of the group, whatever its status."""
    request: dict[str, Any] = {"ModelPackageGroupName": group, "MaxResults": 100}
    while True:
        page = sagemaker.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            if int(summary.get("ModelPackageVersion") or 0) == version:
                return summary
        token = page.get("NextToken")
        if not token:
            raise DeployError(f"model package group {group!r} has no version {version}")
        request["NextToken"] = token


def _s3_uri(section: dict[str, Any], name: str) -> str:
    value = section.get(name, {})
    uri = value.get("S3Uri") if isinstance(value, dict) else None
    return str(uri) if uri else ""


def decision_threshold(package: dict[str, Any]) -> str:
    """`CustomerMetadataProperties.decision_threshold`, checked: a number in (0, 1).

    Returned as a plain decimal (`1E-3` becomes `0.001`), the form the serving stack's
    `DecisionThreshold` parameter accepts. A missing or invalid value is a DeployError:
    the threshold was chosen for this model on its validation set, and serving it at
    any other (0.5, or the previous model's) would change its decisions unnoticed.
    """
    arn = package.get("ModelPackageArn", "the model package")
    raw = (package.get("CustomerMetadataProperties") or {}).get(THRESHOLD_KEY)
    if raw is None or not str(raw).strip():
        # Versions registered before the metadata carried it hold the same tuned value
        # in their inference container's environment.
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
        raw = (containers[0].get("Environment") or {}).get(THRESHOLD_ENV)
    if raw is None or not str(raw).strip():
        raise DeployError(
            f"{arn} has no {THRESHOLD_KEY} in its CustomerMetadataProperties; it is not "
            "served at a threshold it was not tuned for. Set it "
            f"(`aws sagemaker update-model-package --model-package-arn {arn} "
            f"--customer-metadata-properties {THRESHOLD_KEY}=<value>`) and approve it again"
        )
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation as error:
        raise DeployError(f"{arn}: {THRESHOLD_KEY} {raw!r} is not a number") from error
    if not value.is_finite() or not Decimal(0) < value < Decimal(1):
        raise DeployError(f"{arn}: {THRESHOLD_KEY} {raw!r} is not between 0 and 1")
    return format(value, "f")


def serving_parameters(package: dict[str, Any]) -> dict[str, str]:
    """The serving stack's parameters for a described model package.

    Baselines come from `DriftCheckBaselines.ModelDataQuality` (what the pipeline
    registers for monitoring), else `ModelMetrics.ModelDataQuality`, else "none"
    (monitoring off for this model). The threshold comes from
    `CustomerMetadataProperties.decision_threshold` and is required (see
    `decision_threshold`): a threshold belongs to the model it was tuned on.
    """
    arn = str(package["ModelPackageArn"])
    threshold = decision_threshold(package)
    drift = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {}) or {}
    metrics = package.get("ModelMetrics", {}).get("ModelDataQuality", {}) or {}
    statistics = _s3_uri(drift, "Statistics") or _s3_uri(metrics, "Statistics") or NONE
    constraints = _s3_uri(drift, "Constraints") or _s3_uri(metrics, "Constraints") or NONE
    if NONE in (statistics, constraints):
        logger.warning("model package %s has no data-quality baselines; monitoring is off", arn)
    return {
        PARAM_MODEL_PACKAGE: arn,
        PARAM_STATISTICS: statistics,
        PARAM_CONSTRAINTS: constraints,
        PARAM_THRESHOLD: threshold,
    }


# --- updating the stack ------------------------------------------------------------


def update_parameters(current: Iterable[str], overrides: dict[str, str]) -> list[dict[str, Any]]:
    """UpdateStack parameters: the overrides, and UsePreviousValue for every other one."""
    keys = list(current)
    undeclared = sorted(set(overrides) - set(keys))
    if undeclared:
        raise DeployError(f"the serving stack does not declare parameters {undeclared}")
    return [
        {"ParameterKey": key, "ParameterValue": overrides[key]}
        if key in overrides
        else {"ParameterKey": key, "UsePreviousValue": True}
        for key in keys
    ]


def update_serving_stack(
    cfn: Any,
    stack_name: str,
    overrides: dict[str, str],
    *,
    backoff: Backoff | None = None,
    still_wanted: Callable[[], str | None] | None = None,
) -> tuple[str, int]:
    """UpdateStack with the previous template; returns (UPDATING | UNCHANGED, attempts).

    `still_wanted()` is asked before every retry; a reason it returns ends the
    attempts with SUPERSEDED, so a wait for a busy stack never puts an older model
    over one that was deployed meanwhile.

    "No updates are to be performed" is success. While another update runs
    (`... is in UPDATE_IN_PROGRESS state and can not be updated`) it retries with
    exponential backoff within the budget, then raises StackBusy, so the event is
    retried or lands in the dead-letter queue instead of being lost. A stack that
    only a person can bring back (UPDATE_ROLLBACK_FAILED, ROLLBACK_COMPLETE, ...;
    see RECOVERY) raises StackStuck at once, naming the state and the recovery.
    """
    backoff = backoff or Backoff()
    deadline = backoff.clock() + backoff.budget_seconds
    delay = backoff.first_delay
    attempts = 0
    while True:
        if attempts and still_wanted is not None:
            why = still_wanted()
            if why is not None:
                logger.info("not updating stack %s any more: %s", stack_name, why)
                return SUPERSEDED, attempts
        attempts += 1
        stack = describe_stack(cfn, stack_name)
        status = str(stack.get("StackStatus", ""))
        if status in RECOVERY:
            raise StackStuck(stack_name, status)
        keys = _parameters(stack).keys()
        try:
            cfn.update_stack(
                StackName=stack_name,
                UsePreviousTemplate=True,
                Parameters=update_parameters(keys, overrides),
                Capabilities=list(CAPABILITIES),
            )
            return UPDATING, attempts
        except ClientError as error:
            message = _error_message(error)
            if NO_UPDATES in message:
                return UNCHANGED, attempts
            refused = NOT_UPDATABLE.search(message)
            state = refused.group(1) if refused else ""
            if state in RECOVERY:  # it changed state since DescribeStacks
                raise StackStuck(stack_name, state) from error
            if not state.endswith("_IN_PROGRESS"):
                raise
            left = deadline - backoff.clock()
            if left <= 0:
                raise StackBusy(
                    f"stack {stack_name!r} stayed in {state} for "
                    f"{backoff.budget_seconds:.0f} s ({attempts} attempts)"
                ) from error
            pause = min(delay, left)
            logger.info(
                "stack %s is in %s; retrying in %.1f s (attempt %d)",
                stack_name,
                state,
                pause,
                attempts,
            )
            backoff.sleep(pause)
            delay = min(delay * backoff.factor, backoff.max_delay)


def _wait(cfn: Any, stack_name: str) -> str:
    try:
        cfn.get_waiter("stack_update_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 15, "MaxAttempts": 240}
        )
    except WaiterError as error:
        status = str(describe_stack(cfn, stack_name).get("StackStatus", "unknown"))
        if status in RECOVERY:
            raise StackStuck(stack_name, status) from error
        raise DeployError(f"stack {stack_name!r} update ended in {status}") from error
    return str(describe_stack(cfn, stack_name).get("StackStatus", ""))


def _apply(
    cfn: Any,
    stack_name: str,
    overrides: dict[str, str],
    *,
    backoff: Backoff | None,
    wait: bool,
    still_wanted: Callable[[], str | None] | None = None,
) -> DeployResult:
    previous = live_model_package_arn(cfn, stack_name)
    status, attempts = update_serving_stack(
        cfn, stack_name, overrides, backoff=backoff, still_wanted=still_wanted
    )
    final = _wait(cfn, stack_name) if wait and status == UPDATING else ""
    return DeployResult(
        stack_name=stack_name,
        model_package_arn=overrides[PARAM_MODEL_PACKAGE],
        previous_model_package_arn=previous,
        status=status,
        parameters=dict(overrides),
        attempts=attempts,
        stack_status=final,
    )


def sync_monitoring_stack(
    cfn: Any,
    serving_stack: str,
    monitoring_stack: str,
    *,
    backoff: Backoff | None = None,
) -> DeployResult:
    """Copy the live model (the serving stack's four parameters) to the monitoring stack.

    Called once a serving update is complete or rolled back, so the monitors always
    check the model in service; a failure here leaves the endpoint as it is.
    """
    live = stack_parameters(cfn, serving_stack)
    overrides = {name: live.get(name, NONE) for name in SERVING_PARAMETERS}
    previous = live_model_package_arn(cfn, monitoring_stack)
    status, attempts = update_serving_stack(cfn, monitoring_stack, overrides, backoff=backoff)
    return DeployResult(
        stack_name=monitoring_stack,
        model_package_arn=overrides[PARAM_MODEL_PACKAGE],
        previous_model_package_arn=previous,
        status=status,
        parameters=overrides,
        attempts=attempts,
    )


def deploy_model_package(
    cfn: Any,
    sagemaker: Any,
    stack_name: str,
    model_package_arn: str,
    *,
    backoff: Backoff | None = None,
    wait: bool = False,
    still_wanted: Callable[[], str | None] | None = None,
) -> DeployResult:
    """Make `model_package_arn` (an Approved, Completed version) the live model.

    Returns once CloudFormation has accepted the update (or found nothing to
    change); `wait=True` (for the CLI) also waits for UPDATE_COMPLETE.
    """
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    approval = package.get("ModelApprovalStatus")
    if approval != "Approved":
        raise DeployError(f"{model_package_arn} is {approval}; only Approved versions are served")
    status = package.get("ModelPackageStatus", "Completed")
    if status in ("Pending", "InProgress"):
        raise PackageNotReady(f"{model_package_arn} is still {status}")
    if status != "Completed":
        raise DeployError(f"{model_package_arn} is {status}; only Completed versions are served")
    overrides = serving_parameters(package)
    return _apply(cfn, stack_name, overrides, backoff=backoff, wait=wait, still_wanted=still_wanted)


def undeploy(
    cfn: Any, stack_name: str, *, backoff: Backoff | None = None, wait: bool = False
) -> DeployResult:
    """Serve nothing: ModelPackageArn "none" removes the serving resources."""
    overrides = {PARAM_MODEL_PACKAGE: NONE, PARAM_STATISTICS: NONE, PARAM_CONSTRAINTS: NONE}
    return _apply(cfn, stack_name, overrides, backoff=backoff, wait=wait)


def rollback_to(
    cfn: Any,
    sagemaker: Any,
    stack_name: str,
    group: str,
    version: int | str,
    *,
    backoff: Backoff | None = None,
    wait: bool = False,
) -> DeployResult:
    """Serve version `version` of `group` (it must be Approved), or "none" to serve nothing.

    The deployer redeploys the newest Approved version when any version's state
    changes, so to keep an older version live, reject the newer ones too.
    """
    if isinstance(version, str) and version.strip().lower() == NONE:
        return undeploy(cfn, stack_name, backoff=backoff, wait=wait)
    try:
        number = int(version)
    except ValueError as error:
        raise DeployError(f"version must be a number or 'none', not {version!r}") from error
    summary = find_version(sagemaker, group, number)
    if summary.get("ModelApprovalStatus") != "Approved":
        raise DeployError(
            f"version {number} of {group!r} is {summary.get('ModelApprovalStatus')}; "
            "approve it before rolling back to it"
        )
    return deploy_model_package(
        cfn, sagemaker, stack_name, str(summary["ModelPackageArn"]), backoff=backoff, wait=wait
    )
