"""cdk-nag: the rule packs every stack is checked against, and the acknowledgements.

cdk-nag 3 runs as a CDK policy-validation plugin: findings land in the cloud
assembly's validation report, and synth fails on any finding that is not
acknowledged (errors and, with `@aws-cdk/core:strictCfnValidateErrors` in
cdk.json and app.py, warnings too).

An acknowledgement is allowed only on the one resource it is about, with a
one-sentence reason; `acknowledge` refuses a stack, a stage or the app as scope,
so there are no blanket acknowledgements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Stage, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct

PACKS = ("AwsSolutions", "NIST.800.53.R5")
# Fail synth on warnings as well as errors (see the module docstring).
STRICT_CONTEXT = {"@aws-cdk/core:strictCfnValidateErrors": True}


@dataclass(frozen=True)
class Acknowledgement:
    path: str
    rule: str
    reason: str


def add_packs(app: App) -> None:
    """Check every stack of the app against the AwsSolutions and NIST 800-53 R5 packs."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))


def acknowledge(resource: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on one resource, with a one-sentence reason."""
    if isinstance(resource, Stack | Stage | App) or Stack.is_stack(resource):
        raise ValueError(f"{rule}: acknowledge findings on a resource, not on {resource}")
    if not rule.startswith(tuple(f"{pack}-" for pack in PACKS)):
        raise ValueError(f"{rule}: not a rule of the packs in use ({', '.join(PACKS)})")
    reason = " ".join(reason.split())
    one_sentence = re.fullmatch(r"[A-Z][^!?]*[^\s.]\.", reason) and not re.search(
        r"[.;:]\s+[A-Z]", reason
    )
    if not one_sentence:
        raise ValueError(f"{rule}: the reason must be one sentence, got {reason!r}")
    Validations.of(resource).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledged(scope: IConstruct) -> list[Acknowledgement]:
    """Every acknowledgement in the construct tree under scope, read from its metadata."""
    found = []
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY or not entry.data:
                continue
            for qualified, reason in dict(entry.data).items():
                rule = qualified
                for namespace in (*PACKS, "Annotation", "annotation"):
                    rule = rule.removeprefix(f"{namespace}::")
                found.append(Acknowledgement(construct.node.path, rule, reason))
    return sorted(found, key=lambda a: (a.path, a.rule))


def cfn(construct: IConstruct) -> CfnResource:
    """The CloudFormation resource behind an L2 construct (what nag checks)."""
    child = construct.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return child
