"""inference.py hooks on a real model trained on a synthetic loan book.

Every content type, every kind of bad input (status, row, field), encoding
parity between raw JSON applications and preprocess.py's encoded CSV, the
explain option, the container adapters, and a model without a manifest.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import types

import bad_inputs
import numpy as np
import pytest
import xgboost as xgb

from boostline.data.generator import SCHEMA_PATH, generate_to_dir
from training_scripts import calibration, preprocess
from training_scripts import inference as inf

CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"
CUSTOM = inf.CUSTOM_ATTRIBUTES_HEADER


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """generate -> preprocess -> quick train, laid out as train.py lays out a model dir."""
    root = tmp_path_factory.mktemp("inference")
    generate_to_dir(3000, root / "raw", seed=3)
    preprocess.preprocess(root / "raw", SCHEMA_PATH, root / "prep", salt="x")
    train = np.vstack(
        [
            np.genfromtxt(p, delimiter=",", filling_values=np.nan)
            for p in sorted((root / "prep" / "train").glob("*.csv"))
        ]
    )
    manifest = json.loads((root / "prep" / "manifest" / "feature_manifest.json").read_text())
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(train[:, 1:], label=train[:, 0], nthread=1),
        num_boost_round=30,
    )
    booster.feature_names = [c["name"] for c in manifest["columns"]]  # as train.py does
    model_dir = root / "model"
    (model_dir / "boostline").mkdir(parents=True)
    (model_dir / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    shutil.copy(
        root / "prep" / "manifest" / "feature_manifest.json",
        model_dir / "boostline" / "feature_manifest.json",
    )
    bare_dir = root / "bare"
    bare_dir.mkdir()
    shutil.copy(model_dir / "xgboost-model", bare_dir / "xgboost-model")

    with open(next((root / "raw").glob("*.csv")), newline="") as f:
        raw = {row["application_id"]: row for row in csv.DictReader(f)}
    with open(root / "prep" / "test" / "test_meta.csv", newline="") as f:
        ids = [row["application_id"] for row in csv.DictReader(f)]
    test_lines = (root / "prep" / "test" / "test.csv").read_text().splitlines()
    pii = set(manifest["pii_columns"])
    return {
        "model_dir": model_dir,
        "bare_dir": bare_dir,
        "manifest": manifest,
        # raw applications of the test split, in order, as a client sends them: without
        # the PII fields the endpoint refuses
        "test_raw": [{k: v for k, v in raw[i].items() if k not in pii} for i in ids],
        "test_raw_with_pii": [raw[i] for i in ids],
        "test_features": [line.split(",", 1)[1] for line in test_lines],  # label dropped
    }


@pytest.fixture(scope="module")
def model(book) -> inf.Model:
    return inf.load_model(book["model_dir"], threads=1)


@pytest.fixture()
def row(book) -> str:
    return book["test_features"][0]


def names(book) -> list[str]:
    return [c["name"] for c in book["manifest"]["columns"]]


def ok(response: inf.Response) -> bytes:
    assert response.status == 200, response.body
    return response.body


def error(response: inf.Response, status: int) -> dict:
    assert response.status == status, response.body
    assert response.content_type == JSON
    body = json.loads(response.body)
    assert set(body) == {"error", "row", "field"}
    return body


def probabilities(body: bytes, content_type: str) -> list[float]:
    if content_type == CSV:
        return [float(line.split(",")[0]) for line in body.decode().splitlines()]
    if content_type == JSONL:
        return [json.loads(line)["probability"] for line in body.decode().splitlines()]
    return [p["probability"] for p in json.loads(body)["predictions"]]


def reference(model: inf.Model, lines: list[str]) -> np.ndarray:
    """What XGBoost itself predicts for encoded lines (DMatrix path, no inference.py)."""
    X = np.array([[float(v) if v else np.nan for v in line.split(",")] for line in lines])
    return model.booster.predict(xgb.DMatrix(X, missing=np.nan), validate_features=False)


# --------------------------------------------------------------------------- predictions


def test_hooks_are_one_style_only() -> None:
    assert callable(inf.model_fn) and callable(inf.transform_fn)
    for name in ("input_fn", "predict_fn", "output_fn"):
        assert not hasattr(inf, name), "the container refuses transform_fn mixed with these"


def test_csv_predictions_match_xgboost(book, model) -> None:
    lines = book["test_features"][:50]
    body = ok(inf.handle(model, "\n".join(lines).encode(), CSV, CSV)).decode()
    expected = reference(model, lines)
    out = body.split("\n")
    assert len(out) == 50 and not body.endswith("\n")
    for line, p in zip(out, expected, strict=True):
        probability, decision = line.split(",")
        assert float(probability) == pytest.approx(float(p), abs=5e-7)
        assert decision == ("reject" if p >= 0.5 else "approve")


def test_json_of_raw_applications_matches_preprocessed_csv(book, model) -> None:
    """No training/serving skew: raw rows through JSON == preprocess's encoding through CSV."""
    raw, encoded = book["test_raw"], book["test_features"]
    from_json = ok(inf.handle(model, json.dumps(raw).encode(), JSON, JSON))
    from_csv = ok(inf.handle(model, "\n".join(encoded).encode(), CSV, JSON))
    assert from_json == from_csv
    X = inf.parse_json(model, json.dumps(raw).encode())[0]
    Y = np.array([[float(v) if v else np.nan for v in line.split(",")] for line in encoded])
    np.testing.assert_array_equal(X, Y)
    assert np.isnan(X).any()  # the book has missing values, and they survive as missing


