"""Retrain trigger: decide whether an event starts a run of the training pipeline.

Events: new data in the raw prefix (S3 Object Created), a monitoring execution
that completed with violations, a drift alarm entering ALARM, the retrain
schedule, and the end of a pipeline execution (to start work that arrived while
it ran). Anything else is ignored with a log line.

A Failed execution is also explained: its failed steps (ListPipelineExecutionSteps)
and, for their training, tuning and processing jobs, the script's own
`Boostline failure: ` line from the job's CloudWatch Logs (FilterLogEvents), since
SageMaker's FailureReason for a script that exits non-zero is the toolkit's generic
`ExecuteUserScriptError`. The reason is logged as one ERROR line and kept in the
state item (`last_failed_execution_arn`, `last_failure_reason`, `last_failed_at`)
and in the decision record (`pipeline_failure`). The lookup is bounded and never
fails the invocation (failure.py).

Every decision (started / debounced / busy / ignored / duplicate) is logged as
one structured line and counted in the `RetrainDecision` metric with a
`decision` dimension. Real failures raise, so the event is retried and then
lands in the function's dead-letter queue; unknown events never raise.

Configuration comes from the environment (see README.md); nothing is looked up
at import time and boto3 clients are created on first use.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from botocore.config import Config
from classify import Filters, Ignored, PipelineFinished, Signal, classify
from decide import DUPLICATE, IGNORED, STARTED, Decision, State, Thresholds, decide
from failure import Budget, PipelineFailure, explain
from retrain_state import StateConflict, StateStore

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "retrain-trigger")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.getenv("POWERTOOLS_METRICS_NAMESPACE", "Boostline"), service=SERVICE)

RUNNING_STATUSES = frozenset({"Executing", "Stopping"})
MAX_STATE_ATTEMPTS = 5
MAX_EXECUTION_PAGES = 5
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
)

# Injectable for tests and the local runtime.
clock: Callable[[], float] = time.time
monotonic: Callable[[], float] = time.monotonic  # the failure lookup's time budget
_clients: dict[str, Any] = {}


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid."""


def client(name: str) -> Any:
    """A boto3 client, created on first use (region and credentials from the environment)."""
    if name not in _clients:
        _clients[name] = boto3.client(name, config=BOTO_CONFIG)
    return _clients[name]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from error
    if value < 0:
        raise ConfigurationError(f"{name}={raw!r} must not be negative")
    return value


@dataclass(frozen=True)
class Settings:
    pipeline_name: str
    model_package_group: str
    raw_bucket: str
    raw_prefix: str
    idempotency_table: str
    state_table: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    monitoring_schedule_prefix: str = ""
    drift_alarm_prefix: str = ""
    endpoint: str = ""
    idempotency_ttl_seconds: int = 2 * 24 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        required = (
            "PIPELINE_NAME",
            "MODEL_PACKAGE_GROUP",
            "RAW_BUCKET",
            "IDEMPOTENCY_TABLE",
        )
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            pipeline_name=env["PIPELINE_NAME"],
            model_package_group=env["MODEL_PACKAGE_GROUP"],
            raw_bucket=env["RAW_BUCKET"],
            raw_prefix=env.get("RAW_PREFIX") or "raw/",
            idempotency_table=env["IDEMPOTENCY_TABLE"],
            state_table=env.get("STATE_TABLE") or env["IDEMPOTENCY_TABLE"],
            thresholds=Thresholds(
                min_new_files=_int(env, "MIN_NEW_FILES", 1),
                min_new_bytes=_int(env, "MIN_NEW_BYTES", 0),
                min_interval_seconds=_int(env, "MIN_INTERVAL_SECONDS", 3600),
                start_grace_seconds=_int(env, "START_GRACE_SECONDS", 300),
            ),
            monitoring_schedule_prefix=env.get("MONITORING_SCHEDULE_PREFIX", ""),
            drift_alarm_prefix=env.get("DRIFT_ALARM_PREFIX", ""),
            endpoint=env.get("ENDPOINT_NAME", ""),
            idempotency_ttl_seconds=_int(env, "IDEMPOTENCY_TTL_SECONDS", 2 * 24 * 3600),
        )

    @property
    def filters(self) -> Filters:
        return Filters(
            raw_bucket=self.raw_bucket,
            raw_prefix=self.raw_prefix,
            pipeline_name=self.pipeline_name,
            monitoring_schedule_prefix=self.monitoring_schedule_prefix,
            drift_alarm_prefix=self.drift_alarm_prefix,
            endpoint=self.endpoint,
        )

    @property
    def input_data_prefix(self) -> str:
        return f"s3://{self.raw_bucket}/{self.raw_prefix}"


