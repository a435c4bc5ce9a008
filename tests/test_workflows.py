""".github/workflows: they parse, their actions are pinned, their shell steps are valid bash
and run as intended here, and the infra workflow's paths cover what the stacks are built from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step(workflow: dict, name: str) -> dict:
    (found,) = [s for s in steps(workflow) if s.get("name") == name]
    return found


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` block as the runner runs it (bash -eo pipefail)."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def path_matches(pattern: str, path: str) -> bool:
    """GitHub's paths filter: `*` stays within a folder, `**` crosses them."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


INFRA, TEST = load("infra.yml"), load("test.yml")
INFRA_PATHS = triggers(INFRA)["pull_request"]["paths"]


def test_both_workflows_run_on_pull_requests_with_read_only_permissions() -> None:
    for workflow in (INFRA, TEST):
        assert "pull_request" in triggers(workflow)
        assert workflow["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("workflow", [INFRA, TEST], ids=["infra", "test"])
def test_every_action_is_pinned(workflow: dict) -> None:
    uses = [s["uses"] for s in steps(workflow) if "uses" in s]
    assert uses
    assert [u for u in uses if not PINNED.match(u)] == []


@pytest.mark.parametrize("workflow", [INFRA, TEST], ids=["infra", "test"])
def test_every_run_block_is_valid_bash_and_hides_no_failure(workflow: dict) -> None:
    for s in steps(workflow):
        if "run" not in s:
            continue
        script = EXPRESSION.sub("x", s["run"])
        checked = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert checked.returncode == 0, (s.get("name"), checked.stderr)
        assert "|| true" not in s["run"], s.get("name")


@pytest.mark.parametrize("workflow", [INFRA, TEST], ids=["infra", "test"])
def test_make_targets_the_workflows_run_exist(workflow: dict) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    used = {
        t for s in steps(workflow) for t in re.findall(r"\bmake ([a-z][\w-]*)", s.get("run", ""))
    }
    assert used and used <= targets


def test_the_test_workflow_runs_make_test_on_both_pythons_and_node_20() -> None:
    python = next(s for s in steps(TEST) if s.get("uses", "").startswith("actions/setup-python@"))
    versions = str(python["with"]["python-version"]).split()
    assert versions[-1] == "3.11" and "3.10" in versions  # the last is the default python3
    node = next(s for s in steps(TEST) if s.get("uses", "").startswith("actions/setup-node@"))
    assert str(node["with"]["node-version"]) == "20"
    runs = [s["run"] for s in steps(TEST) if "run" in s]
    assert any(re.search(r"^make test\b.*PYTHON=python3\.11", r, re.MULTILINE) for r in runs)
    assert any("python3.10 --version" in r for r in runs)


def test_every_infra_path_pattern_matches_a_file() -> None:
    files = tracked_files()
    stale = [p for p in INFRA_PATHS if not any(path_matches(p, f) for f in files)]
    assert stale == []


def test_the_infra_paths_cover_everything_the_stacks_are_built_from() -> None:
    # What the app imports (every stacks module, app.py), from this checkout ...
    probe = (
        "import importlib, json, pkgutil, sys; sys.path.insert(0, '.'); import app, stacks\n"
        "for m in pkgutil.iter_modules(stacks.__path__):\n"
        "    importlib.import_module('stacks.' + m.name)\n"
        "from boostline.config import load_config\n"
        "c = load_config()\n"
        "files = [getattr(m, '__file__', None) for m in list(sys.modules.values())]\n"
        "print(json.dumps([f for f in files if f] + [str(c.source), str(c.schema_path())]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    loaded = {
        Path(f).resolve().relative_to(ROOT).as_posix()
        for f in json.loads(out.stdout.splitlines()[-1])
        if Path(f).resolve().is_relative_to(ROOT) and ".venv" not in Path(f).parts
    }
    assert {
        "app.py",
        "boostline/config.py",
        "boostline/naming.py",
        # config/boostline.yaml, resolved: the default config the package ships
        "boostline/data/boostline.yaml",
    } <= loaded
    # ... what the synth reads from disk (the function folders, the code archive, cdk.json,
    # the pinned Powertools in pyproject.toml, the CLI) and the workflow's own machinery.
    files = tracked_files()
    read = [f for f in files if f.startswith(("lambda/", "training_scripts/"))]
    read += ["cdk.json", "pyproject.toml", "package.json", "package-lock.json", "Makefile"]
    read += ["scripts/synth_stages.py", "scripts/template_diff.py", ".github/workflows/infra.yml"]
    uncovered = sorted(
        f for f in loaded | set(read) if not any(path_matches(p, f) for p in INFRA_PATHS)
    )
    assert uncovered == []


def test_the_path_matcher_reads_globs_as_github_does() -> None:
    assert path_matches("stacks/**", "stacks/a/b.py")
    assert path_matches("boostline/data/*.yaml", "boostline/data/loan_schema.yaml")
    assert not path_matches("boostline/data/*.yaml", "boostline/data/x/loan.yaml")
    assert not path_matches("app.py", "stacks/app.py")
    assert path_matches("**/*.yaml", "config/boostline.yaml")


def test_the_template_diff_goes_to_the_summary_from_outside_the_compared_folders() -> None:
    run = step(INFRA, "Template diff against the base branch")["run"]
    assert "scripts/template_diff.py synth-base synth" in run
    assert '>>"$GITHUB_STEP_SUMMARY"' in run
    outputs = re.findall(r"(?:--output|>)\s*(\S+)", run)
    assert outputs and all(not o.startswith(("synth/", "synth-base/")) for o in outputs)
    upload = next(
        s for s in steps(INFRA) if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert upload["if"] == "always()"
    assert set(upload["with"]["path"].split()) == {"synth/", "synth-base/", "template-diff/"}


def fake_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder with this repository's scripts and venv, and a base branch."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "scripts").symlink_to(ROOT / "scripts")
    (work / ".venv").symlink_to(ROOT / ".venv")
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    env = {
        "RUNNER_TEMP": str(runner_temp),
        "BASE_REF": "main",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return work, env


def commit_base(work: Path, env: dict[str, str], files: dict[str, str]) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", *args], cwd=work, env={**os.environ, **env}, check=True, capture_output=True
        )

    git("init", "-q")
    for name, text in files.items():
        (work / name).write_text(text)
    git("add", *files)
    git("commit", "-q", "-m", "base")
    git("update-ref", "refs/remotes/origin/main", "HEAD")


needs_venv = pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists() or shutil.which("npm") is None,
    reason="needs .venv (make install) and npm",
)


@needs_venv
def test_a_base_that_does_not_install_is_reported_in_the_summary(tmp_path: Path) -> None:
    work, env = fake_checkout(tmp_path)
    commit_base(work, env, {"Makefile": "install:\n\t@echo 'no matching distribution'; exit 3\n"})
    done = run_step(step(INFRA, "Synth the base branch")["run"], work, env)
    assert done.returncode == 0, done.stderr
    assert "::warning title=Base synth::installing main failed" in done.stdout
    failed = (work / "synth-base" / "FAILED").read_text()
    assert "installing main (make install, npm ci) failed:" in failed
    assert "no matching distribution" in failed

    (work / "synth" / "dev").mkdir(parents=True)
    (work / "synth" / "dev" / "Storage.template.json").write_text('{"Resources": {}}')
    done = run_step(step(INFRA, "Template diff against the base branch")["run"], work, env)
    assert done.returncode == 0, done.stderr
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## Template diff against `main`")
    assert "**The base branch could not be synthesized**" in summary
    assert "no matching distribution" in summary
    assert (work / "template-diff" / "summary.md").read_text() == summary
    assert (
        "+++ synth/dev/Storage.template.json"
        in (work / "template-diff" / "templates.diff").read_text()
    )


@needs_venv
def test_a_base_whose_stages_do_not_synthesize_is_reported(tmp_path: Path) -> None:
    work, env = fake_checkout(tmp_path)
    lock = {
        "name": "b",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "b", "version": "1.0.0"}},
    }
    commit_base(
        work,
        env,
        {
            "Makefile": "install:\n\t@echo installed\n",  # installs nothing: no .venv
            "package.json": json.dumps({"name": "b", "version": "1.0.0", "private": True}),
            "package-lock.json": json.dumps(lock),
        },
    )
    done = run_step(step(INFRA, "Synth the base branch")["run"], work, env)
    assert done.returncode == 0, done.stderr
    assert "::warning title=Base synth::a stage of main did not synthesize" in done.stdout
    assert ".venv/bin/python does not exist" in (work / "synth-base" / "FAILED").read_text()


def test_the_diff_is_reported_before_the_checks_and_when_the_synth_failed() -> None:
    names = [s.get("name", s.get("uses", "")) for s in steps(INFRA)]
    order = [
        "Install",
        "Synth every stage",
        "Synth the base branch",
        "Template diff against the base branch",
        "Lint",
    ]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert "node_modules/.installed" in step(INFRA, "Install")["run"]  # tests/scripts runs the CLI
    head = step(INFRA, "Synth every stage")
    assert head["id"] == "head" and head["run"] == "make synth-stages OUT=synth"
    for name in ("Synth the base branch", "Template diff against the base branch"):
        condition = step(INFRA, name)["if"]
        assert "!cancelled()" in condition and "steps.head.outcome != 'skipped'" in condition
