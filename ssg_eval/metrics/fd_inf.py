"""FD∞ (Chong & Forsyth 2020): FID at several sample counts, fitted linearly in 1/N, read at 0.

FID's bias is close to linear in 1/N, so the intercept of a least-squares line through
(1/N_i, FID_i) estimates the FID of infinitely many samples; pure arithmetic, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssg_eval.metrics.frechet import frechet_distance
from ssg_eval.metrics.stats import feature_statistics

FD_INF_POINTS = 15  # Chong & Forsyth's default number of subset sizes
FD_INF_MIN_SIZE = 5000  # their smallest subset (clipped to N // 2 for smaller runs)
FD_INF_SEED = 0


@dataclass(frozen=True)
class FdInfinity:
    """The extrapolation and what it rests on.

    Attributes:
        value: intercept of FID = value + slope / N.
        stderr: the stated error, √(fit_stderr² + sampling_std²).
        fit_stderr: ordinary-least-squares standard error of the intercept.
        sampling_std: estimated std of the FID of the whole N-sample set (every subset is drawn
            from it, so the fit cannot see this part): c / N with c from the subsets' scatter.
        slope: fitted slope (FID × samples).
        sizes: the subset sizes N_i.
        fids: FID at each size (one random subset each).
    """

    value: float
    stderr: float
    fit_stderr: float
    sampling_std: float
    slope: float
    sizes: tuple[int, ...]
    fids: tuple[float, ...]


def linear_fit_intercept(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line y = a + b·x: `(a, b, standard error of a)` (0 for an exact fit).

    Raises:
        ValueError: fewer than 3 points or all x equal.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"FD∞ needs >= 3 distinct subset sizes, got {len(set(x.tolist()))}")
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - (a + b * x)
    sigma2 = residual.dot(residual) / (len(x) - 2)
    stderr = np.sqrt(sigma2 * (1 / len(x) + x.mean() ** 2 / np.sum((x - x.mean()) ** 2)))
    return float(a), float(b), float(stderr)


def sampling_std(sizes: np.ndarray, residuals: np.ndarray, total: int) -> float:
    """Std of the FID of all `total` samples, from the scatter of subset FIDs around the line.

    A subset of n rows drawn from the same `total` rows varies like an independent n-sample set
    times the finite-population factor, Var ≈ c·(1/n − 1/total); c is fitted to the residuals
    (2 degrees of freedom spent on the line) and the whole set's variance is c / total.
    """
    weights = 1.0 / np.asarray(sizes, np.float64) - 1.0 / total
    if weights.sum() <= 0 or len(sizes) < 3:
        return 0.0
    scale = np.sum(np.square(residuals)) / weights.sum() * len(sizes) / (len(sizes) - 2)
    return float(np.sqrt(scale / total))


def fd_inf_sizes(
    num: int, points: int = FD_INF_POINTS, min_size: int = FD_INF_MIN_SIZE
) -> list[int]:
    """`points` distinct sizes evenly spaced from min(min_size, num // 2) to num."""
    low = max(2, min(min_size, num // 2))
    return sorted({int(n) for n in np.linspace(low, num, points).round()})


def fd_infinity(
    features: np.ndarray,
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    *,
    points: int = FD_INF_POINTS,
    min_size: int = FD_INF_MIN_SIZE,
    seed: int = FD_INF_SEED,
    method: str = "eigh",
) -> FdInfinity:
    """FD∞ of generated features against fixed reference statistics.

    Each size N_i draws one random subset of the rows (without replacement, seeded) and
    computes its Fréchet distance to (mu_ref, sigma_ref); the intercept of the least-squares line
    FID = a + b/N is FD∞. Its stated error combines the fit's OLS standard error with the
    sampling std of the whole set (`sampling_std`); it does not cover a departure of the bias
    from the 1/N model.

    Args:
        features: (N, D) generated features (N >= 6).
        mu_ref, sigma_ref: (D,), (D, D) reference statistics (ADM: stored training-set ones).
        points: number of subset sizes (15). min_size: smallest subset (5000, clipped to N // 2).
        seed: subset draws. method: `metrics.fid_method`.

    Returns:
        An `FdInfinity`.

    Raises:
        ValueError: too few samples for 3 distinct sizes, shape mismatch, non-finite values.
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 6:
        raise ValueError(f"FD∞ needs (N >= 6, D) features, got shape {features.shape}")
    sizes = fd_inf_sizes(len(features), points, min_size)
    rng = np.random.default_rng(seed)
    fids = []
    for size in sizes:
        rows = np.sort(rng.choice(len(features), size, replace=False))
        mu, sigma = feature_statistics(features[rows])
        fids.append(frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method))
    inverse = 1.0 / np.asarray(sizes, np.float64)
    value, slope, fit_err = linear_fit_intercept(inverse, np.array(fids))
    spread = sampling_std(
        np.asarray(sizes), np.array(fids) - (value + slope * inverse), len(features)
    )
    return FdInfinity(
        value, float(np.hypot(fit_err, spread)), fit_err, spread, slope, tuple(sizes), tuple(fids)
    )
