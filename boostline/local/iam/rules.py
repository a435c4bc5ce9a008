"""What SageMaker itself does with a job's or an endpoint's role: the rules, written once.

SageMaker makes these requests with the credentials of the role a request names
(RoleArn, TrainingJobDefinition.RoleArn, a Model's ExecutionRoleArn), not the caller's.
`RULES` has one row per rule with the AWS page that says so; `accesses_for_request`
applies the rows to one request and returns the accesses to check against that role.

Requests are the CreateProcessingJob / CreateTrainingJob / CreateHyperParameterTuningJob
request shapes of the pipeline definition, with the pipeline's expressions (Get,
Std:Join, ...) already evaluated: a value that is still an expression raises
`UnresolvedRequest`. The endpoint's request is the rendered serving template's
AWS::SageMaker::Model, EndpointConfig and Endpoint properties, with the model package
(its InferenceSpecification) the Model names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from boostline.local.iam.access import Access, role_name

KINDS = ("Processing", "Training", "Tuning", "Endpoint")
LOG_GROUPS = {
    "Processing": "/aws/sagemaker/ProcessingJobs",
    "Training": "/aws/sagemaker/TrainingJobs",
    "Tuning": "/aws/sagemaker/TrainingJobs",  # each trial is a training job
}
ObjectLister = Callable[[str, str], Sequence[str]]  # (bucket, prefix) -> object keys


class UnresolvedRequest(ValueError):
    """A request field still holds a pipeline expression or is missing."""


@dataclass(frozen=True)
class Stage:
    """Where the request runs: the account and region, and which key encrypts which bucket.

    `bucket_keys` maps a bucket to the KMS key ARN of its default encryption (SSE-KMS
    with a customer managed key: reading an object needs kms:Decrypt on it; S3-managed
    and AWS managed keys need no identity-policy grant). `list_objects`, when given,
    lists the objects an S3Prefix input reads (the executor passes its local buckets);
    without it a prefix stands for one object, the prefix itself.
    """

    account: str
    region: str
    partition: str = "aws"
    bucket_keys: Mapping[str, str] = field(default_factory=dict)
    list_objects: ObjectLister | None = None


@dataclass(frozen=True)
class Job:
    kind: str
    request: Mapping[str, Any]
    name: str  # the job's (or a tuning trial's, or the endpoint's) name
    stage: Stage


@dataclass(frozen=True)
class Rule:
    rule: str
    kinds: tuple[str, ...]
    source: str  # the request field it follows from
    actions: tuple[str, ...]
    resource: str  # the resource, in words
    doc: str  # the AWS page that says so
    derive: Callable[[Job], Iterator[Access]]


# --- helpers -------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise UnresolvedRequest(f"{where} is {value!r}, not a resolved string")
    return value


def _dig(request: Mapping[str, Any], *path: str | int) -> Any:
    value: Any = request
    for step in path:
        if isinstance(value, Mapping) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
        if value is None:
            return None
    return value


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UnresolvedRequest(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _bucket_arn(job: Job, bucket: str) -> str:
    return f"arn:{job.stage.partition}:s3:::{bucket}"


def _object_arn(job: Job, bucket: str, key: str) -> str:
    return f"arn:{job.stage.partition}:s3:::{bucket}/{key}"


def _read_prefix(job: Job, uri: str, why: str, *, decrypt: bool = True) -> Iterator[Access]:
    """An S3Prefix read: ListBucket with s3:prefix = the key prefix, then each object."""
    bucket, prefix = split_s3_uri(uri)
    yield Access("s3:ListBucket", _bucket_arn(job, bucket), {"s3:prefix": prefix}, why)
    lister = job.stage.list_objects
    keys = list(lister(bucket, prefix)) if lister else [prefix]
    for key in keys:
        yield from _read_object(job, bucket, key, why, decrypt=decrypt)


def _read_object(
    job: Job, bucket: str, key: str, why: str, *, decrypt: bool = True
) -> Iterator[Access]:
    yield Access("s3:GetObject", _object_arn(job, bucket, key), {}, why)
    key_arn = job.stage.bucket_keys.get(bucket)
    if decrypt and key_arn:
        yield Access("kms:Decrypt", key_arn, {}, f"{why}: the bucket's key")


def _write(job: Job, uri: str, relative: str, kms_key: Any, why: str) -> Iterator[Access]:
    """A PutObject under an output URI, and the data key of the KMS key it is written with."""
    bucket, prefix = split_s3_uri(uri)
    key = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
    yield Access("s3:PutObject", _object_arn(job, bucket, key), {}, why)
    key_arn = kms_key if isinstance(kms_key, str) else job.stage.bucket_keys.get(bucket)
    if key_arn:
        yield Access("kms:GenerateDataKey", key_arn, {}, f"{why}: its KMS key")


def _training_definition(job: Job) -> Mapping[str, Any]:
    if job.kind == "Tuning":
        definition = job.request.get("TrainingJobDefinition")
        if not isinstance(definition, Mapping):
            raise UnresolvedRequest("the tuning request has no TrainingJobDefinition")
        return definition
    return job.request


def _container(job: Job) -> Mapping[str, Any]:
    """The endpoint's container: the Model's, or its model package's first."""
    containers = _dig(job.request, "Model", "Containers") or []
    primary = _dig(job.request, "Model", "PrimaryContainer")
    container = primary or (containers[0] if containers else {})
    if "ModelPackageName" in container:
        package = job.request.get("ModelPackage") or {}
        spec = _dig(package, "InferenceSpecification", "Containers", 0)
        if not isinstance(spec, Mapping):
            raise UnresolvedRequest(
                f"the Model names the model package {container['ModelPackageName']!r}: pass "
                "its InferenceSpecification as request['ModelPackage']"
            )
        return spec
    return container


