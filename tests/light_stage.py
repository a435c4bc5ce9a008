"""The shipped config with light training, and its dev stage's assembly: for the pipeline
runs whose subject is not the model (a failure path, a host count, a rollback).

One tree per boosting round and three folds: the failure-path tests of
test_pipeline_executor (5,000 rows, 2 trials) took 9-12 s each with these against 16-20 s
with the shipped four trees and five folds. The shipped training runs in the demo fixture
and in test_pipeline_executor's `executed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from boostline.config import BoostlineConfig, load_config
from boostline.local.assembly import Assembly, stage_assembly

LIGHT_TRAINING = {"cv_parallel_trees": 1, "cv_folds": 3}


@dataclass(frozen=True)
class Light:
    file: Path  # the config file, for the CLI's --config
    config: BoostlineConfig
    assembly: Assembly  # its dev stage


def light_stage(root: Path) -> Light:
    """The light config written under `root`, and its dev assembly synthesized there."""
    shipped = load_config()
    raw = yaml.safe_load(shipped.source.read_text(encoding="utf-8"))
    raw["dataset_schema"] = str(shipped.schema_path())
    raw["training"]["hyperparameters"].update(LIGHT_TRAINING)
    file = root / "boostline.yaml"
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    config = load_config(file)
    return Light(file, config, stage_assembly(root, config, "dev"))
