"""The local training job and process-group runner, with train.py on 1-3 local hosts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import xgboost as xgb

from boostline.local.processes import ProcessSpec, run_processes
from boostline.local.training_job import (
    Channel,
    free_port,
    package_model,
    run_training_job,
    to_cmd_args,
)
from training_scripts import train

TRAIN_PY = Path(train.__file__).resolve()
FEATURES = 8
JOB_TIMEOUT = 120.0


def write_csv(path: Path, rows: int, *, seed: int = 0, shift: float = -0.5) -> tuple[int, int]:
    """Learnable logistic data, label first, some empty fields; returns (negatives, positives)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    logits = x @ np.linspace(-1.5, 1.5, FEATURES) + shift
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    mask = rng.random(x.shape) < 0.05
    columns = {"label": pa.array(y)}
    columns.update({f"f{i}": pa.array(x[:, i], mask=mask[:, i]) for i in range(FEATURES)})
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False)
    pacsv.write_csv(pa.table(columns), path, write_options=options)
    return int((y == 0).sum()), int(y.sum())


def write_manifest(path: Path) -> list[str]:
    names = [f"feature_{i}" for i in range(FEATURES)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"columns": [{"name": name} for name in names]}))
    return names


def digests(result) -> list[str]:
    return [(h.output_data_dir / train.DIGEST_FILE).read_text().strip() for h in result.hosts]


def metrics(host) -> dict:
    return json.loads((host.output_data_dir / train.METRICS_FILE).read_text())


# -- train.py on several local hosts ------------------------------------------------------------


def test_two_hosts_on_two_shards_end_with_identical_models(tmp_path: Path) -> None:
    for i in (0, 1):
        write_csv(tmp_path / f"train-{i}.csv", 1500, seed=i, shift=i - 1.0)
    write_csv(tmp_path / "validation.csv", 800, seed=7)
    names = write_manifest(tmp_path / "manifest" / train.FEATURE_MANIFEST)
    channels = {
        "train": Channel([tmp_path / "train-1.csv", tmp_path / "train-0.csv"], "ShardedByS3Key"),
        "validation": Channel([tmp_path / "validation.csv"]),
        "manifest": Channel([tmp_path / "manifest" / train.FEATURE_MANIFEST]),
    }
    hps = {"num_round": 30, "max_depth": 3, "eta": 0.3, "early_stopping_rounds": 5}

    result = run_training_job(
        tmp_path / "job", TRAIN_PY, hps, channels, instance_count=2, timeout=JOB_TIMEOUT
    )

    assert result.status == "Completed", result.failure_reason
    first, second = digests(result)
    assert first == second
    assert [(h.host, h.returncode) for h in result.hosts] == [("algo-1", 0), ("algo-2", 0)]
    assert (result.model_dir / train.MODEL_FILE).is_file()
    assert not any(result.hosts[1].model_dir.iterdir())
    # ShardedByS3Key: sorted object i goes to host i % 2
    assert [p.name for p in (result.hosts[0].root / "input/data/train").iterdir()] == [
        "train-0.csv"
    ]
    stats = [metrics(host) for host in result.hosts]
    assert [s["rank"] for s in stats] == [0, 1]
    assert [s["rows"] for s in stats] == [1500, 1500]
    assert stats[0]["scale_pos_weight"] == stats[1]["scale_pos_weight"] == 1.0

    raw = (result.model_dir / train.MODEL_FILE).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == first
    assert xgb.Booster(model_file=bytearray(raw)).feature_names == names
    with tarfile.open(result.model_tar) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "boostline",
        "boostline/calibration.json",
        "boostline/feature_manifest.json",
        "xgboost-model",
    ]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    again = package_model(result.model_dir, tmp_path / "again.tar.gz")
    assert again.read_bytes() == result.model_tar.read_bytes()
    assert "validation-auc" in result.log and "[algo-1]" not in result.log


