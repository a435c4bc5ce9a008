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
from training_scripts import monitor_io as mj_io
from training_scripts import monitor_job as mj
from training_scripts import monitor_publish as pub
from training_scripts import preprocess as pp

NOW = datetime(2026, 11, 12, 2, 0, 5, tzinfo=timezone.utc)
ENDPOINT = "boostline-dev-endpoint"


def _features(directory: Path, pattern: str) -> np.ndarray:
    frames = [pd.read_csv(f, header=None) for f in sorted(directory.glob(pattern))]
    return pd.concat(frames).iloc[:, 1:].to_numpy(dtype=np.float64)


def _record(body: str, output: str, event_id: str, when: datetime, kind: str = "CSV") -> str:
    content = "text/csv" if kind == "CSV" else "application/json"
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": content,
                    "mode": "INPUT",
                    "data": body,
                    "encoding": kind,
                },
                "endpointOutput": {
                    "observedContentType": content,
                    "mode": "OUTPUT",
                    "data": output,
                    "encoding": kind,
                },
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": mj_io.iso(when)},
            "eventVersion": "0",
        }
    )


def _capture_file(path: Path, rows: np.ndarray, when: datetime | None = None) -> None:
    """Data-capture JSON lines, one CSV request per record, as the endpoint writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hour = datetime.strptime(path.parent.relative_to(path.parents[4]).as_posix(), "%Y/%m/%d/%H")
    when = when or hour.replace(minute=30, tzinfo=timezone.utc)
    lines = []
    for start in range(0, len(rows), 50):
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows[start : start + 50])
        lines.append(_record(body, "0.1,0", str(start), when))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _model_tar(path: Path, manifest: dict | None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = {"xgboost-model": b"not a real model"}
        if manifest is not None:
            members[mj_io.MANIFEST_MEMBER] = json.dumps(manifest).encode()
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


class Recorder:
    """CloudWatch and EventBridge as the job calls them."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.metrics.append(kwargs)

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.events.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}

    def datums(self) -> dict[str, dict[str, Any]]:
        return {
            m["MetricName"] + "".join(f"/{d['Value']}" for d in m["Dimensions"][1:]): m
            for call in self.metrics
            for m in call["MetricData"]
        }


