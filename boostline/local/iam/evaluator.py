"""A long-lived Node process running @cloud-copilot/iam-simulate, the IAM policy evaluator.

`PolicyEvaluator` starts `node iam_simulate.mjs` once and sends it batches of requests
over a pipe, one JSON line each way, so a test session or a pipeline run pays for one
Node start-up however many accesses it checks. The packages come from the repository's
node_modules (`npm ci`, the Makefile's node install); a missing Node or a missing
package raises `EvaluatorUnavailable` saying what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SCRIPT = Path(__file__).resolve().with_name("iam_simulate.mjs")
PACKAGE = "@cloud-copilot/iam-simulate"

Result = Literal["Allowed", "ImplicitlyDenied", "ExplicitlyDenied"]


class EvaluatorUnavailable(RuntimeError):
    """Node or the evaluator's npm packages are not installed."""


class EvaluatorError(RuntimeError):
    """The evaluator refused a request (an invalid policy, action or context key)."""


@dataclass(frozen=True)
class Policy:
    name: str  # where it comes from, e.g. "Pipeline/PreprocessRolePolicyCAF60FB2"
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    principal: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    action: str  # service:Action
    resource: str  # the resource ARN, or "*" for actions without a resource type
    account: str  # the account owning the resource
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    resource_policy: Mapping[str, Any] | None = None  # a key policy, a bucket policy


def find_node_root(start: Path = SCRIPT) -> Path:
    """The folder whose node_modules holds the evaluator: BOOSTLINE_NODE_ROOT, or the
    nearest folder above this module with a package.json (the repository root)."""
    configured = os.environ.get("BOOSTLINE_NODE_ROOT")
    if configured:
        return Path(configured)
    for folder in start.parents:
        if (folder / "package.json").is_file():
            return folder
    raise EvaluatorUnavailable(
        f"no package.json above {start}; set BOOSTLINE_NODE_ROOT to the folder whose "
        f"node_modules holds {PACKAGE}"
    )


class PolicyEvaluator:
    """Evaluates identity-based policies for requests, in one Node process.

    Use as a context manager, or call close(). Thread-safe: batches are serialized.
    """

    def __init__(self, node: str | None = None, root: Path | None = None):
        self.root = root or find_node_root()
        node_path = node or shutil.which("node")
        if not node_path:
            raise EvaluatorUnavailable(
                "node is not on PATH: the IAM policy evaluator runs on Node.js 18 or later "
                "(install Node.js, then `npm ci` in the repository)"
            )
        if not (self.root / "node_modules" / PACKAGE / "package.json").is_file():
            raise EvaluatorUnavailable(
                f"{PACKAGE} is not installed under {self.root / 'node_modules'}: "
                f"run `npm ci` in {self.root} (or `make test`, which does it)"
            )
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [node_path, str(SCRIPT), str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
        )

    def _ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._process
            if process.poll() is not None or process.stdin is None or process.stdout is None:
                raise EvaluatorUnavailable(f"the evaluator process ended: {self._stderr()}")
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        if not line:
            raise EvaluatorUnavailable(f"the evaluator process ended: {self._stderr()}")
        reply = json.loads(line)
        if "failure" in reply:
            raise EvaluatorError(reply["failure"])
        return reply

    def _stderr(self) -> str:
        if self._process.poll() is None or self._process.stderr is None:
            return "(still running)"
        return self._process.stderr.read().strip() or f"exit status {self._process.returncode}"

    def evaluate(self, requests: Sequence[Request], policies: Sequence[Policy]) -> list[Result]:
        """The result of each request under `policies` (identity-based, all of one role)."""
        if not requests:
            return []
        loaded = [{"name": p.name, "policy": p.document} for p in policies]
        checks = [
            {
                "principal": r.principal,
                "action": r.action,
                "resource": r.resource,
                "accountId": r.account,
                "context": dict(r.context),
                "policies": loaded,
                "resourcePolicy": r.resource_policy,
            }
            for r in requests
        ]
        reply = self._ask({"op": "evaluate", "checks": checks})
        results: list[Result] = []
        for request, answer in zip(requests, reply["results"], strict=True):
            if "error" in answer:
                raise EvaluatorError(
                    f"{request.action} on {request.resource}: the evaluator refused the "
                    f"request: {answer['error']}"
                )
            results.append(answer["result"])
        return results

    def actions(self, names: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Service Authorization Reference entries for (service, action) pairs: the
        action's name and its resource types with their ARN formats; None if unknown."""
        return self._ask({"op": "actions", "actions": [list(n) for n in names]})["actions"]

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> PolicyEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
