"""KID, density/coverage, FD∞ and the per-class table against independent references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from ssg_eval.config import METRIC_NAMES
from ssg_eval.metrics.density_coverage import density_coverage
from ssg_eval.metrics.fd_inf import fd_infinity, jackknife_std, linear_fit_intercept
from ssg_eval.metrics.feature_metrics import feature_metrics
from ssg_eval.metrics.kid import kid
from ssg_eval.metrics.per_class import (
    frechet_distance_lowrank,
    per_class_delta,
    per_class_summary,
    per_class_table,
)
from ssg_eval.metrics.precision_recall import precision_membership, precision_recall
from tests.conftest import compose_config

TF_KID = dict(  # torch-fidelity's own defaults for KID, written out
    kid_subsets=10, kid_subset_size=200, kid_kernel="poly", kid_kernel_poly_degree=3,
    kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False,
)  # fmt: skip


def relu_features(seed: int, num: int, dim: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(num, dim)) + shift, 0).astype(np.float32)


def scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The closed form with scipy's matrix square root (ADM's formula)."""
    diff = mu1 - mu2
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


# -- KID ------------------------------------------------------------------------------------------
def test_kid_equals_torch_fidelity_on_the_same_features():
    """Same subsets (RandomState(2020), generated first): float64 inputs agree to rounding;
    torch-fidelity's default float32 kernels agree to 1e-3 of the value (its float32 sums)."""
    fake, real = relu_features(0, 600, 64, 0.1), relu_features(1, 500, 64)
    mean, std = kid(fake, real, subsets=10, subset_size=200)
    ref64 = kid_features_to_metric(torch.from_numpy(fake).double(),
                                   torch.from_numpy(real).double(), **TF_KID)  # fmt: skip
    assert mean == pytest.approx(ref64["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(ref64["kernel_inception_distance_std"], rel=1e-9)
    ref32 = kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), **TF_KID)
    assert mean == pytest.approx(ref32["kernel_inception_distance_mean"], rel=1e-3)
    assert mean > 10 * std / np.sqrt(10)  # the shift is resolved: not a test on noise


def test_kid_of_identical_distributions_is_near_zero_and_subset_size_is_checked():
    feats = relu_features(2, 800, 64)
    mean, std = kid(feats[:400], feats[400:], subsets=20, subset_size=200)
    assert abs(mean) < 3 * std
    with pytest.raises(ValueError, match="subset size 500 exceeds"):
        kid(feats[:400], feats[400:], subset_size=500)


# -- density / coverage ---------------------------------------------------------------------------
def test_density_coverage_equal_prdc_without_duplicates():
    prdc = pytest.importorskip("prdc")
    real, fake = relu_features(3, 700, 32), relu_features(4, 500, 32, 0.2)
    expected = prdc.compute_prdc(real, fake, nearest_k=5)
    for dtype in ("float32", "float64"):
        density, coverage = density_coverage(real, fake, k=5, block_size=256, dtype=dtype)
        assert density == pytest.approx(expected["density"], abs=1e-12)
        assert coverage == pytest.approx(expected["coverage"], abs=1e-12)
    assert 0 < coverage < 1 and 0 < density < 1  # informative, not a trivial case


def test_the_prdc_defect_on_identical_duplicated_sets():
    """prdc compares `d < r` strictly: a real point with >= k copies has radius 0 and covers
    nothing, even its own copies, so identical sets score 0. A coinciding point counts here."""
    prdc = pytest.importorskip("prdc")
    same = np.ones((30, 8), dtype=np.float32)
    assert prdc.compute_prdc(same, same, nearest_k=5)["coverage"] == 0.0
    density, coverage = density_coverage(same, same, k=5)
    assert coverage == 1.0 and density == pytest.approx(30 / 5)  # every ball holds every point
    distinct = relu_features(5, 200, 16)  # real == fake without duplicates: both give 1 and 1
    assert density_coverage(distinct, distinct) == pytest.approx((1.0, 1.0))
    expected = prdc.compute_prdc(distinct, distinct, nearest_k=5)
    assert (expected["density"], expected["coverage"]) == pytest.approx((1.0, 1.0))


# -- FD∞ -------------------------------------------------------------------------------------------
def test_fd_inf_recovers_the_closed_form_of_two_gaussians():
    """Samples of N(m1, S1) against the exact (m2, S2): the intercept lands within 3 stated
    errors of the closed form and closer to it than the plain FID of all samples (1/N bias)."""
    rng = np.random.default_rng(1)
    dim = 64
    a, b = rng.normal(size=(2, dim, dim)) / np.sqrt(dim)
    s1, s2 = a @ a.T + 0.1 * np.eye(dim), b @ b.T + 0.1 * np.eye(dim)
    m1, m2 = rng.normal(size=dim) * 0.02, np.zeros(dim)
    truth = scipy_frechet(m1, s1, m2, s2)
    samples = rng.multivariate_normal(m1, s1, size=1500)
    fit = fd_infinity(samples, m2, s2, min_size=300, seed=0, method="sqrtm")
    assert abs(fit.value - truth) <= 3 * fit.stderr
    assert abs(fit.fids[-1] - truth) > 1.5 * abs(fit.value - truth)  # the bias FD∞ removes
    assert fit.fids[-1] - truth > fit.stderr  # ... is larger than the stated error
    assert fit.sizes[0] == 300 and fit.sizes[-1] == 1500 and len(fit.sizes) == 15
    assert fit.sampling_std > 0 and fit.stderr == pytest.approx(
        np.hypot(fit.fit_stderr, fit.sampling_std)
    )


