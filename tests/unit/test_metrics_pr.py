"""Precision/recall: ADM's ManifoldEstimator (fp16 semantics), closed cases, torch-fidelity."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import prc_features_to_metric

from ssg_eval.metrics.precision_recall import precision_recall


def adm_distances(u: np.ndarray, v: np.ndarray, fp16: bool) -> np.ndarray:
    """ADM DistanceBlock.pairwise_distances transcribed: fp16 graph, fp32 block fallback."""
    if fp16:
        with np.errstate(over="ignore", invalid="ignore"):
            u16, v16 = u.astype(np.float16), v.astype(np.float16)
            # tf.square in fp16, reduce_sum accumulating in fp32, result fp16
            norm_u = np.square(u16).astype(np.float32).sum(1).astype(np.float16)
            norm_v = np.square(v16).astype(np.float32).sum(1).astype(np.float16)
            prod = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
            dist = np.maximum(norm_u[:, None] - 2 * prod + norm_v[None, :], np.float16(0))
        if np.isfinite(dist).all():
            return dist.astype(np.float32)
    norm_u, norm_v = np.square(u).sum(1), np.square(v).sum(1)
    return np.maximum(norm_u[:, None] - 2 * (u @ v.T) + norm_v[None, :], np.float32(0))


def adm_precision_recall(ref, sample, k=3, block=10000, fp16=True):
    """ADM ManifoldEstimator.manifold_radii + evaluate_pr (compute_prec_recall(ref, sample))."""
    ref, sample = ref.astype(np.float32), sample.astype(np.float32)

    def radii(feats):
        out = np.zeros(len(feats), dtype=np.float32)
        for b1 in range(0, len(feats), block):
            row = np.concatenate(
                [adm_distances(feats[b1 : b1 + block], feats[b2 : b2 + block], fp16)
                 for b2 in range(0, len(feats), block)], axis=1,
            )  # fmt: skip
            out[b1 : b1 + block] = np.partition(row, list(range(k + 1)), axis=1)[:, k]
        return out

    r_ref, r_sample = radii(ref), radii(sample)
    ref_in = np.zeros(len(ref), dtype=bool)
    sample_in = np.zeros(len(sample), dtype=bool)
    for b1 in range(0, len(ref), block):
        for b2 in range(0, len(sample), block):
            dist = adm_distances(ref[b1 : b1 + block], sample[b2 : b2 + block], fp16)
            ref_in[b1 : b1 + block] |= (dist <= r_sample[None, b2 : b2 + block]).any(1)
            sample_in[b2 : b2 + block] |= (dist <= r_ref[b1 : b1 + block, None]).any(0)
    return float(np.mean(sample_in.astype(np.float64))), float(np.mean(ref_in.astype(np.float64)))


def relu_features(seed: int, num: int, dim: int, scale: float = 2.0) -> np.ndarray:
    return (np.abs(np.random.default_rng(seed).normal(size=(num, dim))) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def tie_features():
    """A set where fp16 distances change the result (near-ties with the radii)."""
    return relu_features(0, 200, 256), relu_features(100, 200, 256)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("block", [10000, 64, 199])  # 199: a one-row last block
def test_identical_to_adm_transcription(tie_features, dtype, block):
    real, fake = tie_features
    ours = precision_recall(real, fake, k=3, block_size=block, distance_dtype=dtype)
    assert ours == adm_precision_recall(real, fake, k=3, block=block, fp16=dtype == "float16")


@pytest.mark.parametrize("seed", [5, 9, 11])
def test_identical_to_adm_transcription_random_shapes(seed):
    rng = np.random.default_rng(seed)
    dim, n_real, n_fake = (
        int(rng.integers(lo, hi)) for lo, hi in ((16, 300), (20, 300), (20, 400))
    )
    block = int(rng.integers(8, 150))
    real = relu_features(seed, n_real, dim)
    fake = relu_features(seed + 50, n_fake, dim, scale=float(rng.uniform(1.5, 2.5)))
    for dtype in ("float16", "float32"):
        ours = precision_recall(real, fake, block_size=block, distance_dtype=dtype)
        assert ours == adm_precision_recall(real, fake, block=block, fp16=dtype == "float16")


def test_float16_and_float32_modes_differ(tie_features):
    real, fake = tie_features
    p16, r16 = precision_recall(real, fake, distance_dtype="float16")
    p32, r32 = precision_recall(real, fake, distance_dtype="float32")
    assert (p16, r16) != (p32, r32)
    assert p16 >= p32 and r16 >= r32  # fp16 ties count as inside (d <= r), as in ADM


def test_float32_fallback_blocks_match_adm(caplog):
    """Rows with huge norms overflow fp16; only their blocks are recomputed in float32."""
    real, fake = relu_features(1, 120, 64), relu_features(2, 150, 64)
    real[:40] *= 40.0  # norms > 65504: the first real block (40 rows) falls back to float32
    fake[100:] *= 40.0
    for block in (40, 50):
        with caplog.at_level(logging.DEBUG, logger="ssg_eval.metrics.precision_recall"):
            ours = precision_recall(real, fake, block_size=block, distance_dtype="float16")
        assert "recomputing in float32" in caplog.text
        assert ours == adm_precision_recall(real, fake, block=block, fp16=True)


def test_identical_sets_give_one():
    feats = relu_features(3, 100, 32)
    assert precision_recall(feats, feats.copy()) == (1.0, 1.0)


def test_tight_cluster_in_wide_spread_has_high_precision_low_recall():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(400, 16)).astype(np.float32) * 3
    fake = rng.normal(size=(400, 16)).astype(np.float32) * 0.3
    precision, recall = precision_recall(real, fake, distance_dtype="float32")
    assert precision > 0.9 and recall < 0.2


@pytest.mark.parametrize("block", [10000, 37])
def test_matches_torch_fidelity_in_float32(tie_features, block):
    real, fake = tie_features
    ours = precision_recall(real, fake, block_size=block, distance_dtype="float32")
    theirs = prc_features_to_metric(  # torch-fidelity: generated first, real second
        torch.from_numpy(fake), torch.from_numpy(real),
        prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=True, verbose=False,
    )  # fmt: skip
    # theirs are float32 .item() values of the same fractions; cdist vs squared: same order
    assert ours[0] == pytest.approx(theirs["precision"], abs=1e-6)
    assert ours[1] == pytest.approx(theirs["recall"], abs=1e-6)


def test_argument_order_is_real_then_fake():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 8)).astype(np.float32) * 3
    fake = rng.normal(size=(300, 8)).astype(np.float32) * 0.3
    p, r = precision_recall(real, fake)
    assert precision_recall(fake, real) == (r, p)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distance_dtype": "bfloat16"}, "metrics.pr_distance_dtype"),
        ({"k": 10}, "N >= k\\+1"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    feats = relu_features(6, 8, 4)
    with pytest.raises(ValueError, match=match):
        precision_recall(feats, feats, **kwargs)


def test_bad_features_raise():
    a = relu_features(7, 10, 4)
    with pytest.raises(ValueError, match="widths differ"):
        precision_recall(a, relu_features(8, 10, 5))
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="fake_features contain non-finite"):
        precision_recall(a, bad)
