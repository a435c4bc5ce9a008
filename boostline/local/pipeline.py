"""The training pipeline on this machine:
preprocess -> tune -> train -> evaluate -> gate -> register.

Each step runs the same script SageMaker runs, in a local stand-in for its
job (see processing_job.py and training_job.py); the gate is the rule of the
pipeline's condition step, and registration goes to the local registry. The
run is recorded in `<workdir>/runs/<run-id>.json`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boostline.config import BoostlineConfig, HyperparameterValue
from boostline.gate import decide
from boostline.local.processing_job import run_processing_job
from boostline.local.training_job import Channel, run_training_job
from boostline.local.tuner import Trial, objective_from_log, tune
from boostline.local.workdir import Workdir
from boostline.progress import Progress
from boostline.registry import Registry
from training_scripts import preprocess as preprocess_script
from training_scripts import train as train_script

SCRIPTS = Path(preprocess_script.__file__).resolve().parent


class PipelineFailed(RuntimeError):
    """A step failed; the message names the step and the job's failure reason."""


@dataclass
class PipelineRun:
    run_id: str
    status: str = "Executing"
    trigger: str = "manual"
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed_dir: Path | None = None
    best_hyperparameters: dict[str, HyperparameterValue] = field(default_factory=dict)
    model_tar: Path | None = None
    model_dir: Path | None = None
    evaluation_dir: Path | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None
    model_package_version: int | None = None
    model_approval_status: str | None = None
    report: Path | None = None
    failure_reason: str | None = None

    def save(self, workdir: Workdir) -> Path:
        path = workdir.runs / f"{self.run_id}.json"
        data = asdict(self)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        tmp.replace(path)
        return path


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def metric_regex(name: str) -> str:
    for definition in train_script.METRIC_DEFINITIONS:
        if definition["Name"] == name:
            return definition["Regex"]
    known = [d["Name"] for d in train_script.METRIC_DEFINITIONS]
    raise ValueError(f"no metric definition for {name!r}; train.py defines {known}")


def run_pipeline(
    data: Path,
    schema: Path,
    workdir: Workdir,
    config: BoostlineConfig,
    *,
    instance_count: int | None = None,
    max_trials: int | None = None,
    trigger: str = "manual",
    stage: str = "dev",
    progress: Progress | None = None,
) -> PipelineRun:
    progress = progress or Progress()
    stage_config = config.stage(stage)
    run = PipelineRun(
        run_id=new_run_id(),
        trigger=trigger,
        parameters={
            "data": str(data),
            "schema": str(schema),
            "instance_count": instance_count or config.training.instance_count,
            "max_trials": max_trials or config.tuning.max_jobs,
            "stage": stage,
        },
    )
    progress.say(f"pipeline run {run.run_id} ({trigger})")
    try:
        _preprocess(run, data, schema, workdir, config, progress)
        _tune(run, workdir, config, max_trials, progress)
        _train(run, workdir, config, instance_count, progress)
        registry = Registry(workdir.root)
        _evaluate(run, workdir, config, registry, progress)
        _gate_and_register(run, config, registry, stage_config.model_approval, progress)
        run.status = "Succeeded"
    except PipelineFailed as exc:
        run.status = "Failed"
        run.failure_reason = str(exc)
        raise
    except KeyboardInterrupt:
        run.status = "Stopped"
        raise
    finally:
        run.save(workdir)
    return run


def _record(run: PipelineRun, step: str, status: str, seconds: float, **extra: Any) -> None:
    run.steps[step] = {"status": status, "seconds": round(seconds, 2), **extra}


