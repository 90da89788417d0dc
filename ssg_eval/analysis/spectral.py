"""Radially averaged Fourier spectra of latents and images: the numbers behind SSG's figures.

Pure numpy (arrays in, arrays out) following docs/METHOD.md's project defaults; this module must
not load models, sample, read run directories (that is `analysis.cli`) or draw (`analysis.plots`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssg_eval.features.luma import to_grayscale

__all__ = [
    "LatentPanel",
    "PixelSpectrumAccumulator",
    "latent_delta_spectrum",
    "latent_log_profiles",
    "latent_log_spectrum",
    "nyquist_bin",
    "pixel_spectrum",
    "radial_profile",
]

# ITU-R BT.601 luma weights (R, G, B), applied to uint8 values in [0, 255].
# Floor inside log|F| so an exactly-zero coefficient gives a large finite value, not -inf.
LOG_EPS = 1e-12


def radial_bins(height: int, width: int) -> np.ndarray:
    """Integer radial bin of every frequency of a centred (fftshift-ed) H×W spectrum.

    The DC term sits at (H//2, W//2) after `numpy.fft.fftshift` (even and odd sides alike). The
    radius r is the Euclidean distance to it in FFT index units (cycles per image for a square
    image), and bin k collects radii in [k − 0.5, k + 0.5), i.e. k = floor(r + 0.5): bin 0 is
    the DC term alone and bin k is centred on radius k.

    Args:
        height: H.
        width: W.

    Returns:
        (H, W) int64 bin indices.
    """
    dy = np.arange(height) - height // 2
    dx = np.arange(width) - width // 2
    radius = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    return np.floor(radius + 0.5).astype(np.int64)


def radial_profile(
    values_HW: np.ndarray, num_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Average a centred 2-D spectrum (power or amplitude) over integer radius bins.

    Binning follows `radial_bins`: bin k holds radii in [k − 0.5, k + 0.5) around the DC term
    at (H//2, W//2). Leading axes are kept, so a (B, C, H, W) stack gives (B, C, num_bins).

    Args:
        values_HW: (..., H, W) real values, already `fftshift`-ed (DC at the centre).
        num_bins: number of bins from 0; None covers every radius up to the corners
            (floor(r_max + 0.5) + 1 bins, 12 for 16×16). Frequencies in higher bins are
            dropped, e.g. `min(H, W) // 2 + 1` keeps complete rings only.

    Returns:
        `(bin_centers, profile)`: bin centres 0..num_bins−1 as float64 (num_bins,), and the mean
        of the values in each bin, float64 (..., num_bins); NaN for a bin with no frequency.

    Raises:
        ValueError: `values_HW` has fewer than 2 axes or `num_bins` < 1.
    """
    values = np.asarray(values_HW, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"values_HW must have at least 2 axes (H, W); got shape {values.shape}")
    height, width = values.shape[-2:]
    bins_HW = radial_bins(height, width)
    if num_bins is None:
        num_bins = int(bins_HW.max()) + 1
    if num_bins < 1:
        raise ValueError(f"num_bins={num_bins} must be >= 1 (or None for every radius)")
    keep = bins_HW.ravel() < num_bins
    flat_bins = bins_HW.ravel()[keep]
    rows = values.reshape(-1, height * width)[:, keep]
    # One bincount over all rows at once: row m's bins are offset by m * num_bins.
    offsets = np.arange(rows.shape[0])[:, None] * num_bins
    sums = np.bincount(
        (flat_bins[None, :] + offsets).ravel(),
        weights=rows.ravel(),
        minlength=rows.shape[0] * num_bins,
    ).reshape(rows.shape[0], num_bins)
    counts = np.bincount(flat_bins, minlength=num_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, sums / counts, np.nan)
    centers = np.arange(num_bins, dtype=np.float64)
    return centers, profile.reshape(*values.shape[:-2], num_bins)


def centred_magnitude(x_HW: np.ndarray) -> np.ndarray:
    """|FFT2| over the last two axes (orthonormal), `fftshift`-ed so DC sits at (H//2, W//2)."""
    spectrum = np.fft.fft2(np.asarray(x_HW, dtype=np.float64), axes=(-2, -1), norm="ortho")
    return np.fft.fftshift(np.abs(spectrum), axes=(-2, -1))


def latent_log_profiles(
    f_hat_BCHW: np.ndarray, num_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample radial profile of log|FFT2| of a latent, averaged over channels.

    For every sample and channel: orthonormal 2-D FFT, natural log of the magnitude (floored at
    1e-12), radial mean per `radial_profile`; then the mean over channels. The FFT norm and the
    log base only shift or scale every profile equally, so differences keep their shape.

    Args:
        f_hat_BCHW: (B, C, H, W) real latent, e.g. VAR's cumulative f̂ after one step (any
            array-like; a CPU torch tensor works).
        num_bins: as in `radial_profile`.

    Returns:
        `(bins, profiles)` with profiles float64 (B, num_bins).

    Raises:
        ValueError: the input is not 4-D.
    """
    latent = np.asarray(f_hat_BCHW, dtype=np.float64)
    if latent.ndim != 4:
        raise ValueError(f"f_hat_BCHW must be (B, C, H, W); got shape {latent.shape}")
    log_magnitude = np.log(np.maximum(centred_magnitude(latent), LOG_EPS))
    bins, profiles_BCn = radial_profile(log_magnitude, num_bins)
    return bins, profiles_BCn.mean(axis=1)


def latent_log_spectrum(
    f_hat_BCHW: np.ndarray, num_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Radial mean log|FFT2| of a latent, averaged over channels and batch.

    Args:
        f_hat_BCHW: (B, C, H, W) real latent.
        num_bins: as in `radial_profile`.

    Returns:
        `(bins, mean_log_magnitude)`, both (num_bins,) float64.
    """
    bins, profiles = latent_log_profiles(f_hat_BCHW, num_bins)
    return bins, profiles.mean(axis=0)


def latent_delta_spectrum(
    f_hat_treated_BCHW: np.ndarray, f_hat_baseline_BCHW: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired ΔLog Magnitude: treated minus baseline profile per sample, then mean ± std.

    Row b of both inputs must be the same sample (same label and seed), so the difference is
    paired as in docs/METHOD.md's latent panels.

    Args:
        f_hat_treated_BCHW: (B, C, H, W) latents with SSG.
        f_hat_baseline_BCHW: (B, C, H, W) latents without SSG, same rows.

    Returns:
        `(bins, mean, std)`: per-bin mean and std (ddof=1; NaN when B = 1) over samples.

    Raises:
        ValueError: the shapes differ.
    """
    treated, baseline = np.asarray(f_hat_treated_BCHW), np.asarray(f_hat_baseline_BCHW)
    if treated.shape != baseline.shape:
        raise ValueError(f"paired latents differ in shape: {treated.shape} vs {baseline.shape}")
    bins, prof_t = latent_log_profiles(treated)
    _, prof_b = latent_log_profiles(baseline)
    delta = prof_t - prof_b
    std = delta.std(axis=0, ddof=1) if len(delta) > 1 else np.full(len(bins), np.nan)
    return bins, delta.mean(axis=0), std


def nyquist_bin(prev_patch_num: int, grid: int) -> int:
    """Radial bin of the previous scale's band limit on the grid×grid latent spectrum.

    A pn×pn token map carries frequencies up to pn/2 cycles per image. f̂ lives on the final
    grid, where the FFT index is also cycles per image, so the limit is radius pn/2 whatever the
    grid; under `radial_bins` it falls in bin floor(pn/2 + 0.5) (VAR-d16, grid 16: pn 6, 8, 10,
    13 -> bins 3, 4, 5, 7). The paper's red lines sit about one bin higher (docs/METHOD.md).

    Args:
        prev_patch_num: side of the previous scale's token grid.
        grid: side of the latent the spectrum is taken on (`model.patch_nums[-1]`).

    Returns:
        The bin index.

    Raises:
        ValueError: `prev_patch_num` is not in [1, grid].
    """
    if not 1 <= prev_patch_num <= grid:
        raise ValueError(f"prev_patch_num={prev_patch_num} must be in [1, grid={grid}]")
    return int(math.floor(prev_patch_num / 2 + 0.5))


class PixelSpectrumAccumulator:
    """Streaming mean of |FFT2| of grayscale images; `result()` gives its radial profile.

    Only the running (H, W) float64 sum of centred magnitudes and the image count are kept, so
    memory does not grow with N. The radial mean is linear, so the profile of the mean spectrum
    equals the mean of per-image profiles: feeding the images in any batches gives the one-shot
    answer (up to float rounding).
    """

    def __init__(self) -> None:
        self.sum_HW: np.ndarray | None = None
        self.count = 0

    def update(self, images_NHWC: np.ndarray) -> None:
        """Add a batch of uint8 (N, H, W, 3) images (all batches must share H and W)."""
        gray_NHW = to_grayscale(images_NHWC)
        batch_sum = centred_magnitude(gray_NHW).sum(axis=0)
        if self.sum_HW is None:
            self.sum_HW = batch_sum
        elif self.sum_HW.shape != batch_sum.shape:
            raise ValueError(
                f"image size changed mid-stream: {self.sum_HW.shape} then {batch_sum.shape[-2:]}"
            )
        else:
            self.sum_HW = self.sum_HW + batch_sum
        self.count += len(gray_NHW)

    def result(self, num_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(freqs, amplitude)` like `pixel_spectrum`.

        Raises:
            ValueError: no image was added.
        """
        if self.sum_HW is None or self.count == 0:
            raise ValueError("no images were added to the spectrum")
        if num_bins is None:
            num_bins = min(self.sum_HW.shape) // 2 + 1
        return radial_profile(self.sum_HW / self.count, num_bins)


def pixel_spectrum(
    images_NHWC: np.ndarray, num_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged |FFT2| amplitude of grayscale images, averaged over images.

    Grayscale is BT.601 luma of the uint8 values (no windowing, DC kept); the FFT is orthonormal.
    Frequencies are radial bins in cycles per image (`radial_bins`); by default only complete
    rings are kept (bins 0..min(H, W)//2, 129 bins for 256×256).

    Args:
        images_NHWC: uint8 (N, H, W, 3).
        num_bins: as in `radial_profile`; None = min(H, W)//2 + 1.

    Returns:
        `(freqs, amplitude)`, both float64 (num_bins,).
    """
    accumulator = PixelSpectrumAccumulator()
    accumulator.update(images_NHWC)
    return accumulator.result(num_bins)


@dataclass(frozen=True)
class LatentPanel:
    """One latent-level panel: ΔLog Magnitude after step `to_step` (1-based, paper style)."""

    to_step: int
    prev_patch_num: int
    patch_num: int
    bins: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    nyquist: int
