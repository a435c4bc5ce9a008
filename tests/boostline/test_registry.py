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
