"""The dev stage, synthesized once per test process, rendered for the local account, and one
IAM policy evaluator (one Node process) shared by every access-check test.

`resolve_step` evaluates the pipeline expressions of a step's arguments the way the
pipeline would for one execution (parameter defaults, the execution id, earlier steps'
arguments) — enough to give the access rules concrete requests.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boostline.local.assembly import Assembly

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ACCOUNT = "123456789012"
REGION = "eu-west-1"
EXECUTION_ID = "execution-1"
BEST_TRIAL = "tune-best-001"
TUNING_JOB = "tune"


@functools.cache
def dev_stage_assembly() -> Assembly:
    """The dev stage's assembly, synthesized once per test process: the access checks and
    the pipeline runs of tests/boostline share it (a synth takes ~18 s)."""
    from boostline.config import load_config
    from boostline.local.assembly import stage_assembly

    cache = Path(tempfile.mkdtemp(prefix="boostline-iam-dev-"))
    atexit.register(shutil.rmtree, cache, True)
    return stage_assembly(cache, load_config(), "dev")


def dev_assembly() -> Path:
    return dev_stage_assembly().dir


def template(stack: str) -> dict[str, Any]:
    return json.loads((dev_assembly() / f"{stack}.template.json").read_text())


def rendered(templates: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    from boostline.local.iam.stage import render_assembly

    return render_assembly(dev_assembly(), account=ACCOUNT, region=REGION, templates=templates)


@functools.cache
def evaluator() -> Any:
    from boostline.local.iam import PolicyEvaluator

    shared = PolicyEvaluator()
    atexit.register(shared.close)
    return shared


def pipeline_definition(stacks: dict[str, Any]) -> dict[str, Any]:
    [pipeline] = stacks["Pipeline"].of_type("AWS::SageMaker::Pipeline").values()
    return json.loads(pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"])


def steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(step_list: list[dict[str, Any]]) -> None:
        for step in step_list:
            found[step["Name"]] = step
            arguments = step.get("Arguments", {})
            walk(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))

    walk(definition["Steps"])
    return found


_OUTPUT = re.compile(r"Steps\.(\w+)\.ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri")


def resolve_step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    """The step's arguments with its Get and Std:Join expressions evaluated."""
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    by_name = steps(definition)

    def get(path: str) -> Any:
        if path.startswith("Parameters."):
            return defaults[path.removeprefix("Parameters.")]
        if path == "Execution.PipelineExecutionId":
            return EXECUTION_ID
        if path == "Execution.PipelineExecutionArn":
            return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/p/execution/{EXECUTION_ID}"
        if path.endswith(".BestTrainingJob.TrainingJobName"):
            return BEST_TRIAL
        if path.endswith(".HyperParameterTuningJobName"):
            return TUNING_JOB
        match = _OUTPUT.fullmatch(path)
        if match:
            outputs = by_name[match[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            [output] = [o for o in outputs if o["OutputName"] == match[2]]
            return resolve(output["S3Output"]["S3Uri"])
        raise ValueError(f"the test resolver does not evaluate Get {path}")

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Get"}:
                return get(value["Get"])
            if set(value) == {"Std:Join"}:
                join = value["Std:Join"]
                return join["On"].join(str(resolve(v)) for v in join["Values"])
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve(by_name[name]["Arguments"])