def _argv(live: dict, captures: Path, out: Path, *extra: str) -> list[str]:
    return [
        "data-quality",
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


def _run(live, captures, out, monkeypatch, *extra) -> tuple[dict, Recorder]:
    recorder = Recorder()
    monkeypatch.setenv(pub.NAMESPACE_ENV, "Boostline/Monitoring")
    result = mj.run(mj.parse_args(_argv(live, captures, out, *extra)), lambda _s: recorder)
    return result, recorder


def test_a_scheduled_run_checks_the_full_hours_before_now() -> None:
    window = mj_io.Window.last_full_hours(NOW, 1)
    assert window.partitions() == ["2026/11/12/01"]
    assert mj_io.Window.last_full_hours(NOW, 3).partitions() == [
        "2026/11/11/23",
        "2026/11/12/00",
        "2026/11/12/01",
    ]
    with pytest.raises(mj_io.MonitorError):
        mj_io.Window.last_full_hours(NOW, 0)


def test_traffic_like_the_baseline_has_no_violations(live, tmp_path, monkeypatch) -> None:
    captures = tmp_path / "capture" / ENDPOINT / "AllTraffic"
    _capture_file(captures / "2026/11/12/01" / "a.jsonl", live["test"])
    # Outside the window: must not be read (it would drift).
    _capture_file(captures / "2026/11/11/20" / "old.jsonl", live["drifted"])
    result, recorder = _run(live, captures, tmp_path / "out", monkeypatch)
    assert result["status"] == mj.COMPLETED and result["violations"] == 0
    written = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert written["violations"] == []
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == len(live["test"])
    datums = recorder.datums()
    assert datums["DataQualityViolations"]["Value"] == 0.0
    assert all(d["Value"] < 0.1 for k, d in datums.items() if k.startswith("FeatureDrift/"))


def test_drifted_traffic_reports_violations_publishes_them_and_ends_with_its_event(
    live, tmp_path, monkeypatch
) -> None:
    captures = tmp_path / "capture"
    _capture_file(captures / "2026/11/12/01" / "a.jsonl", live["drifted"])
    result, recorder = _run(
        live, captures, tmp_path / "out", monkeypatch, "--report-uri", "s3://m/reports/x"
    )
    assert result["status"] == mj.WITH_VIOLATIONS
    report = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert {v["constraint_check_type"] for v in report["violations"]} >= {"baseline_drift_check"}
    (call,) = recorder.metrics
    assert call["Namespace"] == "Boostline/Monitoring"
    datums = recorder.datums()
    assert datums["DataQualityViolations"]["Value"] == float(len(report["violations"]))
    assert datums["DataQualityRows"]["Value"] == float(len(live["drifted"]))
    dims = datums["DataQualityViolations"]["Dimensions"]
    assert dims == [{"Name": "Endpoint", "Value": ENDPOINT}]
    drifted = {v["feature_name"] for v in report["violations"]}
    assert any(datums[f"FeatureDrift/{name}"]["Value"] > 0.1 for name in drifted)
    (event,) = recorder.events
    assert event["Source"] == pub.EVENT_SOURCE and event["DetailType"] == pub.EVENT_DETAIL_TYPE
    detail = json.loads(event["Detail"])
    assert detail["status"] == "CompletedWithViolations" and detail["monitor"] == "data-quality"
    assert detail["violations"] == len(report["violations"]) and detail["endpoint"] == ENDPOINT
    assert detail["reportUri"] == "s3://m/reports/x"
    assert detail["windowStart"] == "2026-11-12T01:00:00Z"


def test_an_explicit_window_reads_only_its_records_and_skips_damaged_lines(
    live, tmp_path, monkeypatch
) -> None:
    captures = tmp_path / "capture"
    hour = captures / "2026/11/12/01"
    early = datetime(2026, 11, 12, 1, 5, tzinfo=timezone.utc)
    late = datetime(2026, 11, 12, 1, 40, tzinfo=timezone.utc)
    _capture_file(hour / "a.jsonl", live["test"], when=early)
    _capture_file(hour / "b.jsonl", live["drifted"], when=late)
    with (hour / "b.jsonl").open("a") as handle:
        handle.write('{"captureData": {"endpointInput": {"da\n')  # a write cut short
    window = ["--window-start", "2026-11-12T01:00:00Z", "--window-end", "2026-11-12T01:30:00Z"]
    result, _ = _run(live, captures, tmp_path / "out", monkeypatch, *window)
    assert result["status"] == mj.COMPLETED and result["rows"] == len(live["test"])
    report = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert report["boostline"]["capture"]["damaged_lines"] == 1
    assert report["boostline"]["capture"]["outside_window"] > 0


def test_no_traffic_is_insufficient_data_and_nothing_published_when_asked(
    live, tmp_path, monkeypatch
) -> None:
    result, recorder = _run(live, tmp_path / "empty", tmp_path / "out", monkeypatch)
    assert result["status"] == mj.INSUFFICIENT_DATA and result["violations"] == 0
    assert recorder.datums()["DataQualityRows"]["Value"] == 0.0
    _, quiet = _run(
        live, tmp_path / "empty", tmp_path / "out2", monkeypatch, "--no-metrics", "--no-event"
    )
    assert quiet.metrics == [] and quiet.events == []


def test_the_live_model_comes_from_its_package() -> None:
    class FakeSageMaker:
        def describe_model_package(self, ModelPackageName: str) -> dict:  # noqa: N803
            assert ModelPackageName.endswith("/3")
            return {
                "ModelPackageArn": ModelPackageName,
                "InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://b/m.tar.gz"}]},
                "ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": "s3://b/e.json"}}},
            }

    clients = {"sagemaker": FakeSageMaker()}
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/boostline-dev-models/3"
    package = mj_io.describe_package(arn, clients.__getitem__)
    assert mj_io.model_data_url(package) == "s3://b/m.tar.gz"
    assert mj_io.evaluation_url(package) == "s3://b/e.json"
    with pytest.raises(mj_io.MonitorError, match="no live model"):
        mj_io.describe_package("none", clients.__getitem__)
    with pytest.raises(mj_io.MonitorError, match="records no evaluation"):
        mj_io.evaluation_url({"ModelPackageArn": arn})


