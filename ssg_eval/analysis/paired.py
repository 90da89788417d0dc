"""Paired statistics of two runs that share a sample plan: metric deltas with bootstrap CIs.

The resampling (paired and unpaired bootstrap, minimum detectable delta) of any `idx -> value`
statistic; the metrics themselves as such statistics are `metrics.resampled`. Pure math on
per-sample values; it must not read run directories or decide which runs are paired (the tuner
and the report do), and the reference statistics stay fixed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from ssg_eval.analysis.seeds import resample_indices, strata_groups
from ssg_eval.metrics.resampled import IndexStat

__all__ = ["minimum_detectable_delta", "paired_bootstrap", "project_mde"]


def minimum_detectable_delta(se: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Smallest |Δ| a two-sided test at `confidence` detects with probability `power`.

    `(z_{(1+confidence)/2} + z_{power}) · se` (normal approximation; 2.80·se at 95 % / 80 %).
    """
    return float((stats.norm.ppf((1 + confidence) / 2) + stats.norm.ppf(power)) * se)


def project_mde(mde: float, num_samples: int, target_samples: int) -> float:
    """The MDE at another N under the usual 1/√N scaling of a paired delta's standard error."""
    return float(mde * math.sqrt(num_samples / target_samples))


def paired_bootstrap(
    baseline: IndexStat,
    candidate: IndexStat,
    num_samples: int,
    *,
    num_resamples: int,
    seed: int,
    confidence: float = 0.95,
    power: float = 0.8,
    strata: np.ndarray | None = None,
) -> dict[str, Any]:
    """Δ = candidate − baseline of one metric, with a paired and an unpaired bootstrap CI.

    Both runs share a sample plan (same labels and per-sample seeds), so sample i of one run is
    paired with sample i of the other. Draw protocol (replayable with `numpy`): one
    `default_rng(seed)`; per resample r, first the paired draw `idx = resample_indices(rng,
    groups)` evaluated on both runs, then an independent draw `idx2` for the candidate's side of
    the unpaired interval (baseline on `idx`, candidate on `idx2`). Groups are the strata (class
    labels, so class balance is kept) or one group of all N indices; a draw keeps every
    position's stratum (`idx[g] = g[rng.integers(0, len(g), size=len(g))]` per group `g`), so
    IS splits keep their class mix and order-free metrics see a plain stratified multiset. CIs
    are percentile intervals; `se` is the std (ddof=1) of the bootstrap deltas.

    Args:
        baseline, candidate: `idx -> metric` of each run (e.g. `fid_stat(...)`); reference
            statistics are fixed inside them.
        num_samples: N, the shared number of samples (indices 0..N-1).
        num_resamples: bootstrap draws (>= 2).
        seed: seed of the draws.
        confidence: two-sided CI level. power: for `mde` (minimum detectable |Δ|).
        strata: optional (N,) labels shared by both runs.

    Returns:
        `baseline`, `candidate`, `delta` (full-set values), `ci_low`, `ci_high`, `se`,
        `unpaired_ci_low`, `unpaired_ci_high`, `unpaired_se`, `mde` (from the paired se),
        `resolved` (the paired CI excludes 0), `num_samples`, `num_resamples`, `confidence`.

    Raises:
        ValueError: `num_resamples < 2` or `confidence` outside (0, 1).
    """
    if num_resamples < 2:
        raise ValueError(f"num_resamples={num_resamples} must be >= 2 (e.g. 200)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must be in (0, 1), e.g. 0.95")
    full = np.arange(num_samples)
    base_value, cand_value = float(baseline(full)), float(candidate(full))
    rng = np.random.default_rng(seed)
    groups = strata_groups(num_samples, strata)
    paired = np.empty(num_resamples)
    unpaired = np.empty(num_resamples)
    for r in range(num_resamples):
        idx = resample_indices(rng, groups)
        idx2 = resample_indices(rng, groups)
        base_r = float(baseline(idx))
        paired[r] = float(candidate(idx)) - base_r
        unpaired[r] = float(candidate(idx2)) - base_r
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(paired, [tail, 100 - tail])
    ulo, uhi = np.percentile(unpaired, [tail, 100 - tail])
    se = float(paired.std(ddof=1))
    return {
        "baseline": base_value,
        "candidate": cand_value,
        "delta": cand_value - base_value,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "se": se,
        "unpaired_ci_low": float(ulo),
        "unpaired_ci_high": float(uhi),
        "unpaired_se": float(unpaired.std(ddof=1)),
        "mde": minimum_detectable_delta(se, confidence, power),
        "resolved": bool(lo > 0 or hi < 0),
        "num_samples": int(num_samples),
        "num_resamples": int(num_resamples),
        "confidence": confidence,
    }
