"""A tiny hand-made loan book for preprocess.py's tests: its schema, its raw header and
seeded rows (grade drives the default), written as the raw CSV files the job reads.

Import it as `tiny_loans` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SCHEMA = """
name: tiny-loans
target: {column: status, positive_value: bad, negative_value: good}
id: {column: app_id}
features:
  numerical:
    - {name: amount, min: 100, max: 50000, required: true}
    - {name: income, min: 0}
    - {name: term, min: 12, max: 60, integer: true, required: true}
  categorical:
    - {name: grade, values: [A, B, C, D], required: true}
    - purpose
pii:
  - {column: email, action: drop}
  - {column: ssn, action: hash}
sensitive: [age_band]
"""

HEADER = [
    "app_id",
    "email",
    "ssn",
    "amount",
    "income",
    "term",
    "grade",
    "purpose",
    "age_band",
    "status",
]


def make_rows(n: int, seed: int = 0, start: int = 0) -> list[list[str]]:
    """`n` raw rows in HEADER's order, application ids from `start`; about 10 % of incomes
    are missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n):
        grade = "ABCD"[rng.integers(4)]
        risk = "ABCD".index(grade) * 0.8 + rng.normal()
        income = "" if rng.random() < 0.1 else f"{rng.lognormal(10.5, 0.4):.2f}"
        rows.append(
            [
                f"APP-{i:05d}",
                f"person{i}@example.com",
                f"123-45-{i:04d}",
                f"{rng.integers(1000, 30000)}",
                income,
                str(rng.choice([36, 60])),
                grade,
                str(rng.choice(["car", "home", "debt", "other"])),
                str(rng.choice(["18-25", "26-40"])),
                "bad" if risk > 2.0 else "good",
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_schema(directory: Path, text: str = SCHEMA) -> Path:
    path = directory / "schema.yaml"
    path.write_text(text)
    return path