def test_manifest_is_read_from_the_model_archive(live, tmp_path) -> None:
    assert mj_io.read_manifest(live["model"]) == live["manifest"]
    with pytest.raises(mj_io.MonitorError, match="feature_manifest"):
        mj_io.read_manifest(_model_tar(tmp_path / "bare.tar.gz", None))


def test_a_failed_run_exits_1_with_a_message(live, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml"))
    argv = _argv(live, tmp_path, tmp_path / "out", "--no-metrics")
    argv[argv.index("--model-data") + 1] = str(_model_tar(tmp_path / "bare.tar.gz", None))
    assert mj.main(argv) == 1
    assert "feature_manifest" in (tmp_path / "ml" / "message").read_text()


# ---------------------------------------------------------------- model quality


def _evaluation(path: Path, auc_target: float = 0.8) -> Path:
    from training_scripts import model_quality as mq

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 2000)
    probabilities = np.clip(labels * 0.35 + rng.uniform(0, 0.65, 2000), 0, 1)
    metrics = mq.binary_classification_metrics(labels, probabilities, probabilities >= 0.5)
    path.write_text(
        json.dumps(
            {
                "binary_classification_metrics": metrics,
                "decision_threshold": 0.5,
                "dataset": {"test_rows": 2000},
            }
        )
    )
    return path


def _labelled_traffic(root: Path, *, informative: bool, n: int = 400) -> tuple[Path, Path]:
    """Captured JSON predictions and their ground truth, an hour apart."""
    rng = np.random.default_rng(11 if informative else 12)
    labels = rng.integers(0, 2, n)
    noise = rng.uniform(0, 0.65, n)
    probabilities = np.clip(labels * 0.35 + noise, 0, 1) if informative else rng.uniform(0, 1, n)
    when = datetime(2026, 11, 12, 1, 15, tzinfo=timezone.utc)
    captures = root / "capture"
    hour = captures / "2026/11/12/01"
    hour.mkdir(parents=True)
    lines = [
        _record(
            json.dumps({"income": 1}),
            json.dumps({"predictions": [{"probability": float(p)}]}),
            f"req-{i}",
            when,
            kind="JSON",
        )
        for i, p in enumerate(probabilities)
    ]
    (hour / "a.jsonl").write_text("\n".join(lines) + "\n")
    truth = root / "truth" / "2026/11/12/02"  # labels arrive later
    truth.mkdir(parents=True)
    (truth / "labels.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {"data": str(int(y)), "encoding": "CSV"},
                    "eventMetadata": {"eventId": f"req-{i}"},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for i, y in enumerate(labels)
        )
    )
    return captures, root / "truth"


@pytest.mark.parametrize("informative", [True, False])
def test_model_quality_joins_labels_that_came_later_and_reports_auc(
    tmp_path, monkeypatch, informative: bool
) -> None:
    captures, truth = _labelled_traffic(tmp_path, informative=informative)
    monkeypatch.setenv(pub.NAMESPACE_ENV, "Boostline/Monitoring")
    recorder = Recorder()
    argv = [
        "model-quality",
        "--evaluation",
        str(_evaluation(tmp_path / "evaluation.json")),
        "--threshold",
        "0.5",
        "--captures",
        str(captures),
        "--ground-truth",
        str(truth),
        "--endpoint",
        ENDPOINT,
        "--output-dir",
        str(tmp_path / "out"),
        "--window-start",
        "2026-11-12T01:00:00Z",
        "--window-end",
        "2026-11-12T02:00:00Z",
        "--now",
        "2026-11-12T03:00:00Z",
    ]
    result = mj.run(mj.parse_args(argv), lambda _s: recorder)
    datums = recorder.datums()
    assert datums["ModelQualityRows"]["Value"] == 400.0
    auc = datums["auc"]["Value"]
    assert (auc > 0.75) if informative else (auc < 0.65)
    assert result["status"] == (mj.COMPLETED if informative else mj.WITH_VIOLATIONS)
    for name in ("statistics.json", "constraints.json", "constraint_violations.json"):
        assert (tmp_path / "out" / name).is_file()
    (event,) = recorder.events
    assert json.loads(event["Detail"])["monitor"] == "model-quality"
