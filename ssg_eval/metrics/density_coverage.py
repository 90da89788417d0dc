"""Density and coverage (Naeem et al. 2020): k-NN balls around the real points, k = 5.

Squared Euclidean distances in row blocks with torch matmuls (float32 by default), open balls as
in the `prdc` package plus one fix: a fake point that coincides with a real point is inside that
point's ball even when its radius is 0 (duplicates); pure arithmetic, no file I/O.
"""

from __future__ import annotations

import numpy as np
import torch

DC_K = 5  # Naeem et al.'s recommended neighbourhood
DC_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Coincident points: squared distance within this share of ‖a‖² + ‖b‖² (the rounding of the
# ‖a‖² − 2a·b + ‖b‖² expansion in the given dtype; real neighbours are orders of magnitude farther).
COINCIDENT_REL = {torch.float32: 1e-5, torch.float64: 1e-12}


def squared_distances(a_MD: torch.Tensor, b_ND: torch.Tensor) -> torch.Tensor:
    """(M, N) squared Euclidean distances ‖a‖² − 2a·b + ‖b‖², clamped at 0."""
    prod_MN = a_MD @ b_ND.T
    return (
        prod_MN.mul_(-2).add_(a_MD.square().sum(1)[:, None]).add_(b_ND.square().sum(1)[None, :])
    ).clamp_min_(0)


def inside_balls(a_MD: torch.Tensor, radii_M: torch.Tensor, b_ND: torch.Tensor) -> torch.Tensor:
    """(M, N) bool: b_n lies in the open ball of a_m (d < r) or coincides with a_m."""
    dist_MN = squared_distances(a_MD, b_ND)
    norms = a_MD.square().sum(1)[:, None] + b_ND.square().sum(1)[None, :]
    return (dist_MN < radii_M[:, None]) | (dist_MN <= COINCIDENT_REL[a_MD.dtype] * norms)


def knn_radii(points_ND: torch.Tensor, k: int, block_size: int) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest other point ((k+1)-th, self included)."""
    radii = torch.empty(len(points_ND), dtype=points_ND.dtype)
    for start in range(0, len(points_ND), block_size):
        rows = points_ND[start : start + block_size]
        best = None
        for col in range(0, len(points_ND), block_size):
            dist = squared_distances(rows, points_ND[col : col + block_size])
            top = torch.topk(dist, min(k + 1, dist.shape[1]), dim=1, largest=False).values
            best = top if best is None else torch.cat([best, top], dim=1)
            best = torch.topk(best, min(k + 1, best.shape[1]), dim=1, largest=False).values
        radii[start : start + len(rows)] = best[:, k]
    return radii


def ball_counts(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = DC_K,
    block_size: int = 5000,
    dtype: str = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Per fake point, how many real k-NN balls hold it; per real point, whether any fake does.

    Args:
        real_features: (M, D) reference features (the balls).
        fake_features: (N, D) generated features.
        k: neighbourhood size (Naeem et al.: 5).
        block_size: rows per distance block.
        dtype: `float32` | `float64` distance arithmetic.

    Returns:
        `(counts (N,) int64, covered (M,) bool)`.

    Raises:
        ValueError: shapes, non-finite values, fewer than k+1 real points, or an unknown dtype.
    """
    if dtype not in DC_DTYPES:
        raise ValueError(f"density/coverage dtype {dtype!r} is not one of {list(DC_DTYPES)}")
    real, fake = np.asarray(real_features), np.asarray(fake_features)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1] or len(real) <= k:
        raise ValueError(
            f"density/coverage need (M > k={k}, D) real and (N, D) fake features, got "
            f"{real.shape}, {fake.shape}"
        )
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise ValueError("density/coverage features contain non-finite values")
    real_MD = torch.from_numpy(np.ascontiguousarray(real)).to(DC_DTYPES[dtype])
    fake_ND = torch.from_numpy(np.ascontiguousarray(fake)).to(DC_DTYPES[dtype])
    counts = torch.zeros(len(fake_ND), dtype=torch.int64)
    covered = torch.zeros(len(real_MD), dtype=torch.bool)
    with torch.inference_mode():
        radii_M = knn_radii(real_MD, k, block_size)
        for r0 in range(0, len(real_MD), block_size):
            rows, radii = real_MD[r0 : r0 + block_size], radii_M[r0 : r0 + block_size]
            for f0 in range(0, len(fake_ND), block_size):
                inside = inside_balls(rows, radii, fake_ND[f0 : f0 + block_size])
                counts[f0 : f0 + inside.shape[1]] += inside.sum(0)
                covered[r0 : r0 + len(rows)] |= inside.any(1)
    return counts.numpy(), covered.numpy()


def density_coverage(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = DC_K,
    block_size: int = 5000,
    dtype: str = "float32",
) -> tuple[float, float]:
    """Density = mean over fakes of (#real balls holding it) / k; coverage = share of real balls
    holding at least one fake. Balls: radius = distance to the k-th nearest other real point.

    Argument order is real first, as `precision_recall`. Balls are open (`d < r`, as the `prdc`
    package), so on point sets without duplicates the values equal `prdc.compute_prdc`'s; a fake
    point coinciding with a real one counts as inside its ball even at radius 0, where `prdc`
    counts nothing (it gives density = coverage = 0 on identical duplicated sets; docs/METRICS.md).

    Args:
        real_features, fake_features, k, block_size, dtype: see `ball_counts`.

    Returns:
        `(density, coverage)` as Python floats; density can exceed 1, coverage is in [0, 1].
    """
    counts, covered = ball_counts(real_features, fake_features, k, block_size, dtype)
    return float(counts.mean() / k), float(covered.mean())
