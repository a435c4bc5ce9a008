"""An installed boostline, away from the checkout: what works, and clear refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from boostline.checkout import CDK_APP, CheckoutRequired, require
from boostline.config import REPO_ROOT


def test_require_names_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    with pytest.raises(CheckoutRequired) as error:
        require("synthesizing stage dev", CDK_APP, hint=", or pass --assembly DIR", root=tmp_path)
    message = str(error.value)
    assert message.startswith("synthesizing stage dev needs the Boostline repository's stacks,")
    assert "app.py" not in message.split("(")[0]  # only what is missing
    assert message.endswith("or pass --assembly DIR")
    (tmp_path / "stacks").mkdir()
    assert require("x", CDK_APP, root=tmp_path) == tmp_path
    assert require("x", CDK_APP) == REPO_ROOT  # this checkout has the CDK app


@dataclass(frozen=True)
class Installed:
    site: Path  # where the wheel was installed: the packages and bin/boostline
    cwd: Path  # a folder outside the checkout

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("BOOSTLINE_", "PYTHON"))
        }
        # The dependencies come from this interpreter's environment; boostline and
        # training_scripts from the installed wheel, never from the checkout.
        environ.update(PYTHONPATH=str(self.site), MPLBACKEND="Agg", **env)
        return subprocess.run(
            [sys.executable, str(self.site / "bin" / "boostline"), *args],
            cwd=self.cwd,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    for package in ("boostline", "training_scripts"):
        shutil.copytree(
            REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", root / "dist", source], check=True)
    (wheel,) = (root / "dist").glob("boostline-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", root / "site", wheel], check=True)
    (root / "work").mkdir()
    return Installed(site=root / "site", cwd=root / "work")


@pytest.mark.slow
def test_the_installed_package_is_what_runs(installed: Installed) -> None:
    where = installed.run("--version")
    assert where.returncode == 0 and where.stdout.startswith("boostline ")
    probe = subprocess.run(
        [sys.executable, "-c", "import boostline, training_scripts; print(boostline.__file__)"],
        cwd=installed.cwd,
        env={**os.environ, "PYTHONPATH": str(installed.site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(installed.site)


@pytest.mark.slow
def test_the_embedded_default_config_is_found_without_a_checkout(installed: Installed) -> None:
    check = installed.run("config", "check")
    assert check.returncode == 0, check.stderr
    embedded = installed.site / "boostline" / "data" / "boostline.yaml"
    assert f"{embedded}: ok" in check.stdout
    assert "loan_schema.yaml: ok" in check.stdout
    # An editable copy, picked by the environment.
    assert installed.run("config", "init", "mine").returncode == 0
    mine = installed.cwd / "mine" / "boostline.yaml"
    mine.write_text(mine.read_text().replace("project: boostline", "project: lender"))
    named = installed.run("config", "check", BOOSTLINE_CONFIG=str(mine))
    assert named.returncode == 0 and named.stdout.startswith(f"{mine}: ok")


@pytest.mark.slow
def test_an_installed_boostline_runs_a_pipeline_from_a_synthesized_assembly(
    installed: Installed, light
) -> None:
    generated = installed.run("data", "generate", "--rows", "1500", "--out", "book.csv")
    assert generated.returncode == 0, generated.stderr
    # Without the CDK app there is nothing to synthesize: a clear refusal, no traceback.
    refused = installed.run("pipeline", "run", "--data", "book.csv")
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "needs the Boostline repository's app.py, stacks" in refused.stderr
    assert "--assembly DIR" in refused.stderr
    # A cloud assembly synthesized in a checkout runs as it is.
    ran = installed.run(
        "pipeline",
        "run",
        "--data",
        "book.csv",
        "--assembly",
        str(light.assembly.dir),
        "--config",
        str(light.file),
        "--max-trials",
        "1",
        BOOSTLINE_NODE_ROOT=str(REPO_ROOT),  # the IAM policy evaluator's node_modules
    )
    # Every step ran from the installed scripts; on 1,500 rows the gate may refuse the
    # model on noise, which is the pipeline working too.
    assert "Evaluate (processing job" in ran.stderr and "QualityGate:" in ran.stderr
    assert "Traceback" not in ran.stderr
    registered = "succeeded: model version 1" in ran.stdout
    assert ran.returncode == (0 if registered else 1), ran.stderr[-2000:]
    assert registered or "Quality gate failed" in ran.stderr


@pytest.mark.slow
def test_commands_that_run_the_lambda_code_say_they_need_a_checkout(
    installed: Installed, dev_assembly
) -> None:
    demo = installed.run("demo", "--assembly", str(dev_assembly.dir))
    assert demo.returncode == 2
    assert "Traceback" not in demo.stderr
    assert "needs the Boostline repository's lambda" in demo.stderr
