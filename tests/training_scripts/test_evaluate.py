"""evaluate.py on a real (small) loan book: metrics, threshold, champion, SHAP, report, errors."""

from __future__ import annotations

import html.parser as html_parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.stats import ks_2samp
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import baseline, inference
from training_scripts import calibration as calib
from training_scripts import evaluate as ev
from training_scripts import linear_margin as lm
from training_scripts import preprocess as pp

SCRIPT = Path(ev.__file__)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(path, header=None)
    return frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy(dtype=np.float64)


def _package(
    directory: Path, booster: xgb.Booster, manifest: dict, extra: dict[str, str] | None = None
) -> Path:
    """model.tar.gz laid out as train.py leaves the model dir (`extra`: more files in it)."""
    staging = directory / "staging"
    (staging / "boostline").mkdir(parents=True)
    booster.save_model(str(staging / "xgboost-model.json"))
    (staging / "xgboost-model.json").rename(staging / "xgboost-model")
    (staging / "boostline" / "feature_manifest.json").write_text(json.dumps(manifest))
    for name, text in (extra or {}).items():
        (staging / name).write_text(text)
    with tarfile.open(directory / "model.tar.gz", "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(staging)))
    shutil.rmtree(staging)
    return directory


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evaluate")
    generate_to_dir(8000, root / "raw", seed=5)
    pp.preprocess(root / "raw", SCHEMA_PATH, root / "pre", salt="x")
    pre = root / "pre"
    manifest = json.loads((pre / "manifest" / "feature_manifest.json").read_text())
    names = [c["name"] for c in manifest["columns"]]
    parts = [_read(f) for f in sorted((pre / "train").glob("train-*.csv"))]
    y = np.concatenate([p[0] for p in parts])
    x = np.concatenate([p[1] for p in parts])
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "nthread": 1}
    good = xgb.train(params, xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names), 50)
    # Trained on the inverted labels: surely worse than the good model, whatever the split
    # (a model of shuffled labels lands anywhere near 0.5 +- the effect of the feature its
    # few trees happen to split on).
    inverted = 1 - y
    weak = xgb.train(params, xgb.DMatrix(x, label=inverted, missing=np.nan), 2)  # f0.. names
    good_dir = _package(root / "good", good, manifest)
    weak_dir = _package(root / "weak", weak, manifest)
    test_y, test_x = _read(pre / "test" / "test.csv")
    return {
        "root": root,
        "pre": pre,
        "manifest": manifest,
        "names": names,
        "good": good_dir,
        "weak": weak_dir,
        "test_y": test_y,
        "test_x": test_x,
        "train_rows": len(y),
    }