@pytest.mark.parametrize(
    "wrap",
    [
        lambda rows: rows[0],
        lambda rows: rows,
        lambda rows: {"instances": rows},
    ],
    ids=["object", "list", "instances"],
)
def test_json_shapes(book, model, wrap) -> None:
    rows = book["test_raw"][:1]
    body = ok(inf.handle(model, json.dumps(wrap(rows)).encode(), JSON, JSON))
    (prediction,) = json.loads(body)["predictions"]
    assert set(prediction) == {"probability", "score", "default", "decision"}
    assert prediction["score"] == prediction["probability"]
    assert prediction["default"] is (prediction["probability"] >= 0.5)
    assert prediction["decision"] == ("reject" if prediction["default"] else "approve")


@pytest.mark.parametrize(
    ("content_type", "accept", "answer"),
    [
        # a missing or */* Accept answers JSON whatever the request, as the image's server
        (CSV, None, JSON),
        (CSV, "*/*", JSON),
        (JSONL, "*/*", JSON),
        (CSV, "image/png, */*;q=0.8", JSON),
        (JSON, None, JSON),
        (CSV, JSON, JSON),
        (JSON, CSV, CSV),
        (JSON, JSONL, JSONL),
        (CSV, "application/json; charset=utf-8", JSON),
        (CSV, "image/png, text/csv;q=0.5", CSV),
        ("text/csv; charset=UTF-8", CSV, CSV),
        (JSONL, JSONL, JSONL),
    ],
)
def test_content_types_and_accepts(book, model, content_type, accept, answer) -> None:
    if content_type.startswith(CSV):
        body = "\n".join(book["test_features"][:3]).encode()
    elif content_type == JSONL:
        body = "\n".join(json.dumps(r) for r in book["test_raw"][:3]).encode()
    else:
        body = json.dumps(book["test_raw"][:3]).encode()
    response = inf.handle(model, body, content_type, accept)
    assert response.content_type == answer
    expected = reference(model, book["test_features"][:3])
    assert probabilities(ok(response), answer) == pytest.approx(expected.tolist(), abs=5e-7)


def test_a_missing_content_type_is_json(book, model) -> None:
    body = json.dumps(book["test_raw"][:2]).encode()
    assert ok(inf.handle(model, body, None, JSON)) == ok(inf.handle(model, body, JSON, JSON))
    csv_body = "\n".join(book["test_features"][:2]).encode()
    assert "not valid JSON" in error(inf.handle(model, csv_body, "", CSV), 400)["error"]


@pytest.mark.parametrize("accept", [None, "", "*/*", "image/png, */*"])
def test_the_default_accept_comes_from_the_environment(book, model, monkeypatch, accept) -> None:
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", CSV)
    body = json.dumps(book["test_raw"][:3]).encode()
    response = inf.handle(model, body, JSON, accept)
    assert response.content_type == CSV and len(ok(response).splitlines()) == 3
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "image/png")
    refused = error(inf.handle(model, body, JSON, accept), 406)
    assert "cannot answer in 'image/png'" in refused["error"]


def test_many_rows_use_the_same_formatting(book, model) -> None:
    """Above a few dozen rows the output is assembled as bytes; it must read the same."""
    lines = (book["test_features"] * 2)[:300]
    body = "\n".join(lines).encode()
    p = inf.predict(model, inf.parse_csv(model, body))
    for out in (CSV, JSON, JSONL):
        fast = ok(inf.handle(model, body, CSV, out))
        per_row = b"".join(
            ok(inf.handle(model, line.encode(), CSV, out)) + b"\n" for line in lines
        ).decode()
        if out == JSON:
            rows = [json.loads(x)["predictions"][0] for x in per_row.splitlines()]
            assert json.loads(fast)["predictions"] == rows
        else:
            assert fast.decode() + "\n" == per_row
        assert probabilities(fast, out) == pytest.approx(p.tolist(), abs=5e-7)


def test_fast_and_strict_csv_parsers_agree(book, model) -> None:
    lines = book["test_features"] * 3  # ~60 KB: the pyarrow path
    data = "\n".join(lines).encode()
    arrow = inf._parse_arrow(data, model)
    small = inf._parse_small(data)
    strict = inf._parse_strict(data, model)
    np.testing.assert_array_equal(arrow, strict)
    np.testing.assert_array_equal(small, strict)
    quoted = "\n".join(",".join(f'"{v}"' for v in line.split(",")) for line in lines[:5])
    np.testing.assert_array_equal(inf.parse_csv(model, quoted.encode()), strict[:5])
    crlf = "\r\n".join(lines[:5]) + "\r\n"
    np.testing.assert_array_equal(inf.parse_csv(model, crlf.encode()), strict[:5])
    spaced = "\n".join(" , ".join(line.split(",")) for line in lines[:5])
    np.testing.assert_array_equal(inf.parse_csv(model, spaced.encode()), strict[:5])


