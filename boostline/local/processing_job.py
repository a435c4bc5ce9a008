"""A SageMaker Processing job, run as local processes: one per instance.

Each instance (`algo-1` ... `algo-N`) gets a tree of its own, as /opt/ml would hold it:
inputs under `<root>/processing/input/<name>`, outputs written to
`<root>/processing/output/<name>`, and `<root>/config/resourceconfig.json` naming the
current host and the host list, which is all SageMaker tells a processing container
about its cluster (no SM_* variables). `BOOSTLINE_RESOURCE_CONFIG` gives the script that
file's local path, as `BOOSTLINE_OUTPUT_DIR` gives it the exit message's folder. With one
instance `<root>` is the job dir itself; with N, `<job dir>/<host>`.

An input is FullyReplicated (every host gets every file) or ShardedByS3Key: the files
sorted by key, file i to host i % N, as the training job runner deals them; a host may
get none, as on SageMaker. On success every host's outputs are copied to their
destinations (what SageMaker's upload of each instance's output to the same S3 prefix
does); two hosts writing the same file with different bytes fail the job here, where
SageMaker would keep whichever upload came last. The script gets the local paths as
arguments, as a pipeline's processing step passes the container paths.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from boostline.local.processes import ProcessResult, ProcessSpec, run_processes

Distribution = Literal["FullyReplicated", "ShardedByS3Key"]
DISTRIBUTIONS: tuple[str, ...] = ("FullyReplicated", "ShardedByS3Key")
RESOURCE_CONFIG_ENV = "BOOSTLINE_RESOURCE_CONFIG"


@dataclass(frozen=True)
class ProcessingInput:
    source: Path  # a file, or a folder whose files (any depth) are the S3 objects
    distribution: Distribution = "FullyReplicated"


@dataclass(frozen=True)
class HostRun:
    host: str
    root: Path  # the host's /opt/ml
    returncode: int
    log: str
    seconds: float
    peak_rss_kb: int | None = None  # processes.ProcessResult's: VmHWM of the host's tree


@dataclass(frozen=True)
class ProcessingJobResult:
    name: str
    status: str  # "Completed" or "Failed"
    failure_reason: str | None
    outputs: dict[str, Path]
    log: str  # algo-1's output
    seconds: float
    hosts: tuple[HostRun, ...] = ()


def run_processing_job(
    job_dir: Path,
    script: Path,
    *,
    inputs: Mapping[str, Path | ProcessingInput],
    outputs: dict[str, Path],
    arguments: Callable[[dict[str, Path], dict[str, Path]], list[str]],
    env: dict[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
    timeout: float | None = None,
    instance_count: int = 1,
    interpreter: Sequence[str] | None = None,
) -> ProcessingJobResult:
    """Run `script` on `instance_count` local instances, each with the command line
    `arguments(its local inputs, its local outputs)`.

    A plain Path input is FullyReplicated. `interpreter` (default: this Python) is what
    runs the script, e.g. a wrapper that measures it. Bad arguments raise ValueError; a
    failing script gives a Failed result with the reason its exit message gives.
    """
    started = time.monotonic()
    if isinstance(instance_count, bool) or not isinstance(instance_count, int):
        raise ValueError(f"instance_count must be an int, got {instance_count!r}")
    if instance_count < 1:
        raise ValueError(f"instance_count must be at least 1, got {instance_count}")
    specs_in = {name: _as_input(name, item) for name, item in inputs.items()}
    objects = {name: _objects(name, item.source) for name, item in specs_in.items()}
    if job_dir.exists():
        shutil.rmtree(job_dir)
    hosts = [f"algo-{i}" for i in range(1, instance_count + 1)]
    roots = {h: job_dir if instance_count == 1 else job_dir / h for h in hosts}
    specs, local_outs = [], {}
    for index, host in enumerate(hosts):
        root = roots[host]
        local_in = {}
        for name, item in specs_in.items():
            target = root / "processing" / "input" / name
            chosen = objects_for_host(objects[name], item.distribution, index, instance_count)
            local_in[name] = _stage(target, chosen)
        local_out = {name: root / "processing" / "output" / name for name in outputs}
        for path in local_out.values():
            path.mkdir(parents=True, exist_ok=True)
        local_outs[host] = local_out
        config = root / "config" / "resourceconfig.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(resource_config(host, hosts), indent=2) + "\n")
        job_env = {
            **(env or {}),
            "BOOSTLINE_OUTPUT_DIR": str(root / "output"),
            RESOURCE_CONFIG_ENV: str(config),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [*(interpreter or [sys.executable]), str(script), *arguments(local_in, local_out)]
        specs.append(ProcessSpec(name=host, argv=argv, env=job_env, cwd=script.parent))
    results = run_processes(specs, timeout=timeout, echo=echo)
    runs = tuple(
        HostRun(h, roots[h], r.returncode, r.output, r.elapsed, r.peak_rss_kb)
        for h, r in zip(hosts, results, strict=True)
    )
    seconds = time.monotonic() - started

    def failed(reason: str) -> ProcessingJobResult:
        return ProcessingJobResult(
            job_dir.name, "Failed", reason, {}, results[0].output, seconds, runs
        )

    if any(r.returncode != 0 or r.timed_out for r in results):
        return failed(hosts_failure_reason(hosts, roots, results, timeout))
    try:
        check_collisions(outputs, local_outs)
    except ValueError as exc:
        return failed(str(exc))
    for name, dest in outputs.items():
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for host in hosts:
            shutil.copytree(local_outs[host][name], dest, dirs_exist_ok=True)
    return ProcessingJobResult(
        job_dir.name, "Completed", None, dict(outputs), results[0].output, seconds, runs
    )


def resource_config(host: str, hosts: list[str]) -> dict[str, object]:
    """/opt/ml/config/resourceconfig.json as a processing container sees it."""
    return {"current_host": host, "hosts": list(hosts)}


def _as_input(name: str, item: Path | ProcessingInput) -> ProcessingInput:
    spec = item if isinstance(item, ProcessingInput) else ProcessingInput(Path(item))
    if spec.distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"processing input {name!r}: unknown distribution {spec.distribution!r}, "
            f"expected one of {', '.join(DISTRIBUTIONS)}"
        )
    return spec


def _objects(name: str, source: Path) -> list[tuple[Path, Path]]:
    """(relative key, file) of every object, sorted by key."""
    if not source.exists():
        raise ValueError(f"processing input {name!r}: {source} does not exist")
    if source.is_file():
        return [(Path(source.name), source)]
    files = sorted(p for p in source.rglob("*") if p.is_file())
    return sorted(((f.relative_to(source), f) for f in files), key=lambda kv: kv[0].as_posix())


def objects_for_host(
    objects: list[tuple[Path, Path]], distribution: str, index: int, count: int
) -> list[tuple[Path, Path]]:
    if distribution == "FullyReplicated":
        return objects
    return [obj for position, obj in enumerate(objects) if position % count == index]


def _stage(target: Path, objects: list[tuple[Path, Path]]) -> Path:
    """Link the objects into the host's input dir (like SageMaker's download)."""
    target.mkdir(parents=True, exist_ok=True)
    for relative, file in objects:
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(file.resolve())
    return target


def check_collisions(
    outputs: Mapping[str, Path], local_outs: Mapping[str, dict[str, Path]]
) -> None:
    for name in outputs:
        owner: dict[Path, tuple[str, Path]] = {}
        for host, paths in local_outs.items():
            base = paths[name]
            for file in sorted(p for p in base.rglob("*") if p.is_file()):
                relative = file.relative_to(base)
                if relative in owner:
                    first, earlier = owner[relative]
                    if not filecmp.cmp(earlier, file, shallow=False):
                        raise ValueError(
                            f"output {name!r}: {first} and {host} both wrote {relative} "
                            "with different contents (on SageMaker the last upload would win)"
                        )
                owner[relative] = (host, file)


def hosts_failure_reason(
    hosts: list[str], roots: dict[str, Path], results: list[ProcessResult], timeout: float | None
) -> str:
    if any(r.timed_out for r in results):
        return f"the job ran longer than {timeout:g} s and was stopped"
    # the host that failed of its own accord ended first; the others were stopped after it
    order = sorted(
        range(len(results)), key=lambda i: (results[i].returncode == 0, results[i].elapsed)
    )
    i = order[0]
    message = roots[hosts[i]] / "output" / "message"
    reason = message.read_text().strip() if message.is_file() else _last_lines(results[i].output)
    return reason if len(hosts) == 1 else f"{hosts[i]}: {reason}"


def _last_lines(text: str, n: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:]) or "the job exited with an error and printed nothing"
