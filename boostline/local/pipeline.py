"""The training pipeline on this machine: the deployed definition, executed.

`run_pipeline` takes the stage's cloud assembly (synthesized and cached, or given with
`--assembly`), renders the `AWS::SageMaker::Pipeline` definition for the local account
and the stage's region, and runs it with boostline.local.pipeline_executor: whatever
steps, parameters and expressions the definition holds, nothing else. Parameters come
from the definition's defaults, overridden as StartPipelineExecution would override
them. The run is recorded in `<workdir>/runs/<execution-id>.json`.

Every job's accesses are checked against the synthesized policy of its role, from the
stacks of the same assembly (boostline.local.access_checks): one IAM policy evaluator
(one Node process) per run, or the caller's, shared by a demo's runs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boostline import checkout
from boostline.config import BoostlineConfig
from boostline.local.access_checks import StageAccess
from boostline.local.assembly import Assembly, AssemblyError, open_assembly, stage_assembly
from boostline.local.emulator import ACCOUNT
from boostline.local.iam import EvaluatorUnavailable
from boostline.local.local_aws import LocalAwsEndpoint, LocalS3
from boostline.local.pipeline_executor import ExecutionError, PipelineExecutor
from boostline.local.workdir import Workdir
from boostline.naming import names_for
from boostline.progress import Progress
from boostline.registry import Registry


class PipelineFailed(RuntimeError):
    """The run stopped; the message names the step and why (a job's failure reason)."""


@dataclass
class PipelineRun:
    run_id: str  # the pipeline execution id
    status: str = "Executing"
    trigger: str = "manual"
    assembly: str = ""
    definition_sha256: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None
    model_package_version: int | None = None
    model_approval_status: str | None = None
    report: Path | None = None
    failure_step: str | None = None
    failure_reason: str | None = None
    # role -> {"checked": n, "allowed": n}: this run's accesses, checked against its policies
    access_checks: dict[str, dict[str, int]] = field(default_factory=dict)

    def save(self, workdir: Workdir) -> Path:
        path = workdir.runs / f"{self.run_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        tmp.replace(path)
        return path


def new_execution_id() -> str:
    """12 lowercase letters and digits, like a SageMaker pipeline execution id."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def resolve_assembly(
    config: BoostlineConfig,
    stage: str,
    cache_root: Path,
    assembly: Path | None = None,
    progress: Progress | None = None,
) -> Assembly:
    """`--assembly DIR` if given, else the stage's cached (or freshly synthesized) assembly."""
    if assembly is not None:
        return open_assembly(assembly)
    checkout.require(
        f"synthesizing stage {stage}",
        checkout.CDK_APP,
        hint=", or pass --assembly DIR: a cloud assembly that `make synth` (cdk synth) wrote",
    )
    return stage_assembly(cache_root, config, stage, echo=(progress or Progress()).say)


def local_s3(workdir: Workdir, config: BoostlineConfig, stage: str, assembly: Assembly) -> LocalS3:
    names = names_for(config, stage)
    return LocalS3.for_stage(
        names, ACCOUNT, workdir.bucket, assembly.file_assets(names.region, ACCOUNT)
    )


def champion_model_data_url(registry: Registry, s3: LocalS3) -> str:
    """What the retrain trigger passes as ChampionModelDataUrl: the newest Approved model."""
    package = registry.latest_approved()
    if package is None:
        return "none"
    containers = package.data.get("InferenceSpecification", {}).get("Containers", [])
    url = containers[0].get("ModelDataUrl") if containers else None
    if not isinstance(url, str) or not url.startswith("s3://"):
        return "none"  # registered before the pipeline definition ran locally
    bucket, _, key = url[5:].partition("/")
    return url if s3.get(bucket, key) is not None else "none"


def run_pipeline(
    workdir: Workdir,
    config: BoostlineConfig,
    *,
    stage: str = "dev",
    parameters: dict[str, Any] | None = None,
    assembly: Assembly | None = None,
    execution_id: str | None = None,
    max_trials: int | None = None,
    progress: Progress | None = None,
    access: StageAccess | None = None,
) -> PipelineRun:
    """Execute the stage's pipeline definition; raise PipelineFailed when a step fails.

    `parameters` are the execution's PipelineParameters (names from the definition).
    `max_trials` lowers the tuning step's MaxNumberOfTrainingJobs (a local budget; the
    deployed definition keeps its own; one above it is refused). `access` checks the
    jobs' accesses (default: the assembly's stacks, with an evaluator started for this
    run).
    """
    progress = progress or Progress()
    stage_config = config.stage(stage)
    region = stage_config.region
    assembly = assembly or resolve_assembly(config, stage, workdir.root, progress=progress)
    parameters = dict(parameters or {})
    run = PipelineRun(
        run_id=execution_id or new_execution_id(),
        trigger=str(parameters.get("TriggerReason", "manual")),
        assembly=str(assembly.dir),
    )
    try:
        definition = assembly.pipeline_definition(region, ACCOUNT)
    except AssemblyError as exc:
        run.status, run.failure_reason = "Failed", str(exc)
        run.save(workdir)
        raise PipelineFailed(str(exc)) from exc
    run.definition_sha256 = hashlib.sha256(
        json.dumps(definition, sort_keys=True).encode()
    ).hexdigest()
    own = None
    if access is None:
        try:
            access = own = StageAccess(assembly, account=ACCOUNT, region=region)
        except (EvaluatorUnavailable, AssemblyError) as exc:
            run.status, run.failure_reason = "Failed", str(exc)
            run.save(workdir)
            raise PipelineFailed(str(exc)) from exc
    try:
        return _execute(
            workdir,
            config,
            stage,
            parameters,
            assembly,
            run,
            definition,
            max_trials,
            progress,
            access,
        )
    finally:
        if own is not None:
            own.close()


def _execute(
    workdir: Workdir,
    config: BoostlineConfig,
    stage: str,
    parameters: dict[str, Any],
    assembly: Assembly,
    run: PipelineRun,
    definition: dict[str, Any],
    max_trials: int | None,
    progress: Progress,
    access: StageAccess,
) -> PipelineRun:
    region = config.stage(stage).region
    before = access.counts()
    s3 = local_s3(workdir, config, stage, assembly)
    registry = Registry(workdir.root)
    names = names_for(config, stage)
    # The stage's PII salt secret, as Secrets Manager would hand it to the preprocessing job.
    salt_arn = f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{names.salt_secret}"
    progress.say(f"pipeline execution {run.run_id} ({run.trigger}) from {assembly.dir}")
    with LocalAwsEndpoint(s3, {salt_arn: workdir.pii_salt()}, region) as endpoint:
        try:
            executor = PipelineExecutor(
                definition,
                s3=s3,
                workdir=workdir,
                registry=registry,
                execution_id=run.run_id,
                pipeline_name=assembly.pipeline_name(),
                region=region,
                account=ACCOUNT,
                parameters=parameters,
                job_env=endpoint.env(),
                max_trials=max_trials,
                progress=progress,
                access=access,
            )
        except ExecutionError as exc:
            run.status, run.failure_step, run.failure_reason = "Failed", exc.step, str(exc)
            run.save(workdir)
            raise PipelineFailed(str(exc)) from exc
        run.parameters = dict(executor.parameters)
        try:
            executor.run()
            run.status = "Succeeded"
        except ExecutionError as exc:
            run.status, run.failure_step, run.failure_reason = "Failed", exc.step, str(exc)
            raise PipelineFailed(str(exc)) from exc
        except KeyboardInterrupt:
            run.status = "Stopped"
            raise
        finally:
            _summarise(run, executor, s3)
            run.access_checks = _counted_since(before, access.counts())
            run.save(workdir)
    return run


def _counted_since(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, dict[str, int]]:
    counted = {}
    for role, (checked, allowed) in after.items():
        was_checked, was_allowed = before.get(role, (0, 0))
        if checked > was_checked:
            counted[role] = {"checked": checked - was_checked, "allowed": allowed - was_allowed}
    return counted


def _summarise(run: PipelineRun, executor: PipelineExecutor, s3: LocalS3) -> None:
    run.steps = {
        name: {"type": r.type, "status": r.status, "seconds": r.seconds, **r.detail}
        for name, r in executor.steps.items()
    }
    for name, step in executor.property_files.items():
        for declared in step.values():
            outputs = executor.properties[name]["ProcessingOutputConfig"]["Outputs"]
            uri = f"{outputs[declared['OutputName']]['S3Output']['S3Uri']}/{declared['FilePath']}"
            bucket, _, key = uri[5:].partition("/")
            path = s3.get(bucket, key)
            if path is not None and not run.evaluation:
                run.evaluation = json.loads(path.read_text())
            report = outputs.get("report")
            if report is not None:
                bucket, _, key = f"{report['S3Output']['S3Uri']}/index.html"[5:].partition("/")
                run.report = s3.get(bucket, key) or run.report
    conditions = [r for r in executor.steps.values() if r.type == "Condition"]
    if conditions:
        run.gate = "; ".join(conditions[-1].detail.get("conditions", []))
    if executor.registered is not None:
        run.model_package_version = int(executor.registered["ModelPackageVersion"])
        run.model_approval_status = str(executor.registered["ModelApprovalStatus"])