def image_uri(job: Job) -> str:
    if job.kind == "Processing":
        return _text(_dig(job.request, "AppSpecification", "ImageUri"), "AppSpecification.ImageUri")
    if job.kind in ("Training", "Tuning"):
        spec = _training_definition(job).get("AlgorithmSpecification", {})
        return _text(spec.get("TrainingImage"), "AlgorithmSpecification.TrainingImage")
    return _text(_container(job).get("Image"), "the model container's Image")


def repository_arn(job: Job, image: str) -> str:
    """<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest] -> its ARN."""
    host, _, path = image.partition("/")
    parts = host.split(".")
    if len(parts) < 4 or parts[1:3] != ["dkr", "ecr"] or not path:
        raise UnresolvedRequest(f"{image!r} is not an Amazon ECR image URI")
    repository = path.split("@", 1)[0].rsplit(":", 1)[0]
    return f"arn:{job.stage.partition}:ecr:{parts[3]}:{parts[0]}:repository/{repository}"


# --- the rules -----------------------------------------------------------------------


def _processing_inputs(job: Job) -> Iterator[Access]:
    for entry in job.request.get("ProcessingInputs", []):
        s3 = entry.get("S3Input")
        if not s3:
            continue
        name = entry.get("InputName", "?")
        uri = _text(s3.get("S3Uri"), f"ProcessingInputs[{name}].S3Uri")
        why = f"ProcessingInputs[{name}] {s3.get('S3DataType', 'S3Prefix')} {uri}"
        if s3.get("S3DataType", "S3Prefix") == "S3Prefix":
            yield from _read_prefix(job, uri, why)
        else:  # ManifestFile: the manifest is read, then the objects it names
            bucket, key = split_s3_uri(uri)
            yield from _read_object(job, bucket, key, why)


def _processing_outputs(job: Job) -> Iterator[Access]:
    config = job.request.get("ProcessingOutputConfig") or {}
    for entry in config.get("Outputs", []):
        s3 = entry.get("S3Output")
        if not s3:
            continue
        name = entry.get("OutputName", "?")
        uri = _text(s3.get("S3Uri"), f"ProcessingOutputConfig.Outputs[{name}].S3Uri")
        yield from _write(job, uri, "output-file", config.get("KmsKeyId"), f"Outputs[{name}] {uri}")


def _training_channels(job: Job) -> Iterator[Access]:
    for channel in _training_definition(job).get("InputDataConfig", []):
        source = _dig(channel, "DataSource", "S3DataSource")
        if not source:
            continue
        name = channel.get("ChannelName", "?")
        uri = _text(source.get("S3Uri"), f"InputDataConfig[{name}].S3Uri")
        why = f"InputDataConfig[{name}] {source.get('S3DataType', 'S3Prefix')} {uri}"
        if source.get("S3DataType", "S3Prefix") == "S3Prefix":
            yield from _read_prefix(job, uri, why)
        else:
            bucket, key = split_s3_uri(uri)
            yield from _read_object(job, bucket, key, why)


def _training_output(job: Job) -> Iterator[Access]:
    config = _training_definition(job).get("OutputDataConfig") or {}
    uri = _text(config.get("S3OutputPath"), "OutputDataConfig.S3OutputPath")
    for artifact in ("output/model.tar.gz", "output/output.tar.gz"):
        yield from _write(
            job,
            uri,
            f"{job.name}/{artifact}",
            config.get("KmsKeyId"),
            f"OutputDataConfig.S3OutputPath {uri}",
        )


