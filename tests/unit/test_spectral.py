"""Radial spectra: closed forms (cosines, white noise, DC), streaming, latent deltas, plots."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ssg_eval.analysis.plots import plot_latent_panels, plot_pixel_ratio
from ssg_eval.analysis.spectral import (
    LatentPanel,
    PixelSpectrumAccumulator,
    latent_delta_spectrum,
    latent_log_spectrum,
    nyquist_bin,
    pixel_spectrum,
    radial_bins,
    radial_profile,
    to_grayscale,
)


def _centred_amplitude(image_HW):
    return np.fft.fftshift(np.abs(np.fft.fft2(image_HW, norm="ortho")))


@pytest.mark.parametrize(
    ("size", "fy", "fx", "expected_bin"),
    [(32, 0, 5, 5), (32, 4, 3, 5), (33, 7, 0, 7), (16, 2, 2, 3)],
)
def test_cosine_lands_in_its_radial_bin(size, fy, fx, expected_bin):
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    image = np.cos(2 * np.pi * (fy * yy + fx * xx) / size)
    bins, profile = radial_profile(_centred_amplitude(image))
    assert bins[int(np.nanargmax(profile))] == expected_bin
    others = np.delete(profile, expected_bin)
    assert np.nanmax(others) < 1e-9


def test_bins_are_round_half_up_around_the_centre():
    bins_HW = radial_bins(16, 16)
    assert bins_HW[8, 8] == 0 and bins_HW.max() == 11  # sqrt(8^2 + 8^2) = 11.3 -> bin 11
    assert bins_HW[8, 8 + 3] == 3 and bins_HW[8 + 1, 8 + 1] == 1  # r = 1.41 -> bin 1
    assert radial_bins(5, 5)[2, 2] == 0  # odd side: DC at H//2 as after fftshift


def test_white_noise_power_is_flat():
    noise = np.random.default_rng(0).normal(size=(64, 64, 64))
    power = np.fft.fftshift(np.abs(np.fft.fft2(noise, norm="ortho")) ** 2, axes=(-2, -1))
    _, profile = radial_profile(power.mean(axis=0), num_bins=33)
    assert np.all(np.abs(profile[1:] - 1.0) < 0.2)  # E|F|^2 = sigma^2 = 1 at every frequency
    assert profile[1:].mean() == pytest.approx(1.0, abs=0.02)


def test_dc_only_image():
    images = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    freqs, amplitude = pixel_spectrum(images)
    assert freqs.tolist() == [0, 1, 2, 3, 4]  # complete rings only: bins 0..H//2
    assert amplitude[0] == pytest.approx(100 * 8)  # orthonormal: sum / sqrt(HW)
    assert np.allclose(amplitude[1:], 0.0, atol=1e-9)


def test_leading_axes_are_kept_and_num_bins_truncates():
    values = np.random.default_rng(1).random((2, 3, 16, 16))
    bins, profile = radial_profile(values, num_bins=5)
    assert bins.shape == (5,) and profile.shape == (2, 3, 5)
    _, single = radial_profile(values[1, 2])
    assert np.allclose(profile[1, 2], single[:5])


def test_pixel_spectrum_streaming_equals_one_shot():
    images = np.random.default_rng(2).integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    accumulator = PixelSpectrumAccumulator()
    for start, stop in [(0, 3), (3, 8), (8, 10)]:
        accumulator.update(images[start:stop])
    freqs, streamed = accumulator.result()
    freqs_once, once = pixel_spectrum(images)
    assert np.array_equal(freqs, freqs_once)
    assert np.allclose(streamed, once, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="size changed"):
        accumulator.update(images[:, :8, :8])


def test_grayscale_is_bt601_luma_and_rejects_float():
    pixel = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], dtype=np.uint8)
    assert to_grayscale(pixel)[0, 0].tolist() == pytest.approx([76.245, 149.685, 29.07])
    with pytest.raises(ValueError, match="uint8"):
        to_grayscale(pixel.astype(np.float32))


def test_latent_delta_closed_forms():
    latent = np.random.default_rng(3).normal(size=(4, 8, 16, 16))
    bins, mean, std = latent_delta_spectrum(latent, latent)
    assert bins.shape == (12,) and np.all(mean == 0) and np.all(std == 0)
    _, mean, std = latent_delta_spectrum(np.e * latent, latent)  # log|e F| - log|F| = 1
    assert np.allclose(mean, 1.0) and np.allclose(std, 0.0, atol=1e-12)
    _, base = latent_log_spectrum(latent)
    _, scaled = latent_log_spectrum(np.e * latent)
    assert np.allclose(scaled - base, 1.0)
    with pytest.raises(ValueError, match="shape"):
        latent_delta_spectrum(latent, latent[:2])


@pytest.mark.parametrize(("prev", "expected"), [(6, 3), (8, 4), (10, 5), (13, 7), (1, 1)])
def test_nyquist_bin(prev, expected):
    assert nyquist_bin(prev, 16) == expected


def test_nyquist_bin_rejects_a_finer_previous_scale():
    with pytest.raises(ValueError, match="prev_patch_num"):
        nyquist_bin(17, 16)


def test_plots_write_png_files(tmp_path):
    bins = np.arange(12.0)
    panel = LatentPanel(
        to_step=7,
        prev_patch_num=6,
        patch_num=8,
        bins=bins,
        mean=bins / 50,
        std=np.full(12, 0.01),
        nyquist=3,
    )
    latent_png = plot_latent_panels([panel, panel], tmp_path / "latent.png", title="t")
    pixel_png = plot_pixel_ratio(np.arange(129.0), {"a": np.ones(129)}, tmp_path / "pixel.png")
    for path in (latent_png, pixel_png):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latent.png", "pixel.png"]


def test_importing_analysis_selects_no_backend():
    code = (
        "import sys, ssg_eval.analysis.spectral, ssg_eval.analysis.plots, ssg_eval.analysis.seeds, "
        "ssg_eval.analysis.cli; assert 'matplotlib' not in sys.modules, 'mpl imported'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
