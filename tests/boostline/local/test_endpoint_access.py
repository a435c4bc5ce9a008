"""The endpoint the rendered serving stack deploys: what SageMaker does with the Model's
ExecutionRoleArn (the model package, its artifact and code archive, the capture writes)
is checked against the endpoint role's synthesized policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from boostline.local.access_checks import StageAccess, endpoint_request
from boostline.local.assembly import Assembly, open_assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.iam import AccessDenied
from boostline.local.iam.stage import render_assembly

REGION = "eu-west-1"
ARTIFACTS = f"boostline-dev-artifacts-{ACCOUNT}-{REGION}"
CAPTURE = f"boostline-dev-capture-{ACCOUNT}-{REGION}"
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/boostline-dev-models/1"
# What the pipeline's RegisterModel step registers (its InferenceSpecification).
PACKAGE = {
    "ModelPackageArn": PACKAGE_ARN,
    "InferenceSpecification": {
        "Containers": [
            {
                "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
                "ModelDataUrl": f"s3://{ARTIFACTS}/models/e1/e1-tune-001/output/model.tar.gz",
                "Environment": {
                    "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{ARTIFACTS}/runs/e1/code/sourcedir.tar.gz"
                },
            }
        ]
    },
}


def _serving(assembly: Assembly) -> Any:
    parameters = {"Serving": {"ModelPackageArn": PACKAGE_ARN, "DecisionThreshold": "0.4"}}
    stacks = render_assembly(assembly.dir, account=ACCOUNT, region=REGION, parameters=parameters)
    return stacks["Serving"]


def test_the_endpoint_request_is_the_rendered_stacks(dev_assembly: Assembly) -> None:
    request = endpoint_request(_serving(dev_assembly), PACKAGE)
    assert request["Endpoint"]["EndpointName"] == "boostline-dev-endpoint"
    assert request["Model"]["ExecutionRoleArn"].endswith(":role/boostline-dev-endpoint")
    assert request["Model"]["Containers"][0]["ModelPackageName"] == PACKAGE_ARN
    capture = request["EndpointConfig"]["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{CAPTURE}/capture"


def test_the_endpoints_accesses_are_allowed_as_synthesized(dev_assembly: Assembly) -> None:
    with StageAccess(dev_assembly, account=ACCOUNT, region=REGION) as access:
        checked = access.check_endpoint(_serving(dev_assembly), PACKAGE)
        assert access.counts() == {"boostline-dev-endpoint": (checked, checked)}
        made = {(d.access.action, d.access.resource) for d in access.checker.decisions}
    assert (
        "s3:GetObject",
        f"arn:aws:s3:::{ARTIFACTS}/models/e1/e1-tune-001/output/model.tar.gz",
    ) in made
    assert ("sagemaker:DescribeModelPackage", PACKAGE_ARN) in made
    assert any(
        a == "s3:PutObject" and r.startswith(f"arn:aws:s3:::{CAPTURE}/capture/") for a, r in made
    )


def test_without_the_capture_grant_the_endpoint_is_denied(
    dev_assembly: Assembly, tmp_path: Path
) -> None:
    target = tmp_path / "assembly"
    shutil.copytree(dev_assembly.dir, target, symlinks=True)
    path = target / "Serving.template.json"
    template = json.loads(path.read_text())
    (policy,) = [r for k, r in template["Resources"].items() if k.startswith("ExecutionRolePolicy")]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "WriteDataCapture"]
    path.write_text(json.dumps(template))
    broken = open_assembly(target)
    with (
        StageAccess(broken, account=ACCOUNT, region=REGION) as access,
        pytest.raises(AccessDenied) as denied,
    ):
        access.check_endpoint(_serving(broken), PACKAGE)
    assert denied.value.role == "boostline-dev-endpoint"
    assert denied.value.action == "s3:PutObject"
    assert denied.value.resource.startswith(
        f"arn:aws:s3:::{CAPTURE}/capture/boostline-dev-endpoint/"
    )
    assert "assumed-role/boostline-dev-endpoint/SageMaker is not authorized" in str(denied.value)
