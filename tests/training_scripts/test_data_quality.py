"""data_quality.py: Model Monitor-format statistics, constraints and violation checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import data_quality as dq
from training_scripts import preprocess as pp


def _features(directory: Path, pattern: str) -> np.ndarray:
    frames = [pd.read_csv(f, header=None) for f in sorted(directory.glob(pattern))]
    return pd.concat(frames).iloc[:, 1:].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dq")
    generate_to_dir(8000, root / "raw", seed=11)
    pp.preprocess(root / "raw", SCHEMA_PATH, root / "pre", salt="x")
    generate_to_dir(3000, root / "raw_drift", seed=12, drift=1.5)
    pp.preprocess(root / "raw_drift", SCHEMA_PATH, root / "pre_drift", salt="x")
    manifest = json.loads((root / "pre" / "manifest" / "feature_manifest.json").read_text())
    names, kinds, categories = dq.feature_spec(manifest)
    train = _features(root / "pre" / "train", "train-*.csv")
    stats = dq.compute_statistics(train, names, kinds, categories=categories)
    return {
        "root": root,
        "manifest": manifest,
        "names": names,
        "kinds": kinds,
        "categories": categories,
        "train": train,
        "test": _features(root / "pre" / "test", "test.csv"),
        "drifted": _features(root / "pre_drift" / "train", "train-*.csv"),
        "stats": stats,
        "constraints": dq.suggest_constraints(stats, domains=categories),
    }


def _check(book: dict, data, **kwargs) -> list[dict]:
    current = dq.compute_statistics(
        data, book["names"], book["kinds"], categories=book["categories"]
    )
    return dq.check(current, book["stats"], book["constraints"], **kwargs)["violations"]


def _kinds_of(violations: list[dict]) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}


def test_statistics_follow_the_model_monitor_schema(book: dict) -> None:
    stats = book["stats"]
    assert stats["version"] == 0
    assert stats["dataset"]["item_count"] == len(book["train"])
    assert [f["name"] for f in stats["features"]] == book["names"]
    for index, feature in enumerate(stats["features"]):
        assert feature["boostline"]["column_index"] == index
        if book["kinds"][index] == "numerical":
            assert feature["inferred_type"] in ("Integral", "Fractional")
            num = feature["numerical_statistics"]
            assert set(num) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
            kll = num["distribution"]["kll"]
            assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
            assert len(kll["buckets"]) <= 10
            assert sum(b["count"] for b in kll["buckets"]) == num["common"]["num_present"]
            weight = sum(len(items) * 2**h for h, items in enumerate(kll["sketch"]["data"]))
            assert weight == num["common"]["num_present"]
            column = book["train"][:, index]
            assert num["common"]["num_missing"] == int(np.isnan(column).sum())
            assert num["mean"] == pytest.approx(np.nanmean(column))
            assert num["std_dev"] == pytest.approx(np.nanstd(column))
        else:
            assert feature["inferred_type"] == "String"
            string = feature["string_statistics"]
            values = {b["value"] for b in string["distribution"]["categorical"]["buckets"]}
            assert values <= set(book["categories"][feature["name"]])  # decoded names
            assert string["distinct_count"] == len(values)
    json.dumps(stats)  # plain JSON


def test_integral_and_fractional_types_are_inferred(book: dict) -> None:
    types = {f["name"]: f["inferred_type"] for f in book["stats"]["features"]}
    assert types["loan_amount"] == "Integral"
    assert types["interest_rate"] == "Fractional"


def test_sketch_cdf_is_close_to_the_exact_cdf() -> None:
    values = np.random.default_rng(0).lognormal(size=200_000)
    stats = dq.compute_statistics([values], ["x"], ["numerical"])
    feature = stats["features"][0]
    data = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    assert sum(len(level) for level in data) <= 2048 + len(data)
    xs, cdf = dq.sketch_cdf(feature)
    exact = np.searchsorted(np.sort(values), xs, side="right") / len(values)
    assert np.max(np.abs(cdf - exact)) < 2 / 2048


def test_constraints_are_suggested_from_statistics(book: dict) -> None:
    constraints = book["constraints"]
    assert constraints["version"] == 0
    by_name = {f["name"]: f for f in constraints["features"]}
    assert list(by_name) == book["names"]
    assert by_name["loan_amount"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["loan_amount"]["completeness"] == 1.0
    assert 0.9 < by_name["emp_length"]["completeness"] < 1.0  # ~5 % missing in the book
    assert by_name["grade"]["string_constraints"]["domains"] == list("ABCDEFG")
    config = constraints["monitoring_config"]
    assert config["datatype_check_threshold"] == 0.1
    assert config["distribution_constraints"]["comparison_threshold"] == 0.1
    assert config["distribution_constraints"]["perform_comparison"] == "Enabled"


def test_same_distribution_has_no_violations(book: dict) -> None:
    assert _check(book, book["test"]) == []


def test_a_scaled_feature_drifts(book: dict) -> None:
    data = book["test"].copy()
    j = book["names"].index("annual_income")
    data[:, j] *= 2
    violations = _check(book, data)
    assert _kinds_of(violations) == {("annual_income", "baseline_drift_check")}
    assert "exceeds threshold" in violations[0]["description"]
    distances = dq.distances(
        dq.compute_statistics(data, book["names"], book["kinds"], categories=book["categories"]),
        book["stats"],
    )
    assert distances["annual_income"] > 0.3
    assert distances["loan_amount"] < 0.1


def test_a_drifted_economy_is_reported(book: dict) -> None:
    drifted = {
        v[0] for v in _kinds_of(_check(book, book["drifted"])) if v[1] == "baseline_drift_check"
    }
    # the generator's drift lowers incomes and raises rates, dti and utilisation
    assert {"annual_income", "dti"} <= drifted


def test_per_feature_overrides_are_honoured(book: dict) -> None:
    data = book["test"].copy()
    data[:, book["names"].index("annual_income")] *= 2
    constraints = json.loads(json.dumps(book["constraints"]))
    for feature in constraints["features"]:
        if feature["name"] == "annual_income":
            feature["monitoringConfigOverrides"] = {"comparison_threshold": 0.99}
    current = dq.compute_statistics(
        data, book["names"], book["kinds"], categories=book["categories"]
    )
    assert dq.check(current, book["stats"], constraints)["violations"] == []
    constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Disabled"
    del constraints["features"][book["names"].index("annual_income")]["monitoringConfigOverrides"]
    assert dq.check(current, book["stats"], constraints)["violations"] == []


def test_small_samples_of_the_same_data_do_not_drift_under_robust(book: dict) -> None:
    assert _check(book, book["test"][:60]) == []


def test_more_missing_values_break_completeness(book: dict) -> None:
    data = book["test"].copy()
    j = book["names"].index("dti")
    data[np.random.default_rng(1).random(len(data)) < 0.3, j] = np.nan
    violations = _check(book, data)
    assert ("dti", "completeness_check") in _kinds_of(violations)
    assert all(v["feature_name"] == "dti" for v in violations)


def test_unknown_categories_are_reported(book: dict) -> None:
    data = book["test"].astype(object)
    j = book["names"].index("purpose")
    cats = book["categories"]["purpose"]
    # captured traffic may carry names instead of codes; both decode to the same names
    data[:, j] = [cats[int(v)] for v in book["test"][:, j]]
    assert _check(book, data) == []
    unknown = np.random.default_rng(2).random(len(data)) < 0.25
    data[unknown, j] = "crypto_mining"
    violations = _check(book, data)
    assert ("purpose", "categorical_values_check") in _kinds_of(violations)
    assert "crypto_mining" in next(
        v["description"]
        for v in violations
        if v["constraint_check_type"] == "categorical_values_check"
    )
    codes = book["test"].copy()
    k = book["names"].index("grade")
    codes[unknown, k] = 42  # a code the manifest does not know
    assert ("grade", "categorical_values_check") in _kinds_of(_check(book, codes))


def test_missing_and_extra_columns(book: dict) -> None:
    fewer = _check(book, book["test"][:, :-1])
    assert ("addr_state", "missing_column_check") in _kinds_of(fewer)
    more = np.column_stack([book["test"], np.ones(len(book["test"]))])
    kinds = _kinds_of(_check(book, more))
    assert (dq.positional_name(len(book["names"])), "extra_column_check") in kinds


def test_wrong_data_types_are_reported(book: dict) -> None:
    data = book["test"].astype(object)
    j = book["names"].index("fico_score")
    data[np.random.default_rng(3).random(len(data)) < 0.3, j] = "n/a"
    assert ("fico_score", "data_type_check") in _kinds_of(_check(book, data))
    fractional = book["test"].copy()
    k = book["names"].index("loan_amount")  # Integral in the baseline
    fractional[:, k] += 0.5
    assert ("loan_amount", "data_type_check") in _kinds_of(_check(book, fractional))


def test_positional_names_match_a_named_baseline(book: dict) -> None:
    names = [dq.positional_name(i) for i in range(len(book["names"]))]
    kinds = dict(zip(names, book["kinds"], strict=True))
    categories = {
        dq.positional_name(book["names"].index(n)): c for n, c in book["categories"].items()
    }
    current = dq.compute_statistics(book["test"], names, kinds, categories=categories)
    assert dq.check(current, book["stats"], book["constraints"]) == {"violations": []}


def test_cli_baseline_and_check(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = book["root"]
    manifest = root / "pre" / "manifest" / "feature_manifest.json"
    assert dq.main(
        ["baseline", "--data", str(root / "pre" / "train"), "--manifest", str(manifest),
         "--output-dir", str(tmp_path / "baseline"), "--label-first"]
    ) == 0  # fmt: skip
    statistics = json.loads((tmp_path / "baseline" / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == len(book["train"])

    # data capture of the endpoint: CSV features without the label, incomes doubled
    capture = tmp_path / "capture" / "2026" / "01" / "01" / "00"
    capture.mkdir(parents=True)
    j = book["names"].index("annual_income")
    lines = []
    for i, row in enumerate(book["test"]):
        row = row.copy()
        row[j] *= 2
        body = ",".join("" if np.isnan(v) else f"{v:g}" for v in row)
        record = {
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": body, "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                   "data": "0.1", "encoding": "CSV"},
            },
            "eventMetadata": {"eventId": str(i), "inferenceTime": "2026-01-01T00:00:00Z"},
            "eventVersion": "0",
        }  # fmt: skip
        lines.append(json.dumps(record))
    (capture / "capture.jsonl").write_text("\n".join(lines) + "\n")
    # JSON requests carry raw applications: named fields, categories as names
    applications = []
    for row in book["test"][:300]:
        app = {"application_id": "APP-1", "email": "someone@example.com"}
        for name, kind, value in zip(book["names"], book["kinds"], row, strict=True):
            if np.isnan(value):
                continue
            categories = book["categories"].get(name)
            app[name] = categories[int(value)] if kind == "categorical" else float(value)
        applications.append(app)
    json_records = [
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "application/json",
                    "mode": "INPUT",
                    "data": json.dumps({"instances": applications[i : i + 100]}),
                    "encoding": "JSON",
                }
            }
        }
        for i in range(0, 300, 100)
    ]
    (capture / "json.jsonl").write_text("\n".join(json.dumps(r) for r in json_records) + "\n")
    json_rows = dq.read_rows([capture / "json.jsonl"], book["names"])
    assert len(json_rows) == 300 and json_rows[0][book["names"].index("grade")] in "ABCDEFG"
    args = [
        "check", "--data", str(tmp_path / "capture"), "--manifest", str(manifest),
        "--baseline-statistics", str(tmp_path / "baseline" / "statistics.json"),
        "--constraints", str(tmp_path / "baseline" / "constraints.json"),
        "--output-dir", str(tmp_path / "check"),
    ]  # fmt: skip
    assert dq.main(args) == 0
    report = json.loads((tmp_path / "check" / "constraint_violations.json").read_text())
    assert _kinds_of(report["violations"]) == {("annual_income", "baseline_drift_check")}
    assert dq.main([*args, "--fail-on-violations"]) == 2

    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "out"))
    assert dq.main([*args[:2], str(tmp_path / "nowhere"), *args[3:]]) == 1
    assert "does not exist" in (tmp_path / "out" / "message").read_text()
