"""Unit tests for DSE: orthonormal DCT matrices and the frequency-domain upsampler.

Every expectation is checked against scipy's orthonormal DCT, never against the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from ssg_eval.guidance.dse import dct_matrix, dse_upsample, interpolate_prior

MODES = ["bilinear", "bicubic", "area", "nearest"]
# (h', w') -> (H, W): VAR's 256 schedule transitions plus a non-square case.
SIZES = [
    ((1, 1), (2, 2)),
    ((3, 3), (4, 4)),
    ((10, 10), (13, 13)),
    ((13, 13), (16, 16)),
    ((2, 3), (5, 4)),
]


def _dct2(x: np.ndarray) -> np.ndarray:
    return scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")


def _maps(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 13, 16])
def test_dct_matrix_is_orthonormal_and_matches_scipy(n: int) -> None:
    d_nn = dct_matrix(n, torch.float64)
    np.testing.assert_allclose((d_nn @ d_nn.T).numpy(), np.eye(n), atol=1e-12)
    np.testing.assert_allclose(
        d_nn.numpy(), scipy.fft.dct(np.eye(n), axis=0, norm="ortho"), atol=1e-12
    )


def test_dct_matrix_returns_a_fresh_tensor() -> None:
    dct_matrix(4).zero_()
    assert dct_matrix(4).abs().sum() > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("coarse_block_scale", ["sqrt_area_ratio", "none"])
@pytest.mark.parametrize(("coarse", "fine"), SIZES)
def test_dse_keeps_coarse_block_and_interpolated_high_band(
    mode: str, coarse_block_scale: str, coarse: tuple[int, int], fine: tuple[int, int]
) -> None:
    prev_BVhw = _maps((2, 5, *coarse))
    prior_BVHW = dse_upsample(
        prev_BVhw, fine, interpolation=mode, coarse_block_scale=coarse_block_scale
    )
    assert prior_BVHW.shape == (2, 5, *fine) and prior_BVHW.dtype == torch.float64
    (h, w), (big_h, big_w) = coarse, fine
    alpha = math.sqrt(big_h * big_w / (h * w)) if coarse_block_scale == "sqrt_area_ratio" else 1.0
    spectrum = _dct2(prior_BVHW.numpy())
    np.testing.assert_allclose(spectrum[..., :h, :w], alpha * _dct2(prev_BVhw.numpy()), atol=1e-12)
    interp_spectrum = _dct2(interpolate_prior(prev_BVhw, fine, mode).numpy())
    band = np.ones(fine, dtype=bool)
    band[:h, :w] = False
    np.testing.assert_allclose(spectrum[..., band], interp_spectrum[..., band], atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("coarse", "fine"), SIZES)
def test_dse_preserves_constant_map(
    mode: str, coarse: tuple[int, int], fine: tuple[int, int]
) -> None:
    prev_BVhw = torch.full((1, 3, *coarse), -2.75, dtype=torch.float64)
    prior_BVHW = dse_upsample(prev_BVhw, fine, interpolation=mode)
    np.testing.assert_allclose(prior_BVHW.numpy(), -2.75, atol=1e-12)


def test_dse_unscaled_block_shrinks_the_mean_by_sqrt_area_ratio() -> None:
    prior_BVHW = dse_upsample(torch.ones(1, 1, 1, 1), (2, 2), coarse_block_scale="none")
    np.testing.assert_allclose(prior_BVHW.numpy(), 0.5, atol=1e-6)


def test_dse_same_size_is_identity() -> None:
    prev_BVhw = _maps((2, 3, 4, 4))
    np.testing.assert_allclose(
        dse_upsample(prev_BVhw, (4, 4)).numpy(), prev_BVhw.numpy(), atol=1e-12
    )


@pytest.mark.parametrize("mode", MODES)
def test_dse_batched_equals_per_channel_loop(mode: str) -> None:
    prev_BVhw = _maps((2, 6, 3, 3), seed=1).float()
    batched_BVHW = dse_upsample(prev_BVhw, (4, 4), interpolation=mode)
    for b in range(2):
        for v in range(6):
            single = dse_upsample(prev_BVhw[b : b + 1, v : v + 1], (4, 4), interpolation=mode)
            torch.testing.assert_close(batched_BVHW[b, v], single[0, 0], rtol=0, atol=1e-5)


def test_dse_memory_format_does_not_change_values() -> None:
    # SSG passes channels-last views of (B, l, V) logits; a plain contiguous input must agree.
    grid_BhwV = _maps((2, 10, 10, 7)).float()
    view_BVhw = grid_BhwV.permute(0, 3, 1, 2)
    torch.testing.assert_close(
        dse_upsample(view_BVhw, (13, 13)),
        dse_upsample(view_BVhw.contiguous(), (13, 13)),
        rtol=0,
        atol=1e-5,
    )


def test_dse_does_not_modify_input() -> None:
    prev_BVhw = _maps((1, 4, 3, 3))
    before = prev_BVhw.clone()
    dse_upsample(prev_BVhw, (4, 4))
    assert torch.equal(prev_BVhw, before)


def _cubic(x: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with torch's a = -0.75."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0


def _resample_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """(n_out, n_in) 1-D weights written out from each mode's definition (half-pixel centres)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * n_in / n_out - 0.5  # align_corners=False source coordinate
        if mode == "nearest":  # legacy nearest: floor(i * n_in / n_out)
            m[i, min(math.floor(i * n_in / n_out), n_in - 1)] = 1.0
        elif mode == "area":  # mean over the source cells the output cell overlaps
            lo, hi = math.floor(i * n_in / n_out), math.ceil((i + 1) * n_in / n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        elif mode == "bilinear":
            src = max(centre, 0.0)
            i0, lam = math.floor(src), src - math.floor(src)
            m[i, i0] += 1 - lam
            m[i, min(i0 + 1, n_in - 1)] += lam
        else:  # bicubic: four taps, indices clamped to the border
            i0, t = math.floor(centre), centre - math.floor(centre)
            for k in range(-1, 3):
                m[i, min(max(i0 + k, 0), n_in - 1)] += _cubic(k - t)
    return m


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("coarse", "fine"), [((3, 3), (5, 5)), ((2, 3), (5, 4)), ((1, 1), (2, 2))])
def test_interpolate_prior_matches_written_out_resampling(
    mode: str, coarse: tuple[int, int], fine: tuple[int, int]
) -> None:
    prev_BVhw = _maps((1, 2, *coarse))
    m_h, m_w = (_resample_matrix(n, big, mode) for n, big in zip(coarse, fine, strict=True))
    expected = np.einsum("ih,bvhw,jw->bvij", m_h, prev_BVhw.numpy(), m_w)
    got = interpolate_prior(prev_BVhw, fine, mode)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_bad_arguments_raise() -> None:
    prev_BVhw = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="interpolation"):
        dse_upsample(prev_BVhw, (5, 5), interpolation="lanczos")
    with pytest.raises(ValueError, match="coarse_block_scale"):
        dse_upsample(prev_BVhw, (5, 5), coarse_block_scale="half")
    with pytest.raises(ValueError, match="upsamples only"):
        dse_upsample(prev_BVhw, (3, 3))
    with pytest.raises(ValueError, match="n >= 1"):
        dct_matrix(0)
