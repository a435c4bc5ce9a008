"""A Lambda function's code asset: its handler directory plus the pinned Powertools.

The functions run the Powertools release the tests run (the `aws-lambda-powertools`
pin in pyproject.toml), copied from this environment into the asset, instead of a
public layer whose version number says nothing about the release inside it and which
must exist for the runtime in every region. The copy is offline and deterministic:
the same sources give the same asset hash. Powertools is pure Python; of its two
dependencies, jmespath ships in the Lambda runtime (botocore needs it) and
typing_extensions is copied alongside.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
POWERTOOLS = "aws-lambda-powertools"
# Importable name -> distribution name, for what is copied next to the handler.
BUNDLED = {"aws_lambda_powertools": POWERTOOLS, "typing_extensions": "typing_extensions"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", "py.typed")


class BundleError(RuntimeError):
    """The environment cannot produce the pinned function code."""


def pinned_version(distribution: str = POWERTOOLS) -> str:
    match = re.search(rf'"{re.escape(distribution)}==([^"]+)"', PYPROJECT.read_text())
    if not match:
        raise BundleError(f"pyproject.toml pins no {distribution}")
    return match.group(1)


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(f"{distribution} is not installed; run `make install`") from None


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise BundleError(f"{module} is not importable; run `make install`")
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def build_function_code(handler_dir: Path, out_dir: Path) -> Path:
    """Copy handler_dir and the bundled packages into out_dir (made anew); returns it."""
    pinned, installed = pinned_version(), installed_version(POWERTOOLS)
    if pinned != installed:
        raise BundleError(
            f"{POWERTOOLS} {installed} is installed but pyproject.toml pins {pinned}; "
            "run `make install`"
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(handler_dir, out_dir, ignore=IGNORED)
    for module in BUNDLED:
        source = _source(module)
        target = out_dir / source.name
        if target.exists():
            raise BundleError(f"{handler_dir} already has {source.name}")
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            shutil.copy2(source, target)
    return out_dir
