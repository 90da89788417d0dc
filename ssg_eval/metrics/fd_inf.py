"""FD∞ (Chong & Forsyth 2020): FID at several sample counts, fitted linearly in 1/N, read at 0.

FID's bias is close to linear in 1/N, so the intercept of a least-squares line through
(1/N_i, FID_i) estimates the FID of infinitely many samples; pure arithmetic, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssg_eval.metrics.frechet import frechet_distance, frechet_distance_features

FD_INF_POINTS = 15  # Chong & Forsyth's default number of subset sizes
FD_INF_MIN_SIZE = 5000  # their smallest subset (clipped to N // 2 for smaller runs)
FD_INF_SEED = 0
FD_INF_JACKKNIFE_BLOCKS = 10


@dataclass(frozen=True)
class FdInfinity:
    """The extrapolation and what it rests on.

    Attributes:
        value: intercept of FID = value + slope / N.
        stderr: the stated error, √(fit_stderr² + sampling_std²).
        fit_stderr: ordinary-least-squares standard error of the intercept.
        sampling_std: delete-a-block jackknife std of the FID of the whole N-sample set (every
            subset is drawn from it, so the fit cannot see this part).
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


def jackknife_std(
    features: np.ndarray,
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    blocks: int = FD_INF_JACKKNIFE_BLOCKS,
    method: str = "eigh",
) -> float:
    """Delete-a-block jackknife std of the FID of all N samples.

    Rows are split into `blocks` interleaved groups. With many rows each group's sum and
    cross-product are accumulated once (float64), so every leave-one-group-out mean and
    covariance is a subtraction and only the `blocks` Fréchet distances remain; with few rows
    (N <= 2D) each left-out set goes through `frechet_distance_features`' low-rank path.
    """
    x = np.asarray(features)
    num, dim = x.shape
    group = np.arange(num) % blocks
    if num <= 2 * dim:  # few rows: each left-out set through the exact low-rank path
        values = [
            frechet_distance_features(x[group != g], mu_ref, sigma_ref, method=method)
            for g in range(blocks)
        ]
        return _jackknife(np.asarray(values))
    sums, products = np.zeros((blocks, dim)), np.zeros((blocks, dim, dim))
    for start in range(0, num, 8192):
        rows = x[start : start + 8192].astype(np.float64)
        for g in range(blocks):
            part = rows[group[start : start + 8192] == g]
            sums[g] += part.sum(0)
            products[g] += part.T @ part
    counts = np.bincount(group, minlength=blocks)
    values = []
    for g in range(blocks):
        n = num - counts[g]
        mu = (sums.sum(0) - sums[g]) / n
        sigma = (products.sum(0) - products[g] - n * np.outer(mu, mu)) / (n - 1)
        values.append(frechet_distance(mu, sigma, mu_ref, sigma_ref, method=method))
    return _jackknife(np.asarray(values))


def _jackknife(values: np.ndarray) -> float:
    """√((K − 1)/K · Σ(θ_k − θ̄)²) of K leave-one-block-out estimates."""
    return float(np.sqrt((len(values) - 1) / len(values) * np.sum((values - values.mean()) ** 2)))


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
    jackknife std of the whole set's FID (`jackknife_std`); it does not cover a departure of the
    bias from the 1/N model (on synthetic Gaussians the errors in units of it spread with
    std ≈ 1.2, docs/METRICS.md).

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
        fids.append(frechet_distance_features(features[rows], mu_ref, sigma_ref, method=method))
    inverse = 1.0 / np.asarray(sizes, np.float64)
    value, slope, fit_err = linear_fit_intercept(inverse, np.array(fids))
    spread = jackknife_std(features, mu_ref, sigma_ref, method=method)
    return FdInfinity(
        value, float(np.hypot(fit_err, spread)), fit_err, spread, slope, tuple(sizes), tuple(fids)
    )
