"""FID, IS, precision and recall of one run on a multiset of its sample indices (`idx -> value`).

Each builder precomputes what every resample shares (Gram matrices, the reference's square root,
k-NN radii frozen on the full sets) and returns a closure a bootstrap evaluates many times: pure
math, features in, floats out. It must not draw the resamples (`analysis.paired` does) or read
files; the point estimates of `metrics.json` come from `compute`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import sparse

from ssg_eval.metrics.inception_score import inception_score

__all__ = ["IndexStat", "fid_stat", "inception_score_stat", "manifold_stats"]

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