def test_every_csv_path_reads_empty_fields_and_refuses_bad_numbers_alike(book) -> None:
    """Bodies of 1 line to past the pyarrow threshold, with empty fields at line starts,
    line ends and in runs: every path reads what the strict reader reads, and a malformed
    number gets the strict reader's 400 from each."""
    model = inf.load_model(book["bare_dir"], threads=1)  # no manifest: any field may be empty
    n = model.n_features
    line = book["test_features"][0]
    rows = [
        ",".join([""] * 2 + line.split(",")[2:]),  # two empty fields first
        ",".join(line.split(",")[:-3] + [""] * 3),  # three empty fields last
        ",".join(line.split(",")[:5] + [""] * 4 + line.split(",")[9:]),  # a run inside
    ]
    assert all(len(r.split(",")) == n for r in rows)
    for count in (1, inf._FEW_LINES - 1, inf._FEW_LINES, 40, 2000):
        lines = (rows * count)[:count]
        data = "\n".join(lines).encode()
        if count == 2000:
            assert len(data) > inf._SMALL_CSV_BYTES  # the pyarrow path
        np.testing.assert_array_equal(inf.parse_csv(model, data), inf._parse_strict(data, model))
        for bad in ("1e", "1.2.3", "--1", "+", ".", "1e+", "e5", "1-2"):
            broken = "\n".join(lines[:-1] + [bad + "," + lines[-1].split(",", 1)[1]]).encode()
            with pytest.raises(inf.InferenceError) as caught:
                inf._parse_strict(broken, model)
            answer = error(inf.handle(model, broken, CSV, CSV), 400)
            assert (answer["error"], answer["row"]) == (caught.value.message, count)


def test_the_quick_value_check_refuses_what_the_full_one_refuses(book, model) -> None:
    good = inf.parse_csv(model, "\n".join(book["test_features"][:50]).encode())
    inf.check_values(model, good)
    rng = np.random.default_rng(5)
    whole = np.flatnonzero(model.integer)
    bounded = np.flatnonzero(np.isfinite(model.upper))
    cases = [(np.inf, None), (-np.inf, None), (np.nan, np.flatnonzero(model.required))]
    cases += [(0.5, whole), (1e300, bounded)]
    for rows in (good[: inf._FEW_CHECK_ROWS], good):  # checked in Python, then by numpy
        for value, columns in cases:
            for _ in range(20):
                X = rows.copy()
                col = int(rng.choice(columns if columns is not None else model.n_features))
                X[rng.integers(len(X)), col] = value
                with pytest.raises(inf.InferenceError):
                    inf.check_values(model, X)
        X = rows.copy()
        X[:, np.flatnonzero(~model.required)] = np.nan  # missing where it may be: accepted
        inf.check_values(model, X)


def test_few_and_many_rows_print_probabilities_alike() -> None:
    """The per-row text and the byte-array paths round alike, halfway cases included."""
    k = np.arange(0, 1_000_001, 997)
    p = np.concatenate([(k + 0.5) / 1e6, k / 1e6, np.nextafter((k + 0.5) / 1e6, 0)])
    p = np.clip(p, 0, 1)
    digits = inf._digits(inf._scaled(p))
    assert [row.tobytes().decode() for row in digits] == inf._texts(p)
    p32 = p.astype(np.float32)  # a model without a calibration answers in float32
    assert [r.tobytes().decode() for r in inf._digits(inf._scaled(p32))] == inf._texts(p32)


def test_text_body_as_the_model_server_hands_it(book, model, row) -> None:
    as_bytes = ok(inf.handle(model, row.encode(), CSV, CSV))
    assert ok(inf.handle(model, row, CSV, CSV)) == as_bytes
    document = {"instances": book["test_raw"][:1]}  # the server may have parsed the JSON
    assert ok(inf.handle(model, document, JSON, JSON)) == ok(
        inf.handle(model, json.dumps(document), JSON, JSON)
    )


# --------------------------------------------------------------------------- explain


def test_explain_reasons_sum_to_the_margin(book, model) -> None:
    body = {"instances": book["test_raw"][:4], "explain": True, "top_k": 100}
    predictions = json.loads(ok(inf.handle(model, json.dumps(body).encode(), JSON, JSON)))
    for prediction in predictions["predictions"]:
        reasons = prediction["reasons"]
        assert len(reasons) == model.n_features  # top_k is capped at the feature count
        magnitudes = [abs(r["contribution"]) for r in reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)
        total = sum(r["contribution"] for r in reasons) + prediction["bias"]
        assert total == pytest.approx(prediction["margin"], abs=1e-4)
        p = prediction["probability"]
        assert prediction["margin"] == pytest.approx(math.log(p / (1 - p)), abs=1e-3)


def test_explain_top_k_from_custom_attributes(book, model, row) -> None:
    plain = ok(inf.handle(model, row.encode(), CSV, CSV)).decode()
    explained = ok(inf.handle(model, row.encode(), CSV, CSV, "explain=true; top_k=3")).decode()
    fields = explained.split(",")
    assert ",".join(fields[:2]) == plain
    assert len(fields) == 2 + 2 * 3
    assert set(fields[2::2]) <= set(names(book))
    contributions = [abs(float(c)) for c in fields[3::2]]
    assert contributions == sorted(contributions, reverse=True)
    as_json = json.loads(
        ok(inf.handle(model, row.encode(), CSV, JSON, "trace=abc,explain=1,top_k=3"))
    )
    reasons = as_json["predictions"][0]["reasons"]
    assert [r["feature"] for r in reasons] == fields[2::2]
    assert (
        "reasons"
        not in json.loads(ok(inf.handle(model, row.encode(), CSV, JSON, "x=y")))["predictions"][0]
    )


