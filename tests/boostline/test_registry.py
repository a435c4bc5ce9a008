"""The local model registry: versions, approval, and two concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from boostline.registry import Registry, RegistryError


def _artifacts(tmp: Path, auc: float) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    model = tmp / "model.tar.gz"
    model.write_bytes(b"model-bytes")
    evaluation = tmp / "evaluation.json"
    evaluation.write_text(
        json.dumps(
            {
                "binary_classification_metrics": {
                    "auc": {"value": auc, "standard_deviation": 0.01}
                },
                "decision_threshold": 0.3,
            }
        )
    )
    return model, evaluation


def _register(root: Path, n: int, tag: str) -> list[int]:
    registry = Registry(root)
    out = []
    for i in range(n):
        model, evaluation = _artifacts(root / "src" / f"{tag}-{i}", 0.7 + i / 1000)
        package = registry.register(
            model_tar=model,
            evaluation=evaluation,
            baseline_dir=None,
            report_dir=None,
            status="PendingManualApproval",
            approved_by=tag,
            metadata={"writer": tag},
        )
        out.append(package.version)
    return out


def test_register_describe_approve(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model, evaluation = _artifacts(tmp_path / "a", 0.81)
    package = registry.register(
        model_tar=model,
        evaluation=evaluation,
        baseline_dir=None,
        report_dir=None,
        status="PendingManualApproval",
        approved_by="pipeline",
        metadata={"run_id": "r1"},
    )
    assert package.version == 1
    assert package.auc == pytest.approx(0.81)
    assert package.threshold == pytest.approx(0.3)
    assert package.model_tar.read_bytes() == b"model-bytes"
    assert registry.latest_approved() is None
    approved = registry.set_status(1, "Approved", by="alice", reason="reviewed")
    assert approved.status == "Approved"
    history = registry.describe(1).data["ApprovalHistory"]
    assert [h["By"] for h in history] == ["pipeline", "alice"]
    assert registry.describe("latest-approved").version == 1


def test_bad_requests_are_clear(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    with pytest.raises(RegistryError, match="no version 7"):
        registry.describe(7)
    with pytest.raises(RegistryError, match="no approved model"):
        registry.describe("latest-approved")
    with pytest.raises(RegistryError, match="approval status"):
        registry.set_status(1, "Maybe", by="x")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register(
            model_tar=tmp_path / "nope",
            evaluation=tmp_path / "nope",
            baseline_dir=None,
            report_dir=None,
            status="Approved",
            approved_by="x",
            metadata={},
        )


def test_two_concurrent_writers_never_collide(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_register, [(tmp_path, 10, "a"), (tmp_path, 10, "b")])
    versions = sorted(v for r in results for v in r)
    assert versions == list(range(1, 21))
    registry = Registry(tmp_path)
    packages = registry.versions()
    assert [p.version for p in packages] == list(range(1, 21))
    assert sorted(p.data["CustomerMetadataProperties"]["writer"] for p in packages) == sorted(
        ["a"] * 10 + ["b"] * 10
    )
    assert not [p for p in registry.dir.iterdir() if p.name.startswith(".") and p.is_dir()]


# --------------------------------------------------------------------------- damaged versions


def _damage(registry: Registry) -> None:
    """v2: package.json cut short; v3: package.json without a key; v1 and v4 untouched."""
    record = registry.dir / "2" / "package.json"
    record.write_bytes(record.read_bytes()[:200])
    data = json.loads((registry.dir / "3" / "package.json").read_text())
    del data["ModelApprovalStatus"]
    (registry.dir / "3" / "package.json").write_text(json.dumps(data))


def test_a_damaged_version_is_set_apart_and_the_others_stay_usable(tmp_path: Path) -> None:
    _register(tmp_path, 4, "w")
    registry = Registry(tmp_path)
    _damage(registry)
    usable, damaged = registry.scan()
    assert [p.version for p in usable] == [1, 4]
    assert [(d.version, d.file.name) for d in damaged] == [(2, "package.json"), (3, "package.json")]
    assert "truncated" in damaged[0].reason
    assert "ModelApprovalStatus" in damaged[1].reason
    assert [p.version for p in registry.versions()] == [1, 4]
    for version, text in ((2, "truncated"), (3, "lacks ModelApprovalStatus")):
        with pytest.raises(RegistryError, match=f"version {version} is damaged: .*{text}"):
            registry.describe(version)
    registry.set_status(4, "Approved", by="test")
    assert registry.describe("latest-approved").version == 4
    # a damaged version keeps its number: the next one comes after every folder
    assert _register(tmp_path, 1, "x") == [5]


def test_archive_problem_names_what_is_wrong(tmp_path: Path) -> None:
    import io
    import tarfile

    from boostline.registry import archive_problem

    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        data = b"x" * 100_000
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert archive_problem(good) is None
    (tmp_path / "plain").write_bytes(b"model-bytes")
    assert "not a gzip" in archive_problem(tmp_path / "plain")
    (tmp_path / "cut.tar.gz").write_bytes(good.read_bytes()[:60])
    assert archive_problem(tmp_path / "cut.tar.gz") is not None
    assert archive_problem(tmp_path / "absent.tar.gz") == "the file is missing"


def test_the_registry_knows_what_is_live_and_what_failed(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    first, second = _register(tmp_path, 2, "t")
    for version in (first, second):
        registry.set_status(version, "Approved", by="t")
    # Nothing deployed yet: "live" falls back to the latest approved version.
    assert registry.live() is None
    assert registry.describe("live").version == second
    registry.record_deployment("ep", first, "live", "schedule")
    registry.record_deployment("ep", second, "failed", "drift", reason="health check failed")
    # v2 is the newest approved, but v1 is what serves: "live" says so.
    assert registry.describe("latest-approved").version == second
    assert registry.describe("live").version == first
    live = registry.live("ep")
    assert live is not None and live["version"] == first and live["event"] == "schedule"
    history = registry.deployments()["history"]
    assert [(h["version"], h["outcome"]) for h in history] == [(first, "live"), (second, "failed")]
    assert history[1]["reason"] == "health check failed"
    with pytest.raises(RegistryError, match="outcome"):
        registry.record_deployment("ep", first, "maybe", "x")


def test_a_damaged_deployment_record_names_its_file(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    (registry.dir / "deployments.json").write_text("{not json")
    with pytest.raises(RegistryError, match="deployments.json is damaged"):
        registry.live()
