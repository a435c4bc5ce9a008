"""model_quality.py: captured predictions joined with ground truth, in Model Monitor's format."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from boostline.serving.capture import CaptureWriter, capture_record
from training_scripts import evaluate, inference, preprocess
from training_scripts import model_quality as mq

CSV, JSON = inference.CSV, inference.JSON
ENDPOINT, VARIANT = "loans", "AllTraffic"
START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
MULTI_ROW = 5  # rows per multi-row request
SINGLE_ROWS = 200  # the first rows go one per request, the rest MULTI_ROW at a time


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """A small model, its test rows, their labels and the evaluation's metrics."""
    root = tmp_path_factory.mktemp("model-quality")
    generate_to_dir(2000, root / "raw", seed=21)
    preprocess.preprocess(root / "raw", SCHEMA_PATH, root / "prep", salt="x")
    train = pd.concat(
        pd.read_csv(f, header=None) for f in sorted((root / "prep" / "train").glob("*.csv"))
    ).to_numpy(np.float64)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(train[:, 1:], label=train[:, 0], nthread=1),
        num_boost_round=30,
    )
    model_dir = root / "model"
    (model_dir / "boostline").mkdir(parents=True)
    (model_dir / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    (model_dir / "boostline" / "feature_manifest.json").write_bytes(
        (root / "prep" / "manifest" / "feature_manifest.json").read_bytes()
    )
    lines = (root / "prep" / "test" / "test.csv").read_text().splitlines()
    labels = np.array([int(float(line.split(",", 1)[0])) for line in lines], dtype=np.int8)
    rows = [line.split(",", 1)[1] for line in lines]
    model = inference.load_model(model_dir, threads=1)
    features = inference.parse_csv(model, "\n".join(rows).encode())
    scores = inference.predict(model, features).astype(np.float64)
    result = evaluate.binary_metrics(
        labels,
        scores,
        rule="max_f1",
        cost_false_negative=5.0,
        cost_false_positive=1.0,
        bootstrap_samples=10,
    )
    evaluation = {
        "binary_classification_metrics": result["binary_classification_metrics"],
        "decision_threshold": result["decision_threshold"],
        "dataset": {"test_rows": len(labels)},
    }
    (root / "evaluation.json").write_text(json.dumps(evaluation))
    model = inference.load_model(model_dir, threshold=result["decision_threshold"], threads=1)
    assert len(rows) >= SINGLE_ROWS + 10 * MULTI_ROW and 0 < labels.sum() < len(labels)
    return {
        "root": root,
        "model": model,
        "rows": rows,
        "labels": labels,
        "evaluation": evaluation,
        "evaluation_path": root / "evaluation.json",
    }


@pytest.fixture(scope="module")
def constraints(book) -> dict:
    return mq.baseline_from_evaluation(book["evaluation"])[1]


def write_traffic(
    book: dict,
    root: Path,
    labels: Callable[[np.ndarray], np.ndarray] = lambda y: y,
    keep: Callable[[int], bool] = lambda i: True,
) -> tuple[Path, Path, list[str]]:
    """Capture every test row through the real hooks, then write ground truth.

    Rows go one per request (even ones with a client inference id, odd ones known
    by their event id only; answers alternate JSON and CSV), the rest five per
    request. `labels` maps the true labels to the ones written; `keep(i)` says
    whether request i gets ground truth at all. Returns the two directories and
    the request ids in order.
    """
    capture, truth = root / "capture", root / "ground-truth"
    writer = CaptureWriter(capture, ENDPOINT, VARIANT)
    y = labels(book["labels"])
    rows = book["rows"]
    requests = [[i] for i in range(SINGLE_ROWS)] + [
        list(range(i, min(i + MULTI_ROW, len(rows))))
        for i in range(SINGLE_ROWS, len(rows), MULTI_ROW)
    ]
    ids, truth_lines = [], []
    for n, members in enumerate(requests):
        body = "\n".join(rows[i] for i in members).encode()
        accept = CSV if n % 4 == 1 else JSON
        response = inference.handle(book["model"], body, CSV, accept)
        assert response.status == 200
        event_id = str(uuid.uuid4())
        inference_id = f"app-{n}" if n % 2 == 0 else None
        when = START + timedelta(minutes=n)
        record = capture_record(
            body, CSV, response.body, response.content_type, event_id, when, inference_id
        )
        writer.write(record, when)
        key = inference_id or event_id
        ids.append(key)
        if keep(n):
            data = ",".join(str(int(y[i])) for i in members)
            truth_lines.append(ground_truth(key, data))
    writer.close()
    folder = truth / "2026" / "03" / "01" / "12"
    folder.mkdir(parents=True)
    (folder / "labels.jsonl").write_text("\n".join(truth_lines) + "\n")
    return capture, truth, ids


def ground_truth(key: str, data: str, encoding: str = "CSV") -> str:
    return json.dumps(
        {
            "groundTruthData": {"data": data, "encoding": encoding},
            "eventMetadata": {"eventId": key},
            "eventVersion": "0",
        }
    )


def names(outcome: mq.CheckOutcome) -> set[str]:
    return {v["metric_name"] for v in outcome.violations["violations"]}


# --------------------------------------------------------------------------- baseline


def test_baseline_constraints_follow_the_model_monitor_format(book) -> None:
    statistics, constraints = mq.baseline_from_evaluation(
        book["evaluation"], tolerance={"auc": 0.03}
    )
    metrics = book["evaluation"]["binary_classification_metrics"]
    block = constraints["binary_classification_constraints"]
    assert constraints["version"] == 0.0 and set(block) == {"auc", "f1", "precision", "recall"}
    assert block["auc"] == {
        "threshold": pytest.approx(metrics["auc"]["value"] - 0.03),
        "comparison_operator": "LessThanThreshold",
    }
    assert block["f1"]["threshold"] == pytest.approx(metrics["f1"]["value"] - 0.05)
    assert (
        constraints["boostline"]["decision_threshold"] == book["evaluation"]["decision_threshold"]
    )
    assert statistics["version"] == 0.0
    assert statistics["dataset"]["item_count"] == len(book["labels"])
    assert statistics["binary_classification_metrics"] == metrics

    _, tight = mq.baseline_from_predictions(
        book["labels"], np.linspace(0, 1, len(book["labels"])), 0.5, tolerance=0.5
    )
    assert all(c["threshold"] >= 0.0 for c in tight["binary_classification_constraints"].values())
    with pytest.raises(mq.ModelQualityError, match="none of the metrics"):
        mq.suggest_constraints({"auc": {"value": None}}, metric_names=["auc"])
    assert mq.parse_tolerance("0.1") == 0.1
    assert mq.parse_tolerance("auc=0.02, f1=0.1") == {"auc": 0.02, "f1": 0.1}


# --------------------------------------------------------------------------- check


def test_true_labels_reproduce_the_evaluation_without_violations(book, constraints, tmp_path):
    capture, truth, ids = write_traffic(book, tmp_path)
    outcome = mq.run_check(capture, truth, constraints, output_dir=tmp_path / "out")
    assert outcome.status == mq.COMPLETED, outcome.violations
    assert outcome.message == "Completed: Job completed successfully with no violations."
    n = len(book["labels"])
    assert outcome.counts["joined_rows"] == n and outcome.counts["joined_requests"] == len(ids)
    assert outcome.counts["captures_without_ground_truth"] == 0

    written = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert written["version"] == 0.0 and written["dataset"]["item_count"] == n
    assert datetime.fromisoformat(written["dataset"]["evaluation_time"].replace("Z", "+00:00"))
    metrics = written["binary_classification_metrics"]
    expected = book["evaluation"]["binary_classification_metrics"]
    for key in ("auc", "precision", "recall", "f1", "accuracy", "pr_auc"):
        assert metrics[key]["value"] == pytest.approx(expected[key]["value"], abs=0.005), key
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert sum(v for row in metrics["confusion_matrix"].values() for v in row.values()) == n
    assert isinstance(metrics["auc"]["standard_deviation"], float)  # 200 rows or more
    for key in ("f0_5", "f2", "recall_best_constant_classifier", "true_negative_rate"):
        assert 0.0 <= metrics[key]["value"] <= 1.0
    assert metrics["precision_best_constant_classifier"]["value"] == pytest.approx(
        book["labels"].mean()
    )
    assert set(metrics["receiver_operating_characteristic_curve"]) == {
        "false_positive_rates",
        "true_positive_rates",
    }
    assert written["boostline"]["outcome"] == "Completed"
    assert written["boostline"]["decision_threshold_source"] == "constraints"
    assert written["boostline"]["decision_threshold"] == book["evaluation"]["decision_threshold"]
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {
        "violations": []
    }


def test_flipped_labels_violate_the_auc_constraint(book, constraints, tmp_path) -> None:
    capture, truth, _ = write_traffic(book, tmp_path, labels=lambda y: 1 - y)
    outcome = mq.run_check(capture, truth, constraints, output_dir=tmp_path / "out")
    assert outcome.status == mq.COMPLETED_WITH_VIOLATIONS
    assert "auc" in names(outcome)
    count = len(outcome.violations["violations"])
    assert outcome.message == (
        f"CompletedWithViolations: Job completed successfully with {count} violations."
    )
    auc = next(v for v in outcome.violations["violations"] if v["metric_name"] == "auc")
    assert auc["constraint_check_type"] == "LessThanThreshold"
    assert auc["description"].startswith("Metric auc with ")
    assert "was LessThanThreshold" in auc["description"]
    on_disk = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert on_disk == outcome.violations

    # shuffled labels: no better than chance
    rng = np.random.default_rng(3)
    capture, truth, _ = write_traffic(book, tmp_path / "shuffled", labels=rng.permutation)
    assert "auc" in names(mq.run_check(capture, truth, constraints))


def test_unmatched_and_unreadable_records_are_ignored_and_counted(book, constraints, tmp_path):
    capture, truth, ids = write_traffic(book, tmp_path, keep=lambda n: n % 10 != 3)
    folder = truth / "2026" / "03" / "01" / "13"
    folder.mkdir(parents=True)
    multi = ids[SINGLE_ROWS]  # a five-row request given one label: joins nothing
    (folder / "late.jsonl").write_text(
        "\n".join(
            [
                *(ground_truth(f"nobody-{i}", "1") for i in range(7)),
                ground_truth(multi, "1"),
                "not json",
                json.dumps({"groundTruthData": {"data": "2"}, "eventMetadata": {"eventId": "x"}}),
            ]
        )
        + "\n"
    )
    # an endpoint health check and an unreadable capture record
    answer = b'{"predictions":[{"probability":0.5}]}'
    health = capture_record(b"1", CSV, answer, JSON, "e", START, "boostline-health-check-1")
    (capture / "extra.jsonl").write_text(json.dumps(health) + "\n{broken\n")

    outcome = mq.run_check(capture, truth, constraints)
    counts = outcome.counts
    dropped = sum(1 for n in range(len(ids)) if n % 10 == 3)
    assert counts["captures_without_ground_truth"] == dropped
    assert counts["ground_truth_without_capture"] == 7
    assert counts["label_count_mismatch"] == 1
    assert counts["duplicate_ground_truth_ids"] == 1  # the multi-row id, overwritten
    assert counts["invalid_ground_truth_records"] == 2
    assert counts["health_check_captures"] == 1 and counts["unreadable_capture_records"] == 1
    assert counts["joined_requests"] == len(ids) - dropped - 1
    assert outcome.status == mq.COMPLETED  # the remaining rows still reproduce the evaluation
    assert outcome.statistics["boostline"]["counts"] == counts


def test_too_few_rows_is_insufficient_data_not_an_alarm(book, constraints, tmp_path) -> None:
    capture, truth, _ = write_traffic(book, tmp_path, labels=lambda y: 1 - y, keep=lambda n: n < 20)
    outcome = mq.run_check(capture, truth, constraints, min_rows=50, output_dir=tmp_path / "out")
    assert outcome.status == mq.INSUFFICIENT_DATA
    assert outcome.message.startswith("Completed: ")
    assert "insufficient data: 20 labelled rows joined, at least 50 needed" in outcome.message
    violations = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())
    assert (
        violations["violations"] == [] and violations["boostline"]["outcome"] == "InsufficientData"
    )
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 20
    assert statistics["binary_classification_metrics"] == {}

    # enough rows but a single class: no AUC to speak of
    capture, truth, _ = write_traffic(book, tmp_path / "zeros", labels=np.zeros_like)
    one_class = mq.run_check(capture, truth, constraints, min_rows=5)
    assert one_class.status == mq.INSUFFICIENT_DATA
    assert "only one class (0 defaults)" in one_class.message

    # no ground truth yet, or no traffic at all: the same, not a crash
    empty = mq.run_check(tmp_path / "none", tmp_path / "nothing", constraints)
    assert empty.status == mq.INSUFFICIENT_DATA and empty.counts["joined_rows"] == 0
    assert len(empty.statistics["boostline"]["notes"]) == 2


