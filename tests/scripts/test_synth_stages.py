"""scripts/synth_stages.py: every stage's templates, or a FAILED file that says why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "synth_stages.py"
DIFF = ROOT / "scripts" / "template_diff.py"
INSTALLED = (ROOT / ".venv" / "bin" / "python").exists() and (
    ROOT / "node_modules" / ".bin" / "cdk"
).exists()


def run(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_an_uninstalled_checkout_is_recorded_as_failed(tmp_path: Path) -> None:
    checkout, out = tmp_path / "base", tmp_path / "synth-base"
    checkout.mkdir()
    result = run(SCRIPT, str(out), "--checkout", str(checkout))
    assert result.returncode == 1
    failed = (out / "FAILED").read_text()
    assert ".venv/bin/python does not exist" in failed and "make install" in failed
    head = tmp_path / "synth" / "dev"
    head.mkdir(parents=True)
    (head / "Storage.template.json").write_text('{"Resources": {}}')
    report = run(DIFF, str(out), str(tmp_path / "synth")).stdout
    assert "**The base branch could not be synthesized**" in report
    assert ".venv/bin/python does not exist" in report


def test_it_replaces_only_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    (out / "dev").mkdir(parents=True)
    (out / "dev" / "Storage.template.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    result = run(SCRIPT, str(out), "--checkout", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "notes.txt" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    refused = run(SCRIPT, str(tmp_path), "--checkout", str(tmp_path / "repo"))
    assert refused.returncode == 2 and "holds the checkout" in refused.stderr


# The success path (every stage's templates) runs for real in the infra workflow
# (`make synth-stages`); here only the CLI's failure, which takes seconds, not a full synth.
@pytest.mark.skipif(not INSTALLED, reason="needs .venv and node_modules (make install, npm ci)")
def test_a_failing_stage_synth_keeps_the_cli_output(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    result = run(SCRIPT, str(out), "--stage", "no-such-stage")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 of 1 stage(s) synthesized" in result.stdout
    failed = (out / "no-such-stage" / "FAILED").read_text()
    assert "cdk synth -c stage=no-such-stage exited" in failed
    assert "no stage 'no-such-stage'" in failed  # the app's own configuration error
    assert not list(out.rglob("*.template.json"))
    # reported as this change's failure, not as a stage without stacks
    report = run(DIFF, str(out), str(out)).stdout
    assert "- `no-such-stage`: **this change's synth failed**" in report
    assert "no stage 'no-such-stage'" in report
