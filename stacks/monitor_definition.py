"""The monitoring pipeline's definition: our own checks of the live endpoint.

One Processing step per check (data quality, and model quality when configured),
each running training_scripts/monitor_job.py in the XGBoost image from the same
source archive as the training pipeline. Written out by hand (plain
CreateProcessingJob requests as the steps' arguments, stacks/processing_step.py), so
it is deterministic and needs no SDK; the local runtime executes this same definition.

Parameters: the live model (set by the schedule from the monitoring stack's
parameters) and the window (`auto`: the last full schedule period; a person or
the local runtime may pass ISO times to check another window). Reports go to
`<reports_uri>/<check>/<execution id>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pipeline_definition import DEFINITION_VERSION
from .processing_step import OUTPUT_DIR, ProcessingJob, parameter, per_execution, processing_step

LIVE_MODEL_PARAMETERS = (
    "ModelPackageArn",
    "BaselineStatisticsUri",
    "BaselineConstraintsUri",
    "DecisionThreshold",
)
WINDOW_PARAMETERS = ("WindowStart", "WindowEnd")
STEPS = {"data-quality": "DataQualityCheck", "model-quality": "ModelQualityCheck"}


@dataclass(frozen=True)
class MonitorJob(ProcessingJob):
    """What both checks' jobs share."""

    captures_uri: str
    ground_truth_uri: str
    reports_uri: str
    endpoint: str
    hours: int
    namespace: str


def _report_uri(job: MonitorJob, check: str) -> dict[str, Any]:
    return per_execution(f"{job.reports_uri}/{check}")


def _arguments(job: MonitorJob, check: str) -> list[Any]:
    args: list[Any] = [
        check,
        "--model-package",
        parameter("ModelPackageArn"),
        "--captures",
        job.captures_uri,
        "--endpoint",
        job.endpoint,
        "--hours",
        str(job.hours),
        "--window-start",
        parameter("WindowStart"),
        "--window-end",
        parameter("WindowEnd"),
        "--output-dir",
        OUTPUT_DIR,
        "--report-uri",
        _report_uri(job, check),
    ]
    if check == "data-quality":
        args += [
            "--baseline-statistics",
            parameter("BaselineStatisticsUri"),
            "--constraints",
            parameter("BaselineConstraintsUri"),
        ]
    else:
        args += [
            "--threshold",
            parameter("DecisionThreshold"),
            "--ground-truth",
            job.ground_truth_uri,
        ]
    return args


def _step(job: MonitorJob, check: str) -> dict[str, Any]:
    return processing_step(
        job,
        name=STEPS[check],
        description=f"Our own {check} check of the endpoint's captured traffic",
        script="monitor_job.py",
        arguments=_arguments(job, check),
        output=("report", _report_uri(job, check)),
        volume_size_gb=20,
        environment={"BOOSTLINE_METRICS_NAMESPACE": job.namespace},
    )


def monitoring_pipeline_definition(job: MonitorJob, checks: tuple[str, ...]) -> dict[str, Any]:
    """The pipeline: one independent step per check, so one failing leaves the other's report."""
    parameters = [
        {"Name": n, "Type": "String", "DefaultValue": "none"} for n in LIVE_MODEL_PARAMETERS
    ]
    parameters += [{"Name": n, "Type": "String", "DefaultValue": "auto"} for n in WINDOW_PARAMETERS]
    return {
        "Version": DEFINITION_VERSION,
        "Metadata": {},
        "Parameters": parameters,
        # No PipelineExperimentConfig: an experiment trial per hourly run is clutter, and
        # the pipeline role has no Experiments permission (the training pipeline has none).
        "Steps": [_step(job, check) for check in checks],
    }
