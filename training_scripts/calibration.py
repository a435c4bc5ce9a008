"""Calibration of the booster's scores: fitted by train.py, applied by inference.py.

A boosted model's raw P(default) is often over- or under-confident. train.py fits a
monotone map from the raw probability to a calibrated one on rows the final model never
trained on (the out-of-fold predictions of cross-validation; above `cv_max_rows`, the
validation rows of the early-stopped model) and writes it beside the booster:

    boostline/calibration.json   {"format": "boostline-calibration", "version": 1,
                                  "method": "identity" | "platt" | "isotonic",
                                  "params": {...}, "fitted_on": {...}, "selection": {...}}

Methods
    identity  p -> p
    platt     p -> sigmoid(a * logit(p) + b)        params {"a", "b"}
    isotonic  p -> piecewise-linear through knots   params {"x": [...], "y": [...]}
              (x ascending; constant beyond the ends)

`choose` fits each candidate on k-1 folds of the held-out rows and scores it on the k-th
(so isotonic, which always wins on the rows it was fitted on, is judged fairly), keeps the
one with the lowest mean log-loss, and refits it on all the rows. Identity is kept unless
a fitted map lowers the log-loss by at least `MIN_GAIN` (relative).

Runs in the sagemaker-xgboost 3.0-5 image (Python 3.10, numpy only). The same `load` and
`Calibrator.apply` serve the endpoint and the evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script from the source dir (SageMaker) or imported as a package
    import model_document
except ImportError:  # pragma: no cover - exercised when imported as a package
    from training_scripts import model_document

FORMAT = "boostline-calibration"
VERSION = 1
CALIBRATION_FILE = "boostline/calibration.json"
# Headerless `label,probability,booster probability` lines: the held-out rows' calibrated
# and raw scores, for a decision threshold chosen on rows the final model never trained
# on (cross-validated jobs only).
HOLDOUT_FILE = "boostline/holdout_scores.csv"
METHODS = ("identity", "platt", "isotonic")
# A fitted map must beat identity's held-out log-loss by this fraction to be kept.
MIN_GAIN = 0.002
_EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before a logit or a log


class CalibrationError(ValueError):
    """A calibration file this code cannot apply; the model must not be served uncalibrated."""


@dataclass(frozen=True)
class Calibrator:
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibration method {self.method!r}")
        if self.method == "platt":
            a, b = self.params.get("a"), self.params.get("b")
            if not all(isinstance(v, (int, float)) and abs(v) < 700 for v in (a, b)):
                raise CalibrationError("platt calibration needs numbers a and b, |a|, |b| < 700")
        if self.method == "isotonic":
            x = np.asarray(self.params.get("x", []), dtype=np.float64)
            y = np.asarray(self.params.get("y", []), dtype=np.float64)
            if x.ndim != 1 or len(x) == 0 or x.shape != y.shape:
                raise CalibrationError("isotonic calibration needs knots x and y of one length")
            if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                raise CalibrationError("isotonic knots must be finite")
            if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
                raise CalibrationError("isotonic knots must be non-decreasing in x and y")
            if y[0] < 0 or y[-1] > 1:
                raise CalibrationError("isotonic knot values must lie in [0, 1]")
            object.__setattr__(self, "_x", x)
            object.__setattr__(self, "_y", y)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (float64), element by element, any shape."""
        p = np.asarray(probabilities, dtype=np.float64)
        if self.method == "platt":
            # sigmoid(a * logit(q) + b) = 1 / (1 + e^-b * ((1 - q) / q)^a): fewer array
            # operations, which is most of the cost on a single row
            q = np.minimum(np.maximum(p, _EPS), 1.0 - _EPS)
            r = (1.0 - q) / q
            r **= self.params["a"]
            r *= math.exp(-self.params["b"])
            r += 1.0
            return np.reciprocal(r, out=r)
        if self.method == "isotonic":
            return np.interp(p, self._x, self._y)  # type: ignore[attr-defined]
        return p.copy() if p is probabilities else p

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "params": self.params,
            "fitted_on": self.fitted_on,
            "selection": self.selection,
        }

    @classmethod
    def from_json(cls, document: Any) -> Calibrator:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise CalibrationError(f"not a {FORMAT} document")
        if document.get("version") != VERSION:
            raise CalibrationError(
                f"{FORMAT} version {document.get('version')!r}; this code reads version {VERSION}"
            )
        params = document.get("params") or {}
        if not isinstance(params, dict):
            raise CalibrationError("params must be an object")
        return cls(
            method=str(document.get("method")),
            params=params,
            fitted_on=dict(document.get("fitted_on") or {}),
            selection=dict(document.get("selection") or {}),
        )


def load(model_dir: str | Path) -> Calibrator | None:
    """The model's calibrator; None for a model directory without one (an older model)."""
    return model_document.read(
        Path(model_dir) / CALIBRATION_FILE, Calibrator.from_json, CalibrationError
    )


def save(calibrator: Calibrator, model_dir: str | Path) -> Path:
    return model_document.write(Path(model_dir) / CALIBRATION_FILE, calibrator.to_json())


def write_holdout(
    path: Path, labels: np.ndarray, probabilities: np.ndarray, raw: np.ndarray
) -> None:
    """`label,probability,booster probability` per line (6 decimals, as the endpoint prints)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.column_stack([labels.astype(np.int64), probabilities, raw])
    np.savetxt(path, data, fmt=["%d", "%.6f", "%.6f"], delimiter=",")


def read_holdout(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, calibrated probabilities, booster probabilities) of a holdout file."""
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    if data.ndim != 2 or data.shape[1] != 3:
        raise CalibrationError(f"{path}: expected lines of label,probability,booster probability")
    return data[:, 0], data[:, 1], data[:, 2]


