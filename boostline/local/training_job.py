"""A SageMaker training job on this machine.

Each instance (`algo-1` ... `algo-N`) is a local process with the directory layout and
environment variables the SageMaker training toolkit gives a script-mode entry point:
`job_dir/<host>/` mirrors `/opt/ml`. Channels are hard links (or symlinks) to the given
files; `ShardedByS3Key` hands sorted object i to host i % N. The checkpoint location
plays the part of `checkpoint_s3_uri`: every host's local checkpoint dir is seeded from
it before the start, and algo-1's is synced back after the end. Like SageMaker, every
host gets the job's name in TRAINING_JOB_NAME (train.py keeps its checkpoints in a folder
of that name, so jobs sharing a checkpoint location never resume each other's), and
the job packages algo-1's model dir as `job_dir/output/model.tar.gz`.

A failure reads as it does on AWS. The XGBoost image's toolkit runs the script as
`python -m <module> <args>` and, when it exits non-zero, overwrites the host's
`output/failure` with `ExecuteUserScriptError:\nCommand "..."`, which DescribeTrainingJob
shows as `AlgorithmError: ExecuteUserScriptError: ...`; this runner does the same. The
script's own reason is taken as the cloud path takes it from CloudWatch Logs: the last
`Boostline failure: ` line of the host's output. `failure_reason` presents both.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import sys
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from boostline.local.processes import ProcessResult, ProcessSpec, run_processes
from training_scripts.job_message import read_failure_line

Distribution = Literal["FullyReplicated", "ShardedByS3Key"]
DISTRIBUTIONS: tuple[str, ...] = ("FullyReplicated", "ShardedByS3Key")
TRACKER_HOST = "127.0.0.1"
# This machine's cores are shared (parallel trials, other work). OpenMP's default spinning
# barriers then collapse: XGBoost with 2 threads on 2 cores, one of them busy, ran 100x
# slower. Sleeping waits cost little. The caller's environment still wins.
LOCAL_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
FAILURE_REASON_LIMIT = 1024  # SageMaker truncates FailureReason to this length
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # what train.py accepts
_PORT_LOCK = threading.Lock()
_RECENT_PORTS: deque[int] = deque(maxlen=256)


@dataclass(frozen=True)
class Channel:
    files: list[Path]
    distribution: Distribution = "FullyReplicated"
    content_type: str | None = None


@dataclass
class HostOutput:
    host: str
    returncode: int
    root: Path  # job_dir/<host>, the host's /opt/ml
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    log: str
    failure: str | None  # the text of output/failure: the toolkit's, when the script failed
    script_failure: str | None  # the reason of the script's `Boostline failure: ` line
    peak_rss_kb: int | None = None  # processes.ProcessResult's: VmHWM of the host's tree


@dataclass
class TrainingJobResult:
    status: Literal["Completed", "Failed"]
    # For a person: the script's reason (or how the host ended), then what AWS would show.
    failure_reason: str | None
    job_dir: Path
    model_dir: Path  # algo-1's model dir
    model_tar: Path | None  # job_dir/output/model.tar.gz, only when Completed
    hosts: list[HostOutput]
    log: str  # algo-1's output
    wall_seconds: float
    timed_out: bool = False
    sagemaker_failure_reason: str | None = None  # DescribeTrainingJob's FailureReason on AWS
    script_failure_reason: str | None = None  # from the failed host's `Boostline failure: ` line

    @property
    def output_data_dir(self) -> Path:
        return self.hosts[0].output_data_dir

    @property
    def peak_rss_kb(self) -> int | None:
        """The largest host's peak RSS (None when none was measured)."""
        peaks = [h.peak_rss_kb for h in self.hosts if h.peak_rss_kb is not None]
        return max(peaks) if peaks else None


@dataclass(frozen=True)
class _Host:
    name: str
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"