@pytest.mark.parametrize(
    ("attributes", "body_options", "message"),
    [
        ("explain=maybe", None, "'explain' must be true or false"),
        ("explain=true;top_k=0", None, "'top_k' must be at least 1"),
        ("explain=true;top_k=two", None, "'top_k' must be a whole number"),
        (None, {"explain": "perhaps"}, "'explain' must be true or false"),
        (None, {"explain": True, "top_k": 1.5}, "'top_k' must be a whole number"),
    ],
)
def test_bad_explain_options(book, model, attributes, body_options, message) -> None:
    if body_options is None:
        body, content_type = book["test_features"][0].encode(), CSV
    else:
        body = json.dumps({"instances": book["test_raw"][:1], **body_options}).encode()
        content_type = JSON
    assert message in error(inf.handle(model, body, content_type, JSON, attributes), 400)["error"]


# --------------------------------------------------------------------------- threshold


def test_threshold_from_environment(book, monkeypatch) -> None:
    lines = book["test_features"][:200]
    body = "\n".join(lines).encode()
    monkeypatch.setenv(inf.THRESHOLD_ENV, "0.2")
    model = inf.model_fn(str(book["model_dir"]))
    assert model.threshold == 0.2
    for line in ok(inf.handle(model, body, CSV, CSV)).decode().splitlines():
        p, decision = line.split(",")
        assert decision == ("reject" if float(p) >= 0.2 else "approve")
    monkeypatch.delenv(inf.THRESHOLD_ENV)
    assert inf.model_fn(str(book["model_dir"])).threshold == 0.5


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan", "abc"])
def test_invalid_threshold_stops_loading(book, monkeypatch, value) -> None:
    monkeypatch.setenv(inf.THRESHOLD_ENV, value)
    with pytest.raises(ValueError, match=inf.THRESHOLD_ENV):
        inf.model_fn(str(book["model_dir"]))


# --------------------------------------------------------------------------- calibration


@pytest.fixture(scope="module")
def calibrated_dir(book, tmp_path_factory):
    """The book's model with a Platt calibration beside it, as train.py writes one."""
    model_dir = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(book["model_dir"], model_dir)
    calibration.save(calibration.Calibrator("platt", {"a": 0.6, "b": -0.4}), model_dir)
    return model_dir


@pytest.fixture(scope="module")
def calibrated(calibrated_dir) -> inf.Model:
    return inf.load_model(calibrated_dir, threads=1)


def test_the_probability_is_the_calibrated_one_and_the_decision_follows_it(
    book, model, calibrated, calibrated_dir
) -> None:
    lines = book["test_features"][:300]
    body = "\n".join(lines).encode()
    raw = reference(model, lines).astype(np.float64)
    expected = 1 / (1 + np.exp(-(0.6 * np.log(raw / (1 - raw)) - 0.4)))
    assert np.abs(expected - raw).max() > 0.05  # the calibration moves the numbers
    for accept in (CSV, JSON):
        answered = probabilities(ok(inf.handle(calibrated, body, CSV, accept)), accept)
        assert answered == pytest.approx(expected.tolist(), abs=1e-6)
    threshold = float(np.median(expected))
    at = inf.load_model(calibrated_dir, threshold, threads=1)
    flags = [p["default"] for p in json.loads(ok(inf.handle(at, body, CSV, JSON)))["predictions"]]
    assert flags == (expected >= threshold).tolist()
    assert flags != (raw >= threshold).tolist()  # the booster's number would decide otherwise
    single = [
        probabilities(ok(inf.handle(calibrated, x.encode(), CSV, CSV)), CSV)[0] for x in lines[:5]
    ]
    assert single == pytest.approx(expected[:5].tolist(), abs=1e-6)


def test_explanations_keep_the_booster_margin_under_a_calibration(book, calibrated) -> None:
    body = {"instances": book["test_raw"][:3], "explain": True, "top_k": 100}
    predictions = json.loads(ok(inf.handle(calibrated, json.dumps(body).encode(), JSON, JSON)))
    for prediction in predictions["predictions"]:
        total = sum(r["contribution"] for r in prediction["reasons"]) + prediction["bias"]
        assert total == pytest.approx(prediction["margin"], abs=1e-4)
        expected = 1 / (1 + math.exp(-(0.6 * prediction["margin"] - 0.4)))
        assert prediction["probability"] == pytest.approx(expected, abs=1e-5)


def test_a_model_without_a_calibration_serves_the_booster_probability(book, model) -> None:
    assert model.calibrator is None and calibration.load(book["model_dir"]) is None


