"""A logistic regression's log-odds as the booster's starting margin: fitted by train.py,
added by inference.py and evaluate.py.

On small books trees alone lose to logistic regression where the signal is mostly linear
(a few hundred rows, or a balance that moves the odds smoothly): each tree spends its
splits approximating a slope. With cross-validation (small data), train.py fits the
evaluation's logistic-regression baseline (baseline.py: the same imputation, scaling,
one-hot codes and C by cross-validation) on train + validation, and the booster learns
what is left: every row starts from the regression's margin (XGBoost's `base_margin`)
instead of the booster's constant base score. If the trees find nothing, the folds stop
at a few rounds and the model is the regression; if they do, it improves on it.

The regression is stored as a plain linear map, so serving needs numpy only:

    boostline/linear_margin.json  {"format": "boostline-linear-margin", "version": 1,
        "intercept": b,
        "features": [{"kind": "number", "column": j, "fill": f, "weight": w,
                      "missing_weight": m, "center": c},
                     {"kind": "category", "column": j, "codes": [...], "weights": [...],
                      "missing_weight": m, "center": c}, ...],
        "fitted_on": {...}}

    margin(x) = b + sum_j (g_j(x_j) - c_j)
    number:   g = w * (x, or f where missing) + m * [x missing]
    category: g = the weight of x's code (0 for a code the fit never saw; m where missing)

Each c_j is g_j's mean over the fitted rows, so g_j - c_j is feature j's exact additive
share of the margin (its SHAP value: the regression is linear in its inputs).

Trap: a booster trained from a base margin ignores its own base score. Scoring it without
this file gives wrong probabilities, so `load` fails loudly on a file it cannot read, and
the booster alone is never served.

Runs in the sagemaker-xgboost 3.0-5 image (Python 3.10; scikit-learn only to fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import model_document
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import model_document

FORMAT = "boostline-linear-margin"
VERSION = 1
LINEAR_MARGIN_FILE = "boostline/linear_margin.json"


class LinearMarginError(ValueError):
    """A linear-margin file this code cannot apply; the model must not be served without it."""


@dataclass(frozen=True)
class LinearMargin:
    intercept: float
    features: list[dict[str, Any]]
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.isfinite(self.intercept):
            raise LinearMarginError("intercept must be a finite number")
        number_cols, number_w, number_fill, number_m = [], [], [], []
        tables: list[tuple[int, np.ndarray, float]] = []
        centre = 0.0
        for i, f in enumerate(self.features):
            if not isinstance(f, dict) or f.get("kind") not in ("number", "category"):
                raise LinearMarginError(f"features[{i}]: kind must be 'number' or 'category'")
            column = f.get("column")
            if not isinstance(column, int) or column < 0:
                raise LinearMarginError(f"features[{i}]: column must be a non-negative integer")
            values = [f.get("missing_weight"), f.get("center")]
            if f["kind"] == "number":
                values += [f.get("fill"), f.get("weight")]
            if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
                raise LinearMarginError(f"features[{i}]: weights must be finite numbers")
            centre += float(f["center"])
            if f["kind"] == "number":
                number_cols.append(column)
                number_w.append(float(f["weight"]))
                number_fill.append(float(f["fill"]))
                number_m.append(float(f["missing_weight"]))
                continue
            codes = np.asarray(f.get("codes", []), dtype=np.float64)
            weights = np.asarray(f.get("weights", []), dtype=np.float64)
            if codes.ndim != 1 or codes.shape != weights.shape or not np.all(np.isfinite(weights)):
                raise LinearMarginError(f"features[{i}]: codes and weights of one length")
            if np.any(codes != np.round(codes)) or np.any(codes < 0):
                raise LinearMarginError(f"features[{i}]: codes must be non-negative integers")
            # a table indexed by code; the last slot (and any code past it) scores 0
            table = np.zeros(int(codes.max(initial=-1)) + 2, dtype=np.float64)
            table[codes.astype(np.int64)] = weights
            tables.append((column, table, float(f["missing_weight"])))
        object.__setattr__(self, "_columns", np.asarray(number_cols, dtype=np.int64))
        object.__setattr__(self, "_weights", np.asarray(number_w, dtype=np.float64))
        object.__setattr__(self, "_fill", np.asarray(number_fill, dtype=np.float64))
        object.__setattr__(self, "_missing", np.asarray(number_m, dtype=np.float64))
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_bias", float(self.intercept) - centre)
        # Every category column's table end to end, each followed by its missing weight and
        # a 0 for a code it never saw: one gather scores them all (a handful of array
        # operations per request, whatever the number of columns).
        flat, offsets, sizes = [], [], []
        for _, table, missing_weight in tables:
            offsets.append(sum(len(t) for t in flat))
            sizes.append(len(table) - 1)
            flat.append(np.concatenate([table[:-1], [missing_weight, 0.0]]))
        object.__setattr__(
            self, "_category_columns", np.asarray([c for c, _, _ in tables], np.intp)
        )
        object.__setattr__(self, "_flat", np.concatenate(flat) if flat else np.zeros(0))
        object.__setattr__(self, "_offsets", np.asarray(offsets, dtype=np.int64))
        object.__setattr__(self, "_sizes", np.asarray(sizes, dtype=np.float64))

    @property
    def width(self) -> int:
        """The fewest feature columns a matrix must have."""
        return 1 + max((int(f["column"]) for f in self.features), default=-1)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The regression's log-odds per row (float64) of the model matrix X."""
        X = np.asarray(X)
        numbers = X[:, self._columns].astype(np.float64)  # type: ignore[attr-defined]
        missing = np.isnan(numbers)
        filled = np.where(missing, self._fill, numbers)  # type: ignore[attr-defined]
        out = filled @ self._weights  # type: ignore[attr-defined]
        out += missing @ self._missing  # type: ignore[attr-defined]
        out += self._bias  # type: ignore[attr-defined]
        if len(self._offsets):  # type: ignore[attr-defined]
            codes = X[:, self._category_columns]  # type: ignore[attr-defined]
            sizes = self._sizes  # type: ignore[attr-defined]
            # NaN compares false: a missing code is not valid, and not `codes == codes`
            valid = (codes >= 0) & (codes < sizes)
            slot = np.where(valid, codes, np.where(codes == codes, sizes + 1, sizes))
            index = slot.astype(np.int64) + self._offsets  # type: ignore[attr-defined]
            out += self._flat[index].sum(axis=1)  # type: ignore[attr-defined]
        return out

    def contributions(self, X: np.ndarray, columns: int) -> tuple[np.ndarray, float]:
        """(per-row share of the margin of each of `columns` features, the constant part):
        the shares and the constant sum to `margin(X)`."""
        X = np.asarray(X)
        out = np.zeros((len(X), columns), dtype=np.float64)
        for f in self.features:
            j = int(f["column"])
            x = X[:, j].astype(np.float64)
            if f["kind"] == "number":
                missing = np.isnan(x)
                g = np.where(missing, f["fill"], x) * f["weight"] + missing * f["missing_weight"]
            else:
                table = next(t for c, t, _ in self._tables if c == j)  # type: ignore[attr-defined]
                g = _lookup(table, float(f["missing_weight"]), x)
            out[:, j] += g - f["center"]
        return out, float(self.intercept)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "intercept": self.intercept,
            "features": self.features,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, document: Any) -> LinearMargin:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise LinearMarginError(f"not a {FORMAT} document")
        if document.get("version") != VERSION:
            raise LinearMarginError(
                f"{FORMAT} version {document.get('version')!r}; this code reads version {VERSION}"
            )
        features = document.get("features")
        intercept = document.get("intercept")
        if not isinstance(features, list) or not isinstance(intercept, (int, float)):
            raise LinearMarginError("needs a number intercept and a list of features")
        return cls(float(intercept), features, dict(document.get("fitted_on") or {}))


