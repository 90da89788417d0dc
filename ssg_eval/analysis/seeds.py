"""Seed statistics over metric values: per-cell mean ± std, paired deltas and a bootstrap spread.

This module is pure math on floats and arrays (numbers in, numbers out); it must not read run
directories, log, or decide which runs belong together (that is `report.table`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "bootstrap_metric",
    "fid_bootstrap_std",
    "paired_delta",
    "resample_indices",
    "seed_summary",
    "strata_groups",
]


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain_key(seed: Hashable) -> Hashable:
    # numpy integers (pandas columns) become Python ints so the result is JSON-friendly.
    return seed.item() if isinstance(seed, np.generic) else seed


def seed_summary(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of one metric over seeds.

    Non-finite values (a metric missing for a seed) are ignored and not counted.

    Args:
        values: the metric of one (model, guidance) cell, one value per seed.

    Returns:
        `(mean, std, n)`: std uses ddof=1; it is NaN for n < 2 and both are NaN for n = 0.
    """
    kept = [v for v in (_finite(x) for x in values) if v is not None]
    n = len(kept)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(np.mean(kept))
    std = float(np.std(kept, ddof=1)) if n >= 2 else math.nan
    return mean, std, n


def paired_delta(
    baseline: Mapping[Hashable, float],
    treated: Mapping[Hashable, float],
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired comparison of a metric (treated − baseline) over the seeds both runs share.

    Runs with the same seed share a `SamplePlan` (same labels and per-sample seeds), so the
    per-seed differences are paired and the test is a paired t-test on them. The CI is
    `mean ± t_{(1+confidence)/2, n-1} · std/√n` (Student t, ddof=1). `within_noise` is True when
    that CI contains 0, i.e. the delta cannot be told apart from seed noise. Seeds present in only
    one mapping, or with a non-finite value, are left out and listed in `unpaired_seeds`.

    Args:
        baseline: seed -> metric value of the baseline cell (e.g. CFG).
        treated: seed -> metric value of the treated cell (e.g. CFG + SSG).
        confidence: two-sided CI level in (0, 1).

    Returns:
        A dict with `seeds` (sorted paired seeds), `deltas` (seed -> treated − baseline), `n`,
        `mean_delta`, `std` (ddof=1), `sem`, `t_stat`, `p_value` (two-sided, matches
        `scipy.stats.ttest_rel(treated, baseline)`), `ci_low`, `ci_high`, `confidence`,
        `within_noise` (bool, or None when n < 2), `reason` (`"n<2"` when n < 2, else None) and
        `unpaired_seeds`. Statistics that need n >= 2 are NaN below that; `mean_delta` is NaN
        for n = 0. With zero spread (all deltas equal) the CI collapses to the mean, `t_stat` is
        ±inf (NaN when the mean is 0 too) and `p_value` is 0 (1 when the mean is 0).

    Raises:
        ValueError: `confidence` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must be in (0, 1), e.g. 0.95")
    clean_b = {_plain_key(s): v for s, x in baseline.items() if (v := _finite(x)) is not None}
    clean_t = {_plain_key(s): v for s, x in treated.items() if (v := _finite(x)) is not None}
    all_seeds = {_plain_key(s) for s in [*baseline, *treated]}
    seeds = _sorted(set(clean_b) & set(clean_t))
    deltas = {s: clean_t[s] - clean_b[s] for s in seeds}
    values = np.array([deltas[s] for s in seeds], dtype=np.float64)
    n = len(seeds)
    out: dict[str, Any] = {
        "seeds": seeds,
        "deltas": deltas,
        "n": n,
        "mean_delta": float(values.mean()) if n else math.nan,
        "std": math.nan,
        "sem": math.nan,
        "t_stat": math.nan,
        "p_value": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "confidence": confidence,
        "within_noise": None,
        "reason": "n<2" if n < 2 else None,
        "unpaired_seeds": _sorted(all_seeds - set(seeds)),
    }
    if n < 2:
        return out
    mean = out["mean_delta"]
    std = float(values.std(ddof=1))
    sem = std / math.sqrt(n)
    half_width = float(stats.t.ppf((1 + confidence) / 2, df=n - 1)) * sem
    if sem > 0:
        t_stat = mean / sem
        p_value = float(2 * stats.t.sf(abs(t_stat), df=n - 1))
    else:  # identical deltas: scipy would warn and return NaN; the limit is clear
        t_stat = math.nan if mean == 0 else math.copysign(math.inf, mean)
        p_value = 1.0 if mean == 0 else 0.0
    out.update(
        std=std,
        sem=sem,
        t_stat=float(t_stat),
        p_value=p_value,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        within_noise=bool(mean - half_width <= 0 <= mean + half_width),
    )
    return out


def _sorted(items: Iterable[Hashable]) -> list[Hashable]:
    items = list(items)
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:  # mixed key types: any stable order will do
        return sorted(items, key=repr)


def bootstrap_metric(
    metric_fn: Callable[..., float],
    sample_features: np.ndarray | Sequence[np.ndarray],
    seed: int,
    num_resamples: int = 0,
    strata: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """Cheap spread of a feature-based metric when only one sampling seed exists (off by default).

    Each resample draws N rows of the sample features with replacement (within each stratum when
    `strata` is given, e.g. the class labels, so class balance is kept) and recomputes the
    metric; the reference statistics stay fixed inside `metric_fn`. The std over resamples
    estimates the metric's finite-sample variance. It is a stand-in, not a seed std: it ignores
    the sampler's other randomness, and duplicated rows bias the resampled *mean* (for FID
    upwards), so report the std only, next to the one-seed value. Each drawn row takes the
    position of a row of its own stratum (`resample_indices`), so a metric that depends on sample
    order (IS over consecutive splits) sees every split with its original class mix. Enabled by
    `report.bootstrap_resamples`.

    Args:
        metric_fn: features -> float (called as `metric_fn(*arrays)` when `sample_features` is a
            sequence of arrays), e.g. FID of pool features against fixed reference statistics.
        sample_features: (N, D) array, or a sequence of arrays sharing the first axis N whose
            rows are resampled together (e.g. pool and spatial features).
        seed: seed of the `numpy.random.default_rng` that draws the indices (reproducible).
        num_resamples: number of resamples; 0 switches the bootstrap off.
        strata: optional (N,) labels; resampling happens within each label.

    Returns:
        `(mean, std)` of the metric over resamples (std with ddof=1), or None when
        `num_resamples == 0`.

    Raises:
        ValueError: `num_resamples` is negative or 1, the arrays disagree on N or N is 0, or
            `strata` has the wrong length.
    """
    if num_resamples == 0:
        return None
    if num_resamples < 2:
        raise ValueError(
            f"num_resamples={num_resamples} must be 0 (off) or >= 2 for a std (e.g. 100)"
        )
    is_single = isinstance(sample_features, np.ndarray)
    arrays = [sample_features] if is_single else [np.asarray(a) for a in sample_features]
    num = len(arrays[0])
    if num == 0 or any(len(a) != num for a in arrays):
        raise ValueError(
            f"sample_features need one shared, non-empty first axis; got "
            f"{[a.shape for a in arrays]}"
        )
    if strata is not None and len(strata) != num:
        raise ValueError(f"strata has length {len(strata)}; expected N={num}")
    rng = np.random.default_rng(seed)
    groups = strata_groups(num, strata)
    values = np.empty(num_resamples, dtype=np.float64)
    for r in range(num_resamples):
        index = resample_indices(rng, groups)
        values[r] = float(metric_fn(*[a[index] for a in arrays]))
    return float(values.mean()), float(values.std(ddof=1))


def fid_bootstrap_std(
    pool: np.ndarray,
    labels: np.ndarray,
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    *,
    seed: int,
    num_resamples: int,
    method: str = "eigh",
) -> float:
    """Std of FID over class-stratified bootstrap resamples of one run's pool features.

    A cheap, documented stand-in for seed spread when only one seed exists
    (`metrics.bootstrap_resamples`); it does not replace more seeds (see `bootstrap_metric`).

    Args:
        pool: (N, 2048) pool features of the samples. labels: (N,) their classes (the strata).
        mu_ref, sigma_ref: the fixed reference statistics. seed, num_resamples: of the draws
            (>= 2). method: `metrics.fid_method`.
    """
    from ssg_eval.metrics.frechet import frechet_distance
    from ssg_eval.metrics.stats import feature_statistics

    def fid(features: np.ndarray) -> float:
        mu, sigma = feature_statistics(features)
        return frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method)

    _, std = bootstrap_metric(fid, pool, seed=seed, num_resamples=num_resamples, strata=labels)
    return float(std)


def strata_groups(num: int, strata: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices per stratum (sorted labels), or one group `arange(num)` without strata."""
    if strata is None:
        return [np.arange(num)]
    strata = np.asarray(strata)
    return [np.flatnonzero(strata == label) for label in np.unique(strata)]


def resample_indices(rng: np.random.Generator, groups: Sequence[np.ndarray]) -> np.ndarray:
    """One stratified bootstrap draw that keeps every position's stratum (one draw for all metrics).

    Each group is resampled with replacement to its own size, and the drawn rows are put at the
    positions of the group, in order: `index[g] = g[rng.integers(0, len(g), size=len(g))]` for
    each group `g` in order (the contract the tests replay). Position i of a resample thus holds
    a row of position i's stratum: with class strata, every consecutive IS split keeps exactly
    the class mix of the original order (rows of one class are exchangeable: they are i.i.d.
    draws of that class, wherever they sit), instead of the class-blocked splits a concatenation
    of the groups would make. Order-free metrics (FID, precision, recall) see the same multiset
    as with concatenated groups. With one group `arange(N)` it is a plain i.i.d. draw.

    Args:
        rng: the generator of the draws (one `rng.integers` call per group, in order).
        groups: index arrays that partition 0..N-1 (as `strata_groups` returns).

    Returns:
        index: (N,) int array; `index[i]` is the row placed at position i.

    Raises:
        ValueError: the groups do not partition 0..N-1.
    """
    num = sum(len(g) for g in groups)
    index = np.full(num, -1, dtype=np.intp)
    for g in groups:
        index[g] = g[rng.integers(0, len(g), size=len(g))]
    if (index < 0).any():
        raise ValueError(f"groups must partition 0..{num - 1} (as strata_groups returns)")
    return index
