"""One batch scoring run on this machine: the serving stack's batch pipeline, executed.

The serving stack is rendered with the live model's parameters (as the deployer leaves
them); its `{prefix}-batch` pipeline's definition is run by
boostline.local.live_pipeline over the local buckets, as StartPipelineExecution with
InputUri and OutputUri would run it on AWS. The CSVs given are copied under
`batch/input/<execution id>/` in the local raw bucket (where a data owner puts them on
AWS); the scores land under `batch/output/<execution id>/` there and are then copied to
the output folder. Every access the job makes, SageMaker's and the script's own boto3
calls, is checked by the executor against the job role's synthesized policy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boostline.config import BoostlineConfig
from boostline.local.access_checks import StageAccess
from boostline.local.assembly import Assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.live_pipeline import execute_live
from boostline.local.pipeline import new_execution_id
from boostline.local.workdir import Workdir
from boostline.naming import names_for
from boostline.progress import Progress
from training_scripts.batch_score import input_files

INPUT_PREFIX = "batch/input"


class BatchUnavailable(RuntimeError):
    """The serving stack holds no batch pipeline (no model is live)."""


@dataclass
class BatchRun:
    execution_id: str
    pipeline: str
    input_uri: str
    output_uri: str
    status: str = "Executing"
    failure: str = ""
    files: dict[str, int] = field(default_factory=dict)  # output file -> rows scored
    output_dir: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "failure": self.failure,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "output_dir": str(self.output_dir) if self.output_dir else None,
            "files": self.files,
            "rows": sum(self.files.values()),
        }


def output_conflicts(source: Path, output_dir: Path) -> list[Path]:
    """Output files that already exist: a run never overwrites earlier scores."""
    root = source if source.is_dir() else source.parent
    targets = [output_dir / f.relative_to(root) for f in input_files(source)]
    return [t for t in targets if t.exists()]


def _rows(path: Path) -> int:
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0)  # the header


def run_batch(
    workdir: Workdir,
    config: BoostlineConfig,
    stage: str,
    *,
    assembly: Assembly,
    live: dict[str, str],
    source: Path,
    output_dir: Path,
    access: StageAccess | None = None,
    progress: Progress | None = None,
) -> BatchRun:
    """Score `source` (a CSV or a folder of them) into output_dir; see the module docstring."""
    progress = progress or Progress()
    names = names_for(config, stage)
    found = assembly.batch_pipeline(names.region, live, ACCOUNT)
    if found is None:
        raise BatchUnavailable(
            "the serving stack holds no batch pipeline: no model is live (ModelPackageArn none)"
        )
    name, definition = found
    source, output_dir = Path(source), Path(output_dir)
    files = input_files(source)  # refuses an empty folder before anything is copied
    execution_id = new_execution_id()
    raw = names.bucket("raw", ACCOUNT, names.region)
    key = f"{INPUT_PREFIX}/{execution_id}/"
    staged = workdir.bucket("raw") / key
    root = source if source.is_dir() else source.parent
    for file in files:
        target = staged / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    parameters = {"InputUri": f"s3://{raw}/{key}", "OutputUri": str(defaults["OutputUri"])}
    run = BatchRun(
        execution_id, name, parameters["InputUri"], f"{parameters['OutputUri']}/{execution_id}/"
    )
    progress.say(f"batch execution {execution_id} of {name}: {len(files)} file(s)")
    executed = execute_live(
        workdir,
        config,
        stage,
        assembly=assembly,
        definition=definition,
        pipeline_name=name,
        execution_id=execution_id,
        parameters=parameters,
        access=access,
        progress=progress,
    )
    run.status, run.failure = executed.status, executed.failure
    if run.status == "Succeeded":
        scores = executed.s3.writable_path(run.output_uri)
        run.output_dir = output_dir
        for file in sorted(p for p in scores.rglob("*") if p.is_file()):
            target = output_dir / file.relative_to(scores)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(file, partial)
            os.replace(partial, target)
            run.files[str(target)] = _rows(target)
    return run
