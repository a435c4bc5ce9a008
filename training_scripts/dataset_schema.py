"""The dataset schema: which columns a tabular binary-classification dataset has
and what each one means.

This module runs inside the SageMaker XGBoost image as well as here, so it uses
only the standard library and PyYAML (both in the image). Every error names the
file, the key and the reason.

A schema file looks like::

    name: loan-default
    target: {column: loan_status, positive_value: bad, negative_value: good}
    id: {column: application_id}
    features:
      numerical:
        - {name: loan_amount, min: 500, max: 40000, required: true}
        - annual_income              # a bare name is an optional, unbounded number
      categorical:
        - {name: grade, values: [A, B, C, D, E, F, G]}
    pii:
      - {column: email, action: drop}
      - {column: national_id, action: hash}
    sensitive: [age_band]            # used for fairness reports, never as features
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PII_ACTIONS = ("drop", "hash")


class SchemaError(ValueError):
    """A schema file is wrong; the message names file, key and reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class NumericalFeature:
    name: str
    min: float | None = None
    max: float | None = None
    required: bool = False
    integer: bool = False


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    values: tuple[str, ...] | None = None  # allowed values; None means any
    required: bool = False


@dataclass(frozen=True)
class PiiColumn:
    column: str
    action: str  # "drop" or "hash"


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    target_column: str
    positive_value: str
    negative_value: str | None
    numerical: tuple[NumericalFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    id_column: str | None = None
    pii: tuple[PiiColumn, ...] = ()
    sensitive: tuple[str, ...] = ()
    source: str = "<schema>"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def feature_names(self) -> list[str]:
        """Model input columns in training order: numerical, then categorical."""
        return [f.name for f in self.numerical] + [f.name for f in self.categorical]

    @property
    def pii_columns(self) -> list[str]:
        return [p.column for p in self.pii]

    def is_positive(self, label: object) -> bool:
        return normalise_label(label) == self.positive_value

    def to_dict(self) -> dict[str, Any]:
        """The schema as plain data, in the same shape as the file."""
        out: dict[str, Any] = {
            "name": self.name,
            "target": {"column": self.target_column, "positive_value": self.positive_value},
            "features": {
                "numerical": [_drop_none(vars(f)) for f in self.numerical],
                "categorical": [
                    _drop_none({**vars(f), "values": list(f.values) if f.values else None})
                    for f in self.categorical
                ],
            },
            "pii": [vars(p) for p in self.pii],
            "sensitive": list(self.sensitive),
        }
        if self.negative_value is not None:
            out["target"]["negative_value"] = self.negative_value
        if self.id_column:
            out["id"] = {"column": self.id_column}
        return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v is not False}


