"""A SageMaker Processing job, run as a local process.

Inputs are placed under `<job>/processing/input/<name>` and outputs written
to `<job>/processing/output/<name>`, as /opt/ml/processing would hold them;
on success each output is copied to its destination (what SageMaker's upload
to S3 does). The script gets the local paths as arguments, as a pipeline's
processing step passes the container paths.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boostline.local.processes import ProcessSpec, run_processes


@dataclass(frozen=True)
class ProcessingJobResult:
    name: str
    status: str  # "Completed" or "Failed"
    failure_reason: str | None
    outputs: dict[str, Path]
    log: str
    seconds: float


def run_processing_job(
    job_dir: Path,
    script: Path,
    *,
    inputs: dict[str, Path],
    outputs: dict[str, Path],
    arguments: Callable[[dict[str, Path], dict[str, Path]], list[str]],
    env: dict[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> ProcessingJobResult:
    """Run `script` with `arguments(local_inputs, local_outputs)` as its command line."""
    started = time.monotonic()
    if job_dir.exists():
        shutil.rmtree(job_dir)
    local_in = {
        name: _stage_input(job_dir / "processing" / "input" / name, src)
        for name, src in inputs.items()
    }
    local_out = {name: job_dir / "processing" / "output" / name for name in outputs}
    for path in local_out.values():
        path.mkdir(parents=True, exist_ok=True)
    message_dir = job_dir / "output"
    spec = ProcessSpec(
        name=job_dir.name,
        argv=[sys.executable, str(script), *arguments(local_in, local_out)],
        env={**(env or {}), "BOOSTLINE_OUTPUT_DIR": str(message_dir), "PYTHONUNBUFFERED": "1"},
        cwd=script.parent,
    )
    (result,) = run_processes([spec], timeout=timeout, echo=echo)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        message = message_dir / "message"
        reason = message.read_text().strip() if message.exists() else _last_lines(result.output)
        return ProcessingJobResult(job_dir.name, "Failed", reason, {}, result.output, seconds)
    for name, dest in outputs.items():
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(local_out[name], dest)
    return ProcessingJobResult(
        job_dir.name, "Completed", None, dict(outputs), result.output, seconds
    )


def _stage_input(target: Path, source: Path) -> Path:
    """Link a file or a folder's files into the job's input dir (like an S3 download)."""
    if not source.exists():
        raise ValueError(f"processing input {source} does not exist")
    target.mkdir(parents=True, exist_ok=True)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        rel = file.name if source.is_file() else file.relative_to(source)
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(file.resolve())
    return target


def _last_lines(text: str, n: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:]) or "the job exited with an error and printed nothing"
