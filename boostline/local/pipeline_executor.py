"""Executes a SageMaker Pipeline definition on this machine, step by step.

The definition is the one the CDK app deploys (boostline.local.assembly reads it from
the stage's cloud assembly). Each step's Arguments are taken as written: the
CreateProcessingJob, CreateHyperParameterTuningJob, CreateTrainingJob and
CreateModelPackage request shapes, after the pipeline's expressions are evaluated.

Supported step types: Processing, Training, Tuning, Condition, RegisterModel, Model,
Fail. Supported expressions: `Get` of `Parameters.<name>`, `Execution.<variable>` and
`Steps.<step>.<property path>` (the properties each step type below records),
`Std:Join`, `Std:JsonGet` on a step's PropertyFiles; conditions Equals,
GreaterThan(OrEqualTo), LessThan(OrEqualTo), In, Not, Or. Anything else stops the run
before any step starts, naming the step and what was not understood.

How a job runs here:
- S3 URIs map onto the local buckets and the assembly's assets (local_aws.LocalS3);
  an S3Prefix input is every object under the prefix, as SageMaker downloads it.
- Processing: the container paths are rewritten. Every `/opt/ml` in the entrypoint,
  the arguments, the environment and the input/output LocalPaths becomes
  `<job dir>/opt/ml`, consistently, and the entrypoint then runs as written
  (`/bin/sh -c ...`), with this venv's python3 first on PATH standing in for the
  image's. Boto3 calls the scripts make reach local_aws.LocalAwsEndpoint. With an
  InstanceCount of N, each host (algo-1 ... algo-N) is a process with an `/opt/ml` of
  its own (`<job dir>/<host>/opt/ml`) and its resourceconfig.json; inputs are dealt as
  boostline.local.processing_job deals them (FullyReplicated, or ShardedByS3Key by key),
  and every host's outputs go to the same S3 prefix (two hosts writing one file with
  different bytes fail the step).
- Training (and each tuning trial): script mode through training_job.run_training_job:
  sagemaker_program from the archive named by sagemaker_submit_directory, channels
  from InputDataConfig with their distribution, hosts from ResourceConfig; the model
  goes to `<S3OutputPath>/<job name>/output/model.tar.gz`.
- Tuning: boostline.local.tuner over the request's ranges, strategy, objective and
  limits; the objective is read from the trial's log with the MetricDefinitions regex.
  The finished tuning job, as DescribeHyperParameterTuningJob and
  ListTrainingJobsForHyperParameterTuningJob describe it, goes to the local AWS endpoint
  the jobs talk to (`aws`, or the one their AWS_ENDPOINT_URL names), so a later job can
  read its trials as it would from SageMaker.
- RegisterModel: the CreateModelPackage request goes into the local registry as is.

Before a Processing job, a Training job or each tuning trial runs, the accesses SageMaker
makes with the request's RoleArn (its inputs listed and read, outputs written, the
stage key, the image pull, logs, checkpoints: boostline.local.iam.rules) are checked
against the role's synthesized policies (`access`, a boostline.local.access_checks
.StageAccess of the same assembly). A denial fails the step before the job starts, with
AWS's AccessDenied wording: the role, the action and the resource. The Model and
RegisterModel steps make no access with a job role (SageMaker calls CreateModel and
CreateModelPackage with the pipeline's own role), so no rule applies to them. After a
Processing job, the AWS calls its script made to the local endpoint are checked against
the same role; a denial fails the step with AccessDenied's wording.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from boostline.config import HyperparameterValue, TuningConfig, TuningRange
from boostline.local.access_checks import SAGEMAKER_SESSION, StageAccess, object_lister
from boostline.local.iam import (
    Access,
    AccessDenied,
    EvaluatorError,
    PolicyLookupError,
    UnresolvedRequest,
)
from boostline.local.local_aws import (
    LocalAwsEndpoint,
    LocalS3,
    S3Error,
    TuningJobRecord,
    prefix_relative,
)
from boostline.local.processes import ProcessSpec, run_processes
from boostline.local.processing_job import (
    DISTRIBUTIONS,
    RESOURCE_CONFIG_ENV,
    check_collisions,
    hosts_failure_reason,
    objects_for_host,
    resource_config,
)
from boostline.local.training_job import Channel, run_training_job
from boostline.local.tuner import Trial, TuningFailed, objective_from_log, tune
from boostline.local.workdir import Workdir
from boostline.progress import Progress
from boostline.registry import Registry

STEP_TYPES = ("Processing", "Training", "Tuning", "Condition", "RegisterModel", "Model", "Fail")
EXECUTION_VARIABLES = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
)
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}
CONTAINER_ROOT = "/opt/ml"
# The tuner's random seed; SageMaker's own search is not reproducible, this one is.
LOCAL_SEARCH_SEED = 42
_CONTAINER_PATH = re.compile(r"(?<![\w.-])/opt/ml(?![\w.-])")
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\['([^']*)'\]|\[(\d+)\]")
_EXPRESSION_KEYS = ("Get", "Std:")


class ExecutionError(RuntimeError):
    """The run stopped: a step failed, or the definition uses what this executor lacks."""

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class PropertyFileRef:
    step: str
    name: str


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = "Executing"
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def _parse_path(path: str, where: str) -> list[str | int]:
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ExecutionError(f"{where}: cannot read the property path {path!r}")
        name, key, index = match.groups()
        tokens.append(int(index) if index is not None else (name if name is not None else key))
        position = match.end()
    return tokens


def _walk_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, with those inside Condition branches."""
    found = []
    for step in steps:
        found.append(step)
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments", {})
            found.extend(_walk_steps(arguments.get("IfSteps", [])))
            found.extend(_walk_steps(arguments.get("ElseSteps", [])))
    return found