def test_jackknife_std_equals_the_formula_written_out():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 6)) + 0.5
    values = []
    for g in range(10):
        keep = x[np.arange(200) % 10 != g]
        values.append(
            scipy_frechet(keep.mean(0), np.cov(keep, rowvar=False), np.zeros(6), np.eye(6))
        )
    expected = np.sqrt(9 / 10 * np.sum((np.array(values) - np.mean(values)) ** 2))
    assert jackknife_std(x, np.zeros(6), np.eye(6), method="sqrtm") == pytest.approx(
        expected, rel=1e-6
    )


def test_linear_fit_matches_the_textbook_formula():
    x = np.array([1.0, 2.0, 4.0, 5.0])
    y = np.array([2.1, 3.9, 8.2, 9.8])
    a, b, se = linear_fit_intercept(x, y)
    slope = np.cov(x, y, bias=True)[0, 1] / np.var(x)
    resid = y - (y.mean() - slope * x.mean()) - slope * x
    se_ref = np.sqrt(resid @ resid / 2 * (1 / 4 + x.mean() ** 2 / np.sum((x - x.mean()) ** 2)))
    assert (a, b, se) == pytest.approx((y.mean() - slope * x.mean(), slope, se_ref))


# -- per class ------------------------------------------------------------------------------------
def test_lowrank_frechet_equals_scipy_sqrtm_on_few_rows():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 40)), rng.normal(size=(9, 40)) + 0.3
    expected = scipy_frechet(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance_lowrank(x, y) == pytest.approx(expected, rel=1e-6)


def test_per_class_precision_adds_up_to_adm_precision():
    real, fake = relu_features(6, 300, 32), relu_features(7, 400, 32, 0.3)
    labels = np.arange(400) % 7
    member = precision_membership(real, fake, k=3, block_size=128)
    precision, _ = precision_recall(real, fake, k=3, block_size=128)
    table = per_class_table(labels, member)
    assert (table["n"] * table["precision"]).sum() / 400 == pytest.approx(precision, abs=1e-12)
    assert table["fid"].isna().all()  # no reference labels: no intra-class FID


def test_per_class_fid_uses_the_matching_reference_class():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 16)) * 3
    ref_labels, labels = np.arange(60) % 3, np.arange(90) % 3
    real = centres[ref_labels] + rng.normal(size=(60, 16))
    fake = centres[labels] + rng.normal(size=(90, 16))
    fake[labels == 2] += 2.0  # class 2 is off
    table = per_class_table(labels, np.ones(90, bool), fake, real, ref_labels)
    for cls in range(3):
        x, y = fake[labels == cls], real[ref_labels == cls]
        expected = scipy_frechet(
            x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
        )
        assert table.loc[cls, "fid"] == pytest.approx(expected, rel=1e-6)
    summary = per_class_summary(table)
    assert summary["worst_fid"][0][0] == 2 and summary["fid_available"]


def test_per_class_delta_flags_classes_against_the_mean():
    base = pd.DataFrame({"class": [0, 1, 2], "n": 5, "precision": [0.5, 0.6, 0.7],
                         "fid": [10.0, 12.0, 9.0], "n_ref": 5})  # fmt: skip
    treated = base.assign(fid=[8.0, 11.0, 9.5], precision=[0.6, 0.7, 0.6])
    delta = per_class_delta(base, treated)
    assert delta["delta_fid"].tolist() == pytest.approx([-2.0, -1.0, 0.5])
    assert delta["fid_against_mean"].tolist() == [False, False, True]
    assert delta["precision_against_mean"].tolist() == [False, False, True]


def test_feature_metrics_names_and_values():
    assert set(METRIC_NAMES) >= {"kid", "density", "coverage", "fd_inf", "per_class", "fid"}
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="fdi"):
        compose_config(["metrics.metrics=[fid,fdi]"])  # a typo fails at composition
    real, fake = relu_features(8, 300, 32), relu_features(9, 200, 32, 0.2)

    class Reference:
        mu, sigma = None, None

    values, table = feature_metrics(
        ["kid", "density", "coverage", "fd_inf", "per_class"], {"pool": fake},
        np.arange(200) % 4, Reference, {"pool": real}, pr_block_size=128,
    )  # fmt: skip
    assert values["kid"] == pytest.approx(kid(fake, real, subset_size=200)[0])
    assert (values["density"], values["coverage"]) == pytest.approx(density_coverage(real, fake))
    assert values["kid_subset_size"] == 200 and np.isfinite(values["fd_inf"])
    assert values["per_class"]["classes"] == 4 and len(table) == 4