def _preprocess(
    run: PipelineRun,
    data: Path,
    schema: Path,
    workdir: Workdir,
    config: BoostlineConfig,
    progress: Progress,
) -> None:
    pre = config.preprocess
    out = workdir.bucket("processed") / run.run_id
    names = ("train", "validation", "test", "manifest", "report")
    with progress.step("preprocess"):
        result = run_processing_job(
            workdir.job_dir(f"{run.run_id}-preprocess"),
            SCRIPTS / "preprocess.py",
            inputs={"data": data, "schema": schema},
            outputs={name: out / name for name in names},
            arguments=lambda i, o: [
                "--input",
                str(i["data"]),
                "--schema",
                str(i["schema"]),
                "--output-dir",
                str(o["train"].parent),
                *pre.arguments(str(run.parameters["instance_count"])),
            ],
            env={preprocess_script.SALT_ENV: workdir.pii_salt()},
            echo=progress.detail,
        )
    _record(run, "preprocess", result.status, result.seconds)
    if result.status != "Completed":
        raise PipelineFailed(f"preprocess failed: {result.failure_reason}")
    run.processed_dir = out


def _channels(processed: Path) -> dict[str, Channel]:
    def files(name: str) -> list[Path]:
        return sorted((processed / name).glob("*.csv"))

    return {
        "train": Channel(files("train"), "ShardedByS3Key"),
        "validation": Channel(files("validation"), "FullyReplicated"),
        "manifest": Channel(sorted((processed / "manifest").glob("*.json")), "FullyReplicated"),
    }


def _tune(
    run: PipelineRun,
    workdir: Workdir,
    config: BoostlineConfig,
    max_trials: int | None,
    progress: Progress,
) -> None:
    assert run.processed_dir is not None
    regex = metric_regex(config.tuning.objective_metric)
    channels = _channels(run.processed_dir)
    static = dict(config.training.hyperparameters)
    started = time.monotonic()

    def run_trial(number: int, hps: dict[str, HyperparameterValue]) -> tuple[float | None, str]:
        # trials train on one local worker each; the final model uses all of them
        job = run_training_job(
            workdir.job_dir(f"{run.run_id}-tune-{number:03d}"),
            SCRIPTS / "train.py",
            hyperparameters={**static, **hps},
            channels=channels,
            instance_count=1,
        )
        if job.status != "Completed":
            return None, job.failure_reason or "failed"
        value = objective_from_log(job.log, regex)
        return value, "" if value is not None else "objective metric not found in the log"

    def on_trial(trial: Trial) -> None:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.hyperparameters.items())
        result = f"{trial.objective:.4f}" if trial.objective is not None else trial.detail
        progress.detail(
            f"trial {trial.number}: {config.tuning.objective_metric}={result} ({shown})"
        )

    budget = max_trials or config.tuning.max_jobs
    with progress.step(f"tune ({budget} trials, {config.tuning.max_parallel_jobs} in parallel)"):
        result = tune(
            config.tuning,
            run_trial,
            seed=config.preprocess.seed,
            max_jobs=budget,
            on_trial=on_trial,
        )
    run.best_hyperparameters = {**static, **result.best.hyperparameters}
    _record(
        run,
        "tune",
        "Completed",
        time.monotonic() - started,
        best_trial=result.best.number,
        best_objective=result.best.objective,
        trials=[asdict(t) for t in result.trials],
    )
    progress.say(
        f"best trial {result.best.number}: {config.tuning.objective_metric}="
        f"{result.best.objective:.4f}"
    )


def _train(
    run: PipelineRun,
    workdir: Workdir,
    config: BoostlineConfig,
    instance_count: int | None,
    progress: Progress,
) -> None:
    assert run.processed_dir is not None
    count = instance_count or config.training.instance_count
    with progress.step(f"train ({count} worker{'s' if count > 1 else ''})"):
        job = run_training_job(
            workdir.job_dir(f"{run.run_id}-train"),
            SCRIPTS / "train.py",
            hyperparameters=run.best_hyperparameters,
            channels=_channels(run.processed_dir),
            instance_count=count,
            checkpoint_dir=workdir.bucket("checkpoints") / run.run_id,
            echo=_quiet_rounds(progress.detail),
        )
    _record(run, "train", job.status, job.wall_seconds)
    if job.status != "Completed":
        raise PipelineFailed(f"train failed: {job.failure_reason}")
    artifacts = workdir.bucket("artifacts") / run.run_id
    artifacts.mkdir(parents=True, exist_ok=True)
    run.model_tar = artifacts / "model.tar.gz"
    run.model_tar.write_bytes(job.model_tar.read_bytes())
    run.model_dir = job.model_dir


