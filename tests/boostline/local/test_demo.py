"""The demo end to end on tiny data: every stage's outcome, through the real pieces."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boostline.config import load_config
from boostline.local.demo import DemoOptions, print_summary, run_demo
from boostline.progress import Progress
from boostline.registry import Registry
from boostline.serving.endpoints import EndpointManager

pytestmark = pytest.mark.slow

# The shared demo run (conftest.demo) uses these options.
OPTIONS = dict(rows=4000, stream=400, drift=1.5, max_trials=2, instance_count=2)


def test_a_model_is_registered_and_a_second_one_is_live(demo) -> None:
    registry = Registry(demo.workdir)
    versions = registry.versions()
    pipeline = [e["message"] for e in demo.timeline if e["stage"] == "pipeline"]
    assert [v.version for v in versions] == [1, 2], pipeline
    assert all(v.status == "Approved" for v in versions)
    assert versions[0].data["CustomerMetadataProperties"]["trigger_reason"] == "schedule"
    assert demo.live_version == 2
    live = [e["version"] for e in demo.timeline if e["message"].endswith("took the traffic)")]
    assert live == [1, 2]  # each went live blue/green, in order


def test_captures_are_in_the_sagemaker_format(demo) -> None:
    files = sorted((demo.workdir / "buckets" / "capture").rglob("*.jsonl"))
    assert files
    # Where the rendered serving stack's DataCaptureConfig sends it, as on AWS:
    # s3://<capture bucket>/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/
    prefix, endpoint, variant = files[0].relative_to(demo.workdir / "buckets" / "capture").parts[:3]
    assert (prefix, endpoint, variant) == ("capture", "boostline-dev-endpoint", "AllTraffic")
    record = json.loads(files[0].read_text().splitlines()[0])
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert record["eventVersion"] == "0"
    assert {"eventId", "inferenceTime"} <= set(record["eventMetadata"])


def test_violations_after_drift_and_not_before(demo) -> None:
    normal, drift = demo.monitoring["normal"], demo.monitoring["drift"]
    assert normal["records"] == drift["records"] == OPTIONS["stream"]
    assert normal["drifted_features"] == [] and normal["alarms"] == []
    assert drift["alarms"] == ["boostline-dev-monitoring-data-quality-violations"]
    # Model quality per window, from the outcomes that arrived after the predictions.
    assert normal["auc"] > 0.7 and drift["auc"] is not None
    assert "interest_rate" in drift["drifted_features"]
    violations = json.loads(
        (
            demo.workdir / "monitoring" / "drift" / "data-quality" / "constraint_violations.json"
        ).read_text()
    )["violations"]
    assert any(v["constraint_check_type"] == "baseline_drift_check" for v in violations)


def test_one_retrain_for_a_burst_of_duplicate_events(demo) -> None:
    decisions = [e["message"] for e in demo.timeline if e["stage"] == "retrain-trigger"]
    # The own-code monitor's event, routed by the automation stack's rule.
    drift = [d for d in decisions if "rule boostline-dev-own-monitoring-violations" in d]
    assert len(drift) == 3
    assert sum(d.endswith(": started") for d in drift) == 1
    assert sum(d.endswith(": duplicate") for d in drift) == 2
    assert demo.executions_started == 2  # the schedule's and the drift's
    assert demo.retrain_reason.startswith("drift:")
    assert (demo.report).is_file()


def test_a_failed_health_check_leaves_the_first_version_serving(tmp_path: Path, light) -> None:
    # one training host, light training: the fixture's demo trains as shipped on two hosts;
    # this one is about the rollback
    options = DemoOptions(
        **{**OPTIONS, "stream": 150, "instance_count": 1},
        break_candidate=True,
        assembly=light.assembly.dir,
    )
    result = run_demo(tmp_path, light.config, options, Progress(quiet=True))
    registry = Registry(result.workdir)
    assert [v.version for v in registry.versions()] == [1, 2]
    assert result.live_version == 1
    assert any("failed its health check" in e["message"] for e in result.timeline)
    # The registry knows: v2 is the newest approved, v1 is what serves.
    assert registry.describe("latest-approved").version == 2
    assert registry.describe("live").version == 1
    outcomes = [(d["version"], d["outcome"]) for d in registry.deployments()["history"]]
    assert outcomes == [(1, "live"), (2, "failed")]
    # nothing is left running after the demo
    assert all(e.status != "InService" for e in EndpointManager(result.workdir).list_endpoints())


def test_every_access_was_checked_against_its_roles_synthesized_policy(demo) -> None:
    assert set(demo.access_checks) == {
        "boostline-dev-preprocess",
        "boostline-dev-training",
        "boostline-dev-evaluate",
        "boostline-dev-retrain-trigger",
        "boostline-dev-deployer",
        "boostline-dev-endpoint",
        "boostline-dev-monitor-job",
    }
    for role, counted in demo.access_checks.items():
        assert counted["checked"] == counted["allowed"] > 0, role
    summary = json.loads((demo.workdir / "summary.json").read_text())
    assert summary["access_checks"] == demo.access_checks
    printed = io.StringIO()
    print_summary(demo, printed)
    assert f"assembly: {demo.assembly} " in printed.getvalue()
    endpoint = demo.access_checks["boostline-dev-endpoint"]["checked"]
    assert f"boostline-dev-endpoint: {endpoint} checked, all allowed" in printed.getvalue()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _fleet_pids(workdir: Path) -> set[int]:
    """Every fleet pid in the demo's endpoint records (live, pending and retiring)."""
    pids = set()
    for path in (workdir / "demo" / "endpoints").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced; read again on the next poll
        for key in ("live", "pending", "retiring"):
            fleet = record.get(key) or {}
            if isinstance(fleet.get("pid"), int):
                pids.add(fleet["pid"])
    return pids