def run_training_job(
    job_dir: Path,
    script: Path,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, Channel],
    *,
    instance_count: int = 1,
    checkpoint_dir: Path | None = None,
    timeout: float | None = None,
    echo: Callable[[str], None] | None = None,
    environment: Mapping[str, str] | None = None,
    grace: float = 10.0,
    on_start: Callable[[str, int], None] | None = None,
    job_name: str | None = None,
) -> TrainingJobResult:
    """Run `script` as a SageMaker training job with `instance_count` local instances.

    A failing script gives a Failed result (see the module docstring for its reasons);
    only bad arguments raise (ValueError). `environment` is added to
    every host's environment last, so it can override anything. `on_start(host, pid)` is
    called as each instance starts (the pid is also its process group id). `job_name`
    (default: the job dir's name) is the TRAINING_JOB_NAME; a SageMaker job restarted
    after a spot interruption keeps its name, so pass the same one to resume.
    """
    job_dir, script = Path(job_dir).absolute(), Path(script).absolute()
    hps = _normalise_hyperparameters(hyperparameters)
    job_name = job_dir.name if job_name is None else job_name
    _check_arguments(job_dir, script, channels, instance_count, timeout, job_name)
    hosts = [_Host(f"algo-{i}", job_dir / f"algo-{i}") for i in range(1, instance_count + 1)]
    port = free_port()
    specs = []
    for index, host in enumerate(hosts):
        _lay_out(host, index, hosts, channels, hps)
        env = _host_env(job_name, host, hosts, channels, hps, script, port, environment)
        argv = [sys.executable, str(script.resolve()), *to_cmd_args(hps)]
        specs.append(ProcessSpec(host.name, argv, env, cwd=script.resolve().parent))
    seeded = _seed_checkpoints(checkpoint_dir, hosts)
    started = time.monotonic()
    results = run_processes(specs, timeout=timeout, echo=echo, grace=grace, on_start=on_start)
    wall = time.monotonic() - started
    if checkpoint_dir is not None:
        _sync_back(hosts[0].checkpoint_dir, Path(checkpoint_dir), seeded)
    command = _toolkit_command(script, hps)
    return _result(job_dir, hosts, results, wall, timeout, command)


def _toolkit_command(script: Path, hps: Mapping[str, Any]) -> str:
    """The command the image's toolkit names in ExecuteUserScriptError (this interpreter)."""
    return " ".join([sys.executable, "-m", script.stem, *to_cmd_args(hps)])


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Command-line arguments as the SageMaker training toolkit builds them."""
    args: list[str] = []
    for name in sorted(hyperparameters):
        value = json.loads(json.dumps(hyperparameters[name]))
        args.append(f"--{name}" if len(name) > 1 else f"-{name}")
        args.append(_arg_value(value))
    return args


def _arg_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None else str(value)


def free_port() -> int:
    """A TCP port nobody listens on now, not handed out recently by this process."""
    with _PORT_LOCK:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((TRACKER_HOST, 0))
                port = sock.getsockname()[1]
            if port not in _RECENT_PORTS:
                _RECENT_PORTS.append(port)
                return port
    raise RuntimeError("no free TCP port found")


def package_model(model_dir: Path, tar_path: Path) -> Path:
    """Tar and gzip `model_dir` byte-for-byte reproducibly (sorted, mtime 0, owner 0)."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        tar_path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path, name in _walk_sorted(model_dir):
            _add_to_tar(tar, path, name)
    return tar_path


def _walk_sorted(root: Path) -> Iterator[tuple[Path, str]]:
    entries = [(path, path.relative_to(root).as_posix()) for path in root.rglob("*")]
    yield from sorted(entries, key=lambda entry: entry[1])


def _add_to_tar(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.size = path.stat().st_size
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    with path.open("rb") as handle:
        tar.addfile(info, handle)


# -- arguments ---------------------------------------------------------------------------


def _normalise_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    for name, value in hyperparameters.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"hyperparameter names must be non-empty strings, got {name!r}")
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalars, as tuners hand them out
        try:
            normalised[name] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"hyperparameter {name!r}: value is not JSON: {exc}") from exc
    return normalised