def test_two_hosts_cross_validate_together_on_small_data(tmp_path: Path) -> None:
    for i in (0, 1):
        write_csv(tmp_path / f"train-{i}.csv", 400, seed=i, shift=i - 1.0)
    write_csv(tmp_path / "validation.csv", 201, seed=7)  # replicated: each host takes half
    channels = {
        "train": Channel([tmp_path / "train-0.csv", tmp_path / "train-1.csv"], "ShardedByS3Key"),
        "validation": Channel([tmp_path / "validation.csv"]),
    }
    hps = {"num_round": 100, "eta": 0.3, "early_stopping_rounds": 5, "cv_max_rows": 5000}

    result = run_training_job(
        tmp_path / "job", TRAIN_PY, hps, channels, instance_count=2, timeout=JOB_TIMEOUT
    )

    assert result.status == "Completed", result.failure_reason
    first, second = digests(result)
    assert first == second
    stats = [metrics(host) for host in result.hosts]
    cv = [s["cross_validation"] for s in stats]
    assert cv[0] == cv[1] and cv[0]["rows_all_hosts"] == 1001 and cv[0]["folds"] == 5
    # the final model: every row of train and validation once, for the rounds CV chose
    assert [s["rows"] for s in stats] == [400, 400]
    booster = xgb.Booster(model_file=str(result.model_dir / train.MODEL_FILE))
    assert booster.num_boosted_rounds() == cv[0]["rounds"] < 100
    assert cv[0]["score"] > 0.75


def test_a_host_without_data_takes_part_and_nothing_hangs(tmp_path: Path) -> None:
    for i in (0, 1):
        write_csv(tmp_path / f"train-{i}.csv", 1000, seed=i)
    write_manifest(tmp_path / "manifest.json")
    manifest = tmp_path / "m" / train.FEATURE_MANIFEST
    manifest.parent.mkdir()
    manifest.write_bytes((tmp_path / "manifest.json").read_bytes())
    channels = {
        "train": Channel([tmp_path / "train-0.csv", tmp_path / "train-1.csv"], "ShardedByS3Key"),
        "manifest": Channel([manifest]),
    }
    started = time.monotonic()

    result = run_training_job(
        tmp_path / "job",
        TRAIN_PY,
        {"num_round": 15, "max_depth": 3},
        channels,
        instance_count=3,
        timeout=JOB_TIMEOUT,
    )

    assert result.status == "Completed", result.failure_reason
    assert time.monotonic() - started < JOB_TIMEOUT
    assert not any((result.hosts[2].root / "input/data/train").iterdir())
    assert [metrics(host)["rows"] for host in result.hosts] == [1000, 1000, 0]
    # without care, the empty host ends with an unnamed, so different, booster
    assert len(set(digests(result))) == 1


def test_a_killed_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", 20000)
    channels = {"train": Channel([tmp_path / "train.csv"])}
    hps = {"num_round": 300, "max_depth": 6, "eta": 0.05, "checkpoint_interval": 5}
    shared = tmp_path / "s3-checkpoints"
    pids: dict[str, int] = {}
    killed = threading.Event()

    def kill_at_first_checkpoint(line: str) -> None:
        if "checkpoint saved" in line and not killed.is_set():
            killed.set()
            os.killpg(pids["algo-1"], signal.SIGKILL)

    first = run_training_job(
        tmp_path / "job-1",
        TRAIN_PY,
        hps,
        channels,
        checkpoint_dir=shared,
        timeout=JOB_TIMEOUT,
        echo=kill_at_first_checkpoint,
        on_start=pids.__setitem__,
        job_name="loans-train",
    )

    assert killed.is_set()
    assert first.status == "Failed" and "algo-1 exited with signal SIGKILL" in first.failure_reason
    assert first.script_failure_reason is None
    assert first.sagemaker_failure_reason.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert first.model_tar is None
    assert list((shared / "loans-train").glob("xgboost-checkpoint-*.ubj"))

    # a spot restart: the same job (name), new instances
    second = run_training_job(
        tmp_path / "job-2",
        TRAIN_PY,
        hps,
        channels,
        checkpoint_dir=shared,
        timeout=JOB_TIMEOUT,
        job_name="loans-train",
    )

    assert second.status == "Completed", second.failure_reason
    resumed = re.search(r"resuming from checkpoint at round (\d+)", second.log)
    assert resumed is not None
    assert 0 < int(resumed.group(1)) < 300 and int(resumed.group(1)) % 5 == 0
    booster = xgb.Booster(model_file=str(second.model_dir / train.MODEL_FILE))
    assert booster.num_boosted_rounds() == 300
    assert metrics(second.hosts[0])["resumed_from_round"] == int(resumed.group(1))
    assert len(list((shared / "loans-train").glob("xgboost-checkpoint-*.ubj"))) == 2


