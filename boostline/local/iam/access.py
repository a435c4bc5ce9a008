"""Accesses, the checker that evaluates them against a role's policies, and AccessDenied.

An `Access` is one authorization AWS makes: an IAM action on a resource ARN with the
request's condition keys (`s3:prefix`, `iam:PassedToService`, ...). `AccessChecker`
evaluates accesses made under a role against the identity-based policies the stage's
templates attach to it (`policies.role_policies`), with the IAM policy evaluator, and
raises `AccessDenied` worded as AWS words it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from boostline.local.iam.evaluator import Policy, PolicyEvaluator, Request, Result
from boostline.local.iam.policies import Rendered, resource_policies, role_policies


@dataclass(frozen=True)
class Access:
    action: str  # service:Action, as IAM names it
    resource: str  # the resource ARN ("*" for actions without a resource type)
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    why: str = ""  # what makes it (a request field, a boto3 call), for the message


class AccessDenied(Exception):
    """An access the role's policies do not allow, as AWS's AccessDenied says it."""

    def __init__(
        self,
        role: str,
        access: Access,
        result: Result = "ImplicitlyDenied",
        *,
        account: str = "000000000000",
        session: str = "local",
        partition: str = "aws",
    ):
        self.role = role
        self.action = access.action
        self.resource = access.resource
        self.access = access
        self.result = result
        self.principal = assumed_role_arn(role, account, session, partition)
        if result == "ExplicitlyDenied":
            because = "with an explicit deny in an identity-based policy"
        else:
            because = f"because no identity-based policy allows the {access.action} action"
        message = (
            f"User: {self.principal} is not authorized to perform: {access.action} on "
            f"resource: {access.resource} {because}"
        )
        if access.why:
            message += f" ({access.why})"
        super().__init__(message)


def assumed_role_arn(role: str, account: str, session: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sts::{account}:assumed-role/{role}/{session}"


def role_name(role_arn: str) -> str:
    """The role's name in arn:aws:iam::<account>:role[/path]/<name>."""
    if ":role/" not in role_arn:
        raise ValueError(f"{role_arn!r} is not an IAM role ARN")
    return role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Decision:
    role: str
    access: Access
    result: Result

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


def _transport(access: Access) -> dict[str, str]:
    """What every SDK request carries: TLS (the buckets deny requests without it)."""
    if access.action.startswith("s3:"):
        return {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
    return {"aws:SecureTransport": "true"}


class AccessChecker:
    """Checks accesses of the stage's roles against their synthesized policies.

    `stacks` are the stage's rendered stacks (stack name -> anything with `resources`).
    `policy_override` replaces a role's policies (mutation tests).
    Every decision is kept in `decisions`; `counts()` tells how many per role.
    """

    def __init__(
        self,
        evaluator: PolicyEvaluator,
        stacks: Mapping[str, Rendered],
        *,
        account: str,
        partition: str = "aws",
    ):
        self.evaluator = evaluator
        self.stacks = stacks
        self.account = account
        self.partition = partition
        self.decisions: list[Decision] = []
        self._policies: dict[str, list[Policy]] = {}
        self._resource_policies = resource_policies(stacks)

    def resource_policy(self, arn: str) -> Mapping[str, Any] | None:
        """The bucket policy or key policy the templates give the resource, if any."""
        if arn.startswith("arn:") and ":s3:::" in arn:
            bucket = arn.split(":::", 1)[1].split("/", 1)[0]
            return self._resource_policies.get(f"bucket:{bucket}")
        if ":kms:" in arn and ":key/" in arn:
            key_id = arn.rsplit("/", 1)[-1]
            for name, policy in self._resource_policies.items():
                if name.startswith("key:") and (
                    key_id == name[4:] or key_id.endswith("-" + name[4:])
                ):
                    return policy
        return None

    def policies(self, role: str) -> list[Policy]:
        if role not in self._policies:
            self._policies[role] = role_policies(self.stacks, role)
        return self._policies[role]

    def evaluate(
        self, role: str, accesses: Sequence[Access], *, session: str = "local"
    ) -> list[Decision]:
        """Every access's decision, none raised."""
        principal = assumed_role_arn(role, self.account, session, self.partition)
        requests = [
            Request(
                principal,
                a.action,
                a.resource,
                self.account,
                {**_transport(a), **a.context},
                self.resource_policy(a.resource),
            )
            for a in accesses
        ]
        results = self.evaluator.evaluate(requests, self.policies(role))
        decisions = [Decision(role, a, r) for a, r in zip(accesses, results, strict=True)]
        self.decisions.extend(decisions)
        return decisions

    def check(self, role: str, accesses: Sequence[Access], *, session: str = "local") -> None:
        """Raises AccessDenied for the first access the role's policies do not allow."""
        for decision in self.evaluate(role, accesses, session=session):
            if not decision.allowed:
                raise AccessDenied(
                    role,
                    decision.access,
                    decision.result,
                    account=self.account,
                    session=session,
                    partition=self.partition,
                )

    def counts(self) -> dict[str, tuple[int, int]]:
        """role -> (accesses checked, accesses allowed)."""
        checked: Counter[str] = Counter()
        allowed: Counter[str] = Counter()
        for d in self.decisions:
            checked[d.role] += 1
            allowed[d.role] += d.allowed
        return {role: (checked[role], allowed[role]) for role in sorted(checked)}
