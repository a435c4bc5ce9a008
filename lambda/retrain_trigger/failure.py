"""Why a pipeline execution failed, in the words of the script that failed.

On SageMaker a training job whose script exits non-zero reports the toolkit's
generic ``ExecuteUserScriptError: Command "..."`` as its FailureReason; the
script's own reason is one line on its stderr, starting ``Boostline failure: ``,
in CloudWatch Logs: group ``/aws/sagemaker/TrainingJobs`` (processing jobs:
``/aws/sagemaker/ProcessingJobs``), stream ``<job name>/algo-<n>-<epoch>``.

`explain` lists the execution's failed steps (ListPipelineExecutionSteps), and
for each training, tuning or processing job among them reads that line
(FilterLogEvents with the job name as stream prefix and a filter pattern). A
tuning job's trials are training jobs named ``<tuning job>-<nnn>-<hash>``, so
the tuning job's name is their common prefix.

It is diagnosis, never a reason to fail the invocation: it is bounded (two
pages of steps, two pages of log events per job, a few jobs, a time budget)
and an AWS error or missing logs leave SageMaker's own FailureReason as the
reason.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MARKER = "Boostline failure: "
FILTER_PATTERN = '"Boostline failure:"'
TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOGS = "/aws/sagemaker/ProcessingJobs"
# Step metadata key -> (log group, stream prefix after the job name)
JOB_LOGS = {
    "TrainingJob": (TRAINING_LOGS, "/"),
    "ProcessingJob": (PROCESSING_LOGS, "/"),
    "TuningJob": (TRAINING_LOGS, "-"),  # its trials' streams: <tuning job>-<nnn>-<hash>/algo-...
}
MAX_STEP_PAGES = 2
MAX_LOG_PAGES = 2
MAX_JOBS = 3
MAX_REASON_CHARS = 1000
LOOKUP_SECONDS = 20.0
# A host that only lost its connection to a failed peer says so; the cause is elsewhere.
LOST_PEER = re.compile(
    r"collective|comm\.cc|socket\.h|Connection reset|Connection refused|Broken pipe"
)


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class StepFailure:
    step: str
    failure_reason: str = ""  # what SageMaker reports for the step
    job_type: str = ""  # TrainingJob, TuningJob, ProcessingJob, or "" (e.g. a Fail step)
    job_name: str = ""
    log_group: str = ""
    script_reason: str = ""  # the script's `Boostline failure: ` line, without the marker
    log_stream: str = ""
    note: str = ""  # why no script reason was found, when one was looked for

    @property
    def reason(self) -> str:
        return self.script_reason or self.failure_reason or "no reason given"

    def summary(self) -> str:
        return f"{self.step}: {self.reason}"


@dataclass(frozen=True)
class PipelineFailure:
    execution_arn: str
    steps: tuple[StepFailure, ...] = ()
    note: str = ""  # why the steps could not be read, when they could not

    @property
    def reason(self) -> str:
        if self.steps:
            return shorten("; ".join(step.summary() for step in self.steps))
        return shorten(f"reason unavailable ({self.note or 'no failed step listed'})")

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "steps": [asdict(step) for step in self.steps],
            "reason": self.reason,
        }


@dataclass
class Budget:
    seconds: float = LOOKUP_SECONDS
    clock: Callable[[], float] = time.monotonic
    started: float | None = field(default=None)

    def left(self) -> bool:
        if self.started is None:
            self.started = self.clock()
        return self.clock() - self.started < self.seconds


def _error(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        message = str(details.get("Message", ""))
        if message.lstrip().startswith("<"):  # a proxy's or an emulator's HTML error page
            message = "an HTML error page"
        return shorten(f"{error.operation_name}: {details.get('Code', '')}: {message}", 300)
    return shorten(f"{type(error).__name__}: {error}", 300)


def failed_steps(sagemaker: Any, execution_arn: str, budget: Budget) -> list[dict[str, Any]]:
    """The execution's steps whose status is Failed (at most MAX_STEP_PAGES pages)."""
    request: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": 100}
    failed: list[dict[str, Any]] = []
    for _ in range(MAX_STEP_PAGES):
        if not budget.left():
            break
        page = sagemaker.list_pipeline_execution_steps(**request)
        failed += [
            s for s in page.get("PipelineExecutionSteps", []) if s.get("StepStatus") == "Failed"
        ]
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return failed


