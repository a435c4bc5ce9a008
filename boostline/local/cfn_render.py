"""A synthesized CloudFormation template, rendered offline as CloudFormation would.

Given a template, its parameter values and the stack's context (account, region,
the exports of the stage's other stacks), `render_template` evaluates the
conditions, drops the resources, outputs and properties they switch off, and
resolves the intrinsic functions the project's templates use:

    Ref (parameters, pseudo parameters, resources), Fn::GetAtt, Fn::Join, Fn::Sub,
    Fn::ImportValue, Fn::Select, Fn::Split, Fn::If, Fn::Equals, Fn::Not, Fn::And,
    Fn::Or, Condition, and the AWS::NoValue pseudo parameter.

Anything else (Fn::FindInMap, Fn::GetAZs, Fn::Base64, Fn::Cidr, transforms, an
unknown attribute) raises CfnRenderError naming where it stands, rather than
guessing. Physical names follow what CloudFormation does where the template names
a resource (RoleName, BucketName, ...); otherwise they are `<stack>-<logical id>`,
stable across renders. No maintained offline renderer is on the package index
this project installs from, so this covers exactly the templates' intrinsics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property is left out


class CfnRenderError(ValueError):
    """The template uses something this renderer does not evaluate, or is inconsistent."""


@dataclass(frozen=True)
class StackContext:
    account: str = "000000000000"
    region: str = "eu-west-1"
    partition: str = "aws"
    stack_name: str = "stack"
    imports: Mapping[str, str] = field(default_factory=dict)  # export name -> value


@dataclass
class RenderedStack:
    resources: dict[str, dict[str, Any]]  # logical id -> {"Type", "Properties"}
    outputs: dict[str, Any]
    exports: dict[str, str]
    conditions: dict[str, bool]
    parameters: dict[str, str]
    physical_names: dict[str, str]  # logical id -> the name CloudFormation gives it

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}


# Type -> (service, ARN resource path with {name}), for GetAtt Arn of named resources.
_ARNS = {
    "AWS::IAM::Role": ("iam", "role/{name}", False),
    "AWS::IAM::ManagedPolicy": ("iam", "policy/{name}", False),
    "AWS::S3::Bucket": ("s3", "{name}", None),
    "AWS::KMS::Key": ("kms", "key/{name}", True),
    "AWS::SQS::Queue": ("sqs", "{name}", True),
    "AWS::SNS::Topic": ("sns", "{name}", True),
    "AWS::Lambda::Function": ("lambda", "function:{name}", True),
    "AWS::Events::Rule": ("events", "rule/{name}", True),
    "AWS::Logs::LogGroup": ("logs", "log-group:{name}:*", True),
    "AWS::CloudWatch::Alarm": ("cloudwatch", "alarm:{name}", True),
    "AWS::DynamoDB::GlobalTable": ("dynamodb", "table/{name}", True),
    "AWS::DynamoDB::Table": ("dynamodb", "table/{name}", True),
    "AWS::SecretsManager::Secret": ("secretsmanager", "secret:{name}", True),
    "AWS::SageMaker::Endpoint": ("sagemaker", "endpoint/{name}", True),
    "AWS::SageMaker::Pipeline": ("sagemaker", "pipeline/{name}", True),
}
# Type -> the property that names the resource, when the template sets it.
_NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::Pipeline": "PipelineName",
    "AWS::SageMaker::DataQualityJobDefinition": "JobDefinitionName",
    "AWS::SageMaker::ModelQualityJobDefinition": "JobDefinitionName",
    "AWS::SageMaker::MonitoringSchedule": "MonitoringScheduleName",
}
# GetAtt attributes that are the resource's name.
_NAME_ATTRIBUTES = {
    "ModelName",
    "EndpointConfigName",
    "EndpointName",
    "JobDefinitionName",
    "QueueName",
    "MonitoringScheduleName",
    "PipelineName",
}
# Types whose Ref is their ARN rather than their name.
_REF_IS_ARN = {
    "AWS::IAM::ManagedPolicy",
    "AWS::SNS::Topic",
    "AWS::SageMaker::Endpoint",
    "AWS::SageMaker::MonitoringSchedule",
    "AWS::SecretsManager::Secret",
}
# Types whose Ref is an URL or id CloudFormation makes up.
_SQS_URL = "https://sqs.{region}.amazonaws.com/{account}/{name}"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def render_template(
    template: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    context: StackContext | None = None,
) -> RenderedStack:
    """Render template with parameters (others take their Default) in context."""
    return _Renderer(template, dict(parameters or {}), context or StackContext()).render()


class _Renderer:
    def __init__(
        self, template: Mapping[str, Any], parameters: dict[str, str], context: StackContext
    ) -> None:
        if "Transform" in template:
            raise CfnRenderError("templates with a Transform are not rendered")
        self.template = template
        self.context = context
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.parameters = self._parameters(template.get("Parameters", {}), parameters)
        self.conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # ------------------------------------------------------------------ inputs
    def _parameters(self, declared: Mapping[str, Any], given: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise CfnRenderError(f"parameters not in the template: {', '.join(unknown)}")
        values = {}
        for name, spec in declared.items():
            if name in given:
                value = str(given[name])
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise CfnRenderError(f"parameter {name} has no value and no default")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise CfnRenderError(f"parameter {name}: {value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise CfnRenderError(f"parameter {name}: {value!r} does not match {pattern}")
            values[name] = value
        return values

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        declared = self.template.get("Conditions", {})
        if name not in declared:
            raise CfnRenderError(f"no condition named {name}")
        if name in self._evaluating:
            raise CfnRenderError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        value = self.resolve(declared[name], f"Conditions.{name}")
        self._evaluating.discard(name)
        if not isinstance(value, bool):
            raise CfnRenderError(f"condition {name} is not a boolean: {value!r}")
        self.conditions[name] = value
        return value

    def _included(self, block: Mapping[str, Any]) -> bool:
        name = block.get("Condition")
        return name is None or self.condition(name)

    # ------------------------------------------------------------------ render
    def render(self) -> RenderedStack:
        for name in self.template.get("Conditions", {}):
            self.condition(name)
        resources = {}
        for logical, resource in self.resources.items():
            if not self._included(resource):
                continue
            properties = self.resolve(
                resource.get("Properties", {}), f"Resources.{logical}.Properties"
            )
            resources[logical] = {"Type": resource["Type"], "Properties": properties}
        outputs, exports = {}, {}
        for name, output in self.template.get("Outputs", {}).items():
            if not self._included(output):
                continue
            value = self.resolve(output["Value"], f"Outputs.{name}")
            outputs[name] = value
            if "Export" in output:
                exports[str(self.resolve(output["Export"]["Name"], f"Outputs.{name}"))] = value
        names = {logical: self.name(logical) for logical in resources}
        return RenderedStack(
            resources, outputs, exports, dict(self.conditions), self.parameters, names
        )

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Condition" and where.startswith("Conditions."):
                return self.condition(arg)
            if key.startswith("Fn::"):
                handler = _FUNCTIONS.get(key)
                if handler is None:
                    raise CfnRenderError(f"{where}: {key} is not supported")
                return handler(self, arg, where)
        out = {}
        for k, v in value.items():
            resolved = self.resolve(v, f"{where}.{k}")
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise CfnRenderError(f"{where}: Ref of {name!r}")
        pseudo = {
            "AWS::AccountId": self.context.account,
            "AWS::Region": self.context.region,
            "AWS::Partition": self.context.partition,
            "AWS::StackName": self.context.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        resource = self._resource(name, where)
        type_ = resource["Type"]
        if type_ in _REF_IS_ARN:
            return self._arn(name, where)
        if type_ == "AWS::SQS::Queue":
            return _SQS_URL.format(
                region=self.context.region, account=self.context.account, name=self.name(name)
            )
        return self.name(name)

    def _resource(self, logical: str, where: str) -> Mapping[str, Any]:
        resource = self.resources.get(logical)
        if resource is None:
            raise CfnRenderError(f"{where}: no parameter or resource named {logical}")
        if not self._included(resource):
            raise CfnRenderError(f"{where}: {logical} is switched off by its condition")
        return resource

    def name(self, logical: str) -> str:
        """The physical name CloudFormation gives the resource."""
        resource = self.resources[logical]
        prop = _NAME_PROPERTY.get(resource["Type"])
        given = resource.get("Properties", {}).get(prop) if prop else None
        if given is not None:
            return str(self.resolve(given, f"Resources.{logical}.{prop}"))
        return f"{self.context.stack_name}-{logical}"

    def _arn(self, logical: str, where: str) -> str:
        type_ = self.resources[logical]["Type"]
        if type_ not in _ARNS:
            raise CfnRenderError(f"{where}: no ARN format for {type_}")
        service, path, regional = _ARNS[type_]
        c = self.context
        name = self.name(logical)
        if type_ == "AWS::IAM::Role":
            path_prefix = self.resources[logical].get("Properties", {}).get("Path", "/")
            name = f"{str(path_prefix).strip('/')}/{name}".strip("/")
        if regional is None:  # S3: no region, no account
            return f"arn:{c.partition}:{service}:::{path.format(name=name)}"
        region = c.region if regional else ""
        return f"arn:{c.partition}:{service}:{region}:{c.account}:{path.format(name=name)}"

    def get_att(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise CfnRenderError(f"{where}: Fn::GetAtt needs [resource, attribute], got {arg!r}")
        logical, attribute = arg
        resource = self._resource(logical, where)
        if attribute == "Arn":
            return self._arn(logical, where)
        if attribute in _NAME_ATTRIBUTES:
            return self.name(logical)
        if resource["Type"] == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return f"sg-{logical.lower()[:17]}"
        raise CfnRenderError(f"{where}: Fn::GetAtt {resource['Type']}.{attribute} is not supported")

    def sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
            text, variables = (
                arg[0],
                {k: self.resolve(v, f"{where}.{k}") for k, v in arg[1].items()},
            )
        else:
            raise CfnRenderError(f"{where}: Fn::Sub needs a string or [string, variables]")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the text ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = self.get_att(name.split(".", 1), where)
            else:
                value = self._ref(name, where)
            if not isinstance(value, str | int | float):
                raise CfnRenderError(f"{where}: ${{{name}}} is not a string")
            return str(value)

        return _SUB_VARIABLE.sub(replace, text)


def _join(r: _Renderer, arg: Any, where: str) -> str:
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
        raise CfnRenderError(f"{where}: Fn::Join needs [delimiter, [values]]")
    values = r.resolve(arg[1], where)
    if not isinstance(values, list) or not all(isinstance(v, str | int | float) for v in values):
        raise CfnRenderError(f"{where}: Fn::Join of {values!r}")
    return arg[0].join(str(v) for v in values)


def _import(r: _Renderer, arg: Any, where: str) -> str:
    name = r.resolve(arg, where)
    if name not in r.context.imports:
        raise CfnRenderError(f"{where}: no stack exports {name!r}")
    return r.context.imports[name]


def _select(r: _Renderer, arg: Any, where: str) -> Any:
    index, values = (r.resolve(a, where) for a in arg)
    if not isinstance(values, list) or not 0 <= int(index) < len(values):
        raise CfnRenderError(f"{where}: Fn::Select {index} of {values!r}")
    return values[int(index)]


def _split(r: _Renderer, arg: Any, where: str) -> list[str]:
    delimiter, text = (r.resolve(a, where) for a in arg)
    return str(text).split(str(delimiter))


def _if(r: _Renderer, arg: Any, where: str) -> Any:
    name, when_true, when_false = arg
    return r.resolve(when_true if r.condition(name) else when_false, where)


def _equals(r: _Renderer, arg: Any, where: str) -> bool:
    left, right = (r.resolve(a, where) for a in arg)
    return str(left) == str(right)


def _booleans(r: _Renderer, arg: Any, where: str) -> list[bool]:
    values = []
    for i, a in enumerate(arg):
        if isinstance(a, dict) and set(a) == {"Condition"}:
            values.append(r.condition(a["Condition"]))
        else:
            values.append(r.resolve(a, f"{where}[{i}]"))
    if not all(isinstance(v, bool) for v in values):
        raise CfnRenderError(f"{where}: condition functions need booleans, got {values!r}")
    return values


_FUNCTIONS = {
    "Fn::GetAtt": lambda r, arg, where: r.get_att(arg, where),
    "Fn::Join": _join,
    "Fn::Sub": lambda r, arg, where: r.sub(arg, where),
    "Fn::ImportValue": _import,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": lambda r, arg, where: not _booleans(r, arg, where)[0],
    "Fn::And": lambda r, arg, where: all(_booleans(r, arg, where)),
    "Fn::Or": lambda r, arg, where: any(_booleans(r, arg, where)),
}


def render_stage(
    templates: Mapping[str, Mapping[str, Any]],
    order: list[str],
    stack_names: Mapping[str, str],
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    account: str = "000000000000",
    region: str = "eu-west-1",
) -> dict[str, RenderedStack]:
    """Render a stage's stacks in dependency order, each importing the earlier exports."""
    exports: dict[str, str] = {}
    rendered = {}
    for stack in order:
        context = StackContext(
            account=account, region=region, stack_name=stack_names[stack], imports=dict(exports)
        )
        result = render_template(templates[stack], (parameters or {}).get(stack), context)
        exports.update(result.exports)
        rendered[stack] = result
    return rendered
