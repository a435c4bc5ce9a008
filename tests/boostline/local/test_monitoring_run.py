"""The monitoring stack's pipeline run locally: each alarm crossed by the monitors' own output.

The runs use what the shared demo left (a registered, evaluated model with baselines)
and write their own capture into a window no demo traffic touches.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boostline.config import load_config
from boostline.data.generator import generate_to_dir
from boostline.local.monitoring_run import MonitoringUnavailable, live_parameters, run_monitoring
from boostline.local.workdir import Workdir
from boostline.progress import Progress
from boostline.registry import Registry

pytestmark = pytest.mark.slow

CAPTURE = Path("capture") / "boostline-dev-endpoint" / "AllTraffic"
PREFIX = "boostline-dev"


def _window(day: int) -> tuple[datetime, datetime]:
    start = datetime(2030, 1, day, 5, tzinfo=timezone.utc)
    return start, start + timedelta(hours=1)


def _capture(
    workdir: Path, start: datetime, rows: list[dict[str, str]], probabilities: np.ndarray
) -> list[str]:
    """Capture records as the endpoint writes them (JSON in, our JSON out); their ids."""
    folder = workdir / "buckets" / "capture" / CAPTURE / start.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    when = (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines, ids = [], []
    for i, (row, p) in enumerate(zip(rows, probabilities, strict=True)):
        ids.append(f"t{start.day}-{i}")
        body = json.dumps({k: v for k, v in row.items() if v != ""})
        answer = json.dumps({"predictions": [{"probability": float(p), "default": bool(p > 0.5)}]})
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "application/json",
                            "mode": "INPUT",
                            "data": body,
                            "encoding": "JSON",
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": answer,
                            "encoding": "JSON",
                        },
                    },
                    "eventMetadata": {
                        "eventId": ids[-1],
                        "inferenceId": ids[-1],
                        "inferenceTime": when,
                    },
                    "eventVersion": "0",
                }
            )
        )
    (folder / "capture.jsonl").write_text("\n".join(lines) + "\n")
    return ids


def _ground_truth(workdir: Path, start: datetime, ids: list[str], labels: list[int]) -> None:
    folder = workdir / "buckets" / "capture" / "ground-truth" / start.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {"data": str(y), "encoding": "CSV"},
                    "eventMetadata": {"eventId": i},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for i, y in zip(ids, labels, strict=True)
        )
    )


def _book(root: Path, *, drift: float, seed: int) -> tuple[list[dict[str, str]], list[int]]:
    files = generate_to_dir(400, root, seed=seed, drift=drift, shards=1)
    rows = list(csv.DictReader(io.StringIO(files[0].read_text())))
    labels = [1 if row.pop("loan_status") == "bad" else 0 for row in rows]
    return rows, labels


def _live(workdir: Path, **override: str) -> dict[str, str]:
    package = Registry(workdir).describe("live")
    return {**live_parameters(package, load_config(), "dev"), **override}


def _run(demo, dev_assembly, day: int, live: dict[str, str] | None = None, access=None):
    start, end = _window(day)
    return run_monitoring(
        Workdir.at(demo.workdir),
        load_config(),
        "dev",
        assembly=dev_assembly,
        live=live or _live(demo.workdir),
        window_start=start,
        window_end=end,
        progress=Progress(quiet=True),
        access=access,
    )


def _state(run, alarm: str) -> str:
    return run.alarms[f"{PREFIX}-{alarm}"].state


def test_drifted_capture_crosses_the_data_quality_alarm_and_reaches_the_trigger(
    demo, dev_assembly, tmp_path
) -> None:
    start, _ = _window(1)
    rows, labels = _book(tmp_path / "drift", drift=2.0, seed=31)
    ids = _capture(demo.workdir, start, rows, np.full(len(rows), 0.2))
    _ground_truth(demo.workdir, start + timedelta(hours=1), ids, labels)
    from boostline.local.access_checks import StageAccess
    from boostline.local.emulator import ACCOUNT

    with StageAccess(dev_assembly, account=ACCOUNT, region="eu-west-1") as access:
        run = _run(demo, dev_assembly, 1, access=access)
        # The jobs' requests and their own calls (capture, baselines, metrics, the event).
        checked, allowed = access.counts()["boostline-dev-monitor-job"]
    assert run.status == "Succeeded", run.failure
    assert checked == allowed > 20
    assert run.results["data-quality"]["violations"] > 0
    assert _state(run, "monitoring-data-quality-violations") == "ALARM"
    assert _state(run, "monitoring-data-quality-stale") == "OK"
    assert _state(run, "monitoring-failed") == "OK"
    # The job's own event, matched by the automation stack's rule for the retrain trigger.
    routed = {(rule, e["detail"]["monitor"]) for e, rule, _ in run.routes}
    assert (f"{PREFIX}-own-monitoring-violations", "data-quality") in routed
    targets = [
        t for e, rule, ts in run.routes for t in ts if rule.endswith("own-monitoring-violations")
    ]
    assert all(t.endswith(f":function:{PREFIX}-retrain-trigger") for t in targets)


def test_predictions_that_lost_their_skill_cross_the_auc_alarm(
    demo, dev_assembly, tmp_path
) -> None:
    start, _ = _window(2)
    rows, labels = _book(tmp_path / "normal", drift=0.0, seed=32)
    # The model's answers, reversed: a live AUC far under the gate's minimum.
    reversed_ = np.where(np.array(labels) == 1, 0.1, 0.9)
    ids = _capture(demo.workdir, start, rows, reversed_)
    _ground_truth(demo.workdir, start + timedelta(hours=1), ids, labels)
    run = _run(demo, dev_assembly, 2)
    assert run.status == "Succeeded", run.failure
    auc = run.alarms[f"{PREFIX}-drift-model-quality-auc"]
    assert auc.state == "ALARM" and auc.value is not None and auc.value < 0.7
    assert _state(run, "monitoring-model-quality-stale") == "OK"
    assert run.results["model-quality"]["status"] == "CompletedWithViolations"


def test_a_failed_run_crosses_the_failure_and_stale_alarms(demo, dev_assembly) -> None:
    live = _live(
        demo.workdir,
        BaselineStatisticsUri="s3://boostline-dev-artifacts-123456789012-eu-west-1/runs/gone.json",
    )
    run = _run(demo, dev_assembly, 3, live)
    assert run.status == "Failed" and "DataQualityCheck" in run.failure
    # Every alarm has a state: missing data is what each alarm's TreatMissingData says.
    assert {a.state for a in run.alarms.values()} <= {"OK", "ALARM"}
    assert _state(run, "monitoring-failed") == "ALARM"
    assert _state(run, "monitoring-data-quality-stale") == "ALARM"  # nothing reported


def test_no_baselines_means_no_monitor_to_run(demo, dev_assembly) -> None:
    with pytest.raises(MonitoringUnavailable, match="no data-quality baselines"):
        _run(demo, dev_assembly, 4, _live(demo.workdir, BaselineStatisticsUri="none"))


def test_each_run_is_recorded_with_its_window_and_alarms(demo) -> None:
    records = sorted((Path(demo.workdir) / "monitoring").glob("*.json"))
    assert records
    data: dict[str, Any] = json.loads(records[-1].read_text())
    assert {"window", "alarms", "results", "status"} <= set(data)