def test_a_calibration_that_cannot_be_applied_stops_loading(book, tmp_path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(book["model_dir"], broken)
    (broken / calibration.CALIBRATION_FILE).write_text('{"format": "boostline-calibration"}')
    with pytest.raises(calibration.CalibrationError, match="version None; this code reads"):
        inf.model_fn(str(broken))


# --------------------------------------------------------------------------- bad CSV input


def csv_case(book, row_index: int, column: str, value: str, rows: int = 3) -> bytes:
    lines = [line.split(",") for line in book["test_features"][:rows]]
    lines[row_index - 1][names(book).index(column)] = value
    return "\n".join(",".join(fields) for fields in lines).encode()


@pytest.mark.parametrize(("row_index", "column", "value", "message"), bad_inputs.CSV_VALUE_CASES)
def test_bad_csv_values_name_row_and_field(book, model, row_index, column, value, message):
    for rows in (3, 20, 400):  # the few-line, the numpy and the pyarrow paths
        body = error(
            inf.handle(model, csv_case(book, row_index, column, value, rows), CSV, CSV), 400
        )
        assert message in body["error"]
        assert (body["row"], body["field"]) == (row_index, column)
        assert f"row {row_index}" in body["error"] and repr(column) in body["error"]


def test_an_empty_code_is_refused_for_a_required_closed_category_only(book, model) -> None:
    # preprocessing rejects a row missing a required grade, so an encoded row never has one
    body = error(inf.handle(model, csv_case(book, 1, "grade", ""), CSV, CSV), 400)
    assert (body["row"], body["field"]) == (1, "grade")
    assert "is required but missing" in body["error"]
    # emp_length is optional: empty stays missing
    assert inf.handle(model, csv_case(book, 1, "emp_length", ""), CSV, CSV).status == 200


@pytest.mark.parametrize(
    ("body", "status", "row", "message"),
    [
        (b"", 400, None, "empty request body"),
        (b"\n\n", 400, None, "empty request body"),
        (b"1,2,3", 400, 1, "row 1 has 3 fields, expected 22 features"),
        (None, 400, 2, "row 2 has 23 fields"),  # one extra field on row 2
        (None, 400, 2, "row 2 is empty"),  # blank line between rows
        (b"\xff\xfe1,2", 400, 1, "not valid UTF-8"),
        (b"x" * (inf.MAX_PAYLOAD_BYTES + 1), 413, None, "exceeds"),
    ],
)
def test_bad_csv_bodies(book, model, body, status, row, message) -> None:
    lines = book["test_features"][:3]
    if body is None and "23" in message:
        body = "\n".join([lines[0], lines[1] + ",1", lines[2]]).encode()
    elif body is None:
        body = "\n".join([lines[0], "", lines[1]]).encode()
    result = error(inf.handle(model, body, CSV, CSV), status)
    assert message in result["error"]
    assert result["row"] == row


def test_unsupported_types(book, model, row) -> None:
    assert (
        "not supported" in error(inf.handle(model, row.encode(), "text/plain", CSV), 415)["error"]
    )
    assert (
        "charset"
        in error(inf.handle(model, row.encode(), "text/csv; charset=latin-1", CSV), 415)["error"]
    )
    assert "cannot answer" in error(inf.handle(model, row.encode(), CSV, "text/html"), 406)["error"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (lambda line: line.replace(",", ",abc,", 1), "row 1235 has 23 fields"),
        (lambda line: "", "row 1235 is empty"),
        (lambda line: "nan" + line[line.index(",") :], "row 1235, field 'loan_amount'"),
        (lambda line: line.replace(",", ",\xe9", 1), "row 1235, field 'interest_rate'"),
    ],
    ids=["extra field", "blank line", "nan", "non-ascii"],
)
def test_errors_deep_in_a_large_body(book, model, line, message) -> None:
    lines = (book["test_features"] * 4)[:1500]  # over 16 KB: the pyarrow reader
    lines[1234] = line(lines[1234])
    result = error(inf.handle(model, "\n".join(lines).encode(), CSV, CSV), 400)
    assert result["row"] == 1235 and message in result["error"]


# --------------------------------------------------------------------------- bad JSON input


def json_case(book, row_index: int, field: str, value, rows: int = 3) -> bytes:
    instances = [dict(r) for r in book["test_raw"][:rows]]
    if value is KeyError:
        del instances[row_index - 1][field]
    else:
        instances[row_index - 1][field] = value
    return json.dumps({"instances": instances}).encode()


@pytest.mark.parametrize(("row_index", "field", "value", "message"), bad_inputs.JSON_VALUE_CASES)
def test_bad_json_values_name_row_and_field(book, model, row_index, field, value, message):
    body = error(inf.handle(model, json_case(book, row_index, field, value), JSON, JSON), 400)
    assert message in body["error"]
    assert (body["row"], body["field"]) == (row_index, field)


def test_json_encoding_follows_preprocess(book, model) -> None:
    base = dict(book["test_raw"][0])
    X0 = inf.parse_json(model, json.dumps(base))[0]
    same = [
        {**base, "favourite_colour": "red"},  # a field the schema does not name: ignored
        {**base, "fico_score": int(base["fico_score"]), "loan_amount": float(base["loan_amount"])},
        {**base, "grade": f"  {base['grade']} ", "fico_score": f" {base['fico_score']} "},
    ]
    for instance in same:
        np.testing.assert_array_equal(inf.parse_json(model, json.dumps(instance))[0], X0)
    optional = {**base, "emp_length": None, "revol_util": ""}
    X = inf.parse_json(model, json.dumps(optional))[0]
    assert np.isnan(X[0, names(book).index("emp_length")])
    assert np.isnan(X[0, names(book).index("revol_util")])
    absent = {k: v for k, v in base.items() if k != "mort_acc"}
    assert np.isnan(inf.parse_json(model, json.dumps(absent))[0][0, names(book).index("mort_acc")])


