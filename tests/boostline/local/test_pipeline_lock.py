"""Two `pipeline run` on one workdir: the second waits, so it gates against the first's model."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from boostline.data.generator import generate_to_dir


def test_a_second_run_waits_for_the_one_holding_the_workdir(tmp_path: Path, dev_assembly) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    generate_to_dir(500, tmp_path / "data", seed=1)
    held = FileLock(str(workdir / ".pipeline-run.lock"))
    held.acquire()  # a run in progress
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boostline",
            "pipeline",
            "run",
            "--workdir",
            str(workdir),
            "--data",
            str(tmp_path / "data"),
            "--assembly",
            str(dev_assembly.dir),
            "--max-trials",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = b""
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while b"waiting for it to end" not in output and time.monotonic() < deadline:
            if selector.select(timeout=1) and (chunk := os.read(proc.stdout.fileno(), 4096)):
                output += chunk
            elif proc.poll() is not None:
                break
        assert b"waiting for it to end" in output, output.decode(errors="replace")
        time.sleep(1)
        # Still waiting: no execution has read the champion or started a step.
        assert proc.poll() is None
        runs = workdir / "runs"
        assert not runs.exists() or not any(runs.glob("*.json"))
    finally:
        proc.kill()
        proc.wait(timeout=30)
        held.release()
