"""The stage's cloud assembly (a `cdk.out` folder), as the local runtime reads it.

By default the stage is synthesized in-process and offline, once per set of inputs:
the assembly is cached under `<workdir>/assemblies/<stage>-<hash>/`, keyed by a hash of
everything the CDK app reads (the config and its schema, stacks/, training_scripts/,
lambda/, cdk.json, the pinned packages). A second run with the same inputs reads the
cache and never imports the CDK. `--assembly DIR` names an assembly to use instead
(a `cdk synth` output, or a deliberately broken copy of one).

From the assembly come the pipeline definition (the `AWS::SageMaker::Pipeline`
resource's PipelineDefinitionBody, its Fn::Sub rendered for the local account and the
stage's region by boostline.local.cfn_render) and the CDK file assets, as the S3
objects `cdk deploy` would publish (bucket and key from `*.assets.json`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boostline.config import BoostlineConfig
from boostline.local.cfn_render import CfnRenderError, RenderedStack, render_stage
from boostline.local.emulator import ACCOUNT

REPO = Path(__file__).resolve().parents[2]
# What the CDK app reads, besides the config and its schema.
SYNTH_INPUTS = (
    "stacks",
    "training_scripts",
    "lambda",
    "cdk.json",
    "pyproject.toml",
    "app.py",
    "boostline/config.py",
    "boostline/naming.py",
)
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", "node_modules"}
CACHE_DIR = "assemblies"
COMPLETE = ".boostline-complete"


class AssemblyError(ValueError):
    """The assembly is missing, incomplete, or holds no pipeline the executor can read."""


@dataclass(frozen=True)
class Assembly:
    dir: Path
    cached: bool = False  # read from the synth cache (no synth this time)

    def manifest(self) -> dict[str, Any]:
        path = self.dir / "manifest.json"
        if not path.is_file():
            raise AssemblyError(f"{self.dir} is not a cloud assembly: no manifest.json")
        return json.loads(path.read_text())

    def stacks(self) -> dict[str, dict[str, Any]]:
        """Artifact id -> its manifest entry, for the CloudFormation stacks, in manifest order."""
        return {
            key: artifact
            for key, artifact in self.manifest().get("artifacts", {}).items()
            if artifact.get("type") == "aws:cloudformation:stack"
        }

    def template(self, artifact_id: str) -> dict[str, Any]:
        artifact = self.stacks()[artifact_id]
        return json.loads((self.dir / artifact["properties"]["templateFile"]).read_text())

    def stack_order(self) -> list[str]:
        """Stacks in deployment order (dependencies first)."""
        stacks = self.stacks()
        order: list[str] = []

        def visit(key: str, seen: tuple[str, ...] = ()) -> None:
            if key in order or key not in stacks:
                return
            if key in seen:
                raise AssemblyError(f"stack dependency cycle through {key}")
            for dep in stacks[key].get("dependencies", []):
                visit(dep, (*seen, key))
            order.append(key)

        for key in stacks:
            visit(key)
        return order

    def render(
        self,
        region: str,
        account: str = ACCOUNT,
        parameters: dict[str, dict[str, str]] | None = None,
        until: str | None = None,
    ) -> dict[str, RenderedStack]:
        """The stacks as CloudFormation would create them (up to `until`), in order.

        parameters: artifact id -> that stack's parameter values (others: defaults).
        """
        stacks = self.stacks()
        order = self.stack_order()
        needed = order[: order.index(until) + 1] if until is not None else order
        try:
            return render_stage(
                {key: self.template(key) for key in needed},
                needed,
                {key: stacks[key]["properties"]["stackName"] for key in needed},
                parameters,
                account=account,
                region=region,
            )
        except CfnRenderError as exc:
            raise AssemblyError(f"cannot render the stacks of {self.dir}: {exc}") from exc

    def serving_stack(
        self, region: str, parameters: dict[str, str], account: str = ACCOUNT
    ) -> RenderedStack:
        """The serving stack rendered with its current parameter values."""
        holder = self._stack_holding("AWS::SageMaker::Endpoint")
        declared = self.template(holder).get("Parameters", {})
        given = {k: v for k, v in parameters.items() if k in declared}
        return self.render(region, account, {holder: given}, until=holder)[holder]

    def batch_pipeline(
        self, region: str, parameters: dict[str, str], account: str = ACCOUNT
    ) -> tuple[str, dict[str, Any]] | None:
        """(name, definition) of the serving stack's batch pipeline with the live model's
        parameters; None when the stack holds none (no model is live)."""
        stack = self.serving_stack(region, parameters, account)
        for resource in stack.of_type("AWS::SageMaker::Pipeline").values():
            name = str(resource["Properties"]["PipelineName"])
            if name.endswith("-batch"):
                return name, definition_body(resource)
        return None

    def serving_parameters(self) -> dict[str, Any]:
        """The serving stack's declared Parameters (names, types, defaults, patterns)."""
        return dict(
            self.template(self._stack_holding("AWS::SageMaker::Endpoint")).get("Parameters", {})
        )

    def _stack_holding(self, resource_type: str) -> str:
        """The artifact id of the one stack that declares a resource of this type."""
        holder = [
            key
            for key in self.stack_order()
            if any(
                r.get("Type") == resource_type
                for r in self.template(key).get("Resources", {}).values()
            )
        ]
        if len(holder) != 1:
            raise AssemblyError(
                f"{self.dir}: expected one stack with an {resource_type}, found {len(holder)}"
            )
        return holder[0]

    def pipeline_definition(self, region: str, account: str = ACCOUNT) -> dict[str, Any]:
        """The training pipeline's definition as CloudFormation would hand it to SageMaker."""
        # The training pipeline's stack is the one with the model package group.
        holder = self._stack_holding("AWS::SageMaker::ModelPackageGroup")
        rendered = self.render(region, account, until=holder)
        (pipeline,) = rendered[holder].of_type("AWS::SageMaker::Pipeline").values()
        return definition_body(pipeline)

    # ------------------------------------------------------------ the monitoring stack

    def _monitoring_holder(self) -> str:
        found = [
            key
            for key, artifact in self.stacks().items()
            if str(artifact["properties"]["stackName"]).endswith("-monitoring")
        ]
        if len(found) != 1:
            raise AssemblyError(f"{self.dir}: no monitoring stack (is monitoring.enabled false?)")
        return found[0]

    def monitoring_parameters(self) -> dict[str, Any]:
        """The monitoring stack's declared Parameters."""
        return dict(self.template(self._monitoring_holder()).get("Parameters", {}))

    def monitoring_stack(
        self, region: str, parameters: dict[str, str], account: str = ACCOUNT
    ) -> RenderedStack:
        """The monitoring stack rendered with the live model's parameters."""
        return self.monitoring_render(region, parameters, account)[self._monitoring_holder()]

    def monitoring_render(
        self, region: str, parameters: dict[str, str], account: str = ACCOUNT
    ) -> dict[str, RenderedStack]:
        """Every stack up to the monitoring stack, that one with the live model's parameters."""
        holder = self._monitoring_holder()
        declared = self.template(holder).get("Parameters", {})
        given = {k: v for k, v in parameters.items() if k in declared}
        return self.render(region, account, {holder: given}, until=holder)

    def monitoring_holder(self) -> str:
        return self._monitoring_holder()

    def pipeline_name(self) -> str:
        holder = self._stack_holding("AWS::SageMaker::ModelPackageGroup")
        for resource in self.template(holder).get("Resources", {}).values():
            if resource.get("Type") == "AWS::SageMaker::Pipeline":
                return str(resource["Properties"]["PipelineName"])
        raise AssemblyError(f"{self.dir}: no AWS::SageMaker::Pipeline")

    def file_assets(self, region: str, account: str = ACCOUNT) -> dict[tuple[str, str], Path]:
        """(bucket, key) -> the local file `cdk deploy` publishes there (file assets only)."""
        objects: dict[tuple[str, str], Path] = {}
        for manifest in sorted(self.dir.glob("*.assets.json")):
            for entry in json.loads(manifest.read_text()).get("files", {}).values():
                source = self.dir / entry["source"].get("path", "")
                # Directory assets are zipped at publish time; the pipeline uses none.
                if entry["source"].get("packaging", "file") != "file" or not source.is_file():
                    continue
                for destination in entry.get("destinations", {}).values():
                    bucket = _pseudo(destination["bucketName"], account, region)
                    objects[(bucket, _pseudo(destination["objectKey"], account, region))] = source
        return objects