def with_shares(contributions: np.ndarray, linear: LinearMargin, X: np.ndarray) -> np.ndarray:
    """XGBoost's SHAP contributions of a booster scored from this base margin (its bias
    column holds the whole margin) with each feature's share of the margin moved from the
    bias to the feature: the row sums, so the margin, stay as they were."""
    out = np.array(contributions, dtype=np.float64)
    shares, _ = linear.contributions(X, out.shape[1] - 1)
    out[:, :-1] += shares
    out[:, -1] -= shares.sum(axis=1)
    return out


def _lookup(table: np.ndarray, missing_weight: float, codes: np.ndarray) -> np.ndarray:
    missing = np.isnan(codes)
    index = np.where(missing, len(table) - 1, codes).astype(np.int64)
    # a negative or unseen code scores as no category at all
    index[(index < 0) | (index >= len(table))] = len(table) - 1
    return np.where(missing, missing_weight, table[index])


def load(model_dir: str | Path) -> LinearMargin | None:
    """The model's linear margin; None for a model trained from its own base score."""
    return model_document.read(
        Path(model_dir) / LINEAR_MARGIN_FILE, LinearMargin.from_json, LinearMarginError
    )


def save(linear: LinearMargin, model_dir: str | Path) -> Path:
    return model_document.write(Path(model_dir) / LINEAR_MARGIN_FILE, linear.to_json())


