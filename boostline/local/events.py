"""EventBridge events of the shapes AWS delivers, for feeding the handlers locally."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from boostline.local.emulator import ACCOUNT


def _envelope(
    detail_type: str,
    source: str,
    region: str,
    resources: list[str],
    detail: dict[str, Any],
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def object_created(region: str, bucket: str, key: str, size: int) -> dict[str, Any]:
    return _envelope(
        "Object Created",
        "aws.s3",
        region,
        [f"arn:aws:s3:::{bucket}"],
        {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": uuid.uuid4().hex,
                "sequencer": uuid.uuid4().hex[:16],
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "reason": "PutObject",
        },
    )


def model_package_state_change(region: str, package: dict[str, Any]) -> dict[str, Any]:
    """From a DescribeModelPackage answer, as SageMaker emits it on a status change."""
    detail = {
        key: package[key]
        for key in (
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "InferenceSpecification",
            "ModelApprovalStatus",
            "ModelPackageStatus",
        )
        if key in package
    }
    detail["CreationTime"] = int(datetime.now(timezone.utc).timestamp() * 1000)
    detail["CreatedBy"] = {}
    return _envelope(
        "SageMaker Model Package State Change",
        "aws.sagemaker",
        region,
        [package["ModelPackageArn"]],
        detail,
    )


def scheduled(region: str, rule: str) -> dict[str, Any]:
    return _envelope(
        "Scheduled Event",
        "aws.events",
        region,
        [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule}"],
        {},
    )


def pipeline_execution_finished(region: str, execution_arn: str, status: str) -> dict[str, Any]:
    pipeline_arn = execution_arn.split("/execution/")[0]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _envelope(
        "SageMaker Model Building Pipeline Execution Status Change",
        "aws.sagemaker",
        region,
        [pipeline_arn, execution_arn],
        {
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionEndTime": now,
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": execution_arn,
        },
    )


def stack_status_change(region: str, stack_id: str, status: str) -> dict[str, Any]:
    """CloudFormation's event when a stack reaches a status."""
    return _envelope(
        "CloudFormation Stack Status Change",
        "aws.cloudformation",
        region,
        [stack_id],
        {
            "stack-id": stack_id,
            "status-details": {"status": status, "status-reason": ""},
            "client-request-token": "",
        },
    )
