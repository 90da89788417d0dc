"""Per-image frequency features: wavelet-packet coefficients (for FWD) and radial power per band.

Pure functions (uint8 images in, arrays out) on ptwt's packet transform and numpy's FFT; this
module must not read runs, cache anything or compute distances (that is `metrics.wavelet`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ssg_eval.errors import ConfigError
from ssg_eval.features.luma import to_grayscale

__all__ = [
    "PSD_BAND_NAMES",
    "band_label",
    "packet_bands",
    "packet_coefficients",
    "packet_names",
    "psd_band_masks",
    "psd_band_names",
    "psd_band_powers",
]

# Names of the radial power bands; their edges are `metrics.psd_band_edges` (fractions of Nyquist).
PSD_BAND_NAMES = ("low", "mid", "high")


def psd_band_names(num_bands: int) -> tuple[str, ...]:
    """`low`, `mid`, `high` for three radial bands, else `b0`, `b1`, ..."""
    return PSD_BAND_NAMES if num_bands == 3 else tuple(f"b{i}" for i in range(num_bands))


def packet_names(level: int) -> list[str]:
    """Paths of the 4**level packets in ptwt's natural order ('aaaa', 'aaah', ...).

    Raises:
        ConfigError: `level` < 1.
    """
    import ptwt

    if level < 1:
        raise ConfigError(f"metrics.fwd_level={level} must be >= 1")
    return list(ptwt.WaveletPacket2D.get_natural_order(level))


def packet_bands(level: int) -> np.ndarray:
    """Frequency band of every packet (natural order): its ring max(row, column) in ptwt's
    frequency-ordered 2**level × 2**level packet grid.

    Band k holds the packets whose larger of the two axis frequencies lies in
    [k, k + 1) / 2**level of Nyquist (for an ideal filter bank; Haar's filters overlap), so band 0
    is the lowest packet alone and band 2**level − 1 the outer ring.

    Returns:
        (4**level,) int64 band indices in 0..2**level − 1.
    """
    import ptwt

    position = {}
    for row, names in enumerate(ptwt.WaveletPacket2D.get_freq_order(level)):
        for col, name in enumerate(names):
            position[name] = max(row, col)
    return np.asarray([position[name] for name in packet_names(level)], dtype=np.int64)


def band_label(band: int, level: int) -> str:
    """Human-readable frequency range of FWD band `band`: '[k/2^L, (k+1)/2^L) Nyquist'."""
    side = 2**level
    return f"[{band}/{side}, {band + 1}/{side}) Nyquist"


def packet_coefficients(
    images_NHWC: np.ndarray, wavelet: str, level: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Wavelet-packet coefficients of each image, one flattened vector per packet.

    Images are scaled to [0, 1] (uint8 / 255) in float64 and laid out (N, 3, H, W), as FWD's
    reference code feeds them; the 2-D packet transform (ptwt, boundary mode `reflect`) runs to
    `level`; packet p of image n is its (3, h, w) coefficient block flattened channel-major.

    Args:
        images_NHWC: uint8 (N, H, W, 3).
        wavelet: a PyWavelets name (`haar`, `sym5`, ...).
        level: packet level; H and W should be divisible by 2**level (else padding applies).
        device: where the transform runs.

    Returns:
        float64 (N, 4**level, 3·h·w) on `device`, packets in natural order (`packet_names`).
    """
    import ptwt
    import pywt

    images = np.asarray(images_NHWC)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}")
    x_NCHW = (
        torch.from_numpy(images.copy()).to(device).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    )
    packets = ptwt.WaveletPacket2D(x_NCHW, pywt.Wavelet(wavelet), maxlevel=level)
    blocks = [packets[name] for name in packet_names(level)]  # each (N, 3, h, w)
    return torch.stack(blocks, dim=1).reshape(len(images), len(blocks), -1)


def _radius_fraction(height: int, width: int) -> np.ndarray:
    """Radius of every centred FFT frequency as a fraction of the Nyquist radius min(H, W)/2."""
    dy = np.arange(height) - height // 2
    dx = np.arange(width) - width // 2
    return np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2) / (min(height, width) / 2)


def psd_band_masks(height: int, width: int, edges: Sequence[float]) -> np.ndarray:
    """Boolean masks (B, H, W) of the centred frequencies in each band (e_b, e_{b+1}].

    The DC term (radius 0) is in no band; corners beyond the last edge are in none either.

    Raises:
        ConfigError: edges not strictly increasing from >= 0, or a band without frequencies.
    """
    edges = [float(e) for e in edges]
    if (
        len(edges) < 2
        or edges[0] < 0
        or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
    ):
        raise ConfigError(
            f"metrics.psd_band_edges={edges} must be >= 2 strictly increasing values from >= 0 "
            "(fractions of the Nyquist radius, e.g. [0, 0.25, 0.5, 1])"
        )
    radius = _radius_fraction(height, width)
    masks = np.stack(
        [(radius > lo) & (radius <= hi) for lo, hi in zip(edges, edges[1:], strict=False)]
    )
    empty = [i for i, mask in enumerate(masks) if not mask.any()]
    if empty:
        raise ConfigError(
            f"metrics.psd_band_edges={edges}: band(s) {empty} hold no frequency of a "
            f"{height}x{width} image; widen them"
        )
    return masks


def psd_band_powers(images_NHWC: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Mean power |FFT2|² of each image's luma in each radial band.

    Luma is BT.601 of the uint8 values (`features.luma.to_grayscale`, no window, DC kept in
    the transform); the FFT is orthonormal; band b averages the power over the frequencies whose
    radius r satisfies e_b < r / (min(H, W)/2) <= e_{b+1}.

    Returns:
        float64 (N, B) mean power per image and band.
    """
    gray_NHW = to_grayscale(images_NHWC)
    spectrum = np.fft.fftshift(np.fft.fft2(gray_NHW, norm="ortho"), axes=(-2, -1))
    power_NF = (np.abs(spectrum) ** 2).reshape(len(gray_NHW), -1)
    masks_BF = psd_band_masks(*gray_NHW.shape[1:], edges).reshape(len(edges) - 1, -1)
    return power_NF @ masks_BF.T.astype(np.float64) / masks_BF.sum(1)
