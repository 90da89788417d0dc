"""Paired statistics of two runs that share a sample plan: metric deltas with bootstrap CIs.

Pure math on per-sample features (arrays in, floats out); it must not read run directories or
decide which runs are paired (the tuner does), and the reference statistics stay fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import sparse, stats

from ssg_eval.analysis.seeds import resample_indices, strata_groups
from ssg_eval.metrics.inception_score import inception_score

__all__ = [
    "IndexStat",
    "fid_stat",
    "inception_score_stat",
    "manifold_stats",
    "minimum_detectable_delta",
    "paired_bootstrap",
    "project_mde",
]

# A statistic of one run evaluated on a multiset of its sample indices (rows may repeat).
IndexStat = Callable[[np.ndarray], float]


def fid_stat(
    pool: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray, device: str | torch.device = "cpu"
) -> IndexStat:
    """FID of the rows `idx` of `pool` (N, D) against fixed reference statistics.

    N <= D (low-rank path, float64 numpy): with Gram matrices G = X Σ_ref Xᵀ and K = X Xᵀ
    formed once, a resample S of n rows has tr √(Σ Σ_ref) = Σ √eig(H G_SS H / (n−1))
    (H = I − 11ᵀ/n centres), tr Σ = tr(H K_SS H)/(n−1) and ‖μ‖² = 1ᵀK_SS1/n², so each draw is an
    n×n eigenvalue problem. N > D: the rows' mean and covariance are formed in float64 on
    `device` and tr √(Σ Σ_ref) = Σ √eig(A Σ A) with A = Σ_ref^{1/2} computed once.
    """
    num, dim = np.shape(pool)
    if num <= dim:
        return _fid_stat_gram(np.asarray(pool, dtype=np.float64), mu_ref, sigma_ref)
    device = torch.device(device)
    rows = torch.as_tensor(np.asarray(pool), dtype=torch.float64, device=device)
    mu_r = torch.as_tensor(mu_ref, dtype=torch.float64, device=device)
    sigma_r = torch.as_tensor(sigma_ref, dtype=torch.float64, device=device)
    evals, evecs = torch.linalg.eigh((sigma_r + sigma_r.T) / 2)
    root = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T  # Σ_ref^{1/2}
    trace_r = float(torch.trace(sigma_r))

    def fid(idx: np.ndarray) -> float:
        x = rows[torch.as_tensor(idx, device=device)]
        mu = x.mean(0)
        centred = x - mu
        sigma = centred.T @ centred / (len(idx) - 1)
        middle = root @ sigma @ root
        tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
        diff = mu - mu_r
        return float(diff @ diff + torch.trace(sigma) + trace_r - 2 * tr_covmean)

    return fid


def _fid_stat_gram(x: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> IndexStat:
    mu_ref, sigma_ref = np.asarray(mu_ref, np.float64), np.asarray(sigma_ref, np.float64)
    gram_ref = x @ sigma_ref @ x.T  # (N, N): X Σ_ref Xᵀ
    gram = x @ x.T  # (N, N)
    cross = x @ mu_ref  # (N,)
    const = float(mu_ref @ mu_ref + np.trace(sigma_ref))

    def fid(idx: np.ndarray) -> float:
        n = len(idx)
        g, k = gram_ref[np.ix_(idx, idx)], gram[np.ix_(idx, idx)]
        g_c = g - g.mean(0)[None] - g.mean(1)[:, None] + g.mean()  # H G H
        middle = g_c / (n - 1)
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
        tr_sigma = (np.trace(k) - k.sum() / n) / (n - 1)
        mu_sq = k.sum() / n**2 - 2 * cross[idx].mean()
        return float(mu_sq + tr_sigma + const - 2 * tr_covmean)

    return fid


def inception_score_stat(logits: np.ndarray, split_size: int) -> IndexStat:
    """IS (mean over consecutive splits of `split_size`) of the rows `idx` of `logits`.

    The splits are taken in the order of `idx`, so a resample must keep each split's class mix:
    `resample_indices` puts every drawn row at the position of a row of its own class.
    """
    return lambda idx: inception_score(logits[idx], split_size)[0]


def _sq_distances(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    # float64 squared distances (rows, cols), clamped at 0 against rounding
    return (rows.square().sum(1)[:, None] - 2 * rows @ cols.T + cols.square().sum(1)[None]).clamp(0)


def _kth_radii(points: torch.Tensor, k: int, block: int) -> torch.Tensor:
    # squared distance to the k-th nearest other point: (k+1)-th smallest, self included
    out = []
    for start in range(0, len(points), block):
        dist = _sq_distances(points[start : start + block], points)
        out.append(torch.topk(dist, k + 1, largest=False).values[:, k])
    return torch.cat(out)


def manifold_stats(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = 3,
    block_size: int = 4096,
    device: str | torch.device = "cpu",
) -> tuple[IndexStat, IndexStat]:
    """Precision and recall of the fake rows `idx`, with every k-NN radius frozen on the full sets.

    Precision of a resample is the mean of the per-sample indicator "fake i lies in some real
    ball"; recall is the fraction of real points inside the ball of at least one resampled fake
    point. Radii (squared distance to the k-th nearest other point, as in improved P/R) are
    computed once, on the full real and fake sets, in float64: duplicated rows in a resample
    would otherwise shrink radii to 0. On the full index set both equal improved precision and
    recall with float32-style exact distances (ADM's float16 emulation can differ in the last
    ties); the point estimates reported elsewhere come from `metrics.precision_recall`.

    Args:
        real: (M, D) reference features (fixed). fake: (N, D) features of one run.
        k: neighbourhood size. block_size: rows per distance block. device: for the distances.

    Returns:
        `(precision_stat, recall_stat)`, each `idx -> float`.
    """
    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float64, device=device)
    fake_t = torch.as_tensor(np.asarray(fake), dtype=torch.float64, device=device)
    if len(real_t) < k + 1 or len(fake_t) < k + 1:
        raise ValueError(f"precision/recall need at least k+1={k + 1} real and fake points")
    real_radii, fake_radii = _kth_radii(real_t, k, block_size), _kth_radii(fake_t, k, block_size)
    inside_real = np.zeros(len(fake_t), dtype=bool)
    rows, cols = [], []
    for start in range(0, len(real_t), block_size):
        dist = _sq_distances(real_t[start : start + block_size], fake_t)  # (m, N)
        inside_real |= (dist <= real_radii[start : start + block_size, None]).any(0).cpu().numpy()
        j, i = np.nonzero(
            (dist <= fake_radii[None, :]).cpu().numpy()
        )  # real j in the ball of fake i
        rows.append(j + start)
        cols.append(i)
    shape = (len(real_t), len(fake_t))
    data = np.ones(sum(len(r) for r in rows), dtype=np.float64)
    coverage = sparse.csc_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=shape)

    def precision(idx: np.ndarray) -> float:
        return float(inside_real[idx].mean())

    def recall(idx: np.ndarray) -> float:
        counts = np.bincount(idx, minlength=shape[1]).astype(np.float64)
        return float(np.mean(coverage @ counts > 0))

    return precision, recall


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
