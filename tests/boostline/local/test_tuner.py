"""boostline/local/tuner.py: the local tuning job's search, budget and determinism."""

from __future__ import annotations

import random
import threading
import time

import pytest

from boostline.config import TuningConfig, TuningRange
from boostline.local.tuner import TuningFailed, tune


def _config(**overrides: object) -> TuningConfig:
    ranges = {
        "eta": TuningRange(type="continuous", min=0.01, max=0.3, scaling="Logarithmic"),
        "max_depth": TuningRange(type="integer", min=2, max=7),
    }
    return TuningConfig(
        **{"max_jobs": 8, "max_parallel_jobs": 3, "ranges": ranges, **overrides}  # type: ignore[arg-type]
    )


def _objective(hps: dict) -> float:
    return 1.0 - abs(float(hps["eta"]) - 0.1) - 0.01 * abs(int(hps["max_depth"]) - 4)


def _run(config: TuningConfig, jitter: random.Random) -> list[tuple[int, dict]]:
    def run_trial(number: int, hps: dict) -> tuple[float | None, str]:
        time.sleep(jitter.random() * 0.02)  # trials end in another order every run
        return _objective(hps), "ok"

    result = tune(config, run_trial, seed=3)
    return [(t.number, t.hyperparameters) for t in result.trials]


@pytest.mark.parametrize("strategy", ["Bayesian", "Random"])
def test_the_same_seed_tunes_the_same_whichever_trial_ends_first(strategy: str) -> None:
    config = _config(strategy=strategy)
    first = _run(config, random.Random(1))
    second = _run(config, random.Random(2))
    assert [n for n, _ in first] == list(range(8))
    assert first == second


def test_at_most_max_parallel_jobs_run_at_once_and_the_budget_is_kept() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def run_trial(number: int, hps: dict) -> tuple[float | None, str]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return _objective(hps), "ok"

    result = tune(_config(max_jobs=7), run_trial, seed=0, max_jobs=5)
    assert len(result.trials) == 5 and peak[0] == 3


def test_failed_trials_are_kept_and_the_best_completed_one_wins() -> None:
    def run_trial(number: int, hps: dict) -> tuple[float | None, str]:
        return (None, "no metric") if number % 2 else (float(number), "ok")

    seen: list[int] = []
    result = tune(_config(), run_trial, on_trial=lambda t: seen.append(t.number))
    assert [t.status for t in result.trials] == ["Completed", "Failed"] * 4
    assert result.best.number == 6 and seen == list(range(8))


def test_all_failed_trials_fail_the_tuning_with_their_reason() -> None:
    with pytest.raises(TuningFailed, match="all 8 tuning trials failed: no metric"):
        tune(_config(), lambda number, hps: (None, "no metric"))


def test_a_trial_without_a_finite_objective_is_failed() -> None:
    def run_trial(number: int, hps: dict) -> tuple[float | None, str]:
        return (float("nan") if number == 0 else float(number)), "ok"

    result = tune(_config(max_jobs=3, max_parallel_jobs=1), run_trial)
    assert result.trials[0].status == "Failed" and "not a number" in result.trials[0].detail
    assert result.best.number == 2


def test_an_error_in_a_trial_surfaces_after_its_round_is_recorded() -> None:
    seen: list[int] = []

    def run_trial(number: int, hps: dict) -> tuple[float | None, str]:
        if number == 4:
            raise RuntimeError("the trial's job could not start")
        time.sleep(0.01)
        return float(number), "ok"

    with pytest.raises(RuntimeError, match="could not start"):
        tune(_config(), run_trial, on_trial=lambda t: seen.append(t.number))
    assert seen == [0, 1, 2, 3, 5]  # the round of trials 3-5 was recorded but for 4
