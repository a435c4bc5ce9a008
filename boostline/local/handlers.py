"""The Lambda handlers of lambda/, loaded and invoked as the Lambda runtime does.

`lambda` is a Python keyword, so a function is loaded by file path: its folder
first on sys.path, `app.py` executed as a module, its siblings imported by
name. The handler then runs with the function's environment variables set for
the duration of the call — the same code, with no local branch in it.

With `access` (a boostline.local.access_checks.StageAccess), every boto3 call the
handler makes is recorded through botocore's event hooks and, when the invocation
ends, checked against the synthesized policy of the function's role: a call the
role may not make raises AccessDenied naming the role, the action and the resource.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from boostline import checkout
from boostline.local.iam.boto_calls import CallRecorder

if TYPE_CHECKING:
    from boostline.local.access_checks import StageAccess

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"


def load_function(name: str, root: Path = LAMBDA_DIR) -> ModuleType:
    """Load `<root>/<name>/app.py` as a fresh module (fresh caches and clients)."""
    path = root / name / "app.py"
    if root == LAMBDA_DIR:
        checkout.require(f"running the {name} function", checkout.FUNCTIONS)
    if not path.is_file():
        raise FileNotFoundError(f"no Lambda function {name!r} at {path}")
    return load_module(path)


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Execute `path` as a fresh module with its folder importable, as Lambda does."""
    if LAMBDA_DIR in path.parents:
        checkout.require(f"running {path.relative_to(LAMBDA_DIR.parent)}", checkout.FUNCTIONS)
    function_dir = path.parent
    for sibling in function_dir.glob("*.py"):
        sys.modules.pop(sibling.stem, None)  # never share a sibling between two functions
    module_name = name or f"{function_dir.name}_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(function_dir))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(function_dir))
    return module


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class LocalFunction:
    """One Lambda function: its module, its environment, and its log (CloudWatch Logs)."""

    name: str
    env: dict[str, str]
    log_dir: Path | None = None
    module: ModuleType | None = None
    access: StageAccess | None = None
    accesses_checked: int = 0
    _log: TextIO | None = None

    def invoke(self, event: dict[str, Any]) -> Any:
        if self.log_dir is not None and self._log is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log = (self.log_dir / f"{self.name}.log").open("a", encoding="utf-8")
        # loggers keep the stream they were made with, so import inside the redirect too
        redirect = contextlib.redirect_stdout(self._log) if self._log else contextlib.nullcontext()
        recorder = CallRecorder() if self.access is not None else None
        with environment({"AWS_LAMBDA_FUNCTION_NAME": self.name, **self.env}), redirect:
            if recorder is not None:
                recorder.start()
            try:
                if self.module is None:  # imported inside its environment, as on Lambda
                    self.module = load_function(self.name)
                return self.module.lambda_handler(event, None)
            finally:
                if self._log:
                    self._log.flush()
                if recorder is not None and self.access is not None:
                    recorder.stop()
                    # Only the calls made from the function's code, not another thread's.
                    calls = recorder.calls_from(LAMBDA_DIR / self.name)
                    self.accesses_checked += self.access.check_calls(self.name, calls, self.env)
