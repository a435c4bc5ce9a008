"""`boostline cost --rows N`: each step of a run of that size, from measured throughput."""

from __future__ import annotations

import json

import pytest

from boostline.cli import main
from boostline.config import DEFAULT_CONFIG, BoostlineConfig, load_config
from boostline.cost import (
    EVALUATE_ROWS_PER_VCPU_SECOND,
    INSTANCE_HOUR_USD,
    INSTANCE_VCPUS,
    JOB_OVERHEAD_SECONDS,
    PREPROCESS_FIT_ROWS_PER_VCPU_SECOND,
    PREPROCESS_ROWS_PER_VCPU_SECOND,
    TRAIN_ROWS_PER_VCPU_SECOND,
    estimate,
    run_lines,
    sized_run_lines,
    sized_steps,
)

OVERHEAD_HOURS = JOB_OVERHEAD_SECONDS / 3600
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def config() -> BoostlineConfig:
    return load_config()


def _with(config: BoostlineConfig, section: str, **update: object) -> BoostlineConfig:
    return config.model_copy(update={section: getattr(config, section).model_copy(update=update)})


def _lines(config: BoostlineConfig, rows: int) -> dict[str, float]:
    return {line.item: line.usd for line in sized_run_lines(config, "dev", rows)}


def _steps(config: BoostlineConfig, rows: int) -> dict[str, object]:
    return {step.step: step for step in sized_steps(config, rows)}


def test_every_priced_instance_type_has_a_vcpu_count() -> None:
    for prices in INSTANCE_HOUR_USD.values():
        assert set(prices) <= set(INSTANCE_VCPUS)


def test_the_measured_rates_are_set() -> None:
    for rate in (
        PREPROCESS_FIT_ROWS_PER_VCPU_SECOND,
        PREPROCESS_ROWS_PER_VCPU_SECOND,
        TRAIN_ROWS_PER_VCPU_SECOND,
        EVALUATE_ROWS_PER_VCPU_SECOND,
    ):
        assert rate > 0


def test_a_sized_run_has_a_line_per_step(config: BoostlineConfig) -> None:
    assert list(_lines(config, 100_000)) == ["PreprocessFit", "Preprocess", "Tune", "Evaluate"]


@pytest.mark.parametrize("step", ["PreprocessFit", "Preprocess"])
@pytest.mark.parametrize("hosts", [1, 3])
def test_doubling_the_rows_doubles_preprocessing_beyond_the_overhead(
    config: BoostlineConfig, step: str, hosts: int
) -> None:
    scaled = _with(config, "preprocess", instance_count=hosts)
    price = INSTANCE_HOUR_USD[REGION][scaled.preprocess.instance_type]
    overhead = hosts * OVERHEAD_HOURS * price
    one, two = _lines(scaled, 1_000_000)[step], _lines(scaled, 2_000_000)[step]
    assert two - overhead == pytest.approx(2 * (one - overhead))
    assert one > overhead


@pytest.mark.parametrize("step", ["PreprocessFit", "Preprocess"])
def test_two_preprocessing_hosts_halve_each_hosts_time(config: BoostlineConfig, step: str) -> None:
    rows = 5_000_000
    one = _steps(_with(config, "preprocess", instance_count=1), rows)[step]
    two = _steps(_with(config, "preprocess", instance_count=2), rows)[step]
    assert (one.instances, two.instances) == (1, 2)
    assert two.hours - OVERHEAD_HOURS == pytest.approx((one.hours - OVERHEAD_HOURS) / 2)
    # The same work, plus one more host's overhead.
    assert two.instance_hours == pytest.approx(one.instance_hours + OVERHEAD_HOURS)


def test_a_bigger_instance_is_faster_by_its_vcpus(config: BoostlineConfig) -> None:
    rows = 5_000_000
    xlarge = _steps(_with(config, "preprocess", instance_type="ml.m5.xlarge"), rows)
    big = _steps(_with(config, "preprocess", instance_type="ml.m5.4xlarge"), rows)
    for step in ("PreprocessFit", "Preprocess"):
        work = xlarge[step].hours - OVERHEAD_HOURS
        assert big[step].hours - OVERHEAD_HOURS == pytest.approx(work * 4 / 16)


def test_no_job_is_billed_below_its_overhead(config: BoostlineConfig) -> None:
    for step in sized_steps(config, 1):
        assert OVERHEAD_HOURS < step.hours < OVERHEAD_HOURS + 1 / 3600


def test_tuning_is_trials_times_hosts_times_a_trials_hours(config: BoostlineConfig) -> None:
    training = config.training
    tune = _steps(config, 1_000_000)["Tune"]
    assert (tune.jobs, tune.instances) == (config.tuning.max_jobs, training.instance_count)
    per_host = 1_000_000 / training.instance_count
    rate = TRAIN_ROWS_PER_VCPU_SECOND * INSTANCE_VCPUS[training.instance_type]
    assert tune.hours == pytest.approx(OVERHEAD_HOURS + per_host / rate / 3600)
    price = INSTANCE_HOUR_USD[REGION][training.instance_type]
    assert _lines(config, 1_000_000)["Tune"] == pytest.approx(
        config.tuning.max_jobs * training.instance_count * tune.hours * price
    )


def test_a_trial_is_capped_at_the_training_max_runtime(config: BoostlineConfig) -> None:
    huge = 10**12
    tune = _steps(config, huge)["Tune"]
    assert tune.capped
    assert tune.hours == pytest.approx(config.training.max_runtime_seconds / 3600)
    line = next(line for line in sized_run_lines(config, "dev", huge) if line.item == "Tune")
    assert line.detail.endswith("(max_runtime_seconds)")
    assert not _steps(config, 1000)["Tune"].capped


