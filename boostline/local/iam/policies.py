"""The identity-based policies of a role, collected from a stage's rendered templates.

A role's permissions are the statements of every policy attached to it: the role's
inline `Policies`, each AWS::IAM::Policy and AWS::IAM::ManagedPolicy whose `Roles`
names it, and each of its `ManagedPolicyArns` that is a managed policy of the stage.
The stacks are rendered first (intrinsics resolved for one account and region,
resources whose condition is false left out): anything with a `resources` mapping of
logical id -> {"Type", "Properties"}, as `boostline.local.cfn_render.RenderedStack` has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from boostline.local.iam.evaluator import Policy


class Rendered(Protocol):
    resources: Mapping[str, Mapping[str, Any]]


class PolicyLookupError(LookupError):
    """The role is not in the templates, or it is attached to a policy no template holds."""


def _roles(stacks: Mapping[str, Rendered]) -> dict[str, tuple[str, str, Mapping[str, Any]]]:
    roles = {}
    for stack, rendered in stacks.items():
        for logical, resource in rendered.resources.items():
            if resource["Type"] == "AWS::IAM::Role":
                props = resource.get("Properties", {})
                name = props.get("RoleName")
                if isinstance(name, str):
                    roles[name] = (stack, logical, props)
    return roles


def role_names(stacks: Mapping[str, Rendered]) -> list[str]:
    """Every role the templates name (RoleName)."""
    return sorted(_roles(stacks))


def role_policies(stacks: Mapping[str, Rendered], role: str) -> list[Policy]:
    """Every identity-based policy attached to the role named `role`."""
    roles = _roles(stacks)
    if role not in roles:
        raise PolicyLookupError(
            f"no AWS::IAM::Role named {role!r} in the templates of "
            f"{', '.join(sorted(stacks))} (roles: {', '.join(sorted(roles)) or 'none'})"
        )
    stack, logical, props = roles[role]
    policies = [
        Policy(f"{stack}/{logical}/{inline.get('PolicyName', index)}", inline["PolicyDocument"])
        for index, inline in enumerate(props.get("Policies", []))
    ]
    managed_by_name: dict[str, Policy] = {}
    for name, rendered in stacks.items():
        for policy_logical, resource in rendered.resources.items():
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            policy_props = resource.get("Properties", {})
            policy = Policy(f"{name}/{policy_logical}", policy_props["PolicyDocument"])
            if role in policy_props.get("Roles", []):
                policies.append(policy)
            elif isinstance(policy_props.get("ManagedPolicyName"), str):
                managed_by_name[policy_props["ManagedPolicyName"]] = policy
    for arn in props.get("ManagedPolicyArns", []):
        matched = managed_by_name.get(str(arn).rsplit("/", 1)[-1])
        if matched is None:
            raise PolicyLookupError(
                f"role {role} has the managed policy {arn}, which no template of the stage "
                "holds: its statements cannot be evaluated offline"
            )
        policies.append(matched)
    return policies


def resource_policies(stacks: Mapping[str, Rendered]) -> dict[str, Mapping[str, Any]]:
    """Resource-based policies of the templates: a bucket's (by bucket ARN) and a KMS key's
    (by key id: the ARN's last part; the renderer names a key `<stack>-<logical id>`)."""
    found: dict[str, Mapping[str, Any]] = {}
    for rendered in stacks.values():
        for logical, resource in rendered.resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::S3::BucketPolicy" and isinstance(props.get("Bucket"), str):
                found[f"bucket:{props['Bucket']}"] = props["PolicyDocument"]
            elif resource["Type"] == "AWS::KMS::Key" and "KeyPolicy" in props:
                found[f"key:{logical}"] = props["KeyPolicy"]
    return found
