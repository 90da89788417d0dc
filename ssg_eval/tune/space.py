"""The search space of a tune: candidates (beta x schedule x temperature x reading) and their keys.

Pure bookkeeping on config values (config in, candidates out); it must not compose configs,
sample or read files. Every candidate is a list of pipeline overrides on the baseline experiment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ssg_eval.errors import ConfigError

__all__ = ["BASELINE", "Candidate", "candidate_from_params", "candidates_from_space"]

BASELINE = "baseline"


def _number(value: float) -> str:
    return f"{float(value):g}"


@dataclass(frozen=True)
class Candidate:
    """One point of the space: its stable key, parameters and the pipeline overrides it adds.

    Attributes:
        key: file-system safe, unique and stable id (`baseline`, `b0.5-constant-t1-default`).
        params: `beta`, `schedule`, `temperature`, `reading` (names as in the space).
        overrides: Hydra overrides on top of the cell (the evaluator picks the guidance group:
            the baseline's, or the SSG one when `ssg`).
        ssg: whether SSG is active (False for beta = 0 without a ramp: the baseline sampler).
    """

    key: str
    params: dict[str, Any] = field(compare=False, hash=False)
    overrides: tuple[str, ...]
    ssg: bool


def _value(value: Any) -> str:
    # Hydra override syntax: null, [a,b], plain scalars
    if value is None:
        return "null"
    if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
        return "[" + ",".join(_value(v) for v in value) + "]"
    return str(value)


def _safe(name: str, what: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        raise ConfigError(f"{what} name {name!r} may only use letters, digits, '_' and '.'")
    return name


def _is_off(beta: float, schedule: dict[str, Any]) -> bool:
    """True when SSG is a no-op at every scale (beta 0 and no ramp or list away from 0)."""
    if float(beta) != 0.0:
        return False
    if schedule.get("beta_list") is not None:
        return all(float(b) == 0.0 for b in schedule["beta_list"])
    return float(schedule.get("beta_end") or 0.0) == 0.0


def candidate_from_params(
    beta: float,
    schedule_name: str,
    schedule: dict[str, Any],
    temperature: float,
    reading_name: str,
    reading: dict[str, Any],
    baseline_temperature: float,
) -> Candidate:
    """The candidate of one parameter combination (beta = 0 collapses to the baseline sampler)."""
    # the values the runs use (keys and overrides print 6 significant digits)
    beta, temperature = float(_number(beta)), float(_number(temperature))
    params = {"beta": beta, "schedule": schedule_name, "temperature": temperature,
              "reading": reading_name}  # fmt: skip
    temp = [f"sampler.temperature={_number(temperature)}"]
    if _is_off(beta, schedule):
        if float(temperature) == float(baseline_temperature):
            key = BASELINE
        else:
            key = f"b0-t{_number(temperature)}"
        params.update(beta=0.0, schedule="off", reading="off")
        return Candidate(key, params, tuple(temp), ssg=False)
    key = "-".join([f"b{_number(beta)}", _safe(schedule_name, "schedule"),
                    f"t{_number(temperature)}", _safe(reading_name, "reading")])  # fmt: skip
    ssg = [f"guidance.ssg.{k}={_value(v)}" for k, v in {**schedule, **reading}.items()]
    overrides = (f"guidance.ssg.beta={_number(beta)}", *ssg, *temp)
    return Candidate(key, params, overrides, ssg=True)


def candidates_from_space(space: Any, baseline_temperature: float) -> list[Candidate]:
    """Every distinct candidate of the space, baseline first, then in declaration order.

    Args:
        space: `tune.space` (betas, schedules, temperatures, readings).
        baseline_temperature: the baseline experiment's `sampler.temperature`.

    Returns:
        Candidates with unique keys; the baseline is always included.

    Raises:
        ConfigError: an empty list, a negative beta or temperature, or an unsafe name.
    """
    for key in ("betas", "schedules", "temperatures", "readings"):
        if not len(space[key]):
            raise ConfigError(f"tune.space.{key} is empty; give at least one value")
    if any(float(b) < 0 for b in space.betas):
        raise ConfigError(f"tune.space.betas={list(space.betas)} must be >= 0 (0 = baseline)")
    if any(float(t) <= 0 for t in space.temperatures):
        raise ConfigError(f"tune.space.temperatures={list(space.temperatures)} must be > 0")
    out = {BASELINE: candidate_from_params(0.0, "constant", {}, baseline_temperature, "default",
                                           {}, baseline_temperature)}  # fmt: skip
    for temperature in space.temperatures:
        for reading_name, reading in space.readings.items():
            for schedule_name, schedule in space.schedules.items():
                for beta in space.betas:
                    cand = candidate_from_params(
                        beta, str(schedule_name), dict(schedule or {}), temperature,
                        str(reading_name), dict(reading or {}), baseline_temperature,
                    )  # fmt: skip
                    out.setdefault(cand.key, cand)
    return list(out.values())
