"""Paired per-band deltas of a guided run against its baseline: FWD per band and power ratios.

Pure math on the arrays of two runs' `bands.npz` (arrays in, records out) through
`analysis.paired.paired_bootstrap`; it must not read runs or decide which runs are paired (that
is `report.assets`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ssg_eval.analysis.paired import paired_bootstrap
from ssg_eval.errors import MismatchedRunsError
from ssg_eval.features.frequency import (
    band_label,
    packet_bands,
    packet_coefficients,
    psd_band_names,
    psd_band_powers,
)
from ssg_eval.metrics.resampled import IndexStat
from ssg_eval.metrics.wavelet import (
    PacketMoments,
    band_means,
    packet_frechet,
    packet_influence,
    sensitivity_matrices,
)

__all__ = ["ALL_BANDS", "band_arrays", "band_deltas", "fwd_band_stat", "psd_ratio_stat"]

ALL_BANDS = "all"  # the `band` of the aggregate FWD row (mean over every packet)
BandArrays = Mapping[str, np.ndarray]


def fwd_band_stat(value: float, influence_N: np.ndarray) -> IndexStat:
    """FD of one band on the multiset `idx`, to first order: value + mean influence over `idx`.

    `influence_N` holds every sample's centred influence on that band (`metrics.wavelet`), so
    the full index set gives `value` and a resample moves it as the delta method says.
    """
    influence_N = np.asarray(influence_N, dtype=np.float64)
    return lambda idx: float(value + influence_N[idx].mean())


def psd_ratio_stat(powers_N: np.ndarray, reference_mean: float) -> IndexStat:
    """Mean band power of the samples `idx` divided by the reference's mean band power."""
    powers_N = np.asarray(powers_N, dtype=np.float64)
    return lambda idx: float(powers_N[idx].mean() / reference_mean)


def _check_paired(baseline: BandArrays, guided: BandArrays) -> np.ndarray:
    labels = np.asarray(baseline["labels"])
    if not np.array_equal(labels, np.asarray(guided["labels"])):
        raise MismatchedRunsError(
            "the two runs' samples do not share labels index by index; band deltas need runs of "
            "one sample plan (same sampler.seed, num_samples and chunk_size)"
        )
    return labels


def band_deltas(
    baseline: BandArrays,
    guided: BandArrays,
    *,
    num_resamples: int,
    seed: int,
    psd_edges: Sequence[float],
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Δ = guided − baseline per FWD band (and the aggregate) and per radial power band.

    Every delta is `paired_bootstrap` on the shared sample indices, stratified by class label,
    with one draw stream per row (seed + row number), so a row does not depend on which other
    rows are computed.

    Args:
        baseline, guided: the arrays of `bands.npz` of two runs of one sample plan.
        num_resamples: bootstrap draws (>= 2). seed: base seed of the draws.
        psd_edges: the radial band edges the powers were computed with (for the labels).
        confidence: two-sided CI level.

    Returns:
        One dict per row: `metric` (`fwd` | `psd_ratio`), `band`, `band_range`, then the keys
        of `paired_bootstrap` (`baseline`, `candidate`, `delta`, `ci_low`, `ci_high`, ...).

    Raises:
        MismatchedRunsError: labels differ, or the runs hold different band counts.
    """
    labels = _check_paired(baseline, guided)
    num_bands = len(baseline["fwd_bands"])
    if num_bands != len(guided["fwd_bands"]):
        raise MismatchedRunsError(
            "the two runs' bands.npz use different metrics.fwd_level settings; recompute one "
            "with the other's setting (ssg-metrics with fwd in metrics.metrics)"
        )
    level = int(round(np.log2(num_bands)))
    specs: list[tuple[str, str, str, IndexStat, IndexStat]] = []
    for band in range(num_bands):
        stats = [fwd_band_stat(r["fwd_bands"][band], r["influence_bands"][:, band])
                 for r in (baseline, guided)]  # fmt: skip
        specs.append(("fwd", str(band), band_label(band, level), *stats))
    stats = [fwd_band_stat(float(r["fwd"]), r["influence_fwd"]) for r in (baseline, guided)]
    specs.append(("fwd", ALL_BANDS, "every packet (FWD)", *stats))
    for band, name in enumerate(psd_band_names(len(psd_edges) - 1)):
        stats = [psd_ratio_stat(r["psd"][:, band], float(r["ref_psd"][band]))
                 for r in (baseline, guided)]  # fmt: skip
        edge = f"({psd_edges[band]:g}, {psd_edges[band + 1]:g}] Nyquist radius"
        specs.append(("psd_ratio", name, edge, *stats))
    rows = []
    for number, (metric, band, band_range, base_stat, guided_stat) in enumerate(specs):
        result = paired_bootstrap(base_stat, guided_stat, len(labels), strata=labels,
                                  num_resamples=num_resamples, seed=seed + number,
                                  confidence=confidence)  # fmt: skip
        rows.append({"metric": metric, "band": band, "band_range": band_range, **result})
    return rows


def band_arrays(
    images_NHWC: np.ndarray,
    labels_N: np.ndarray,
    reference_NHWC: np.ndarray,
    *,
    wavelet: str = "haar",
    level: int = 4,
    psd_edges: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    method: str = "eigh",
) -> dict[str, np.ndarray]:
    """The arrays of a run's `bands.npz` from images held in memory (small sets, tests, benches).

    Same math as `stages.spectral_bands.run_bands`, which streams shards and caches instead.
    """
    coeffs = packet_coefficients(images_NHWC, wavelet, level)
    ref_coeffs = packet_coefficients(reference_NHWC, wavelet, level)
    moments = PacketMoments.zeros(*coeffs.shape[1:])
    moments.update(coeffs)
    ref_moments = PacketMoments.zeros(*ref_coeffs.shape[1:])
    ref_moments.update(ref_coeffs)
    mu, sigma = moments.mean_cov()
    ref_mu, ref_sigma = ref_moments.mean_cov()
    fwd_packets = packet_frechet(mu, sigma, ref_mu, ref_sigma, method)
    influence = packet_influence(coeffs, mu, ref_mu, sensitivity_matrices(sigma, ref_sigma))
    influence = influence.numpy() - influence.numpy().mean(0)
    bands_P, num_bands = packet_bands(level), 2**level
    return {
        "fwd": np.asarray(fwd_packets.mean()),
        "fwd_packets": fwd_packets,
        "fwd_bands": band_means(fwd_packets, bands_P, num_bands),
        "influence_bands": band_means(influence, bands_P, num_bands),
        "influence_fwd": influence.mean(1),
        "psd": psd_band_powers(images_NHWC, psd_edges),
        "ref_psd": psd_band_powers(reference_NHWC, psd_edges).mean(0),
        "labels": np.asarray(labels_N, dtype=np.int64),
    }
