"""The dataset schema: every mistake names the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from boostline.data.generator import SCHEMA_PATH
from training_scripts.dataset_schema import SchemaError, load_schema, normalise_label, parse_schema

GOOD = {
    "target": {"column": "y", "positive_value": "bad"},
    "features": {"numerical": ["a", {"name": "b", "min": 0, "max": 10}], "categorical": ["c"]},
    "pii": [{"column": "email", "action": "drop"}],
    "sensitive": ["age_band"],
}


def test_the_shipped_schema_loads() -> None:
    schema = load_schema(SCHEMA_PATH)
    assert schema.target_column == "loan_status" and schema.positive_value == "bad"
    assert "age_band" in schema.sensitive and "age_band" not in schema.feature_names


def test_a_good_schema_parses() -> None:
    schema = parse_schema(GOOD, "s.yaml")
    assert schema.feature_names == ["a", "b", "c"]
    assert schema.numerical[1].max == 10


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (lambda d: d.pop("target"), "target", "is required"),
        (lambda d: d["target"].pop("positive_value"), "target.positive_value", "is required"),
        (
            lambda d: d["features"].update(numerical=[{"name": "b", "min": 5, "max": 1}]),
            "features.numerical[0].min",
            "greater than max",
        ),
        (
            lambda d: d["features"].update(numerical=[{"name": "b", "maximum": 1}]),
            "features.numerical[0]",
            "unknown key",
        ),
        (
            lambda d: d["features"].update(categorical=[{"name": "c", "values": []}]),
            "features.categorical[0].values",
            "must not be empty",
        ),
        (
            lambda d: d.update(pii=[{"column": "email", "action": "encrypt"}]),
            "pii[0].action",
            "must be one of",
        ),
        (lambda d: d.update(sensitive=["a"]), "sensitive", "never learned from"),
        (lambda d: d.update(sensitive=["email"]), "sensitive", "is PII"),
        (lambda d: d["features"].update(categorical=["a"]), "features", "listed twice"),
        (
            lambda d: d["features"].update(numerical=[], categorical=[]),
            "features",
            "names no feature",
        ),
    ],
)
def test_mistakes_name_file_key_and_reason(change, key: str, reason: str) -> None:
    import copy

    raw = copy.deepcopy(GOOD)
    change(raw)
    with pytest.raises(SchemaError) as error:
        parse_schema(raw, "s.yaml")
    assert error.value.key == key
    assert reason in error.value.reason
    assert str(error.value).startswith("s.yaml: ")


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="file not found"):
        load_schema(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: [unclosed")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_schema(bad)


def test_labels_compare_as_text() -> None:
    assert normalise_label(1) == normalise_label("1") == normalise_label(1.0) == "1"
    assert normalise_label(" bad ") == "bad"
