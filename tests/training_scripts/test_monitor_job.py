"""monitor_job.py: the own-code data-quality monitor, run on local files (no AWS)."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import data_quality as dq
from training_scripts import monitor_job as mj
from training_scripts import preprocess as pp

NOW = datetime(2026, 11, 12, 2, 0, 5, tzinfo=timezone.utc)
ENDPOINT = "boostline-dev-endpoint"


def _features(directory: Path, pattern: str) -> np.ndarray:
    frames = [pd.read_csv(f, header=None) for f in sorted(directory.glob(pattern))]
    return pd.concat(frames).iloc[:, 1:].to_numpy(dtype=np.float64)


def _capture_file(path: Path, rows: np.ndarray) -> None:
    """Data-capture JSON lines, one CSV request per record, as the endpoint writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for start in range(0, len(rows), 50):
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows[start : start + 50])
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "text/csv",
                            "mode": "INPUT",
                            "data": body,
                            "encoding": "CSV",
                        },
                        "endpointOutput": {
                            "observedContentType": "text/csv",
                            "mode": "OUTPUT",
                            "data": "0.1,0",
                            "encoding": "CSV",
                        },
                    },
                    "eventMetadata": {"eventId": str(start)},
                    "eventVersion": "0",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _model_tar(path: Path, manifest: dict | None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = {"xgboost-model": b"not a real model"}
        if manifest is not None:
            members[mj.MANIFEST_MEMBER] = json.dumps(manifest).encode()
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("monitor")
    generate_to_dir(4000, root / "raw", seed=21)
    pp.preprocess(root / "raw", SCHEMA_PATH, root / "pre", salt="x")
    generate_to_dir(1500, root / "raw_drift", seed=22, drift=1.5)
    pp.preprocess(root / "raw_drift", SCHEMA_PATH, root / "pre_drift", salt="x")
    manifest = json.loads((root / "pre" / "manifest" / "feature_manifest.json").read_text())
    names, kinds, categories = dq.feature_spec(manifest)
    train = _features(root / "pre" / "train", "train-*.csv")
    stats = dq.compute_statistics(train, names, kinds, categories=categories)
    baseline = root / "baseline"
    baseline.mkdir()
    (baseline / "statistics.json").write_text(json.dumps(stats))
    (baseline / "constraints.json").write_text(
        json.dumps(dq.suggest_constraints(stats, domains=categories))
    )
    return {
        "root": root,
        "manifest": manifest,
        "model": _model_tar(root / "model.tar.gz", manifest),
        "baseline": baseline,
        "test": _features(root / "pre" / "test", "test.csv"),
        "drifted": _features(root / "pre_drift" / "train", "train-*.csv"),
    }


class FakeCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def _argv(live: dict, captures: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model-data",
        str(live["model"]),
        "--baseline-statistics",
        str(live["baseline"] / "statistics.json"),
        "--constraints",
        str(live["baseline"] / "constraints.json"),
        "--captures",
        str(captures),
        "--endpoint",
        ENDPOINT,
        "--output-dir",
        str(out),
        "--now",
        NOW.isoformat(),
        *extra,
    ]


def _run(live, captures, out, monkeypatch, *extra) -> tuple[dict, FakeCloudWatch]:
    cloudwatch = FakeCloudWatch()
    monkeypatch.setenv(mj.NAMESPACE_ENV, "Boostline/Monitoring")
    clients = {"cloudwatch": cloudwatch}
    report = mj.run(mj.parse_args(_argv(live, captures, out, *extra)), clients.__getitem__)
    return report, cloudwatch


def test_capture_hours_are_the_full_hours_before_now() -> None:
    assert mj.capture_hours(NOW, 1) == ["2026/11/12/01"]
    assert mj.capture_hours(NOW, 3) == ["2026/11/11/23", "2026/11/12/00", "2026/11/12/01"]
    with pytest.raises(mj.MonitorError):
        mj.capture_hours(NOW, 0)


def test_traffic_like_the_baseline_has_no_violations(live, tmp_path, monkeypatch) -> None:
    captures = tmp_path / "capture" / ENDPOINT / "AllTraffic"
    _capture_file(captures / "2026/11/12/01" / "a.jsonl", live["test"])
    # Outside the window: must not be read (it would drift).
    _capture_file(captures / "2026/11/11/20" / "old.jsonl", live["drifted"])
    report, cloudwatch = _run(live, captures, tmp_path / "out", monkeypatch)
    assert report == {"violations": []}
    written = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert written == report
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == len(live["test"])
    (call,) = cloudwatch.calls
    violations = call["MetricData"][0]
    assert violations["MetricName"] == mj.VIOLATIONS_METRIC and violations["Value"] == 0.0


def test_drifted_traffic_reports_violations_and_publishes_them(live, tmp_path, monkeypatch) -> None:
    captures = tmp_path / "capture"
    _capture_file(captures / "2026/11/12/01" / "a.jsonl", live["drifted"])
    report, cloudwatch = _run(live, captures, tmp_path / "out", monkeypatch)
    assert report["violations"]
    assert {v["constraint_check_type"] for v in report["violations"]} >= {"baseline_drift_check"}
    (call,) = cloudwatch.calls
    assert call["Namespace"] == "Boostline/Monitoring"
    metrics = {m["MetricName"]: m for m in call["MetricData"]}
    assert metrics[mj.VIOLATIONS_METRIC]["Value"] == float(len(report["violations"]))
    assert metrics[mj.ROWS_METRIC]["Value"] == float(len(live["drifted"]))
    assert metrics[mj.VIOLATIONS_METRIC]["Dimensions"] == [{"Name": "Endpoint", "Value": ENDPOINT}]


def test_no_traffic_is_no_violation_and_no_metrics_when_asked(live, tmp_path, monkeypatch) -> None:
    report, cloudwatch = _run(live, tmp_path / "empty", tmp_path / "out", monkeypatch)
    assert report == {"violations": []}
    assert cloudwatch.calls[0]["MetricData"][1]["Value"] == 0.0  # rows
    _, quiet = _run(live, tmp_path / "empty", tmp_path / "out2", monkeypatch, "--no-metrics")
    assert quiet.calls == []


def test_model_data_comes_from_the_model_package(live) -> None:
    class FakeSageMaker:
        def describe_model_package(self, ModelPackageName: str) -> dict:  # noqa: N803
            assert ModelPackageName.endswith("/3")
            return {"InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://b/m.tar.gz"}]}}

    clients = {"sagemaker": FakeSageMaker()}
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/boostline-dev-models/3"
    assert mj.model_data_url(arn, clients.__getitem__) == "s3://b/m.tar.gz"
    with pytest.raises(mj.MonitorError, match="no live model"):
        mj.model_data_url("none", clients.__getitem__)


def test_manifest_is_read_from_the_model_archive(live, tmp_path) -> None:
    assert mj.read_manifest(live["model"]) == live["manifest"]
    with pytest.raises(mj.MonitorError, match="feature_manifest"):
        mj.read_manifest(_model_tar(tmp_path / "bare.tar.gz", None))


def test_a_failed_run_exits_1_with_a_message(live, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml"))
    argv = _argv(live, tmp_path, tmp_path / "out", "--no-metrics")
    argv[argv.index("--model-data") + 1] = str(_model_tar(tmp_path / "bare.tar.gz", None))
    assert mj.main(argv) == 1
    assert "feature_manifest" in (tmp_path / "ml" / "message").read_text()