def _args(book: dict, out: Path, model: Path, champion: Path | None, *extra: str) -> list[str]:
    return [
        "--model-dir", str(model),
        "--test-dir", str(book["pre"] / "test"),
        "--train-dir", str(book["pre"] / "train"),
        "--champion-model-dir", str(champion) if champion else "",
        "--output-dir", str(out),
        "--nthread", "1",
        "--bootstrap-samples", "50",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def good_run(book: dict) -> dict:
    out = book["root"] / "out-good"
    assert ev.main(_args(book, out, book["good"], book["good"], "--threshold-rule", "max_f1")) == 0
    return {"out": out, "evaluation": json.loads((out / "evaluation/evaluation.json").read_text())}


@pytest.fixture(scope="module")
def weak_run(book: dict) -> dict:
    out = book["root"] / "out-weak"
    assert ev.main(_args(book, out, book["weak"], book["good"])) == 0
    return json.loads((out / "evaluation/evaluation.json").read_text())


@pytest.fixture(scope="module")
def scores(book: dict) -> np.ndarray:
    with_model = ev.load_model(book["good"], book["root"] / "scratch")
    return ev.predict(with_model, book["test_x"], nthread=1)


def test_evaluation_json_has_the_sagemaker_structure(good_run: dict, book: dict) -> None:
    e = good_run["evaluation"]
    m = e["binary_classification_metrics"]
    for key in ("auc", "precision", "recall", "f1", "accuracy", "pr_auc", "ks", "brier"):
        assert set(m[key]) == {"value", "standard_deviation"}, key
        assert 0 <= m[key]["value"] <= 1
        assert m[key]["standard_deviation"] > 0
    assert 0.7 < m["auc"]["value"] < 0.9
    cm = m["confusion_matrix"]
    assert set(cm) == {"0", "1"} and all(set(cm[k]) == {"0", "1"} for k in cm)
    assert sum(cm[a][p] for a in cm for p in cm[a]) == len(book["test_y"])
    roc = m["receiver_operating_characteristic_curve"]
    pr = m["precision_recall_curve"]
    assert 2 < len(roc["false_positive_rates"]) == len(roc["true_positive_rates"]) <= 200
    assert 2 < len(pr["precisions"]) == len(pr["recalls"]) <= 200
    assert roc["false_positive_rates"][0] == 0 and roc["true_positive_rates"][-1] == 1
    assert e["threshold_rule"] == "max_f1"
    assert 0 < e["decision_threshold"] < 1
    assert e["expected_cost_per_application"] > 0
    assert e["dataset"]["training_rows"] == book["train_rows"]
    assert e["calibration"]["bins"] and e["calibration"]["expected_calibration_error"] < 0.1


def test_metrics_agree_with_scikit_learn(good_run: dict, book: dict, scores: np.ndarray) -> None:
    e = good_run["evaluation"]
    m = e["binary_classification_metrics"]
    y = book["test_y"]
    assert m["auc"]["value"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert m["pr_auc"]["value"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert m["brier"]["value"] == pytest.approx(brier_score_loss(y, scores), abs=1e-12)
    ks = ks_2samp(scores[y == 1], scores[y == 0]).statistic
    assert m["ks"]["value"] == pytest.approx(ks, abs=1e-12)
    flagged = (scores >= e["decision_threshold"]).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(y, flagged)
    assert m["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert m["precision"]["value"] == pytest.approx(precision_score(y, flagged))
    assert m["recall"]["value"] == pytest.approx(recall_score(y, flagged))
    assert m["f1"]["value"] == pytest.approx(f1_score(y, flagged))
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(y, flagged))


def test_threshold_rules(book: dict, scores: np.ndarray) -> None:
    y = book["test_y"]
    max_f1 = ev.choose_threshold(y, scores, "max_f1")
    cheap = ev.choose_threshold(
        y, scores, "min_cost", cost_false_negative=10, cost_false_positive=1
    )
    assert cheap < max_f1  # a missed default costs much more: flag more applications

    # brute force over every distinct score: nothing beats the chosen thresholds
    candidates = np.r_[np.unique(scores), 2.0]
    flagged = scores[None, :] >= candidates[:, None]  # one row per candidate threshold
    tp = (flagged & (y == 1)).sum(axis=1)
    fp = (flagged & (y == 0)).sum(axis=1)
    fn = (~flagged & (y == 1)).sum(axis=1)
    f1s = 2 * tp / (2 * tp + fp + fn)
    costs = 10 * fn + fp
    assert f1_score(y, scores >= max_f1) == pytest.approx(f1s.max())
    chosen = 10 * np.sum((scores < cheap) & (y == 1)) + np.sum((scores >= cheap) & (y == 0))
    assert chosen == costs.min()


def test_threshold_on_tiny_hand_made_scores() -> None:
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    # flagging from 0.3 up: TP 3, FP 1, FN 0, F1 6/7 (0.8 and up only: F1 4/5)
    assert 0.2 < ev.choose_threshold(y, p, "max_f1") < 0.3
    # a missed default costs 100 rejections: catch every default, i.e. flag from 0.3 up
    assert 0.2 < ev.choose_threshold(y, p, "min_cost", 100, 1) <= 0.3
    # equal costs: flagging 0.8 and up makes one mistake, the fewest possible
    assert 0.4 < ev.choose_threshold(y, p, "min_cost", 1, 1) < 0.8
    # a rejected good loan costs 100: flag only where no good loan is hit (0.8 and up)
    assert 0.4 < ev.choose_threshold(y, p, "min_cost", 1, 100) < 0.8
    # ... and where the top score is a good loan, approve everyone
    top_good = ev.choose_threshold(
        np.array([1, 0, 0]), np.array([0.1, 0.5, 0.9]), "min_cost", 1, 100
    )
    assert top_good > 0.9


def test_champion_against_itself(good_run: dict) -> None:
    e = good_run["evaluation"]
    auc = e["binary_classification_metrics"]["auc"]["value"]
    assert e["champion"]["auc"] == pytest.approx(auc, abs=1e-12)
    assert e["champion"]["min_auc_required"] == pytest.approx(auc - 0.01, abs=1e-12)


def test_a_weak_candidate_falls_below_the_champion(weak_run: dict, good_run: dict) -> None:
    weak_auc = weak_run["binary_classification_metrics"]["auc"]["value"]
    good_auc = good_run["evaluation"]["binary_classification_metrics"]["auc"]["value"]
    assert weak_auc < good_auc - 0.15
    assert weak_run["champion"]["auc"] == pytest.approx(good_auc, abs=1e-12)
    assert weak_auc < weak_run["champion"]["min_auc_required"]
    # the weak booster has no feature names: importance is still by manifest name
    gains = weak_run["explanations"]["feature_importance"]["gain"]
    assert set(gains) == {c["name"] for c in weak_run["dataset"]["features"]}


def test_logistic_baseline_is_scored_beside_the_candidate(
    good_run: dict, weak_run: dict, book: dict
) -> None:
    e = good_run["evaluation"]
    lr = e["logistic_baseline"]
    auc = e["binary_classification_metrics"]["auc"]["value"]
    # the generated book is close to logistic in its features: a fair baseline is close
    assert 0.7 < lr["auc"] < 0.9 and abs(lr["auc"] - auc) < 0.05
    # the margin, and the noise of the difference on this test set (paired bootstrap)
    assert 0 < lr["difference_standard_deviation"] < 0.05
    spread = lr["difference_standard_deviation"]
    assert lr["min_auc_required"] == pytest.approx(lr["auc"] - 0.01 - 1.645 * spread)
    assert lr["candidate_auc_minus_baseline"] == pytest.approx(auc - lr["auc"])
    assert lr["training_rows"] == book["train_rows"] and lr["C"] > 0
    assert 0 < lr["brier"] < 0.25 and lr["expected_calibration_error"] < 0.05
    # the gate's bar: the inverted-label model loses to the baseline by far
    weak_auc = weak_run["binary_classification_metrics"]["auc"]["value"]
    assert weak_auc < weak_run["logistic_baseline"]["min_auc_required"] - 0.1
    assert "logistic regression" in (good_run["out"] / "report" / "report.md").read_text()


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_no_champion(book: dict, tmp_path: Path, kind: str) -> None:
    champion = tmp_path / "champion"
    if kind == "empty":
        champion.mkdir()
    loaded = ev.load_champion(champion, tmp_path, book["manifest"], book["names"])
    assert loaded is None
    section = ev.champion_section(loaded, book["test_y"], None, 0.01)
    assert section["auc"] is None
    assert section["min_auc_required"] == 0.0


def test_an_incomparable_champion_fails_loudly(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    manifest = json.loads(json.dumps(book["manifest"]))
    grade = next(c for c in manifest["columns"] if c["name"] == "grade")
    grade["categories"] = grade["categories"][::-1]  # same columns, other codes
    booster = ev.load_model(book["good"], tmp_path / "scratch").booster
    champion = _package(tmp_path / "champion", booster, manifest)
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml-output"))
    assert ev.main(_args(book, tmp_path / "out", book["good"], champion)) == 1
    message = (tmp_path / "ml-output" / "message").read_text()
    assert "incomparable" in message and "grade" in message
    assert "incomparable" in capsys.readouterr().err


def test_shap_contributions_add_up_to_the_margin(book: dict, good_run: dict) -> None:
    model = ev.load_model(book["good"], book["root"] / "scratch-shap")
    rows, contributions, margin = ev.shap_values(model, book["test_x"], 300, nthread=1)
    assert len(rows) == 300 and contributions.shape == (300, len(book["names"]) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, atol=1e-4)
    direct = model.booster.predict(
        xgb.DMatrix(book["test_x"][rows], missing=np.nan, feature_names=book["names"]),
        output_margin=True,
    )
    np.testing.assert_allclose(contributions.sum(axis=1), direct, atol=1e-4)
    shap = good_run["evaluation"]["explanations"]["shap"]
    assert shap["max_additivity_error"] < 1e-4
    assert set(shap["mean_abs_shap"]) == set(book["names"])


def test_top_drivers_have_the_expected_direction(good_run: dict) -> None:
    drivers = {d["feature"]: d for d in good_run["evaluation"]["explanations"]["top_drivers"]}
    assert drivers["fico_score"]["direction"] == "higher values lower risk"
    assert drivers["interest_rate"]["direction"] == "higher values raise risk"
    grade = drivers["grade"]["mean_shap_by_category"]
    assert grade["A"] < 0 < grade["E"]
    top = good_run["evaluation"]["explanations"]["top_drivers"][0]["feature"]
    assert top in {"fico_score", "interest_rate", "grade", "annual_income", "dti"}


def test_report_is_written(good_run: dict) -> None:
    report = good_run["out"] / "report"
    for name in (
        "roc.png",
        "precision_recall.png",
        "confusion_matrix.png",
        "calibration.png",
        "shap_summary.png",
        "importance.png",
        "fairness_age_band.png",
        "report.md",
    ):
        assert (report / name).stat().st_size > 0, name  # fmt: skip
    text = (report / "index.html").read_text()
    for driver in good_run["evaluation"]["explanations"]["top_drivers"][:3]:
        assert driver["feature"] in text
    for phrase in ("threshold", "F1", "Calibration", "Fairness", "age_band", "four-fifths"):
        assert phrase in text
    for src in ("roc.png", "shap_summary.png"):
        assert f'src="{src}"' in text


def test_fairness_per_age_band(good_run: dict, book: dict, scores: np.ndarray) -> None:
    fairness = good_run["evaluation"]["fairness"]["attributes"]["age_band"]
    meta = pd.read_csv(book["pre"] / "test" / "test_meta.csv", dtype=str)
    groups = {g["group"]: g for g in fairness["groups"]}
    assert set(groups) == set(meta["age_band"])
    threshold = good_run["evaluation"]["decision_threshold"]
    mask = (meta["age_band"] == "26-35").to_numpy()
    approved = scores[mask] < threshold
    y = book["test_y"][mask]
    g = groups["26-35"]
    assert g["count"] == mask.sum()
    assert g["approval_rate"] == pytest.approx(approved.mean())
    assert g["default_rate"] == pytest.approx(y.mean())
    assert g["false_positive_rate"] == pytest.approx(np.mean(~approved[y == 0]))
    assert g["false_negative_rate"] == pytest.approx(np.mean(approved[y == 1]))
    best = max(groups.values(), key=lambda g: g["approval_rate"] if not g["small_group"] else -1)
    assert fairness["reference_group"] == best["group"]
    assert fairness["min_adverse_impact_ratio"] <= 1
    assert isinstance(fairness["passes_four_fifths_rule"], bool)


def test_drift_baseline_of_the_training_features(good_run: dict, book: dict) -> None:
    statistics = json.loads((good_run["out"] / "baseline" / "statistics.json").read_text())
    constraints = json.loads((good_run["out"] / "baseline" / "constraints.json").read_text())
    assert statistics["dataset"]["item_count"] == book["train_rows"]
    assert [f["name"] for f in statistics["features"]] == book["names"]
    assert [f["name"] for f in constraints["features"]] == book["names"]
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"]


def _bad_test_csv(book: dict, tmp_path: Path) -> Path:
    test = tmp_path / "test"
    test.mkdir()
    lines = (book["pre"] / "test" / "test.csv").read_text().splitlines()
    (test / "test.csv").write_text("".join(line + ",1\n" for line in lines))
    shutil.copy(book["pre"] / "test" / "test_meta.csv", test / "test_meta.csv")
    return test


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing test file", "no test.csv or test-<host>.csv in"),
        ("model dir without a model", "no xgboost-model found"),
        ("column count mismatch", "has 24 columns but the feature manifest lists 22 features"),
    ],
)
def test_bad_input_fails_with_a_clear_message(
    book: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    case: str,
    expected: str,
) -> None:
    args = _args(book, tmp_path / "out", book["good"], None)
    if case == "missing test file":
        (tmp_path / "test").mkdir()
        args[args.index("--test-dir") + 1] = str(tmp_path / "test")
    elif case == "model dir without a model":
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "notes.txt").write_text("no model here")
        args[args.index("--model-dir") + 1] = str(tmp_path / "model")
    else:
        args[args.index("--test-dir") + 1] = str(_bad_test_csv(book, tmp_path))
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml-output"))
    assert ev.main(args) == 1
    message = (tmp_path / "ml-output" / "message").read_text()
    assert message.startswith("evaluation failed:") and expected in message
    assert expected in capsys.readouterr().err


def test_runs_as_a_script(book: dict, tmp_path: Path) -> None:
    """As SageMaker runs it: `python evaluate.py`, sibling modules imported by name."""
    args = _args(book, tmp_path / "out", book["good"], None)
    args[args.index("--test-dir") + 1] = str(tmp_path / "nowhere")
    env = {"BOOSTLINE_OUTPUT_DIR": str(tmp_path / "ml-output"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert "test data" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_threshold_is_chosen_on_validation_and_applied_to_test(book: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = _args(book, out, book["good"], None, "--validation-dir", str(book["pre"] / "validation"))
    assert ev.main(args) == 0
    e = json.loads((out / "evaluation/evaluation.json").read_text())
    assert e["threshold_chosen_on"] == "validation"
    model = ev.load_model(book["good"], tmp_path / "scratch")
    val_y, val_x = _read(book["pre"] / "validation" / "validation.csv")
    expected = ev.choose_threshold(val_y, ev.predict(model, val_x, nthread=1), "min_cost", 5.0, 1.0)
    assert e["decision_threshold"] == pytest.approx(expected)
    # the test-set confusion matrix is counted at that fixed threshold
    flagged = ev.predict(model, book["test_x"], nthread=1) >= expected
    cm = e["binary_classification_metrics"]["confusion_matrix"]
    assert cm["1"]["1"] == int((flagged & (book["test_y"] == 1)).sum())
    assert cm["0"]["1"] == int((flagged & (book["test_y"] == 0)).sum())


def _calibrated_model(book: dict, root: Path, calibration_json: str, holdout: str) -> Path:
    booster = ev.load_model(book["good"], root / "scratch").booster
    extra = {calib.CALIBRATION_FILE: calibration_json, calib.HOLDOUT_FILE: holdout}
    return _package(root / "calibrated", booster, book["manifest"], extra)


def test_a_calibrated_model_is_scored_and_thresholded_as_the_endpoint_answers(
    book: dict, tmp_path: Path
) -> None:
    platt = calib.Calibrator("platt", {"a": 0.6, "b": -0.4}, fitted_on={"rows": 500})
    # Out-of-fold scores: here the validation rows through the same map.
    val_y, val_x = _read(book["pre"] / "validation" / "validation.csv")
    raw_model = ev.load_model(book["good"], tmp_path / "raw")
    held_raw = ev.predict(raw_model, val_x, nthread=1)
    holdout = tmp_path / "holdout.csv"
    calib.write_holdout(holdout, val_y, platt.apply(held_raw), held_raw)
    model_dir = _calibrated_model(book, tmp_path, json.dumps(platt.to_json()), holdout.read_text())
    out = tmp_path / "out"
    args = _args(book, out, model_dir, None, "--validation-dir", str(book["pre"] / "validation"))
    assert ev.main(args) == 0
    e = json.loads((out / "evaluation/evaluation.json").read_text())

    model = ev.load_model(model_dir, tmp_path / "scratch")
    raw = ev.predict(raw_model, book["test_x"], nthread=1)
    np.testing.assert_allclose(ev.predict(model, book["test_x"], nthread=1), platt.apply(raw))
    assert e["model"]["calibration"]["method"] == "platt"
    assert e["calibration"]["mean_predicted"] == pytest.approx(platt.apply(raw).mean())
    # The threshold comes from the out-of-fold rows, not from the validation rows that a
    # cross-validated model trained on.
    assert e["threshold_chosen_on"] == "out-of-fold"
    held_y, held_p, _ = calib.read_holdout(holdout)
    expected = ev.choose_threshold(held_y, held_p, "min_cost", 5.0, 1.0)
    assert e["decision_threshold"] == pytest.approx(expected)
    report = (out / "report" / "index.html").read_text()
    assert "platt calibration fitted in training" in report


def test_a_broken_calibration_stops_the_evaluation(book: dict, tmp_path: Path) -> None:
    model_dir = _calibrated_model(book, tmp_path, '{"format": "boostline-calibration"}', "")
    out = tmp_path / "out"
    assert ev.main(_args(book, out, model_dir, None)) == 1
    assert not (out / "evaluation" / "evaluation.json").exists()
    with pytest.raises(ev.EvaluationError, match="model: .*calibration.json: .*version"):
        ev.load_model(model_dir, tmp_path / "scratch")


def _linear_model(book: dict, root: Path) -> tuple[Path, lm.LinearMargin]:
    """A booster trained from a logistic regression's margin, packaged as train.py does."""
    parts = [_read(f) for f in sorted((book["pre"] / "train").glob("train-*.csv"))]
    y = np.concatenate([p[0] for p in parts])
    x = np.concatenate([p[1] for p in parts])
    categorical = [c["kind"] == "categorical" for c in book["manifest"]["columns"]]
    fitted = baseline.fit(y, x, categorical, max_rows=3000)
    linear = lm.from_baseline(fitted, x, categorical)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.1, "nthread": 1}
    data = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=book["names"])
    data.set_base_margin(linear.margin(x))
    booster = xgb.train(params, data, 20)
    extra = {lm.LINEAR_MARGIN_FILE: json.dumps(linear.to_json())}
    return _package(root / "linear", booster, book["manifest"], extra), linear


def test_a_model_with_a_linear_margin_is_scored_and_explained_as_the_endpoint_does(
    book: dict, tmp_path: Path
) -> None:
    model_dir, linear = _linear_model(book, tmp_path)
    model = ev.load_model(model_dir, tmp_path / "scratch")
    assert model.linear is not None
    scores = ev.predict(model, book["test_x"], nthread=1)
    with tarfile.open(model_dir / "model.tar.gz") as tar:
        tar.extractall(tmp_path / "served", filter="data")
    served = inference.load_model(tmp_path / "served", threshold=0.5, threads=1)
    np.testing.assert_allclose(scores, inference.predict(served, book["test_x"]), rtol=1e-5)
    alone = model.booster.predict(
        xgb.DMatrix(book["test_x"], missing=np.nan, feature_names=book["names"])
    )
    assert np.abs(alone - scores).max() > 0.05  # the margin is not optional
    rows, contributions, margin = ev.shap_values(model, book["test_x"], 200, nthread=1)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, atol=1e-4)
    shares, _ = linear.contributions(book["test_x"][rows], len(book["names"]))
    assert np.abs(shares).mean() > 0.01  # the regression's shares are on the features
    out = tmp_path / "out"
    assert ev.main(_args(book, out, model_dir, None)) == 0
    e = json.loads((out / "evaluation/evaluation.json").read_text())
    assert e["explanations"]["shap"]["max_additivity_error"] < 1e-4
    assert e["model"]["linear_margin"] == linear.fitted_on
    report = (out / "report" / "index.html").read_text()
    rows = linear.fitted_on["rows"]
    assert f"starts from such a regression (fitted in training on {rows:,} rows" in report
    assert roc_auc_score(book["test_y"], scores) == pytest.approx(
        e["binary_classification_metrics"]["auc"]["value"]
    )


def test_a_broken_linear_margin_stops_the_evaluation(book: dict, tmp_path: Path) -> None:
    booster = ev.load_model(book["good"], tmp_path / "scratch").booster
    extra = {lm.LINEAR_MARGIN_FILE: '{"format": "boostline-linear-margin", "version": 1}'}
    model_dir = _package(tmp_path / "broken", booster, book["manifest"], extra)
    assert ev.main(_args(book, tmp_path / "out", model_dir, None)) == 1
    with pytest.raises(ev.EvaluationError, match="model: .*linear_margin.json: .*intercept"):
        ev.load_model(model_dir, tmp_path / "scratch2")


def test_test_rows_from_n_preprocessing_hosts_read_as_one_test_set(
    book: dict, good_run: dict, tmp_path: Path
) -> None:
    # Two hosts' files, as the encode pass on two instances writes them.
    pre = book["pre"]
    test = (pre / "test" / "test.csv").read_text().splitlines(keepends=True)
    header, *meta = (pre / "test" / "test_meta.csv").read_text().splitlines(keepends=True)
    cut = len(test) // 3
    hosts = tmp_path / "test"
    hosts.mkdir()
    for host, rows in (("algo-1", slice(0, cut)), ("algo-2", slice(cut, None))):
        (hosts / f"test-{host}.csv").write_text("".join(test[rows]))
        (hosts / f"test_meta-{host}.csv").write_text(header + "".join(meta[rows]))
    out = tmp_path / "out"
    args = _args(book, out, book["good"], book["good"], "--threshold-rule", "max_f1")
    args[args.index("--test-dir") + 1] = str(hosts)
    assert ev.main(args) == 0
    e = json.loads((out / "evaluation/evaluation.json").read_text())
    ours, one = e["binary_classification_metrics"], good_run["evaluation"]
    assert e["dataset"]["test_rows"] == one["dataset"]["test_rows"] == len(test)
    assert ours["auc"]["value"] == one["binary_classification_metrics"]["auc"]["value"]
    assert e["fairness"] == one["fairness"]
    # A host's meta file gone: refused, never a misaligned fairness table.
    (hosts / "test_meta-algo-2.csv").unlink()
    assert ev.main(args) == 1


def test_the_calibration_bound_allows_for_the_test_set_size() -> None:
    rng = np.random.default_rng(3)
    for rows, most in ((70, 0.25), (20_000, 0.02)):
        scores = rng.uniform(0.02, 0.98, rows)
        calibrated = (rng.random(rows) < scores).astype(np.int8)
        noise = ev.ece_noise(scores)
        # a calibrated model's ECE is within its noise; the noise shrinks with the rows
        assert ev.calibration(calibrated, scores)["expected_calibration_error"] <= noise < most
    shifted = np.clip(scores + 0.1, 0, 1)  # 10 points too high everywhere
    section = ev.calibration(calibrated, shifted)
    assert section["expected_calibration_error_beyond_noise"] > 0.07
    assert section["expected_calibration_error"] - section["ece_noise_95"] == pytest.approx(
        section["expected_calibration_error_beyond_noise"]
    )


# ---------------------------------------------------------------- credit-risk staples, lineage


def test_credit_risk_staples(good_run: dict, book: dict, scores: np.ndarray) -> None:
    from training_scripts import credit_risk as cr

    e = good_run["evaluation"]
    credit = e["credit_risk"]
    auc = e["binary_classification_metrics"]["auc"]
    assert credit["gini"]["value"] == pytest.approx(2 * auc["value"] - 1)
    assert credit["gini"]["standard_deviation"] == pytest.approx(2 * auc["standard_deviation"])
    low, high = credit["gini"]["interval_95"]
    assert low < credit["gini"]["value"] < high
    deciles = credit["gains_lift"]["deciles"]
    assert sum(d["rows"] for d in deciles) == len(book["test_y"])
    assert sum(d["defaults"] for d in deciles) == int(book["test_y"].sum())
    assert deciles[0]["lift"] > 1.5 > deciles[-1]["lift"]  # a model that ranks risk
    # PSI against the model's own scores of the training rows
    model = ev.load_model(book["good"], book["root"] / "scratch-psi")
    train = np.concatenate([_read(f)[1] for f in ev.training_files(book["pre"] / "train")])
    expected = cr.score_psi(ev.predict(model, train, nthread=1), scores)
    assert credit["score_psi"]["value"] == pytest.approx(expected["value"])
    assert credit["score_psi"]["training_rows"] == book["train_rows"]
    # the cost curve passes through the cost the gate and the registry see
    chosen = credit["cost_curve"]["chosen"]
    assert chosen["threshold"] == e["decision_threshold"]
    assert chosen["expected_cost"] == pytest.approx(e["expected_cost_per_application"])
    assert chosen["approval_rate"] == pytest.approx(e["threshold"]["approval_rate"])
    # the rankings compared are the report's own: gain importance and mean |SHAP|
    disagreement = credit["importance_disagreement"]
    top_shap = e["explanations"]["top_drivers"][0]["feature"]
    top_gain = next(iter(e["explanations"]["feature_importance"]["gain"]))
    assert disagreement["shap_ranks"][top_shap] == 1
    assert disagreement["gain_ranks"][top_gain] == 1
    for found in disagreement["disagreements"]:
        gap = found["gain_rank"] - found["shap_rank"]
        assert abs(gap) >= disagreement["min_rank_gap"] and found["reasons"]


def test_lineage_without_a_tuning_job_says_not_recorded(good_run: dict, book: dict) -> None:
    lineage = good_run["evaluation"]["lineage"]
    assert lineage["run_id"] is None and lineage["model_package_group"] is None
    assert lineage["model_version"]["value"] is None
    assert "RegisterModel" in lineage["model_version"]["why"]
    assert lineage["tuning"] == {"status": "not recorded", "reason": "no tuning job name was given"}
    assert lineage["model_hyperparameters"]["values"] is None
    # the model file keeps the objective and the rounds, not the tree parameters
    assert lineage["model_file"]["objective"] == "binary:logistic"
    assert lineage["model_file"]["boosted_rounds"] == 50
    assert "max_depth" not in lineage["model_file"]
    data = lineage["training_data"]
    assert data["rows"] == book["train_rows"]
    assert data["time_window"] is None and data["time_window_note"].startswith("not recorded")


def test_lineage_survives_an_unreachable_api(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    out = tmp_path / "out"
    lineage_args = (
        "--pipeline-execution-id", "exec-42",
        "--pipeline-execution-arn", "arn:aws:sagemaker:eu-west-1:1:pipeline/p/execution/exec-42",
        "--model-package-group", "boostline-dev-models",
        "--tuning-job-name", "exec-42-tune",
        "--bootstrap-samples", "5",
    )  # fmt: skip
    assert ev.main(_args(book, out, book["good"], None, *lineage_args)) == 0
    lineage = json.loads((out / "evaluation" / "evaluation.json").read_text())["lineage"]
    assert lineage["run_id"] == "exec-42"
    assert lineage["pipeline_execution_arn"].endswith("/execution/exec-42")
    assert lineage["model_package_group"] == "boostline-dev-models"
    assert "boostline-dev-models" in lineage["model_version"]["why"]
    assert lineage["tuning"]["status"] == "not recorded"
    assert lineage["tuning"]["job_name"] == "exec-42-tune"
    # No endpoint there (or, with the image's boto3, which ignores AWS_ENDPOINT_URL, no
    # SageMaker that knows these credentials): either way the reason is kept.
    assert lineage["tuning"]["reason"]
    stamped = datetime.datetime.strptime(lineage["evaluated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert stamped.replace(tzinfo=datetime.timezone.utc) >= before
    html_text = (out / "report" / "index.html").read_text()
    assert "exec-42" in html_text and "Tuning trials: not recorded" in html_text


class _Page(html_parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: dict[str, str] = {}
        self.images: list[str] = []
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(str(attributes["src"]))
        if tag in ("h2", "h3"):
            self._heading = attributes.get("id") or ""

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self.headings[data.strip()] = self._heading
            self._heading = None


SECTIONS = {
    "Lineage": "lineage",
    "Tuning trials": "tuning-trials",
    "Gini": "gini",
    "Gains and lift by decile": "gains-lift",
    "Score stability (PSI against training)": "score-psi",
    "Expected cost against threshold": "expected-cost",
    "Where gain and SHAP rankings disagree": "importance-disagreement",
}


def _assert_report_complete(report: Path) -> _Page:
    page = _Page()
    page.feed((report / "index.html").read_text())
    for title, anchor in SECTIONS.items():
        assert page.headings.get(title) == anchor, title
    for title in ("Headline metrics", "Calibration", "Fairness", "Hyperparameters of this model"):
        assert title in page.headings, title
    markdown = (report / "report.md").read_text()
    for title in SECTIONS:
        assert re.search(rf"^#+ {re.escape(title)}$", markdown, re.MULTILINE), title
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    for src in {*page.images, *linked}:
        data = (report / src).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, src
    for plot in ("gains_lift.png", "cost_threshold.png", "score_psi.png"):
        assert plot in page.images and plot in linked, plot
    return page


def test_report_renders_every_section_and_every_image_is_a_png(good_run: dict) -> None:
    _assert_report_complete(good_run["out"] / "report")


def test_the_tuning_trials_reach_the_report(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials come from SageMaker's API: here the local AWS endpoint, through boto3."""
    # The image lane has neither the local runtime's packages nor a boto3 that reads
    # AWS_ENDPOINT_URL (1.17.52); the main suite runs this.
    pytest.importorskip("pydantic")
    from boostline.local.local_aws import LocalAwsEndpoint, LocalS3, TuningJobRecord

    def summary(number: int, value: float | None) -> dict:
        job = {
            "TrainingJobName": f"exec-7-tune-{number:03d}",
            "CreationTime": 1_767_225_600.0,
            "TrainingJobStatus": "Completed" if value is not None else "Failed",
            "TunedHyperParameters": {"eta": f"0.{number}", "max_depth": str(2 + number)},
        }
        if value is not None:
            metric = {"MetricName": "validation:auc", "Value": value}
            job["FinalHyperParameterTuningJobObjectiveMetric"] = metric
        return job

    trials = [summary(1, 0.70), summary(2, 0.74), summary(3, None)]
    objective = {"Type": "Maximize", "MetricName": "validation:auc"}
    description = {
        "HyperParameterTuningJobName": "exec-7-tune",
        "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": objective,
        },
        "TrainingJobDefinition": {"StaticHyperParameters": {"num_round": "50"}},
        "BestTrainingJob": trials[1],
    }
    with LocalAwsEndpoint(LocalS3({}), {}, "eu-west-1") as endpoint:
        endpoint.add_tuning_job(TuningJobRecord(description, trials))
        for key, value in endpoint.env().items():
            monkeypatch.setenv(key, value)
        out = tmp_path / "out"
        extra = ("--tuning-job-name", "exec-7-tune", "--bootstrap-samples", "5")
        assert ev.main(_args(book, out, book["good"], None, *extra)) == 0
    lineage = json.loads((out / "evaluation" / "evaluation.json").read_text())["lineage"]
    assert [t["training_job"] for t in lineage["tuning"]["trials"]] == [
        "exec-7-tune-002",
        "exec-7-tune-001",
        "exec-7-tune-003",
    ]
    assert lineage["model_hyperparameters"]["values"] == {
        "num_round": "50",
        "eta": "0.2",
        "max_depth": "4",
    }
    _assert_report_complete(out / "report")
    text = (out / "report" / "index.html").read_text()
    assert "exec-7-tune-003" in text and "eta=0.2, max_depth=4" in text
    assert "the best trial, exec-7-tune-002, scored 0.7400" in text


def test_the_region_for_the_api_comes_from_the_runs_arn() -> None:
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/x"
    assert ev.region_of(arn) == "eu-west-1"
    assert ev.region_of("") is None and ev.region_of("not-an-arn") is None


def test_test_meta_is_read_as_written(tmp_path: Path) -> None:
    meta = tmp_path / "test_meta.csv"
    meta.write_text("id,region\n007,NA\n8,\n")
    read = ev.read_meta(meta, 2)
    assert read is not None
    assert read["id"].texts() == ["007", "8"]
    assert read["region"].texts() == ["NA", "(missing)"]


def test_rows_are_read_block_by_block_as_a_whole_read_gives(book: dict) -> None:
    path = book["pre"] / "test" / "test.csv"
    blocks = list(ev.iter_labelled_csv(path, len(book["names"]), "test data", block_size=4096))
    assert len(blocks) > 10
    labels = np.concatenate([b[0] for b in blocks])
    features = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(labels, book["test_y"])
    np.testing.assert_array_equal(features, book["test_x"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("text in a number column", "column 3 holds values that are not numbers"),
        ("one field too many", "Expected 23 columns, got 24"),
    ],
)
def test_a_bad_row_deep_in_a_file_is_named_without_its_values(
    book: dict, tmp_path: Path, change: str, expected: str
) -> None:
    lines = (book["pre"] / "test" / "test.csv").read_text().splitlines()
    fields = lines[-1].split(",")
    if change == "text in a number column":
        fields[2] = "SECRET-VALUE"
    else:
        fields.append("SECRET-VALUE")
    path = tmp_path / "test.csv"
    path.write_text("\n".join([*lines, ",".join(fields)]) + "\n")
    with pytest.raises(ev.EvaluationError) as failure:
        for _ in ev.iter_labelled_csv(path, len(book["names"]), "test data", block_size=4096):
            pass
    assert expected in str(failure.value) and "after row" in str(failure.value)
    assert "SECRET" not in str(failure.value)


def test_a_sampled_training_set_keeps_exact_counts(
    book: dict, good_run: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert ev.main(_args(book, out, book["good"], None, "--training-sample-rows", "1000")) == 0
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    statistics = json.loads((out / "baseline" / "statistics.json").read_text())
    assert evaluation["dataset"]["training_rows"] == book["train_rows"]
    assert evaluation["dataset"]["training_rows_sampled"] == 1000
    assert (
        evaluation["credit_risk"]["score_psi"]["training_rows_sampled_from"] == book["train_rows"]
    )
    assert evaluation["logistic_baseline"]["training_rows"] == 1000
    assert statistics["dataset"]["item_count"] == book["train_rows"]
    full = json.loads((good_run["out"] / "baseline" / "statistics.json").read_text())["features"]
    for sampled, whole in zip(statistics["features"], full, strict=True):
        assert sampled["boostline"]["distribution_sample_rows"] == 1000
        block = "numerical_statistics" if "numerical_statistics" in whole else "string_statistics"
        assert sampled[block]["common"] == whole[block]["common"]


def test_the_baseline_fits_validation_rows_in_their_share_of_the_whole() -> None:
    from training_scripts.row_sample import RowReservoir
    from training_scripts.training_statistics import StatisticsAccumulator

    def sample(rows: int, capacity: int, value: float, seed: int) -> object:
        reservoir = RowReservoir(capacity, seed)
        reservoir.add(np.zeros(rows, np.int8), np.full((rows, 1), value))
        return reservoir.rows()

    def fit_rows(train: int, validation: int, capacity: int) -> ev.FitRows:
        return ev.FitRows(
            training=sample(train, capacity, 0.0, 1),
            validation=sample(validation, capacity, 1.0, 2),
            statistics=StatisticsAccumulator(["numerical"]),
            training_defaults=0,
            validation_labels=None,
            validation_scores=None,
        )

    labels, features, represented = fit_rows(8_000, 2_000, 1_000).baseline_rows(seed=0)
    assert represented == 10_000
    assert (features[:, 0] == 0).sum() == 1_000 and (features[:, 0] == 1).sum() == 250
    # while every row fits: all training rows, then all validation rows
    labels, features, represented = fit_rows(80, 20, 1_000).baseline_rows(seed=0)
    assert list(features[:, 0]) == [0.0] * 80 + [1.0] * 20 and represented == 100


def _scored_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(2.0 - 1.5 * risk))).astype(np.int8)
    scores = 1 / (1 + np.exp(2.0 - 1.5 * (risk + rng.normal(scale=0.8, size=n))))
    return labels, scores


def test_a_large_test_set_is_bootstrapped_on_a_sample_with_its_spreads_scaled() -> None:
    labels, scores = _scored_rows(40_000, seed=3)
    options = {"rule": "max_f1", "cost_false_negative": 5.0, "cost_false_positive": 1.0}
    whole = ev.binary_metrics(labels, scores, bootstrap_samples=60, **options)
    sampled = ev.binary_metrics(
        labels, scores, bootstrap_samples=60, bootstrap_max_rows=5_000, **options
    )
    assert whole["bootstrap"] == {"samples": 60, "seed": 0, "rows": 40_000, "of_rows": 40_000}
    assert sampled["bootstrap"] == {"samples": 60, "seed": 0, "rows": 5_000, "of_rows": 40_000}
    a, b = whole["binary_classification_metrics"], sampled["binary_classification_metrics"]
    # the values are the whole test set's; only their spreads come from the sample
    assert sampled["decision_threshold"] == whole["decision_threshold"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    for key in ("auc", "pr_auc", "ks", "brier", "precision", "recall", "f1"):
        assert b[key]["value"] == a[key]["value"]
        # 60 resamples estimate a spread to about +-20 %; unscaled it would be 2.8x
        assert b[key]["standard_deviation"] == pytest.approx(
            a[key]["standard_deviation"], rel=0.4
        ), key
    cost = "expected_cost_per_application_standard_deviation"
    assert sampled[cost] == pytest.approx(whole[cost], rel=0.4)


def test_the_baseline_bar_uses_the_same_sampled_bootstrap() -> None:
    labels, candidate = _scored_rows(40_000, seed=4)
    _, baseline = _scored_rows(40_000, seed=4)
    baseline = np.clip(baseline + np.random.default_rng(5).normal(scale=0.05, size=40_000), 0, 1)

    class Fitted:
        C, rows = 1.0, 1000

    whole = ev.baseline_section(Fitted(), labels, baseline, candidate, 0.01, 0, 60)
    sampled = ev.baseline_section(Fitted(), labels, baseline, candidate, 0.01, 0, 60, 5_000)
    assert sampled["auc"] == whole["auc"]
    spread = "difference_standard_deviation"
    assert whole[spread] > 0 and sampled[spread] == pytest.approx(whole[spread], rel=0.4)
