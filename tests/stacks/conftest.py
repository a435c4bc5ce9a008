"""One synth per app variant per test session, shared by every infra test.

Variants: `dev` (the shipped config), `dev_again` (a second, independent synth, for
determinism), `prod_vpc` (prod with VPC mode and a pinned account), and
`dev_unacknowledged` (every cdk-nag acknowledgement switched off, to prove each one
matches a real finding).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from boostline.config import BoostlineConfig, load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


@dataclass
class Synth:
    stage: str
    config: BoostlineConfig
    outdir: Path
    app: Any = None
    stacks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def templates(self) -> dict[str, dict]:
        return {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in sorted(self.outdir.glob("*.template.json"))
        }

    def template(self, stack: str) -> dict:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())

    def resources(self, stack: str, type_: str) -> dict[str, dict]:
        return {
            name: res
            for name, res in self.template(stack)["Resources"].items()
            if res["Type"] == type_
        }

    @property
    def validation_report(self) -> dict:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synthesize(config: BoostlineConfig, stage: str, outdir: Path) -> Synth:
    from stacks import build_app, new_app

    app = new_app(stage, str(outdir))
    result = Synth(stage=stage, config=config, outdir=outdir, app=app)
    result.stacks = build_app(app, config, stage)
    try:
        app.synth()
    except RuntimeError as exc:  # jsii wraps the validation failure
        result.error = str(exc)
    return result


def _ok(result: Synth) -> Synth:
    assert result.error is None, f"synth of {result.stage} failed: {result.error}"
    return result


@pytest.fixture(scope="session")
def dev_config() -> BoostlineConfig:
    return load_config()


@pytest.fixture(scope="session")
def prod_vpc_config(tmp_path_factory) -> BoostlineConfig:
    raw = yaml.safe_load((REPO / "config" / "boostline.yaml").read_text())
    raw["dataset_schema"] = str((REPO / "boostline" / "data" / "loan_schema.yaml").resolve())
    raw["stages"]["prod"]["vpc"] = {
        "enabled": True,
        "availability_zones": ["eu-west-1a", "eu-west-1b"],
    }
    raw["stages"]["prod"]["account"] = "123456789012"
    path = tmp_path_factory.mktemp("config") / "boostline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="session")
def dev(dev_config, tmp_path_factory) -> Synth:
    return _ok(synthesize(dev_config, "dev", tmp_path_factory.mktemp("dev")))


@pytest.fixture(scope="session")
def dev_again(dev_config, tmp_path_factory) -> Synth:
    return _ok(synthesize(dev_config, "dev", tmp_path_factory.mktemp("dev_again")))


@pytest.fixture(scope="session")
def prod_vpc(prod_vpc_config, tmp_path_factory) -> Synth:
    return _ok(synthesize(prod_vpc_config, "prod", tmp_path_factory.mktemp("prod_vpc")))


@pytest.fixture(scope="session")
def dev_unacknowledged(dev_config, tmp_path_factory) -> tuple[Synth, list[tuple[str, str]]]:
    """The dev app with every acknowledgement recorded but not applied."""
    from stacks import nag

    recorded: list[tuple[str, str]] = []

    def record(resource, rule, reason):
        recorded.append((resource.node.path, rule))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nag, "acknowledge", record)
        result = synthesize(dev_config, "dev", tmp_path_factory.mktemp("dev_unacked"))
    return result, recorded


@pytest.fixture(scope="session", params=["dev", "prod_vpc"])
def any_synth(request) -> Synth:
    return request.getfixturevalue(request.param)
