"""The Makefile: the first install says what it does, and diff/deploy run the pinned CDK CLI
like synth does, after the credentials check (never reaching AWS here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMPS = ("-o", ".venv/.installed", "-o", "node_modules/.installed")  # never reinstall here


def dry_run(*args: str) -> list[str]:
    """The commands `make -n` would run (the installed stamps taken as up to date)."""
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", *STAMPS, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.rstrip() for line in out.stdout.splitlines()]


def test_the_first_install_prints_each_step_before_it_runs() -> None:
    commands = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", ".venv/.installed", "node_modules/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    installs = [
        i
        for i, c in enumerate(commands)
        if not c.startswith("echo ") and re.search(r"-m venv|pip install|npm ci", c)
    ]
    assert len(installs) == 4
    for i in installs:
        assert commands[i - 1].startswith('echo "==> '), commands[i]
    assert not [c for c in commands if "--quiet" in c or "--loglevel=error" in c]


def test_diff_and_deploy_run_the_pinned_cli_as_synth_does() -> None:
    (synth,) = [c for c in dry_run("synth", "STAGE=prod") if " synth " in c]
    assert synth.startswith("node_modules/.bin/cdk synth --no-notices ")
    assert "-c stage=prod" in synth
    for target, expected in (
        ("diff", "node_modules/.bin/cdk diff --no-notices -c stage=prod"),
        ("deploy", "node_modules/.bin/cdk deploy --no-notices -c stage=prod --all"),
    ):
        commands = dry_run(target, "STAGE=prod")
        assert commands == [".venv/bin/python scripts/aws_identity.py prod", expected]
    deploy = dry_run("deploy", "STAGE=dev", "STACKS=Serving", "CDK_ARGS=--require-approval=never")
    assert deploy[-1] == (
        "node_modules/.bin/cdk deploy --no-notices -c stage=dev Serving --require-approval=never"
    )


def test_the_cdk_environment_is_exported_to_every_target() -> None:
    names = (
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION",
        "CDK_DISABLE_VERSION_CHECK",
        "CDK_DISABLE_CLI_TELEMETRY",
    )
    env = {k: v for k, v in os.environ.items() if k not in names}
    # a rule of our own, read with the Makefile: its recipe sees what every recipe sees
    printed = subprocess.run(
        ["make", "--no-print-directory", "--eval", f"_env: ; @printenv {' '.join(names)}", "_env"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert printed == ["20", "1", "true"]


def test_make_diff_without_credentials_stops_before_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    # CDK=false: were the check ever to pass here, nothing would reach AWS.
    result = subprocess.run(
        ["make", "--no-print-directory", *STAMPS, "diff", "STAGE=dev", "CDK=false"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "error: no AWS credentials for stage 'dev'" in result.stderr
    assert "false diff" not in result.stdout  # the CLI line was never reached
