"""Fréchet distance: eigh vs scipy sqrtm (ADM's formula), closed forms, torch-fidelity, stats."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from torch_fidelity.metric_fid import fid_statistics_to_metric

from ssg_eval.metrics.frechet import frechet_distance, frechet_distance_features
from ssg_eval.metrics.stats import feature_statistics


def adm_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """ADM evaluator.py FIDStatistics.frechet_distance, transcribed (no `disp` on SciPy >= 1.16)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def gaussian_stats(seed: int, num: int, dim: int, shift: float = 0.0):
    """Statistics of ReLU-like correlated features (non-negative, like Inception pool3)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    feats = np.maximum(rng.normal(size=(num, dim)) @ mix + 0.5 + shift, 0).astype(np.float32)
    return feature_statistics(feats)


@pytest.mark.parametrize(("num", "dim"), [(600, 64), (300, 256), (40, 128)])  # last: rank-deficient
def test_eigh_matches_scipy_sqrtm(num, dim):
    mu1, sigma1 = gaussian_stats(0, num, dim)
    mu2, sigma2 = gaussian_stats(1, num, dim, shift=0.2)
    reference = adm_frechet(mu1, sigma1, mu2, sigma2)
    eigh = frechet_distance(mu1, sigma1, mu2, sigma2, method="eigh")
    sqrtm = frechet_distance(mu1, sigma1, mu2, sigma2, method="sqrtm")
    assert sqrtm == pytest.approx(reference, rel=1e-12)
    assert abs(eigh - reference) <= 1e-6 * abs(reference)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_identical_gaussians_give_zero(method):
    mu, sigma = gaussian_stats(2, 500, 64)
    assert abs(frechet_distance(mu, sigma, mu, sigma, method=method)) <= 1e-9 * np.trace(sigma)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_unit_covariances_give_squared_mean_distance(method):
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=32), rng.normal(size=32)
    eye = np.eye(32)
    expected = float(np.sum((m1 - m2) ** 2))
    assert frechet_distance(m1, eye, m2, eye, method=method) == pytest.approx(expected, rel=1e-12)


def test_matches_torch_fidelity_eigvals_formula():
    mu1, sigma1 = gaussian_stats(4, 500, 96)
    mu2, sigma2 = gaussian_stats(5, 500, 96, shift=0.1)
    theirs = fid_statistics_to_metric(
        {"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False
    )["frechet_inception_distance"]
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(theirs, rel=1e-8)


def test_sqrtm_raises_like_adm_on_large_imaginary_part():
    sigma1, sigma2 = np.diag([1.0, -1.0]), np.eye(2)  # product has a negative eigenvalue
    with pytest.raises(ValueError, match="Imaginary component"):
        frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, method="sqrtm")


def test_symmetric_in_its_arguments():
    mu1, sigma1 = gaussian_stats(6, 400, 48)
    mu2, sigma2 = gaussian_stats(7, 400, 48, shift=0.3)
    a = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(a, rel=1e-10)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "differ in shape"),
        ((np.zeros(3), np.eye(3), np.full(3, np.nan), np.eye(3)), "mu2 contains non-finite"),
        ((np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), "covariances must be"),
    ],
)
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_unknown_method_names_the_config_key():
    with pytest.raises(ValueError, match="metrics.fid_method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")


def test_feature_statistics_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(8)
    feats = (rng.normal(size=(9000, 40)) * 3 + 1).astype(np.float32)  # > one 8192-row block
    mu, sigma = feature_statistics(feats)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, np.mean(feats.astype(np.float64), axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-10, atol=1e-12)


def test_feature_statistics_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))


@pytest.mark.parametrize(("num", "dim"), [(30, 128), (129, 128), (400, 64)])
def test_feature_path_matches_adm_formula(num, dim):
    """Low-rank n x n path (n <= D) and the plain path (n > D) against scipy sqrtm on stats."""
    rng = np.random.default_rng(num)
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    feats = np.maximum(rng.normal(size=(num, dim)) @ mix + 0.5, 0).astype(np.float32)
    mu1, sigma1 = feature_statistics(feats)
    mu2, sigma2 = gaussian_stats(9, 500, dim, shift=0.2)
    reference = adm_frechet(mu1, sigma1, mu2, sigma2)
    got = frechet_distance_features(feats, mu2, sigma2, method="eigh")
    assert abs(got - reference) <= 1e-6 * abs(reference)
    assert frechet_distance_features(feats, mu2, sigma2, method="sqrtm") == pytest.approx(
        reference, rel=1e-12
    )


def test_eigh_falls_back_when_reference_covariance_is_singular():
    """Σ₂ of rank < D (fewer samples than dims) has no Cholesky factor: the √Σ₁ path is used."""
    from ssg_eval.metrics.frechet import trace_sqrt_product_eigh, trace_sqrt_product_sqrtm

    rng = np.random.default_rng(3)
    sigma1 = np.cov(rng.standard_normal((200, 32)), rowvar=False)
    sigma2 = np.cov(rng.standard_normal((10, 32)), rowvar=False)  # rank 9
    assert np.linalg.matrix_rank(sigma2) < 32
    ours = trace_sqrt_product_eigh(sigma1, sigma2)
    reference = trace_sqrt_product_sqrtm(sigma1, sigma2)
    assert abs(ours - reference) <= 1e-6 * abs(reference)


def test_low_rank_path_is_exact_for_few_samples():
    """n << D: tr sqrt(S1 S2) = nuclear norm of A1 A2^T (S = A^T A); D x D routes add noise."""
    rng = np.random.default_rng(10)
    a = np.abs(rng.normal(size=(10, 512))).astype(np.float32)
    b = np.abs(rng.normal(size=(12, 512)) + 0.1).astype(np.float32)
    mu1, sigma1 = feature_statistics(a)
    mu2, sigma2 = feature_statistics(b)
    factor1 = (a - a.astype(np.float64).mean(0)) / np.sqrt(9)
    factor2 = (b - b.astype(np.float64).mean(0)) / np.sqrt(11)
    nuclear = np.linalg.svd(factor1 @ factor2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    exact = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * nuclear
    assert frechet_distance_features(a, mu2, sigma2) == pytest.approx(exact, rel=1e-9)