def _pseudo(text: str, account: str, region: str) -> str:
    return (
        text.replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
    )


def open_assembly(path: Path) -> Assembly:
    """An assembly folder given by the user (`--assembly DIR`)."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise AssemblyError(f"assembly {path} is not a folder")
    assembly = Assembly(path)
    assembly.manifest()
    return assembly


def inputs_hash(config: BoostlineConfig, stage: str) -> str:
    """A hash of everything the synthesized assembly depends on."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    add("stage", stage.encode())
    add("config", config.model_dump_json().encode())
    if Path(config.source).is_file():
        add("config-file", Path(config.source).read_bytes())
    add("schema", config.schema_path().read_bytes())
    for name in SYNTH_INPUTS:
        root = REPO / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            rel = file.relative_to(REPO)
            if _SKIPPED_PARTS & set(rel.parts) or file.suffix == ".pyc":
                continue
            add(rel.as_posix(), file.read_bytes())
    return digest.hexdigest()[:16]


def stage_assembly(
    cache_root: Path,
    config: BoostlineConfig,
    stage: str,
    echo: Any = None,
) -> Assembly:
    """The stage's assembly from the cache, synthesized first if the inputs changed."""
    key = inputs_hash(config, stage)
    target = Path(cache_root) / CACHE_DIR / f"{stage}-{key}"
    if (target / COMPLETE).is_file():
        return Assembly(target, cached=True)
    if echo:
        echo(f"synthesizing stage {stage} (offline; cached as {target.name})")
    staging = target.with_name(f".{target.name}-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    synthesize(config, stage, staging)
    (staging / COMPLETE).write_text(key + "\n")
    if target.exists():  # an incomplete earlier attempt
        shutil.rmtree(target)
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same synth first
        shutil.rmtree(staging, ignore_errors=True)
    # Older assemblies of this stage are stale now; keep only the newest.
    for old in target.parent.glob(f"{stage}-*"):
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return Assembly(target)


def synthesize(config: BoostlineConfig, stage: str, outdir: Path) -> None:
    """`cdk synth` of the stage, in-process (the CDK app's code, no CLI, no AWS call)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    # The CDK app lives in the repository, beside the installed packages (not one of them).
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from stacks import build_app, new_app

    app = new_app(stage, str(outdir))
    build_app(app, config, stage)
    try:
        app.synth()
    except RuntimeError as exc:  # jsii wraps the validation failure
        raise AssemblyError(f"synth of stage {stage} failed: {exc}") from exc


def definition_body(pipeline: dict[str, Any]) -> dict[str, Any]:
    """A rendered AWS::SageMaker::Pipeline's definition, as SageMaker receives it."""
    definition = pipeline["Properties"].get("PipelineDefinition", {})
    body = definition.get("PipelineDefinitionBody")
    if not isinstance(body, str):
        raise AssemblyError(
            "the pipeline's PipelineDefinition has no PipelineDefinitionBody string "
            "(an S3 location is not read locally)"
        )
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise AssemblyError(f"the pipeline definition body is not JSON: {exc}") from exc
