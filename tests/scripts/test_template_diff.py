"""scripts/template_diff.py on small template folders, through its command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "template_diff.py"

BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "raw", "Tags": []}}
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}}
QUEUE = {"Type": "AWS::SQS::Queue"}
ROLE = {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "job"}}


def write(root: Path, stage: str, stack: str, template: dict) -> None:
    folder = root / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stack}.template.json").write_text(json.dumps(template), encoding="utf-8")


def run(base: Path, head: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(base), str(head), "--base-ref", "main", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table_rows(report: str, stack: str) -> list[list[str]]:
    """The rows of a stack's change table: [change, section, logical id, type, what]."""
    section = report.split(f"#### `{stack}`", 1)[1].split("<details>", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    base, head = tmp_path / "synth-base", tmp_path / "synth"
    storage = {"Resources": {"Raw": BUCKET, "Old": QUEUE}, "Outputs": {"RawName": {"Value": "x"}}}
    changed_bucket = {**BUCKET, "Properties": {**BUCKET["Properties"], "BucketName": "raw-2"}}
    write(base, "dev", "Storage", storage)
    write(
        head,
        "dev",
        "Storage",
        {
            "Parameters": {"Threshold": {"Type": "String", "Default": "0.5"}},
            "Resources": {"Raw": changed_bucket, "Alerts": TOPIC},
            "Outputs": {"RawName": {"Value": "x"}},
        },
    )
    for root in (base, head):
        write(root, "dev", "Pipeline", {"Resources": {"Role": ROLE}})
        write(root, "prod", "Storage", {"Resources": {"Raw": BUCKET}})
    write(head, "dev", "Serving", {"Resources": {"Endpoint": TOPIC}})
    return base, head


def test_added_removed_and_changed_entries_per_stack(folders: tuple[Path, Path]) -> None:
    base, head = folders
    result = run(base, head)
    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert report.startswith("## Template diff against `main`\n")
    assert "- `dev`: 1 changed, 1 added, 1 unchanged" in report
    assert "- `prod`: 1 unchanged" in report
    assert table_rows(report, "Storage") == [
        ["added", "Resources", "`Alerts`", "`AWS::SNS::Topic`", ""],
        ["removed", "Resources", "`Old`", "`AWS::SQS::Queue`", ""],
        ["changed", "Resources", "`Raw`", "`AWS::S3::Bucket`", "`Properties.BucketName`"],
        ["added", "Parameters", "`Threshold`", "`String`", ""],
    ]
    assert "#### `Storage`: changed (2 added, 1 removed, 1 changed)" in report
    assert "#### `Serving`: added" in report
    assert table_rows(report, "Serving") == [
        ["added", "Resources", "`Endpoint`", "`AWS::SNS::Topic`", ""]
    ]
    assert "Unchanged: `Pipeline`." in report
    assert '-    "BucketName": "raw"' in report and '+    "BucketName": "raw-2"' in report
    # an unchanged stage says so and has no table
    prod = report.split("### Stage `prod`", 1)[1]
    assert "Every stack is unchanged (`Storage`)." in prod
    assert "####" not in prod


def test_unchanged_templates_say_so(tmp_path: Path) -> None:
    for root in (tmp_path / "a", tmp_path / "b"):
        write(root, "dev", "Storage", {"Resources": {"Raw": BUCKET}})
    result = run(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 0
    assert "- `dev`: 0 unchanged" not in result.stdout
    assert "- `dev`: 1 unchanged" in result.stdout
    assert "Every stack is unchanged (`Storage`)." in result.stdout
    assert "added" not in result.stdout and "```diff" not in result.stdout


def test_a_missing_base_says_so_and_lists_nothing_as_new(folders: tuple[Path, Path]) -> None:
    _, head = folders
    missing = head.parent / "nowhere"
    result = run(missing, head)
    assert result.returncode == 0
    assert "**No base templates**" in result.stdout
    assert "does not exist" in result.stdout
    assert "added" not in result.stdout
    assert run(missing, head, "--strict").returncode == 1


def test_a_failed_base_synth_says_why(folders: tuple[Path, Path]) -> None:
    base, head = folders
    (base / "FAILED").write_text("pip install failed: no matching distribution\n")
    result = run(base, head)
    assert "**The base branch could not be synthesized**" in result.stdout
    assert "pip install failed: no matching distribution" in result.stdout
    assert "added" not in result.stdout
    assert run(base, head, "--strict").returncode == 1


def test_a_failed_stage_of_the_base_is_not_compared(folders: tuple[Path, Path]) -> None:
    base, head = folders
    for template in (base / "dev").iterdir():
        template.unlink()
    (base / "dev" / "FAILED").write_text("configuration error:\nstages: no stage 'dev'\n")
    result = run(base, head)
    assert result.returncode == 0
    assert "- `dev`: **the base synth failed**, not compared" in result.stdout
    assert "stages: no stage 'dev'" in result.stdout
    dev = result.stdout.split("### Stage `dev`", 1)[1].split("### Stage `prod`", 1)[0]
    assert "####" not in dev  # no stack of the stage listed as added
    assert "Every stack is unchanged (`Storage`)." in result.stdout  # prod still compared
    assert run(base, head, "--strict").returncode == 1


def test_new_and_removed_stages(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    write(base, "old", "Storage", {"Resources": {"Raw": BUCKET}})
    write(head, "new", "Storage", {"Resources": {"Raw": BUCKET}})
    report = run(base, head).stdout
    assert "The stage is new: the base branch does not have it." in report
    assert "The stage is removed: this change does not have it." in report
    assert table_rows(report, "Storage")[0][:3] == ["added", "Resources", "`Raw`"]


def test_the_report_never_goes_into_a_compared_folder(folders: tuple[Path, Path]) -> None:
    base, head = folders
    before = sorted(p.relative_to(head.parent) for p in head.parent.rglob("*"))
    refused = run(base, head, "--output", str(head / "templates.md"))
    assert refused.returncode == 2
    assert "inside" in refused.stderr
    outside = head.parent / "template-diff" / "summary.md"
    done = run(base, head, "--output", str(outside))
    assert done.returncode == 0 and done.stdout == ""
    assert outside.read_text().startswith("## Template diff against `main`")
    after = sorted(p.relative_to(head.parent) for p in head.parent.rglob("*"))
    assert set(after) - set(before) == {Path("template-diff"), Path("template-diff/summary.md")}
    # a second run over the same folders reads the same: the report is not compared
    assert run(base, head).stdout == outside.read_text()


def test_a_broken_template_is_an_error_not_a_diff(folders: tuple[Path, Path]) -> None:
    base, head = folders
    (head / "dev" / "Storage.template.json").write_text("{not json")
    result = run(base, head)
    assert result.returncode == 2
    assert "Storage.template.json" in result.stderr or "Expecting" in result.stderr


def test_long_lines_are_cut_and_a_long_report_leaves_the_diffs_out(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    definition = {"Type": "AWS::SageMaker::Pipeline", "Properties": {"Definition": "x" * 5000}}
    write(base, "dev", "Pipeline", {"Resources": {"Training": definition}})
    longer = {**definition, "Properties": {"Definition": "y" * 5000}}
    write(head, "dev", "Pipeline", {"Resources": {"Training": longer}})
    full = run(base, head).stdout
    assert re.search(r"(x|y){300}\.\.\. \(46\d\d more characters\)", full)  # cut at 400
    assert max(len(line) for line in full.splitlines()) < 500
    short = run(base, head, "--max-chars", "800").stdout
    assert len(short) <= 800
    assert "```diff" not in short and "The unified diffs are left out" in short
    assert table_rows(short, "Pipeline") == [
        [
            "changed",
            "Resources",
            "`Training`",
            "`AWS::SageMaker::Pipeline`",
            "`Properties.Definition`",
        ]
    ]
