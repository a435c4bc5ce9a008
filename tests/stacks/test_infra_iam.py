"""IAM: one role per component, least privilege, no managed full-access policies."""

from __future__ import annotations

import json

STACKS = ("Storage", "Pipeline")
# Actions that have no resource-level permissions in IAM, so "*" is the only choice.
RESOURCELESS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "sagemaker:ListModelPackages",  # the Lambdas find the newest Approved version
}


def _statements(synth):
    for stack in synth.templates:
        for name, res in synth.template(stack)["Resources"].items():
            if res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
                for statement in res["Properties"]["PolicyDocument"]["Statement"]:
                    yield stack, name, statement


def _listify(value):
    return value if isinstance(value, list) else [value]


def _role_policies(synth, stack: str = "Pipeline") -> dict[str, list[dict]]:
    """Role name -> its statements (our roles have fixed names)."""
    resources = synth.template(stack)["Resources"]
    names = {
        logical: res["Properties"]["RoleName"]
        for logical, res in resources.items()
        if res["Type"] == "AWS::IAM::Role"
    }
    out: dict[str, list[dict]] = {}
    for res in resources.values():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            for role in res["Properties"]["Roles"]:
                out.setdefault(names[role["Ref"]], []).extend(
                    res["Properties"]["PolicyDocument"]["Statement"]
                )
    return out


def test_one_role_per_component(any_synth):
    roles = {
        r["Properties"]["RoleName"]
        for r in any_synth.resources("Pipeline", "AWS::IAM::Role").values()
    }
    prefix = f"boostline-{any_synth.stage}"
    assert roles == {f"{prefix}-{c}" for c in ("preprocess", "training", "evaluate", "pipeline")}


def test_roles_trust_sagemaker_for_this_account_only(any_synth):
    for role in any_synth.resources("Pipeline", "AWS::IAM::Role").values():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        }


