"""The local AWS endpoint, through boto3 as the job scripts call it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from boostline.local.local_aws import LocalAwsEndpoint, LocalS3, TuningJobRecord


@pytest.fixture
def endpoint(tmp_path: Path):
    bucket = tmp_path / "capture"
    (bucket / "capture" / "ep" / "2030" / "01").mkdir(parents=True)
    (bucket / "capture" / "ep" / "2030" / "01" / "a.jsonl").write_text("{}\n")
    (bucket / "other.txt").write_text("x")
    s3 = LocalS3({"cap": bucket})
    packages = {"arn:aws:sagemaker:eu-west-1:1:model-package/g/1": {"ModelPackageVersion": 1}}

    def describe(arn: str) -> dict:
        if arn not in packages:
            raise LookupError(f"no {arn}")
        return packages[arn]

    with LocalAwsEndpoint(s3, {}, "eu-west-1", describe_package=describe) as served:
        yield served


def _client(endpoint: LocalAwsEndpoint, service: str):
    env = endpoint.env()
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_list_objects_names_only_the_prefix(endpoint) -> None:
    s3 = _client(endpoint, "s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="cap", Prefix="capture/ep/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert keys == ["capture/ep/2030/01/a.jsonl"]
    assert ("s3:ListBucket", "arn:aws:s3:::cap", {"s3:prefix": "capture/ep/"}) in endpoint.requests


def test_metrics_and_events_are_recorded_for_the_caller(endpoint) -> None:
    _client(endpoint, "cloudwatch").put_metric_data(
        Namespace="Boostline/Monitoring", MetricData=[{"MetricName": "m", "Value": 2.0}]
    )
    answer = _client(endpoint, "events").put_events(
        Entries=[{"Source": "s", "DetailType": "d", "Detail": json.dumps({"a": 1})}]
    )
    assert answer["FailedEntryCount"] == 0
    assert endpoint.metrics[0]["Namespace"] == "Boostline/Monitoring"
    assert endpoint.metrics[0]["MetricData"][0]["Value"] == 2.0
    assert endpoint.events == [{"Source": "s", "DetailType": "d", "Detail": '{"a": 1}'}]
    actions = {action for action, _, _ in endpoint.requests}
    assert {"cloudwatch:PutMetricData", "events:PutEvents"} <= actions


def test_model_packages_are_described_and_unknown_ones_refused(endpoint) -> None:
    sagemaker = _client(endpoint, "sagemaker")
    arn = "arn:aws:sagemaker:eu-west-1:1:model-package/g/1"
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"] == 1
    with pytest.raises(ClientError, match="ValidationException"):
        sagemaker.describe_model_package(ModelPackageName=arn[:-1] + "9")


def test_other_calls_are_refused_by_name(endpoint) -> None:
    with pytest.raises(ClientError) as error:
        _client(endpoint, "sqs").list_queues()
    assert "does not serve" in str(error.value)
    assert any(call.startswith("refused") for call in endpoint.calls)


def _tuning_job(name: str, objectives: list[float | None]) -> TuningJobRecord:
    jobs = []
    for i, value in enumerate(objectives):
        job: dict = {
            "TrainingJobName": f"{name}-{i + 1:03d}",
            "CreationTime": 1_767_225_600.0 + i,
            "TrainingJobStatus": "Completed" if value is not None else "Failed",
            "TunedHyperParameters": {"eta": f"0.{i + 1}", "max_depth": str(3 + i)},
        }
        if value is not None:
            job["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": "validation:auc",
                "Value": value,
            }
        jobs.append(job)
    best = max((j for j in jobs if "FinalHyperParameterTuningJobObjectiveMetric" in j),
               key=lambda j: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])  # fmt: skip
    description = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": 1_767_225_600.0,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize",
                "MetricName": "validation:auc",
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": len(jobs), "MaxParallelTrainingJobs": 1},
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"num_round": "200", "sagemaker_program": "train.py"},
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::1:role/r",
            "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        },
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
        "BestTrainingJob": best,
    }
    return TuningJobRecord(description, jobs)


def test_tuning_jobs_are_described_and_their_trials_listed_page_by_page(endpoint) -> None:
    objectives: list[float | None] = [0.7 + i / 100 for i in range(12)]
    objectives[4] = None
    endpoint.add_tuning_job(_tuning_job("run1-tune", objectives))
    sagemaker = _client(endpoint, "sagemaker")
    described = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="run1-tune"
    )
    assert described["BestTrainingJob"]["TrainingJobName"] == "run1-tune-012"
    assert described["CreationTime"].year == 2026  # a timestamp, parsed by boto3
    first = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="run1-tune", MaxResults=5
    )
    assert len(first["TrainingJobSummaries"]) == 5 and first["NextToken"]
    pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName="run1-tune", PaginationConfig={"PageSize": 5}
    )
    names = [s["TrainingJobName"] for page in pages for s in page["TrainingJobSummaries"]]
    assert names == [f"run1-tune-{i:03d}" for i in range(1, 13)]
    arn = "arn:aws:sagemaker:eu-west-1:{account}:hyper-parameter-tuning-job/run1-tune"
    assert ("sagemaker:DescribeHyperParameterTuningJob", arn, {}) in endpoint.requests
    assert ("sagemaker:ListTrainingJobsForHyperParameterTuningJob", arn, {}) in endpoint.requests
    with pytest.raises(ClientError, match="ResourceNotFound"):
        sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="other")


def test_the_evaluation_reads_the_trials_best_first(endpoint, monkeypatch) -> None:
    from training_scripts import evaluate

    endpoint.add_tuning_job(_tuning_job("run2-tune", [0.71, None, 0.75, 0.73]))
    for key, value in endpoint.env().items():
        monkeypatch.setenv(key, value)
    record = evaluate.tuning_record("run2-tune")
    assert record["status"] == "recorded"
    assert [t["objective"] for t in record["trials"]] == [0.75, 0.73, 0.71, None]
    assert record["trials"][-1]["status"] == "Failed"
    assert record["best_training_job"] == "run2-tune-003"
    assert record["best_hyperparameters"] == {"eta": "0.3", "max_depth": "5"}
    assert record["static_hyperparameters"] == {"num_round": "200"}
    assert record["objective"] == {"metric": "validation:auc", "type": "Maximize"}
    missing = evaluate.tuning_record("no-such-job")
    assert missing["status"] == "not recorded" and "ResourceNotFound" in missing["reason"]


def test_a_running_endpoint_is_found_by_its_url(endpoint) -> None:
    assert LocalAwsEndpoint.serving(endpoint.url) is endpoint
    assert LocalAwsEndpoint.serving("http://127.0.0.1:1") is None
    assert LocalAwsEndpoint.serving(None) is None
