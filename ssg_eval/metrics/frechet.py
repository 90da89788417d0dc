"""Fréchet distance between two Gaussians, shared by FID (pool3) and sFID (spatial tap).

`eigh` is a fast symmetric form; `sqrtm` is ADM's literal formula with its fallbacks. Pure
float64 arithmetic: no file I/O, no device choice, no globals.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from ssg_eval.errors import ConfigError
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

FID_METHODS = ("eigh", "sqrtm")


def _check(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, ...]:
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,):
        raise ValueError(f"mean vectors differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"covariances must be ({dim}, {dim}), got {sigma1.shape} and {sigma2.shape}"
        )
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains non-finite values")
    return mu1, sigma1, mu2, sigma2


def trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr √(Σ₁Σ₂) from the eigenvalues of a symmetric matrix similar to Σ₁Σ₂, in float64.

    Fast path: with the Cholesky factor Σ₂ = LLᵀ, Σ₁Σ₂ is similar to LᵀΣ₁L (symmetric PSD), so
    one Cholesky, two products and one eigenvalue-only decomposition suffice. If Σ₂ is not
    positive definite (e.g. fewer samples than dimensions), the fallback uses √Σ₁ from a full
    symmetric eigendecomposition: Σ₁Σ₂ is similar to √Σ₁ Σ₂ √Σ₁. Tiny negative eigenvalues from
    rounding are clipped to 0 before the square roots.
    """
    import torch

    a = torch.from_numpy(np.ascontiguousarray(sigma1, dtype=np.float64))
    b = torch.from_numpy(np.ascontiguousarray(sigma2, dtype=np.float64))
    factor, info = torch.linalg.cholesky_ex((b + b.T) / 2)
    if int(info) == 0:
        middle = factor.T @ a @ factor
    else:
        eigvals1, eigvecs1 = torch.linalg.eigh((a + a.T) / 2)
        root1 = (eigvecs1 * eigvals1.clamp_min(0).sqrt()) @ eigvecs1.T
        middle = root1 @ b @ root1
    eigvals = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return float(eigvals.clamp_min(0).sqrt().sum())


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # ADM calls sqrtm(..., disp=False) and ignores the error estimate; without `disp` SciPy >= 1.16
    # returns the same root (singularity is reported as a LinAlgWarning instead of a print).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(matrix)
    for item in caught:
        log.debug("scipy.linalg.sqrtm: %s", item.message)
    return root


def trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """tr √(Σ₁Σ₂) exactly as ADM's `FIDStatistics.frechet_distance` computes it.

    Raises:
        ValueError: the root has a diagonal imaginary part above 1e-3 (ADM's check).
    """
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("fid calculation produces singular product; adding %s to diagonal", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    method: str = "eigh",
) -> float:
    """‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), in float64.

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances (symmetric PSD).
        method: `eigh` (symmetric eigendecompositions; equal to `sqrtm` within 1e-6 relative,
            tested) or `sqrtm` (ADM's literal `scipy.linalg.sqrtm` formula and fallbacks).

    Returns:
        The distance as a Python float (symmetric in its two Gaussians).

    Raises:
        ValueError: shape mismatch, non-finite input, unknown method, or ADM's imaginary check.
    """
    mu1, sigma1, mu2, sigma2 = _check(mu1, sigma1, mu2, sigma2)
    if method == "eigh":
        tr_covmean = trace_sqrt_product_eigh(sigma1, sigma2)
    elif method == "sqrtm":
        tr_covmean = trace_sqrt_product_sqrtm(sigma1, sigma2)
    else:
        raise ConfigError(
            f"metrics.fid_method={method!r} is not valid; expected one of {FID_METHODS}"
        )
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_features(
    features1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, method: str = "eigh"
) -> float:
    """Fréchet distance of a feature set against statistics; exact low-rank path for n <= D.

    With `eigh` and n rows in D >= n dims, Σ₁ = AᵀA (A = centred rows / √(n−1), n×D) has rank
    < n, and tr √(Σ₁Σ₂) = tr √(A Σ₂ Aᵀ) (same non-zero eigenvalues), an n×n symmetric problem
    instead of two D×D ones. Otherwise this is `feature_statistics` + `frechet_distance`.

    Args:
        features1: (n, D) float features (n >= 2).
        mu2, sigma2: (D,), (D, D) statistics of the other set.
        method: `eigh` | `sqrtm` (the latter always uses the D×D ADM formula).

    Returns:
        The distance as a Python float.
    """
    features1 = np.asarray(features1)
    if features1.ndim != 2 or features1.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {features1.shape}")
    num, dim = features1.shape
    if method != "eigh" or num > dim:
        mu1, sigma1 = feature_statistics(features1)
        return frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
    feats = features1.astype(np.float64)
    if not np.isfinite(feats).all():
        raise ValueError("features contain non-finite values")
    mu1 = feats.sum(axis=0) / num
    _, _, mu2, sigma2 = _check(mu1, np.eye(dim), mu2, sigma2)
    factor = (feats - mu1) / np.sqrt(num - 1)  # (n, D): Σ₁ = factorᵀ factor
    middle = factor @ sigma2 @ factor.T  # (n, n) symmetric PSD
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eigvals, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.sum(factor * factor) + np.trace(sigma2) - 2 * tr_covmean)
