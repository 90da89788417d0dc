"""Paired bootstrap statistics against a plain numpy/scipy replay and their key property."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from ssg_eval.analysis.paired import minimum_detectable_delta, paired_bootstrap, project_mde
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.metrics.resampled import fid_stat, inception_score_stat, manifold_stats


def numpy_fid(x: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    """FID written out: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    mu = x.mean(0)
    sigma = np.cov(x, rowvar=False)
    covmean = linalg.sqrtm(sigma @ sigma_ref).real
    return float(((mu - mu_ref) ** 2).sum() + np.trace(sigma + sigma_ref - 2 * covmean))


def make_runs(n: int, dim: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    cand = base + 0.3 + noise * rng.normal(size=(n, dim))  # same samples, shifted: correlated
    ref = rng.normal(size=(200, dim))
    return base, cand, ref.mean(0), np.cov(ref, rowvar=False)


def test_paired_fid_bootstrap_matches_numpy_replay():
    n, resamples, seed = 30, 40, 7
    base, cand, mu_ref, sigma_ref = make_runs(n, 5, noise=0.2)
    got = paired_bootstrap(
        fid_stat(base, mu_ref, sigma_ref), fid_stat(cand, mu_ref, sigma_ref), n,
        num_resamples=resamples, seed=seed, confidence=0.9,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    paired, unpaired = [], []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        idx2 = rng.integers(0, n, size=n)
        b = numpy_fid(base[idx], mu_ref, sigma_ref)
        paired.append(numpy_fid(cand[idx], mu_ref, sigma_ref) - b)
        unpaired.append(numpy_fid(cand[idx2], mu_ref, sigma_ref) - b)
    full = numpy_fid(cand, mu_ref, sigma_ref) - numpy_fid(base, mu_ref, sigma_ref)
    assert got["delta"] == pytest.approx(full, rel=1e-6)
    assert got["ci_low"] == pytest.approx(np.percentile(paired, 5), rel=1e-6)
    assert got["ci_high"] == pytest.approx(np.percentile(paired, 95), rel=1e-6)
    assert got["se"] == pytest.approx(np.std(paired, ddof=1), rel=1e-6)
    assert got["unpaired_ci_low"] == pytest.approx(np.percentile(unpaired, 5), rel=1e-6)
    assert got["unpaired_se"] == pytest.approx(np.std(unpaired, ddof=1), rel=1e-6)
    assert got["mde"] == pytest.approx((1.6448536 + 0.8416212) * np.std(paired, ddof=1), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_ci_is_narrower_than_unpaired_on_correlated_runs(seed):
    n = 60
    base, cand, mu_ref, sigma_ref = make_runs(n, 4, noise=0.05, seed=seed)
    out = paired_bootstrap(
        fid_stat(base, mu_ref, sigma_ref), fid_stat(cand, mu_ref, sigma_ref), n,
        num_resamples=60, seed=seed,
    )  # fmt: skip
    assert out["ci_high"] - out["ci_low"] < out["unpaired_ci_high"] - out["unpaired_ci_low"]
    assert out["se"] < out["unpaired_se"]
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 6)) * 2
    logits_c = logits + 0.05 * rng.normal(size=(n, 6))
    out = paired_bootstrap(
        inception_score_stat(logits, 1000), inception_score_stat(logits_c, 1000), n,
        num_resamples=60, seed=seed,
    )  # fmt: skip
    assert out["se"] < out["unpaired_se"]


def test_stratified_draws_keep_class_balance():
    labels = np.arange(40) % 4
    seen = []

    def stat(idx):
        seen.append(np.bincount(labels[idx], minlength=4))
        return 0.0

    paired_bootstrap(stat, stat, 40, num_resamples=5, seed=0, strata=labels)
    assert all((counts == 10).all() for counts in seen)


def _stratified_draw(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """The draw convention written out: per class in sorted order, its positions get rows of it."""
    idx = np.empty(len(labels), dtype=int)
    for label in sorted(set(labels.tolist())):
        where = np.nonzero(labels == label)[0]
        idx[where] = where[rng.integers(0, len(where), size=len(where))]
    return idx


def test_stratified_paired_is_bootstrap_matches_numpy_replay():
    n, split, resamples, seed = 60, 20, 30, 4
    labels = np.arange(n) % 5
    rng = np.random.default_rng(9)
    base = rng.normal(size=(n, 7)) * 2
    base[np.arange(n), labels] += 3
    cand = base + 0.2 * rng.normal(size=(n, 7))
    got = paired_bootstrap(
        inception_score_stat(base, split), inception_score_stat(cand, split), n,
        num_resamples=resamples, seed=seed, strata=labels,
    )  # fmt: skip

    def numpy_is(logits):
        parts = []
        for start in range(0, len(logits), split):
            p = np.exp(logits[start : start + split])
            p /= p.sum(1, keepdims=True)
            parts.append(np.exp((p * np.log(p / p.mean(0))).sum(1).mean()))
        return np.mean(parts)

    rng = np.random.default_rng(seed)
    paired, unpaired = [], []
    for _ in range(resamples):
        idx, idx2 = _stratified_draw(rng, labels), _stratified_draw(rng, labels)
        assert np.array_equal(labels[idx], labels)  # every position keeps its class
        b = numpy_is(base[idx])
        paired.append(numpy_is(cand[idx]) - b)
        unpaired.append(numpy_is(cand[idx2]) - b)
    assert got["ci_low"] == pytest.approx(np.percentile(paired, 2.5), rel=1e-4)
    assert got["ci_high"] == pytest.approx(np.percentile(paired, 97.5), rel=1e-4)
    assert got["se"] == pytest.approx(np.std(paired, ddof=1), rel=1e-4)
    assert got["unpaired_ci_low"] == pytest.approx(np.percentile(unpaired, 2.5), rel=1e-4)
    assert got["unpaired_se"] == pytest.approx(np.std(unpaired, ddof=1), rel=1e-4)


def test_manifold_stats_match_precision_recall_and_frozen_radii_replay():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(25, 6))
    fake = rng.normal(size=(30, 6)) * 1.3 + 0.4
    precision, recall = manifold_stats(real, fake, k=3, block_size=7)
    full = np.arange(len(fake))
    p_ref, r_ref = precision_recall(real, fake, k=3, distance_dtype="float32")
    assert precision(full) == pytest.approx(p_ref)
    assert recall(full) == pytest.approx(r_ref)
    assert 0 < p_ref < 1 and 0 < r_ref < 1
    # a resample with repeats: radii frozen on the full sets, written out with numpy
    d_rr = ((real[:, None] - real[None]) ** 2).sum(-1)
    d_ff = ((fake[:, None] - fake[None]) ** 2).sum(-1)
    d_rf = ((real[:, None] - fake[None]) ** 2).sum(-1)
    r_real, r_fake = np.sort(d_rr, 1)[:, 3], np.sort(d_ff, 1)[:, 3]
    idx = rng.integers(0, len(fake), size=len(fake))
    want_p = np.mean([(d_rf[:, i] <= r_real).any() for i in idx])
    want_r = np.mean([(d_rf[j, idx] <= r_fake[idx]).any() for j in range(len(real))])
    assert precision(idx) == pytest.approx(want_p)
    assert recall(idx) == pytest.approx(want_r)


def test_mde_closed_form_and_projection():
    assert minimum_detectable_delta(1.0) == pytest.approx(1.959964 + 0.841621, rel=1e-6)
    assert project_mde(0.4, 5000, 20000) == pytest.approx(0.2)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_resamples"):
        paired_bootstrap(len, len, 3, num_resamples=1, seed=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(len, len, 3, num_resamples=5, seed=0, confidence=1.5)


def test_fid_stat_large_n_path_matches_numpy():
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(40, 6)) + 0.2  # N > D: the torch covariance path
    ref = rng.normal(size=(100, 6))
    mu_ref, sigma_ref = ref.mean(0), np.cov(ref, rowvar=False)
    idx = rng.integers(0, 40, size=40)
    assert fid_stat(pool, mu_ref, sigma_ref)(idx) == pytest.approx(
        numpy_fid(pool[idx], mu_ref, sigma_ref), rel=1e-8
    )


def test_fid_stat_low_rank_path_matches_numpy_with_repeated_rows():
    rng = np.random.default_rng(6)
    pool = rng.normal(size=(12, 30)) + 0.1  # N <= D: the Gram-matrix path
    ref = rng.normal(size=(80, 30))
    mu_ref, sigma_ref = ref.mean(0), np.cov(ref, rowvar=False)
    idx = rng.integers(0, 12, size=12)
    assert fid_stat(pool, mu_ref, sigma_ref)(idx) == pytest.approx(
        numpy_fid(pool[idx], mu_ref, sigma_ref), rel=1e-7
    )
