"""Local endpoints over real HTTP on 127.0.0.1: blue/green deployment, rollback, stop."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import threading
import time
from pathlib import Path

import pytest

from boostline.registry import ModelPackage
from boostline.serving import endpoints
from boostline.serving.capture import read_captures
from boostline.serving.endpoints import EndpointError, EndpointManager, EndpointNotFound
from boostline.serving.server import ping
from training_scripts import inference
from training_scripts import model_quality as mq

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="process checks read /proc")

CSV, JSON = inference.CSV, inference.JSON
NAME = "loans"


@pytest.fixture(scope="module")
def book(tmp_path_factory, make_loan_book) -> dict:
    """Two model versions (different boosters, same columns), a broken one, and rows."""
    book = make_loan_book(tmp_path_factory.mktemp("endpoints"), seed=7)
    lines = book.test_lines()
    return {
        "v1": book.model_dir("v1", book.booster(20, 3)),
        "v2": book.model_dir("v2", book.booster(4, 2)),
        "garbage": book.model_dir("garbage", b"this is not a booster"),
        "rows": [line.split(",", 1)[1] for line in lines],
        "labels": [int(float(line.split(",", 1)[0])) for line in lines],
    }


def group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group: a fleet's master and workers."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def eventually(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def probability(result) -> float:
    assert result.status == 200, result.body
    return result.json()["predictions"][0]["probability"]


@pytest.fixture
def managers(tmp_path):
    """Two managers on one work directory, as two boostline processes would have."""
    made: list[EndpointManager] = []

    def make() -> EndpointManager:
        made.append(EndpointManager(tmp_path / "work", startup_timeout=90))
        return made[-1]

    yield make
    for manager in made:
        manager.stop_all()


def test_blue_green_switch_and_captures(book, managers, tmp_path) -> None:
    a, b = managers(), managers()
    capture = tmp_path / "capture"
    row = book["rows"][0].encode()
    first = a.deploy(NAME, book["v1"], model_version=1, capture_dir=capture, workers=1)
    assert first.ok and first.live_version == 1 and first.previous_version is None, first.reason
    described = a.describe(NAME)
    assert (described.status, described.model_version, described.url) == (
        "InService",
        1,
        first.url,
    )
    blue_pid = described.pid
    answer = a.invoke(NAME, row, CSV, JSON, inference_id="first")
    assert answer.model_version == 1 and answer.headers["x-amzn-sagemaker-inference-id"] == "first"
    p1 = probability(answer)
    for i in range(30):  # traffic for the model-quality check below
        assert a.invoke(NAME, book["rows"][i].encode(), inference_id=f"r{i}").status == 200

    # `a` keeps invoking from another thread while `b` (another process) deploys v2
    seen: list[tuple[int, int | str]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            result = a.invoke(NAME, row, CSV, CSV)
            seen.append((result.status, result.model_version))

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        second = b.deploy(
            NAME,
            book["v2"],
            model_version=2,
            capture_dir=capture,
            workers=1,
            termination_wait=0.2,
        )
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(30)
    assert second.ok and second.previous_version == 1 and second.url != first.url, second.reason
    assert seen and all(status == 200 for status, _ in seen)
    versions = [v for _, v in seen]
    assert versions == sorted(versions) and versions[-1] == 2  # 1, 1, ..., 2, 2: one switch

    answer = a.invoke(NAME, row, CSV, JSON, inference_id="second")  # resolved again by name
    assert answer.model_version == 2 and probability(answer) != p1
    assert eventually(lambda: not group(blue_pid)), "the blue fleet is still running"
    described = b.describe(NAME)
    assert described.model_version == 2 and described.status == "InService"
    assert [(h["model_version"], h["outcome"]) for h in described.history] == [
        (1, "InService"),
        (2, "InService"),
    ]
    assert described.history[1]["replaced_version"] == 1
    record = json.loads((tmp_path / "work" / "endpoints" / f"{NAME}.json").read_text())
    assert record["pending"] is None and record["retiring"] is None
    for i in range(30, 60):
        assert a.invoke(NAME, book["rows"][i].encode(), inference_id=f"r{i}").status == 200

    # both versions captured into one endpoint/variant tree, as SageMaker's variants do
    files = sorted(capture.rglob("*.jsonl"))
    assert {f.relative_to(capture).parts[:2] for f in files} == {(NAME, "AllTraffic")}
    ids = {r["eventMetadata"].get("inferenceId") for r in read_captures(capture)}
    assert {"first", "second", "r0", "r59"} <= ids
    health = [i for i in ids if i and i.startswith(endpoints.HEALTH_CHECK_ID_PREFIX)]
    assert len(health) == 2  # one real invocation per deployment

    # the model-quality check joins ground truth across both versions
    truth = tmp_path / "truth" / "2026" / "01" / "01" / "00"
    truth.mkdir(parents=True)
    (truth / "labels.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {"data": str(book["labels"][i]), "encoding": "CSV"},
                    "eventMetadata": {"eventId": f"r{i}"},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for i in range(60)
        )
    )
    constraints = {
        "version": 0.0,
        "binary_classification_constraints": {
            "auc": {"threshold": 0.0, "comparison_operator": "LessThanThreshold"}
        },
    }
    outcome = mq.run_check(capture, tmp_path / "truth", constraints, min_rows=50)
    assert outcome.counts["joined_rows"] == 60 and outcome.counts["health_check_captures"] == 2
    assert outcome.counts["ground_truth_without_capture"] == 0

    green_pid = described.pid
    assert a.stop_all(started_here=True) == []  # `b` started v2: not `a`'s to stop on Ctrl-C
    assert ping(described.url) and a.invoke(NAME, row).model_version == 2
    assert a.stop_all() == [NAME]  # everything in the work directory
    assert eventually(lambda: not group(green_pid)) and not group(blue_pid)
    assert not list((tmp_path / "work" / "endpoints").glob("*.json"))
    with pytest.raises(EndpointNotFound):
        a.invoke(NAME, row)


def test_failed_deployments_keep_the_old_version_serving(book, managers, tmp_path) -> None:
    manager = managers()
    row = book["rows"][1].encode()

    # a first deployment that cannot boot: nothing to roll back to
    failed = manager.deploy(NAME, book["garbage"], model_version=0, workers=1)
    assert failed.status == "Failed" and failed.live_version is None
    assert "did not start" in failed.reason
    assert manager.describe(NAME).status == "Failed"
    with pytest.raises(EndpointError, match="no model in service"):
        manager.invoke(NAME, row)

    first = manager.deploy(NAME, book["v1"], model_version=1, workers=1)
    assert first.ok and first.previous_version is None
    record_path = manager.directory / f"{NAME}.json"
    live = json.loads(record_path.read_text())["live"]
    p1 = probability(manager.invoke(NAME, row))

    # green whose workers cannot load the model: v1 keeps serving, record unchanged
    broken = manager.deploy(NAME, book["garbage"], model_version=2, workers=1)
    assert broken.status == "RolledBack" and broken.live_version == 1 and broken.url == first.url
    assert json.loads(record_path.read_text())["live"] == live
    answer = manager.invoke(NAME, row)
    assert answer.model_version == 1 and probability(answer) == p1

    # green that boots but fails the caller's health check
    green: dict = {}

    def canary(url: str) -> None:
        green["url"] = url
        green["pid"] = endpoints._server_pid_on_port(int(url.rsplit(":", 1)[1]))
        raise RuntimeError("canary says no")

    checked = manager.deploy(NAME, book["v2"], model_version=3, workers=1, health_check=canary)
    assert checked.status == "RolledBack" and "canary says no" in checked.reason
    assert green["pid"] and not group(green["pid"]) and not ping(green["url"])
    assert json.loads(record_path.read_text())["live"] == live
    assert manager.invoke(NAME, row).model_version == 1

    # Ctrl-C while green is being checked: green is stopped, the interrupt goes on
    def interrupted(url: str) -> None:
        green["pid"] = endpoints._server_pid_on_port(int(url.rsplit(":", 1)[1]))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        manager.deploy(NAME, book["v2"], model_version=3, workers=1, health_check=interrupted)
    assert green["pid"] and not group(green["pid"])
    record = json.loads(record_path.read_text())
    assert record["live"] == live and record["pending"] is None
    assert record["status"] == "InService" and record["history"][-1]["reason"] == "interrupted"
    described = manager.describe(NAME)
    assert described.status == "InService" and described.model_version == 1
    assert [h["outcome"] for h in described.history] == [
        "Failed",
        "InService",
        "RolledBack",
        "RolledBack",
        "RolledBack",
    ]

    # the fleet dies behind the record's back: reported, not trusted
    os.killpg(live["pid"], signal.SIGKILL)
    assert eventually(lambda: not group(live["pid"]))
    stale = manager.describe(NAME)
    assert stale.status == "OutOfService" and "stale record" in stale.failure_reason
    with pytest.raises(EndpointError, match="does not answer"):
        manager.invoke(NAME, row)
    # a registered version: unpacked from its model.tar.gz, served at its own threshold
    package_dir = tmp_path / "registry" / "4"
    package_dir.mkdir(parents=True)
    with tarfile.open(package_dir / "model.tar.gz", "w:gz") as tar:
        for path in sorted(book["v2"].rglob("*")):
            tar.add(path, arcname=str(path.relative_to(book["v2"])), recursive=False)
    package = ModelPackage(
        {
            "ModelPackageGroupName": "loans-models",
            "ModelPackageVersion": 4,
            "CustomerMetadataProperties": {"decision_threshold": "0.3"},
        },
        package_dir,
    )
    again = manager.deploy_package(NAME, package, workers=1)
    assert again.ok and again.previous_version is None and "gone" in again.reason
    described = manager.describe(NAME)
    assert described.status == "InService" and described.model_version == 4
    live = json.loads(record_path.read_text())["live"]
    assert live["threshold"] == 0.3
    assert Path(live["model_dir"]) == manager.root / "models" / "loans-models" / "4"
    answer = manager.invoke(NAME, "\n".join(book["rows"][:20]).encode(), CSV, CSV)
    assert answer.model_version == 4
    for line in answer.body.decode().splitlines():
        p, decision = line.split(",")
        assert decision == ("reject" if float(p) >= 0.3 else "approve")

    assert manager.stop(NAME) and not manager.stop(NAME)
    with pytest.raises(EndpointNotFound):
        manager.describe(NAME)


def test_names_and_the_default_health_check_row(book) -> None:
    for bad in ("", "-x", "a_b", "x" * 64, "a/b"):
        with pytest.raises(ValueError):
            endpoints.check_name(bad)
    endpoints.check_name("loans-prod-1")
    model = inference.load_model(book["v1"], threads=1)
    row = endpoints.sample_row(book["v1"])
    features = inference.parse_csv(model, row.encode())
    inference.check_values(model, features)  # a row the endpoint accepts
    assert features.shape == (1, model.n_features)
