"""`boostline demo`: the whole lifecycle on one machine.

train -> deploy -> serve with capture -> drift -> monitor -> retrain -> redeploy,
with the Lambda handlers deciding, against the AWS API emulator, exactly as
they decide on AWS (see boostline.local.cloud for the seam).

Every run starts clean in `<workdir>/demo/`; Ctrl-C stops every process.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from boostline import checkout
from boostline.config import BoostlineConfig
from boostline.data.generator import generate_to_dir
from boostline.local import events
from boostline.local.access_checks import StageAccess
from boostline.local.assembly import Assembly
from boostline.local.cloud import CloudNames, LocalCloud
from boostline.local.emulator import ACCOUNT, running_emulator
from boostline.local.handlers import LocalFunction
from boostline.local.local_aws import split_uri
from boostline.local.model_store import unpacked_model
from boostline.local.monitoring_run import MonitoringRun, run_monitoring
from boostline.local.pipeline import PipelineFailed, PipelineRun, resolve_assembly, run_pipeline
from boostline.local.serving_spec import endpoint_spec
from boostline.local.workdir import Workdir
from boostline.naming import BUCKET_PURPOSES, names_for
from boostline.progress import Progress
from boostline.registry import Registry
from boostline.serving.endpoints import EndpointManager, EndpointNotFound

VARIANT = "AllTraffic"


@dataclass
class DemoOptions:
    rows: int = 20_000  # the initial loan book
    stream: int = 300  # applications sent to the endpoint per phase
    drift: float = 1.0
    label_share: float = 0.8  # of served applications whose outcome becomes known
    duplicates: int = 3  # deliveries of the drift event
    instance_count: int = 2
    max_trials: int = 4
    stage: str = "dev"
    # break the retrained model's artifact, to show a failed health check leaving
    # the serving version in place
    break_candidate: bool = False
    # the cloud assembly whose pipeline definition runs (default: the stage, synthesized)
    assembly: Path | None = None


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, stage: str, message: str, **detail: Any) -> None:
        self.entries.append(
            {
                "t": round(time.monotonic() - self.started, 1),
                "stage": stage,
                "message": message,
                **detail,
            }
        )


@dataclass
class DemoResult:
    workdir: Path
    versions: list[dict[str, Any]]
    live_version: int | None
    retrain_reason: str | None
    executions_started: int
    monitoring: dict[str, dict[str, Any]]
    report: Path
    timeline: list[dict[str, Any]]
    assembly: str = ""
    # role -> {"checked": n, "allowed": n}: against the assembly's synthesized policies
    access_checks: dict[str, dict[str, int]] = field(default_factory=dict)


class Demo:
    def __init__(
        self,
        root: Path,
        config: BoostlineConfig,
        options: DemoOptions,
        progress: Progress,
        assembly: Assembly,
    ) -> None:
        self.config = config
        self.assembly = assembly
        self.options = options
        self.progress = progress
        self.timeline = Timeline()
        self.root = root
        self.workdir = Workdir.at(root)
        self.registry = Registry(self.workdir.root)
        self.schema = config.schema_path()
        self.runs: list[PipelineRun] = []
        self.monitoring: dict[str, dict[str, Any]] = {}
        self.windows: dict[str, tuple[datetime, datetime]] = {}
        self.deploying_because = "the serving stack's parameters"
        self.executions_started = 0
        self.retrain_reason: str | None = None

    # ------------------------------------------------------------ orchestration

    def run(self) -> DemoResult:
        stage = self.config.stage(self.options.stage)
        names = CloudNames(names_for(self.config, self.options.stage))
        self.endpoints = EndpointManager(self.workdir.root)
        try:
            # One IAM policy evaluator checks every access the demo makes.
            with (
                StageAccess(self.assembly, account=ACCOUNT, region=stage.region) as access,
                running_emulator(stage.region) as emulator,
            ):
                self.access = access
                return self._run(emulator, names)
        finally:
            self.endpoints.stop_all(started_here=True)  # also on Ctrl-C: no orphan servers

    def _run(self, emulator: Any, names: CloudNames) -> DemoResult:
        self.cloud = LocalCloud(emulator, self.workdir, names)
        region = self.config.stage(self.options.stage).region
        self.cloud.provision(
            self.assembly.pipeline_definition(region, ACCOUNT),
            self.assembly.serving_parameters(),
            self.assembly.monitoring_parameters(),
        )
        env = self.cloud.retrain_env()
        env["MIN_NEW_FILES"] = "3"  # a single new file is debounced, not trained on
        # the emulator lists a new execution at once: no grace period for that is needed
        env["START_GRACE_SECONDS"] = "0"
        logs = self.root / "logs"  # the functions' CloudWatch Logs
        self.retrain = LocalFunction("retrain_trigger", env, log_dir=logs, access=self.access)
        self.deployer = LocalFunction(
            "deployer", self.cloud.deployer_env(), log_dir=logs, access=self.access
        )
        self.say(
            "emulator",
            f"AWS API emulator on {emulator.url}; pipeline, registry, "
            "serving and monitoring stacks and idempotency table provisioned",
        )
        self.say(
            "assembly",
            f"pipeline definition, serving template and role policies from {self.assembly.dir}",
        )

        self.land_initial_book()
        self.trigger(
            events.scheduled(names.region, f"{names.prefix}-retrain-schedule"), "the schedule"
        )
        self.run_pending_executions()
        if self.live_version() is None:
            failure = next(
                (e["message"] for e in reversed(self.timeline.entries) if e["stage"] == "pipeline"),
                "no pipeline execution ran",
            )
            raise PipelineFailed(f"no model went live, so there is nothing to monitor: {failure}")
        self.send_traffic("normal", seed=1, drift=0.0)
        self.check("normal")
        self.land_new_data()
        self.send_traffic("drift", seed=2, drift=self.options.drift)
        run = self.check("drift")
        # The monitors' own events, routed by the automation stack's rules (at-least-once
        # delivery: each one delivered `duplicates` times).
        for event, rule, targets in run.routes:
            if not any(t.endswith(f":function:{names.prefix}-retrain-trigger") for t in targets):
                continue
            detail = event["detail"]
            for attempt in range(self.options.duplicates):
                self.trigger(
                    event,
                    f"{detail.get('monitor')} monitor found {detail.get('violations')} "
                    f"violation(s), rule {rule} (delivery {attempt + 1})",
                )
        self.run_pending_executions()
        return self.finish()

    def say(self, stage: str, message: str, **detail: Any) -> None:
        self.timeline.add(stage, message, **detail)
        self.progress.say(f"{stage}: {message}")

    # ------------------------------------------------------------ data

    def land_initial_book(self) -> None:
        with self.progress.step(f"generate a loan book of {self.options.rows} applications"):
            files = generate_to_dir(
                self.options.rows, self.root / "generated" / "book-0", seed=0, shards=2
            )
        for file in files:
            self.cloud.put_raw(f"raw/loans/batch-0000/{file.name}", file)
        self.say("data", f"{len(files)} files landed in s3://{self.cloud.names.raw_bucket}/raw/")

    def land_new_data(self) -> None:
        """Applications from the drifted economy, whose outcomes are now known."""
        rows = max(self.options.rows // 2, 1000)
        files = generate_to_dir(
            rows, self.root / "generated" / "book-1", seed=3, drift=self.options.drift, shards=1
        )
        for file in files:
            key = f"raw/loans/batch-0001/{file.name}"
            size = self.cloud.put_raw(key, file)
            event = events.object_created(
                self.cloud.names.region, self.cloud.names.raw_bucket, key, size
            )
            self.trigger(event, f"new data {key}")

    # ------------------------------------------------------------ handlers and runtime

    def trigger(self, event: dict[str, Any], what: str) -> dict[str, Any]:
        result = self.retrain.invoke(event)
        decision = result.get("decision", "?") if isinstance(result, dict) else str(result)
        if decision == "started":
            self.executions_started += 1
        self.say(
            "retrain-trigger",
            f"{what}: {decision}"
            + (
                f" ({result.get('reason')})"
                if isinstance(result, dict) and result.get("reason")
                else ""
            ),
        )
        return result

    def run_pending_executions(self) -> None:
        for arn, params in self.cloud.new_executions():
            self.cloud.mark_handled(arn)
            reason = params.get("TriggerReason", "manual")
            self.retrain_reason = reason if self.runs else self.retrain_reason
            execution = arn.rsplit("/", 1)[-1]
            self.say("pipeline", f"execution {execution} ({reason}) on {params['InputDataPrefix']}")
            try:
                run = run_pipeline(
                    self.workdir,
                    self.config,
                    stage=self.options.stage,
                    # StartPipelineExecution's parameters, plus the demo's training hosts
                    parameters={**params, "TrainingInstanceCount": self.options.instance_count},
                    assembly=self.assembly,
                    execution_id=execution,
                    max_trials=self.options.max_trials,
                    progress=self.progress,
                    access=self.access,
                )
            except PipelineFailed as exc:
                self.say("pipeline", f"failed: {exc}")
                self.finished(arn, "Failed")
                continue
            self.runs.append(run)
            self.finished(arn, "Succeeded")
            assert run.model_package_version is not None
            package = self.registry.describe(run.model_package_version)
            described = self.cloud.mirror(package)
            self.say(
                "registry",
                f"version {package.version} registered as {package.status} (AUC {package.auc:.4f})",
                version=package.version,
                auc=package.auc,
            )
            if package.status == "Approved":
                self.deploy_event(described)

    def finished(self, arn: str, status: str) -> None:
        """SageMaker's status-change event, which lets the trigger start work that waited."""
        event = events.pipeline_execution_finished(self.cloud.names.region, arn, status)
        self.trigger(event, f"pipeline execution {status.lower()}")

    def deploy_event(
        self, described: dict[str, Any], health_check: Callable[[str], None] | None = None
    ) -> None:
        event = events.model_package_state_change(self.cloud.names.region, described)
        self.deploying_because = (
            f"model package {described['ModelPackageVersion']} "
            f"{described['ModelApprovalStatus']} (deployer, event {event['id']})"
        )
        result = self.deployer.invoke(event)
        decision = result.get("decision", "?") if isinstance(result, dict) else str(result)
        self.say(
            "deployer", f"model package {described['ModelPackageVersion']} Approved: {decision}"
        )
        self.reconcile(health_check)

    def reconcile(self, health_check: Callable[[str], None] | None = None) -> None:
        """Apply the serving stack to the local endpoint, blue/green.

        The stack's real template (from the assembly) is rendered with its current
        parameters, as CloudFormation would after the deployer's UpdateStack, and the
        endpoint starts from the rendered resources: the model package the Model
        names, the threshold in its container environment, the EndpointConfig's
        capture sampling and destination, and its variant.
        """
        params = self.cloud.serving_parameters()
        region = self.config.stage(self.options.stage).region
        serving = self.assembly.serving_stack(region, params, ACCOUNT)
        spec = endpoint_spec(serving)
        if spec is None:
            return
        version = self.cloud.version_of(spec.model_package_arn)
        if version is None:
            raise RuntimeError(f"the serving stack names an unknown {spec.model_package_arn}")
        if version == self.live_version():
            return
        package = self.registry.describe(version)
        # What SageMaker does with the Model's role as the endpoint starts: AccessDenied stops.
        self.access.check_endpoint(serving, package.data)
        model_dir = unpacked_model(package, self.workdir.root)
        if self.options.break_candidate and self.live_version() is not None:
            model_dir = self.broken_copy(model_dir)
        result = self.endpoints.deploy(
            spec.endpoint_name,
            model_dir,
            model_version=version,
            threshold=spec.threshold,
            capture_dir=self.capture_dir(spec.capture_destination),
            sampling_percentage=spec.capture_percent,
            variant_name=spec.variant_name,
            workers=2,
            health_check=health_check,
        )
        trigger = self.deploying_because
        if result.status != "InService":
            previous = self.live_version()
            self.registry.record_deployment(
                spec.endpoint_name, version, "failed", trigger, reason=str(result.reason)
            )
            self.say(
                "endpoint",
                f"version {version} failed its health check ({result.reason}); "
                f"version {previous} keeps serving",
            )
            if previous is not None:
                self.cloud.restore_serving_parameters(
                    {**params, "ModelPackageArn": self.cloud.package_arn(previous)}
                )
            self.serving_settled("UPDATE_ROLLBACK_COMPLETE")
            return
        self.say(
            "endpoint",
            f"version {version} is live (blue/green: started, health-checked, "
            "then took the traffic)",
            version=version,
        )
        self.registry.record_deployment(spec.endpoint_name, version, "live", trigger)
        self.serving_settled("UPDATE_COMPLETE")

    def serving_settled(self, status: str) -> None:
        """CloudFormation's stack event: the deployer copies the live model to monitoring."""
        stack = self.cloud.names.serving_stack
        event = events.stack_status_change(
            self.cloud.names.region, self.cloud.stack_arn(stack), status
        )
        result = self.deployer.invoke(event)
        decision = result.get("decision", "?") if isinstance(result, dict) else str(result)
        self.say("deployer", f"serving stack {status}: {decision}")

    def capture_dir(self, destination: str | None) -> Path | None:
        """The local folder of the capture destination's S3 URI (files go below it)."""
        if destination is None:
            return None
        names = self.cloud.names.names
        buckets = {names.bucket(p, ACCOUNT, names.region): p for p in BUCKET_PURPOSES}
        bucket, key = split_uri(destination)
        if bucket not in buckets:
            raise RuntimeError(f"capture destination {destination} is no bucket of the stage")
        return self.workdir.bucket(buckets[bucket]) / key

    def broken_copy(self, model_dir: Path) -> Path:
        broken = model_dir.parent / f"{model_dir.name}-broken"
        if broken.exists():
            shutil.rmtree(broken)
        shutil.copytree(model_dir, broken)
        (broken / "xgboost-model").write_bytes(b"not a model")
        self.say(
            "endpoint",
            f"the artifact of {model_dir.name} is corrupted on purpose (--break-candidate)",
        )
        return broken

    def live_version(self) -> int | None:
        try:
            version = self.endpoints.describe(self.cloud.names.endpoint).model_version
        except EndpointNotFound:
            return None
        return int(version) if version is not None else None

    # ------------------------------------------------------------ traffic and monitoring

    def send_traffic(self, phase: str, seed: int, drift: float) -> None:
        files = generate_to_dir(
            self.options.stream,
            self.root / "generated" / f"stream-{phase}",
            seed=seed,
            drift=drift,
            shards=1,
        )
        rows = list(csv.DictReader(io.StringIO(files[0].read_text())))
        target = self.schema_target()
        from training_scripts.dataset_schema import load_schema

        pii = set(load_schema(self.schema).pii_columns)
        # Labels land where the monitors read them: the capture bucket's ground-truth prefix.
        prefix = self.config.stage(self.options.stage).monitoring.ground_truth_prefix
        truth_dir = self.workdir.bucket("capture") / prefix.rstrip("/")
        started = datetime.now(timezone.utc)
        errors = 0
        truth: list[str] = []
        with self.progress.step(f"send {len(rows)} {phase} applications to the endpoint"):
            for i, row in enumerate(rows):
                label = row.pop(target)
                inference_id = f"{phase}-{i:05d}"
                # The client contract: the schema's features only, never its PII columns.
                fields = {k: v for k, v in row.items() if v != "" and k not in pii}
                body = json.dumps(fields).encode()
                answer = self.endpoints.invoke(
                    self.cloud.names.endpoint, body, "application/json", inference_id=inference_id
                )
                if answer.status != 200:
                    errors += 1
                    continue
                if (i % 100) < self.options.label_share * 100:
                    truth.append(
                        json.dumps(
                            {
                                "groundTruthData": {
                                    "data": "1" if label == "bad" else "0",
                                    "encoding": "CSV",
                                },
                                "eventMetadata": {"eventId": inference_id},
                                "eventVersion": "0",
                            }
                        )
                    )
        # The window ends a second after the last request: inference times are whole seconds.
        self.windows[phase] = (
            started.replace(microsecond=0),
            datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1),
        )
        hour = datetime.now(timezone.utc).strftime("%Y/%m/%d/%H")
        out = truth_dir / hour / f"{phase}-labels.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(truth) + "\n")
        self.say(
            "traffic",
            f"{len(rows) - errors} {phase} applications scored "
            f"({errors} errors); {len(truth)} outcomes known later",
        )

    def schema_target(self) -> str:
        from training_scripts.dataset_schema import load_schema

        return load_schema(self.schema).target_column

    def check(self, phase: str) -> MonitoringRun:
        """The scheduled monitors, advanced by hand: the monitoring stack's pipeline, run
        for this phase's window with the live model the deployer gave that stack."""
        start, end = self.windows[phase]
        run = run_monitoring(
            self.workdir,
            self.config,
            self.options.stage,
            assembly=self.assembly,
            live=self.cloud.monitoring_parameters(),
            window_start=start,
            window_end=end,
            access=self.access,
            progress=self.progress,
        )
        if run.status != "Succeeded":
            raise PipelineFailed(f"monitoring run failed: {run.failure}")
        window = self.root / "monitoring" / phase
        for step, folder in run.reports.items():
            target = window / ("data-quality" if step.startswith("Data") else "model-quality")
            shutil.copytree(folder, target, dirs_exist_ok=True)
        data = run.results.get("data-quality", {})
        quality = run.results.get("model-quality", {})
        report = window / "data-quality" / "constraint_violations.json"
        violations = json.loads(report.read_text())["violations"] if report.exists() else []
        stats = window / "model-quality" / "statistics.json"
        metrics = (
            json.loads(stats.read_text()).get("binary_classification_metrics", {})
            if (stats.exists())
            else {}
        )
        auc = (metrics.get("auc") or {}).get("value")
        alarms = sorted(name for name, a in run.alarms.items() if a.state == "ALARM")
        self.monitoring[phase] = {
            "records": int(data.get("rows", 0)),
            "data_quality_violations": int(data.get("violations", 0)),
            "drifted_features": sorted(
                {
                    v["feature_name"]
                    for v in violations
                    if v["constraint_check_type"] == "baseline_drift_check"
                }
            ),
            "auc": auc,
            "model_quality_violations": int(quality.get("violations", 0)),
            "alarms": alarms,
            "execution": run.execution_id,
            "window": [run.window_start, run.window_end],
            "model_version": self.cloud.version_of(
                self.cloud.monitoring_parameters().get("ModelPackageArn", "")
            ),
        }
        self.say(
            "monitor",
            f"{phase} window ({run.window_start} to {run.window_end}), monitoring execution "
            f"{run.execution_id}: {data.get('rows', 0)} captured rows, "
            f"{data.get('violations', 0)} data-quality violation(s)"
            + (f", live model AUC {auc:.4f}" if auc is not None else "")
            + (
                f", {quality.get('violations')} model-quality violation(s)"
                if quality.get("violations")
                else ""
            )
            + (f"; alarms in ALARM: {', '.join(alarms)}" if alarms else "; no alarm"),
        )
        return run

    # ------------------------------------------------------------ the end

    def evaluation_report(self, package: Any) -> Path | None:
        """The evaluation report of the execution that registered the package."""
        execution = package.data.get("CustomerMetadataProperties", {}).get("pipeline_execution_id")
        if not execution:
            return None
        path = self.workdir.bucket("artifacts") / "runs" / execution / "report" / "index.html"
        return path if path.is_file() else None

    def finish(self) -> DemoResult:
        from boostline.local.demo_report import write_report

        versions = [
            {
                "version": p.version,
                "status": p.status,
                "auc": p.auc,
                "trigger": p.data.get("CustomerMetadataProperties", {}).get("trigger_reason"),
                "threshold": p.threshold,
                "report": self.evaluation_report(p),
            }
            for p in self.registry.versions()
        ]
        result = DemoResult(
            workdir=self.root,
            versions=versions,
            live_version=self.live_version(),
            retrain_reason=self.retrain_reason,
            executions_started=self.executions_started,
            monitoring=self.monitoring,
            report=self.root / "report" / "index.html",
            timeline=self.timeline.entries,
            assembly=str(self.assembly.dir),
            access_checks={
                role: {"checked": checked, "allowed": allowed}
                for role, (checked, allowed) in self.access.counts().items()
            },
        )
        write_report(result, self.registry)
        (self.root / "summary.json").write_text(
            json.dumps(
                {**result.__dict__, "workdir": str(result.workdir), "report": str(result.report)},
                indent=2,
                default=str,
            )
            + "\n"
        )
        return result


