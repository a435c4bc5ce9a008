"""cdk-nag: every stack clean, every acknowledgement exact, justified and needed."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from stacks import app_context, nag


def _violations(report: dict) -> set[tuple[str, str]]:
    found = set()
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                found.add((construct["constructPath"], violation["ruleName"]))
    return found


def test_packs_report_no_unacknowledged_finding(any_synth):
    report = any_synth.validation_report
    assert _violations(report) == set(), json.dumps(report, indent=1)[:4000]


def test_every_acknowledgement_names_a_resource_and_gives_one_sentence(any_synth):
    # Only the rule packs' acknowledgements are ours (CDK adds some of its own).
    acks = [a for a in nag.acknowledged(any_synth.app) if a.rule.startswith(nag.PACKS)]
    assert acks
    for ack in acks:
        stack, _, rest = ack.path.partition("/")
        assert rest, f"{ack.rule} acknowledged on a whole stack ({ack.path})"
        assert ack.rule.startswith(("AwsSolutions-", "NIST.800.53.R5-"))
        assert ack.reason.endswith(".") and ack.reason.count(". ") == 0, ack


def test_every_acknowledgement_matches_a_real_finding(dev_unacknowledged):
    synth, recorded = dev_unacknowledged
    assert synth.error is not None, "without acknowledgements the synth must fail"
    findings = _violations(synth.validation_report)
    assert set(recorded) == findings


def test_blanket_acknowledgements_are_refused():
    app = App()
    stack = Stack(app, "S")
    with pytest.raises(ValueError, match="not on"):
        nag.acknowledge(stack, "AwsSolutions-S1", "Reasons do not make a blanket acceptable.")
    bucket = s3.Bucket(stack, "B")
    with pytest.raises(ValueError, match="one sentence"):
        nag.acknowledge(nag.cfn(bucket), "AwsSolutions-S1", "no capital. Two sentences.")
    with pytest.raises(ValueError, match="packs in use"):
        nag.acknowledge(nag.cfn(bucket), "HIPAA.Security-S3BucketLoggingEnabled", "Not used here.")


def test_an_unacknowledged_finding_fails_the_synth(tmp_path):
    app = App(context=app_context(), outdir=str(tmp_path))
    stack = Stack(app, "Probe")
    s3.Bucket(stack, "PlainBucket")
    nag.add_packs(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {
        rule
        for _, rule in _violations(json.loads((tmp_path / "validation-report.json").read_text()))
    }
    assert "AwsSolutions-S1" in rules and "NIST.800.53.R5-S3DefaultEncryptionKMS" in rules
