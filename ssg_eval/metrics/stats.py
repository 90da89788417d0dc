"""Mean and covariance of feature sets in float64, as ADM's `compute_statistics` does.

Pure arithmetic with bounded extra memory (row blocks); it must not read files or choose devices.
"""

from __future__ import annotations

import numpy as np

_ROWS = 8192  # rows per accumulation block: (8192, D) float64 at most extra


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance, equal to `np.mean(x, 0)`, `np.cov(x, rowvar=False)`.

    Both passes accumulate in float64 over row blocks (centred before the product, like np.cov),
    so a float32 (50000, 2048) input never gets a full float64 copy.

    Args:
        features: (N, D) float array, N >= 2, all finite.

    Returns:
        `mu` (D,) float64 and `sigma` (D, D) float64 (N - 1 normalisation).

    Raises:
        ValueError: not 2-D, fewer than 2 rows, or non-finite values.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {features.shape}")
    num, dim = features.shape
    total = np.zeros(dim, dtype=np.float64)
    for start in range(0, num, _ROWS):
        block = features[start : start + _ROWS].astype(np.float64)
        if not np.isfinite(block).all():
            raise ValueError(f"features contain non-finite values (rows {start}..)")
        total += block.sum(axis=0)
    mu = total / num
    sigma = np.zeros((dim, dim), dtype=np.float64)
    for start in range(0, num, _ROWS):
        centred = features[start : start + _ROWS].astype(np.float64) - mu
        sigma += centred.T @ centred
    sigma /= num - 1
    return mu, sigma