# --------------------------------------------------------------------------- categories, PII


def _model_with(book, tmp_path, **changes: dict) -> inf.Model:
    """The test model with some manifest columns changed (e.g. an open category list)."""
    model_dir = tmp_path / "model"
    shutil.copytree(book["model_dir"], model_dir)
    manifest = json.loads(json.dumps(book["manifest"]))
    for column in manifest["columns"]:
        column.update(changes.get(column["name"], {}))
        if changes.get(column["name"], {}).get("closed") == "absent":
            del column["closed"]
    (model_dir / inf.MANIFEST_FILE).write_text(json.dumps(manifest))
    return inf.load_model(model_dir, threads=1)


def test_a_value_outside_a_closed_category_list_is_refused_as_preprocessing_refuses_it(
    book, model
) -> None:
    base = dict(book["test_raw"][0])
    for field, value in (("purpose", "space_travel"), ("home_ownership", "CASTLE")):
        instances = [base, {**base, field: value}]
        for body, content_type in (
            (json.dumps({"instances": instances}), JSON),
            ("\n".join(json.dumps(i) for i in instances), JSONL),
        ):
            answer = error(inf.handle(model, body, content_type, JSON), 400)
            assert (answer["row"], answer["field"]) == (2, field)
            categories = next(c for c in book["manifest"]["columns"] if c["name"] == field)
            assert f"allowed values ({', '.join(categories['categories'])})" in answer["error"]
            assert value not in answer["error"]  # the value sent is never quoted
    # preprocessing: the same value of the same field rejects the row
    import pyarrow as pa

    raw = dict(book["test_raw_with_pii"][0], purpose="space_travel")
    table = pa.table({k: pa.array([v or None], pa.string()) for k, v in raw.items()})  # as read
    schema = preprocess.load_schema(SCHEMA_PATH)
    assert preprocess.validate(table, schema)[2] == [["purpose: unknown category"]]


def test_an_unseen_value_of_an_open_category_list_is_missing(book, tmp_path) -> None:
    # open: the schema lists no values, the categories were learned from the training rows
    opened = _model_with(book, tmp_path, purpose={"closed": False})
    base = dict(book["test_raw"][0])
    X = inf.parse_json(opened, json.dumps({**base, "purpose": "space_travel"}))[0]
    assert np.isnan(X[0, names(book).index("purpose")])
    assert inf.handle(opened, csv_case(book, 1, "purpose", ""), CSV, CSV).status == 200


def test_a_manifest_without_closed_counts_required_categories_as_closed(book, tmp_path) -> None:
    old = _model_with(
        book,
        tmp_path,
        purpose={"closed": "absent"},
        addr_state={"closed": "absent", "required": False},
    )
    base = dict(book["test_raw"][0])
    refused = inf.handle(old, json.dumps({**base, "purpose": "space_travel"}), JSON, JSON)
    assert error(refused, 400)["field"] == "purpose"
    X = inf.parse_json(old, json.dumps({**base, "addr_state": "ZZ"}))[0]
    assert np.isnan(X[0, names(book).index("addr_state")])


def test_a_long_allowed_list_is_shortened(book, model) -> None:
    answer = error(
        inf.handle(model, json.dumps({**book["test_raw"][0], "addr_state": "ZZ"}), JSON, JSON), 400
    )
    assert "... (51 in all)" not in answer["error"]  # 51 states: listed in full
    assert "WY)" in answer["error"]
    spec = inf.Category("x", True, True, {str(i): float(i) for i in range(100)})
    assert spec.allowed().endswith(", 59, ... (100 in all)")


def test_pii_fields_are_refused_by_name_never_by_value(book, model) -> None:
    with_pii = book["test_raw_with_pii"][:3]
    pii_values = [with_pii[0][c] for c in ("email", "full_name", "phone", "national_id")]
    bodies = [
        (json.dumps(with_pii[0]), JSON, 1),
        (json.dumps({"instances": [book["test_raw"][0], with_pii[1]]}), JSON, 2),
        (json.dumps(with_pii), JSON, 1),
        ("\n".join(json.dumps(r) for r in [book["test_raw"][0], with_pii[2]]), JSONL, 2),
        (json.dumps({**book["test_raw"][0], "email": None}), JSON, 1),  # even empty
    ]
    for body, content_type, row in bodies:
        answer = error(inf.handle(model, body, content_type, JSON), 400)
        assert answer["row"] == row and answer["field"] in book["manifest"]["pii_columns"]
        assert "'email'" in answer["error"] and "personal data" in answer["error"]
        assert not any(value and value in answer["error"] for value in pii_values)
    only_phone = {**book["test_raw"][0], "phone": with_pii[0]["phone"]}
    answer = error(inf.handle(model, json.dumps(only_phone), JSON, JSON), 400)
    assert answer["field"] == "phone" and "'email'" not in answer["error"]


