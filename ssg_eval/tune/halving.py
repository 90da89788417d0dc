"""Successive halving over candidates with a persisted, resumable state and a hard budget.

The engine sees candidates and a `measure(candidate, n)` callable only (no configs, no runs): it
decides which candidates grow to which N, writes every measurement and decision atomically to
`state.json`, and on restart replays them, so a killed tune resumes to the same decisions.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssg_eval.errors import ConfigError
from ssg_eval.metrics.keys import FID, IS
from ssg_eval.runs.io import atomic_write_json
from ssg_eval.runs.records import read_record
from ssg_eval.tune.schema import TuneObjective
from ssg_eval.tune.space import BASELINE, Candidate
from ssg_eval.utils.logging import get_logger

__all__ = [
    "OBJECTIVES",
    "Measurement",
    "planned_samples",
    "rank",
    "rung_sizes",
    "run_halving",
    "space_fingerprint",
]

log = get_logger(__name__)
OBJECTIVES = tuple(o.value for o in TuneObjective)
STATE_VERSION = 1
_STATE_FIELDS = ("fingerprint", "evaluations", "rungs", "spent.samples", "spent.device_s")


@dataclass(frozen=True)
class Measurement:
    """Metrics of one candidate at N, and what producing them cost (new samples, device-s)."""

    metrics: dict[str, float]
    new_samples: int
    device_s: float


Measure = Callable[[Candidate, int], Measurement]


def rung_sizes(n_start: int, growth: int, n_cap: int) -> list[int]:
    """N of each halving rung: n_start, n_start*growth, ... clipped to and ending at n_cap."""
    if n_start < 1 or growth < 2 or n_cap < n_start:
        raise ConfigError(
            f"tune.halving: need n_start >= 1, growth >= 2 and n_cap >= n_start; got "
            f"n_start={n_start}, growth={growth}, n_cap={n_cap}"
        )
    sizes = [n_start]
    while sizes[-1] < n_cap:
        sizes.append(min(sizes[-1] * growth, n_cap))
    return sizes


def planned_samples(num_ssg: int, sizes: Sequence[int], n_final: int, keep_fraction: float) -> int:
    """New samples a full search generates (growth reuses samples; the baseline runs at every N).

    Args:
        num_ssg: SSG candidates (the baseline comes on top).
        sizes: N per rung. n_final: N of the winner and the baseline at the end.
        keep_fraction: survivors per rung.
    """
    total, alive, have = 0, num_ssg, 0
    for n in sizes:
        total += (alive + 1) * (n - have)
        have = n
        last = n == sizes[-1] or alive <= 1
        if last:
            break
        alive = max(1, math.ceil(keep_fraction * alive))
    return total + 2 * max(0, n_final - have)


def rank(results: dict[str, dict[str, float]], objective: str) -> list[str]:
    """Candidate keys best first; ties broken by key, so the order is deterministic.

    `fid`: lower FID first. `fid_is_constrained`: candidates whose IS is at least the
    baseline's (at the same N) first, each group by FID.

    Args:
        results: key -> metrics at one N; must contain the baseline for the constrained objective.
        objective: one of `OBJECTIVES`.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"tune.objective={objective!r} is not valid; expected one of {OBJECTIVES}"
        )
    if objective == "fid":
        return sorted(results, key=lambda k: (results[k][FID], k))
    base_is = results[BASELINE][IS]
    return sorted(results, key=lambda k: (results[k][IS] < base_is, results[k][FID], k))