# ---------------------------------------------------------------------------- fitting


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warning for large |z|


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    q = np.clip(probabilities, _EPS, 1.0 - _EPS)
    return float(-np.mean(labels * np.log(q) + (1.0 - labels) * np.log1p(-q)))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((probabilities - labels) ** 2))


def fit_platt(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """a, b of sigmoid(a * logit(p) + b) by Newton's method on the log-loss, with Platt's
    smoothed targets ((positives + 1) / (positives + 2), 1 / (negatives + 2))."""
    z = _logit(np.asarray(probabilities, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64)
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    t = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a: float, b: float) -> float:
        s = a * z + b
        return float(np.sum(np.logaddexp(0.0, s) - t * s))

    a, b = 1.0, 0.0
    current = loss(a, b)
    zz = z * z
    for _ in range(100):
        q = sigmoid(a * z + b)
        g = q - t
        w = np.maximum(q * (1 - q), 1e-12)
        # sums of products, not np.dot: a threaded BLAS makes each dot slow on a busy machine
        wz = float((w * z).sum())
        grad = np.array([float((g * z).sum()), float(g.sum())])
        hess = np.array([[float((w * zz).sum()), wz], [wz, float(w.sum())]])
        hess += np.eye(2) * 1e-9 * len(y)
        step = np.linalg.solve(hess, grad)
        scale = 1.0  # halve the Newton step until the loss falls (Lin, Lin and Weng 2007)
        while scale > 1e-8:
            trial = loss(a - scale * step[0], b - scale * step[1])
            if trial < current + 1e-4 * scale * float(np.dot(grad, -step)):
                break
            scale /= 2
        else:
            break
        a, b, current = a - scale * step[0], b - scale * step[1], trial
        if np.max(np.abs(scale * step)) < 1e-9:
            break
    return {"a": float(a), "b": float(b)}


def fit_isotonic(
    probabilities: np.ndarray, labels: np.ndarray, *, centred: bool = False
) -> dict[str, list[float]]:
    """Knots of the non-decreasing least-squares fit (pool adjacent violators) of the
    labels on the probabilities; each pooled block contributes its lowest and highest x,
    or with `centred` its mean x only (centred isotonic regression: strictly increasing
    between the first and last block, so it keeps the order of the scores there)."""
    x = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    values, inverse = np.unique(x, return_inverse=True)
    weight = np.bincount(inverse).astype(np.float64)
    total = np.bincount(inverse, weights=y)
    # blocks as parallel stacks: sum of labels, weight, first and last unique index
    sums: list[float] = []
    weights: list[float] = []
    lows: list[int] = []
    highs: list[int] = []
    for i, (s, w) in enumerate(zip(total.tolist(), weight.tolist(), strict=True)):
        sums.append(s)
        weights.append(w)
        lows.append(i)
        highs.append(i)
        while len(sums) > 1 and sums[-2] * weights[-1] >= sums[-1] * weights[-2]:
            s_last, w_last, h_last = sums.pop(), weights.pop(), highs.pop()
            lows.pop()
            sums[-1] += s_last
            weights[-1] += w_last
            highs[-1] = h_last
    knots_x: list[float] = []
    knots_y: list[float] = []
    moments = np.bincount(inverse, weights=x)
    for s, w, lo, hi in zip(sums, weights, lows, highs, strict=True):
        level = s / w
        if centred:
            knots_x.append(float(moments[lo : hi + 1].sum() / w))
            knots_y.append(level)
            continue
        for index in (lo, hi) if hi > lo else (lo,):
            knots_x.append(float(values[index]))
            knots_y.append(level)
    return {"x": knots_x, "y": knots_y}


def fit(method: str, probabilities: np.ndarray, labels: np.ndarray) -> Calibrator:
    if method == "platt":
        return Calibrator("platt", fit_platt(probabilities, labels))
    if method == "isotonic":
        return Calibrator("isotonic", fit_isotonic(probabilities, labels))
    if method == "identity":
        return Calibrator("identity")
    raise CalibrationError(f"unknown calibration method {method!r}")


def choose(
    probabilities: np.ndarray,
    labels: np.ndarray,
    fold: np.ndarray,
    methods: Sequence[str] = METHODS,
    *,
    source: str,
) -> Calibrator:
    """The method with the lowest cross-fitted log-loss on these held-out rows, refitted
    on all of them. `fold` numbers the rows 0..k-1 (the CV folds, or any split)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    folds = sorted(int(f) for f in np.unique(fold))
    scores: dict[str, dict[str, float]] = {}
    for method in methods:
        cross = np.empty_like(p)
        for f in folds:
            held = fold == f
            rest = ~held
            if method != "identity" and (y[rest].min() == y[rest].max()):
                cross[held] = p[held]  # one class left to fit on: nothing to learn
                continue
            cross[held] = fit(method, p[rest], y[rest]).apply(p[held])
        scores[method] = {"log_loss": log_loss(y, cross), "brier": brier(y, cross)}
    fitted_methods = [m for m in methods if m != "identity"] or ["identity"]
    chosen = min(fitted_methods, key=lambda m: scores[m]["log_loss"])
    if "identity" in scores:
        bar = scores["identity"]["log_loss"] * (1.0 - MIN_GAIN)
        if scores[chosen]["log_loss"] >= bar:
            chosen = "identity"
    fitted = fit(chosen, p, y)
    return Calibrator(
        chosen,
        fitted.params,
        fitted_on={
            "source": source,
            "rows": int(len(y)),
            "positives": int(y.sum()),
        },
        selection={
            "metric": "log_loss",
            "folds": len(folds),
            "min_gain": MIN_GAIN,
            "scores": {m: {k: round(v, 6) for k, v in s.items()} for m, s in scores.items()},
        },
    )