def test_jobs_sharing_a_checkpoint_location_never_resume_each_other(tmp_path: Path) -> None:
    """Tuning trials get one CheckpointConfig.S3Uri; each job keeps to its own folder."""
    write_csv(tmp_path / "train.csv", 400)
    channels = {"train": Channel([tmp_path / "train.csv"])}
    hps = {"num_round": 8, "max_depth": 3, "checkpoint_interval": 4}
    shared = tmp_path / "s3-checkpoints"
    for trial in ("trial-1", "trial-2"):
        result = run_training_job(
            tmp_path / trial, TRAIN_PY, hps, channels, checkpoint_dir=shared, timeout=JOB_TIMEOUT
        )
        assert result.status == "Completed", result.failure_reason
        assert "resuming" not in result.log
        assert metrics(result.hosts[0])["resumed_from_round"] == 0
    assert sorted(p.relative_to(shared).as_posix() for p in shared.rglob("*.ubj")) == [
        "trial-1/xgboost-checkpoint-00000004.ubj",
        "trial-1/xgboost-checkpoint-00000008.ubj",
        "trial-2/xgboost-checkpoint-00000004.ubj",
        "trial-2/xgboost-checkpoint-00000008.ubj",
    ]


def test_rank_0_broadcasts_its_checkpoint_to_hosts_without_one(tmp_path: Path) -> None:
    # Only algo-1 sees a checkpoint dir with checkpoints in it; algo-2's stays empty.
    def host_specs(num_round: int) -> list[ProcessSpec]:
        port = str(free_port())
        specs = []
        for index, host in enumerate(("algo-1", "algo-2")):
            root = tmp_path / host
            env = {
                **os.environ,
                "SM_HOSTS": '["algo-1", "algo-2"]',
                "SM_CURRENT_HOST": host,
                "SM_CHANNEL_TRAIN": str(root / "train"),
                "SM_MODEL_DIR": str(root / "model"),
                "SM_OUTPUT_DIR": str(root / "output"),
                "SM_NUM_CPUS": "1",
                "BOOSTLINE_CHECKPOINT_DIR": str(root / "checkpoints"),
                "BOOSTLINE_TRACKER_HOST": "127.0.0.1",
                "BOOSTLINE_TRACKER_PORT": port,
            }
            if not (root / "train").exists():
                write_csv(root / "train" / "part.csv", 800, seed=index)
            argv = [sys.executable, str(TRAIN_PY), "--num_round", str(num_round)]
            specs.append(ProcessSpec(host, [*argv, "--checkpoint_interval", "5"], env))
        return specs

    first = run_processes(host_specs(10), timeout=JOB_TIMEOUT)
    assert [r.returncode for r in first] == [0, 0], first[0].output + first[1].output
    assert (tmp_path / "algo-2" / "checkpoints").exists() is False

    second = run_processes(host_specs(16), timeout=JOB_TIMEOUT)

    assert [r.returncode for r in second] == [0, 0], second[0].output + second[1].output
    for result in second:
        assert "resuming from checkpoint at round 10" in result.output
    digest_files = [
        tmp_path / h / "output" / "data" / train.DIGEST_FILE for h in ("algo-1", "algo-2")
    ]
    assert len({path.read_text() for path in digest_files}) == 1
    model = xgb.Booster(model_file=str(tmp_path / "algo-1" / "model" / train.MODEL_FILE))
    assert model.num_boosted_rounds() == 16


