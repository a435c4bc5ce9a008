"""Shared helpers for the Lambda handler tests.

`lambda` is a Python keyword, so the handlers are loaded by file path, the way
the Lambda runtime (and the local runtime) does it: the function's directory
first on sys.path, `app.py` executed as a module, siblings imported by name.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import iam_stage
import pytest

from boostline.local.handlers import load_module

# The test modules import these helpers as `lambda_test_helpers`: conftest.py files
# outside packages all share the module name "conftest", so `from conftest import`
# could find another directory's conftest when several are loaded.
sys.modules["lambda_test_helpers"] = sys.modules[__name__]

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambda"
EVENTS_DIR = Path(__file__).resolve().parent / "events"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account, also the sample events' account

SAMPLES = {
    "s3": "s3-object-created.json",
    "monitoring": "sagemaker-processing-job-state-change-monitoring.json",
    "alarm": "cloudwatch-alarm-state-change.json",
    "schedule": "scheduled-event.json",
    "pipeline": "sagemaker-pipeline-execution-status-change.json",
    "model_package": "sagemaker-model-package-state-change.json",
    # Put by our own monitors (training_scripts/monitor_publish.py), as EventBridge delivers it.
    "own_monitoring": "boostline-monitoring-run-completed.json",
    "stack": "cloudformation-stack-status-change.json",
}


def load_handler(function: str) -> ModuleType:
    """lambda/<function>/app.py, freshly loaded."""
    return load_module(LAMBDA_DIR / function / "app.py")


def load_event_patterns() -> ModuleType:
    return load_module(LAMBDA_DIR / "event_patterns.py", name="event_patterns_under_test")


def sample_event(kind: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of a sample event; `changes` replace top-level fields."""
    path = EVENTS_DIR / SAMPLES[kind]
    if not path.is_file():
        pytest.fail(f"sample event {path} is missing")
    event = json.loads(path.read_text())
    event.update(copy.deepcopy(changes))
    return event


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class FakeContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "request-1"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Any = None  # called on every sleep: what happens meanwhile

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def emf_records(output: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF blobs Powertools Metrics printed."""
    records = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


def log_records(output: str) -> list[dict[str, Any]]:
    """The structured log lines Powertools Logger printed."""
    records = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' not in line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; nothing can reach a real AWS account."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_METRICS_NAMESPACE": "BoostlineTest",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "AWS_LAMBDA_FUNCTION_NAME": "test-function",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


def bind_output(module: ModuleType) -> None:
    """Point the module's Powertools logger at the current sys.stdout (what capsys reads).

    Powertools keeps one handler per service name across loads, bound to the stream
    that was sys.stdout when it was first created.
    """
    handler = module.logger.registered_handler
    handler.acquire()
    try:
        handler.stream = sys.stdout  # not setStream: it flushes the old, maybe closed, stream
    finally:
        handler.release()


# --- every boto3 call a handler makes, checked against its function's synthesized policy ----


def _function_binding(stacks: dict[str, Any], function: str) -> tuple[str, str, dict[str, str]]:
    """The function's name, its role, and its environment as deployed (rendered)."""
    suffix = "-" + function.replace("_", "-")
    for rendered in stacks.values():
        for resource in rendered.of_type("AWS::Lambda::Function").values():
            props = resource["Properties"]
            if str(props.get("FunctionName", "")).endswith(suffix):
                environment = props.get("Environment", {}).get("Variables", {})
                return props["FunctionName"], props["Role"].rsplit("/", 1)[-1], dict(environment)
    raise LookupError(f"no synthesized function for lambda/{function}")


def _deployed(resource: str, renames: dict[str, str]) -> str:
    """The ARN with the test's names (from its environment) replaced by the deployed ones."""
    parts = re.split(r"([:/])", resource)
    return "".join(renames.get(part, part) for part in parts)


def _caller(call: Any) -> str:
    """The nearest project file on the call's stack: a handler's, or a test's own code (a
    test's setup, or what it does meanwhile from a fake clock's sleep)."""
    venv = str(ROOT / ".venv")
    return next((f for f in call.files if f.startswith(str(ROOT)) and not f.startswith(venv)), "")


def check_handler_calls(calls: list[Any], stacks: dict[str, Any]) -> int:
    """Raises AccessDenied for the first handler call its function's role may not make."""
    from boostline.local.iam import AccessChecker, ArnFormats, accesses_for_call

    evaluator = iam_stage.evaluator()
    checker = AccessChecker(evaluator, stacks, account=ACCOUNT)
    formats = ArnFormats(evaluator)
    checked = 0
    for function_dir in sorted(p for p in LAMBDA_DIR.iterdir() if (p / "app.py").is_file()):
        mine = [c for c in calls if _caller(c).startswith(str(function_dir))]
        if not mine:
            continue
        name, role, environment = _function_binding(stacks, function_dir.name)
        renames = {
            os.environ[name]: value
            for name, value in environment.items()
            if os.environ.get(name) and os.environ[name] != value
        }
        accesses = []
        for call in mine:
            for access in accesses_for_call(call, formats, account=ACCOUNT):
                accesses.append(
                    dataclasses.replace(access, resource=_deployed(access.resource, renames))
                )
        checker.check(role, accesses, session=name)  # Lambda names the session after it
        checked += len(accesses)
    return checked


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    from boostline.local.iam import CallRecorder

    stacks = item.config.stash.get(_STACKS, None) if ACCESS_CHECKS else None
    if not ACCESS_CHECKS:
        return (yield)
    if stacks is None:
        stacks = iam_stage.rendered()
        item.config.stash[_STACKS] = stacks
    with CallRecorder() as recorder:
        result = yield
    check_handler_calls(recorder.calls, item.stash.get(MUTATED_STACKS, stacks))
    return result


ACCESS_CHECKS = True
_STACKS = pytest.StashKey[dict]()
MUTATED_STACKS = pytest.StashKey[dict]()  # a test's mutated stage, set by that test
