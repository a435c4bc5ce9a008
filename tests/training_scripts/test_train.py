"""training_scripts/train.py on one host, run in this process against real XGBoost.

Multi-host runs go through the local training job; see tests/boostline/local/.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from boostline.local.training_job import Channel, run_training_job
from training_scripts import calibration, inference, linear_margin, shard_iterator, train

TRAIN_PY = Path(train.__file__).resolve()

FEATURES = 10


def write_csv(
    path: Path, rows: int, *, seed: int = 0, shift: float = -0.5, missing: float = 0.05
) -> tuple[int, int]:
    """Learnable logistic data, label first, some empty fields; returns (negatives, positives)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    logits = x @ np.linspace(-1.5, 1.5, FEATURES) + shift
    y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    mask = rng.random(x.shape) < missing
    columns = {"label": pa.array(y)}
    columns.update({f"f{i}": pa.array(x[:, i], mask=mask[:, i]) for i in range(FEATURES)})
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False)
    pacsv.write_csv(pa.table(columns), path, write_options=options)
    return int((y == 0).sum()), int(y.sum())


def write_manifest(directory: Path, count: int = FEATURES) -> list[str]:
    names = [f"feature_{i}" for i in range(count)]
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"columns": [{"name": name, "kind": "numerical"} for name in names]}
    (directory / train.FEATURE_MANIFEST).write_text(json.dumps(manifest))
    return names


@dataclass
class Job:
    root: Path
    train_dir: Path
    validation_dir: Path
    manifest_dir: Path
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path

    @property
    def failure(self) -> str:
        return (self.output_dir / "failure").read_text()

    @property
    def metrics(self) -> dict:
        return json.loads((self.output_dir / "data" / train.METRICS_FILE).read_text())


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Job:
    """The SageMaker environment of a one-host job, pointing into tmp_path."""
    data = tmp_path / "input" / "data"
    paths = Job(
        root=tmp_path,
        train_dir=data / "train",
        validation_dir=data / "validation",
        manifest_dir=data / "manifest",
        model_dir=tmp_path / "model",
        output_dir=tmp_path / "output",
        checkpoint_dir=tmp_path / "checkpoints",
    )
    paths.train_dir.mkdir(parents=True)
    for name in ("SM_HPS", "SM_CHANNEL_MANIFEST", "SM_CHANNEL_VALIDATION", "TRAINING_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "SM_MODEL_DIR": paths.model_dir,
        "SM_OUTPUT_DIR": paths.output_dir,
        "SM_OUTPUT_DATA_DIR": paths.output_dir / "data",
        "SM_CHANNEL_TRAIN": paths.train_dir,
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_CPUS": "1",
        "BOOSTLINE_CHECKPOINT_DIR": paths.checkpoint_dir,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return paths


def add_validation(job: Job, monkeypatch: pytest.MonkeyPatch, rows: int = 1500) -> None:
    write_csv(job.validation_dir / "validation.csv", rows, seed=99)
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(job.validation_dir))


def fail(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        train.main(argv)
    assert exited.value.code != 0


# -- hyperparameters ---------------------------------------------------------------------


def test_hyperparameters_parse_typed_with_defaults() -> None:
    hps = train.parse_hyperparameters(
        ["--max_depth", "6", "--eta", "0.1", "--num_round", "40.0", "--subsample=0.8"]
    )
    assert hps.booster == {"max_depth": 6, "eta": 0.1, "subsample": 0.8}
    assert isinstance(hps.booster["max_depth"], int)
    assert (hps.num_round, hps.objective, hps.eval_metric) == (40, "binary:logistic", "auc")
    assert (hps.tree_method, hps.checkpoint_interval, hps.nthread) == ("hist", 10, None)
    params = hps.xgb_params(nthread=3, scale_pos_weight=2.5)
    assert params["nthread"] == 3 and params["scale_pos_weight"] == 2.5
    assert params["max_depth"] == 6 and params["tree_method"] == "hist"


def test_every_documented_hyperparameter_is_accepted() -> None:
    values = {
        "alpha": "0.5", "colsample_bylevel": "0.9", "colsample_bytree": "0.8", "eta": "1",
        "gamma": "0", "lambda": "2", "max_delta_step": "0", "max_depth": "0",
        "min_child_weight": "3", "num_round": "5", "subsample": "1", "objective":
        "binary:logitraw", "eval_metric": "logloss", "early_stopping_rounds": "3",
        "scale_pos_weight": "4.5", "tree_method": "approx", "seed": "7", "nthread": "2",
        "checkpoint_interval": "1",
    }  # fmt: skip
    argv = [token for name, value in values.items() for token in (f"--{name}", value)]
    hps = train.parse_hyperparameters(argv)
    assert hps.scale_pos_weight == 4.5 and hps.early_stopping_rounds == 3
    assert hps.eval_metric == "logloss" and not hps.maximize
    assert len(hps.booster) == 10


def test_sm_hps_is_read_and_arguments_win() -> None:
    hps = train.parse_hyperparameters(
        ["--eta", "0.2"], '{"eta": 0.5, "max_depth": 3, "_tuning_objective_metric": "x"}'
    )
    assert hps.booster == {"eta": 0.2, "max_depth": 3}


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("learning_rate", "0.1", "unknown hyperparameter"),
        ("eta", "0", "(0, 1]"),
        ("max_depth", "-1", "integer >= 0"),
        ("max_depth", "2.5", "integer >= 0"),
        ("num_round", "abc", "integer >= 1"),
        ("subsample", "1.5", "(0, 1]"),
        ("alpha", "nan", ">= 0"),
        ("objective", "reg:squarederror", "one of binary:logistic"),
        ("tree_method", "gpu_hist", "one of hist"),
        ("min_child_rows", "0", "> 0"),
    ],
)
def test_bad_hyperparameter_is_named(name: str, value: str, reason: str) -> None:
    with pytest.raises(train.HyperparameterError) as raised:
        train.parse_hyperparameters(["--num_round", "5", f"--{name}", value])
    assert raised.value.name == name
    assert f"'{name}'" in str(raised.value) and reason in str(raised.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["--unknown_hp", "1"],
        ["--eta", "0"],
        ["--max_depth", "-1"],
        ["--num_round", "abc"],
    ],
)
def test_bad_hyperparameter_fails_the_job_with_a_failure_file(job: Job, argv: list[str]) -> None:
    write_csv(job.train_dir / "part-0.csv", 200)
    fail(argv)
    name = argv[0][2:]
    assert f"hyperparameter '{name}'" in job.failure
    assert not (job.model_dir / train.MODEL_FILE).exists()


