"""A pipeline rendered with the live model's parameters, executed on this machine.

The batch pipeline (boostline.local.batch_run) and our own monitors
(boostline.local.monitoring_run) run alike: the definition, rendered from its stack
with the live parameters, is run by boostline.local.pipeline_executor over the local
buckets; the jobs' boto3 calls reach a local AWS endpoint, which describes model
packages from the local registry (the live package's ARN names its version last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boostline.config import BoostlineConfig
from boostline.local.access_checks import StageAccess
from boostline.local.assembly import Assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.local_aws import LocalAwsEndpoint, LocalS3
from boostline.local.pipeline import local_s3
from boostline.local.pipeline_executor import ExecutionError, PipelineExecutor
from boostline.local.workdir import Workdir
from boostline.progress import Progress
from boostline.registry import Registry, RegistryError


@dataclass
class LiveExecution:
    """How an execution ended, and what its jobs left: the buckets, the endpoint's records."""

    status: str
    failure: str
    s3: LocalS3
    executor: PipelineExecutor
    endpoint: LocalAwsEndpoint


def execute_live(
    workdir: Workdir,
    config: BoostlineConfig,
    stage: str,
    *,
    assembly: Assembly,
    definition: dict[str, Any],
    pipeline_name: str,
    execution_id: str,
    parameters: dict[str, str],
    access: StageAccess | None,
    progress: Progress,
) -> LiveExecution:
    """Execute `definition` with `parameters`; a failed step ends it as Failed, not raised."""
    region = config.stage(stage).region
    registry = Registry(workdir.root)
    s3 = local_s3(workdir, config, stage, assembly)

    def describe(arn: str) -> dict[str, Any]:
        try:
            return registry.describe(arn.rsplit("/", 1)[-1]).data
        except RegistryError as exc:
            raise LookupError(f"model package {arn} not found: {exc}") from None

    with LocalAwsEndpoint(s3, {}, region, describe_package=describe) as endpoint:
        executor = PipelineExecutor(
            definition,
            s3=s3,
            workdir=workdir,
            registry=registry,
            execution_id=execution_id,
            pipeline_name=pipeline_name,
            region=region,
            account=ACCOUNT,
            parameters=parameters,
            job_env=endpoint.env(),
            progress=progress,
            access=access,
        )
        try:
            executor.run()
            status, failure = "Succeeded", ""
        except ExecutionError as exc:
            status, failure = "Failed", str(exc)
    return LiveExecution(status, failure, s3, executor, endpoint)
