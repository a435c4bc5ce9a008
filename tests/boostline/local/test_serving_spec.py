"""The endpoint the rendered serving stack describes, from the synthesized templates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from boostline.local.cfn_render import render_stage
from boostline.local.serving_spec import ServingSpecError, endpoint_spec

SNAPSHOTS = Path(__file__).resolve().parents[2] / "stacks" / "snapshots"
ORDER = ["Storage", "Pipeline", "Automation", "Serving"]
PACKAGE = "arn:aws:sagemaker:eu-west-1:000000000000:model-package/boostline-{stage}-models/4"


def _templates(variant: str) -> dict[str, dict]:
    folder = SNAPSHOTS / variant
    stacks = [
        s for s in ["Storage", "Network", *ORDER[1:]] if (folder / f"{s}.template.json").exists()
    ]
    return {s: json.loads((folder / f"{s}.template.json").read_text()) for s in stacks}


def _serving(templates: dict[str, dict], stage: str, **parameters: str):
    names = {s: f"boostline-{stage}-{s.lower()}" for s in templates}
    rendered = render_stage(templates, list(templates), names, {"Serving": parameters})
    return rendered["Serving"]


def test_no_model_no_endpoint():
    assert endpoint_spec(_serving(_templates("dev"), "dev")) is None


@pytest.mark.parametrize(("variant", "stage"), [("dev", "dev"), ("prod_vpc", "prod")])
def test_the_endpoint_comes_from_the_rendered_resources(variant, stage):
    package = PACKAGE.format(stage=stage)
    spec = endpoint_spec(
        _serving(_templates(variant), stage, ModelPackageArn=package, DecisionThreshold="0.27")
    )
    assert spec is not None
    assert spec.endpoint_name == f"boostline-{stage}-endpoint"
    assert spec.model_package_arn == package
    # The threshold travels as AWS carries it: the Model container's environment.
    assert spec.threshold == 0.27
    assert spec.variant_name == "AllTraffic"
    assert spec.capture_destination == (
        f"s3://boostline-{stage}-capture-000000000000-eu-west-1/capture"
    )
    assert spec.capture_csv_types == ("text/csv",)
    assert spec.rollback_alarms == (
        f"boostline-{stage}-endpoint-5xx",
        f"boostline-{stage}-endpoint-latency",
    )
    expected = {"dev": (100, 1, "ml.m5.large"), "prod": (20, 2, "ml.m5.xlarge")}[stage]
    assert (spec.capture_percent, spec.instance_count, spec.instance_type) == expected


def test_a_variant_naming_a_model_the_stack_lacks_is_an_error():
    templates = copy.deepcopy(_templates("dev"))
    config = templates["Serving"]["Resources"]["EndpointConfig"]["Properties"]
    config["ProductionVariants"][0]["ModelName"] = "someone-elses-model"
    with pytest.raises(ServingSpecError, match="someone-elses-model"):
        endpoint_spec(_serving(templates, "dev", ModelPackageArn=PACKAGE.format(stage="dev")))