# -- training on one host ------------------------------------------------------------------


def test_single_host_learns_and_saves_a_loadable_model(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 2000, seed=1)
    write_csv(job.train_dir / "part-1.csv", 1500, seed=2)
    (job.train_dir / ".hidden.csv").write_text("garbage\n")
    add_validation(job, monkeypatch)
    names = write_manifest(job.manifest_dir)
    monkeypatch.setenv("SM_CHANNEL_MANIFEST", str(job.manifest_dir))

    train.main(["--num_round", "60", "--max_depth", "3", "--eta", "0.2"])

    metrics = job.metrics
    assert metrics["rows"] == 3500 and metrics["features"] == FEATURES
    # no class-ratio weighting unless asked for: the scores stay probabilities
    assert metrics["scale_pos_weight"] == 1.0
    assert metrics["best_validation_score"] > 0.7
    assert not (job.output_dir / "failure").exists()
    # the built-in server loads every top-level file: only the booster sits there
    assert sorted(p.name for p in job.model_dir.iterdir()) == [train.EXTRAS_DIR, train.MODEL_FILE]
    assert (job.model_dir / train.EXTRAS_DIR / train.FEATURE_MANIFEST).is_file()

    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert booster.feature_names == names
    raw = (job.model_dir / train.MODEL_FILE).read_bytes()
    digest = (job.output_dir / "data" / train.DIGEST_FILE).read_text().strip()
    assert digest == metrics["model_sha256"] == __import__("hashlib").sha256(raw).hexdigest()

    table = pacsv.read_csv(
        job.validation_dir / "validation.csv",
        read_options=pacsv.ReadOptions(autogenerate_column_names=True),
    )
    data = np.column_stack([c.to_numpy(zero_copy_only=False) for c in table.columns])
    predictions = booster.predict(xgb.DMatrix(data[:, 1:], feature_names=names))
    assert roc_auc_score(data[:, 0], predictions) > 0.7
    assert "round 0 train-auc:" in capsys.readouterr().out


def test_metric_regexes_read_the_log_and_the_last_match_is_the_best(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 2500)
    add_validation(job, monkeypatch)

    train.main(["--num_round", "80", "--eta", "0.5", "--max_depth", "6"])

    log = capsys.readouterr().out
    regex = {d["Name"]: d["Regex"] for d in train.METRIC_DEFINITIONS}
    assert set(regex) == {"validation:auc", "train:auc"}
    validation = [float(v) for v in re.findall(regex["validation:auc"], log)]
    per_round = [float(v) for v in re.findall(r"^round \d+ .*validation-auc: (\S+)$", log, re.M)]
    assert len(per_round) >= 10
    assert validation[-1] == max(per_round)
    assert validation[-1] == pytest.approx(job.metrics["best_validation_score"], abs=1e-6)
    assert re.findall(regex["train:auc"], log)
    lines = [line for line in log.splitlines() if "validation-auc:" in line]
    assert lines[-1].startswith("best validation-auc:")


def test_early_stopping_keeps_the_model_up_to_the_best_round(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 1500)
    add_validation(job, monkeypatch, rows=500)

    train.main(["--num_round", "400", "--eta", "0.8", "--early_stopping_rounds", "5"])

    metrics = job.metrics
    assert metrics["stopped_early"]
    assert metrics["rounds"] == metrics["best_iteration"] + 1 < 400
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert booster.num_boosted_rounds() == metrics["rounds"]


def test_given_scale_pos_weight_is_used_as_is(job: Job) -> None:
    write_csv(job.train_dir / "part-0.csv", 300)
    train.main(["--num_round", "3", "--scale_pos_weight", "7.5"])
    assert job.metrics["scale_pos_weight"] == 7.5


# -- leaf size in rows ---------------------------------------------------------------------


def _smallest_leaf_cover(job: Job) -> float:
    """The least Hessian sum of any leaf: XGBoost keeps it at min_child_weight or more."""
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    nodes = booster.trees_to_dataframe()
    return float(nodes.loc[nodes["Feature"] == "Leaf", "Cover"].min())


@pytest.mark.parametrize("cv_max_rows", ["1000", "0"])
def test_min_child_rows_is_min_child_weight_at_the_base_rate_of_the_rows_trained_on(
    job: Job, monkeypatch: pytest.MonkeyPatch, cv_max_rows: str
) -> None:
    negatives, positives = write_csv(job.train_dir / "part-0.csv", 600, seed=3, shift=-2.5)
    valid_negatives, valid_positives = write_csv(job.validation_dir / "v.csv", 200, seed=4)
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(job.validation_dir))
    argv = ["--num_round", "5", "--cv_num_round", "5", "--cv_max_rows", cv_max_rows]
    argv += ["--max_depth", "8"]

    train.main([*argv, "--min_child_rows", "20", "--linear_margin", "off"])

    if cv_max_rows == "0":  # the model trains on the train channel alone
        rate = positives / (negatives + positives)
    else:  # on train + validation
        rate = (positives + valid_positives) / 800
    assert 0.05 < rate < 0.3
    expected = 20 * rate * (1 - rate)
    assert job.metrics["min_child_weight"] == pytest.approx(expected)
    assert _smallest_leaf_cover(job) >= expected * (1 - 1e-6)


def test_min_child_weight_goes_to_xgboost_as_given(job: Job) -> None:
    write_csv(job.train_dir / "part-0.csv", 300)
    train.main(["--num_round", "3", "--max_depth", "8", "--min_child_weight", "0"])
    assert job.metrics["min_child_weight"] == 0
    unbounded = _smallest_leaf_cover(job)
    train.main(["--num_round", "3", "--max_depth", "8", "--min_child_weight", "2.5"])
    assert job.metrics["min_child_weight"] == 2.5
    assert unbounded < 2.5 <= _smallest_leaf_cover(job)


def test_min_child_rows_and_min_child_weight_together_are_refused() -> None:
    with pytest.raises(train.HyperparameterError) as raised:
        train.parse_hyperparameters(["--min_child_rows", "10", "--min_child_weight", "1"])
    assert raised.value.name == "min_child_rows" and "not both" in str(raised.value)


