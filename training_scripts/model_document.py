"""A versioned JSON document stored beside the booster in the model directory (the
calibration, the linear margin): read strictly, written alike.

Runs in the sagemaker-xgboost 3.0-5 image (Python 3.10, stdlib only).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read(path: Path, from_json: Callable[[Any], T], error: type[ValueError]) -> T | None:
    """The document at `path` through `from_json`; None when there is no file. A file that
    is not JSON, or that `from_json` refuses, raises `error` naming the path: a model part
    that cannot be read is never skipped."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise error(f"{path}: not JSON: {exc}") from None
    try:
        return from_json(document)
    except error as exc:
        raise error(f"{path}: {exc}") from None


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return path
