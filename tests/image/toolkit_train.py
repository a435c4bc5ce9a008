"""One training instance, started the way the SageMaker XGBoost image starts it.

boostline.local.training_job runs this file as the entry point on each local host, so the
hosts get that runner's /opt/ml layout, channels, tracker port and process handling. Here
the runner's own SM_* variables and arguments are dropped (the toolkit derives them from
/opt/ml/input/config, as in the image) and the toolkit's trainer, `train`
(sagemaker_containers.cli.train), runs on the host's own Python environment with
image_training as SAGEMAKER_TRAINING_MODULE.

Beside the host's directory it leaves `<host>.toolkit-failure`, a copy of the failure file
as the toolkit left it (the local runner writes its own version over the original when
the instance fails), and with BOOSTLINE_LANE_STDERR set, `<host>.stderr`: the instance's
stderr, apart from its stdout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from image_lane import HERE, image_python, toolkit_env

STDERR_ENV = "BOOSTLINE_LANE_STDERR"


def main() -> int:
    base = Path(os.environ["SM_MODEL_DIR"]).parent  # job_dir/<host>, the host's /opt/ml
    python = image_python(base.parent / f"{base.name}-python", [HERE / "image_training.py"])
    env = toolkit_env(base, os.environ, SAGEMAKER_TRAINING_MODULE="image_training:main")
    argv = [str(python), "-m", "sagemaker_containers.cli.train"]
    if os.environ.get(STDERR_ENV):
        with open(base.parent / f"{base.name}.stderr", "wb") as stderr:
            returncode = subprocess.run(argv, env=env, stderr=stderr, check=False).returncode
    else:
        returncode = subprocess.run(argv, env=env, check=False).returncode
    failure = base / "output" / "failure"
    if failure.is_file():
        shutil.copy(failure, base.parent / f"{base.name}.toolkit-failure")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
