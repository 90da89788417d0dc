"""compute_metrics: ADM's stored-statistics rule, the metric subset, keys; no Inception needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssg_eval.errors import ConfigError
from ssg_eval.metrics.compute import compute_metrics
from ssg_eval.metrics.frechet import frechet_distance
from ssg_eval.metrics.keys import FID, IS, IS_STD, PRECISION, RECALL, SFID
from ssg_eval.metrics.reference import ReferenceBatch
from ssg_eval.metrics.stats import feature_statistics

SETTINGS = dict(split_size=10, k=3, block_size=16, distance_dtype="float16", fid_method="eigh")


def fake_features(seed: int, num: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "pool": np.abs(rng.normal(size=(num, 48))).astype(np.float32),
        "spatial": np.abs(rng.normal(size=(num, 40))).astype(np.float32),
        "logits": rng.normal(size=(num, 12)).astype(np.float32),
    }


def batch(stats: dict | None = None) -> ReferenceBatch:
    return ReferenceBatch(Path("ref.npz"), "ref.npz", "0" * 64, 60, (8, 8, 3), **(stats or {}))


@pytest.fixture(scope="module")
def feats():
    return fake_features(0, 30), fake_features(1, 60)


def test_all_keys_and_types(feats):
    sample, ref = feats
    values = compute_metrics(sample, batch(), ref, metrics=[FID, SFID, IS, PRECISION, RECALL],
                             **SETTINGS)  # fmt: skip
    assert set(values) == {FID, SFID, IS, IS_STD, PRECISION, RECALL}
    assert all(isinstance(v, float) for v in values.values())


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_stored_reference_stats_equal_feature_stats(feats, method):
    sample, ref = feats
    mu, sigma = feature_statistics(ref["pool"])
    mu_s, sigma_s = feature_statistics(ref["spatial"])
    stored = batch({"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s})
    settings = {**SETTINGS, "fid_method": method}
    a = compute_metrics(sample, stored, ref, metrics=[FID, SFID], **settings)
    b = compute_metrics(sample, batch(), ref, metrics=[FID, SFID], **settings)
    mu1, sigma1 = feature_statistics(sample["pool"])
    expected = frechet_distance(mu1, sigma1, mu, sigma, method="sqrtm")
    for values in (a, b):
        assert values[FID] == pytest.approx(expected, rel=1e-6)
    assert a[SFID] == pytest.approx(b[SFID], rel=1e-6)


def test_stored_stats_win_over_features(feats):
    """ADM's rule: with `mu` stored, the reference features do not enter FID at all."""
    sample, ref = feats
    mu, sigma = feature_statistics(ref["pool"] + 1.0)
    mu_s, sigma_s = feature_statistics(ref["spatial"])
    stored = batch({"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s})
    shifted = compute_metrics(sample, stored, ref, metrics=[FID], **SETTINGS)[FID]
    plain = compute_metrics(sample, batch(), ref, metrics=[FID], **SETTINGS)[FID]
    assert shifted > plain + 10


def test_sample_stats_follow_the_same_rule(feats):
    sample, ref = feats
    mu, sigma = feature_statistics(ref["pool"])
    own = {"mu": mu, "sigma": sigma, "mu_s": None, "sigma_s": None}
    values = compute_metrics(sample, batch(), ref, metrics=[FID], sample_stats=own, **SETTINGS)
    assert abs(values[FID]) < 1e-6


def test_subset_and_unknown_names(feats):
    sample, ref = feats
    assert set(compute_metrics(sample, batch(), ref, metrics=[RECALL], **SETTINGS)) == {RECALL}
    with pytest.raises(ConfigError, match="metrics.metrics"):
        compute_metrics(sample, batch(), ref, metrics=["kid"], **SETTINGS)