DEEP_LIST = b"[" * 100_000 + b"]" * 100_000  # deeper than the JSON parser's recursion limit
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize(
    ("body", "content_type", "status", "row", "message"),
    [
        (b"{not json", JSON, 400, None, "not valid JSON"),
        (b"[]", JSON, 400, None, "no applications"),
        (b'{"instances": []}', JSON, 400, None, "no applications"),
        (b'{"instances": {"a": 1}}', JSON, 400, None, "'instances' must be a list"),
        (b'[{"fico_score": 700}, 5]', JSON, 400, 2, "row 2 must be a JSON object"),
        (b'"hello"', JSON, 400, 1, "row 1 must be a JSON object"),
        (b'{"a": "\xff"}', JSON, 400, None, "not valid UTF-8"),
        (b'{"a": 1}\n\n{"a": 2}', JSONL, 400, 2, "row 2 is empty"),
        (b'{"a": 1}\n{"a": ', JSONL, 400, 2, "row 2 is not valid JSON"),
        pytest.param(DEEP_LIST, JSON, 400, None, "nested too deeply", id="deep-json"),
        pytest.param(b'{"a": 1}\n' + DEEP_LIST, JSONL, 400, 2, "nested", id="deep-jsonl-list"),
        pytest.param(b'{"a": 1}\n' + DEEP_OBJECT, JSONL, 400, 2, "nested", id="deep-jsonl-obj"),
    ],
)
def test_bad_json_bodies(model, body, content_type, status, row, message) -> None:
    result = error(inf.handle(model, body, content_type, JSON), status)
    assert message in result["error"]
    assert result["row"] == row


# --------------------------------------------------------------------------- model dirs


def test_model_without_manifest_serves_csv_only(book, model) -> None:
    bare = inf.model_fn(str(book["bare_dir"]))
    lines = book["test_features"][:20]
    body = "\n".join(lines).encode()
    assert ok(inf.handle(bare, body, CSV, CSV)) == ok(inf.handle(model, body, CSV, CSV))
    result = error(inf.handle(bare, json.dumps(book["test_raw"][:1]), JSON, JSON), 415)
    assert "no feature manifest" in result["error"] and "text/csv" in result["error"]
    bad = error(inf.handle(bare, b"1,abc" + b",1" * 20, CSV, CSV), 400)
    assert bad["field"] == "interest_rate"  # the booster's feature names (train.py sets them)
    nameless = inf.load_model(book["bare_dir"])
    nameless.booster.feature_names = None
    (bare_dir := book["bare_dir"] / "nameless").mkdir(exist_ok=True)
    (bare_dir / "xgboost-model").write_bytes(nameless.booster.save_raw("ubj"))
    bad = error(inf.handle(inf.load_model(bare_dir), b"1,abc" + b",1" * 20, CSV, CSV), 400)
    assert bad["field"] == "column 2"  # without any names, columns are numbered