def _check_arguments(
    job_dir: Path,
    script: Path,
    channels: Mapping[str, Channel],
    instance_count: int,
    timeout: float | None,
    job_name: str,
) -> None:
    if not _JOB_NAME.match(job_name):
        raise ValueError(f"job name {job_name!r} must match {_JOB_NAME.pattern}")
    if isinstance(instance_count, bool) or not isinstance(instance_count, int):
        raise ValueError(f"instance_count must be an int, got {instance_count!r}")
    if instance_count < 1:
        raise ValueError(f"instance_count must be at least 1, got {instance_count}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if not script.is_file():
        raise ValueError(f"entry point {script} is not a file")
    if (job_dir / "algo-1").exists() or (job_dir / "output").exists():
        raise ValueError(f"{job_dir} already holds a training job; use a new job dir")
    for name, channel in channels.items():
        _check_channel(name, channel)


def _check_channel(name: str, channel: Channel) -> None:
    if not _CHANNEL_NAME.match(name):
        raise ValueError(f"channel name {name!r} must match {_CHANNEL_NAME.pattern}")
    if channel.distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"channel {name!r}: unknown distribution {channel.distribution!r}, "
            f"expected one of {', '.join(DISTRIBUTIONS)}"
        )
    seen: set[str] = set()
    for file in channel.files:
        path = Path(file)
        if not path.is_file():
            raise ValueError(f"channel {name!r}: {path} is missing or not a file")
        if path.name in seen:
            raise ValueError(f"channel {name!r}: two files are named {path.name!r}")
        seen.add(path.name)


# -- layout and environment --------------------------------------------------------------


def _lay_out(
    host: _Host,
    index: int,
    hosts: list[_Host],
    channels: Mapping[str, Channel],
    hps: Mapping[str, Any],
) -> None:
    for directory in (host.config_dir, host.model_dir, host.output_dir / "data"):
        directory.mkdir(parents=True, exist_ok=True)
    (host.output_dir / "intermediate").mkdir(exist_ok=True)
    host.checkpoint_dir.mkdir(exist_ok=True)
    for name, channel in channels.items():
        target = host.data_dir / name
        target.mkdir(parents=True, exist_ok=True)
        for file in _files_for_host(channel, index, len(hosts)):
            _link(Path(file), target / Path(file).name)
    as_strings = {name: json.dumps(value) for name, value in hps.items()}
    _write_json(host.config_dir / "hyperparameters.json", as_strings)
    _write_json(host.config_dir / "resourceconfig.json", _resource_config(host, hosts))
    _write_json(host.config_dir / "inputdataconfig.json", _input_data_config(channels))


def _files_for_host(channel: Channel, index: int, count: int) -> list[Path]:
    files = sorted((Path(f) for f in channel.files), key=lambda p: p.name)
    if channel.distribution == "FullyReplicated":
        return files
    return [file for position, file in enumerate(files) if position % count == index]


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        os.symlink(source.resolve(), target)


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


def _resource_config(host: _Host, hosts: list[_Host]) -> dict[str, Any]:
    names = [h.name for h in hosts]
    return {
        "current_host": host.name,
        "current_instance_type": "local",
        "current_group_name": "homogeneousCluster",
        "hosts": names,
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": "local", "hosts": names}
        ],
        "network_interface_name": "lo",
    }


