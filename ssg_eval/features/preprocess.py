"""Inception input preprocessing in one pass: uint8 NHWC -> TF1 bilinear 299x299 -> (x - 128) / 128.

It reproduces torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x` (method "slow") bit for
bit on CPU with the same float32 operations in the same order, separably and on uint8 gathers;
this module owns only the preprocessing, never the network.
"""

from __future__ import annotations

import torch

INCEPTION_SIZE = 299


def tf1_grid(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source indices and weights of TF1 `resize_bilinear` (align_corners=False) along one axis.

    Computed exactly as torch-fidelity does (float32 `arange * scale`, truncation to int64), so
    the weights carry the same rounding.

    Returns:
        `lo` (out,) int64, `hi` (out,) int64 (clamped to `in_size - 1`), `frac` (out,) float32.
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    grid = torch.arange(0, out_size, 1, dtype=torch.float32) * scale
    lo = grid.long()
    hi = (lo + 1).clamp_max(in_size - 1)
    frac = grid - lo.float()
    return lo.to(device), hi.to(device), frac.to(device)


def uint8_to_inception_input(images_BHWC: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """Resize uint8 images like TF1 bilinear and scale them to [-1, 1], in channels-last layout.

    torch-fidelity converts to float, gathers four full (B, 3, 299, 299) corner tensors and
    blends them: `in0 = c00 + (c01 - c00) dx`, `in1 = c10 + (c11 - c10) dx`,
    `out = in0 + (in1 - in0) dy`. Here the x-blend runs once per *input* row on uint8 gathers
    (`in0` and `in1` are rows of that blend, so the values are identical), the y-blend on its
    rows, all in place, and the result stays NHWC: the returned (B, 3, size, size) tensor is a
    channels-last view, which is the layout the convolutions want.

    Args:
        images_BHWC: (B, H, W, 3) uint8, any device; any H, W >= 1.
        size: output side (Inception: 299).

    Returns:
        (B, 3, size, size) float32 in channels-last memory format, values `(x - 128) / 128`.
    """
    assert images_BHWC.dtype == torch.uint8 and images_BHWC.dim() == 4, images_BHWC.shape
    device = images_BHWC.device
    _, height, width, _ = images_BHWC.shape
    x_lo, x_hi, dx = tf1_grid(width, size, device)
    y_lo, y_hi, dy = tf1_grid(height, size, device)
    left_BHsC = images_BHWC.index_select(2, x_lo).float()  # (B, H, size, 3)
    rows_BHsC = images_BHWC.index_select(2, x_hi).float()
    rows_BHsC.sub_(left_BHsC).mul_(dx.view(1, 1, size, 1)).add_(left_BHsC)  # c0 + (c1 - c0) dx
    del left_BHsC
    top_BssC = rows_BHsC.index_select(1, y_lo)  # (B, size, size, 3)
    out_BssC = rows_BHsC.index_select(1, y_hi)
    del rows_BHsC
    out_BssC.sub_(top_BssC).mul_(dy.view(1, size, 1, 1)).add_(top_BssC)
    out_BssC.sub_(128).div_(128)  # torch-fidelity's (x - 128) / 128
    return out_BssC.permute(0, 3, 1, 2)
