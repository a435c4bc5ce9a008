""".gitignore: what the demo, the local runs, the synth and the template diff write is
ignored; the source folders of the same names are not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

GENERATED = [
    ".boostline/demo/report/index.html",  # the demo and every local run's work directory
    ".boostline/assemblies/dev/manifest.json",
    "cdk.out/manifest.json",  # make synth
    "data/loans-00000.csv",  # boostline data generate --out data/ (the README's command)
    "synth/dev/Storage.template.json",  # make synth-stages, the infra workflow
    "synth-base/dev/FAILED",
    "template-diff/summary.md",  # the infra workflow's report
    ".venv/bin/python",
    ".venv-image/bin/python",  # make test-image
    ".venv-image.lock",
    "node_modules/.installed",
    "boostline.egg-info/PKG-INFO",
    "training_scripts/__pycache__/train.cpython-311.pyc",
]
SOURCE = [
    "boostline/data/loan_schema.yaml",
    "boostline/data/generator.py",
    "tests/boostline/data/test_generator.py",
    "config/boostline.yaml",
    "scripts/template_diff.py",
    "tests/scripts/test_template_diff.py",
]


def ignored(path: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@pytest.mark.parametrize("path", GENERATED)
def test_generated_paths_are_ignored(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize("path", SOURCE)
def test_source_paths_are_not_ignored(path: str) -> None:
    assert not ignored(path)