def _input_data_config(channels: Mapping[str, Channel]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, channel in channels.items():
        entry = {
            "TrainingInputMode": "File",
            "S3DistributionType": channel.distribution,
            "RecordWrapperType": "None",
        }
        if channel.content_type:
            entry["ContentType"] = channel.content_type
        config[name] = entry
    return config


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _host_env(
    job_name: str,
    host: _Host,
    hosts: list[_Host],
    channels: Mapping[str, Channel],
    hps: Mapping[str, Any],
    script: Path,
    port: int,
    environment: Mapping[str, str] | None,
) -> dict[str, str]:
    env = {**LOCAL_ENV_DEFAULTS}
    env.update({k: v for k, v in os.environ.items() if not k.startswith("SM_")})
    sm = _sm_variables(job_name, host, hosts, channels, hps, script)
    env.update(sm)
    env.update(
        {
            "SM_TRAINING_ENV": json.dumps(_training_env(job_name, sm, hps), sort_keys=True),
            "TRAINING_JOB_NAME": job_name,
            "BOOSTLINE_CHECKPOINT_DIR": str(host.checkpoint_dir),
            "BOOSTLINE_TRACKER_HOST": TRACKER_HOST,
            "BOOSTLINE_TRACKER_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(environment or {})
    return env


def _sm_variables(
    job_name: str,
    host: _Host,
    hosts: list[_Host],
    channels: Mapping[str, Channel],
    hps: Mapping[str, Any],
    script: Path,
) -> dict[str, str]:
    compact = {"sort_keys": True, "separators": (",", ":")}
    sm = {
        "SM_MODEL_DIR": str(host.model_dir),
        "SM_INPUT_DIR": str(host.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(host.config_dir),
        "SM_OUTPUT_DIR": str(host.output_dir),
        "SM_OUTPUT_DATA_DIR": str(host.output_dir / "data"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(host.output_dir / "intermediate"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HOSTS": json.dumps([h.name for h in hosts]),
        "SM_CURRENT_HOST": host.name,
        "SM_CURRENT_INSTANCE_TYPE": "local",
        "SM_NETWORK_INTERFACE_NAME": "lo",
        "SM_NUM_CPUS": str(max(1, _cpu_count() // len(hosts))),
        "SM_NUM_GPUS": "0",
        "SM_HPS": json.dumps(dict(hps), **compact),
        "SM_USER_ARGS": json.dumps(to_cmd_args(hps)),
        "SM_USER_ENTRY_POINT": script.name,
        "SM_MODULE_NAME": script.stem,
        "SM_RESOURCE_CONFIG": json.dumps(_resource_config(host, hosts), **compact),
        "SM_INPUT_DATA_CONFIG": json.dumps(_input_data_config(channels), **compact),
    }
    for name in channels:
        sm[f"SM_CHANNEL_{name.upper()}"] = str(host.data_dir / name)
    return sm


def _training_env(job_name: str, sm: Mapping[str, str], hps: Mapping[str, Any]) -> dict:
    prefix = "SM_CHANNEL_"
    return {
        "job_name": job_name,
        "current_host": sm["SM_CURRENT_HOST"],
        "hosts": json.loads(sm["SM_HOSTS"]),
        "hyperparameters": dict(hps),
        "channel_input_dirs": {
            key[len(prefix) :].lower(): value for key, value in sm.items() if key.startswith(prefix)
        },
        "input_data_config": json.loads(sm["SM_INPUT_DATA_CONFIG"]),
        "resource_config": json.loads(sm["SM_RESOURCE_CONFIG"]),
        "model_dir": sm["SM_MODEL_DIR"],
        "output_dir": sm["SM_OUTPUT_DIR"],
        "output_data_dir": sm["SM_OUTPUT_DATA_DIR"],
        "num_cpus": int(sm["SM_NUM_CPUS"]),
        "num_gpus": 0,
        "user_entry_point": sm["SM_USER_ENTRY_POINT"],
        "module_name": sm["SM_MODULE_NAME"],
    }


# -- checkpoints ---------------------------------------------------------------------------


def _visible_files(root: Path) -> dict[str, Path]:
    files = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = path
    return files


def _seed_checkpoints(checkpoint_dir: Path | None, hosts: list[_Host]) -> set[str]:
    if checkpoint_dir is None:
        return set()
    shared = Path(checkpoint_dir)
    shared.mkdir(parents=True, exist_ok=True)
    files = _visible_files(shared)
    for host in hosts:
        for relative, source in files.items():
            target = host.checkpoint_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return set(files)


def _sync_back(local: Path, shared: Path, seeded: set[str]) -> None:
    """Make `shared` hold what algo-1's checkpoint dir holds now."""
    current = _visible_files(local)
    for relative, source in current.items():
        target = shared / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for relative in seeded - set(current):
        (shared / relative).unlink(missing_ok=True)


# -- result --------------------------------------------------------------------------------


def _read_failure(host: _Host) -> str | None:
    path = host.output_dir / "failure"
    if not path.is_file():
        return None
    text = path.read_text(errors="replace").strip()
    return text or None


_TOOLKIT_ERROR = "ExecuteUserScriptError:"


def _execute_user_script_error(command: str) -> str:
    # sagemaker-containers' _CalledProcessError.__str__ (capture_error=False: no output)
    return f'{_TOOLKIT_ERROR}\nCommand "{command}"'


def _result(
    job_dir: Path,
    hosts: list[_Host],
    results: list[ProcessResult],
    wall: float,
    timeout: float | None,
    command: str,
) -> TrainingJobResult:
    for host, res in zip(hosts, results, strict=True):
        written = _read_failure(host) or ""
        if res.returncode != 0 and not res.timed_out and not written.startswith(_TOOLKIT_ERROR):
            # What the image's toolkit does after the script exits non-zero (unless the
            # script ran under the real toolkit, which has done it already).
            (host.output_dir / "failure").write_text(_execute_user_script_error(command))
    outputs = [_host_output(host, res) for host, res in zip(hosts, results, strict=True)]
    timed_out = any(res.timed_out for res in results)
    failed = timed_out or any(res.returncode != 0 for res in results)
    model_tar = None
    if not failed:
        model_tar = package_model(hosts[0].model_dir, job_dir / "output" / "model.tar.gz")
    reasons = _failure_reasons(outputs, results, timeout) if failed else (None, None, None)
    return TrainingJobResult(
        status="Failed" if failed else "Completed",
        failure_reason=reasons[0],
        job_dir=job_dir,
        model_dir=hosts[0].model_dir,
        model_tar=model_tar,
        hosts=outputs,
        log=results[0].output,
        wall_seconds=wall,
        timed_out=timed_out,
        sagemaker_failure_reason=reasons[1],
        script_failure_reason=reasons[2],
    )


def _host_output(host: _Host, result: ProcessResult) -> HostOutput:
    return HostOutput(
        host=host.name,
        returncode=result.returncode,
        root=host.root,
        model_dir=host.model_dir,
        output_dir=host.output_dir,
        output_data_dir=host.output_dir / "data",
        checkpoint_dir=host.checkpoint_dir,
        log=result.output,
        failure=_read_failure(host),
        script_failure=read_failure_line(result.output),
        peak_rss_kb=result.peak_rss_kb,
    )


_LOST_PEER = re.compile(
    r"collective|comm\.cc|socket\.h|Connection reset|Connection refused|Broken pipe"
)


def _failure_reasons(
    outputs: list[HostOutput], results: list[ProcessResult], timeout: float | None
) -> tuple[str, str, str | None]:
    """(for a person, DescribeTrainingJob's FailureReason, the script's own reason)."""
    if any(res.timed_out for res in results):
        reason = f"MaxRuntimeExceeded: the job ran longer than {timeout:g} s and was stopped."
        return reason, reason, None
    # The cause is on the host that failed of its own accord; its peers only report a
    # lost connection, and may report it first, so those reasons come last.
    by_time = sorted(
        range(len(results)),
        key=lambda i: (
            results[i].returncode == 0,
            bool(outputs[i].script_failure and _LOST_PEER.search(outputs[i].script_failure)),
            results[i].elapsed,
            i,
        ),
    )
    failed = outputs[by_time[0]]
    sagemaker = f"AlgorithmError: {failed.failure or 'the script failed'}"[:FAILURE_REASON_LIMIT]
    on_aws = f"(FailureReason on AWS: {' '.join(sagemaker.split())})"
    for i in by_time:
        if outputs[i].script_failure:
            return f"{outputs[i].script_failure} {on_aws}", sagemaker, outputs[i].script_failure
    first = results[by_time[0]]
    tail = " | ".join(line for line in first.output.splitlines()[-5:] if line.strip())
    ended = f"{first.name} exited with {_describe_exit(first.returncode)}"
    return ended + (f"; last output: {tail}" if tail else "") + f" {on_aws}", sagemaker, None


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"