def run_demo(
    workdir: Path, config: BoostlineConfig, options: DemoOptions, progress: Progress | None = None
) -> DemoResult:
    progress = progress or Progress()
    # The demo runs the Lambda functions' own code: refuse before anything starts.
    checkout.require("the demo", checkout.FUNCTIONS)
    # The synth cache lives beside the demo folder, so a clean demo start keeps it.
    assembly = resolve_assembly(config, options.stage, workdir, options.assembly, progress)
    root = workdir / "demo"
    if root.exists():
        shutil.rmtree(root)  # every demo starts clean; nothing else in the workdir is touched
    demo = Demo(root, config, options, progress, assembly)
    return demo.run()


def look_inside(workdir: Path) -> list[str]:
    """The commands that show what the demo left in its workdir."""
    where = shlex.quote(str(workdir))
    return [
        f"boostline --workdir {where} models list",
        f"boostline --workdir {where} models describe live",
        f"boostline --workdir {where} serve --capture",
        f"boostline --workdir {where} monitor run --hours 1",
    ]


def summary_dict(result: DemoResult) -> dict[str, Any]:
    """The summary for scripts (`boostline demo --json`)."""
    return {
        "workdir": str(result.workdir),
        "live_version": result.live_version,
        "versions": result.versions,
        "monitoring": result.monitoring,
        "retrain_reason": result.retrain_reason,
        "executions_started": result.executions_started,
        "assembly": str(result.assembly),
        "access_checks": result.access_checks,
        "report": str(result.report),
        "commands": look_inside(result.workdir),
    }


