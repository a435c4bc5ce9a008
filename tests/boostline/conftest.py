"""The dev stage's cloud assembly, synthesized once per test session (offline)."""

from __future__ import annotations

import pytest

from boostline.config import load_config
from boostline.local.assembly import Assembly, stage_assembly


@pytest.fixture(scope="session")
def dev_assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return stage_assembly(tmp_path_factory.mktemp("synth-cache"), load_config(), "dev")