def _quiet_rounds(echo: Callable[[str], None]) -> Callable[[str], None]:
    """Pass a job's log on, but only the rounds that also report the training metric."""

    def filtered(line: str) -> None:
        if _ROUND_LINE.search(line) and "train-" not in line:
            return
        echo(line)

    return filtered


_ROUND_LINE = re.compile(r"\] round \d+ ")


def _fmt(value: HyperparameterValue) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _evaluate(
    run: PipelineRun,
    workdir: Workdir,
    config: BoostlineConfig,
    registry: Registry,
    progress: Progress,
) -> None:
    assert run.processed_dir is not None and run.model_tar is not None
    ev = config.evaluation
    champion = registry.latest_approved()
    job_dir = workdir.job_dir(f"{run.run_id}-evaluate")
    no_champion = workdir.root / "jobs" / ".empty"
    no_champion.mkdir(parents=True, exist_ok=True)
    out = workdir.bucket("artifacts") / run.run_id
    names = ("evaluation", "baseline", "report")
    label = f" against approved v{champion.version}" if champion else ""
    with progress.step(f"evaluate{label}"):
        result = run_processing_job(
            job_dir,
            SCRIPTS / "evaluate.py",
            inputs={
                "model": run.model_tar,
                "test": run.processed_dir / "test",
                "validation": run.processed_dir / "validation",
                "train": run.processed_dir / "train",
                "champion": champion.model_tar if champion else no_champion,
            },
            outputs={name: out / name for name in names},
            arguments=lambda i, o: [
                "--model-dir",
                str(i["model"]),
                "--test-dir",
                str(i["test"]),
                "--train-dir",
                str(i["train"]),
                "--validation-dir",
                str(i["validation"]),
                "--champion-model-dir",
                str(i["champion"]),
                "--output-dir",
                str(o["evaluation"].parent),
                *ev.arguments(config.gate.max_auc_drop),
            ],
            echo=progress.detail,
        )
    _record(run, "evaluate", result.status, result.seconds)
    if result.status != "Completed":
        raise PipelineFailed(f"evaluate failed: {result.failure_reason}")
    run.evaluation_dir = out
    run.evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    run.report = out / "report" / "index.html"


def _gate_and_register(
    run: PipelineRun,
    config: BoostlineConfig,
    registry: Registry,
    approval: str,
    progress: Progress,
) -> None:
    assert run.evaluation_dir is not None and run.model_tar is not None
    decision = decide(run.evaluation, config.gate.min_auc)
    run.gate = decision.reason
    _record(run, "gate", "Completed" if decision.passed else "Failed", 0.0, reason=decision.reason)
    progress.say(decision.reason)
    if not decision.passed:
        raise PipelineFailed(f"the candidate model was not registered: {decision.reason}")
    status = "Approved" if approval == "auto" else "PendingManualApproval"
    package = registry.register(
        model_tar=run.model_tar,
        evaluation=run.evaluation_dir / "evaluation" / "evaluation.json",
        baseline_dir=run.evaluation_dir / "baseline",
        report_dir=run.evaluation_dir / "report",
        status=status,
        approved_by=f"pipeline {run.run_id} (stage approval: {approval})",
        metadata={"run_id": run.run_id, "trigger": run.trigger},
    )
    run.model_package_version = package.version
    run.model_approval_status = package.status
    run.report = package.path / "report" / "index.html"
    _record(run, "register", "Completed", 0.0, version=package.version, approval=package.status)
    progress.say(f"registered model version {package.version} as {package.status}")