def test_evaluation_runs_on_its_own_instance_type(config: BoostlineConfig) -> None:
    bigger = _with(config, "evaluation", instance_type="ml.m5.2xlarge")
    assert bigger.preprocess.instance_type == "ml.m5.xlarge"
    evaluate = _steps(bigger, 1_000_000)["Evaluate"]
    assert (evaluate.instances, evaluate.instance_type) == (1, "ml.m5.2xlarge")
    assert _lines(bigger, 1_000_000)["Preprocess"] == _lines(config, 1_000_000)["Preprocess"]
    fixed = {line.item: line for line in run_lines(bigger, "dev")}["Evaluate"]
    assert "ml.m5.2xlarge" in fixed.detail
    assert fixed.usd == pytest.approx(0.25 * INSTANCE_HOUR_USD[REGION]["ml.m5.2xlarge"])


def test_an_instance_type_without_a_vcpu_count_is_named(config: BoostlineConfig) -> None:
    unknown = _with(config, "evaluation", instance_type="ml.p5.48xlarge")
    with pytest.raises(KeyError, match=r"no vCPU count for ml\.p5\.48xlarge .*INSTANCE_VCPUS"):
        sized_steps(unknown, 1000)


def test_the_table_names_the_rows_and_adds_up(config: BoostlineConfig) -> None:
    text = estimate(config, "prod", rows=1_000_000)
    assert "One training pipeline run of 1,000,000 rows (on-demand)" in text
    run = sized_run_lines(config, "prod", 1_000_000)
    for line in run:
        assert f"{line.usd:8.2f}" in text
    total = sum(line.usd for line in run)
    assert f"total{'':>1}" in text and f"{total:8.2f}" in text
    rows = [r for r in text.splitlines() if r.startswith("  ")]
    assert len({len(r) for r in rows}) == 1, rows


def test_without_rows_the_estimate_is_the_fixed_one(config: BoostlineConfig) -> None:
    text = estimate(config, "prod")
    assert "One training pipeline run (on-demand)" in text
    assert "Tuning (upper bound)" in text and "rows" not in text.split("Idle")[0]


def test_cost_rows_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--stage", "prod", "--rows", "2000000"]) == 0
    assert "run of 2,000,000 rows" in capsys.readouterr().out
    assert main(["cost", "--stage", "prod", "--rows", "2000000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 2_000_000
    assert [line["item"] for line in out["per_pipeline_run"]] == [
        "PreprocessFit",
        "Preprocess",
        "Tune",
        "Evaluate",
    ]


@pytest.mark.parametrize("rows", ["0", "-5", "many"])
def test_cost_refuses_rows_that_are_no_count(rows: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cost", "--rows", rows])
    assert exit_.value.code == 2
    assert "--rows" in capsys.readouterr().err


def test_cost_names_an_unpriced_instance_type(
    config: BoostlineConfig, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEFAULT_CONFIG.read_text()
    replacements = {
        "dataset_schema: loan_schema.yaml\n": f"dataset_schema: {config.schema_path()}\n",
        "instance_type: ml.m5.xlarge  # the Evaluate": "instance_type: ml.p5.48xlarge  #",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["cost", "--config", str(path), "--rows", "1000"]) == 2
    assert "error: no vCPU count for ml.p5.48xlarge" in capsys.readouterr().err
    # Without --rows the fixed estimate still prices it: the price is missing too.
    assert main(["cost", "--config", str(path)]) == 2
    assert "error: no price for ml.p5.48xlarge in eu-west-1" in capsys.readouterr().err


def test_a_small_book_pays_for_cross_validation(config: BoostlineConfig) -> None:
    hps = config.training.hyperparameters
    assert hps["cv_max_rows"] == 50_000 and hps["cv_folds"] == 5
    share = 1 - config.preprocess.validation_fraction - config.preprocess.test_fraction
    small = int(49_000 / share)  # 49,000 training rows: cross-validated
    large = int(51_000 / share)
    work = {rows: _steps(config, rows)["Tune"].hours - OVERHEAD_HOURS for rows in (small, large)}
    # five folds, from two starts (linear_margin auto), four trees a round
    expected = 5 * (1 - config.preprocess.test_fraction) / share * 2 * 4
    assert work[small] / small == pytest.approx(expected * work[large] / large)
    once = _with(config, "training", hyperparameters={**hps, "linear_margin": False})
    assert _steps(once, small)["Tune"].hours - OVERHEAD_HOURS == pytest.approx(work[small] / 2)
    two = _with(config, "training", hyperparameters={**hps, "cv_parallel_trees": 2})
    assert _steps(two, small)["Tune"].hours - OVERHEAD_HOURS == pytest.approx(work[small] / 2)
    off = _with(config, "training", hyperparameters={**hps, "cv_max_rows": 0})
    assert _steps(off, small)["Tune"].hours == pytest.approx(
        OVERHEAD_HOURS + work[large] * small / large
    )


def test_a_stage_is_priced_on_its_own_job_sizes(config: BoostlineConfig) -> None:
    from boostline.config import JobSize, StageJobs

    prod = config.stage("prod").model_copy(
        update={"jobs": StageJobs(preprocess=JobSize(instance_count=4))}
    )
    sized = config.model_copy(update={"stages": {**config.stages, "prod": prod}})
    rows = 5_000_000

    def detail(cfg: BoostlineConfig, stage: str) -> str:
        return {line.item: line.detail for line in sized_run_lines(cfg, stage, rows)}["Preprocess"]

    assert detail(sized, "prod").startswith("4 x ")
    assert detail(sized, "dev") == detail(config, "dev")  # dev keeps the top-level size
    fixed = {line.item: line.detail for line in run_lines(sized, "prod")}
    assert " x 4 x " in fixed["Preprocess"]