def _typed(parameter: dict[str, Any], value: Any) -> Any:
    kind = parameter.get("Type", "String")
    name = parameter["Name"]
    try:
        if kind == "Integer":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() not in ("true", "false"):
                raise ValueError(value)
            return str(value).lower() == "true"
        if kind == "String":
            return str(value)
    except (TypeError, ValueError):
        raise ExecutionError(f"parameter {name}: {value!r} is not of type {kind}") from None
    raise ExecutionError(f"parameter {name}: the local executor does not know type {kind!r}")


class PipelineExecutor:
    def __init__(
        self,
        definition: dict[str, Any],
        *,
        s3: LocalS3,
        workdir: Workdir,
        registry: Registry,
        execution_id: str,
        pipeline_name: str,
        region: str,
        account: str,
        parameters: dict[str, Any] | None = None,
        job_env: dict[str, str] | None = None,
        max_trials: int | None = None,
        progress: Progress | None = None,
        access: StageAccess | None = None,
        aws: LocalAwsEndpoint | None = None,
    ) -> None:
        self.definition = definition
        self.access = access
        # The endpoint the jobs' boto3 reaches: where tuning jobs are published, whose
        # recorded calls are checked against the job's role.
        self.aws = aws or LocalAwsEndpoint.serving((job_env or {}).get("AWS_ENDPOINT_URL"))
        self.tuning_jobs: dict[str, TuningJobRecord] = {}
        self._lock = threading.Lock()
        self.s3 = s3
        self.workdir = workdir
        self.registry = registry
        self.execution_id = execution_id
        self.pipeline_name = pipeline_name
        self.region = region
        self.account = account
        self.job_env = dict(job_env or {})
        self.max_trials = max_trials
        self.progress = progress or Progress()
        self.started = datetime.now(timezone.utc)
        self.steps: dict[str, StepRecord] = {}
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[str, dict[str, dict[str, Any]]] = {}
        self.registered: dict[str, Any] | None = None
        self._all_steps = {s["Name"]: s for s in _walk_steps(definition.get("Steps", []))}
        self.check()
        self.parameters = self._resolve_parameters(parameters or {})

    # ------------------------------------------------------------ checks before running

    def check(self) -> None:
        """Refuse the definition up front if it uses a step type or expression not run here."""
        version = self.definition.get("Version")
        if version != "2020-12-01":
            raise ExecutionError(f"pipeline definition version {version!r} is not 2020-12-01")
        names = [s.get("Name") for s in _walk_steps(self.definition.get("Steps", []))]
        for name in names:
            if names.count(name) > 1:
                raise ExecutionError(f"two steps are named {name!r}", step=name)
        declared = {p["Name"] for p in self.definition.get("Parameters", [])}
        for step in self._all_steps.values():
            name = step["Name"]
            if step.get("Type") not in STEP_TYPES:
                raise ExecutionError(
                    f"step {name}: the local executor does not run steps of type "
                    f"{step.get('Type')!r} (it runs {', '.join(STEP_TYPES)})",
                    step=name,
                )
            self._check_expressions(step.get("Arguments", {}), name, declared)
            if step.get("Type") == "Condition":
                for condition in step.get("Arguments", {}).get("Conditions", []):
                    self._check_condition(condition, name)
            if step.get("Type") == "Tuning":
                self._check_max_trials(step)
            for dep in step.get("DependsOn", []) or []:
                if dep not in self._all_steps:
                    raise ExecutionError(f"step {name}: DependsOn names no step {dep!r}", name)

    def _check_max_trials(self, step: dict[str, Any]) -> None:
        """The local budget only lowers the definition's: a larger one would run a tuning
        job that the deployed definition does not (silently capped, it misled benches)."""
        limits = (
            step.get("Arguments", {})
            .get("HyperParameterTuningJobConfig", {})
            .get("ResourceLimits", {})
        )
        budget = limits.get("MaxNumberOfTrainingJobs")
        if self.max_trials and isinstance(budget, int) and self.max_trials > budget:
            raise ExecutionError(
                f"step {step['Name']}: a local budget of {self.max_trials} tuning trials is "
                f"above the definition's MaxNumberOfTrainingJobs {budget}; it can only lower "
                "it (more trials: tuning.max_jobs in the config)",
                step=step["Name"],
            )

    def _check_expressions(self, value: Any, step: str, declared: set[str]) -> None:
        if isinstance(value, list):
            for item in value:
                self._check_expressions(item, step, declared)
            return
        if not isinstance(value, dict):
            return
        expression = [k for k in value if k == "Get" or k.startswith("Std:")]
        if expression:
            key = expression[0]
            if len(value) != 1 or key not in ("Get", "Std:Join", "Std:JsonGet"):
                raise ExecutionError(
                    f"step {step}: the local executor does not understand the expression "
                    f"{json.dumps(value)[:200]}",
                    step=step,
                )
            if key == "Get":
                self._check_get(value["Get"], step, declared)
                return
        for key, item in value.items():
            if key in ("IfSteps", "ElseSteps"):
                continue  # checked as steps of their own
            self._check_expressions(item, step, declared)

    def _check_condition(self, condition: Any, step: str) -> None:
        kind = condition.get("Type") if isinstance(condition, dict) else None
        if kind not in (*COMPARISONS, "In", "Not", "Or"):
            raise ExecutionError(
                f"step {step}: the local executor does not evaluate conditions of type {kind!r}",
                step=step,
            )
        if kind == "Not":
            self._check_condition(condition.get("Expression"), step)
        if kind == "Or":
            for inner in condition.get("Conditions", []):
                self._check_condition(inner, step)

    def _check_get(self, path: Any, step: str, declared: set[str]) -> None:
        if not isinstance(path, str):
            raise ExecutionError(f"step {step}: Get of {path!r} is not a path", step=step)
        root, _, rest = path.partition(".")
        if root == "Parameters" and rest in declared:
            return
        if root == "Execution" and rest in EXECUTION_VARIABLES:
            return
        if root == "Steps":
            other = rest.split(".", 1)[0]
            if other in self._all_steps and other != step:
                return
        raise ExecutionError(
            f"step {step}: the local executor does not understand Get {path!r}", step=step
        )

    def _resolve_parameters(self, overrides: dict[str, Any]) -> dict[str, Any]:
        declared = {p["Name"]: p for p in self.definition.get("Parameters", [])}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:  # StartPipelineExecution refuses these too
            raise ExecutionError(f"the pipeline has no parameters {unknown}")
        values: dict[str, Any] = {}
        for name, parameter in declared.items():
            if name in overrides:
                value = _typed(parameter, overrides[name])
            elif "DefaultValue" in parameter:
                value = _typed(parameter, parameter["DefaultValue"])
            else:
                raise ExecutionError(f"parameter {name} has no default and no value was given")
            allowed = parameter.get("EnumValues")
            if allowed and value not in allowed:
                raise ExecutionError(f"parameter {name}: {value!r} is not one of {allowed}")
            values[name] = value
        return values

    # ------------------------------------------------------------ expressions

    def evaluate(self, value: Any, step: str) -> Any:
        if isinstance(value, list):
            return [self.evaluate(item, step) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Get":
                return self._get(argument, step)
            if key == "Std:Join":
                return self._join(argument, step)
            if key == "Std:JsonGet":
                return self._json_get(argument, step)
        if any(k == "Get" or k.startswith("Std:") for k in value):
            raise ExecutionError(
                f"step {step}: the local executor does not understand the expression "
                f"{json.dumps(value)[:200]}",
                step=step,
            )
        return {key: self.evaluate(item, step) for key, item in value.items()}

    def _get(self, path: str, step: str) -> Any:
        root, _, rest = path.partition(".")
        if root == "Parameters":
            return self.parameters[rest]
        if root == "Execution":
            return self._execution_variable(rest)
        other, _, prop = rest.partition(".")
        if other not in self.properties:
            raise ExecutionError(
                f"step {step}: Get {path!r} reads step {other}, which has not run", step=step
            )
        tokens = _parse_path(prop, f"step {step}")
        if len(tokens) == 2 and tokens[0] == "PropertyFiles":
            name = str(tokens[1])
            if name not in self.property_files.get(other, {}):
                raise ExecutionError(
                    f"step {step}: step {other} declares no property file {name!r}", step=step
                )
            return PropertyFileRef(other, name)
        current: Any = self.properties[other]
        for token in tokens:
            try:
                current = current[token]
            except (KeyError, IndexError, TypeError):
                raise ExecutionError(
                    f"step {step}: Get {path!r}: step {other} has no property {prop!r} "
                    f"(the local executor records {sorted(self.properties[other])})",
                    step=step,
                ) from None
        return current

    def _execution_variable(self, name: str) -> str:
        arn_base = f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{self.pipeline_name}"
        return {
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": f"{arn_base}/execution/{self.execution_id}",
            "PipelineName": self.pipeline_name,
            "PipelineArn": arn_base,
            "StartDateTime": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "CurrentDateTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }[name]

    def _join(self, argument: Any, step: str) -> str:
        if not isinstance(argument, dict) or set(argument) != {"On", "Values"}:
            raise ExecutionError(f"step {step}: Std:Join needs On and Values", step=step)
        values = [self.evaluate(v, step) for v in argument["Values"]]
        return str(argument["On"]).join(_text(v, step) for v in values)

    def _json_get(self, argument: Any, step: str) -> Any:
        if not isinstance(argument, dict) or set(argument) != {"PropertyFile", "Path"}:
            raise ExecutionError(
                f"step {step}: the local executor reads Std:JsonGet only as "
                f"{{PropertyFile, Path}}, not {json.dumps(argument)[:200]}",
                step=step,
            )
        ref = self.evaluate(argument["PropertyFile"], step)
        if not isinstance(ref, PropertyFileRef):
            raise ExecutionError(f"step {step}: Std:JsonGet of {ref!r}: no property file", step)
        declared = self.property_files[ref.step][ref.name]
        uri = f"{self._output_uri(ref.step, declared['OutputName'], step)}/{declared['FilePath']}"
        where = f"property file {ref.name} of step {ref.step} ({uri})"
        path = self.s3.get(*_split(uri))
        if path is None:
            raise ExecutionError(
                f"step {step}: {where}: no such file (FilePath {declared['FilePath']!r})",
                step=step,
            )
        document = json.loads(path.read_text())
        current: Any = document
        for token in _parse_path(str(argument["Path"]), f"step {step}"):
            try:
                current = current[token]
            except (KeyError, IndexError, TypeError):
                raise ExecutionError(
                    f"step {step}: Std:JsonGet: path {argument['Path']!r} is not in {where}",
                    step=step,
                ) from None
        return current

    def _output_uri(self, other: str, output: str, step: str) -> str:
        outputs = self.properties[other].get("ProcessingOutputConfig", {}).get("Outputs", {})
        if output not in outputs:
            raise ExecutionError(f"step {step}: step {other} has no output {output!r}", step=step)
        return str(outputs[output]["S3Output"]["S3Uri"]).rstrip("/")

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Run the top-level steps in dependency order; raise ExecutionError on failure."""
        for step in self._order(self.definition.get("Steps", [])):
            self._run_step(step)

    def _order(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = {s["Name"] for s in steps}

        def deps(step: dict[str, Any]) -> set[str]:
            found = set(step.get("DependsOn", []) or [])
            text = json.dumps(step.get("Arguments", {}))
            found |= set(re.findall(r'"Steps\.([A-Za-z0-9_-]+)', text))
            return (found & names) - {step["Name"]}

        ordered: list[dict[str, Any]] = []
        done: set[str] = set()
        pending = list(steps)
        while pending:
            ready = [s for s in pending if deps(s) <= done]
            if not ready:
                raise ExecutionError(
                    f"steps {[s['Name'] for s in pending]} depend on each other in a cycle"
                )
            step = ready[0]  # definition order among the ready ones
            ordered.append(step)
            done.add(step["Name"])
            pending.remove(step)
        return ordered

    def _run_step(self, step: dict[str, Any]) -> None:
        name, kind = step["Name"], step["Type"]
        record = StepRecord(name, kind)
        self.steps[name] = record
        started = time.monotonic()
        try:
            handler = getattr(self, f"_step_{kind.lower()}")
            handler(step, record)
            record.status = "Succeeded"
        except ExecutionError as exc:
            exc.step = exc.step or name
            if exc.step == name:  # a failure inside a Condition's branch is the branch's
                record.status = "Failed"
                record.detail["failure_reason"] = str(exc)
            raise
        except (S3Error, OSError, ValueError, KeyError, TypeError) as exc:
            record.status = "Failed"
            record.detail["failure_reason"] = f"{type(exc).__name__}: {exc}"
            raise ExecutionError(f"step {name}: {type(exc).__name__}: {exc}", step=name) from exc
        finally:
            record.seconds = round(time.monotonic() - started, 2)

    def _job_name(self, step: str, suffix: str = "") -> str:
        base = re.sub(r"[^A-Za-z0-9-]", "-", f"pipelines-{self.execution_id}-{step}")
        return (base[: 63 - len(suffix)] + suffix).lower()

    def _check_access(
        self, kind: str, request: dict[str, Any], job: str, step: str, record: StepRecord
    ) -> str | None:
        """Check what SageMaker does with the job's role; the denial's message, if any."""
        if self.access is None:
            return None
        try:
            checked = self.access.check_request(
                kind, request, name=job, list_objects=object_lister(self.s3.list_prefix)
            )
        except AccessDenied as exc:
            record.detail["access_denied"] = {
                "role": exc.role,
                "action": exc.action,
                "resource": exc.resource,
            }
            return f"{job}: {exc}"
        except (UnresolvedRequest, PolicyLookupError, EvaluatorError) as exc:
            raise ExecutionError(f"step {step}: {kind} job {job}: {exc}", step) from exc
        with self._lock:  # tuning trials run in threads
            record.detail["accesses_checked"] = record.detail.get("accesses_checked", 0) + checked
        return None

    def _check_job_calls(
        self,
        request: dict[str, Any],
        calls: list[tuple[str, str, dict[str, Any]]],
        job: str,
        step: str,
        record: StepRecord,
    ) -> None:
        """The job script's own AWS calls, against the role the job runs as."""
        if self.access is None or not calls:
            return
        role = str(request.get("RoleArn", "")).rsplit("/", 1)[-1]
        accesses = [
            Access(action, resource.replace("{account}", self.account), context, "boto3 call")
            for action, resource, context in calls
        ]
        try:
            # A job's calls are made under the session SageMaker assumed its role with.
            self.access.checker.check(role, accesses, session=SAGEMAKER_SESSION)
        except AccessDenied as exc:
            record.detail["access_denied"] = {
                "role": exc.role,
                "action": exc.action,
                "resource": exc.resource,
            }
            # AccessDenied's own wording first, as the other job-call checks report it.
            raise ExecutionError(f"{exc} (a call of processing job {job})", step) from exc
        with self._lock:
            record.detail["accesses_checked"] = record.detail.get("accesses_checked", 0) + len(
                accesses
            )

    def _environment(self, container_env: dict[str, str], host: Callable[[str], str]) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_"))}
        # This venv's python3 stands in for the image's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update({"OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"})
        env.update(self.job_env)
        env.update({k: host(str(v)) for k, v in container_env.items()})
        return env

    # ------------------------------------------------------------ Processing

    def _step_processing(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        args = self.evaluate(step["Arguments"], name)
        job = self._job_name(name)
        denied = self._check_access("Processing", args, job, name, record)
        if denied:
            raise ExecutionError(f"step {name} failed: processing job {denied}", name)
        cluster = args.get("ProcessingResources", {}).get("ClusterConfig", {})
        count = cluster.get("InstanceCount", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            # CreateProcessingJob's own bounds: SageMaker refuses the job the same way.
            raise ExecutionError(
                f"step {name}: InstanceCount {count!r} is not a count from 1 to 100", name
            )
        app = args.get("AppSpecification", {})
        entrypoint = app.get("ContainerEntrypoint")
        if not entrypoint:
            raise ExecutionError(
                f"step {name}: no ContainerEntrypoint (the image's own entrypoint is not "
                "known locally)",
                step=name,
            )
        job_dir = self.workdir.job_dir(job)
        if job_dir.exists():
            shutil.rmtree(job_dir)
        hosts = [f"algo-{i}" for i in range(1, count + 1)]
        # Each host's /opt/ml: the job dir's own with one host, as before; one per host else.
        roots = {
            h: job_dir / "opt" / "ml" if count == 1 else job_dir / h / "opt" / "ml" for h in hosts
        }
        inputs = [self._processing_input(item, name) for item in args.get("ProcessingInputs", [])]
        outputs: dict[str, dict[str, Any]] = {}
        for item in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
            if "S3Output" not in item:
                raise ExecutionError(f"step {name}: output {item.get('OutputName')} is not S3")
            outputs[item["OutputName"]] = {
                "OutputName": item["OutputName"],
                "S3Output": item["S3Output"],
            }
        specs: list[ProcessSpec] = []
        local_outs: dict[str, dict[str, Path]] = {}
        for index, host_name in enumerate(hosts):
            root = roots[host_name]

            def host(text: str, root: Path = root) -> str:
                return _CONTAINER_PATH.sub(str(root), text)

            for local_path, distribution, objects in inputs:
                target = Path(host(local_path))
                target.mkdir(parents=True, exist_ok=True)
                for rel, path in objects_for_host(objects, distribution, index, count):
                    _link_file(path, target / rel)
            local_outs[host_name] = {}
            for output, item in outputs.items():
                local = Path(host(item["S3Output"]["LocalPath"]))
                local.mkdir(parents=True, exist_ok=True)
                local_outs[host_name][output] = local
            # What SageMaker tells a processing container of its cluster, and no more.
            config = root / "config" / "resourceconfig.json"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps(resource_config(host_name, hosts), indent=2) + "\n")
            env = self._environment(args.get("Environment", {}), host)
            env["BOOSTLINE_OUTPUT_DIR"] = str(root / "output")  # where the exit message goes
            env[RESOURCE_CONFIG_ENV] = str(config)
            (root / "output").mkdir(parents=True, exist_ok=True)
            argv = [host(str(a)) for a in [*entrypoint, *app.get("ContainerArguments", [])]]
            specs.append(
                ProcessSpec(host_name if count > 1 else job, argv, env, cwd=root.parent.parent)
            )
        timeout = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        calls_before = len(self.aws.requests) if self.aws is not None else 0
        on = f" on {count} instances" if count > 1 else ""
        with self.progress.step(f"{name} (processing job {job}{on})"):
            results = run_processes(
                specs, timeout=float(timeout) if timeout else None, echo=self.progress.detail
            )
        record.detail.update(
            job=job,
            instance_count=count,
            exit_code=next((r.returncode for r in results if r.returncode != 0), 0),
            **_peaks([r.peak_rss_kb for r in results]),
        )
        if any(r.returncode != 0 or r.timed_out for r in results):
            limit = float(timeout) if timeout else None
            reason = hosts_failure_reason(hosts, roots, results, limit)
            raise ExecutionError(f"step {name} failed: processing job {job}: {reason}", name)
        if self.aws is not None:
            self._check_job_calls(args, self.aws.requests[calls_before:], job, name, record)
        try:
            check_collisions(outputs, local_outs)
        except ValueError as exc:
            raise ExecutionError(f"step {name} failed: processing job {job}: {exc}", name) from exc
        # Every host's folder goes to the same prefix, as each instance's upload does.
        for output, item in outputs.items():
            for host_name in hosts:
                self.s3.upload_dir(local_outs[host_name][output], item["S3Output"]["S3Uri"])
        self.properties[name] = {
            "ProcessingJobName": job,
            "ProcessingJobArn": f"arn:aws:sagemaker:{self.region}:{self.account}:"
            f"processing-job/{job}",
            "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {"Outputs": outputs},
        }
        self.property_files[name] = {
            f["PropertyFileName"]: f for f in step.get("PropertyFiles", []) or []
        }

    def _processing_input(
        self, item: dict[str, Any], step: str
    ) -> tuple[str, str, list[tuple[Path, Path]]]:
        """(container LocalPath, distribution, (relative path, file) of every object)."""
        if "S3Input" not in item:
            raise ExecutionError(
                f"step {step}: input {item.get('InputName')}: only S3Input is run locally", step
            )
        s3_input = item["S3Input"]
        for key, allowed in (
            ("S3DataType", ("S3Prefix",)),
            ("S3InputMode", ("File",)),
            ("S3CompressionType", ("None",)),
            ("S3DataDistributionType", DISTRIBUTIONS),
        ):
            if s3_input.get(key, allowed[0]) not in allowed:
                raise ExecutionError(
                    f"step {step}: input {item.get('InputName')}: {key} "
                    f"{s3_input.get(key)!r} is not run locally",
                    step=step,
                )
        uri = s3_input["S3Uri"]
        objects = self.s3.list_prefix(uri)
        if not objects:  # SageMaker fails the job the same way
            raise ExecutionError(
                f"step {step}: input {item.get('InputName')}: no S3 objects found under {uri}",
                step=step,
            )
        prefix = _split(uri)[1]
        # Sorted by key, as ShardedByS3Key deals the objects out.
        found = [(Path(prefix_relative(prefix, key)), path) for key, path in objects]
        return (
            s3_input["LocalPath"],
            s3_input.get("S3DataDistributionType", "FullyReplicated"),
            found,
        )

    # ------------------------------------------------------------ Training and Tuning

    def _training_job(
        self,
        job: str,
        definition: dict[str, Any],
        hyperparameters: dict[str, Any],
        step: str,
        echo: Callable[[str], None] | None = None,
    ) -> tuple[Any, str | None]:
        """Run one CreateTrainingJob-shaped job; returns (result, model S3 URI or None)."""
        algorithm = definition.get("AlgorithmSpecification", {})
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise ExecutionError(f"step {step}: only TrainingInputMode File runs locally", step)
        hps = {str(k): v for k, v in hyperparameters.items()}
        program = hps.get("sagemaker_program")
        submit = hps.get("sagemaker_submit_directory")
        if not program or not submit:
            raise ExecutionError(
                f"step {step}: only script mode (sagemaker_program and "
                "sagemaker_submit_directory) runs locally",
                step=step,
            )
        job_dir = self.workdir.job_dir(job)
        if job_dir.exists():
            shutil.rmtree(job_dir)
        staged = job_dir.parent / f".{job}-inputs"
        if staged.exists():
            shutil.rmtree(staged)
        channels: dict[str, Channel] = {}
        channel_files: dict[str, dict[str, Path]] = {}
        for channel in definition.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel.get("DataSource", {}).get("S3DataSource")
            if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise ExecutionError(f"step {step}: channel {name}: only S3Prefix runs locally")
            uri = source["S3Uri"]
            prefix = _split(uri)[1]
            files: dict[str, Path] = {}
            for key, path in self.s3.list_prefix(uri):
                rel = prefix_relative(prefix, key)
                files[rel] = _link_file(path, staged / name / rel)
            if not files:
                raise ExecutionError(
                    f"step {step}: channel {name}: no S3 objects found under {uri}", step
                )
            channel_files[name] = files
            channels[name] = Channel(
                sorted(files.values()),
                source.get("S3DataDistributionType", "FullyReplicated"),
                channel.get("ContentType"),
            )
        archive = self._submit_archive(str(submit), channel_files, step)
        code = staged / "code-unpacked"
        code.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(code, filter="data")
        script = code / str(program)
        # The toolkit drops its own settings before building the script's arguments.
        script_hps = {
            k: v
            for k, v in hps.items()
            if not k.startswith("sagemaker_") and k != "_tuning_objective_metric"
        }
        resources = definition.get("ResourceConfig", {})
        checkpoint = definition.get("CheckpointConfig", {}).get("S3Uri")
        runtime = definition.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        env = self._environment(definition.get("Environment", {}), lambda s: s)
        env.pop("PATH", None)  # run_training_job starts the host with sys.executable
        result = run_training_job(
            job_dir,
            script,
            hyperparameters=script_hps,
            channels=channels,
            instance_count=int(resources.get("InstanceCount", 1)),
            checkpoint_dir=self.s3.writable_path(checkpoint) if checkpoint else None,
            timeout=float(runtime) if runtime else None,
            echo=echo,
            environment={k: v for k, v in env.items() if k.startswith(("AWS_", "BOOSTLINE_"))},
            job_name=job,
        )
        model_uri = None
        if result.status == "Completed" and result.model_tar is not None:
            output = str(definition["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
            model_uri = f"{output}/{job}/output/model.tar.gz"
            self.s3.put_file(result.model_tar, model_uri)
        return result, model_uri

    def _submit_archive(
        self, submit: str, channel_files: dict[str, dict[str, Path]], step: str
    ) -> Path:
        if submit.startswith("s3://"):
            path = self.s3.get(*_split(submit))
            if path is None:
                raise ExecutionError(f"step {step}: sagemaker_submit_directory {submit} is missing")
            return path
        prefix = f"{CONTAINER_ROOT}/input/data/"
        if submit.startswith(prefix):
            channel, _, rel = submit[len(prefix) :].partition("/")
            if rel in channel_files.get(channel, {}):
                return channel_files[channel][rel]
        raise ExecutionError(
            f"step {step}: sagemaker_submit_directory {submit} is neither an S3 URI nor a file "
            "of an input channel",
            step=step,
        )

    def _step_training(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        args = self.evaluate(step["Arguments"], name)
        job = self._job_name(name)
        denied = self._check_access("Training", args, job, name, record)
        if denied:
            raise ExecutionError(f"step {name} failed: training job {denied}", name)
        with self.progress.step(f"{name} (training job {job})"):
            result, model_uri = self._training_job(
                job, args, args.get("HyperParameters", {}), name, echo=self.progress.detail
            )
        record.detail.update(_peaks([h.peak_rss_kb for h in result.hosts]))
        if result.status != "Completed":
            raise ExecutionError(f"step {name} failed: {result.failure_reason}", name)
        self.properties[name] = {
            "TrainingJobName": job,
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        }

    def _step_tuning(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        args = self.evaluate(step["Arguments"], name)
        if "TrainingJobDefinitions" in args:
            raise ExecutionError(f"step {name}: several TrainingJobDefinitions", step=name)
        config = args["HyperParameterTuningJobConfig"]
        definition = args["TrainingJobDefinition"]
        if config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
            raise ExecutionError(f"step {name}: early stopping of trials is not run locally")
        objective = config["HyperParameterTuningJobObjective"]
        metric = objective["MetricName"]
        regexes = {
            m["Name"]: m["Regex"]
            for m in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
        }
        if metric not in regexes:
            raise ExecutionError(
                f"step {name}: the objective {metric!r} has no MetricDefinitions entry", name
            )
        limits = config["ResourceLimits"]
        budget = int(limits["MaxNumberOfTrainingJobs"])
        if self.max_trials:
            budget = min(budget, self.max_trials)
        tuning = TuningConfig(
            strategy=config.get("Strategy", "Bayesian"),
            objective_metric=metric,
            objective_type=objective.get("Type", "Maximize"),
            max_jobs=budget,
            max_parallel_jobs=min(int(limits.get("MaxParallelTrainingJobs", 1)), budget),
            ranges=_ranges(config.get("ParameterRanges", {})),
        )
        static = dict(definition.get("StaticHyperParameters", {}))
        tuning_job = re.sub(r"[^a-z0-9-]", "-", f"{self.execution_id}-{name}".lower())[:32]
        models: dict[int, tuple[str, str]] = {}
        peaks: dict[int, int | None] = {}  # trial number -> its largest host's peak RSS
        created = time.time()

        def trial_job(number: int) -> str:
            return f"{tuning_job}-{number + 1:03d}"

        def run_trial(number: int, hps: dict[str, HyperparameterValue]) -> tuple[float | None, str]:
            job = trial_job(number)
            # Each trial is a training job of its own: denied, it fails before it starts.
            denied = self._check_access("Tuning", args, job, name, record)
            if denied:
                return None, f"training job {denied}"
            # SageMaker hands tuned values to the job as strings, like the static ones.
            values = {**static, **{k: _hp_text(v) for k, v in hps.items()}}
            result, uri = self._training_job(job, definition, values, name)
            peaks[number] = result.peak_rss_kb
            if result.status != "Completed" or uri is None:
                return None, result.failure_reason or "failed"
            value = objective_from_log(result.log, regexes[metric])
            if value is None:
                return None, f"objective metric {metric} not found in the log"
            models[number] = (job, uri)
            return value, ""

        def on_trial(trial: Trial) -> None:
            shown = ", ".join(f"{k}={_hp_text(v)}" for k, v in trial.hyperparameters.items())
            result = f"{trial.objective:.4f}" if trial.objective is not None else trial.detail
            self.progress.detail(f"trial {trial.number + 1}: {metric}={result} ({shown})")

        hosts = definition.get("ResourceConfig", {}).get("InstanceCount", 1)
        label = f"{name} ({budget} trials of {hosts} host(s), {tuning.max_parallel_jobs} at a time)"
        with self.progress.step(label):
            try:
                outcome = tune(
                    tuning, run_trial, seed=LOCAL_SEARCH_SEED, max_jobs=budget, on_trial=on_trial
                )
            except TuningFailed as exc:
                raise ExecutionError(f"step {name} failed: {exc}", name) from exc
        best_job, best_uri = models[outcome.best.number]
        described = self._tuning_record(
            tuning_job, args, outcome.trials, outcome.best, metric, trial_job, created
        )
        self.tuning_jobs[tuning_job] = described
        if self.aws is not None:
            self.aws.add_tuning_job(described)
        self.progress.say(
            f"best trial {outcome.best.number + 1}: {metric}={outcome.best.objective:.4f}"
        )
        self.properties[name] = {
            "HyperParameterTuningJobName": tuning_job,
            "HyperParameterTuningJobStatus": "Completed",
            "BestTrainingJob": {
                "TrainingJobName": best_job,
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": {
                    k: _hp_text(v) for k, v in outcome.best.hyperparameters.items()
                },
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "MetricName": metric,
                    "Value": outcome.best.objective,
                },
            },
        }
        record.detail.update(
            tuning_job=tuning_job,
            best_training_job=best_job,
            best_model=best_uri,
            best_objective=outcome.best.objective,
            trials=[
                {
                    "number": t.number + 1,
                    "objective": t.objective,
                    "status": t.status,
                    "hyperparameters": t.hyperparameters,
                    "detail": t.detail,
                    **_peaks([peaks.get(t.number)]),
                }
                for t in outcome.trials
            ],
            **_peaks(list(peaks.values()), by_host=False),
        )

    def _tuning_record(
        self,
        name: str,
        request: dict[str, Any],
        trials: list[Trial],
        best: Trial,
        metric: str,
        trial_job: Callable[[int], str],
        created: float,
    ) -> TuningJobRecord:
        """The tuning job as DescribeHyperParameterTuningJob and
        ListTrainingJobsForHyperParameterTuningJob answer for it."""
        arn = f"arn:aws:sagemaker:{self.region}:{self.account}:"

        def summary(trial: Trial) -> dict[str, Any]:
            job = trial_job(trial.number)
            out: dict[str, Any] = {
                "TrainingJobName": job,
                "TrainingJobArn": f"{arn}training-job/{job}",
                "TuningJobName": name,
                "CreationTime": trial.started,
                "TrainingStartTime": trial.started,
                "TrainingEndTime": trial.ended,
                "TrainingJobStatus": trial.status,
                "TunedHyperParameters": {k: _hp_text(v) for k, v in trial.hyperparameters.items()},
                "ObjectiveStatus": "Succeeded" if trial.objective is not None else "Failed",
            }
            if trial.objective is not None:
                out["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "MetricName": metric,
                    "Value": trial.objective,
                }
            else:
                out["FailureReason"] = trial.detail or "failed"
            return out

        summaries = [summary(t) for t in trials]
        failed = sum(1 for t in trials if t.objective is None)
        description = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": f"{arn}hyper-parameter-tuning-job/{name}",
            "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
            "TrainingJobDefinition": request["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": "Completed",
            "CreationTime": created,
            "HyperParameterTuningEndTime": time.time(),
            "TrainingJobStatusCounters": {
                "Completed": len(trials) - failed,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": failed,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {
                "Succeeded": len(trials) - failed,
                "Pending": 0,
                "Failed": failed,
            },
            "BestTrainingJob": summary(best),
        }
        return TuningJobRecord(description, summaries)

    # ------------------------------------------------------------ Condition, Fail

    def _condition(self, condition: dict[str, Any], step: str) -> tuple[bool, str]:
        kind = condition.get("Type")
        if kind in COMPARISONS:
            left = self.evaluate(condition["LeftValue"], step)
            right = self.evaluate(condition["RightValue"], step)
            left, right = _comparable(left, right, kind, step)
            verdict = COMPARISONS[kind](left, right)
            return verdict, f"{_text(left, step)} {kind} {_text(right, step)}: {verdict}"
        if kind == "In":
            value = self.evaluate(condition["QueryValue"], step)
            values = self.evaluate(condition["Values"], step)
            return value in values, f"{value!r} In {values!r}"
        if kind == "Not":
            inner, text = self._condition(condition["Expression"], step)
            return not inner, f"Not({text})"
        if kind == "Or":
            parts = [self._condition(c, step) for c in condition["Conditions"]]
            return any(p[0] for p in parts), "Or(" + "; ".join(p[1] for p in parts) + ")"
        raise ExecutionError(f"step {step}: condition type {kind!r} is not evaluated locally")

    def _step_condition(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        arguments = step["Arguments"]
        results = [self._condition(c, name) for c in arguments.get("Conditions", [])]
        outcome = all(r[0] for r in results)
        branch = arguments.get("IfSteps" if outcome else "ElseSteps", [])
        self.properties[name] = {"Outcome": outcome}
        record.detail.update(outcome=outcome, conditions=[r[1] for r in results])
        self.progress.say(
            f"{name}: {'; '.join(r[1] for r in results)} -> "
            f"{', '.join(s['Name'] for s in branch) or 'nothing'}"
        )
        record.status = "Succeeded"  # the condition itself is done; the branch runs next
        for inner in self._order(branch):
            self._run_step(inner)

    def _step_fail(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        message = _text(self.evaluate(step["Arguments"].get("ErrorMessage", ""), name), name)
        record.detail["error_message"] = message
        raise ExecutionError(message, step=name)

    # ------------------------------------------------------------ Model, RegisterModel

    def _step_model(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        request = self.evaluate(step["Arguments"], name)
        model = self._job_name(name)
        record.detail["request"] = request
        self.properties[name] = {
            "ModelName": model,
            "ModelArn": f"arn:aws:sagemaker:{self.region}:{self.account}:model/{model}",
        }

    def _step_registermodel(self, step: dict[str, Any], record: StepRecord) -> None:
        name = step["Name"]
        request = self.evaluate(step["Arguments"], name)
        containers = request.get("InferenceSpecification", {}).get("Containers", [])
        if not containers or "ModelDataUrl" not in containers[0]:
            raise ExecutionError(f"step {name}: the package names no ModelDataUrl", step=name)
        files: dict[str, Path] = {}
        wanted = {
            "model.tar.gz": containers[0]["ModelDataUrl"],
            "evaluation.json": _dig(request, "ModelMetrics", "ModelQuality", "Statistics"),
            "statistics.json": _dig(request, "ModelMetrics", "ModelDataQuality", "Statistics"),
            "constraints.json": _dig(request, "ModelMetrics", "ModelDataQuality", "Constraints"),
        }
        for local_name, uri in wanted.items():
            if uri is None:
                continue
            path = self.s3.get(*_split(uri))
            if path is None:
                raise ExecutionError(f"step {name}: {uri} does not exist", step=name)
            files[local_name] = path
        package = self.registry.register_request(
            request, files, by=f"pipeline execution {self.execution_id}"
        )
        self.registered = package.data
        record.detail.update(version=package.version, approval=package.status)
        self.properties[name] = {
            "ModelPackageArn": package.arn,
            "ModelPackageName": package.arn,
            "ModelApprovalStatus": package.status,
        }
        self.progress.say(f"registered model version {package.version} as {package.status}")


# ---------------------------------------------------------------- helpers


def _split(uri: str) -> tuple[str, str]:
    from boostline.local.local_aws import split_uri

    return split_uri(uri)


def _dig(request: dict[str, Any], *keys: str) -> str | None:
    current: Any = request
    for key in keys:
        if not isinstance(current, dict) or key not in current:
            return None
        current = current[key]
    return current.get("S3Uri") if isinstance(current, dict) else None


def _text(value: Any, step: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ExecutionError(f"step {step}: {value!r} cannot be joined into a string", step=step)


def _peaks(peaks_kb: list[int | None], by_host: bool = True) -> dict[str, Any]:
    """A record's peak RSS: its largest process's, and each host's when several."""
    measured = [p for p in peaks_kb if p is not None]
    if not measured:
        return {}
    out: dict[str, Any] = {"peak_rss_mb": round(max(measured) / 1024, 1)}
    if by_host and len(peaks_kb) > 1:
        out["peak_rss_mb_by_host"] = [None if p is None else round(p / 1024, 1) for p in peaks_kb]
    return out


def _hp_text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _comparable(left: Any, right: Any, kind: str, step: str) -> tuple[Any, Any]:
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        if isinstance(left, bool) or isinstance(right, bool):
            raise ExecutionError(f"step {step}: {kind} of a boolean", step=step)
        if isinstance(left, float) and math.isnan(left):
            raise ExecutionError(f"step {step}: {kind} of NaN", step=step)
        return left, right
    if isinstance(left, str) and isinstance(right, str) and kind == "Equals":
        return left, right
    raise ExecutionError(
        f"step {step}: {kind} of {left!r} and {right!r} (not two numbers)", step=step
    )


def _ranges(spec: dict[str, Any]) -> dict[str, TuningRange]:
    ranges: dict[str, TuningRange] = {}
    for key, kind in (
        ("IntegerParameterRanges", "integer"),
        ("ContinuousParameterRanges", "continuous"),
    ):
        for item in spec.get(key, []):
            ranges[item["Name"]] = TuningRange(
                type=kind,
                min=float(item["MinValue"]),
                max=float(item["MaxValue"]),
                scaling=item.get("ScalingType", "Auto"),
            )
    for item in spec.get("CategoricalParameterRanges", []):
        ranges[item["Name"]] = TuningRange(type="categorical", values=list(item["Values"]))
    unknown = set(spec) - {
        "IntegerParameterRanges",
        "ContinuousParameterRanges",
        "CategoricalParameterRanges",
    }
    if unknown:
        raise ExecutionError(f"ParameterRanges {sorted(unknown)} are not run locally")
    return ranges


def _link_file(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        os.symlink(source.resolve(), target)
    return target


def _last_lines(text: str, n: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:]) or "the job exited with an error and printed nothing"