def _checkpoints(job: Job) -> Iterator[Access]:
    config = _training_definition(job).get("CheckpointConfig")
    if not config:
        return
    uri = _text(config.get("S3Uri"), "CheckpointConfig.S3Uri")
    why = f"CheckpointConfig.S3Uri {uri}"
    yield from _read_prefix(job, uri, why)
    yield from _write(job, uri, "checkpoint", None, why)


def _volume_key(job: Job) -> Iterator[Access]:
    if job.kind == "Processing":
        key = _dig(job.request, "ProcessingResources", "ClusterConfig", "VolumeKmsKeyId")
        where = "ProcessingResources.ClusterConfig.VolumeKmsKeyId"
    else:
        key = _dig(_training_definition(job), "ResourceConfig", "VolumeKmsKeyId")
        where = "ResourceConfig.VolumeKmsKeyId"
    if key is None:
        return
    yield Access(
        "kms:CreateGrant",
        _text(key, where),
        {"kms:GrantIsForAWSResource": "true"},
        f"{where}: the ML storage volume's key",
    )


def _image_pull(job: Job) -> Iterator[Access]:
    image = image_uri(job)
    yield Access("ecr:GetAuthorizationToken", "*", {}, f"pull {image}")
    repository = repository_arn(job, image)
    for action in ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer"):
        yield Access(action, repository, {}, f"pull {image}")
    yield Access("ecr:BatchGetImage", repository, {}, f"pull {image}")


def _logs(job: Job) -> Iterator[Access]:
    if job.kind == "Endpoint":
        group = f"/aws/sagemaker/Endpoints/{job.name}"
        stream = "AllTraffic/instance-1"
    else:
        group = LOG_GROUPS[job.kind]
        stream = f"{job.name}/algo-1"
    stage = job.stage
    stream_arn = (
        f"arn:{stage.partition}:logs:{stage.region}:{stage.account}:log-group:{group}"
        f":log-stream:{stream}"
    )
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        yield Access(action, stream_arn, {}, f"the job's logs in {group}")


def _model_package(job: Job) -> Iterator[Access]:
    containers = _dig(job.request, "Model", "Containers") or []
    for container in containers:
        package = container.get("ModelPackageName")
        if package is not None:
            yield Access(
                "sagemaker:DescribeModelPackage",
                _text(package, "Model.Containers[].ModelPackageName"),
                {},
                "the Model's ModelPackageName",
            )


def _model_artifacts(job: Job) -> Iterator[Access]:
    container = _container(job)
    url = container.get("ModelDataUrl")
    if url is not None:
        bucket, key = split_s3_uri(_text(url, "ModelDataUrl"))
        yield from _read_object(job, bucket, key, f"ModelDataUrl {url}")
    submit = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
    if isinstance(submit, str) and submit.startswith("s3://"):
        bucket, key = split_s3_uri(submit)
        yield from _read_object(job, bucket, key, f"SAGEMAKER_SUBMIT_DIRECTORY {submit}")


def _capture(job: Job) -> Iterator[Access]:
    config = _dig(job.request, "EndpointConfig", "DataCaptureConfig")
    if not config or config.get("EnableCapture") is False:
        return
    uri = _text(config.get("DestinationS3Uri"), "DataCaptureConfig.DestinationS3Uri")
    variants = _dig(job.request, "EndpointConfig", "ProductionVariants") or [{}]
    for variant in variants:
        name = variant.get("VariantName", "AllTraffic")
        yield from _write(
            job,
            uri,
            f"{job.name}/{name}/2026/01/01/00/capture.jsonl",
            config.get("KmsKeyId"),
            f"DataCaptureConfig.DestinationS3Uri {uri}",
        )


_JOBS = ("Processing", "Training", "Tuning")
_API = "https://docs.aws.amazon.com/sagemaker/latest/APIReference"
_DG = "https://docs.aws.amazon.com/sagemaker/latest/dg"

