"""The Boostline CDK app: one set of stacks per stage.

<project>-<stage>-storage    key, buckets, PII salt secret           (stateful)
<project>-<stage>-network    VPC, endpoints (only with vpc.enabled)
<project>-<stage>-pipeline   job roles, model package group, the SageMaker Pipeline
<project>-<stage>-automation retrain trigger and deployer Lambdas, rules, alerts topic
<project>-<stage>-serving    endpoint of the live model, autoscaling, rollback alarms
<project>-<stage>-monitoring our own monitors (or Model Monitor), their alarms, dashboard
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import App, Environment, Tags

from boostline.config import BoostlineConfig

from . import nag
from .automation_stack import AutomationStack
from .monitoring_stack import MonitoringStack
from .naming import names_for
from .network_stack import NetworkStack
from .pipeline_stack import PipelineStack
from .serving_stack import ServingStack
from .storage_stack import StorageStack

STAGE_CONTEXT = "stage"
DEFAULT_STAGE = "dev"
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def app_context(**extra: object) -> dict[str, object]:
    """cdk.json's context (feature flags, strict validation), for apps made outside the CLI.

    The CDK CLI passes this context to app.py itself; tests and scripts that build an
    App in-process get the same flags from here, so both synthesize the same templates.
    """
    context = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return {**context, **nag.STRICT_CONTEXT, **extra}


def new_app(stage: str = DEFAULT_STAGE, outdir: str | None = None) -> App:
    return App(context=app_context(**{STAGE_CONTEXT: stage}), outdir=outdir)


def build_app(app: App, config: BoostlineConfig, stage: str) -> dict[str, object]:
    """Add the stage's stacks to app; returns them by concern."""
    names = names_for(config, stage)  # also checks the stage exists
    stage_config = config.stage(stage)
    # The account stays unresolved unless the stage pins one: then `cdk deploy` refuses
    # to deploy the stage into any other account.
    env = Environment(account=stage_config.account, region=stage_config.region)
    Tags.of(app).add("project", config.project)
    Tags.of(app).add("stage", stage)

    storage = StorageStack(
        app,
        "Storage",
        stack_name=names.stack("storage"),
        description=f"{names.prefix}: KMS key, S3 buckets and the PII salt secret",
        env=env,
        config=config,
        stage=stage,
        names=names,
        termination_protection=stage_config.retain_data,
    )
    network = None
    if stage_config.vpc.enabled:
        network = NetworkStack(
            app,
            "Network",
            stack_name=names.stack("network"),
            description=f"{names.prefix}: private subnets and VPC endpoints for SageMaker jobs",
            env=env,
            config=config,
            stage=stage,
            names=names,
            flow_log_bucket=storage.access_logs,
        )
    pipeline = PipelineStack(
        app,
        "Pipeline",
        stack_name=names.stack("pipeline"),
        description=f"{names.prefix}: SageMaker training pipeline and its roles",
        env=env,
        config=config,
        stage=stage,
        names=names,
        storage=storage.refs,
        network=network.refs if network is not None else None,
        archive_dir=Path(app.outdir) / "boostline-sourcedir",
    )
    pipeline.add_stack_dependency(storage)
    automation = AutomationStack(
        app,
        "Automation",
        stack_name=names.stack("automation"),
        description=f"{names.prefix}: retrain trigger and deployer Lambdas, their rules, alerts",
        env=env,
        config=config,
        stage=stage,
        names=names,
        storage=storage.refs,
    )
    automation.add_stack_dependency(pipeline)
    serving = ServingStack(
        app,
        "Serving",
        stack_name=names.stack("serving"),
        description=f"{names.prefix}: endpoint of the live model, autoscaling, rollback alarms",
        env=env,
        config=config,
        stage=stage,
        names=names,
        storage=storage.refs,
    )
    # The serving alarms notify the automation stack's alerts topic (by name).
    serving.add_stack_dependency(automation)
    stacks_by_concern: dict[str, object] = {}
    if stage_config.monitoring.enabled:
        monitoring = MonitoringStack(
            app,
            "Monitoring",
            stack_name=names.stack("monitoring"),
            description=f"{names.prefix}: monitors of the live endpoint, their alarms, dashboard",
            env=env,
            config=config,
            stage=stage,
            names=names,
            storage=storage.refs,
            archive_dir=Path(app.outdir) / "boostline-sourcedir",
        )
        # Deployed after the endpoint's stack; the deployer updates it once that is in service.
        monitoring.add_stack_dependency(serving)
        stacks_by_concern["monitoring"] = monitoring
    nag.add_packs(app)
    stacks: dict[str, object] = {
        "storage": storage,
        "pipeline": pipeline,
        "automation": automation,
        "serving": serving,
        **stacks_by_concern,
    }
    if network is not None:
        stacks["network"] = network
    return stacks
