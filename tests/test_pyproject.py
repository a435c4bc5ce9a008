"""pyproject.toml's package data: every pattern ships something, and every data file the
package reads at run time is shipped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, the main suite's Python

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DATA = PROJECT["tool"]["setuptools"]["package-data"]


def source_files(package: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", package],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / line for line in out.stdout.splitlines()]


@pytest.mark.parametrize(
    ("package", "pattern"),
    [(package, pattern) for package, patterns in PACKAGE_DATA.items() for pattern in patterns],
)
def test_every_package_data_pattern_matches_a_file(package: str, pattern: str) -> None:
    assert sorted((ROOT / package).glob(pattern)), f"{package}: {pattern} matches no file"


@pytest.mark.parametrize("package", ["boostline", "training_scripts"])
def test_every_data_file_of_a_package_is_shipped(package: str) -> None:
    patterns = PACKAGE_DATA.get(package, [])
    shipped = {path for pattern in patterns for path in (ROOT / package).glob(pattern)}
    data = [p for p in source_files(package) if p.suffix != ".py" and p.exists()]
    assert [p.relative_to(ROOT).as_posix() for p in data if p not in shipped] == []
    assert ROOT / "boostline" / "data" / "loan_schema.yaml" in shipped or package != "boostline"