# --- AWS reads and the start -------------------------------------------------------


def running_executions(sagemaker: Any, pipeline_name: str) -> list[str]:
    """ARNs of the pipeline's executions that are Executing or Stopping (newest first)."""
    request: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    running: list[str] = []
    for _ in range(MAX_EXECUTION_PAGES):
        page = sagemaker.list_pipeline_executions(**request)
        for summary in page.get("PipelineExecutionSummaries", []):
            if summary.get("PipelineExecutionStatus") in RUNNING_STATUSES:
                running.append(str(summary.get("PipelineExecutionArn", "")))
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return running


def champion_model_data_url(sagemaker: Any, group: str) -> str:
    """The model.tar.gz of the newest Approved version of the group, or "none"."""
    page = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=100,
    )
    summaries = page.get("ModelPackageSummaryList", [])
    if not summaries:
        return "none"
    newest = max(summaries, key=lambda summary: int(summary.get("ModelPackageVersion") or 0))
    package = sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    url = containers[0].get("ModelDataUrl") if containers else None
    return str(url) if url else "none"


def client_request_token(event_id: str) -> str:
    """A start token derived from the event id: a redelivered event cannot start twice."""
    return "retrain-" + hashlib.sha256(event_id.encode()).hexdigest()[:48]


def display_name(kind: str, event_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", f"retrain-{kind}-{event_id}").strip("-")
    return name[:82].rstrip("-")


def start_run(
    sagemaker: Any, settings: Settings, event_id: str, kind: str, reason: str, champion: str
) -> str:
    response = sagemaker.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineExecutionDisplayName=display_name(kind, event_id),
        PipelineExecutionDescription=f"{reason} (event {event_id})",
        PipelineParameters=[
            {"Name": "InputDataPrefix", "Value": settings.input_data_prefix},
            {"Name": "TriggerReason", "Value": reason},
            {"Name": "ChampionModelDataUrl", "Value": champion},
        ],
        ClientRequestToken=client_request_token(event_id),
    )
    return str(response["PipelineExecutionArn"])


def report_failure(sagemaker: Any, execution_arn: str) -> PipelineFailure:
    """Why the execution failed, logged as one ERROR line; never raises."""
    try:
        failure = explain(sagemaker, client("logs"), execution_arn, budget=Budget(clock=monotonic))
    except Exception as error:  # diagnosis only: it must not cost the retrain decision
        logger.warning("could not read why the pipeline execution failed", exc_info=True)
        failure = PipelineFailure(execution_arn, note=f"{type(error).__name__}: {error}")
    execution = execution_arn.rsplit("/", 1)[-1] or execution_arn
    logger.error(
        f"pipeline execution {execution} failed: {failure.reason}",
        extra={"pipeline_failure": failure.as_dict()},
    )
    return failure


# --- the decision, once per event id -----------------------------------------------


def _record(decision: Decision, signal: Signal, event_id: str, **extra: Any) -> dict[str, Any]:
    state = decision.state
    return {
        "decision": decision.action,
        "why": decision.why,
        "event_id": event_id,
        "event_kind": signal.kind,
        "trigger_reason": decision.trigger_reason,
        "pending": {
            "files": state.pending_files,
            "bytes": state.pending_bytes,
            "drift": list(state.pending_drift),
        },
        **extra,
    }


