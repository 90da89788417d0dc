"""Successive halving: known optimum, budget, kill-and-resume, deterministic selection."""

from __future__ import annotations

import hashlib
import json

import pytest
from omegaconf import OmegaConf

from ssg_eval.errors import ConfigError
from ssg_eval.metrics.keys import FID, IS
from ssg_eval.tune.halving import Measurement, rank, run_halving, rung_sizes, space_fingerprint
from ssg_eval.tune.space import BASELINE, candidates_from_space

SPACE = OmegaConf.create({
    "betas": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0],
    "schedules": {"constant": {"beta_schedule": "constant"}},
    "temperatures": [1.0],
    "readings": {"default": {}, "per_branch": {"placement": "per_branch"}},
})  # fmt: skip


def noise(key: str, n: int) -> float:
    """Deterministic pseudo-noise in [-1, 1] per (candidate, N)."""
    digest = hashlib.sha256(f"{key}@{n}".encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**31 - 1


class KnownFunction:
    """FID = 2 + (beta - 1)^2 (+0.3 for per_branch) + noise/sqrt(N); IS = 10 - beta."""

    def __init__(self, crash_after: int | None = None):
        self.calls: list[tuple[str, int]] = []
        self.have: dict[str, int] = {}
        self.crash_after = crash_after

    def __call__(self, cand, n):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.calls.append((cand.key, n))
        beta = cand.params["beta"]
        fid = 2 + (beta - 1) ** 2 + 0.3 * (cand.params["reading"] == "per_branch")
        fid += 0.05 * noise(cand.key, n) / n**0.5
        new = n - self.have.get(cand.key, 0)
        self.have[cand.key] = n
        return Measurement({FID: fid, IS: 10 - beta}, new_samples=new, device_s=0.01 * new)


def tune(tmp_path, measure, objective="fid", budget=None, candidates=None):
    cands = candidates or candidates_from_space(SPACE, 1.0)
    sizes = rung_sizes(100, 2, 800)
    settings = {"sizes": sizes, "objective": objective}
    return run_halving(
        cands, measure, state_path=tmp_path / "state.json", sizes=sizes, n_final=1000,
        keep_fraction=0.5, objective=objective, budget=budget or {},
        fingerprint=space_fingerprint(cands, settings),
    )  # fmt: skip


def test_rung_sizes_double_up_to_the_cap():
    assert rung_sizes(5000, 2, 40000) == [5000, 10000, 20000, 40000]
    assert rung_sizes(5000, 2, 30000) == [5000, 10000, 20000, 30000]
    with pytest.raises(ConfigError, match="growth"):
        rung_sizes(5000, 1, 40000)


def test_search_returns_the_optimum_of_a_known_function(tmp_path):
    measure = KnownFunction()
    state = tune(tmp_path, measure)
    assert state["winner"] == "b1-constant-t1-default"
    assert set(state["final"]["metrics"]) == {BASELINE, "b1-constant-t1-default"}
    assert state["final"]["n"] == 1000
    # halving: 12 SSG candidates -> 6 -> 3 -> 2, baseline measured at every N
    assert [len(r["evaluated"]) for r in state["rungs"]] == [13, 7, 4, 3]
    assert all(BASELINE in r["evaluated"] for r in state["rungs"])
    # growth is incremental: new samples = final N per candidate, counted once
    assert state["spent"]["samples"] == sum(measure.have.values())


def test_constrained_objective_puts_low_is_candidates_last():
    results = {BASELINE: {FID: 3.0, IS: 5.0}, "a": {FID: 1.0, IS: 4.0}, "b": {FID: 2.0, IS: 6.0}}
    assert rank(results, "fid") == ["a", "b", BASELINE]
    assert rank(results, "fid_is_constrained") == ["b", BASELINE, "a"]


def test_budget_is_respected_and_the_stop_is_recorded(tmp_path):
    measure = KnownFunction()
    state = tune(tmp_path, measure, budget={"max_samples": 3500})
    assert state["spent"]["samples"] <= 3500
    assert state["stopped"] is not None and "max_samples=3500" in state["stopped"]["reason"]
    assert state["final"] is None and state["winner"] == state["rungs"][-1]["ranking"][0]
    with pytest.raises(ConfigError, match="first rung"):
        tune(tmp_path / "small", KnownFunction(), budget={"max_samples": 1000})


def test_gpu_hour_budget_uses_the_measured_rate(tmp_path):
    state = tune(tmp_path, KnownFunction(), budget={"max_gpu_hours": 30 / 3600})
    assert state["spent"]["device_s"] <= 30
    assert state["stopped"] is not None


@pytest.mark.parametrize("crash_after", [3, 13, 20, 28])
def test_killed_tune_resumes_to_the_same_decisions(tmp_path, crash_after):
    reference = tune(tmp_path / "ref", KnownFunction())
    with pytest.raises(KeyboardInterrupt):
        tune(tmp_path, KnownFunction(crash_after=crash_after))
    resumed_measure = KnownFunction()
    resumed = tune(tmp_path, resumed_measure)
    assert resumed["rungs"] == reference["rungs"]
    assert resumed["winner"] == reference["winner"]
    assert resumed["final"] == reference["final"]
    assert len(resumed_measure.calls) == sum(1 for _ in reference["evaluations"]) - crash_after


def test_selection_is_deterministic_with_ties_and_any_candidate_order(tmp_path):
    class Flat(KnownFunction):
        def __call__(self, cand, n):
            self.calls.append((cand.key, n))
            return Measurement({FID: 1.0, IS: 1.0}, new_samples=n, device_s=0.0)

    cands = candidates_from_space(SPACE, 1.0)
    first = tune(tmp_path / "a", Flat(), candidates=cands)
    again = tune(tmp_path / "b", Flat(), candidates=[cands[0], *reversed(cands[1:])])
    assert first["rungs"][0]["ranking"] == sorted(first["rungs"][0]["ranking"])
    assert [r["kept"] for r in first["rungs"]] == [r["kept"] for r in again["rungs"]]
    assert json.dumps(first["rungs"]) == json.dumps(again["rungs"])


def test_state_of_another_search_is_refused(tmp_path):
    tune(tmp_path, KnownFunction())
    with pytest.raises(ConfigError, match="another search"):
        tune(tmp_path, KnownFunction(), objective="fid_is_constrained")


def test_space_keys_and_overrides():
    cands = {c.key: c for c in candidates_from_space(SPACE, 1.0)}
    assert len(cands) == 1 + 6 * 2  # beta 0 collapses to the baseline for every reading
    per_branch = cands["b0.5-constant-t1-per_branch"]
    assert per_branch.ssg and per_branch.overrides == (
        "guidance.ssg.beta=0.5", "guidance.ssg.beta_schedule=constant",
        "guidance.ssg.placement=per_branch", "sampler.temperature=1",
    )  # fmt: skip
    assert not cands[BASELINE].ssg and cands[BASELINE].overrides == ("sampler.temperature=1",)
    bad = OmegaConf.merge(SPACE, {"readings": {"a b": {}}})
    with pytest.raises(ConfigError, match="reading name"):
        candidates_from_space(bad, 1.0)


def test_planned_samples_equals_what_a_full_search_spends(tmp_path):
    from ssg_eval.tune.halving import planned_samples

    measure = KnownFunction()
    state = tune(tmp_path, measure)
    assert planned_samples(12, rung_sizes(100, 2, 800), 1000, 0.5) == state["spent"]["samples"]
    # the default space: 4 SSG betas + baseline, 5k -> 20k, final 50k
    assert planned_samples(4, rung_sizes(5000, 2, 40000), 50000, 0.5) == 120_000
