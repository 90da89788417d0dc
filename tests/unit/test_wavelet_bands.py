"""The per-band metric: packet bands, FWD against a pywt/scipy transcription, paired band deltas."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
from scipy import linalg

from ssg_eval.analysis.bands import band_arrays, band_deltas
from ssg_eval.features.frequency import packet_bands, psd_band_powers
from ssg_eval.smoke import synthetic_images

EDGES = (0.0, 0.25, 0.5, 1.0)


def test_packet_bands_follow_pywt_frequency_order():
    for level in (1, 2, 3):
        tree = pywt.WaveletPacket2D(np.zeros((2**level, 2**level)), "haar", maxlevel=level)
        ring = {node.path: max(r, c)
                for r, row in enumerate(tree.get_level(level, order="freq"))
                for c, node in enumerate(row)}  # fmt: skip
        natural = [node.path for node in tree.get_level(level, order="natural")]
        assert packet_bands(level).tolist() == [ring[path] for path in natural]


def _fd_scipy(x: np.ndarray, y: np.ndarray) -> float:
    # written out: mean, np.cov (N - 1), scipy sqrtm, real part
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _pywt_packets(images: np.ndarray, level: int) -> np.ndarray:
    """(N, P, 3*h*w) with pywt, one image and channel at a time, natural order, channel-major."""
    out = []
    for image in images.astype(np.float64) / 255.0:
        per_channel = []
        for c in range(3):
            tree = pywt.WaveletPacket2D(image[..., c], "haar", maxlevel=level)
            per_channel.append([node.data for node in tree.get_level(level, order="natural")])
        blocks = np.asarray(per_channel)  # (3, P, h, w)
        out.append(blocks.transpose(1, 0, 2, 3).reshape(blocks.shape[1], -1))
    return np.asarray(out)


def test_fwd_per_packet_and_bands_match_a_pywt_scipy_transcription():
    images = synthetic_images(60, 16, seed=3, noise=6.0)
    reference = synthetic_images(50, 16, seed=4, noise=6.0)
    got = band_arrays(images, np.arange(60) % 10, reference, level=2, method="sqrtm")
    x, y = _pywt_packets(images, 2), _pywt_packets(reference, 2)
    per_packet = np.asarray([_fd_scipy(x[:, p], y[:, p]) for p in range(x.shape[1])])
    np.testing.assert_allclose(got["fwd_packets"], per_packet, rtol=1e-7, atol=1e-9)
    assert float(got["fwd"]) == pytest.approx(per_packet.mean(), rel=1e-7)
    rings = packet_bands(2)
    np.testing.assert_allclose(got["fwd_bands"], [per_packet[rings == b].mean() for b in range(4)],
                               rtol=1e-7)  # fmt: skip


def test_psd_band_powers_match_the_formula():
    images = synthetic_images(3, 20, seed=5)
    gray = images.astype(np.float64) @ np.asarray([0.299, 0.587, 0.114])
    power = np.abs(np.fft.fft2(gray, norm="ortho")) ** 2  # unshifted: radius from fftfreq
    fy, fx = np.meshgrid(np.fft.fftfreq(20) * 20, np.fft.fftfreq(20) * 20, indexing="ij")
    radius = np.sqrt(fy**2 + fx**2) / 10
    bands = list(zip(EDGES, EDGES[1:], strict=False))
    want = [[p[(radius > lo) & (radius <= hi)].mean() for lo, hi in bands] for p in power]
    np.testing.assert_allclose(psd_band_powers(images, EDGES), want, rtol=1e-12)


def _hf_noise(num: int, size: int, seed: int, amplitude: float) -> np.ndarray:
    """Gaussian noise keeping only frequencies with max(|fy|, |fx|) >= 0.75 Nyquist."""
    noise = np.random.default_rng(seed).normal(0, 1, (num, size, size, 3))
    freq = np.abs(np.fft.fftfreq(size) * 2)
    keep = np.maximum(freq[:, None], freq[None, :]) >= 0.75
    shaped = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(1, 2)) * keep[None, :, :, None],
                                  axes=(1, 2)))  # fmt: skip
    return amplitude * shaped / shaped.std()


def _rows(rows, metric):
    return {r["band"]: r for r in rows if r["metric"] == metric}


def test_added_high_frequency_noise_moves_high_bands_only():
    num, size = 200, 32
    clean = synthetic_images(num, size, seed=1, noise=2.0)
    noisy = np.clip(np.floor(clean + _hf_noise(num, size, 3, 6.0) + 0.5), 0, 255).astype(np.uint8)
    reference, labels = synthetic_images(num, size, seed=2, noise=2.0), np.arange(num) % 10
    base = band_arrays(clean, labels, reference, level=2)
    rows = band_deltas(base, band_arrays(noisy, labels, reference, level=2), num_resamples=200,
                       seed=0, psd_edges=EDGES)  # fmt: skip
    fwd, psd = _rows(rows, "fwd"), _rows(rows, "psd_ratio")
    assert fwd["3"]["ci_low"] > 0 and fwd["2"]["ci_low"] > 0 and psd["high"]["ci_low"] > 0
    assert fwd["0"]["ci_low"] <= 0 <= fwd["0"]["ci_high"]
    assert psd["low"]["ci_low"] <= 0 <= psd["low"]["ci_high"]
    relative = {band: abs(row["delta"]) / row["baseline"] for band, row in fwd.items()}
    assert relative["0"] < 0.01 * relative["3"]


def test_identical_runs_give_exactly_zero_band_deltas():
    images = synthetic_images(40, 16, seed=7, noise=6.0)
    arrays = band_arrays(images, np.arange(40) % 10, synthetic_images(40, 16, seed=8), level=2)
    twin = {key: np.array(value, copy=True) for key, value in arrays.items()}
    for row in band_deltas(arrays, twin, num_resamples=50, seed=0, psd_edges=EDGES):
        assert row["delta"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0, row


def test_band_deltas_refuse_runs_of_another_plan():
    images = synthetic_images(20, 16, seed=7)
    arrays = band_arrays(images, np.arange(20) % 10, images, level=1)
    other = {**arrays, "labels": (arrays["labels"] + 1) % 10}
    with pytest.raises(ValueError, match="share labels"):
        band_deltas(arrays, other, num_resamples=2, seed=0, psd_edges=EDGES)


def test_linearised_band_spread_matches_an_exact_bootstrap():
    """The influence-based resample of a band's FD has the spread of recomputing it exactly."""
    num = 400
    images = synthetic_images(num, 8, seed=11, noise=20.0)
    reference = synthetic_images(num, 8, seed=12, noise=20.0)
    arrays = band_arrays(images, np.zeros(num), reference, level=1, method="sqrtm")
    x, y = _pywt_packets(images, 1), _pywt_packets(reference, 1)
    rng = np.random.default_rng(0)
    exact, linear = [], []
    for _ in range(100):  # band 1 holds the packets h, v, d at level 1
        idx = rng.integers(0, num, num)
        exact.append(np.mean([_fd_scipy(x[idx, p], y[:, p]) for p in (1, 2, 3)]))
        linear.append(arrays["fwd_bands"][1] + arrays["influence_bands"][idx, 1].mean())
    assert np.std(linear) == pytest.approx(np.std(exact), rel=0.25)