RULES: tuple[Rule, ...] = (
    Rule(
        "processing-inputs",
        ("Processing",),
        "ProcessingInputs[].S3Input (S3Prefix)",
        ("s3:ListBucket", "s3:GetObject", "kms:Decrypt"),
        "the input's bucket (s3:prefix = the key prefix), then each object under it",
        f"{_DG}/sagemaker-roles.html#sagemaker-roles-createprocessingjob-perms",
        _processing_inputs,
    ),
    Rule(
        "processing-outputs",
        ("Processing",),
        "ProcessingOutputConfig.Outputs[].S3Output, ProcessingOutputConfig.KmsKeyId",
        ("s3:PutObject", "kms:GenerateDataKey"),
        "the objects under each output URI; the output KMS key",
        f"{_API}/API_ProcessingOutputConfig.html",
        _processing_outputs,
    ),
    Rule(
        "training-channels",
        ("Training", "Tuning"),
        "InputDataConfig[].DataSource.S3DataSource (S3Prefix)",
        ("s3:ListBucket", "s3:GetObject", "kms:Decrypt"),
        "the channel's bucket (s3:prefix = the key prefix), then each object under it",
        f"{_DG}/sagemaker-roles.html#sagemaker-roles-createtrainingjob-perms",
        _training_channels,
    ),
    Rule(
        "training-output",
        ("Training", "Tuning"),
        "OutputDataConfig.S3OutputPath, OutputDataConfig.KmsKeyId",
        ("s3:PutObject", "kms:GenerateDataKey"),
        "<S3OutputPath>/<training job name>/output/model.tar.gz and output.tar.gz",
        f"{_API}/API_OutputDataConfig.html",
        _training_output,
    ),
    Rule(
        "checkpoints",
        ("Training", "Tuning"),
        "CheckpointConfig.S3Uri",
        ("s3:ListBucket", "s3:GetObject", "s3:PutObject"),
        "the checkpoint prefix: listed and read at start, written during the job",
        f"{_DG}/model-checkpoints.html",
        _checkpoints,
    ),
    Rule(
        "volume-key",
        _JOBS,
        "ClusterConfig/ResourceConfig.VolumeKmsKeyId",
        ("kms:CreateGrant",),
        "the volume key, with kms:GrantIsForAWSResource",
        f"{_API}/API_ResourceConfig.html",
        _volume_key,
    ),
    Rule(
        "image-pull",
        KINDS,
        "AppSpecification.ImageUri, AlgorithmSpecification.TrainingImage, container Image",
        (
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        ),
        "* for the token; the image's repository",
        f"{_DG}/sagemaker-roles.html#sagemaker-roles-createtrainingjob-perms",
        _image_pull,
    ),
    Rule(
        "logs",
        KINDS,
        "the job (or endpoint) name",
        ("logs:CreateLogStream", "logs:PutLogEvents"),
        "/aws/sagemaker/<Kind>Jobs (Endpoints/<name>), the job's log stream",
        f"{_DG}/logging-cloudwatch.html",
        _logs,
    ),
    Rule(
        "model-package",
        ("Endpoint",),
        "Model.Containers[].ModelPackageName",
        ("sagemaker:DescribeModelPackage",),
        "the model package version",
        f"{_DG}/sagemaker-roles.html#sagemaker-roles-createmodel-perms",
        _model_package,
    ),
    Rule(
        "model-artifacts",
        ("Endpoint",),
        "the container's ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY",
        ("s3:GetObject", "kms:Decrypt"),
        "the model artifact and the inference code archive",
        f"{_DG}/sagemaker-roles.html#sagemaker-roles-createmodel-perms",
        _model_artifacts,
    ),
    Rule(
        "data-capture",
        ("Endpoint",),
        "EndpointConfig.DataCaptureConfig.DestinationS3Uri, DataCaptureConfig.KmsKeyId",
        ("s3:PutObject", "kms:GenerateDataKey"),
        "<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl",
        f"{_DG}/model-monitor-data-capture-endpoint.html",
        _capture,
    ),
)


def request_role(kind: str, request: Mapping[str, Any]) -> str:
    """The name of the role SageMaker uses for the request."""
    if kind == "Tuning":
        arn = _dig(request, "TrainingJobDefinition", "RoleArn")
    elif kind == "Endpoint":
        arn = _dig(request, "Model", "ExecutionRoleArn")
    elif kind in ("Processing", "Training"):
        arn = request.get("RoleArn")
    else:
        raise ValueError(f"unknown request kind {kind!r}: one of {', '.join(KINDS)}")
    return role_name(_text(arn, f"the {kind} request's role ARN"))


def accesses_for_request(
    kind: str, request: Mapping[str, Any], stage: Stage, *, name: str = "job"
) -> list[Access]:
    """The accesses SageMaker makes with the request's role, rule by rule.

    `kind` is the pipeline step type (Processing, Training, Tuning) or Endpoint; `name`
    the job's name (a tuning trial's for Tuning; the EndpointName for Endpoint).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}: one of {', '.join(KINDS)}")
    job = Job(kind, request, name, stage)
    accesses: list[Access] = []
    for rule in RULES:
        if kind in rule.kinds:
            accesses.extend(rule.derive(job))
    return accesses
