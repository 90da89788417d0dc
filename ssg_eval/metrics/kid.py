"""Kernel Inception Distance with torch-fidelity's definition: cubic polynomial kernel MMD².

The subsets are drawn exactly as torch-fidelity 0.4 draws them (one `RandomState`, generated
subset first), so both give the same value on the same features; pure arithmetic, no file I/O.
"""

from __future__ import annotations

import numpy as np
import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
KID_SEED = 2020  # torch-fidelity's default `rng_seed`


def polynomial_kernel(
    x_MD: torch.Tensor, y_ND: torch.Tensor, degree: int, gamma: float, coef0: float
) -> torch.Tensor:
    """(γ·x·y + c)^degree in float64; the product is accumulated in float64 too."""
    return (x_MD @ y_ND.T * gamma + coef0) ** degree


def unbiased_mmd2(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> float:
    """Unbiased MMD² of two equal-size sets (Binkowski et al. 2018): diagonals of K_XX, K_YY out."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return float(within - 2 * k_xy.sum() / (m * m))


def kid(
    sample_features: np.ndarray,
    reference_features: np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = KID_DEGREE,
    gamma: float | None = None,
    coef0: float = KID_COEF0,
    seed: int = KID_SEED,
) -> tuple[float, float]:
    """KID = mean over random subset pairs of the unbiased polynomial-kernel MMD².

    Each of `subsets` rounds draws `subset_size` generated rows, then `subset_size` reference
    rows, without replacement, from `np.random.RandomState(seed)` (torch-fidelity's order with
    input1 = generated). Kernels and sums are float64 (torch-fidelity keeps float32).

    Args:
        sample_features: (N, D) generated features (pool3, 2048).
        reference_features: (M, D) reference features.
        subsets: number of subset pairs (torch-fidelity: 100).
        subset_size: rows per subset (1000); must not exceed N or M.
        degree, gamma, coef0: the kernel (γ·x·y + c)^degree; gamma None = 1/D.
        seed: RandomState seed (torch-fidelity: 2020).

    Returns:
        `(mean, std)` over the subsets (population std, as torch-fidelity).

    Raises:
        ValueError: shapes differ, non-finite values, or `subset_size` larger than a set.
    """
    x_ND, y_MD = np.asarray(sample_features), np.asarray(reference_features)
    if x_ND.ndim != 2 or y_MD.ndim != 2 or x_ND.shape[1] != y_MD.shape[1]:
        raise ValueError(f"KID needs (N, D) and (M, D) features, got {x_ND.shape}, {y_MD.shape}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(
            f"KID needs subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}"
        )
    if subset_size > min(len(x_ND), len(y_MD)):
        raise ValueError(
            f"KID subset size {subset_size} exceeds the samples ({len(x_ND)}) or the reference "
            f"({len(y_MD)}); use a smaller subset size"
        )
    if not (np.isfinite(x_ND).all() and np.isfinite(y_MD).all()):
        raise ValueError("KID features contain non-finite values")
    gamma = 1.0 / x_ND.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = torch.from_numpy(x_ND[rng.choice(len(x_ND), subset_size, replace=False)]).double()
        y = torch.from_numpy(y_MD[rng.choice(len(y_MD), subset_size, replace=False)]).double()
        values[i] = unbiased_mmd2(
            polynomial_kernel(x, x, degree, gamma, coef0),
            polynomial_kernel(x, y, degree, gamma, coef0),
            polynomial_kernel(y, y, degree, gamma, coef0),
        )
    return float(values.mean()), float(values.std())