def test_load_errors_are_clear(book, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="xgboost-model"):
        inf.load_model(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(book["model_dir"], broken)
    manifest = json.loads((broken / inf.MANIFEST_FILE).read_text())
    manifest["columns"] = manifest["columns"][:-1]
    (broken / inf.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="lists 21 columns but the booster expects 22"):
        inf.load_model(broken)


# --------------------------------------------------------------------------- container adapters


class FakeProcessor:
    def __init__(self, headers):
        self.headers = headers

    def get_request_properties(self):
        return self.headers


class FakeContext:
    """The sagemaker-inference toolkit's context (mms.context.Context) as far as used: what
    a multi-model endpoint passes (the local server passes one like it)."""

    def __init__(self, headers=None):
        self.request_processor = [FakeProcessor(headers or {})]
        self.status = None

    def set_response_status(self, code=200, phrase="", idx=0):
        self.status = (code, phrase)


def test_transform_fn_with_model_server_context(model, row) -> None:
    context = FakeContext({"x-amzn-sagemaker-custom-attributes": "explain=true;top_k=2"})
    body, content_type = inf.transform_fn(model, row.encode(), CSV, CSV, context)
    assert content_type == CSV and body.count(b",") == 1 + 2 * 2
    assert context.status is None
    body, content_type = inf.transform_fn(model, b"1,2", CSV, CSV, context)
    assert context.status == (400, "Bad Request")
    assert content_type == JSON and json.loads(body)["row"] == 1


def single_model_server(model: inf.Model):
    """What transform_fn sees on a single-model endpoint, on the real Flask.

    sagemaker-containers 2.8.6 (not installable here; the image lane runs it) routes
    POST /invocations of its Flask Worker to Transformer.transform, which calls
    transform_fn(model, request.content, request.content_type, request.accept): four
    arguments, no context, CSV and JSON bodies as str.
    """
    flask = pytest.importorskip("flask")
    app = flask.Flask("worker")

    def invocations():
        content_type = flask.request.headers.get("Content-Type") or JSON
        accept = flask.request.headers.get("Accept") or JSON
        body = flask.request.get_data(as_text=content_type in (JSON, CSV))
        result = inf.transform_fn(model, body, content_type, accept)
        return flask.Response(result[0], mimetype=result[1])

    app.add_url_rule("/invocations", view_func=invocations, methods=["POST"])
    return app.test_client()


@pytest.mark.parametrize("name", [CUSTOM, CUSTOM.lower()])
def test_the_explain_header_works_where_no_context_is_passed(model, row, name) -> None:
    client = single_model_server(model)
    headers = {"Content-Type": CSV, "Accept": CSV, name: "explain=true;top_k=2"}
    answer = client.post("/invocations", data=row, headers=headers)
    assert answer.status_code == 200 and answer.data.count(b",") == 1 + 2 * 2
    plain = client.post("/invocations", data=row, headers={"Content-Type": CSV, "Accept": CSV})
    assert plain.status_code == 200 and plain.data.count(b",") == 1


def test_transform_fn_runs_without_flask(model, row, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # import flask raises ImportError
    body, content_type = inf.transform_fn(model, row.encode(), CSV, CSV)
    assert content_type == CSV and body.count(b",") == 1


def test_transform_fn_without_container(model, row, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker_containers", None)  # as outside the image
    body, content_type = inf.transform_fn(model, row.encode(), CSV, JSON)
    assert content_type == JSON and json.loads(body)["predictions"]
    with pytest.raises(inf.InferenceError) as raised:
        inf.transform_fn(model, row.encode(), "text/plain", CSV)
    assert raised.value.status == 415


def test_transform_fn_answers_the_single_model_server_with_its_response(model, monkeypatch) -> None:
    class Response:
        def __init__(self, response, status, mimetype):
            self.response, self.status, self.mimetype = response, status, mimetype

    module = types.ModuleType("sagemaker_containers.beta.framework.worker")
    module.Response = Response
    framework = types.ModuleType("sagemaker_containers.beta.framework")
    framework.worker = module
    for name, mod in {
        "sagemaker_containers": types.ModuleType("sagemaker_containers"),
        "sagemaker_containers.beta": types.ModuleType("sagemaker_containers.beta"),
        "sagemaker_containers.beta.framework": framework,
        "sagemaker_containers.beta.framework.worker": module,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    result = inf.transform_fn(model, b"1,2", CSV, CSV)
    assert isinstance(result, Response)
    assert result.status == 400 and result.mimetype == JSON
    assert json.loads(result.response)["row"] == 1


def test_transform_fn_with_an_old_context_raises_the_toolkit_error(model, monkeypatch) -> None:
    class GenericInferenceToolkitError(Exception):
        def __init__(self, status_code, message=None, phrase=None):
            super().__init__(message)
            self.status_code = status_code

    errors = types.ModuleType("sagemaker_inference.errors")
    errors.GenericInferenceToolkitError = GenericInferenceToolkitError
    monkeypatch.setitem(sys.modules, "sagemaker_inference", types.ModuleType("sagemaker_inference"))
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", errors)

    class OldContext:
        request_processor = [FakeProcessor({})]

    with pytest.raises(GenericInferenceToolkitError) as raised:
        inf.transform_fn(model, b"1,2", CSV, CSV, OldContext())
    assert raised.value.status_code == 400


def test_model_fn_takes_undecoded_bodies_from_the_toolkit(book, monkeypatch) -> None:
    """Else the toolkit decodes CSV/JSON itself and invalid UTF-8 ends as a 500."""
    content_types = types.ModuleType("sagemaker_inference.content_types")
    content_types.UTF8_TYPES = [JSON, CSV]
    package = types.ModuleType("sagemaker_inference")
    package.content_types = content_types
    monkeypatch.setitem(sys.modules, "sagemaker_inference", package)
    monkeypatch.setitem(sys.modules, "sagemaker_inference.content_types", content_types)
    inf.model_fn(str(book["model_dir"]))
    assert content_types.UTF8_TYPES == []


def test_a_logitraw_model_answers_probabilities_as_the_evaluation_scores_them(tmp_path) -> None:
    from training_scripts import evaluate as ev

    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(float)
    booster = xgb.train(
        {"objective": "binary:logitraw", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(x, label=y),
        10,
    )
    booster.save_model(str(tmp_path / "xgboost-model.json"))
    (tmp_path / "xgboost-model.json").rename(tmp_path / inf.MODEL_FILE)
    platt = calibration.Calibrator("platt", {"a": 0.8, "b": 0.1})
    calibration.save(platt, tmp_path)
    model = inf.load_model(tmp_path, threshold=0.5, threads=1)
    served = inf.predict(model, x)
    margin = booster.predict(xgb.DMatrix(x), output_margin=True).astype(np.float64)
    np.testing.assert_allclose(served, platt.apply(1.0 / (1.0 + np.exp(-margin))), rtol=1e-6)
    assert ((served > 0) & (served < 1)).all()
    scored = ev.predict(ev.load_model(tmp_path, tmp_path / "scratch"), x, nthread=1)
    np.testing.assert_allclose(served, scored, rtol=1e-5)


def test_a_blank_line_is_refused_for_a_one_feature_model(tmp_path) -> None:
    x = np.arange(20, dtype=float).reshape(-1, 1)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 9), 2
    )
    booster.save_model(str(tmp_path / "xgboost-model.json"))
    (tmp_path / "xgboost-model.json").rename(tmp_path / inf.MODEL_FILE)
    model = inf.load_model(tmp_path, threshold=0.5, threads=1)
    assert inf.parse_csv(model, b"1\n2").shape == (2, 1)
    with pytest.raises(inf.InferenceError):
        inf.parse_csv(model, b"1\n\n2")