def _job(step: dict[str, Any]) -> tuple[str, str]:
    """(metadata key, job name) of the step's job, or ("", "")."""
    metadata = step.get("Metadata") or {}
    for key in JOB_LOGS:
        arn = (metadata.get(key) or {}).get("Arn")
        if isinstance(arn, str) and "/" in arn:
            return key, arn.rsplit("/", 1)[-1]
    return "", ""


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def script_reason(
    logs: Any,
    log_group: str,
    stream_prefix: str,
    budget: Budget,
    start_time: int | None = None,
    end_time: int | None = None,
) -> tuple[str, str, str]:
    """(reason, log stream, note): the first `Boostline failure: ` line under the prefix.

    A line from a host that only lost a failed peer comes after the others.
    The prefix is matched here, without case, not sent as logStreamNamePrefix: the
    job name comes from the step's job ARN, which SageMaker writes in lower case,
    while the log streams keep the job's own mixed-case name
    (pipelines-<id>-Preprocess-<suffix>). The step's time window narrows the search.
    """
    request: dict[str, Any] = {
        "logGroupName": log_group,
        "filterPattern": FILTER_PATTERN,
        "limit": 50,
    }
    if start_time is not None:
        request["startTime"] = max(0, start_time - 60_000)
    if end_time is not None:
        request["endTime"] = end_time + 60_000
    prefix = stream_prefix.lower()
    found: list[tuple[bool, int, str, str]] = []
    for _ in range(MAX_LOG_PAGES):
        if not budget.left():
            break
        page = logs.filter_log_events(**request)
        for event in page.get("events", []):
            stream = str(event.get("logStreamName", ""))
            message = str(event.get("message", ""))
            if not stream.lower().startswith(prefix) or MARKER not in message:
                continue  # another job's stream, or a line the pattern let through
            text = shorten(message.split(MARKER, 1)[1])
            if text:
                found.append(
                    (bool(LOST_PEER.search(text)), int(event.get("timestamp", 0)), text, stream)
                )
        token = page.get("nextToken")
        if found or not token:
            break
        request["nextToken"] = token
    if not found:
        return "", "", f"no {MARKER.strip()!r} line in {log_group} under {stream_prefix}"
    _, _, text, stream = min(found)
    return text, stream, ""


def explain(
    sagemaker: Any, logs: Any, execution_arn: str, *, budget: Budget | None = None
) -> PipelineFailure:
    """The failed steps of the execution, each with the best reason that can be found."""
    budget = budget or Budget()
    try:
        steps = failed_steps(sagemaker, execution_arn, budget)
    except (ClientError, BotoCoreError) as error:
        return PipelineFailure(execution_arn, note=_error(error))
    failures: list[StepFailure] = []
    jobs_read = 0
    for step in steps:
        name = str(step.get("StepName") or step.get("StepDisplayName") or "?")
        reason = shorten(str(step.get("FailureReason") or ""))
        fail_message = ((step.get("Metadata") or {}).get("Fail") or {}).get("ErrorMessage")
        if not reason and fail_message:
            reason = shorten(str(fail_message))
        job_type, job_name = _job(step)
        if not job_type:
            failures.append(StepFailure(name, reason))
            continue
        log_group, separator = JOB_LOGS[job_type]
        failure = StepFailure(name, reason, job_type, job_name, log_group)
        if jobs_read >= MAX_JOBS or not budget.left():
            failures.append(replace(failure, note="not read: lookup limit reached"))
            continue
        jobs_read += 1
        try:
            text, stream, note = script_reason(
                logs,
                log_group,
                job_name + separator,
                budget,
                _millis(step.get("StartTime")),
                _millis(step.get("EndTime")),
            )
        except (ClientError, BotoCoreError) as error:
            text, stream, note = "", "", _error(error)
        failures.append(replace(failure, script_reason=text, log_stream=stream, note=note))
    return PipelineFailure(execution_arn, tuple(failures))