def test_no_aws_managed_policies_and_no_inline_policies_on_our_roles(any_synth):
    text = json.dumps(any_synth.templates)
    assert "AmazonSageMakerFullAccess" not in text
    assert "FullAccess" not in text
    for role in any_synth.resources("Pipeline", "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]
        assert "Policies" not in role["Properties"]
    assert not any_synth.resources("Pipeline", "AWS::IAM::Policy")


def test_no_wildcard_actions_and_star_resources_only_where_iam_has_no_arn(any_synth):
    for stack, name, statement in _statements(any_synth):
        actions = _listify(statement["Action"])
        for action in actions:
            assert action != "*" and not action.endswith(":*"), (stack, name, action)
        if "*" in _listify(statement["Resource"]):
            assert set(actions) <= RESOURCELESS, (stack, name, actions)


def test_s3_access_is_scoped_to_named_buckets_and_prefixes(dev):
    policies = _role_policies(dev)

    def s3_resources(role: str, action: str) -> list[str]:
        found = []
        for statement in policies[role]:
            if action in _listify(statement["Action"]):
                found += [json.dumps(r) for r in _listify(statement["Resource"])]
        return found

    preprocess = s3_resources("boostline-dev-preprocess", "s3:PutObject")
    assert len(preprocess) == 1 and "boostline-dev-processed-" in preprocess[0]
    assert preprocess[0].endswith('/runs/*"]]}')
    training_writes = s3_resources("boostline-dev-training", "s3:PutObject")
    assert len(training_writes) == 2
    assert all("boostline-dev-artifacts-" in r for r in training_writes)
    assert {r.rsplit("/", 2)[-2] for r in training_writes} == {"models", "checkpoints"}
    # Only preprocessing reads raw data; only the pipeline reads evaluation.json.
    for role, statements in policies.items():
        text = json.dumps(statements)
        assert ("boostline-dev-raw-" in text) == (role == "boostline-dev-preprocess"), role
    (evaluation,) = s3_resources("boostline-dev-pipeline", "s3:GetObject")
    assert "/runs/*/evaluation/*" in evaluation


def test_pipeline_role_passes_only_the_job_roles_to_sagemaker(any_synth):
    statements = _role_policies(any_synth)[f"boostline-{any_synth.stage}-pipeline"]
    (passrole,) = [s for s in statements if "iam:PassRole" in _listify(s["Action"])]
    assert passrole["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert len(passrole["Resource"]) == 3
    registers = [s for s in statements if "sagemaker:CreateModelPackage" in _listify(s["Action"])]
    (register,) = registers
    text = json.dumps(register["Resource"])
    assert f"model-package/boostline-{any_synth.stage}-models/*" in text


def test_key_use_is_limited_to_the_stage_key(any_synth):
    for _, _, statement in _statements(any_synth):
        if any(a.startswith("kms:") for a in _listify(statement["Action"])):
            (resource,) = _listify(statement["Resource"])
            assert (
                resource == {"Fn::ImportValue": resource.get("Fn::ImportValue")}
                or "Fn::GetAtt" in resource
            )


def test_salt_secret_is_readable_by_preprocessing_only(any_synth):
    for role, statements in _role_policies(any_synth).items():
        reads = [s for s in statements if "secretsmanager:GetSecretValue" in _listify(s["Action"])]
        assert bool(reads) == role.endswith("-preprocess"), role


def test_vpc_mode_lets_jobs_attach_to_named_subnets_only(prod_vpc, dev):
    def network_statements(synth):
        return [
            s
            for statements in _role_policies(synth).values()
            for s in statements
            if "ec2:CreateNetworkInterface" in _listify(s["Action"])
        ]

    assert not network_statements(dev)
    statements = network_statements(prod_vpc)
    assert len(statements) == 3  # preprocess, training, evaluate
    for statement in statements:
        text = json.dumps(statement["Resource"])
        assert text.count(":subnet/") == 2 and ":security-group/" in text


def _asset_inputs_by_role(synth, stack: str) -> dict[str, set[str]]:
    """Role name -> the CDK asset keys the stack's pipeline steps receive as S3Prefix inputs."""
    found: dict[str, set[str]] = {}
    for pipeline in synth.resources(stack, "AWS::SageMaker::Pipeline").values():
        _walk_pipeline(synth, stack, pipeline, found)
    return found


def _walk_pipeline(synth, stack: str, pipeline: dict, found: dict[str, set[str]]) -> None:
    body, variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    role_names = {
        f"${{{placeholder}}}": name
        for placeholder, ref in variables.items()
        for logical, res in synth.template(stack)["Resources"].items()
        if ref == {"Ref": logical} and res["Type"] == "AWS::IAM::Role"
        for name in [res["Properties"]["RoleName"]]
    }

    def walk(step: dict) -> None:
        args = step.get("Arguments", {})
        for inner in args.get("IfSteps", []) + args.get("ElseSteps", []):
            walk(inner)
        job = args.get("TrainingJobDefinition", args)
        role = job.get("RoleArn")
        if not isinstance(role, str):
            return
        role_name = role_names[role.rsplit("/", 1)[1]]
        uris = [i["S3Input"] for i in job.get("ProcessingInputs", [])] + [
            c["DataSource"]["S3DataSource"] for c in job.get("InputDataConfig", [])
        ]
        for uri in uris:
            assert uri["S3DataType"] == "S3Prefix"
            if isinstance(uri["S3Uri"], str) and uri["S3Uri"].startswith("s3://${AssetBucket}/"):
                key = uri["S3Uri"].removeprefix("s3://${AssetBucket}/")
                found.setdefault(role_name, set()).add(key)

    for step in json.loads(body)["Steps"]:
        walk(step)


def test_every_asset_prefix_input_can_be_listed_and_read_by_its_role(any_synth):
    # SageMaker lists an S3Prefix input before it downloads it: GetObject alone fails
    # the job at its first step.
    stage = any_synth.stage
    inputs = _asset_inputs_by_role(any_synth, "Pipeline")
    assert set(inputs) == {f"boostline-{stage}-{c}" for c in ("preprocess", "training", "evaluate")}
    assert len(inputs[f"boostline-{stage}-preprocess"]) == 2  # code and schema
    _assert_listed_and_read(_role_policies(any_synth), inputs)


def _assert_listed_and_read(policies: dict[str, list[dict]], inputs: dict[str, set[str]]) -> None:
    for role, keys in inputs.items():
        lists = [s for s in policies[role] if "s3:ListBucket" in _listify(s["Action"])]
        asset_lists = [s for s in lists if "cdk-hnb659fds-assets-" in json.dumps(s["Resource"])]
        (listing,) = asset_lists
        # Exactly these keys: the role cannot enumerate the rest of the bootstrap bucket.
        assert set(listing["Condition"]["StringEquals"]["s3:prefix"]) == keys, role
        reads = json.dumps(
            [s["Resource"] for s in policies[role] if "s3:GetObject" in _listify(s["Action"])]
        )
        for key in keys:
            assert f"/{key}" in reads, (role, key)


def test_only_the_evaluation_and_the_pipeline_read_tuning_jobs(any_synth):
    reads = {
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    }
    for role, statements in _role_policies(any_synth).items():
        granted = [s for s in statements if reads & set(_listify(s["Action"]))]
        if role.endswith("-evaluate"):
            # exactly the two reads, on tuning jobs of this account and region only
            (statement,) = granted
            assert sorted(_listify(statement["Action"])) == sorted(reads)
            (resource,) = _listify(statement["Resource"])
            text = json.dumps(resource)
            assert ":hyper-parameter-tuning-job/*" in text and "AWS::AccountId" in text
        elif not role.endswith("-pipeline"):
            assert not granted, role


def test_preprocessing_reads_back_only_the_fit_partials_of_the_processed_bucket(any_synth):
    """The encode step lists and reads the fit step's output (an S3Prefix input), and the
    preprocess role reads nothing else of the processed bucket."""
    import fnmatch

    stage = any_synth.stage
    statements = _role_policies(any_synth)[f"boostline-{stage}-preprocess"]
    processed = f"boostline-{stage}-processed-"
    lists = [
        s
        for s in statements
        if "s3:ListBucket" in _listify(s["Action"]) and processed in json.dumps(s["Resource"])
    ]
    (listing,) = lists
    assert _listify(listing["Action"]) == ["s3:ListBucket"]
    patterns = listing["Condition"]["StringLike"]["s3:prefix"]
    assert sorted(patterns) == ["runs/*/fit", "runs/*/fit/*"]
    reads = [
        s
        for s in statements
        if "s3:GetObject" in _listify(s["Action"]) and processed in json.dumps(s["Resource"])
    ]
    (read,) = reads
    assert _listify(read["Action"]) == ["s3:GetObject"]
    (resource,) = _listify(read["Resource"])
    assert json.dumps(resource).endswith('/runs/*/fit/*"]]}')
    # The prefix the definition's encode step lists is one the condition allows.
    (pipeline,) = any_synth.resources("Pipeline", "AWS::SageMaker::Pipeline").values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][0]
    steps = {s["Name"]: s for s in json.loads(body)["Steps"]}
    (fit_output,) = steps["PreprocessFit"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    values = fit_output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    assert values[0] == "s3:/" and values[1].startswith(processed)
    key = "/".join("abc123" if isinstance(v, dict) else v for v in values[2:])
    assert any(fnmatch.fnmatchcase(key, p) for p in patterns), key
    assert any(fnmatch.fnmatchcase(f"{key}/fit-algo-1.json", p) for p in patterns)
    assert fnmatch.fnmatchcase(f"{key}/fit-algo-1.json", "runs/*/fit/*")
