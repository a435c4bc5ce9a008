"""cfn-lint on every synthesized template: no errors, warnings only by named rule."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

# Warnings accepted, each with its reason. Everything else fails the test.
IGNORED_WARNINGS = {
    # CDK's own bucket-emptying provider (dev only) declares DependsOn next to a GetAtt.
    "W3005": "CDK's S3AutoDeleteObjects provider declares a DependsOn its GetAtt implies",
    # VPC mode names its availability zones on purpose: synth does no AZ lookup.
    "W3010": "AZ names come from the stage config so that synth needs no lookup",
}


def test_templates_pass_cfn_lint(any_synth):
    templates = sorted(any_synth.outdir.glob("*.template.json"))
    assert templates
    problems = []
    for template in templates:
        matches = lint_file(
            Path(template),
            ManualArgs(
                regions=[any_synth.config.stage(any_synth.stage).region],
                ignore_checks=sorted(IGNORED_WARNINGS),
            ),
        )
        problems += [f"{template.name}: {m.rule.id} {m.message} ({m.linenumber})" for m in matches]
    assert problems == []


def test_ignored_warnings_are_only_warnings():
    assert all(rule.startswith("W") for rule in IGNORED_WARNINGS)