def test_time_window_and_threshold_choices(book, constraints, tmp_path) -> None:
    capture, truth, ids = write_traffic(book, tmp_path)
    later = START + timedelta(minutes=100)
    windowed = mq.run_check(capture, truth, constraints, start=later, min_rows=10)
    assert windowed.counts["captures_outside_window"] == 100
    assert windowed.counts["ground_truth_without_capture"] == 100

    explicit = mq.run_check(capture, truth, constraints, threshold=0.99)
    assert explicit.statistics["boostline"]["decision_threshold_source"] == "argument"
    assert explicit.statistics["binary_classification_metrics"]["recall"]["value"] < 0.1
    assert "recall" in names(explicit) and "auc" not in names(explicit)

    # constraints without a recorded threshold: the endpoint's own decisions
    bare = {k: v for k, v in constraints.items() if k != "boostline"}
    own = mq.run_check(capture, truth, bare)
    assert own.statistics["boostline"]["decision_threshold_source"] == "endpoint decision"
    reference = mq.run_check(capture, truth, constraints)
    assert (
        own.statistics["binary_classification_metrics"]["confusion_matrix"]
        == reference.statistics["binary_classification_metrics"]["confusion_matrix"]
    )


def test_output_and_label_formats() -> None:
    rows = mq._prediction_rows("0.250000,approve\n0.900000,reject,income,0.3", CSV)
    assert rows == [(0.25, False), (0.9, True)]
    assert mq._prediction_rows('{"predictions":[{"score":0.4}]}', JSON) == [(0.4, None)]
    assert mq._prediction_rows(
        '{"probability":0.7,"default":true}\n{"probability":0.1,"default":false}',
        "application/jsonlines",
    ) == [(0.7, True), (0.1, False)]
    assert mq.parse_labels({"data": "1,0\n1", "encoding": "CSV"}) == [1, 0, 1]
    assert mq.parse_labels({"data": "[1, 0, true]", "encoding": "JSON"}) == [1, 0, 1]
    assert mq.parse_labels({"data": base64.b64encode(b"0").decode(), "encoding": "BASE64"}) == [0]
    with pytest.raises(ValueError):
        mq.parse_labels({"data": "maybe", "encoding": "CSV"})
    record = capture_record(
        b"1,2", CSV, b"0.3", "application/octet-stream", "ev", START, None
    )  # stored as BASE64
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    request = mq._captured_request(record)
    assert request.key == "ev" and request.probabilities == [0.3]
    assert request.inference_time == START


