"""The functions' code assets: handler plus the pinned Powertools, importable on their own."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import lambda_bundle

STACK = "Automation"
# What the Lambda Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")


def _function_assets(synth) -> dict[str, Path]:
    assets = {}
    for res in synth.resources(STACK, "AWS::Lambda::Function").values():
        props = res["Properties"]
        if "FunctionName" not in props:
            continue
        asset_hash = props["Code"]["S3Key"].removesuffix(".zip")
        assets[props["FunctionName"]] = synth.outdir / f"asset.{asset_hash}"
    return assets


def _runtime_site(tmp_path: Path) -> Path:
    """A site folder holding only what the Lambda runtime ships (links into this venv)."""
    site = tmp_path / "runtime"
    site.mkdir()
    for module in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (site / source.name).symlink_to(source)
    return site


def test_every_function_imports_its_handler_from_its_asset_alone(dev, tmp_path):
    assets = _function_assets(dev)
    assert len(assets) == 2
    runtime = _runtime_site(tmp_path)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "import app, aws_lambda_powertools, json; "
        "print(json.dumps([aws_lambda_powertools.__file__, app.lambda_handler.__module__]))"
    )
    for name, asset in assets.items():
        assert (asset / "app.py").is_file(), name
        # -S: no site-packages, so nothing but the asset and the runtime's packages.
        proc = subprocess.run(
            [sys.executable, "-S", "-c", probe, str(asset), str(runtime)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", "PYTHONPATH": ""},
            timeout=60,
        )
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        powertools_file, module = json.loads(proc.stdout.strip().splitlines()[-1])
        assert Path(powertools_file).is_relative_to(asset), name
        assert module == "app"


def test_the_bundled_powertools_is_the_pinned_release(dev):
    pinned = lambda_bundle.pinned_version()
    for name, asset in _function_assets(dev).items():
        version = (asset / "aws_lambda_powertools" / "shared" / "version.py").read_text()
        assert f'VERSION = "{pinned}"' in version, name
        assert not list(asset.rglob("__pycache__")), name


def test_a_different_installed_release_stops_synth(monkeypatch, tmp_path):
    monkeypatch.setattr(lambda_bundle, "installed_version", lambda _distribution: "0.0.1")
    with pytest.raises(lambda_bundle.BundleError, match="pins"):
        lambda_bundle.build_function_code(tmp_path, tmp_path / "out")
