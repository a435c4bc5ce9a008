"""The local AWS endpoint, through boto3 as the job scripts call it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from boostline.local.local_aws import LocalAwsEndpoint, LocalS3


@pytest.fixture
def endpoint(tmp_path: Path):
    bucket = tmp_path / "capture"
    (bucket / "capture" / "ep" / "2030" / "01").mkdir(parents=True)
    (bucket / "capture" / "ep" / "2030" / "01" / "a.jsonl").write_text("{}\n")
    (bucket / "other.txt").write_text("x")
    s3 = LocalS3({"cap": bucket})
    packages = {"arn:aws:sagemaker:eu-west-1:1:model-package/g/1": {"ModelPackageVersion": 1}}

    def describe(arn: str) -> dict:
        if arn not in packages:
            raise LookupError(f"no {arn}")
        return packages[arn]

    with LocalAwsEndpoint(s3, {}, "eu-west-1", describe_package=describe) as served:
        yield served


def _client(endpoint: LocalAwsEndpoint, service: str):
    env = endpoint.env()
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_list_objects_names_only_the_prefix(endpoint) -> None:
    s3 = _client(endpoint, "s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="cap", Prefix="capture/ep/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert keys == ["capture/ep/2030/01/a.jsonl"]
    assert ("s3:ListBucket", "arn:aws:s3:::cap", {"s3:prefix": "capture/ep/"}) in endpoint.requests


def test_metrics_and_events_are_recorded_for_the_caller(endpoint) -> None:
    _client(endpoint, "cloudwatch").put_metric_data(
        Namespace="Boostline/Monitoring", MetricData=[{"MetricName": "m", "Value": 2.0}]
    )
    answer = _client(endpoint, "events").put_events(
        Entries=[{"Source": "s", "DetailType": "d", "Detail": json.dumps({"a": 1})}]
    )
    assert answer["FailedEntryCount"] == 0
    assert endpoint.metrics[0]["Namespace"] == "Boostline/Monitoring"
    assert endpoint.metrics[0]["MetricData"][0]["Value"] == 2.0
    assert endpoint.events == [{"Source": "s", "DetailType": "d", "Detail": '{"a": 1}'}]
    actions = {action for action, _, _ in endpoint.requests}
    assert {"cloudwatch:PutMetricData", "events:PutEvents"} <= actions


def test_model_packages_are_described_and_unknown_ones_refused(endpoint) -> None:
    sagemaker = _client(endpoint, "sagemaker")
    arn = "arn:aws:sagemaker:eu-west-1:1:model-package/g/1"
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"] == 1
    with pytest.raises(ClientError, match="ValidationException"):
        sagemaker.describe_model_package(ModelPackageName=arn[:-1] + "9")


def test_other_calls_are_refused_by_name(endpoint) -> None:
    with pytest.raises(ClientError) as error:
        _client(endpoint, "sqs").list_queues()
    assert "does not serve" in str(error.value)
    assert any(call.startswith("refused") for call in endpoint.calls)
