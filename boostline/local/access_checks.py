"""The local runtime's accesses, checked against the synthesized policy of the role they run as.

`StageAccess` renders the stacks of the assembly the run executes (the same `cdk.out`
whose pipeline definition runs), starts one IAM policy evaluator (one Node process,
@cloud-copilot/iam-simulate) and checks, through one `AccessChecker`:

- each job the pipeline executor runs: the accesses SageMaker makes with the request's
  role (boostline.local.iam.rules), from the request as the executor resolved it;
- each boto3 call a Lambda handler makes, against its function's role
  (boostline.local.iam.boto_calls);
- the endpoint the rendered serving stack deploys: its model artifact, code archive and
  capture writes, with the Model's ExecutionRoleArn.

A denial raises `AccessDenied`, worded as AWS's; `counts()` says per role how many
accesses were checked and allowed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from boostline.local.assembly import Assembly, AssemblyError
from boostline.local.cfn_render import CfnRenderError, RenderedStack
from boostline.local.iam import (
    AccessChecker,
    ArnFormats,
    Call,
    PolicyEvaluator,
    Stage,
    accesses_for_call,
    accesses_for_request,
    request_role,
)
from boostline.local.iam.rules import ObjectLister
from boostline.local.iam.stage import bucket_keys, render_assembly

# The session name SageMaker gives the role it assumes for a job or an endpoint.
SAGEMAKER_SESSION = "SageMaker"


@dataclasses.dataclass(frozen=True)
class FunctionBinding:
    name: str  # the deployed FunctionName (Lambda names the role session after it)
    role: str
    environment: dict[str, str]  # as the template sets it


class StageAccess:
    """The stage's roles with their synthesized policies, and one evaluator to check them.

    Pass `evaluator` to share one Node process (a demo's several runs); otherwise one is
    started here and `close()` ends it.
    """

    def __init__(
        self,
        assembly: Assembly,
        *,
        account: str,
        region: str,
        evaluator: PolicyEvaluator | None = None,
        partition: str = "aws",
    ) -> None:
        try:
            self.stacks: dict[str, RenderedStack] = render_assembly(
                assembly.dir, account=account, region=region
            )
        except CfnRenderError as exc:
            raise AssemblyError(f"cannot render the stacks of {assembly.dir}: {exc}") from exc
        self.assembly = assembly
        self.account = account
        self.region = region
        self.partition = partition
        self._owns_evaluator = evaluator is None
        self.evaluator = evaluator or PolicyEvaluator()
        self.checker = AccessChecker(
            self.evaluator, self.stacks, account=account, partition=partition
        )
        self.bucket_keys = bucket_keys(self.stacks)
        self._formats: ArnFormats | None = None

    # ------------------------------------------------------------ SageMaker jobs, endpoint

    def stage(self, list_objects: ObjectLister | None = None) -> Stage:
        return Stage(
            self.account,
            self.region,
            self.partition,
            bucket_keys=self.bucket_keys,
            list_objects=list_objects,
        )

    def check_request(
        self,
        kind: str,
        request: Mapping[str, Any],
        *,
        name: str,
        list_objects: ObjectLister | None = None,
    ) -> int:
        """Checks what SageMaker does with the request's role; returns how many accesses.

        `kind`: Processing, Training, Tuning (`name` the trial's job) or Endpoint."""
        role = request_role(kind, request)
        accesses = accesses_for_request(kind, request, self.stage(list_objects), name=name)
        self.checker.check(role, accesses, session=SAGEMAKER_SESSION)
        return len(accesses)

    def check_endpoint(self, serving: RenderedStack, package: Mapping[str, Any]) -> int:
        """The rendered serving stack's endpoint, its Model naming the model `package`
        (a DescribeModelPackage answer, or the CreateModelPackage request)."""
        request = endpoint_request(serving, package)
        return self.check_request(
            "Endpoint", request, name=str(request["Endpoint"]["EndpointName"])
        )

    # ------------------------------------------------------------ Lambda handlers

    def function(self, function: str) -> FunctionBinding:
        """The synthesized function of lambda/<function> (its FunctionName ends -<name>)."""
        suffix = "-" + function.replace("_", "-")
        for rendered in self.stacks.values():
            for resource in rendered.of_type("AWS::Lambda::Function").values():
                props = resource["Properties"]
                if str(props.get("FunctionName", "")).endswith(suffix):
                    variables = props.get("Environment", {}).get("Variables", {})
                    return FunctionBinding(
                        props["FunctionName"],
                        str(props["Role"]).rsplit("/", 1)[-1],
                        {k: str(v) for k, v in variables.items()},
                    )
        raise LookupError(f"no synthesized Lambda function for lambda/{function}")

    def check_calls(
        self, function: str, calls: Sequence[Call], environment: Mapping[str, str]
    ) -> int:
        """Checks a handler's boto3 calls against its function's role.

        `environment` is what the handler ran with: where a value differs from the
        deployed function's (a local table name), the resource ARN gets the deployed one,
        so the policy is asked about the resource the deployed function would touch."""
        binding = self.function(function)
        renames = {
            environment[key]: value
            for key, value in binding.environment.items()
            if environment.get(key) and environment[key] != value
        }
        if self._formats is None:
            self._formats = ArnFormats(self.evaluator)
        accesses = [
            dataclasses.replace(access, resource=_renamed(access.resource, renames))
            for call in calls
            for access in accesses_for_call(
                call, self._formats, account=self.account, partition=self.partition
            )
        ]
        self.checker.check(binding.role, accesses, session=binding.name)
        return len(accesses)

    # ------------------------------------------------------------ the tally

    def counts(self) -> dict[str, tuple[int, int]]:
        """role -> (accesses checked, accesses allowed)."""
        return self.checker.counts()

    def close(self) -> None:
        if self._owns_evaluator:
            self.evaluator.close()

    def __enter__(self) -> StageAccess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _renamed(resource: str, renames: Mapping[str, str]) -> str:
    # Whole ARN parts only: a table named "x" must not rename "x-archive".
    return "".join(renames.get(part, part) for part in re.split(r"([:/])", resource))


def _named(stack: RenderedStack, type_: str, name: str) -> dict[str, Any]:
    for logical, resource in stack.of_type(type_).items():
        if stack.physical_names[logical] == name:
            return dict(resource["Properties"])
    raise LookupError(f"the serving stack holds no {type_} named {name!r}")


def endpoint_request(serving: RenderedStack, package: Mapping[str, Any]) -> dict[str, Any]:
    """The Endpoint, its EndpointConfig and Model, as the rendered stack creates them,
    with the model package the Model names (what the endpoint rule reads)."""
    endpoints = list(serving.of_type("AWS::SageMaker::Endpoint").values())
    if len(endpoints) != 1:
        raise LookupError(f"the serving stack holds {len(endpoints)} endpoints, not one")
    endpoint = dict(endpoints[0]["Properties"])
    config = _named(serving, "AWS::SageMaker::EndpointConfig", endpoint["EndpointConfigName"])
    variants = config.get("ProductionVariants", [])
    if not variants:
        raise LookupError(f"endpoint config {endpoint['EndpointConfigName']} has no variant")
    model = _named(serving, "AWS::SageMaker::Model", variants[0]["ModelName"])
    return {"Endpoint": endpoint, "EndpointConfig": config, "Model": model, "ModelPackage": package}


def object_lister(list_prefix: Callable[[str], Sequence[tuple[str, Path]]]) -> ObjectLister:
    """(bucket, prefix) -> keys, from a `LocalS3.list_prefix`-like callable of an s3:// URI."""

    def keys(bucket: str, prefix: str) -> list[str]:
        return [key for key, _ in list_prefix(f"s3://{bucket}/{prefix}")]

    return keys
