"""One demo run, shared by the tests that read what it left (dev_assembly: ../conftest.py)."""

from __future__ import annotations

import pytest

from boostline.config import load_config


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, dev_assembly):
    """One demo run on tiny data, shared by the tests that read what it left."""
    from test_demo import OPTIONS

    from boostline.local.demo import DemoOptions, run_demo
    from boostline.progress import Progress

    root = tmp_path_factory.mktemp("demo")
    options = DemoOptions(**OPTIONS, assembly=dev_assembly.dir)
    return run_demo(root, load_config(), options, Progress(quiet=True))
