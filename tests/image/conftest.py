"""The image lane's tests run only on the lane's own Python (`make test-image`).

Under any other interpreter (the main suite on the project's Python) this folder collects
nothing. In the lane, pytest runs tests/image and tests/training_scripts together; a
training_scripts test that cannot hold in the image is skipped there with its reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

LANE_MARKER = "boostline-image-lane.json"  # written by tests/image/build_lane.py
IN_LANE = (Path(sys.prefix) / LANE_MARKER).is_file()

# training_scripts tests that cannot hold with the image's packages: node id -> why.
LANE_SKIPS: dict[str, str] = {}
# The image's old packages warn about each other (pkg_resources, itsdangerous.json, pyparsing
# names); that is the image, not the scripts.
THIRD_PARTY_WARNINGS = [
    "ignore:pkg_resources is deprecated:UserWarning",
    "ignore::DeprecationWarning:pkg_resources",
    "ignore::DeprecationWarning:sagemaker_containers",
    "ignore::DeprecationWarning:flask",
    "ignore::DeprecationWarning:matplotlib",
]

if not IN_LANE:
    collect_ignore_glob = ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    if IN_LANE:
        for line in THIRD_PARTY_WARNINGS:
            config.addinivalue_line("filterwarnings", line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not IN_LANE:
        return
    for item in items:
        reason = LANE_SKIPS.get(item.nodeid.split("[", 1)[0])
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"image lane: {reason}"))
