"""When to start a training run: the pure decision, no AWS calls.

Rules (README has the reasoning):

- New data and drift are remembered as pending work in the state item, even when
  no run starts now, so a later event, the end of the running pipeline, or the
  schedule can start the run that includes them.
- New data is enough when the pending files reach `min_new_files` OR the pending
  bytes reach `min_new_bytes` (a threshold of 0 is off; with both off, any file
  is enough). Drift is always enough.
- Event-driven runs (new data, drift, pipeline finished) start at most once per
  `min_interval_seconds`, counted from the last started run.
- The schedule starts a run whatever is pending and however long ago the last run
  started: it is the operator's cadence.
- No run starts while one is running (`busy`): the work stays pending. A start
  recorded less than `start_grace_seconds` ago counts as running too, because a
  new execution can take a moment to show in ListPipelineExecutions.
- A Failed execution is remembered with its reason (`last_failed_*`), whatever
  the decision, next to the last started run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from classify import Drift, NewData, PipelineFinished, Schedule, Signal

STARTED = "started"
DEBOUNCED = "debounced"
BUSY = "busy"
IGNORED = "ignored"
DUPLICATE = "duplicate"

MAX_PENDING_DRIFT = 10
MAX_REASON_LENGTH = 256  # pipeline parameter values may hold 1024 characters


@dataclass(frozen=True)
class Thresholds:
    min_new_files: int = 1
    min_new_bytes: int = 0
    min_interval_seconds: float = 3600.0
    start_grace_seconds: float = 300.0


@dataclass(frozen=True)
class State:
    """The retrain state item. `version` guards concurrent writers (optimistic lock)."""

    pending_files: int = 0
    pending_bytes: int = 0
    pending_drift: tuple[str, ...] = ()
    pending_since: float | None = None
    last_started_at: float | None = None
    last_event_id: str = ""
    last_reason: str = ""
    last_execution_arn: str = ""
    last_failed_execution_arn: str = ""
    last_failure_reason: str = ""
    last_failed_at: float | None = None
    version: int = 0

    @property
    def has_pending(self) -> bool:
        return self.pending_files > 0 or bool(self.pending_drift)


@dataclass(frozen=True)
class Decision:
    action: str  # STARTED, DEBOUNCED, BUSY, IGNORED or DUPLICATE
    why: str
    state: State  # the state to store (equal to the input when nothing changes)
    trigger_reason: str = ""  # the pipeline's TriggerReason when action is STARTED
    resumed: bool = False  # this event's own earlier start attempt, retried
    details: dict[str, object] = field(default_factory=dict)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def trigger_reason(state: State, schedule: bool) -> str:
    """What the run is for, e.g. `new-data: 3 files`, `drift: <name>`, `schedule`."""
    parts = []
    if schedule:
        parts.append("schedule")
    if state.pending_drift:
        parts.append("drift: " + ", ".join(state.pending_drift))
    if state.pending_files:
        parts.append("new-data: " + plural(state.pending_files, "file"))
    reason = "; ".join(parts) or "schedule"
    return reason if len(reason) <= MAX_REASON_LENGTH else reason[: MAX_REASON_LENGTH - 3] + "..."


def with_signal(state: State, signal: Signal, now: float) -> State:
    """The state with the signal's work added to what is pending (and a failure noted)."""
    if isinstance(signal, PipelineFinished):
        if signal.status != "Failed":
            return state
        return replace(
            state,
            last_failed_execution_arn=signal.execution_arn,
            last_failure_reason=signal.failure_reason or "reason unavailable",
            last_failed_at=now,
        )
    if isinstance(signal, NewData):
        return replace(
            state,
            pending_files=state.pending_files + 1,
            pending_bytes=state.pending_bytes + signal.size,
            pending_since=state.pending_since if state.pending_since is not None else now,
        )
    if isinstance(signal, Drift):
        drift = state.pending_drift
        if signal.source not in drift:
            drift = (*drift, signal.source)[-MAX_PENDING_DRIFT:]
        return replace(
            state,
            pending_drift=drift,
            pending_since=state.pending_since if state.pending_since is not None else now,
        )
    return state


def enough_new_data(state: State, thresholds: Thresholds) -> bool:
    if state.pending_files <= 0:
        return False
    checks = []
    if thresholds.min_new_files > 0:
        checks.append(state.pending_files >= thresholds.min_new_files)
    if thresholds.min_new_bytes > 0:
        checks.append(state.pending_bytes >= thresholds.min_new_bytes)
    return any(checks) if checks else True


def started(state: State, now: float, event_id: str, reason: str) -> State:
    return replace(
        state,
        pending_files=0,
        pending_bytes=0,
        pending_drift=(),
        pending_since=None,
        last_started_at=now,
        last_event_id=event_id,
        last_reason=reason,
        last_execution_arn="",
    )


def decide(
    signal: Signal,
    state: State,
    *,
    now: float,
    event_id: str,
    thresholds: Thresholds,
    pipeline_running: Callable[[], bool],
) -> Decision:
    """Decide what to do with one signal. `pipeline_running` is asked only when needed."""
    if state.last_event_id == event_id and state.last_reason:
        if state.last_execution_arn:
            # Redelivered after the idempotency record expired: the run exists.
            return Decision(
                DUPLICATE, f"this event already started {state.last_execution_arn}", state
            )
        # An earlier attempt for this very event recorded its start and then failed
        # before it could undo that (or the start went through and the answer was
        # lost). Start again with the same client token: SageMaker starts it once.
        return Decision(STARTED, "retry of this event's start", state, state.last_reason, True)

    pending = with_signal(state, signal, now)
    is_schedule = isinstance(signal, Schedule)

    if not is_schedule:
        data_ready = enough_new_data(pending, thresholds)
        if not (data_ready or pending.pending_drift):
            if isinstance(signal, PipelineFinished) and not pending.has_pending:
                return Decision(IGNORED, "pipeline finished; no pending work", pending)
            needed = []
            if thresholds.min_new_files > 0:
                needed.append(plural(thresholds.min_new_files, "file"))
            if thresholds.min_new_bytes > 0:
                needed.append(f"{thresholds.min_new_bytes} bytes")
            return Decision(
                DEBOUNCED,
                f"pending new data ({plural(pending.pending_files, 'file')}, "
                f"{pending.pending_bytes} bytes) below the threshold ({' or '.join(needed)})",
                pending,
            )
        # Work that waited for a run to end starts when it ends: nothing else would wake
        # it before the schedule. The minimum interval throttles events while idle.
        if pending.last_started_at is not None and not isinstance(signal, PipelineFinished):
            elapsed = now - pending.last_started_at
            if elapsed < thresholds.min_interval_seconds:
                wait = thresholds.min_interval_seconds - elapsed
                return Decision(
                    DEBOUNCED,
                    f"last run started {elapsed:.0f} s ago; the minimum interval is "
                    f"{thresholds.min_interval_seconds:.0f} s (next possible in {wait:.0f} s)",
                    pending,
                )

    recently = (
        pending.last_started_at is not None
        and now - pending.last_started_at < thresholds.start_grace_seconds
    )
    if recently or pipeline_running():
        why = (
            "a run was started moments ago"
            if recently
            else "a pipeline execution is running; the work stays pending"
        )
        return Decision(BUSY, why, pending)

    reason = trigger_reason(pending, schedule=is_schedule)
    return Decision(STARTED, reason, started(pending, now, event_id, reason), reason)