def process(*, event: dict[str, Any], signal: Signal, settings: Settings) -> dict[str, Any]:
    """Decide and act on one event; wrapped in Powertools idempotency keyed on its id."""
    sagemaker = client("sagemaker")
    store = StateStore(client("dynamodb"), settings.state_table, settings.pipeline_name)
    event_id = str(event["id"])
    failed: dict[str, Any] = {}
    if isinstance(signal, PipelineFinished) and signal.status == "Failed":
        failure = report_failure(sagemaker, signal.execution_arn)
        signal = replace(signal, failure_reason=failure.reason)
        failed["pipeline_failure"] = failure.as_dict()
    for _ in range(MAX_STATE_ATTEMPTS):
        state = store.load()
        running: list[str] | None = None

        def pipeline_running() -> bool:
            nonlocal running
            if running is None:
                running = running_executions(sagemaker, settings.pipeline_name)
            return bool(running)

        decision = decide(
            signal,
            state,
            now=clock(),
            event_id=event_id,
            thresholds=settings.thresholds,
            pipeline_running=pipeline_running,
        )
        extra: dict[str, Any] = {"running_executions": running} if running else {}
        extra.update(failed)
        if decision.action != STARTED:
            if decision.state != state:
                try:
                    store.save(decision.state, state.version)
                except StateConflict:
                    continue
            return _record(decision, signal, event_id, **extra)

        champion = champion_model_data_url(sagemaker, settings.model_package_group)
        claimed: State | None = None
        if not decision.resumed:
            try:
                claimed = store.save(decision.state, state.version)
            except StateConflict:
                continue
        try:
            arn = start_run(
                sagemaker, settings, event_id, signal.kind, decision.trigger_reason, champion
            )
        except Exception:
            if claimed is not None:
                _undo_claim(store, state, claimed)
            raise
        store.record_execution(event_id, arn)
        return _record(
            decision,
            signal,
            event_id,
            pipeline_execution_arn=arn,
            champion_model_data_url=champion,
            input_data_prefix=settings.input_data_prefix,
            **failed,
        )
    raise StateConflict(
        f"the retrain state changed under {MAX_STATE_ATTEMPTS} attempts in a row; retry later"
    )


def _undo_claim(store: StateStore, before: State, claimed: State) -> None:
    """Put the pending work back after a failed start (best effort; a retry resumes it)."""
    try:
        store.save(before, claimed.version)
    except Exception:  # the original error matters more; the retry resumes the start
        logger.exception("could not restore the retrain state after a failed start")


def _replayed(response: Any, record: DataRecord) -> dict[str, Any]:
    """Powertools calls this when the event id was already handled."""
    original = response if isinstance(response, dict) else {}
    return {
        **original,
        "decision": DUPLICATE,
        "why": f"event already handled ({original.get('decision', 'unknown')})",
        "original_decision": original.get("decision"),
    }


_idempotent: dict[tuple[str, str, int], tuple[Callable[..., Any], IdempotencyConfig]] = {}


def idempotent_process(settings: Settings) -> tuple[Callable[..., Any], IdempotencyConfig]:
    key = (settings.idempotency_table, settings.pipeline_name, settings.idempotency_ttl_seconds)
    if key not in _idempotent:
        config = IdempotencyConfig(
            event_key_jmespath="id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_replayed,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=client("dynamodb")
        )
        # A fixed prefix keeps the keys stable when the function or module is renamed.
        wrapped = idempotent_function(
            process,
            data_keyword_argument="event",
            persistence_store=persistence,
            config=config,
            key_prefix=f"retrain-event#{settings.pipeline_name}",
        )
        _idempotent[key] = (wrapped, config)
    return _idempotent[key]


# --- the handler -------------------------------------------------------------------


def _emit(result: dict[str, Any]) -> None:
    logger.info(f"retrain decision: {result['decision']}", extra={"retrain": result})
    metrics.add_dimension(name="decision", value=str(result["decision"]))
    metrics.add_metric(name="RetrainDecision", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def _handler(event: Any, context: Any) -> dict[str, Any]:
    event_id = event.get("id") if isinstance(event, dict) else None
    try:
        settings = Settings.from_env()
        signal = classify(event, settings.filters)
        logger.append_keys(event_id=event_id, event_kind=signal.kind)
        if isinstance(signal, Ignored):
            result = {
                "decision": IGNORED,
                "why": signal.reason,
                "event_id": event_id,
                "event_kind": signal.kind,
            }
        else:
            run, config = idempotent_process(settings)
            config.register_lambda_context(context)
            result = run(event=event, signal=signal, settings=settings)
    except Exception:
        logger.exception("retrain trigger failed; the event will be retried")
        metrics.add_dimension(name="decision", value="error")
        metrics.add_metric(name="RetrainDecision", unit=MetricUnit.Count, value=1)
        raise
    _emit(result)
    return result


@dataclass
class LocalContext:
    """A stand-in Lambda context for callers outside Lambda (the local runtime)."""

    function_name: str = SERVICE
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:local:000000000000:function:{SERVICE}"
    aws_request_id: str = "local"
    timeout_seconds: float = 60.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self.started)
        return max(0, int(left * 1000))


def lambda_handler(event: Any, context: Any = None) -> dict[str, Any]:
    return _handler(event, context if context is not None else LocalContext())
