"""Snapshot of every template, so a pull request shows its infrastructure diff.

Refresh with `UPDATE_SNAPSHOTS=1 pytest tests/stacks`. Asset hashes are masked: a
change to a training script changes the asset, not the infrastructure.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def _masked(value):
    """Asset hashes masked; a list of strings naming assets sorted, because CDK sorts
    such lists (policy minimization) by the hashes, which change with every script."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_masked(v) for v in value]
        if (
            items
            and all(isinstance(v, str) for v in items)
            and any("<asset-hash>" in v for v in items)
        ):
            return sorted(items)
        return items
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset-hash>", value)
    return value


def normalized(template: dict) -> str:
    return json.dumps(_masked(template), indent=1, sort_keys=True) + "\n"


@pytest.mark.parametrize("variant", ["dev", "prod_vpc"])
def test_templates_match_snapshots(variant, request):
    synth = request.getfixturevalue(variant)
    folder = SNAPSHOTS / variant
    update = os.environ.get("UPDATE_SNAPSHOTS") == "1"
    for stack, template in synth.templates.items():
        path = folder / f"{stack}.template.json"
        text = normalized(template)
        if update:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            continue
        assert path.exists(), f"no snapshot {path}; run UPDATE_SNAPSHOTS=1 pytest tests/stacks"
        assert path.read_text() == text, (
            f"{stack} ({variant}) differs from {path.relative_to(SNAPSHOTS.parent.parent.parent)}; "
            "review the change and run UPDATE_SNAPSHOTS=1 pytest tests/stacks"
        )
    expected = {p.name.removesuffix(".template.json") for p in folder.glob("*.template.json")}
    assert expected == set(synth.templates), "a stack was added or removed; update snapshots"
