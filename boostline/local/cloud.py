"""The seam between the emulated AWS APIs and the local runtime.

The handlers talk to the emulator exactly as they talk to AWS. What the
emulator only records, the local runtime carries out:

- a pipeline execution the retrain handler starts is run by the local
  executor of the synthesized pipeline definition, with the execution's parameters;
- a model version the local pipeline registers is registered in the
  emulator's model registry too (same version number, same status);
- an update of the serving stack's `ModelPackageArn` parameter (what the
  deployer handler does) is applied to the local endpoint, blue/green.

`provision()` creates in the emulator what the CDK stacks would: the raw-data
bucket, the idempotency table, the pipeline, the model package group and the
serving stack with its parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boostline.local.emulator import ACCOUNT, Emulator
from boostline.local.workdir import Workdir
from boostline.naming import Names
from boostline.registry import ModelPackage

# The CreateModelPackage fields the local registry keeps from the pipeline's request.
MODEL_PACKAGE_REQUEST_FIELDS = (
    "ModelPackageGroupName",
    "ModelPackageDescription",
    "InferenceSpecification",
    "ModelMetrics",
    "DriftCheckBaselines",
    "CustomerMetadataProperties",
    "ModelApprovalStatus",
    "SkipModelValidation",
)
# SSM-typed parameters (CDK's BootstrapVersion) are resolved by CloudFormation from
# Parameter Store; the emulator's stand-in does not hold them.
_RESOLVED_BY_CLOUDFORMATION = "AWS::SSM::Parameter::Value<"


@dataclass(frozen=True)
class CloudNames:
    """The stage's names (boostline.naming), plus what only the emulator needs."""

    names: Names

    def __getattr__(self, item: str) -> Any:
        return getattr(self.names, item)

    @property
    def serving_stack(self) -> str:
        return self.names.stack("serving")

    @property
    def monitoring_stack(self) -> str:
        return self.names.stack("monitoring")

    @property
    def raw_bucket(self) -> str:
        return self.names.bucket("raw", ACCOUNT, self.names.region)

    @property
    def artifacts_bucket(self) -> str:
        return self.names.bucket("artifacts", ACCOUNT, self.names.region)

    @property
    def idempotency_table(self) -> str:
        return f"{self.names.prefix}-retrain-idempotency"


def _stand_in_template(prefix: str, parameters: dict[str, Any], record: str) -> str:
    """The serving stack's real parameters, with one cheap resource standing in for the rest.

    The emulator only holds the stack's parameter values (what the deployer's
    UpdateStack changes, validated against the real declarations); the local runtime
    renders the real template with them to start the endpoint (Demo.reconcile).
    """
    declared = {
        name: spec
        for name, spec in parameters.items()
        if not str(spec.get("Type", "")).startswith(_RESOLVED_BY_CLOUDFORMATION)
    }
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": declared,
            "Resources": {
                "LiveModel": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {
                        "Name": f"/{prefix}/{record}",
                        "Type": "String",
                        "Value": {"Ref": "ModelPackageArn"},
                    },
                }
            },
        }
    )