# --------------------------------------------------------------------------- command line


def test_command_line(book, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "job-output"))
    baseline = tmp_path / "baseline"
    assert (
        mq.main(
            [
                "baseline",
                "--evaluation",
                str(book["evaluation_path"]),
                "--output-dir",
                str(baseline),
                "--tolerance",
                "auc=0.02",
            ]
        )
        == 0
    )
    constraints = json.loads((baseline / "constraints.json").read_text())
    auc = book["evaluation"]["binary_classification_metrics"]["auc"]["value"]
    assert constraints["binary_classification_constraints"]["auc"]["threshold"] == pytest.approx(
        auc - 0.02
    )
    assert (baseline / "statistics.json").is_file()

    capture, truth, _ = write_traffic(book, tmp_path, labels=lambda y: 1 - y)
    check = [
        "check",
        "--capture-dir",
        str(capture),
        "--ground-truth-dir",
        str(truth),
        "--constraints",
        str(baseline / "constraints.json"),
        "--output-dir",
        str(tmp_path / "report"),
    ]
    capsys.readouterr()
    assert mq.main(check) == 0
    out = capsys.readouterr().out
    assert "CompletedWithViolations: Job completed successfully with" in out
    assert mq.main([*check, "--fail-on-violations"]) == 2
    assert not (tmp_path / "job-output").exists()  # no job container here: no exit message

    assert mq.main([*check[:5], "--constraints", str(tmp_path / "missing.json"), *check[7:]]) == 1
    err = capsys.readouterr().err
    assert "model quality check failed: cannot read constraints" in err
    message = (tmp_path / "job-output" / "message").read_text()
    assert message.startswith("model quality check failed")

    # a data-quality constraints file is refused with a reason
    (tmp_path / "dq.json").write_text(json.dumps({"version": 0, "features": []}))
    assert mq.main([*check[:5], "--constraints", str(tmp_path / "dq.json"), *check[7:]]) == 1
    assert "binary_classification_constraints" in capsys.readouterr().err


def test_runs_as_a_script_beside_its_siblings(book, tmp_path) -> None:
    """As in the processing container: `python model_quality.py`, siblings imported by name."""
    script = Path(mq.__file__)
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("1,0.9\n0,0.2\n1,0.6\n0,0.4\n0,0.1\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BOOSTLINE_OUTPUT_DIR"] = str(tmp_path / "job")
    done = subprocess.run(
        [
            sys.executable,
            script.name,
            "baseline",
            "--predictions",
            str(predictions),
            "--threshold",
            "0.5",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    constraints = json.loads((tmp_path / "out" / "constraints.json").read_text())
    assert constraints["binary_classification_constraints"]["auc"]["threshold"] == pytest.approx(
        0.95
    )