# -- cross-validation on small data --------------------------------------------------------


def test_the_folds_run_for_cv_num_round_whatever_num_round_says(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    argv = ["--num_round", "200", "--eta", "0.01", "--cv_max_rows", "1000", "--cv_num_round", "7"]

    # from a linear margin, on this linear data, the trees have nothing left to find
    train.main([*argv, "--linear_margin", "off"])

    cv = job.metrics["cross_validation"]
    assert cv["rounds"] == 7  # a learning rate this low still improves at round 7
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert booster.num_boosted_rounds() == 7


def _trees_per_round(job: Job) -> float:
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    return len(booster.get_dump()) / booster.num_boosted_rounds()


@pytest.mark.parametrize(
    ("extra", "trees"),
    [([], 4), (["--cv_parallel_trees", "2"], 2), (["--num_parallel_tree", "3"], 3)],
)
def test_with_cross_validation_each_round_averages_parallel_trees(
    job: Job, monkeypatch: pytest.MonkeyPatch, extra: list[str], trees: int
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    argv = ["--num_round", "50", "--subsample", "0.7", "--cv_max_rows", "1000"]

    train.main([*argv, "--cv_num_round", "6", "--linear_margin", "off", *extra])

    assert _trees_per_round(job) == trees


def test_without_cross_validation_a_round_is_one_tree(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    train.main(["--num_round", "6", "--cv_max_rows", "0"])
    assert job.metrics["cross_validation"] is None
    assert _trees_per_round(job) == 1


def test_small_data_is_scored_by_cross_validation_and_trained_on_train_plus_validation(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    argv = ["--num_round", "200", "--eta", "0.3", "--early_stopping_rounds", "10"]

    train.main([*argv, "--cv_max_rows", "1000", "--cv_folds", "4"])

    log = capsys.readouterr().out
    metrics = job.metrics
    cv = metrics["cross_validation"]
    assert cv["folds"] == 4 and cv["rows_all_hosts"] == 800
    # the model is the final one, trained on all 800 rows for the rounds the folds chose
    assert metrics["rounds"] == cv["rounds"] == metrics["best_iteration"] + 1 < 200
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert booster.num_boosted_rounds() == cv["rounds"]
    # the tuner reads the CV mean with the same regex, on the one line that carries it
    regex = {d["Name"]: d["Regex"] for d in train.METRIC_DEFINITIONS}["validation:auc"]
    assert [float(v) for v in re.findall(regex, log)] == [pytest.approx(cv["score"], abs=1e-6)]
    assert 0.7 < cv["score"] == metrics["best_validation_score"]


def test_large_data_or_too_few_positives_keep_the_validation_set(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    train.main(["--num_round", "20", "--cv_max_rows", "600"])  # 600 rows: not below
    assert job.metrics["cross_validation"] is None

    write_csv(job.train_dir / "part-0.csv", 600, seed=3, shift=-9.0)  # almost no positives
    write_csv(job.validation_dir / "validation.csv", 100, seed=5, shift=-9.0)
    (job.validation_dir / "validation.csv").write_text(
        (job.validation_dir / "validation.csv").read_text() + "1" + ",0" * FEATURES + "\n"
    )
    positives = sum(
        line.startswith("1,")
        for d in (job.train_dir, job.validation_dir)
        for f in d.glob("*.csv")
        for line in f.read_text().splitlines()
    )
    folds = positives + 1
    train.main(["--num_round", "20", "--cv_max_rows", "5000", "--cv_folds", str(folds)])
    assert job.metrics["cross_validation"] is None
    assert f"too few for {folds}-fold cross-validation" in capsys.readouterr().out


# -- calibration -----------------------------------------------------------------------------


def read_labels(*paths: Path) -> np.ndarray:
    return np.concatenate([np.loadtxt(path, delimiter=",", usecols=0) for path in paths])


def test_a_cross_validated_job_calibrates_on_the_out_of_fold_predictions(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    # deep trees at a high learning rate, stopped on AUC: overconfident raw scores to calibrate
    argv = ["--num_round", "60", "--eta", "0.6", "--max_depth", "8", "--min_child_weight", "0.1"]

    cv = ["--cv_max_rows", "1000", "--cv_folds", "4", "--cv_num_round", "60"]
    train.main([*argv, *cv, "--cv_stopping_metric", "auc", "--linear_margin", "off"])

    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and calibrator.method == "platt"  # the default
    assert calibrator.fitted_on["source"] == "out_of_fold"
    assert calibrator.fitted_on["rows"] == 800 and calibrator.selection["folds"] == 4
    assert job.metrics["calibration"]["method"] == "platt"
    assert "calibration: platt, fitted on 800 out_of_fold rows" in capsys.readouterr().out
    # every train + validation row once, with its calibrated out-of-fold probability
    held, calibrated, raw = calibration.read_holdout(job.model_dir / calibration.HOLDOUT_FILE)
    assert len(held) == 800
    labels = read_labels(job.train_dir / "part-0.csv", job.validation_dir / "validation.csv")
    assert held.sum() == labels.sum()
    assert roc_auc_score(held, calibrated) > 0.7
    assert abs(calibrated.mean() - labels.mean()) < 0.02
    np.testing.assert_allclose(calibrated, calibrator.apply(raw), atol=1e-3)  # raw: 6 decimals
    assert calibration.log_loss(held, calibrated) < 0.95 * calibration.log_loss(held, raw)
    # the built-in server still sees the booster only at the top level
    assert sorted(p.name for p in job.model_dir.iterdir()) == [train.EXTRAS_DIR, train.MODEL_FILE]


def test_on_two_hosts_the_calibration_and_the_regression_are_fitted_on_every_hosts_rows(
    tmp_path: Path,
) -> None:
    from boostline.local.training_job import Channel, run_training_job

    shards = [tmp_path / "train" / f"part-{i}.csv" for i in range(2)]
    for seed, shard in enumerate(shards):
        write_csv(shard, 300, seed=10 + seed)
    write_csv(tmp_path / "validation" / "validation.csv", 100, seed=12)
    channels = {
        "train": Channel(shards, "ShardedByS3Key"),
        "validation": Channel([tmp_path / "validation" / "validation.csv"]),
    }
    hps = {"num_round": 40, "eta": 0.3, "cv_max_rows": 5000, "cv_folds": 3, "nthread": 1}

    result = run_training_job(
        tmp_path / "job", Path(train.__file__), hps, channels, instance_count=2, timeout=300
    )

    assert result.status == "Completed", result.failure_reason
    calibrator = calibration.load(result.model_dir)
    assert calibrator is not None and calibrator.fitted_on["source"] == "out_of_fold"
    assert calibrator.fitted_on["rows"] == 700  # both hosts' rows, the validation rows once
    held, _, _ = calibration.read_holdout(result.model_dir / calibration.HOLDOUT_FILE)
    labels = read_labels(*shards, tmp_path / "validation" / "validation.csv")
    assert len(held) == 700 and held.sum() == labels.sum()
    linear = linear_margin.load(result.model_dir)
    assert linear is not None and linear.fitted_on["rows"] == 700
    # both hosts trained the same booster from the same starting margins
    stats = [json.loads((h.output_data_dir / train.METRICS_FILE).read_text()) for h in result.hosts]
    assert stats[0]["model_sha256"] == stats[1]["model_sha256"]
    assert [s["linear_margin"]["used"] for s in stats] == [True, True]


# -- linear margin ---------------------------------------------------------------------------


def test_a_cross_validated_job_starts_from_a_logistic_regression_and_serves_both(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    names = write_manifest(job.manifest_dir)
    monkeypatch.setenv("SM_CHANNEL_MANIFEST", str(job.manifest_dir))

    train.main(["--num_round", "50", "--cv_max_rows", "1000", "--cv_folds", "4"])

    log = capsys.readouterr().out
    assert "linear margin: logistic regression" in log
    # on this linear data the folds score better from the regression than from a constant
    chosen = job.metrics["linear_margin"]
    assert chosen["used"] and chosen["score_with"] < chosen["score_without"]
    assert f"linear margin: used (folds' logloss {chosen['score_with']:.6f} with it" in log
    linear = linear_margin.load(job.model_dir)
    assert linear is not None and linear.fitted_on["rows"] == 800
    # the endpoint adds the regression's log-odds to the booster's, then calibrates
    model = inference.load_model(job.model_dir, threshold=0.5, threads=1)
    X = np.genfromtxt(job.validation_dir / "validation.csv", delimiter=",")[:, 1:]
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    scored = xgb.DMatrix(X, base_margin=linear.margin(X), feature_names=names)
    margin = booster.predict(scored, output_margin=True)
    expected = model.calibrator.apply(1 / (1 + np.exp(-margin.astype(np.float64))))
    np.testing.assert_allclose(inference.predict(model, X), expected, rtol=1e-5)
    # scored from its own base score the booster alone is another (wrong) model
    alone = booster.predict(xgb.DMatrix(X, feature_names=names))
    assert np.abs(alone - inference.booster_probability(model, X)).max() > 0.05
    # the explanations sum to the margin, the regression's shares on its features
    contributions = inference.explain(model, X[:20])
    np.testing.assert_allclose(contributions.sum(axis=1), margin[:20], atol=1e-4)
    assert contributions.shape == (20, len(names) + 1)


def test_a_calibration_that_does_not_beat_none_on_the_held_out_rows_is_not_applied(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # logistic data, a logistic start: the booster's out-of-fold scores are calibrated
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    train.main(["--num_round", "50", "--cv_max_rows", "1000", "--cv_folds", "4"])
    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and calibrator.method == "identity"
    scores = calibrator.selection["scores"]
    assert scores["platt"]["log_loss"] > scores["identity"]["log_loss"] * (1 - calibration.MIN_GAIN)
    assert "calibration: identity, fitted on 800 out_of_fold rows" in capsys.readouterr().out


def test_on_linear_data_the_linear_margin_lowers_the_out_of_fold_log_loss(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    argv = ["--num_round", "50", "--cv_max_rows", "1000", "--cv_folds", "4"]
    losses = {}
    for setting in ("off", "auto"):
        train.main([*argv, "--linear_margin", setting])
        held, _, raw = calibration.read_holdout(job.model_dir / calibration.HOLDOUT_FILE)
        losses[setting] = calibration.log_loss(held, raw)
        present = (job.model_dir / linear_margin.LINEAR_MARGIN_FILE).is_file()
        assert present == (setting == "auto")
        shutil.rmtree(job.model_dir)
        shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    assert losses["auto"] < 0.95 * losses["off"], losses


def test_where_the_trees_do_better_from_a_constant_the_margin_is_dropped_unless_on(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(800, FEATURES))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)  # no linear signal at all
    rows = np.column_stack([y, x])
    np.savetxt(job.train_dir / "part-0.csv", rows, delimiter=",", fmt="%.6g")
    argv = ["--num_round", "50", "--cv_max_rows", "1000", "--cv_folds", "4", "--eta", "0.3"]

    train.main(argv)

    chosen = job.metrics["linear_margin"]
    assert not chosen["used"] and chosen["score_without"] < chosen["score_with"]
    assert linear_margin.load(job.model_dir) is None
    shutil.rmtree(job.model_dir)
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)

    train.main([*argv, "--linear_margin", "on"])

    chosen = job.metrics["linear_margin"]
    assert chosen["used"] and chosen["score_without"] is None
    assert linear_margin.load(job.model_dir) is not None


def test_linear_margin_reads_yamls_bare_on_and_off_and_refuses_anything_else() -> None:
    for given, read in (("false", "off"), ("True", "on"), ("auto", "auto")):
        assert train.parse_hyperparameters(["--linear_margin", given]).linear_margin == read
    with pytest.raises(train.HyperparameterError, match="linear_margin.*one of auto, on, off"):
        train.parse_hyperparameters(["--linear_margin", "sometimes"])


def test_without_cross_validation_there_is_no_linear_margin(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 2000, seed=1)
    add_validation(job, monkeypatch, rows=500)
    train.main(["--num_round", "10", "--cv_max_rows", "1000"])
    assert job.metrics["linear_margin"] is None
    assert linear_margin.load(job.model_dir) is None


def test_without_cross_validation_the_validation_rows_calibrate(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 2000, seed=1)
    add_validation(job, monkeypatch, rows=1500)

    train.main(["--num_round", "40", "--eta", "0.3", "--cv_max_rows", "1000"])

    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and job.metrics["cross_validation"] is None
    assert calibrator.fitted_on["source"] == "validation"
    assert calibrator.fitted_on["rows"] == 1500
    assert not (job.model_dir / calibration.HOLDOUT_FILE).exists()


def test_the_calibration_method_can_be_set_and_without_held_out_rows_it_is_identity(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    train.main(["--num_round", "20"])  # no validation channel, no cross-validation
    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and calibrator.method == "identity"
    assert calibrator.fitted_on == {"source": "none", "rows": 0}

    add_validation(job, monkeypatch, rows=300)
    train.main(["--num_round", "20", "--calibration", "auto"])
    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and calibrator.method in calibration.METHODS
    scores = calibrator.selection["scores"]
    assert set(scores) == set(calibration.METHODS)
    best = min(scores, key=lambda m: scores[m]["log_loss"])
    assert calibrator.method in (best, "identity")  # identity kept unless clearly beaten
    train.main(["--num_round", "20", "--calibration", "isotonic"])
    calibrator = calibration.load(job.model_dir)
    assert calibrator is not None and set(calibrator.selection["scores"]) == {
        "identity",
        "isotonic",
    }
    # the named map, unless it fails to beat no map on the held-out rows
    scores = calibrator.selection["scores"]
    beaten = scores["isotonic"]["log_loss"] < scores["identity"]["log_loss"] * (
        1 - calibration.MIN_GAIN
    )
    assert calibrator.method == ("isotonic" if beaten else "identity")
    fail(["--calibration", "beta"])
    assert "hyperparameter 'calibration': must be one of auto, identity, platt" in job.failure


# -- native categoricals ---------------------------------------------------------------------


@pytest.mark.parametrize("memory", ["off", "on"])
def test_native_categoricals_follow_the_manifest_kinds(
    job: Job, monkeypatch: pytest.MonkeyPatch, memory: str
) -> None:
    from training_scripts import inference

    rng = np.random.default_rng(8)
    rows = 3000
    code = rng.integers(0, 12, rows).astype(np.float64)
    code[rng.random(rows) < 0.05] = np.nan  # missing, and unseen in an open list
    x = rng.normal(size=rows)
    risk = np.where(np.isnan(code), 0.0, np.array([1.5, -1.5] * 6)[np.nan_to_num(code).astype(int)])
    y = (rng.random(rows) < 1 / (1 + np.exp(-(risk + x)))).astype(np.int64)
    lines = [
        f"{label},{'' if np.isnan(c) else int(c)},{float(v)!r}"
        for label, c, v in zip(y, code, x, strict=True)
    ]
    (job.train_dir / "part-0.csv").write_text("\n".join(lines[:2500]) + "\n")
    job.validation_dir.mkdir(parents=True)
    (job.validation_dir / "validation.csv").write_text("\n".join(lines[2500:]) + "\n")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(job.validation_dir))
    job.manifest_dir.mkdir(parents=True)
    columns = [
        {"name": "purpose", "kind": "categorical", "categories": [str(i) for i in range(12)]},
        {"name": "amount", "kind": "numerical"},
    ]
    (job.manifest_dir / train.FEATURE_MANIFEST).write_text(json.dumps({"columns": columns}))
    monkeypatch.setenv("SM_CHANNEL_MANIFEST", str(job.manifest_dir))

    external = ["--external_memory", memory]
    train.main(["--num_round", "30", "--max_depth", "2", "--categorical", "native", *external])

    assert job.metrics["external_memory"] is (memory == "on")
    booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert booster.feature_types == ["c", "q"]
    # the endpoint's path (a plain float array, no feature types) scores as XGBoost does
    X = np.column_stack([code, x])[:200]
    typed = xgb.DMatrix(X, missing=np.nan, feature_types=["c", "q"], enable_categorical=True)
    model = inference.load_model(job.model_dir, threads=1)
    raw = model.booster.inplace_predict(X, validate_features=False)
    np.testing.assert_allclose(raw, booster.predict(typed, validate_features=False), rtol=1e-6)
    # one split separates the alternating codes: a depth-1 stump learns what codes cannot
    train.main(
        ["--num_round", "1", "--max_depth", "1", "--eta", "1", "--categorical", "native", *external]
    )
    stump = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    seen = ~np.isnan(code)
    scores = stump.inplace_predict(np.column_stack([code, x])[seen], validate_features=False)
    assert roc_auc_score(y[seen], scores) > 0.75
    train.main(["--num_round", "1", "--max_depth", "1", "--eta", "1", *external])
    codes_stump = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
    assert codes_stump.feature_types is None
    scores = codes_stump.inplace_predict(np.column_stack([code, x])[seen], validate_features=False)
    assert roc_auc_score(y[seen], scores) < 0.65


def test_native_categoricals_need_the_manifest(job: Job) -> None:
    write_csv(job.train_dir / "part-0.csv", 300)
    fail(["--categorical", "native"])
    assert "'native' needs the manifest channel" in job.failure


# -- bad data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1,0.5,0.25\n0,0.1\n", "part-9.csv: line 2 has 2 columns, expected 3"),
        ("1,0.5,0.25\n0,abc,0.1\n", "part-9.csv: line 2, column 2 is not a number"),
        ("label,a,b\n1,0.5,0.25\n", "line 1, column 1 is not a number (the files must not"),
        ("1,0.5,0.25\n2,0.1,0.2\n", "part-9.csv: line 2: label is 2; the first column must be"),
        ("1,0.5,0.25\n,0.1,0.2\n", "label is missing"),
    ],
)
def test_bad_data_fails_with_a_clear_reason(job: Job, content: str, expected: str) -> None:
    (job.train_dir / "part-9.csv").write_text(content)
    fail(["--num_round", "3"])
    assert expected in job.failure


def test_the_failure_is_one_boostline_line_on_stderr_without_the_data(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    """The image's toolkit overwrites output/failure; the log line is what reaches people."""
    (job.train_dir / "part-9.csv").write_text("1,0.5,0.25\n0,jane.doe@example.com,0.1\n")
    fail(["--num_round", "3"])
    lines = capsys.readouterr().err.splitlines()
    marked = [line for line in lines if line.startswith("Boostline failure: ")]
    assert marked == [f"Boostline failure: {job.failure.strip()}"]
    assert marked[0] == "Boostline failure: train/part-9.csv: line 2, column 2 is not a number"
    assert "jane" not in job.failure


def test_an_unexpected_error_is_reported_on_one_line(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 100)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk\nfull")

    monkeypatch.setattr(train, "save_outputs", broken)
    fail(["--num_round", "2"])
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "Boostline failure: unexpected error: RuntimeError: disk full\n" in err


def test_files_with_different_column_counts_fail(job: Job) -> None:
    write_csv(job.train_dir / "part-0.csv", 50)
    (job.train_dir / "part-1.csv").write_text("1,2,3\n0,1,2\n")
    fail(["--num_round", "3"])
    assert f"train/part-1.csv: line 1 has 3 columns, expected {FEATURES + 1}" in job.failure


def test_an_empty_train_channel_fails(job: Job) -> None:
    fail(["--num_round", "3"])
    assert "the train channel has no data" in job.failure


def test_one_class_fails(job: Job) -> None:
    (job.train_dir / "part-0.csv").write_text("0,1,2\n0,2,3\n")
    fail(["--num_round", "3"])
    assert "only one class" in job.failure


def test_manifest_with_the_wrong_feature_count_fails(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 100)
    write_manifest(job.manifest_dir, count=FEATURES - 1)
    monkeypatch.setenv("SM_CHANNEL_MANIFEST", str(job.manifest_dir))
    fail(["--num_round", "3"])
    assert f"names {FEATURES - 1} feature columns, the data has {FEATURES}" in job.failure


def test_load_channel_reads_missing_values_as_nan(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("0,,2.5\n")
    (tmp_path / "a.csv").write_text("1,1.5,\n1,3,4\n")
    (tmp_path / "notes.txt").write_text("ignored")
    data = train.load_channel(tmp_path)
    assert data.columns == 3 and data.files == [f"{tmp_path.name}/a.csv", f"{tmp_path.name}/b.csv"]
    assert data.labels.tolist() == [1, 1, 0]
    np.testing.assert_array_equal(data.features, [[1.5, np.nan], [3, 4], [np.nan, 2.5]])
    assert data.features.dtype == np.float32


# -- checkpoints ---------------------------------------------------------------------------


def a_fingerprint(**params: Any) -> train.Fingerprint:
    return train.Fingerprint("d" * 64, 200, 0, 3, {"eta": 0.3, **params})


def test_checkpoints_are_written_atomically_and_pruned(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(200, 3))
    dtrain = xgb.DMatrix(x, label=(x[:, 0] > 0).astype(float))
    booster = xgb.train({"nthread": 1}, dtrain, 3)
    mark = a_fingerprint()
    store = train.Checkpoints(tmp_path / "ck", mark)
    for rounds in (1, 2, 3):
        store.save(booster[:rounds], rounds)
    assert [rounds for rounds, _ in store.existing()] == [2, 3]
    assert not [p for p in (tmp_path / "ck").iterdir() if p.name.startswith(".")]
    (tmp_path / "ck" / "xgboost-checkpoint-00000009.ubj").write_bytes(b"torn")
    rounds, raw = train.Checkpoints(tmp_path / "ck", mark).latest()
    assert rounds == 3
    saved = xgb.Booster(model_file=bytearray(raw))
    assert saved.num_boosted_rounds() == 3
    assert train.Fingerprint.from_text(saved.attr(train.FINGERPRINT_ATTR)) == mark
    assert booster.attr(train.FINGERPRINT_ATTR) is None  # the live booster stays clean


def test_pruning_spares_checkpoints_of_another_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(0).normal(size=(200, 3))
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 0), 9)
    train.Checkpoints(tmp_path, a_fingerprint(eta=0.1)).save(booster, 9)
    ours = train.Checkpoints(tmp_path, a_fingerprint())
    assert ours.latest() is None
    assert "eta 0.1 -> 0.3" in capsys.readouterr().out
    for rounds in (1, 2, 3):
        ours.save(booster[:rounds], rounds)
    assert [rounds for rounds, _ in ours.existing()] == [2, 3, 9]
    assert train.Checkpoints(tmp_path, a_fingerprint()).latest()[0] == 3


def test_training_resumes_from_the_latest_checkpoint(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    train.main(["--num_round", "12", "--checkpoint_interval", "4"])
    first = job.metrics
    assert first["resumed_from_round"] == 0
    capsys.readouterr()

    train.main(["--num_round", "20", "--checkpoint_interval", "4"])

    assert "resuming from checkpoint at round 12" in capsys.readouterr().out
    assert job.metrics["resumed_from_round"] == 12 and job.metrics["rounds"] == 20
    names = sorted(p.name for p in job.checkpoint_dir.iterdir())
    assert names == ["xgboost-checkpoint-00000016.ubj", "xgboost-checkpoint-00000020.ubj"]


def test_a_matching_checkpoint_resumes_to_the_model_a_fresh_start_gives(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    train.main(["--num_round", "20", "--checkpoint_interval", "4", "--eta", "0.3"])
    fresh = (job.model_dir / train.MODEL_FILE).read_bytes()
    shutil.rmtree(job.checkpoint_dir)
    train.main(["--num_round", "12", "--checkpoint_interval", "4", "--eta", "0.3"])
    capsys.readouterr()

    train.main(["--num_round", "20", "--checkpoint_interval", "5", "--eta", "0.3"])

    assert "resuming from checkpoint at round 12" in capsys.readouterr().out
    resumed = (job.model_dir / train.MODEL_FILE).read_bytes()
    assert xgb.Booster(model_file=bytearray(resumed)).attr(train.FINGERPRINT_ATTR) is None
    # why num_round and checkpoint_interval are not part of the fingerprint
    assert resumed == fresh


def test_a_checkpoint_from_other_hyperparameters_is_not_resumed(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    train.main(["--num_round", "12", "--checkpoint_interval", "4", "--eta", "0.3"])
    capsys.readouterr()

    train.main(["--num_round", "12", "--checkpoint_interval", "4", "--eta", "0.1"])

    log = capsys.readouterr().out
    assert (
        "not resuming checkpoint xgboost-checkpoint-00000012.ubj: it was trained with other "
        "hyperparameters (eta 0.3 -> 0.1)" in log
    )
    assert "training from scratch" in log and "resuming from" not in log
    assert job.metrics["resumed_from_round"] == 0 and job.metrics["rounds"] == 12


@pytest.mark.parametrize(
    ("rows", "seed", "why"),
    [
        (500, 5, "it was trained on other data (same row and feature counts, other values)"),
        (700, 0, "it was trained on other data (train rows 500 -> 700)"),
    ],
)
def test_a_checkpoint_from_other_data_is_not_resumed(
    job: Job, capsys: pytest.CaptureFixture[str], rows: int, seed: int, why: str
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    train.main(["--num_round", "12", "--checkpoint_interval", "4"])
    write_csv(job.train_dir / "part-0.csv", rows, seed=seed)
    capsys.readouterr()

    train.main(["--num_round", "16", "--checkpoint_interval", "4"])

    log = capsys.readouterr().out
    assert f"not resuming checkpoint xgboost-checkpoint-00000012.ubj: {why}" in log
    assert "resuming from" not in log
    assert job.metrics["resumed_from_round"] == 0 and job.metrics["rounds"] == 16


def test_a_checkpoint_without_a_fingerprint_is_not_resumed(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    x = np.random.default_rng(0).normal(size=(200, FEATURES))
    old = xgb.train({"nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 0), 30)
    job.checkpoint_dir.mkdir()
    (job.checkpoint_dir / "xgboost-checkpoint-00000030.ubj").write_bytes(old.save_raw("ubj"))

    train.main(["--num_round", "8"])

    assert "it carries no data and hyperparameter fingerprint" in capsys.readouterr().out
    assert job.metrics["resumed_from_round"] == 0 and job.metrics["rounds"] == 8


def test_each_training_job_keeps_its_checkpoints_in_its_own_folder(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 500)
    monkeypatch.setenv("TRAINING_JOB_NAME", "tuning-001-abc")
    train.main(["--num_round", "8", "--checkpoint_interval", "4"])
    assert sorted(p.name for p in (job.checkpoint_dir / "tuning-001-abc").iterdir()) == [
        "xgboost-checkpoint-00000004.ubj",
        "xgboost-checkpoint-00000008.ubj",
    ]
    capsys.readouterr()

    monkeypatch.setenv("TRAINING_JOB_NAME", "tuning-002-abc")  # a parallel trial
    train.main(["--num_round", "8", "--checkpoint_interval", "4"])
    log = capsys.readouterr().out
    assert "checkpoint" in log and "resuming" not in log and "not resuming" not in log

    monkeypatch.setenv("TRAINING_JOB_NAME", "tuning-001-abc")  # a spot restart of the first
    train.main(["--num_round", "12", "--checkpoint_interval", "4"])
    assert "resuming from checkpoint at round 8" in capsys.readouterr().out
    assert not list(job.checkpoint_dir.glob("*.ubj"))


def test_without_a_job_name_checkpoints_are_kept_in_the_checkpoint_dir_itself(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    write_csv(job.train_dir / "part-0.csv", 300)
    train.main(["--num_round", "4", "--checkpoint_interval", "4"])
    assert f"TRAINING_JOB_NAME is not set: checkpoints are kept in {job.checkpoint_dir}" in (
        capsys.readouterr().out
    )
    assert [p.name for p in job.checkpoint_dir.iterdir()] == ["xgboost-checkpoint-00000004.ubj"]


def test_a_job_name_that_is_no_folder_name_fails(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(job.train_dir / "part-0.csv", 300)
    monkeypatch.setenv("TRAINING_JOB_NAME", "../elsewhere")
    fail(["--num_round", "4"])
    assert "TRAINING_JOB_NAME '../elsewhere' cannot name a checkpoint folder" in job.failure


# -- external memory ---------------------------------------------------------------------------


def auc_on(booster: xgb.Booster, path: Path) -> float:
    data = train.load_channel(path.parent)
    return float(roc_auc_score(data.labels, booster.predict(xgb.DMatrix(data.features))))


def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several pyarrow blocks per file and several XGBoost pages per channel."""
    monkeypatch.setattr(shard_iterator, "BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(shard_iterator, "BATCH_BYTES", 48 << 10)


def test_external_memory_trains_a_model_as_good_as_in_memory(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 3000, seed=1)
    write_csv(job.train_dir / "part-1.csv", 2000, seed=2)
    add_validation(job, monkeypatch)
    write_csv(job.root / "test" / "test.csv", 2000, seed=5)
    small_batches(monkeypatch)
    argv = ["--num_round", "40", "--max_depth", "3", "--eta", "0.2"]
    scores = {}
    for mode in ("off", "on"):
        shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
        train.main([*argv, "--external_memory", mode])
        log = capsys.readouterr().out
        metrics = job.metrics
        assert metrics["external_memory"] is (mode == "on")
        assert metrics["rows"] == 5000 and metrics["validation_rows_all_hosts"] == 1500
        # the tuner's line is the same either way
        regex = {d["Name"]: d["Regex"] for d in train.METRIC_DEFINITIONS}["validation:auc"]
        seen = [float(v) for v in re.findall(regex, log)]
        assert len(seen) == 41 and seen[-1] == pytest.approx(metrics["best_validation_score"])
        booster = xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE))
        scores[mode] = (auc_on(booster, job.root / "test" / "test.csv"), metrics)
    (in_memory, off), (external, on) = scores["off"], scores["on"]
    assert in_memory > 0.8 and external == pytest.approx(in_memory, abs=0.005)
    assert on["data_fingerprint"] == off["data_fingerprint"]
    assert on["calibration"]["fitted_on"]["rows"] == 1500
    # the page cache lives beside the channels while training, and goes with it
    assert sorted(p.name for p in job.train_dir.parent.iterdir()) == ["train", "validation"]


def test_an_external_memory_model_loads_in_the_inference_path(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(job.train_dir / "part-0.csv", 2000, seed=1)
    names = write_manifest(job.manifest_dir)
    monkeypatch.setenv("SM_CHANNEL_MANIFEST", str(job.manifest_dir))

    train.main(["--num_round", "20", "--external_memory", "on"])

    model = inference.model_fn(str(job.model_dir))
    body = "\n".join(",".join(["0.5"] * FEATURES) for _ in range(3))
    answer, _ = inference.transform_fn(model, body, "text/csv", "application/json")
    assert len(json.loads(answer)["predictions"]) == 3
    assert xgb.Booster(model_file=str(job.model_dir / train.MODEL_FILE)).feature_names == names


def test_auto_picks_external_memory_past_its_share_of_ram(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 1000)
    train.main(["--num_round", "5"])
    assert job.metrics["external_memory"] is False
    assert "external memory" not in capsys.readouterr().out

    train.main(["--num_round", "5", "--external_memory_share", "1e-9"])

    assert job.metrics["external_memory"] is True
    assert "external memory: on, a host's train files are" in capsys.readouterr().out


def test_auto_keeps_tree_methods_other_than_hist_in_memory(
    job: Job, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 1000)
    train.main(["--num_round", "5", "--tree_method", "approx", "--external_memory_share", "1e-9"])
    assert job.metrics["external_memory"] is False
    assert "tree_method approx trains in memory only" in capsys.readouterr().out
    fail(["--num_round", "5", "--tree_method", "approx", "--external_memory", "on"])
    assert "hyperparameter 'external_memory': 'on' needs tree_method hist" in job.failure


def test_cross_validation_trains_in_memory_even_with_external_memory_on(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 600, seed=3)
    add_validation(job, monkeypatch, rows=200)
    train.main(["--num_round", "20", "--cv_max_rows", "1000", "--external_memory", "on"])
    assert job.metrics["cross_validation"]["rows_all_hosts"] == 800
    assert job.metrics["external_memory"] is False
    assert "external memory: off, cross-validation trains in memory" in capsys.readouterr().out


def test_external_memory_resumes_checkpoints_of_either_mode(
    job: Job, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(job.train_dir / "part-0.csv", 1500, seed=1)
    write_csv(job.train_dir / "part-1.csv", 700, seed=2)
    small_batches(monkeypatch)
    argv = ["--checkpoint_interval", "4", "--eta", "0.3", "--external_memory", "on"]
    train.main(["--num_round", "20", *argv])
    fresh = (job.model_dir / train.MODEL_FILE).read_bytes()
    shutil.rmtree(job.checkpoint_dir)
    train.main(["--num_round", "12", *argv])
    capsys.readouterr()

    train.main(["--num_round", "20", *argv])

    assert "resuming from checkpoint at round 12" in capsys.readouterr().out
    assert job.metrics["resumed_from_round"] == 12 and job.metrics["external_memory"] is True
    assert (job.model_dir / train.MODEL_FILE).read_bytes() == fresh

    # the data fingerprint is the in-memory one: a checkpoint resumes across the modes
    shutil.rmtree(job.checkpoint_dir)
    train.main(["--num_round", "8", *argv[:-1], "off"])
    capsys.readouterr()
    train.main(["--num_round", "12", *argv])
    assert "resuming from checkpoint at round 8" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1,0.5,0.25\n0,0.1\n", "part-9.csv: line 2 has 2 columns, expected 3"),
        ("1,0.5,0.25\n0,abc,0.1\n", "part-9.csv: line 2, column 2 is not a number"),
        ("1,0.5,0.25\n2,0.1,0.2\n", "part-9.csv: line 2: label is 2; the first column must be"),
    ],
)
def test_external_memory_fails_bad_data_with_the_same_reason(
    job: Job, content: str, expected: str
) -> None:
    (job.train_dir / "part-9.csv").write_text(content)
    fail(["--num_round", "3", "--external_memory", "on"])
    assert expected in job.failure


def test_a_bad_label_deep_in_a_file_is_named_by_its_line(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard_iterator, "BLOCK_BYTES", 1 << 10)
    lines = ["1,0.5,0.25", "0,0.1,0.2"] * 500
    lines[876] = "3,0.1,0.2"
    (job.train_dir / "part-0.csv").write_text("\n".join(lines) + "\n")
    fail(["--num_round", "3", "--external_memory", "on"])
    assert "part-0.csv: line 877: label is 3" in job.failure


def test_two_hosts_train_through_external_memory_together(tmp_path: Path) -> None:
    for i in (0, 1):
        write_csv(tmp_path / f"train-{i}.csv", 2500, seed=i, shift=i - 1.0)
    write_csv(tmp_path / "validation.csv", 1000, seed=7)
    write_csv(tmp_path / "test" / "test.csv", 2000, seed=8)
    channels = {
        "train": Channel([tmp_path / "train-0.csv", tmp_path / "train-1.csv"], "ShardedByS3Key"),
        "validation": Channel([tmp_path / "validation.csv"]),
    }
    scores = {}
    for mode in ("off", "on"):
        hps = {"num_round": 30, "max_depth": 3, "eta": 0.3, "external_memory": mode}
        result = run_training_job(
            tmp_path / f"job-{mode}", TRAIN_PY, hps, channels, instance_count=2, timeout=120.0
        )
        assert result.status == "Completed", result.failure_reason
        stats = [
            json.loads((h.output_data_dir / train.METRICS_FILE).read_text()) for h in result.hosts
        ]
        assert [s["external_memory"] for s in stats] == [mode == "on"] * 2
        assert [s["rows"] for s in stats] == [2500, 2500]
        # one model: the hosts' sketches were merged, every tree built from both shards
        assert stats[0]["model_sha256"] == stats[1]["model_sha256"]
        booster = xgb.Booster(model_file=str(result.model_dir / train.MODEL_FILE))
        scores[mode] = auc_on(booster, tmp_path / "test" / "test.csv")
    assert scores["off"] > 0.75 and scores["on"] == pytest.approx(scores["off"], abs=0.01)


def test_a_host_without_data_takes_part_in_external_memory(tmp_path: Path) -> None:
    write_csv(tmp_path / "train-0.csv", 2000, seed=0)
    channels = {"train": Channel([tmp_path / "train-0.csv"], "ShardedByS3Key")}
    hps = {"num_round": 10, "external_memory": "on"}
    result = run_training_job(
        tmp_path / "job", TRAIN_PY, hps, channels, instance_count=2, timeout=120.0
    )
    assert result.status == "Completed", result.failure_reason
    stats = [json.loads((h.output_data_dir / train.METRICS_FILE).read_text()) for h in result.hosts]
    assert [s["rows"] for s in stats] == [2000, 0]
    assert stats[0]["model_sha256"] == stats[1]["model_sha256"]


def test_external_memory_reads_yamls_unquoted_on_and_off() -> None:
    assert train.parse_hyperparameters([], '{"external_memory": true}').external_memory == "on"
    assert train.parse_hyperparameters([], '{"external_memory": false}').external_memory == "off"
    assert train.parse_hyperparameters(["--external_memory", "auto"]).external_memory == "auto"
    with pytest.raises(train.HyperparameterError, match="one of auto, on, off"):
        train.parse_hyperparameters(["--external_memory", "sometimes"])