def normalise_label(value: object) -> str:
    """Labels compare as text, so `1`, `1.0` and `"1"` are the same label."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        as_float = float(text)
    except ValueError:
        return text
    if math.isfinite(as_float) and as_float.is_integer():
        return str(int(as_float))
    return text


def load_schema(path: str | Path) -> DatasetSchema:
    """Read and check a schema file; raises SchemaError naming file, key, reason."""
    import yaml  # in the SageMaker image; imported here so the module imports without it

    path = Path(path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(source, "(file)", "file not found") from None
    except yaml.YAMLError as exc:
        raise SchemaError(source, "(file)", f"not valid YAML: {exc}") from None
    return parse_schema(raw, source)


def parse_schema(raw: Any, source: str = "<schema>") -> DatasetSchema:
    """Check plain data (as read from YAML or JSON) and build a DatasetSchema."""
    if not isinstance(raw, dict):
        raise SchemaError(source, "(root)", "must be a mapping")
    known = {"name", "target", "id", "features", "pii", "sensitive", "description"}
    extra = {k: v for k, v in raw.items() if k not in known}

    target = _mapping(raw.get("target"), source, "target")
    target_column = _text(target.get("column"), source, "target.column")
    if "positive_value" not in target:
        raise SchemaError(source, "target.positive_value", "is required")
    positive = normalise_label(target["positive_value"])
    negative = target.get("negative_value")
    negative = normalise_label(negative) if negative is not None else None
    if negative is not None and negative == positive:
        raise SchemaError(source, "target.negative_value", "must differ from positive_value")

    id_column = None
    if raw.get("id") is not None:
        id_raw = raw["id"]
        id_column = (
            _text(id_raw, source, "id")
            if isinstance(id_raw, str)
            else _text(_mapping(id_raw, source, "id").get("column"), source, "id.column")
        )

    features = _mapping(raw.get("features"), source, "features")
    numerical = tuple(
        _numerical(item, source, f"features.numerical[{i}]")
        for i, item in enumerate(_list(features.get("numerical", []), source, "features.numerical"))
    )
    categorical = tuple(
        _categorical(item, source, f"features.categorical[{i}]")
        for i, item in enumerate(
            _list(features.get("categorical", []), source, "features.categorical")
        )
    )
    if not numerical and not categorical:
        raise SchemaError(source, "features", "names no feature")

    pii = tuple(
        _pii(item, source, f"pii[{i}]")
        for i, item in enumerate(_list(raw.get("pii", []) or [], source, "pii"))
    )
    sensitive = tuple(
        _text(s, source, f"sensitive[{i}]")
        for i, s in enumerate(_list(raw.get("sensitive", []) or [], source, "sensitive"))
    )

    schema = DatasetSchema(
        name=str(raw.get("name", Path(source).stem)),
        target_column=target_column,
        positive_value=positive,
        negative_value=negative,
        numerical=numerical,
        categorical=categorical,
        id_column=id_column,
        pii=pii,
        sensitive=sensitive,
        source=source,
        extra=extra,
    )
    _check_disjoint(schema)
    return schema


def _check_disjoint(schema: DatasetSchema) -> None:
    source = schema.source
    seen: dict[str, str] = {}
    for kind, names in (
        ("features", schema.feature_names),
        ("pii", schema.pii_columns),
    ):
        for name in names:
            if name in seen:
                raise SchemaError(source, kind, f"column {name!r} is listed twice ({seen[name]})")
            seen[name] = kind
    if schema.target_column in seen:
        raise SchemaError(
            source, "target.column", f"{schema.target_column!r} is also a feature or PII column"
        )
    pii = set(schema.pii_columns)
    if schema.id_column and schema.id_column in schema.feature_names:
        raise SchemaError(source, "id.column", f"{schema.id_column!r} must not be a feature")
    for name in schema.sensitive:
        if name in pii:
            raise SchemaError(source, "sensitive", f"{name!r} is PII; it cannot be reported on")
        if name in schema.feature_names or name == schema.target_column:
            raise SchemaError(
                source,
                "sensitive",
                f"{name!r} is a feature or the target; a sensitive "
                "attribute is only reported on, never learned from",
            )


def _mapping(value: Any, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(source, key, "is required and must be a mapping")
    return value


def _list(value: Any, source: str, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError(source, key, "must be a list")
    return value


def _text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(source, key, "must be a non-empty string")
    return value.strip()


def _number(value: Any, source: str, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(source, key, f"must be a number, got {value!r}")
    return float(value)


def _bool(value: Any, source: str, key: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SchemaError(source, key, f"must be true or false, got {value!r}")
    return value


def _numerical(item: Any, source: str, key: str) -> NumericalFeature:
    if isinstance(item, str):
        return NumericalFeature(name=_text(item, source, key))
    item = _mapping(item, source, key)
    _only(item, {"name", "min", "max", "required", "integer", "description"}, source, key)
    lo = _number(item.get("min"), source, f"{key}.min")
    hi = _number(item.get("max"), source, f"{key}.max")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaError(source, f"{key}.min", f"min {lo} is greater than max {hi}")
    return NumericalFeature(
        name=_text(item.get("name"), source, f"{key}.name"),
        min=lo,
        max=hi,
        required=_bool(item.get("required"), source, f"{key}.required"),
        integer=_bool(item.get("integer"), source, f"{key}.integer"),
    )


def _categorical(item: Any, source: str, key: str) -> CategoricalFeature:
    if isinstance(item, str):
        return CategoricalFeature(name=_text(item, source, key))
    item = _mapping(item, source, key)
    _only(item, {"name", "values", "required", "description"}, source, key)
    values = item.get("values")
    if values is not None:
        values = tuple(str(v) for v in _list(values, source, f"{key}.values"))
        if not values:
            raise SchemaError(source, f"{key}.values", "must not be empty")
        if len(set(values)) != len(values):
            raise SchemaError(source, f"{key}.values", "has duplicates")
    return CategoricalFeature(
        name=_text(item.get("name"), source, f"{key}.name"),
        values=values,
        required=_bool(item.get("required"), source, f"{key}.required"),
    )


def _pii(item: Any, source: str, key: str) -> PiiColumn:
    if isinstance(item, str):
        return PiiColumn(column=_text(item, source, key), action="drop")
    item = _mapping(item, source, key)
    _only(item, {"column", "action"}, source, key)
    action = item.get("action", "drop")
    if action not in PII_ACTIONS:
        raise SchemaError(source, f"{key}.action", f"must be one of {PII_ACTIONS}, got {action!r}")
    return PiiColumn(column=_text(item.get("column"), source, f"{key}.column"), action=action)


def _only(item: dict[str, Any], allowed: set[str], source: str, key: str) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise SchemaError(source, key, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