def _workdir_processes(workdir: Path) -> set[int]:
    found = subprocess.run(
        ["pgrep", "-f", str(workdir)], capture_output=True, text=True, check=False
    ).stdout.split()
    return {int(pid) for pid in found} - {os.getpid()}


def test_sigterm_stops_the_demo_and_every_server_it_started(tmp_path: Path, light) -> None:
    workdir = tmp_path / "work"
    argv = [sys.executable, "-m", "boostline", "demo", "--workdir", str(workdir)]
    argv += ["--assembly", str(light.assembly.dir), "--config", str(light.file), "--quiet"]
    for name, value in {**OPTIONS, "max_trials": 1, "instance_count": 1}.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    log = tmp_path / "demo.stderr"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True
        )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            seen |= _fleet_pids(workdir)
            if any(_alive(pid) for pid in seen):
                break
            time.sleep(0.5)
        assert process.poll() is None, "the demo ended before an endpoint was up"
        assert any(_alive(pid) for pid in seen), "no endpoint came up in time"

        process.send_signal(signal.SIGTERM)  # what a CI timeout sends, to this pid only
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail("the demo did not exit within 120 s of SIGTERM")
        seen |= _fleet_pids(workdir)
        deadline = time.monotonic() + 30  # the fleets' own workers exit after their master
        while time.monotonic() < deadline and (
            any(_alive(pid) for pid in seen) or _workdir_processes(workdir)
        ):
            time.sleep(0.2)
        assert [pid for pid in seen if _alive(pid)] == []
        assert _workdir_processes(workdir) == set()
        err = log.read_text()
        assert process.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err and "terminated" in err, err
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        for pid in seen | _workdir_processes(workdir):  # only what this demo started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in seen:  # a fleet leads its own session: its workers too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_the_report_has_its_sections_and_every_picture_is_a_png(demo) -> None:
    import re

    page = demo.report.read_text()
    for section in (
        "Model versions",
        "What changed between versions",
        "Model quality per window",
        "Drift per feature",
        "Timeline",
    ):
        assert f"<h2>{section}</h2>" in page, section
    images = re.findall(r'<img src="([^"]+)"', page)
    # drift per feature and window, AUC per window, the timeline, one per drifted feature
    assert len(images) == 3 + len(demo.monitoring["drift"]["drifted_features"])
    for src in images:
        data = (demo.report.parent / src).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, src
    assert (
        "the data-quality monitor of boostline-dev-endpoint found that the inputs drifted" in page
    )


def test_triggers_read_as_words() -> None:
    from boostline.local.demo_report import describe_trigger

    assert describe_trigger("schedule") == "the retrain schedule came round"
    assert describe_trigger("drift: ep model-quality; new-data: 2 files") == (
        "the model-quality monitor of ep found that the model lost skill; "
        "new data arrived (2 files)"
    )
    assert (
        describe_trigger("drift: boostline-dev-drift-x")
        == "a drift alarm (boostline-dev-drift-x) went off"
    )


def test_no_raw_pii_reaches_the_capture(demo) -> None:
    from training_scripts.dataset_schema import load_schema

    pii = set(load_schema(load_config().schema_path()).pii_columns)
    assert pii
    for path in (demo.workdir / "buckets" / "capture" / "capture").rglob("*.jsonl"):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
        for line in path.read_text().splitlines():
            captured = json.loads(line)["captureData"]["endpointInput"]
            if "json" in captured["observedContentType"]:  # CSV carries no field names
                assert not pii & set(json.loads(captured["data"])), path
