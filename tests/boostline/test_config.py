"""The typed configuration: checks that stop a run before anything is paid for."""

from __future__ import annotations

from pathlib import Path

import pytest

from boostline.cli import main
from boostline.config import DEFAULT_CONFIG, ConfigError, load_config

DEV_RETRAIN = "    retrain:\n      min_new_files: 1\n"


def _config_text(**replacements: str) -> str:
    schema = load_config().schema_path()
    text = DEFAULT_CONFIG.read_text()
    assert "dataset_schema: loan_schema.yaml\n" in text
    text = text.replace("dataset_schema: loan_schema.yaml\n", f"dataset_schema: {schema}\n")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_the_shipped_config_gives_every_training_host_a_shard() -> None:
    config = load_config()
    assert config.preprocess.train_shards >= config.training.instance_count


def test_fewer_shards_than_training_hosts_is_refused(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{"train_shards: 4": "train_shards: 1"}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert "train_shards (1) is below training.instance_count (2)" in str(error.value)
    assert main(["config", "check", "--config", str(bad)]) == 2
    assert "some training hosts would get no data" in capsys.readouterr().err


def test_preprocess_arguments_carry_the_training_host_count() -> None:
    arguments = load_config().preprocess.arguments("3")
    flag = arguments.index("--training-instance-count")
    assert arguments[flag + 1] == "3"


def test_preprocessing_runs_on_one_instance_unless_told() -> None:
    assert load_config().preprocess.instance_count == 1


@pytest.mark.parametrize("count", [2, 100])
def test_the_preprocessing_instance_count_is_read(tmp_path: Path, count: int) -> None:
    path = tmp_path / "scaled.yaml"
    path.write_text(_config_text(**{"instance_count: 1 ": f"instance_count: {count} "}))
    assert load_config(path).preprocess.instance_count == count


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        ("0", "preprocess.instance_count: Input should be greater than or equal to 1"),
        ("101", "preprocess.instance_count: Input should be less than or equal to 100"),
        ("two", "preprocess.instance_count: Input should be a valid integer"),
    ],
)
def test_a_preprocessing_instance_count_out_of_range_is_refused(
    tmp_path: Path, count: str, reason: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{"instance_count: 1 ": f"instance_count: {count} "}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("max_ece: 0.05", "max_ece: 0", "gate.max_ece: Input should be greater than 0"),
        ("max_auc_below_logistic: 0.01", "max_auc_below_logistic: -1", "gate.max_auc_below"),
        ("cv_folds: 5", "cv_folds: 1", "hyperparameter 'cv_folds'"),
    ],
)
def test_gate_and_small_data_settings_are_checked(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{old: new}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("replacements", "reason"),
    [
        (
            {"objective_metric: validation:auc": "objective_metric: validation:logloss"},
            "tuning.objective_metric: 'validation:logloss' is not a metric the training jobs "
            "report; with eval_metric 'auc' they report validation:auc and train:auc",
        ),
        (
            {"eval_metric: auc": "eval_metric: logloss"},
            "tuning.objective_metric: 'validation:auc' is not a metric",
        ),
        (
            {"objective_type: Maximize": "objective_type: Minimize"},
            "tuning.objective_type: auc is better higher: the objective type must be Maximize",
        ),
    ],
)
def test_the_tuning_objective_is_a_metric_training_reports_the_right_way_round(
    tmp_path: Path, replacements: dict[str, str], reason: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**replacements))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert reason in str(error.value)


def test_a_logloss_objective_is_accepted_with_its_metric(tmp_path: Path) -> None:
    good = tmp_path / "logloss.yaml"
    good.write_text(
        _config_text(
            **{
                "eval_metric: auc": "eval_metric: logloss",
                "objective_metric: validation:auc": "objective_metric: validation:logloss",
                "objective_type: Maximize": "objective_type: Minimize",
            }
        )
    )
    config = load_config(good)
    assert config.training.eval_metric() == "logloss"
    assert load_config().training.eval_metric() == "auc"


def test_calibration_gate_can_be_switched_off(tmp_path: Path) -> None:
    off = tmp_path / "off.yaml"
    off.write_text(_config_text(**{"max_ece: 0.05": "max_ece: null"}))
    assert load_config(off).gate.max_ece is None
    assert load_config().gate.max_ece == 0.05


def test_a_mistyped_key_gets_a_did_you_mean_beside_the_message(tmp_path: Path) -> None:
    import yaml

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["dataset_schema"] = str(load_config().schema_path())
    raw["stages"]["dev"]["monitoring"]["schedul"] = "cron(0 * ? * * *)"
    raw["gate"]["min_acu"] = 0.7
    raw["zzzz"] = 1
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    problems = dict(error.value.problems)
    assert "did you mean 'schedule'?" in problems["stages.dev.monitoring.schedul"]
    assert "did you mean 'min_auc'?" in problems["gate.min_acu"]
    # Nothing close: no guess, but the keys that are known there.
    assert "did you mean" not in problems["zzzz"] and "known here: " in problems["zzzz"]


def test_the_checkout_config_is_the_embedded_default() -> None:
    from boostline.config import CHECKOUT_CONFIG, EMBEDDED_CONFIG

    # One file: the checkout's config/boostline.yaml links to the packaged default.
    assert CHECKOUT_CONFIG.resolve() == EMBEDDED_CONFIG
    assert load_config(EMBEDDED_CONFIG).schema_path() == load_config().schema_path()
    assert load_config().schema_path().is_file()


