"""One run of our own monitors of the live endpoint: data quality or model quality.

The monitoring pipeline `{project}-{stage}-monitoring` (the monitoring stack) runs
this script in the XGBoost image on the monitoring schedule, once per check, with
the live model's package, baselines and decision threshold as its parameters (the
serving stack's, copied to the monitoring stack by the deployer once the endpoint
is in service). Each run:

1. describes the live model package: its model.tar.gz (for the feature manifest,
   member `boostline/feature_manifest.json`) and its evaluation.json
   (`ModelMetrics.ModelQuality.Statistics`, the model-quality baseline);
2. reads the endpoint's data capture for the window (`--window-start/--window-end`,
   default: the last `--hours` full hours), skipping and counting damaged lines;
   model quality also reads the ground truth that has arrived since the window began;
3. runs `data_quality.check` or `model_quality.run_check` and writes Model Monitor's
   files (`statistics.json`, `constraint_violations.json`, and for model quality the
   `constraints.json` derived from the evaluation) to `--output-dir`, which the job
   uploads to the monitoring bucket;
4. publishes its metrics (monitor_publish.py) and ends with one EventBridge event
   whose status is Completed, CompletedWithViolations or InsufficientData.

Every location may be an `s3://` URI or a local path; `--no-metrics` and
`--no-event` skip CloudWatch and EventBridge (also skipped without a namespace).

CLI::

    python monitor_job.py data-quality --model-package ARN \
        --baseline-statistics URI --constraints URI --captures URI --endpoint NAME \
        --output-dir DIR [--report-uri URI] [--hours 1] [--window-start ISO] [--window-end ISO]
    python monitor_job.py model-quality --model-package ARN --threshold 0.42 \
        --captures URI --ground-truth URI --endpoint NAME --output-dir DIR ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import data_quality as dq
    import model_quality as mq
    import monitor_publish as pub
    from job_message import report_failure
    from monitor_io import (
        NONE,
        ClientFactory,
        MonitorError,
        Window,
        boto3_client,
        describe_package,
        evaluation_url,
        fetch_file,
        fetch_partitions,
        model_data_url,
        read_manifest,
        window_captures,
    )
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import data_quality as dq
    from training_scripts import model_quality as mq
    from training_scripts import monitor_publish as pub
    from training_scripts.job_message import report_failure
    from training_scripts.monitor_io import (
        NONE,
        ClientFactory,
        MonitorError,
        Window,
        boto3_client,
        describe_package,
        evaluation_url,
        fetch_file,
        fetch_partitions,
        model_data_url,
        read_manifest,
        window_captures,
    )

COMPLETED = "Completed"
WITH_VIOLATIONS = "CompletedWithViolations"
INSUFFICIENT_DATA = "InsufficientData"


class RunResult(dict):
    """What a run found: status, violations, rows, message (also the event's detail)."""


def _package(args: argparse.Namespace, client: ClientFactory) -> dict[str, Any]:
    if args.model_data or getattr(args, "evaluation", ""):
        return {"ModelPackageArn": args.model_package}
    return describe_package(args.model_package, client)


def _window_captures(
    args: argparse.Namespace, window: Window, work: Path, client: ClientFactory
) -> tuple[Path, dict[str, int]]:
    fetched = work / "fetched"
    # One hour past the end too: a record of the window's last minutes may be written
    # into the next hour's folder; records are kept by their inference time.
    partitions = window.partitions(until=window.end + timedelta(hours=1))
    fetch_partitions(args.captures, partitions, fetched, client)
    captures = work / "captures"
    return captures, window_captures(fetched, captures, window, dq.parse_utc_time)


def data_quality(args: argparse.Namespace, window: Window, client: ClientFactory) -> RunResult:
    output = Path(args.output_dir)
    with tempfile.TemporaryDirectory(prefix="boostline-monitor-") as tmp:
        work = Path(tmp)
        package = _package(args, client)
        model_url = args.model_data or model_data_url(package)
        manifest = read_manifest(fetch_file(model_url, work / "model.tar.gz", client))
        if NONE in (args.baseline_statistics, args.constraints):
            raise MonitorError("the live model has no data-quality baselines")
        baseline = json.loads(
            fetch_file(args.baseline_statistics, work / "statistics.json", client).read_text()
        )
        constraints = json.loads(
            fetch_file(args.constraints, work / "constraints.json", client).read_text()
        )
        captures, counts = _window_captures(args, window, work, client)
        names, kinds, categories = dq.feature_spec(manifest)
        rows = dq.read_rows(dq.find_data_files(captures), names) if counts["records"] else []

    drift: dict[str, float] = {}
    if rows:
        columns = dq.rows_to_columns(rows)
        current = dq.compute_statistics(columns, names, kinds, categories=categories)
        report = dq.check(current, baseline, constraints)
        drift = dq.distances(current, baseline)
        dq._write_json(output / "statistics.json", current)
    else:
        report = {"violations": []}
    report["boostline"] = {**window.as_dict(), "capture": counts, "rows": len(rows)}
    dq._write_json(output / "constraint_violations.json", report)
    violations = len(report["violations"])
    if not rows:
        status, message = INSUFFICIENT_DATA, "Completed: no captured data in the monitoring window."
    elif violations:
        status = WITH_VIOLATIONS
        message = (
            f"CompletedWithViolations: Job completed successfully with {violations} violations."
        )
    else:
        status, message = COMPLETED, "Completed: Job completed successfully with no violations."
    result = RunResult(status=status, violations=violations, rows=len(rows), message=message)
    result["metrics"] = pub.run_metrics(
        pub.DATA_QUALITY, args.endpoint, violations=violations, rows=len(rows), drift=drift
    )
    return result


def model_quality(args: argparse.Namespace, window: Window, client: ClientFactory) -> RunResult:
    output = Path(args.output_dir)
    with tempfile.TemporaryDirectory(prefix="boostline-monitor-") as tmp:
        work = Path(tmp)
        package = _package(args, client)
        evaluation_file = fetch_file(
            args.evaluation or evaluation_url(package), work / "evaluation.json", client
        )
        evaluation = json.loads(evaluation_file.read_text(encoding="utf-8"))
        _, constraints = mq.baseline_from_evaluation(evaluation)
        mq._write_json(output / "constraints.json", constraints)
        captures, counts = _window_captures(args, window, work, client)
        truth = work / "ground-truth"
        # Labels arrive after the predictions: every hour from the window's start until
        # now, or --label-hours past the window's end if that is later (a window re-checked
        # long after, or a clock behind); hours that hold nothing cost one listing each.
        until = max(args.now, window.end + timedelta(hours=args.label_hours))
        fetch_partitions(args.ground_truth, window.partitions(until=until), truth, client)
        outcome = mq.run_check(
            captures,
            truth,
            constraints,
            threshold=args.threshold,
            min_rows=args.min_rows,
            start=window.start,
            end=window.end,
            output_dir=output,
        )
    metrics = outcome.statistics.get("binary_classification_metrics") or {}
    auc = (metrics.get("auc") or {}).get("value")
    rows = int(outcome.statistics.get("dataset", {}).get("item_count", 0))
    violations = len(outcome.violations.get("violations", []))
    status = {
        mq.COMPLETED_WITH_VIOLATIONS: WITH_VIOLATIONS,
        mq.INSUFFICIENT_DATA: INSUFFICIENT_DATA,
    }.get(outcome.status, COMPLETED)
    result = RunResult(status=status, violations=violations, rows=rows, message=outcome.message)
    result["capture"] = counts
    result["metrics"] = pub.run_metrics(
        pub.MODEL_QUALITY,
        args.endpoint,
        violations=violations,
        rows=rows,
        auc=float(auc) if isinstance(auc, (int, float)) else None,
    )
    return result


CHECKS = {pub.DATA_QUALITY: data_quality, pub.MODEL_QUALITY: model_quality}


def run(args: argparse.Namespace, client: ClientFactory = boto3_client) -> RunResult:
    """One monitoring run; publishes its metrics and its completion event."""
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    window = _window(args)
    result = CHECKS[args.check](args, window, client)
    namespace = os.environ.get(pub.NAMESPACE_ENV, "")
    if namespace and not args.no_metrics:
        pub.publish_metrics(namespace, result["metrics"], client)
    detail = pub.completion_detail(
        args.check,
        args.endpoint,
        status=result["status"],
        violations=result["violations"],
        rows=result["rows"],
        window=window.as_dict(),
        report_uri=args.report_uri or str(args.output_dir),
        model_package=args.model_package,
        message=result["message"],
    )
    result["event"] = detail
    if namespace and not args.no_event:
        pub.put_completion_event(detail, client)
    print(result["message"], flush=True)
    return result


def _window(args: argparse.Namespace) -> Window:
    start, end = args.window_start, args.window_end
    if start is None and end is None:
        return Window.last_full_hours(args.now, args.hours)
    if start is None or end is None:
        raise MonitorError("--window-start and --window-end go together")
    return Window(start, end)


def _time_or_auto(value: str) -> datetime | None:
    return None if value in ("", "auto") else dq.parse_utc_time(value)


def _threshold(value: str) -> float | None:
    if value in ("", NONE):
        return None
    threshold = float(value)
    if not 0.0 < threshold < 1.0:
        raise argparse.ArgumentTypeError(f"{value}: a threshold lies strictly between 0 and 1")
    return threshold


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Own-code monitor of the live endpoint")
    p.add_argument("check", choices=sorted(CHECKS))
    p.add_argument("--model-package", default=NONE, help="live model package version ARN")
    p.add_argument("--model-data", default="", help="model.tar.gz (instead of the package's)")
    p.add_argument("--evaluation", default="", help="evaluation.json (instead of the package's)")
    p.add_argument("--baseline-statistics", default=NONE)
    p.add_argument("--constraints", default=NONE)
    p.add_argument("--threshold", type=_threshold, default=None, help="the live decision threshold")
    p.add_argument("--min-rows", type=int, default=mq.DEFAULT_MIN_ROWS)
    p.add_argument(
        "--label-hours",
        type=int,
        default=24,
        help="hours after the window's end whose ground truth is read (default 24)",
    )
    p.add_argument("--captures", required=True, help="data-capture prefix of the endpoint variant")
    p.add_argument("--ground-truth", default="", help="ground-truth prefix (model quality)")
    p.add_argument("--endpoint", required=True, help="the metrics' Endpoint dimension")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--report-uri", default="", help="where the output lands (for the event)")
    p.add_argument("--hours", type=int, default=1, help="full hours checked by default")
    p.add_argument("--window-start", type=_time_or_auto, default=None, help="ISO time or auto")
    p.add_argument("--window-end", type=_time_or_auto, default=None, help="ISO time or auto")
    p.add_argument("--now", type=dq.parse_utc_time, default=None, help="ISO time (default: now)")
    p.add_argument("--no-metrics", action="store_true", help="do not publish to CloudWatch")
    p.add_argument("--no-event", action="store_true", help="do not put the completion event")
    args = p.parse_args(argv)
    if args.now is None:
        args.now = datetime.now(timezone.utc)
    if args.check == pub.MODEL_QUALITY and not args.ground_truth:
        p.error("model-quality needs --ground-truth")
    return args


def main(argv: list[str] | None = None, client: ClientFactory = boto3_client) -> int:
    try:
        run(parse_args(argv), client)
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure ends with a clear message
        report_failure(f"monitor failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
