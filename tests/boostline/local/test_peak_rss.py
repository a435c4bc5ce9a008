"""Peak RSS per process and per step: the job's own, not the size of whoever started it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from boostline.local.local_aws import LocalS3
from boostline.local.pipeline_executor import PipelineExecutor
from boostline.local.processes import ProcessSpec, run_processes
from boostline.local.workdir import Workdir
from boostline.registry import Registry

MB = 1024  # kB

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def allocating(mb: int, hold: float = 0.5) -> str:
    """Python source that touches `mb` MB, holds it `hold` seconds, then exits."""
    return (
        "import time\n"
        f"block = bytearray({mb} * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096):\n"
        "    block[i] = 1\n"
        f"time.sleep({hold})\n"
    )


def test_a_process_that_allocates_200_mb_reports_at_least_that() -> None:
    (result,) = run_processes([ProcessSpec("big", [sys.executable, "-c", allocating(200)], {})])
    assert result.returncode == 0, result.output
    assert result.peak_rss_kb is not None
    assert result.peak_rss_kb >= 200 * MB


def test_a_small_process_started_by_a_large_one_reports_its_own_size() -> None:
    # wait4's ru_maxrss would report this runner's 300 MB for the child.
    ballast = bytearray(300 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    small = [sys.executable, "-c", "import time; time.sleep(0.5)"]
    (result,) = run_processes([ProcessSpec("small", small, {})])
    assert result.peak_rss_kb is not None
    assert result.peak_rss_kb < 100 * MB
    assert len(ballast) == 300 * 1024 * 1024


def test_a_descendant_counts_and_each_process_has_its_own_peak() -> None:
    # `; true` keeps the shell alive: python runs as its child, not in its place.
    shell = ["/bin/sh", "-c", f'"{sys.executable}" -c "$0"; true', allocating(250)]
    alone = [sys.executable, "-c", allocating(20)]
    tree, small = run_processes([ProcessSpec("tree", shell, {}), ProcessSpec("small", alone, {})])
    assert tree.returncode == 0, tree.output
    assert tree.peak_rss_kb is not None and tree.peak_rss_kb >= 250 * MB
    assert small.peak_rss_kb is not None and 20 * MB <= small.peak_rss_kb < 150 * MB


def test_a_processing_step_records_its_peak_in_the_step_record(tmp_path: Path) -> None:
    definition = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {
                "Name": "Allocate",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1}},
                    "AppSpecification": {"ContainerEntrypoint": ["python3", "-c", allocating(200)]},
                },
            }
        ],
    }
    workdir = Workdir.at(tmp_path)
    executor = PipelineExecutor(
        definition,
        s3=LocalS3({}),
        workdir=workdir,
        registry=Registry(workdir.root),
        execution_id="abc123def456",
        pipeline_name="peak",
        region="eu-west-1",
        account="000000000000",
    )
    executor.run()
    record = executor.steps["Allocate"]
    assert record.status == "Succeeded"
    assert record.detail["peak_rss_mb"] >= 200
    assert "peak_rss_mb_by_host" not in record.detail  # one host
