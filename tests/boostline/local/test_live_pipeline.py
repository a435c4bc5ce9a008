"""A definition executed with the live model: how it ends, and what the jobs called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boostline.config import load_config
from boostline.local.live_pipeline import execute_live
from boostline.local.workdir import Workdir
from boostline.progress import Progress

PACKAGE = "arn:aws:sagemaker:eu-west-1:000000000000:model-package/boostline-dev-models/7"


class _NoAssets:
    def file_assets(self, region: str, account: str) -> dict:
        return {}


def _definition(command: str) -> dict[str, Any]:
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [],
        "Steps": [
            {
                "Name": "Job",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingResources": {
                        "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
                    },
                    "AppSpecification": {
                        "ImageUri": "image",
                        "ContainerEntrypoint": ["/bin/sh", "-c", command],
                    },
                    "RoleArn": "arn:aws:iam::000000000000:role/job",
                    "ProcessingOutputConfig": {"Outputs": []},
                },
            }
        ],
    }


def _execute(tmp_path: Path, command: str):
    return execute_live(
        Workdir.at(tmp_path),
        load_config(),
        "dev",
        assembly=_NoAssets(),  # type: ignore[arg-type]
        definition=_definition(command),
        pipeline_name="boostline-dev-batch",
        execution_id="e1",
        parameters={},
        access=None,
        progress=Progress(),
    )


def test_a_step_that_succeeds_leaves_its_properties(tmp_path: Path) -> None:
    executed = _execute(tmp_path, "exit 0")
    assert (executed.status, executed.failure) == ("Succeeded", "")
    assert "Job" in executed.executor.properties


def test_a_failed_step_ends_the_execution_as_failed_without_raising(tmp_path: Path) -> None:
    executed = _execute(tmp_path, "exit 3")
    assert executed.status == "Failed"
    assert "step Job failed" in executed.failure


def test_packages_are_described_from_the_local_registry(tmp_path: Path) -> None:
    endpoint = _execute(tmp_path, "exit 0").endpoint
    assert endpoint.describe_package is not None
    with pytest.raises(LookupError, match="model package .*/7 not found"):
        endpoint.describe_package(PACKAGE)
