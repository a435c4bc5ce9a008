"""inference.py served as the SageMaker XGBoost image serves a single-model endpoint.

sagemaker-containers' Transformer(model_fn, transform_fn) inside its Flask Worker, under
gunicorn with two gevent workers, over real HTTP on 127.0.0.1 (tests/image/image_serving.py);
the sourcedir archive is pip-installed offline first, as the image's `serve` does. The
model carries a calibration (boostline/calibration.json) and starts from a logistic
regression's log-odds (boostline/linear_margin.json), as a cross-validated train.py job
writes them: the server answers the calibrated probability of the booster's margin from
the regression's, computed by the sibling modules calibration.py and linear_margin.py.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
import xgboost as xgb
from bad_inputs import CSV, JSON, bad_requests
from image_lane import HERE, Server, image_python, sourcedir_archive, toolkit_env

from boostline.local.training_job import free_port
from training_scripts import baseline, linear_margin

CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
PLATT = {"a": 0.7, "b": -0.3}  # the model's calibration: sigmoid(a * logit(p) + b)
START_TIMEOUT = 120.0  # pip install of the sourcedir, gunicorn and two workers


@pytest.fixture(scope="module")
def book(tmp_path_factory, make_loan_book) -> dict:
    """A model dir as train.py writes it, the test split encoded and raw, and the names."""
    loans = make_loan_book(tmp_path_factory.mktemp("image-serving-book"), rows=3000, seed=13)
    lines = (loans.prep / "test" / "test.csv").read_text().splitlines()
    with open(next(loans.raw.glob("*.csv")), newline="") as f:
        raw = {row["application_id"]: row for row in csv.DictReader(f)}
    with open(loans.prep / "test" / "test_meta.csv", newline="") as f:
        ids = [row["application_id"] for row in csv.DictReader(f)]
    manifest = json.loads(loans.manifest.read_text())
    y, x = loans.train[:, 0], loans.train[:, 1:]
    kinds = [c["kind"] == "categorical" for c in manifest["columns"]]
    regression = baseline.fit(y, x, kinds)
    start = linear_margin.from_baseline(regression, x, kinds)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.1, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(x, label=y, base_margin=start.margin(x)), 30)
    model_dir = loans.model_dir("model", bytes(booster.save_raw("ubj")))
    linear_margin.save(start, model_dir)
    calibration = {"format": "boostline-calibration", "version": 1, "method": "platt"}
    (model_dir / "boostline" / "calibration.json").write_text(
        json.dumps({**calibration, "params": PLATT})
    )
    return {
        "model_dir": model_dir,
        "features": [line.split(",", 1)[1] for line in lines],  # label dropped
        # The same applications, raw, in the same order, as a client sends them: the
        # schema's PII columns left out (the endpoint refuses them).
        "raw": [{k: v for k, v in raw[i].items() if k not in manifest["pii_columns"]} for i in ids],
        "names": [c["name"] for c in manifest["columns"]],
        "regression": regression.model,  # scikit-learn's own, for the reference
    }


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, book) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("image-serving")
    base = root / "opt-ml"
    shutil.copytree(book["model_dir"], base / "model")
    python = image_python(root / "python", [HERE / "image_serving.py"])
    port = free_port()
    env = toolkit_env(
        base,
        os.environ,
        SAGEMAKER_PROGRAM="inference.py",
        SAGEMAKER_SUBMIT_DIRECTORY=str(sourcedir_archive(root / "sourcedir")),
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
    )
    server = Server([str(python), "-m", "image_serving"], env, port, root / "server.log")
    try:
        server.wait_ready(START_TIMEOUT)
        yield server
    finally:
        server.stop()


def invoke(
    endpoint: Server,
    body: bytes,
    content_type: str | None = CSV,
    accept: str | None = None,
    **headers: str,
) -> tuple[int, dict[str, str], bytes]:
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    if accept is not None:
        sent["Accept"] = accept
    return endpoint.request("POST", "/invocations", body, sent)


def reference(book: dict, lines: list[str]) -> np.ndarray:
    """What XGBoost itself predicts for the encoded rows from scikit-learn's log-odds of
    the regression, calibrated, without inference.py or linear_margin.py."""
    booster = xgb.Booster(model_file=str(book["model_dir"] / "xgboost-model"))
    X = np.array([[float(v) if v else np.nan for v in line.split(",")] for line in lines])
    start = book["regression"].decision_function(X)
    p = booster.predict(xgb.DMatrix(X, missing=np.nan, base_margin=start), validate_features=False)
    p = p.astype(np.float64)
    return 1 / (1 + np.exp(-(PLATT["a"] * np.log(p / (1 - p)) + PLATT["b"])))


def json_probabilities(answer: bytes) -> list[float]:
    return [p["probability"] for p in json.loads(answer)["predictions"]]


def test_csv_answers_the_calibrated_probabilities(endpoint, book) -> None:
    lines = book["features"][:50]
    status, headers, answer = invoke(endpoint, "\n".join(lines).encode(), CSV, CSV)
    assert status == 200, answer
    assert headers["content-type"].startswith(CSV)
    got = [float(line.split(",")[0]) for line in answer.decode().splitlines()]
    assert got == pytest.approx(reference(book, lines).tolist(), abs=1e-6)


def test_json_answers_the_calibrated_probabilities(endpoint, book) -> None:
    body = json.dumps({"instances": book["raw"][:50]}).encode()
    status, headers, answer = invoke(endpoint, body, JSON, JSON)
    assert status == 200, answer
    assert headers["content-type"].startswith(JSON)
    expected = reference(book, book["features"][:50])
    assert json_probabilities(answer) == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_missing_content_type_is_json(endpoint, book) -> None:
    raw = json.dumps(book["raw"][0]).encode()
    status, headers, answer = invoke(endpoint, raw, None, JSON)
    assert status == 200, answer
    expected = reference(book, book["features"][:1])
    assert json_probabilities(answer) == pytest.approx(expected.tolist(), abs=1e-6)
    # a CSV row without a Content-Type is read as JSON, and refused as such
    status, headers, answer = invoke(endpoint, book["features"][0].encode(), None, CSV)
    assert status == 400 and headers["content-type"].startswith(JSON)
    assert "not valid JSON" in json.loads(answer)["error"]


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_a_missing_or_any_accept_answers_json(endpoint, book, accept) -> None:
    status, headers, answer = invoke(endpoint, book["features"][0].encode(), CSV, accept)
    assert status == 200, answer
    assert headers["content-type"].startswith(JSON)
    expected = reference(book, book["features"][:1])
    assert json_probabilities(answer) == pytest.approx(expected.tolist(), abs=1e-6)


def test_the_custom_attributes_header_asks_for_reasons(endpoint, book) -> None:
    row = book["features"][0].encode()
    status, _, answer = invoke(endpoint, row, CSV, JSON, **{CUSTOM: "explain=true;top_k=2"})
    assert status == 200, answer
    (prediction,) = json.loads(answer)["predictions"]
    assert len(prediction.get("reasons", [])) == 2, prediction
    assert {r["feature"] for r in prediction["reasons"]} <= set(book["names"])
    assert prediction["probability"] == pytest.approx(reference(book, [row.decode()])[0], abs=1e-6)
    status, _, answer = invoke(endpoint, row, CSV, CSV, **{CUSTOM: "explain=true;top_k=2"})
    assert status == 200 and answer.decode().count(",") == 1 + 2 * 2, answer


def test_every_malformed_request_is_a_4xx_with_a_message(endpoint, book) -> None:
    cases = bad_requests(book["features"], book["raw"], book["names"])
    wrong = []
    for case in cases:
        headers = {CUSTOM: case.custom_attributes} if case.custom_attributes else {}
        status, got, answer = invoke(endpoint, case.body, case.content_type, case.accept, **headers)
        try:
            error = json.loads(answer)["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        ok = (
            400 <= status < 500
            and got.get("content-type", "").startswith(JSON)
            and isinstance(error, str)
            and error
        )
        # The Worker decodes text/csv and application/json as UTF-8 (with replacement)
        # before inference.py sees them: the status holds, the message may differ.
        if ok and case.text_safe:
            ok = status == case.status and case.message in error
        if not ok:
            wrong.append((case.name, status, answer[:300]))
    assert not wrong, wrong
    assert len(cases) >= 70
    for _ in range(4):  # both workers still answer
        assert invoke(endpoint, book["features"][0].encode(), CSV, CSV)[0] == 200