def test_a_failed_job_reports_what_aws_shows_and_the_scripts_reason(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", 100)
    result = run_training_job(
        tmp_path / "job",
        TRAIN_PY,
        {"num_round": 5, "eta": 0},
        {"train": Channel([tmp_path / "train.csv"])},
        timeout=JOB_TIMEOUT,
    )
    assert result.status == "Failed" and result.model_tar is None
    assert result.hosts[0].returncode != 0
    # the image's toolkit overwrites output/failure, and FailureReason shows that
    command = f"{sys.executable} -m train --eta 0 --num_round 5"
    toolkit = f'ExecuteUserScriptError:\nCommand "{command}"'
    assert (result.hosts[0].output_dir / "failure").read_text() == toolkit
    assert result.hosts[0].failure == toolkit
    assert result.sagemaker_failure_reason == f"AlgorithmError: {toolkit}"
    # the script's reason comes from its log line, as on AWS from CloudWatch Logs
    reason = "hyperparameter 'eta': must be a number in (0, 1], got '0'"
    assert f"Boostline failure: {reason}" in result.log
    assert result.script_failure_reason == result.hosts[0].script_failure == reason
    on_aws = f'AlgorithmError: ExecuteUserScriptError: Command "{command}"'
    assert result.failure_reason == f"{reason} (FailureReason on AWS: {on_aws})"


def test_a_script_without_a_failure_line_is_reported_by_its_exit(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('loading', flush=True)\nsys.exit(3)\n")
    result = run_training_job(tmp_path / "job", script, {"rows": 1}, {}, timeout=JOB_TIMEOUT)
    assert result.status == "Failed" and result.script_failure_reason is None
    assert result.sagemaker_failure_reason == (
        f'AlgorithmError: ExecuteUserScriptError:\nCommand "{sys.executable} -m crash --rows 1"'
    )
    assert result.failure_reason.startswith("algo-1 exited with code 3; last output: loading (")


def test_bad_data_on_one_host_fails_the_job_with_that_hosts_reason(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", 500)
    (tmp_path / "b.csv").write_text("1,2,3\n")
    started = time.monotonic()

    result = run_training_job(
        tmp_path / "job",
        TRAIN_PY,
        {"num_round": 50},
        {"train": Channel([tmp_path / "a.csv", tmp_path / "b.csv"], "ShardedByS3Key")},
        instance_count=2,
        timeout=JOB_TIMEOUT,
        grace=5.0,
    )

    assert result.status == "Failed"
    assert result.script_failure_reason.startswith(
        "train files differ in column count between hosts: 3 and 9"
    )
    assert result.failure_reason.startswith(result.script_failure_reason)
    assert "ExecuteUserScriptError" in result.sagemaker_failure_reason
    assert time.monotonic() - started < 30


# -- the job's layout and environment -----------------------------------------------------------

PROBE = """
import json, os, sys
from pathlib import Path
env = {
    k: v for k, v in os.environ.items() if k.startswith(("SM_", "BOOSTLINE_", "OMP_", "TRAINING_"))
}
channels = {}
for name in json.loads(env["SM_CHANNELS"]):
    channels[name] = sorted(p.name for p in Path(env["SM_CHANNEL_" + name.upper()]).iterdir())
out = {"argv": sys.argv[1:], "env": env, "channels": channels, "cwd": os.getcwd()}
Path(env["SM_OUTPUT_DATA_DIR"], "probe.json").write_text(json.dumps(out))
Path(env["SM_MODEL_DIR"], "model.bin").write_text(env["SM_CURRENT_HOST"])
"""


def test_hosts_get_the_sagemaker_layout_and_environment(tmp_path: Path) -> None:
    script = tmp_path / "code" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    files = []
    for i in range(5):
        files.append(tmp_path / "data" / f"part-{i}.csv")
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_text(f"{i}\n")
    hps = {"eta": 0.1, "max_depth": 6, "objective": "binary:logistic", "flag": True}
    channels = {
        "train": Channel(files[::-1], "ShardedByS3Key"),
        "validation": Channel(files[:1], "FullyReplicated", content_type="text/csv"),
    }

    result = run_training_job(
        tmp_path / "job", script, hps, channels, instance_count=2, environment={"EXTRA": "1"}
    )

    assert result.status == "Completed", result.failure_reason
    probes = [json.loads((h.output_data_dir / "probe.json").read_text()) for h in result.hosts]
    assert probes[0]["argv"] == [
        "--eta", "0.1", "--flag", "True", "--max_depth", "6", "--objective", "binary:logistic",
    ]  # fmt: skip
    assert probes[0]["channels"]["train"] == ["part-0.csv", "part-2.csv", "part-4.csv"]
    assert probes[1]["channels"]["train"] == ["part-1.csv", "part-3.csv"]
    assert probes[1]["channels"]["validation"] == ["part-0.csv"]
    assert probes[0]["cwd"] == str(script.parent)
    env = probes[1]["env"]
    root = tmp_path / "job" / "algo-2"
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_OUTPUT_DATA_DIR"] == str(root / "output" / "data")
    assert env["SM_OUTPUT_DIR"] == str(root / "output")
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert env["SM_CURRENT_HOST"] == "algo-2" and env["SM_NUM_GPUS"] == "0"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert json.loads(env["SM_HPS"]) == hps
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(env["SM_TRAINING_ENV"])["current_host"] == "algo-2"
    assert env["BOOSTLINE_CHECKPOINT_DIR"] == str(root / "checkpoints")
    assert env["TRAINING_JOB_NAME"] == "job"
    assert env["BOOSTLINE_TRACKER_HOST"] == "127.0.0.1"
    assert env["BOOSTLINE_TRACKER_PORT"] == probes[0]["env"]["BOOSTLINE_TRACKER_PORT"]
    config = root / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["eta"] == "0.1"
    resource = json.loads((config / "resourceconfig.json").read_text())
    assert resource["current_host"] == "algo-2" and resource["network_interface_name"] == "lo"
    data_config = json.loads((config / "inputdataconfig.json").read_text())
    assert data_config["train"]["S3DistributionType"] == "ShardedByS3Key"
    assert data_config["validation"]["ContentType"] == "text/csv"
    with tarfile.open(result.model_tar) as tar:
        assert tar.getnames() == ["model.bin"]
        assert tar.extractfile("model.bin").read() == b"algo-1"


def test_each_job_gets_its_own_tracker_port(tmp_path: Path) -> None:
    script = tmp_path / "port.py"
    script.write_text(
        "import os, pathlib\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], 'port')"
        ".write_text(os.environ['BOOSTLINE_TRACKER_PORT'])\n"
    )
    ports = set()
    for i in range(3):
        result = run_training_job(tmp_path / f"job-{i}", script, {}, {})
        ports.add((result.model_dir / "port").read_text())
    assert len(ports) == 3


def test_sagemaker_command_line_arguments() -> None:
    args = to_cmd_args({"b": 1, "eta": 0.25, "name": "x y", "none": None, "map": {"k": 2}})
    assert args == ["-b", "1", "--eta", "0.25", "--map", "k=2", "--name", "x y", "--none", ""]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance_count": 0}, "instance_count must be at least 1"),
        ({"channels": {"train": Channel([Path("/nonexistent.csv")])}}, "missing or not a file"),
        ({"channels": {"train": Channel([], "Replicated")}}, "unknown distribution"),
        ({"channels": {"bad name": Channel([])}}, "channel name"),
        ({"script": Path("/nonexistent/train.py")}, "is not a file"),
        ({"hyperparameters": {"x": object()}}, "not JSON"),
        ({"job_name": "../up"}, "job name '../up' must match"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"script": TRAIN_PY, "hyperparameters": {}, "channels": {}, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_training_job(tmp_path / "job", **arguments)


# -- the process-group runner -------------------------------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    """True for a live process; a zombie (dead, not yet reaped by its new parent) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_output_is_prefixed_and_results_come_in_spec_order() -> None:
    lines: list[str] = []
    specs = [
        ProcessSpec("slow", python("import time; time.sleep(0.5); print('one')"), dict(os.environ)),
        ProcessSpec("fast", python("import sys; print('two'); sys.stderr.write('err\\n')"), {}),
    ]
    results = run_processes(specs, echo=lines.append)
    assert [(r.name, r.returncode) for r in results] == [("slow", 0), ("fast", 0)]
    assert results[0].output == "one\n"
    assert sorted(results[1].output.splitlines()) == ["err", "two"]
    assert "[slow] one" in lines and "[fast] two" in lines


def test_a_failing_peer_gets_the_others_stopped_after_the_grace() -> None:
    specs = [
        ProcessSpec("fails", python("import sys, time; time.sleep(0.3); sys.exit(3)"), {}),
        ProcessSpec("waits", python("import time; time.sleep(60)"), {}),
        ProcessSpec(
            "stubborn",
            python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)"),
            {},
        ),
    ]  # fmt: skip
    started = time.monotonic()
    results = run_processes(specs, grace=1.0)
    assert time.monotonic() - started < 15
    assert [r.returncode for r in results] == [3, -signal.SIGTERM, -signal.SIGKILL]
    assert results[0].elapsed < results[1].elapsed
    assert not any(r.timed_out for r in results)


def test_a_timeout_kills_everything() -> None:
    specs = [ProcessSpec("sleeps", python("import time; time.sleep(60)"), {})]
    started = time.monotonic()
    (result,) = run_processes(specs, timeout=1.0)
    assert time.monotonic() - started < 10
    assert result.timed_out and result.returncode == -signal.SIGKILL


def test_keyboard_interrupt_leaves_no_process_alive() -> None:
    # each child starts a grandchild in its process group and prints its pid
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    specs = [ProcessSpec(f"p{i}", python(code), dict(os.environ)) for i in range(2)]
    children: list[int] = []
    grandchildren: list[int] = []
    lock = threading.Lock()

    def interrupt_when_all_started(line: str) -> None:
        with lock:
            grandchildren.append(int(line.split()[-1]))
            if len(grandchildren) == len(specs):
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_processes(
            specs,
            echo=interrupt_when_all_started,
            on_start=lambda _name, pid: children.append(pid),
            timeout=30,
        )

    assert len(children) == 2 and len(grandchildren) == 2
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children + grandchildren) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children + grandchildren if alive(pid)]
