"""Seed statistics: summaries, paired deltas against scipy and by hand, and the bootstrap switch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ssg_eval.analysis.seeds import bootstrap_metric, paired_delta, seed_summary


def test_seed_summary_mean_std_n():
    mean, std, n = seed_summary([3.1, 3.3, 3.2, 3.6])
    assert n == 4
    assert mean == pytest.approx(3.3)
    assert std == pytest.approx(np.std([3.1, 3.3, 3.2, 3.6], ddof=1))


@pytest.mark.parametrize(
    ("values", "expected_n", "std_is_nan"),
    [([2.5], 1, True), ([], 0, True), ([1.0, float("nan"), 3.0], 2, False)],
)
def test_seed_summary_small_and_missing(values, expected_n, std_is_nan):
    mean, std, n = seed_summary(values)
    assert n == expected_n
    assert math.isnan(std) == std_is_nan
    assert math.isnan(mean) == (expected_n == 0)


def test_paired_delta_matches_scipy_and_hand_computation():
    baseline = {0: 3.42, 1: 3.51, 2: 3.38, 3: 3.47, 4: 3.55}
    treated = {0: 3.30, 1: 3.41, 2: 3.31, 3: 3.29, 4: 3.45}
    out = paired_delta(baseline, treated)
    seeds = sorted(baseline)
    b = np.array([baseline[s] for s in seeds])
    t = np.array([treated[s] for s in seeds])
    reference = stats.ttest_rel(t, b)
    deltas = t - b
    sem = deltas.std(ddof=1) / math.sqrt(len(deltas))
    half = stats.t.ppf(0.975, df=len(deltas) - 1) * sem
    assert out["n"] == 5 and out["seeds"] == seeds
    assert out["deltas"] == pytest.approx(dict(zip(seeds, deltas, strict=True)))
    assert out["mean_delta"] == pytest.approx(deltas.mean())
    assert out["std"] == pytest.approx(deltas.std(ddof=1))
    assert out["sem"] == pytest.approx(sem)
    assert out["t_stat"] == pytest.approx(reference.statistic)
    assert out["p_value"] == pytest.approx(reference.pvalue)
    ci = reference.confidence_interval(confidence_level=0.95)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(
        (deltas.mean() - half, deltas.mean() + half)
    )
    assert out["within_noise"] is False and out["reason"] is None


def test_within_noise_when_deltas_straddle_zero():
    out = paired_delta({0: 3.0, 1: 3.2, 2: 3.1}, {0: 3.1, 1: 3.0, 2: 3.15})
    assert out["ci_low"] < 0 < out["ci_high"]
    assert out["within_noise"] is True


def test_fewer_than_two_paired_seeds():
    out = paired_delta({0: 3.4, 1: 3.5}, {1: 3.3, 2: 3.2})
    assert out["n"] == 1 and out["seeds"] == [1]
    assert out["mean_delta"] == pytest.approx(-0.2)
    assert out["within_noise"] is None and out["reason"] == "n<2"
    assert math.isnan(out["std"]) and math.isnan(out["p_value"]) and math.isnan(out["ci_low"])
    assert out["unpaired_seeds"] == [0, 2]
    empty = paired_delta({}, {0: 1.0})
    assert empty["n"] == 0 and math.isnan(empty["mean_delta"]) and empty["within_noise"] is None


@pytest.mark.parametrize(("shift", "within", "p_value"), [(-0.1, False, 0.0), (0.0, True, 1.0)])
def test_zero_spread_deltas(shift, within, p_value):
    baseline = {0: 3.0, 1: 3.5, 2: 4.0}
    out = paired_delta(baseline, {s: v + shift for s, v in baseline.items()})
    assert out["std"] == pytest.approx(0.0, abs=1e-12)
    assert out["within_noise"] is within
    assert out["p_value"] == p_value


def test_numpy_seed_keys_become_plain_ints_and_nan_is_unpaired():
    baseline = {np.int64(0): 3.0, np.int64(1): 3.1, np.int64(2): float("nan")}
    treated = {np.int64(0): 2.9, np.int64(1): 3.0, np.int64(2): 2.8}
    out = paired_delta(baseline, treated)
    assert out["seeds"] == [0, 1] and all(type(s) is int for s in out["seeds"])
    assert out["unpaired_seeds"] == [2]


def test_confidence_must_be_a_probability():
    with pytest.raises(ValueError, match="confidence"):
        paired_delta({0: 1.0}, {0: 1.0}, confidence=95)


def _mean_metric(features):
    return float(features.mean())


def test_bootstrap_is_reproducible_and_estimates_the_standard_error():
    features = np.random.default_rng(0).normal(size=(400, 1))
    first = bootstrap_metric(_mean_metric, features, seed=7, num_resamples=300)
    again = bootstrap_metric(_mean_metric, features, seed=7, num_resamples=300)
    other = bootstrap_metric(_mean_metric, features, seed=8, num_resamples=300)
    assert first == again and first != other
    mean, std = first
    assert mean == pytest.approx(features.mean(), abs=0.02)
    assert std == pytest.approx(features.std(ddof=1) / math.sqrt(len(features)), rel=0.2)


def test_bootstrap_is_off_by_default_and_rejects_one_resample():
    features = np.zeros((10, 2))
    assert bootstrap_metric(_mean_metric, features, seed=0) is None
    with pytest.raises(ValueError, match="num_resamples"):
        bootstrap_metric(_mean_metric, features, seed=0, num_resamples=1)


def test_bootstrap_resamples_arrays_together_within_strata():
    labels = np.repeat(np.arange(4), 5)
    features = np.arange(20, dtype=np.float64)[:, None]
    seen = []

    def metric(feats, labs):
        assert np.array_equal(labels[feats[:, 0].astype(int)], labs)  # rows stay aligned
        seen.append(np.bincount(labs, minlength=4))
        return float(feats.mean())

    bootstrap_metric(metric, [features, labels], seed=0, num_resamples=5, strata=labels)
    assert all(np.array_equal(counts, [5, 5, 5, 5]) for counts in seen)


def test_stratified_bootstrap_matches_numpy_replay_and_keeps_positions():
    labels = np.array([2, 0, 1, 2, 2, 0, 1, 1, 0, 2, 1, 0])
    features = np.random.default_rng(3).normal(size=(12, 3))
    seen = []

    def metric(feats):
        seen.append(feats)
        return float(feats[:6].sum() - feats[6:].sum())  # order-dependent on purpose

    got = bootstrap_metric(metric, features, seed=5, num_resamples=4, strata=labels)
    rng = np.random.default_rng(5)
    values = []
    for drawn in seen:
        idx = np.empty(12, dtype=int)
        for label in (0, 1, 2):  # sorted labels, each drawn within its own positions
            where = np.nonzero(labels == label)[0]
            idx[where] = where[rng.integers(0, len(where), size=len(where))]
        assert np.array_equal(drawn, features[idx])
        values.append(features[idx][:6].sum() - features[idx][6:].sum())
    assert got == pytest.approx((np.mean(values), np.std(values, ddof=1)))