def test_boostline_config_names_the_default(tmp_path: Path, monkeypatch) -> None:
    from boostline.config import CONFIG_ENV, default_config_path

    assert default_config_path({}) == DEFAULT_CONFIG
    assert default_config_path({CONFIG_ENV: "  "}) == DEFAULT_CONFIG
    own = tmp_path / "own.yaml"
    own.write_text(_config_text(**{"project: boostline": "project: lender"}))
    assert default_config_path({CONFIG_ENV: str(own)}) == own
    monkeypatch.setenv(CONFIG_ENV, str(own))
    assert load_config().project == "lender"


def test_config_init_writes_an_editable_copy_with_its_schema(tmp_path: Path) -> None:
    from boostline.config import EMBEDDED_CONFIG, write_default_config

    written = write_default_config(tmp_path / "mine")
    assert written == tmp_path / "mine" / "boostline.yaml"
    assert written.read_text() == EMBEDDED_CONFIG.read_text()
    config = load_config(written)
    assert config.schema_path() == (tmp_path / "mine" / "loan_schema.yaml").resolve()
    assert config.schema_path().read_text() == load_config().schema_path().read_text()
    # A second init leaves the (possibly edited) copy alone.
    written.write_text(written.read_text().replace("project: boostline", "project: edited"))
    with pytest.raises(ConfigError, match="already exists, not overwritten"):
        write_default_config(tmp_path / "mine")
    assert load_config(written).project == "edited"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "instance_count: 2 ",
            "instance_count: 0 ",
            "training.instance_count: Input should be greater than or equal to 1",
        ),
        (
            "instance_count: 2 ",
            "instance_count: 101 ",
            "training.instance_count: Input should be less than or equal to 100",
        ),
        (
            "instance_type: ml.m5.xlarge  # the Evaluate",
            "instance_type: m5.xlarge  # the Evaluate",
            "evaluation.instance_type: 'm5.xlarge' is not a SageMaker instance type",
        ),
    ],
)
def test_instance_counts_and_types_are_checked(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{old: new}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert reason in str(error.value)


def test_more_training_hosts_than_shards_is_refused_by_the_count_too(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{"instance_count: 2 ": "instance_count: 5 "}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert "train_shards (4) is below training.instance_count (5)" in str(error.value)


def test_evaluation_and_batch_have_their_own_instance_types(tmp_path: Path) -> None:
    config = load_config()
    assert config.evaluation.instance_type == "ml.m5.xlarge"
    assert config.stage("dev").batch.instance_type == "ml.m5.xlarge"
    path = tmp_path / "sized.yaml"
    evaluation = "instance_type: ml.m5.xlarge  # the Evaluate"
    batch = "    # batch: {instance_type: ml.m5.xlarge}"
    path.write_text(
        _config_text(
            **{
                evaluation: "instance_type: ml.m5.2xlarge  #",
                batch: "    batch: {instance_type: ml.c5.xlarge}",
            }
        )
    )
    sized = load_config(path)
    assert sized.evaluation.instance_type == "ml.m5.2xlarge"
    assert sized.preprocess.instance_type == "ml.m5.xlarge"
    assert sized.stage("dev").batch.instance_type == "ml.c5.xlarge"
    assert sized.stage("prod").batch.instance_type == "ml.m5.xlarge"


def test_a_stage_sizes_its_jobs_over_the_top_level_sections(tmp_path: Path) -> None:
    path = tmp_path / "boostline.yaml"
    path.write_text(
        _config_text(
            **{
                DEV_RETRAIN: "    jobs: {preprocess: {instance_count: 3},"
                " training: {instance_type: ml.c5.2xlarge}}\n" + DEV_RETRAIN
            }
        )
    )
    config = load_config(path)
    dev, prod = config.for_stage("dev"), config.for_stage("prod")
    assert dev.preprocess.instance_count == 3 and dev.training.instance_type == "ml.c5.2xlarge"
    assert dev.training.instance_count == config.training.instance_count  # not set: kept
    assert prod.preprocess.instance_count == config.preprocess.instance_count
    assert prod.training.instance_type == config.training.instance_type


def test_a_stage_with_more_training_hosts_than_shards_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "boostline.yaml"
    path.write_text(
        _config_text(**{DEV_RETRAIN: "    jobs: {training: {instance_count: 5}}\n" + DEV_RETRAIN})
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "below stages.dev.jobs.training.instance_count (5)" in str(error.value)


def test_a_stage_job_size_is_checked_like_the_top_level_one(tmp_path: Path) -> None:
    path = tmp_path / "boostline.yaml"
    path.write_text(
        _config_text(
            **{DEV_RETRAIN: "    jobs: {preprocess: {instance_type: m5.large}}\n" + DEV_RETRAIN}
        )
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "stages.dev.jobs.preprocess.instance_type" in str(error.value)


def test_a_tuned_min_child_rows_beside_a_fixed_min_child_weight_is_refused(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    fixed = "    tree_method: hist\n"
    bad.write_text(_config_text(**{fixed: f"{fixed}    min_child_weight: 1\n"}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert "tuning.ranges" in str(error.value) and "not both" in str(error.value)