def print_summary(result: DemoResult, stream: Any = sys.stdout) -> None:
    def line(text: str = "") -> None:
        print(text, file=stream)

    line("\n== Boostline demo summary ==")
    for v in result.versions:
        auc = f"{v['auc']:.4f}" if v["auc"] is not None else "-"
        live = "  <- live" if v["version"] == result.live_version else ""
        line(
            f"  model v{v['version']}: {v['status']:<22} test AUC {auc}  "
            f"(trained on: {v['trigger']}){live}"
        )
    for phase, m in result.monitoring.items():
        auc = f"{m['auc']:.4f}" if m.get("auc") is not None else "n/a"
        drifted = ", ".join(m["drifted_features"][:6]) or "none"
        line(
            f"  {phase:<6} traffic: live-model AUC on labelled requests {auc}; "
            f"{m['data_quality_violations']} data-quality violation(s); drifted: {drifted}; "
            f"alarms: {', '.join(m.get('alarms', [])) or 'none'}"
        )
    line(
        f"  retraining triggered by: {result.retrain_reason or 'nothing'}; "
        f"pipeline executions started: {result.executions_started}"
    )
    line(f"  live version: v{result.live_version}")
    line(f"  workdir: {result.workdir}; look inside with:")
    for command in look_inside(result.workdir):
        line(f"    {command}")
    line(f"  assembly: {result.assembly} (pipeline definition, serving template, role policies)")
    if result.access_checks:
        line("  accesses checked against the synthesized policy of the role they run as:")
    for role, counted in result.access_checks.items():
        denied = counted["checked"] - counted["allowed"]
        verdict = "all allowed" if not denied else f"{denied} denied"
        line(f"    {role}: {counted['checked']} checked, {verdict}")
    line(f"  report: {result.report}")
