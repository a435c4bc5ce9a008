"""The batch pipeline's definition: data owners' CSVs scored by the live model.

One Processing step runs training_scripts/batch_score.py in the XGBoost image from the
same source archive as the training pipeline. Written out by hand (a plain
CreateProcessingJob request as the step's arguments, stacks/processing_step.py), so it
is deterministic and needs no SDK; the local runtime executes this same definition.

Parameters: `InputUri` (an S3 prefix of CSVs with their header) and `OutputUri` (the
scores go to `<OutputUri>/<execution id>/`, one CSV per input file, so no run overwrites
another's); `ModelPackageArn` and `DecisionThreshold` default to the live model's, which
the serving stack substitutes from its own parameters, so a plain start scores with the
model in service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pipeline_definition import DEFINITION_VERSION
from .processing_step import (
    OUTPUT_DIR,
    PROCESSING,
    ProcessingJob,
    parameter,
    per_execution,
    processing_step,
    s3_input,
)

STEP = "ScoreBatch"
INPUT_DIR = f"{PROCESSING}/input/data"
SCRIPT = "batch_score.py"


@dataclass(frozen=True)
class BatchJob(ProcessingJob):
    input_uri: str  # the parameters' defaults
    output_uri: str
    model_package: str
    threshold: str


def _step(job: BatchJob) -> dict[str, Any]:
    return processing_step(
        job,
        name=STEP,
        description="Score data owners' CSVs with the live model, ids joined back",
        script=SCRIPT,
        arguments=[
            "--input-dir",
            INPUT_DIR,
            "--output-dir",
            OUTPUT_DIR,
            "--model-package",
            parameter("ModelPackageArn"),
            "--threshold",
            parameter("DecisionThreshold"),
        ],
        inputs=(s3_input("data", parameter("InputUri"), INPUT_DIR),),
        output=("scores", per_execution(parameter("OutputUri"))),
        volume_size_gb=30,
    )


def batch_pipeline_definition(job: BatchJob) -> dict[str, Any]:
    parameters = [
        ("InputUri", job.input_uri),
        ("OutputUri", job.output_uri),
        ("ModelPackageArn", job.model_package),
        ("DecisionThreshold", job.threshold),
    ]
    return {
        "Version": DEFINITION_VERSION,
        "Metadata": {},
        "Parameters": [{"Name": n, "Type": "String", "DefaultValue": v} for n, v in parameters],
        "Steps": [_step(job)],
    }