@dataclass
class LocalCloud:
    emulator: Emulator
    workdir: Workdir
    names: CloudNames
    handled_executions: set[str] = field(default_factory=set)
    package_arns: dict[int, str] = field(default_factory=dict)

    # ------------------------------------------------------------ set-up

    def provision(
        self,
        pipeline_definition: dict[str, Any],
        serving_parameters: dict[str, Any],
        monitoring_parameters: dict[str, Any] | None = None,
    ) -> None:
        """Create what the stacks would, from the assembly: the pipeline gets the
        synthesized definition, the serving (and monitoring) stack the real templates'
        parameters."""
        s3 = self.emulator.client("s3")
        s3.create_bucket(
            Bucket=self.names.raw_bucket,
            CreateBucketConfiguration={"LocationConstraint": self.names.region},
        )
        self.emulator.client("dynamodb").create_table(
            TableName=self.names.idempotency_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sm = self.emulator.client("sagemaker")
        sm.create_pipeline(
            PipelineName=self.names.pipeline,
            PipelineDefinition=json.dumps(pipeline_definition),
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.names.prefix}-pipeline",
        )
        sm.create_model_package_group(ModelPackageGroupName=self.names.model_package_group)
        stacks = {self.names.serving_stack: (serving_parameters, "live-model-package")}
        if monitoring_parameters is not None:
            stacks[self.names.monitoring_stack] = (monitoring_parameters, "monitored-package")
        for stack_name, (declared, record) in stacks.items():
            self.emulator.client("cloudformation").create_stack(
                StackName=stack_name,
                TemplateBody=_stand_in_template(self.names.prefix, declared, record),
                # Given explicitly: the emulator keeps only given values for UsePreviousValue.
                Parameters=[
                    {"ParameterKey": name, "ParameterValue": str(spec["Default"])}
                    for name, spec in declared.items()
                    if "Default" in spec
                    and not str(spec.get("Type", "")).startswith(_RESOLVED_BY_CLOUDFORMATION)
                ],
            )

    def retrain_env(self) -> dict[str, str]:
        """The retrain trigger's environment, as the automation stack sets it."""
        return {
            "PIPELINE_NAME": self.names.pipeline,
            "MODEL_PACKAGE_GROUP": self.names.model_package_group,
            "RAW_BUCKET": self.names.raw_bucket,
            "RAW_PREFIX": "raw/",
            "IDEMPOTENCY_TABLE": self.names.idempotency_table,
            "MIN_NEW_FILES": "1",
            "MIN_INTERVAL_SECONDS": "0",
            "ENDPOINT_NAME": self.names.endpoint,
            "POWERTOOLS_SERVICE_NAME": "retrain-trigger",
            "POWERTOOLS_METRICS_NAMESPACE": "Boostline",
        }

    def deployer_env(self) -> dict[str, str]:
        return {
            "MODEL_PACKAGE_GROUP": self.names.model_package_group,
            "SERVING_STACK_NAME": self.names.serving_stack,
            "MONITORING_STACK_NAME": self.names.monitoring_stack,
            "DEPLOY_RETRY_SECONDS": "30",
            "POWERTOOLS_SERVICE_NAME": "deployer",
            "POWERTOOLS_METRICS_NAMESPACE": "Boostline",
        }

    # ------------------------------------------------------------ S3 <-> local folders

    def local_path(self, s3_uri: str) -> Path:
        """`s3://<raw bucket>/<key>` -> `<workdir>/buckets/raw/<key>`."""
        prefix = f"s3://{self.names.raw_bucket}/"
        if not s3_uri.startswith(prefix):
            raise ValueError(f"{s3_uri} is not in the raw-data bucket {self.names.raw_bucket}")
        return self.workdir.bucket("raw") / s3_uri[len(prefix) :].lstrip("/")

    def put_raw(self, key: str, source: Path) -> int:
        """Land a file in the raw bucket: locally, and as an object in the emulator."""
        target = self.workdir.bucket("raw") / key
        target.parent.mkdir(parents=True, exist_ok=True)
        data = source.read_bytes()
        target.write_bytes(data)
        self.emulator.client("s3").put_object(Bucket=self.names.raw_bucket, Key=key, Body=data)
        return len(data)

    # ------------------------------------------------------------ pipeline executions

    def new_executions(self) -> list[tuple[str, dict[str, str]]]:
        """Executions the handlers started that the local runtime has not run yet."""
        sm = self.emulator.client("sagemaker")
        summaries = sm.list_pipeline_executions(PipelineName=self.names.pipeline)[
            "PipelineExecutionSummaries"
        ]
        found = []
        for summary in sorted(summaries, key=lambda s: s["StartTime"]):
            arn = summary["PipelineExecutionArn"]
            if arn in self.handled_executions:
                continue
            params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
                "PipelineParameters"
            ]
            found.append((arn, {p["Name"]: p["Value"] for p in params}))
        return found

    def mark_handled(self, arn: str) -> None:
        self.handled_executions.add(arn)

    # ------------------------------------------------------------ model registry

    def mirror(self, package: ModelPackage) -> dict[str, Any]:
        """Register a local version in the emulator's registry; returns its description.

        The request is the one the pipeline definition made (the local registry keeps it
        as given), so the emulator holds what SageMaker's registry would.
        """
        sm = self.emulator.client("sagemaker")
        data = package.data
        request = {k: data[k] for k in MODEL_PACKAGE_REQUEST_FIELDS if k in data}
        request["ModelPackageGroupName"] = self.names.model_package_group
        response = sm.create_model_package(**request)
        described = sm.describe_model_package(ModelPackageName=response["ModelPackageArn"])
        if int(described["ModelPackageVersion"]) != package.version:
            raise RuntimeError(
                f"registries out of step: local version {package.version}, "
                f"emulator version {described['ModelPackageVersion']}"
            )
        self.package_arns[package.version] = described["ModelPackageArn"]
        return described

    def set_status(self, version: int, status: str) -> dict[str, Any]:
        sm = self.emulator.client("sagemaker")
        arn = self.package_arn(version)
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        return sm.describe_model_package(ModelPackageName=arn)

    def package_arn(self, version: int) -> str:
        if version not in self.package_arns:
            raise ValueError(f"model version {version} is not registered in the emulator")
        return self.package_arns[version]

    def version_of(self, arn: str) -> int | None:
        for version, known in self.package_arns.items():
            if known == arn:
                return version
        return None

    # ------------------------------------------------------------ serving stack

    def serving_parameters(self) -> dict[str, str]:
        return self.stack_parameters(self.names.serving_stack)

    def monitoring_parameters(self) -> dict[str, str]:
        return self.stack_parameters(self.names.monitoring_stack)

    def stack_parameters(self, stack_name: str) -> dict[str, str]:
        stack = self.emulator.client("cloudformation").describe_stacks(StackName=stack_name)[
            "Stacks"
        ][0]
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}

    def stack_arn(self, stack_name: str) -> str:
        stack = self.emulator.client("cloudformation").describe_stacks(StackName=stack_name)[
            "Stacks"
        ][0]
        return str(stack["StackId"])

    def restore_serving_parameters(self, parameters: dict[str, str]) -> None:
        """What CloudFormation's rollback does when the new endpoint fails its checks."""
        self.emulator.client("cloudformation").update_stack(
            StackName=self.names.serving_stack,
            UsePreviousTemplate=True,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