def space_fingerprint(candidates: Sequence[Candidate], settings: dict[str, Any]) -> str:
    """Hash of everything that decides the search (not the budget, which may be raised)."""
    blob = json.dumps(
        {"candidates": [[c.key, list(c.overrides)] for c in candidates], "settings": settings},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Budget:
    def __init__(self, state: dict[str, Any], max_samples, max_gpu_hours):
        self.state, self.max_samples, self.max_gpu_hours = state, max_samples, max_gpu_hours

    def refusal(self, new_samples: int) -> str | None:
        spent = self.state["spent"]
        if self.max_samples is not None and spent["samples"] + new_samples > self.max_samples:
            return (f"tune.budget.max_samples={self.max_samples}: {spent['samples']} spent, "
                    f"the next run needs {new_samples} more")  # fmt: skip
        if self.max_gpu_hours is not None and spent["samples"]:
            rate = spent["device_s"] / spent["samples"]
            projected = (spent["device_s"] + rate * new_samples) / 3600
            if projected > self.max_gpu_hours:
                return (f"tune.budget.max_gpu_hours={self.max_gpu_hours}: the next run would "
                        f"bring the total to {projected:.3g} h")  # fmt: skip
        return None


class _Tune:
    """One tune's state file plus the measure callable; every change is saved at once."""

    def __init__(self, path: Path, candidates, measure, budget_cfg, fingerprint):
        self.path, self.measure = path, measure
        self.by_key = {c.key: c for c in candidates}
        self.state = self._load(fingerprint)
        self.budget = _Budget(self.state, budget_cfg.get("max_samples"),
                              budget_cfg.get("max_gpu_hours"))  # fmt: skip

    def _load(self, fingerprint: str) -> dict[str, Any]:
        if self.path.is_file():
            state = read_record(self.path, "tune_state", need=_STATE_FIELDS)
            if state.get("fingerprint") != fingerprint:
                raise ConfigError(
                    f"{self.path} belongs to another search (fingerprint "
                    f"{state.get('fingerprint')}, this one {fingerprint}); choose another "
                    "tune.name=... or delete that folder to start over"
                )
            return state
        return {"version": STATE_VERSION, "fingerprint": fingerprint, "evaluations": {},
                "rungs": [], "final": None, "stopped": None,
                "spent": {"samples": 0, "device_s": 0.0}}  # fmt: skip

    def save(self) -> None:
        atomic_write_json(self.path, self.state)

    def have(self, key: str) -> int:
        sizes = [e["n"] for e in self.state["evaluations"].values() if e["key"] == key]
        return max(sizes, default=0)

    def get(self, key: str, n: int) -> dict[str, float] | None:
        """Metrics of `key` at `n` (measured now if needed); None when the budget refuses."""
        done = self.state["evaluations"].get(f"{key}@{n}")
        if done is not None:
            return done["metrics"]
        refusal = self.budget.refusal(max(0, n - self.have(key)))
        if refusal is not None:
            self.state["stopped"] = {"reason": refusal, "key": key, "n": n}
            self.save()
            return None
        paid = self.have(key)
        result = self.measure(self.by_key[key], n)
        # Samples made by a killed session (on disk, never recorded) count when first measured.
        new_samples = max(int(result.new_samples), n - paid)
        self.state["evaluations"][f"{key}@{n}"] = {"key": key, "n": n, **asdict(result),
                                                   "new_samples": new_samples}  # fmt: skip
        self.state["spent"]["samples"] += new_samples
        self.state["spent"]["device_s"] += float(result.device_s)
        self.state["stopped"] = None
        self.save()
        log.info("measured %s at N=%d: %s", key, n, result.metrics)
        return result.metrics


def run_halving(
    candidates: Sequence[Candidate],
    measure: Measure,
    *,
    state_path: str | Path,
    sizes: Sequence[int],
    n_final: int,
    keep_fraction: float,
    objective: str,
    budget: dict[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    """Successive halving: measure all at sizes[0], keep the best fraction, grow, repeat.

    The baseline (key `baseline`) is measured at every N (every delta is paired with it at its
    N) and competes, but is never dropped. After each rung the best
    `max(1, ceil(keep_fraction * survivors))` SSG candidates survive; the search ends at the
    last size or when one SSG candidate is left, and the best of that rung (baseline included)
    is the winner, measured again with the baseline at `n_final`. Measurements and decisions
    already in the state file are reused, never recomputed; a measurement the budget refuses
    stops the search with the last complete rung's ranking.

    Args:
        candidates: the space, baseline included.
        measure: `(candidate, n) -> Measurement`; growing reuses the smaller N's samples.
        state_path: the state JSON (created, or resumed when its fingerprint matches).
        sizes: N per rung (`rung_sizes`). n_final: N of the final pair.
        keep_fraction: fraction of SSG candidates kept per rung, in (0, 1].
        objective: see `rank`.
        budget: `max_samples` / `max_gpu_hours` (None = no cap).
        fingerprint: `space_fingerprint(...)` of this search.

    Returns:
        The state dict: `evaluations`, `rungs` (n, evaluated, ranking, kept), `winner`,
        `final` (winner and baseline at n_final, or None), `stopped`, `spent`.

    Raises:
        ConfigError: bad settings, no baseline, a state of another search, or a budget that
            cannot pay for the first rung.
    """
    if not 0 < keep_fraction <= 1:
        raise ConfigError(f"tune.halving.keep_fraction={keep_fraction} must be in (0, 1]")
    keys = [c.key for c in candidates]
    if BASELINE not in keys:
        raise ConfigError("the candidate list has no baseline")
    first = len(keys) * sizes[0]
    if budget.get("max_samples") is not None and budget["max_samples"] < first:
        raise ConfigError(
            f"tune.budget.max_samples={budget['max_samples']} cannot pay for the first rung "
            f"({len(keys)} candidates x {sizes[0]} samples = {first}); raise it or shrink the space"
        )
    tune = _Tune(Path(state_path), candidates, measure, budget, fingerprint)
    state = tune.state
    survivors = [k for k in keys if k != BASELINE]
    ranking: list[str] = []
    for index, n in enumerate(sizes):
        if index < len(state["rungs"]):  # decided before a restart: replay, never re-decide
            rung = state["rungs"][index]
            ranking, survivors = rung["ranking"], rung["kept"]
            if rung["last"]:
                break
            continue
        results = {}
        for key in [BASELINE, *survivors]:
            metrics = tune.get(key, n)
            if metrics is None:
                return _finish(tune, ranking)
            results[key] = metrics
        ranking = rank(results, objective)
        ssg_ranked = [k for k in ranking if k != BASELINE]
        kept = ssg_ranked[: max(1, math.ceil(keep_fraction * len(ssg_ranked)))]
        last = n == sizes[-1] or len(ssg_ranked) <= 1
        state["rungs"].append({"n": n, "evaluated": sorted(results), "ranking": ranking,
                               "kept": kept, "last": last})  # fmt: skip
        tune.save()
        survivors = kept
        if last:
            break
    return _finish(tune, ranking, n_final)


def _finish(tune: _Tune, ranking: list[str], n_final: int | None = None) -> dict[str, Any]:
    state = tune.state
    state["winner"] = ranking[0] if ranking else None
    if n_final is not None and state["winner"] is not None and state["final"] is None:
        final = {}
        for key in dict.fromkeys([BASELINE, state["winner"]]):
            metrics = tune.get(key, n_final)
            if metrics is None:
                break
            final[key] = metrics
        else:
            state["final"] = {"n": n_final, "metrics": final}
    tune.save()
    return state
