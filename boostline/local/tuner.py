"""Local hyperparameter tuning with the ranges and budget of the SageMaker tuning job.

The search itself is Optuna's: TPE for the "Bayesian" strategy, random
sampling for "Random". Each trial is a training job; its objective is read
from the job's log with the same metric regex the tuning job uses.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import optuna

from boostline.config import HyperparameterValue, TuningConfig, TuningRange


class TuningFailed(RuntimeError):
    """No trial produced the objective metric."""


@dataclass
class Trial:
    number: int
    hyperparameters: dict[str, HyperparameterValue]
    objective: float | None
    status: str  # "Completed" or "Failed"
    detail: str = ""
    started: float = 0.0  # epoch seconds
    ended: float = 0.0


@dataclass
class TuningResult:
    best: Trial
    trials: list[Trial] = field(default_factory=list)


def objective_from_log(log: str, regex: str) -> float | None:
    """The last value the regex captures, as SageMaker reads a metric's final value."""
    values = re.findall(regex, log)
    if not values:
        return None
    last = values[-1]
    value = float(last[0] if isinstance(last, tuple) else last)
    return value if math.isfinite(value) else None


def suggest(trial: optuna.Trial, name: str, spec: TuningRange) -> HyperparameterValue:
    if spec.type == "categorical":
        return trial.suggest_categorical(name, list(spec.values or []))
    assert spec.min is not None and spec.max is not None
    log = spec.scaling == "Logarithmic"
    if spec.type == "integer":
        return trial.suggest_int(name, int(spec.min), int(spec.max), log=log)
    if spec.scaling == "ReverseLogarithmic":
        # dense near max: sample 1 - x on a log scale (SageMaker requires max < 1 here)
        y = trial.suggest_float(f"_{name}_reverse", 1 - spec.max, 1 - spec.min, log=True)
        return 1 - y
    return trial.suggest_float(name, spec.min, spec.max, log=log)


def tune(
    config: TuningConfig,
    run_trial: Callable[[int, dict[str, HyperparameterValue]], tuple[float | None, str]],
    *,
    seed: int = 0,
    max_jobs: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuningResult:
    """Run up to `max_jobs` trials, `max_parallel_jobs` at a time.

    `run_trial(number, hyperparameters)` returns (objective or None, detail).

    Trials run in rounds of `max_parallel_jobs`: a round's hyperparameters are all drawn,
    in trial order, before any of them runs, and its results are told in trial order once
    all have ended. So the same seed gives the same trials whichever finishes first (drawn
    from threads as trials ended, two identical runs tuned differently).
    """
    if not config.ranges:
        raise ValueError("tuning.ranges is empty: nothing to tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, config.max_jobs))
        if config.strategy == "Bayesian"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    direction = "maximize" if config.objective_type == "Maximize" else "minimize"
    study = optuna.create_study(direction=direction, sampler=sampler)
    trials: list[Trial] = []

    def run(number: int, hps: dict[str, HyperparameterValue]) -> Trial:
        started = time.time()
        value, detail = run_trial(number, hps)
        if value is not None and not math.isfinite(value):
            value, detail = None, f"objective {value} is not a number; {detail}"
        status = "Completed" if value is not None else "Failed"
        return Trial(number, hps, value, status, detail, started=started, ended=time.time())

    ranges = sorted(config.ranges.items())
    budget = max_jobs or config.max_jobs
    parallel = max(1, min(config.max_parallel_jobs, budget))
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while len(trials) < budget:
            batch = []
            for _ in range(min(parallel, budget - len(trials))):
                ot = study.ask()
                hps = {name: suggest(ot, name, spec) for name, spec in ranges}
                batch.append((ot, pool.submit(run, ot.number, hps)))
            # every trial of the round is recorded before an error in one of them surfaces
            errors = [future.exception() for _, future in batch]
            for (ot, future), error in zip(batch, errors, strict=True):
                if error is not None:
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                    continue
                record = future.result()
                trials.append(record)
                if on_trial:
                    on_trial(record)
                if record.objective is None:
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(ot, record.objective)
            first = next((error for error in errors if error is not None), None)
            if first is not None:
                raise first
    done = [t for t in trials if t.objective is not None]
    if not done:
        reasons = "; ".join(sorted({t.detail for t in trials})[:3])
        raise TuningFailed(f"all {len(trials)} tuning trials failed: {reasons}")
    pick = max if direction == "maximize" else min
    best = pick(done, key=lambda t: (t.objective, -t.number))
    return TuningResult(best=best, trials=sorted(trials, key=lambda t: t.number))
