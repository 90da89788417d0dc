"""Discrete Spatial Enhancement (DSE): the frequency-domain upsampler that builds SSG's prior.

This module owns pure tensor functions (orthonormal DCT matrices, DSE, plain interpolation); it
must not hold state, draw random numbers or modify its inputs (docs/METHOD.md, DSE).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")
COARSE_BLOCK_SCALES = ("sqrt_area_ratio", "none")


@functools.lru_cache(maxsize=64)
def _cached_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    # Built in float64, then cast once: D[k, i] = sqrt(2/n) c_k cos(pi (2i+1) k / (2n)).
    k_n1 = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i_1n = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d_nn = math.sqrt(2.0 / n) * torch.cos(math.pi * (2.0 * i_1n + 1.0) * k_n1 / (2.0 * n))
    d_nn[0] = d_nn[0] / math.sqrt(2.0)
    return d_nn.to(dtype=dtype, device=device)


def dct_matrix(
    n: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Tensor:
    """Orthonormal DCT-II matrix (scipy's `norm="ortho"`), so DCT(x) = D @ x and IDCT(y) = D.T @ y.

    Args:
        n: transform length, >= 1.
        dtype: floating dtype of the result (built in float64, then cast).
        device: device of the result.

    Returns:
        D_nn: (n, n) with D[k, i] = sqrt(2/n)·c_k·cos(π(2i+1)k/(2n)), c_0 = 1/√2, c_k = 1 otherwise.
        A fresh tensor; callers may modify it.

    Raises:
        ValueError: n < 1.
    """
    if n < 1:
        raise ValueError(f"dct_matrix needs n >= 1, got {n}")
    return _cached_dct_matrix(int(n), dtype, torch.device(device)).clone()


def _dct2_BhwV(x_BhwV: Tensor, dh_hh: Tensor, dw_ww: Tensor) -> Tensor:
    """D_h · X · D_wᵀ over the two spatial axes of (B, h, w, V); returns a new contiguous tensor."""
    b, h, w, v = x_BhwV.shape
    y_BhwV = torch.matmul(dh_hh, x_BhwV.reshape(b, h, w * v)).view(b * h, w, v)
    return torch.matmul(dw_ww, y_BhwV).view(b, h, w, v)


def interpolate_prior(prev_BVhw: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Plain spatial interpolation of per-channel maps (the paper's interpolation-only prior).

    bilinear and bicubic use align_corners=False and no antialias; area is adaptive average
    pooling; nearest is torch's legacy `nearest` (source index floor(i·h/H)).

    Args:
        prev_BVhw: (B, V, h, w) floating maps (any memory format); not modified.
        size: target (H, W).
        mode: bilinear | bicubic | area | nearest.

    Returns:
        interp_BVHW: (B, V, H, W), same dtype and device, a new tensor.

    Raises:
        ValueError: unknown mode or a non-4-D input.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation={mode!r} is not valid; expected one of {INTERPOLATIONS}")
    if prev_BVhw.dim() != 4:
        raise ValueError(f"expected (B, V, h, w), got shape {tuple(prev_BVhw.shape)}")
    size = (int(size[0]), int(size[1]))
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(prev_BVhw, size=size, mode=mode, align_corners=False, antialias=False)
    return F.interpolate(prev_BVhw, size=size, mode=mode)


def dse_upsample(
    prev_BVhw: Tensor,
    size: tuple[int, int],
    *,
    interpolation: str = "bilinear",
    coarse_block_scale: str = "sqrt_area_ratio",
) -> Tensor:
    """Upsample per-channel maps with DSE (docs/METHOD.md), independently for every channel V.

    1. interp = Interp(prev → (H, W));
    2. L_c = D_h'·prev·D_w'ᵀ (h'×w'), L_f = D_H·interp·D_Wᵀ (H×W), orthonormal DCT-II;
    3. hard overwrite of the low band: L_f[:h', :w'] = α·L_c, α = √(HW/(h'w')) for
       `sqrt_area_ratio` (keeps a constant map constant) or 1 for `none`;
    4. prior = D_Hᵀ·L_f·D_W (orthonormal DCT-III).

    The work is done in the (B, h, w, V) layout with batched matrix products (no loop over V), so
    an input that is a channels-last view of (B, h·w, V) logits costs no transpose copy; the
    result is a channels-last (B, V, H, W) view of a contiguous (B, H, W, V) tensor.

    Args:
        prev_BVhw: (B, V, h', w') floating maps (any memory format); not modified.
        size: target (H, W) with H >= h' and W >= w'.
        interpolation: bilinear | bicubic | area | nearest (see `interpolate_prior`).
        coarse_block_scale: sqrt_area_ratio | none (amplitude α of the inserted block).

    Returns:
        prior_BVHW: (B, V, H, W), same dtype and device, a new tensor.

    Raises:
        ValueError: unknown option, non-4-D input, or a target smaller than the input.
    """
    if coarse_block_scale not in COARSE_BLOCK_SCALES:
        raise ValueError(
            f"coarse_block_scale={coarse_block_scale!r} is not valid; "
            f"expected one of {COARSE_BLOCK_SCALES}"
        )
    interp_BVHW = interpolate_prior(prev_BVhw, size, interpolation)
    b, v, h_c, w_c = prev_BVhw.shape
    h_f, w_f = interp_BVHW.shape[-2:]
    if h_f < h_c or w_f < w_c:
        raise ValueError(f"DSE upsamples only: input {(h_c, w_c)} > target {(h_f, w_f)}")
    dtype, device = prev_BVhw.dtype, prev_BVhw.device
    dhc, dwc = (_cached_dct_matrix(n, dtype, device) for n in (h_c, w_c))
    dhf, dwf = (_cached_dct_matrix(n, dtype, device) for n in (h_f, w_f))
    coarse_BhwV = _dct2_BhwV(prev_BVhw.permute(0, 2, 3, 1), dhc, dwc)  # (B, h', w', V)
    fine_BHWV = _dct2_BhwV(interp_BVHW.permute(0, 2, 3, 1), dhf, dwf)  # (B, H, W, V), ours
    alpha = math.sqrt((h_f * w_f) / (h_c * w_c)) if coarse_block_scale == "sqrt_area_ratio" else 1.0
    fine_BHWV[:, :h_c, :w_c, :] = coarse_BhwV * alpha if alpha != 1.0 else coarse_BhwV
    prior_BHWV = _dct2_BhwV(fine_BHWV, dhf.T, dwf.T)  # inverse: D_Hᵀ·L·D_W
    return prior_BHWV.permute(0, 3, 1, 2)
