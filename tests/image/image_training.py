"""The image's training module in script mode, for the image lane.

The SageMaker XGBoost image sets SAGEMAKER_TRAINING_MODULE to its own package's training
entry, which, given a user entry point (`sagemaker_program`), hands the submit directory to
sagemaker-containers' module runner with the job's arguments and environment, leaving errors
to the toolkit's trainer (capture_error=False). This module makes that same call; the
trainer around it (`train`, sagemaker_containers.cli.train) is the toolkit's own.
"""

from __future__ import annotations

from sagemaker_containers.beta import framework


def main() -> None:
    env = framework.training_env()  # reads /opt/ml/input/config/*.json
    framework.modules.run_module(
        env.module_dir,  # sagemaker_submit_directory: extracted to /opt/ml/code, pip-installed
        env.to_cmd_args(),  # sorted --name value, sagemaker_* left out
        env.to_env_vars(),  # the SM_* variables
        env.module_name,  # sagemaker_program without .py
        capture_error=False,
    )
