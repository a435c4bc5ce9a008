"""A cloud assembly's stacks rendered for one account, and what the access rules read of them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boostline.local.cfn_render import RenderedStack, render_stage
from boostline.local.iam.policies import Rendered


def render_assembly(
    assembly: Path,
    *,
    account: str,
    region: str,
    templates: Mapping[str, Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, RenderedStack]:
    """Every stack of the assembly (a `cdk.out` folder) rendered in dependency order.

    `templates` replaces some stacks' templates (by artifact id: a mutated copy)."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for dependency in stacks[name].get("dependencies", []):
                if dependency in stacks:
                    visit(dependency)
            order.append(name)

    for name in stacks:
        visit(name)
    loaded = {
        name: (templates or {}).get(name)
        or json.loads((assembly / artifact["properties"]["templateFile"]).read_text())
        for name, artifact in stacks.items()
    }
    names = {name: a["properties"].get("stackName", name) for name, a in stacks.items()}
    return render_stage(loaded, order, names, parameters, account=account, region=region)


def bucket_keys(stacks: Mapping[str, Rendered]) -> dict[str, str]:
    """Bucket name -> the customer managed KMS key of its default encryption."""
    keys = {}
    for rendered in stacks.values():
        for resource in rendered.resources.values():
            if resource["Type"] != "AWS::S3::Bucket":
                continue
            props = resource.get("Properties", {})
            rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
            for rule in rules or []:
                default = rule.get("ServerSideEncryptionByDefault", {})
                key = default.get("KMSMasterKeyID")
                if default.get("SSEAlgorithm") == "aws:kms" and isinstance(key, str):
                    keys[props["BucketName"]] = key
    return keys
