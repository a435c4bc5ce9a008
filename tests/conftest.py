"""Shared test helpers. Small real models: generate -> preprocess -> xgboost.train, laid out as
train.py lays out a model directory (`xgboost-model` + `boostline/feature_manifest.json`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import preprocess


@dataclass(frozen=True)
class Book:
    root: Path
    raw: Path  # the generated CSV folder
    prep: Path  # preprocess outputs
    train: np.ndarray  # the first training shard: label, then features

    @property
    def manifest(self) -> Path:
        return self.prep / "manifest" / "feature_manifest.json"

    def test_lines(self) -> list[str]:
        return (self.prep / "test" / "test.csv").read_text().splitlines()

    def booster(self, rounds: int = 20, depth: int = 3) -> bytes:
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": depth, "nthread": 1},
            xgb.DMatrix(self.train[:, 1:], label=self.train[:, 0], nthread=1),
            num_boost_round=rounds,
        )
        return bytes(booster.save_raw("ubj"))

    def model_dir(self, name: str, booster: bytes | None = None) -> Path:
        directory = self.root / name
        (directory / "boostline").mkdir(parents=True)
        (directory / "xgboost-model").write_bytes(
            booster if booster is not None else self.booster()
        )
        shutil.copy(self.manifest, directory / "boostline")
        return directory


def loan_book(root: Path, rows: int = 2000, seed: int = 0) -> Book:
    generate_to_dir(rows, root / "raw", seed=seed)
    preprocess.preprocess(root / "raw", SCHEMA_PATH, root / "prep", salt="x")
    train = np.genfromtxt(root / "prep" / "train" / "train-00000.csv", delimiter=",")
    return Book(root=root, raw=root / "raw", prep=root / "prep", train=train)


@pytest.fixture(scope="session")
def make_loan_book():
    """`make_loan_book(root, rows=2000, seed=0) -> Book`: a small real model's makings."""
    return loan_book
