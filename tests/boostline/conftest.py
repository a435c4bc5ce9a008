"""The stage assemblies the pipeline runs of these tests execute, synthesized once per test
session (offline): the dev stage's as shipped, and the light one of light_stage.py."""

from __future__ import annotations

import iam_stage
import pytest
from light_stage import Light, light_stage

from boostline.local.assembly import Assembly


@pytest.fixture(scope="session")
def dev_assembly() -> Assembly:
    return iam_stage.dev_stage_assembly()  # the access-check tests' synth, shared


@pytest.fixture(scope="session")
def light(tmp_path_factory: pytest.TempPathFactory) -> Light:
    return light_stage(tmp_path_factory.mktemp("light"))
