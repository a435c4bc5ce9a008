"""processing_job.py: local processing jobs on one and several instances, and
preprocess.py's two passes run through them as two jobs over ShardedByS3Key input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from boostline.local.processing_job import ProcessingInput, run_processing_job
from training_scripts import preprocess

PREPROCESS = Path(preprocess.__file__)

# Prints what the host sees, then writes it to its output.
PROBE = """
import json, os, sys
from pathlib import Path
config = json.loads(Path(os.environ["BOOSTLINE_RESOURCE_CONFIG"]).read_text())
data, out = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
seen = {"host": config["current_host"], "hosts": config["hosts"], "files": files,
        "sm": sorted(k for k in os.environ if k.startswith("SM_"))}
(out / f"seen-{config['current_host']}.json").write_text(json.dumps(seen))
if os.environ.get("FAIL_ON") == config["current_host"]:
    (Path(os.environ["BOOSTLINE_OUTPUT_DIR"]) / "message").parent.mkdir(exist_ok=True)
    (Path(os.environ["BOOSTLINE_OUTPUT_DIR"]) / "message").write_text("no good\\n")
    sys.exit(3)
if os.environ.get("SAME_NAME"):
    (out / "same.txt").write_text(config["current_host"])
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    return path


def _objects(root: Path, count: int) -> Path:
    for i in range(count):
        (root / f"part-{i:02d}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"part-{i:02d}.csv").write_text(f"{i}\n")
    return root


def _probe_job(tmp_path: Path, probe: Path, count: int, **kw):
    data = _objects(tmp_path / "raw", 5)
    (tmp_path / "schema").mkdir(exist_ok=True)
    (tmp_path / "schema" / "s.yaml").write_text("x")
    return run_processing_job(
        tmp_path / "job",
        probe,
        inputs={
            "data": ProcessingInput(data, "ShardedByS3Key"),
            "schema": tmp_path / "schema",
        },
        outputs={"out": tmp_path / "dest"},
        arguments=lambda i, o: [str(i["data"]), str(o["out"])],
        instance_count=count,
        timeout=60,
        **kw,
    )


def test_sharded_input_is_dealt_by_key_and_replicated_input_to_all(
    tmp_path: Path, probe: Path
) -> None:
    result = _probe_job(tmp_path, probe, 2)
    assert result.status == "Completed", result.failure_reason
    seen = {p.name: json.loads(p.read_text()) for p in sorted((tmp_path / "dest").glob("seen-*"))}
    assert seen["seen-algo-1.json"]["files"] == ["part-00.csv", "part-02.csv", "part-04.csv"]
    assert seen["seen-algo-2.json"]["files"] == ["part-01.csv", "part-03.csv"]
    assert {s["host"] for s in seen.values()} == {"algo-1", "algo-2"}
    assert all(s["hosts"] == ["algo-1", "algo-2"] for s in seen.values())
    assert all(s["sm"] == [] for s in seen.values())  # processing gets no SM_* variables
    assert [h.host for h in result.hosts] == ["algo-1", "algo-2"]
    for host in result.hosts:
        assert (host.root / "processing" / "input" / "schema" / "s.yaml").is_file()
        assert host.root == tmp_path / "job" / host.host


def test_one_instance_keeps_the_job_dir_as_its_root(tmp_path: Path, probe: Path) -> None:
    result = _probe_job(tmp_path, probe, 1)
    assert result.status == "Completed", result.failure_reason
    seen = json.loads((tmp_path / "dest" / "seen-algo-1.json").read_text())
    assert len(seen["files"]) == 5 and seen["hosts"] == ["algo-1"]
    assert (tmp_path / "job" / "config" / "resourceconfig.json").is_file()


def test_a_host_beyond_the_objects_gets_an_empty_input(tmp_path: Path, probe: Path) -> None:
    result = _probe_job(tmp_path, probe, 6)
    assert result.status == "Completed", result.failure_reason
    assert json.loads((tmp_path / "dest" / "seen-algo-6.json").read_text())["files"] == []


def test_a_failing_host_fails_the_job_with_its_message(tmp_path: Path, probe: Path) -> None:
    result = _probe_job(tmp_path, probe, 2, env={"FAIL_ON": "algo-2"})
    assert result.status == "Failed"
    assert result.failure_reason == "algo-2: no good"
    assert not (tmp_path / "dest").exists()  # nothing is uploaded from a failed job


def test_hosts_writing_one_file_differently_fail_the_job(tmp_path: Path, probe: Path) -> None:
    result = _probe_job(tmp_path, probe, 2, env={"SAME_NAME": "1"})
    assert result.status == "Failed"
    assert "algo-1 and algo-2 both wrote same.txt" in (result.failure_reason or "")


def test_bad_arguments_raise(tmp_path: Path, probe: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _probe_job(tmp_path, probe, 0)
    with pytest.raises(ValueError, match="unknown distribution"):
        run_processing_job(
            tmp_path / "j",
            probe,
            inputs={"d": ProcessingInput(tmp_path, "Replicated")},  # type: ignore[arg-type]
            outputs={},
            arguments=lambda i, o: [],
        )
    with pytest.raises(ValueError, match="does not exist"):
        run_processing_job(
            tmp_path / "j",
            probe,
            inputs={"d": tmp_path / "no"},
            outputs={},
            arguments=lambda i, o: [],
        )


def _preprocess_jobs(tmp_path: Path, raw: Path, count: int, tag: str) -> list:
    env = {"BOOSTLINE_PII_SALT": "salt"}
    schema = ProcessingInput(SCHEMA_PATH)
    fit = run_processing_job(
        tmp_path / f"{tag}-fit",
        PREPROCESS,
        inputs={"data": ProcessingInput(raw, "ShardedByS3Key"), "schema": schema},
        outputs={"fit": tmp_path / tag / "fit"},
        arguments=lambda i, o: [
            "--pass",
            "fit",
            "--input",
            str(i["data"]),
            "--schema",
            str(i["schema"]),
            "--output-dir",
            str(o["fit"].parent),
        ],  # fmt: skip
        env=env,
        instance_count=count,
        timeout=300,
    )
    if fit.status != "Completed":
        return [fit, None]
    names = ("train", "validation", "test", "manifest", "report")
    encode = run_processing_job(
        tmp_path / f"{tag}-encode",
        PREPROCESS,
        inputs={
            "data": ProcessingInput(raw, "ShardedByS3Key"),
            "schema": schema,
            "fit": ProcessingInput(tmp_path / tag / "fit"),
        },
        outputs={name: tmp_path / tag / name for name in names},
        arguments=lambda i, o: [
            "--pass",
            "encode",
            "--input",
            str(i["data"]),
            "--schema",
            str(i["schema"]),
            "--fit-input",
            str(i["fit"]),
            "--output-dir",
            str(o["train"].parent),
        ],  # fmt: skip
        env=env,
        instance_count=count,
        timeout=300,
    )
    return [fit, encode]


def _lines(folder: Path) -> list[str]:
    out = []
    for path in sorted(folder.rglob("*.csv")):
        lines = path.read_text().splitlines()
        out.extend(lines[1:] if path.name.startswith(("test_meta", "rejected")) else lines)
    return sorted(out)


def test_preprocess_on_two_instances_matches_one(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_to_dir(4000, raw, seed=3, shards=3)
    jobs = {n: _preprocess_jobs(tmp_path, raw, n, f"n{n}") for n in (1, 2)}
    for n, results in jobs.items():
        for result in results:
            assert result.status == "Completed", (n, result.failure_reason, result.log)
    one, two = tmp_path / "n1", tmp_path / "n2"
    assert sorted(p.name for p in (two / "fit").iterdir()) == ["fit-algo-1.json", "fit-algo-2.json"]
    assert sorted(p.name for p in (one / "test").iterdir()) == ["test.csv", "test_meta.csv"]
    assert sorted(p.name for p in (two / "test").iterdir()) == [
        "test-algo-1.csv", "test-algo-2.csv", "test_meta-algo-1.csv", "test_meta-algo-2.csv",
    ]  # fmt: skip
    for name in ("train", "validation", "test"):
        assert _lines(one / name) == _lines(two / name), name
    manifest = "manifest/feature_manifest.json"
    assert (one / manifest).read_text() == (two / manifest).read_text()
    reports = [
        json.loads((d / "report" / "preprocess_report.json").read_text()) for d in (one, two)
    ]
    assert reports[0]["split_rows"] == reports[1]["split_rows"]
    assert reports[1]["rows_read_per_host"].keys() == {"algo-1", "algo-2"}


def test_preprocess_refuses_more_instances_than_raw_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_to_dir(300, raw, seed=1, shards=2)
    fit, _ = _preprocess_jobs(tmp_path, raw, 3, "n3")
    assert fit.status == "Failed"
    assert "algo-3: preprocessing failed: host algo-3 of 3 got no raw CSV file" in (
        fit.failure_reason or ""
    )
    assert "at most as many instances as there are raw files" in (fit.failure_reason or "")


def test_the_interpreter_can_wrap_the_script(tmp_path: Path, probe: Path) -> None:
    wrapper = tmp_path / "wrap.py"
    wrapper.write_text(
        "import runpy, sys\n"
        "open(sys.argv[1] + '.wrapped', 'w').write('yes')\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    result = _probe_job(tmp_path, probe, 1, interpreter=[sys.executable, str(wrapper)])
    assert result.status == "Completed", result.failure_reason
    assert (tmp_path / "probe.py.wrapped").read_text() == "yes"