# ---------------------------------------------------------------------------- fit


def from_baseline(fitted: Any, features: np.ndarray, categorical: list[bool]) -> LinearMargin:
    """The linear map of a fitted baseline.FittedLogistic (its scikit-learn pipeline), with
    each feature's centre taken over `features` (the training rows)."""
    transformer, regression = fitted.model[0], fitted.model[-1]
    coef = regression.coef_[0].astype(np.float64)
    kinds = np.asarray(categorical, dtype=bool)
    numbers, codes = np.flatnonzero(~kinds), np.flatnonzero(kinds)
    out: list[dict[str, Any]] = []
    at = 0  # position in the regression's input columns: the numbers' part, then the codes'
    if len(numbers):
        imputer, scaler = transformer.named_transformers_["numerical"]
        mean, scale = scaler.mean_, scaler.scale_
        indicated = {int(k): i for i, k in enumerate(imputer.indicator_.features_)}
        for k, column in enumerate(numbers):
            i = indicated.get(k)
            m = 0.0 if i is None else coef[at + len(numbers) + i] / scale[len(numbers) + i]
            out.append(
                {
                    "kind": "number",
                    "column": int(column),
                    "fill": float(imputer.statistics_[k]),
                    "weight": float(coef[at + k] / scale[k]),
                    "missing_weight": float(m),
                }
            )
        # the scaler's centring, and the indicators', folds into the intercept below
        width = len(mean)
        shift = float(np.sum(coef[at : at + width] * mean / scale))
        at += width
    else:
        shift = 0.0
    if len(codes):
        encoder = transformer.named_transformers_["categorical"][-1]
        for k, column in enumerate(codes):
            categories = encoder.categories_[k].astype(np.float64)
            weights = coef[at : at + len(categories)]
            at += len(categories)
            seen = categories >= 0  # -1 stands for missing in the baseline's imputer
            missing = weights[~seen]
            out.append(
                {
                    "kind": "category",
                    "column": int(column),
                    "codes": [int(c) for c in categories[seen]],
                    "weights": [float(w) for w in weights[seen]],
                    "missing_weight": float(missing[0]) if len(missing) else 0.0,
                }
            )
    intercept = float(regression.intercept_[0]) - shift
    for f in out:
        f["center"] = 0.0
    raw = LinearMargin(intercept, out)
    shares, _ = raw.contributions(features, features.shape[1])
    for f in out:
        f["center"] = float(np.mean(shares[:, f["column"]]))
    intercept += sum(f["center"] for f in out)
    return LinearMargin(
        intercept, out, {"rows": int(fitted.rows), "C": float(fitted.C), "method": "logistic"}
    )
