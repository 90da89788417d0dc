"""Run edge of the per-band metric: FWD per band and radial power per band of one run's samples.

Reads the run's shards (each checked against the manifest's sha256) and the reference images,
caches the reference's packet statistics by its sha256 and the transform settings, a run's packet
moments by the chain of its shards' sha256 (a grown run adds only its new shards) and per-shard
band powers, and writes `<run>/bands.npz` + `bands.json` atomically. The math is in
`features.frequency` and `metrics.wavelet`; this module must not decide which runs are paired.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssg_eval.errors import ConfigError, NpzError
from ssg_eval.features.frequency import packet_bands, packet_coefficients, psd_band_powers
from ssg_eval.metrics.keys import FWD
from ssg_eval.metrics.wavelet import (
    PacketMoments,
    band_means,
    packet_frechet,
    packet_influence,
    sensitivity_matrices,
)
from ssg_eval.runs.io import atomic_write_json, atomic_write_npz, read_json
from ssg_eval.runs.npz import load_npz
from ssg_eval.runs.records import read_record
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)
BANDS_NPZ, BANDS_JSON, BANDS_CACHE = "bands.npz", "bands.json", "bands_cache"
CHECKPOINT_S = 60.0  # the moments prefix cache is rewritten at most this often while streaming


def band_settings(cfg: Any) -> dict[str, Any]:
    """The settings every band number depends on (they key the caches and `bands.json`)."""
    metrics = cfg.metrics
    edges = [float(e) for e in metrics.psd_band_edges]
    return {"fwd_wavelet": str(metrics.fwd_wavelet), "fwd_level": int(metrics.fwd_level),
            "psd_band_edges": edges, "fwd_method": str(metrics.fid_method)}  # fmt: skip


def fwd_protocol(cfg: Any, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """The band settings, checked for `image_shape`, when `fwd` is requested, else {}.

    Raises:
        ValueError: settings that cannot apply (`check_band_settings`), before any work.
    """
    if FWD not in cfg.metrics.metrics:
        return {}
    check_band_settings(cfg, image_shape)
    return band_settings(cfg)


def _tag(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def check_band_settings(cfg: Any, image_shape: tuple[int, ...]) -> None:
    """Fail before any work on settings that cannot apply to images of `image_shape`.

    Raises:
        ConfigError: naming the key and the fix.
    """
    import pywt

    from ssg_eval.features.frequency import psd_band_masks

    settings = band_settings(cfg)
    if settings["fwd_wavelet"] not in pywt.wavelist(kind="discrete"):
        raise ConfigError(f"metrics.fwd_wavelet={settings['fwd_wavelet']!r} is not a discrete "
                         "PyWavelets wavelet (e.g. haar, db2, sym5)")  # fmt: skip
    side = min(image_shape[:2])
    if not 1 <= settings["fwd_level"] or side % 2 ** settings["fwd_level"]:
        raise ConfigError(
            f"metrics.fwd_level={settings['fwd_level']} must be >= 1 and 2**level "
            f"must divide the image side {side} (FWD uses level 4 at 256 px)"
        )
    psd_band_masks(image_shape[0], image_shape[1], settings["psd_band_edges"])


def _stream(cfg: Any, images_iter, moments: PacketMoments | None, device) -> PacketMoments:
    settings = band_settings(cfg)
    for images in images_iter:
        coeffs = packet_coefficients(np.asarray(images), settings["fwd_wavelet"],
                                     settings["fwd_level"], device)  # fmt: skip
        if moments is None:
            moments = PacketMoments.zeros(coeffs.shape[1], coeffs.shape[2], device)
        moments.update(coeffs)
    return moments


def _batches(images: np.ndarray, batch: int):
    for start in range(0, len(images), batch):
        yield images[start : start + batch]


def reference_statistics(cfg: Any, reference: Any, cache_dir: Path, device) -> dict[str, Any]:
    """Packet mean/covariance and mean band power of the reference images (cached by sha256)."""
    from ssg_eval.features.extract import iter_npz_images

    settings = band_settings(cfg)
    cache = Path(cache_dir) / f"bands_ref-{reference.sha256[:16]}-{_tag(settings)}.npz"
    try:
        return load_npz(cache)
    except (FileNotFoundError, NpzError):
        pass
    batch = int(cfg.metrics.feature_batch_size or 64)
    moments, power_sum, count = None, 0.0, 0
    for images in iter_npz_images(Path(reference.path), batch):
        moments = _stream(cfg, [images], moments, device)
        power_sum = power_sum + psd_band_powers(images, settings["psd_band_edges"]).sum(0)
        count += len(images)
    mu, sigma = moments.mean_cov()
    stats = {"mu": mu, "sigma": sigma, "psd_mean": np.asarray(power_sum) / count}
    atomic_write_npz(cache, **stats)
    return stats


def _shards(cfg: Any, run_dir: Path, manifest: dict) -> list[tuple[Path, str]]:
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shards import shard_path

    paths = [shard_path(run_dir, c) for c in range(plan_from_config(cfg).num_chunks)]
    return [(p, manifest["shards"][p.name]) for p in paths]


def _load_prefix(cache: Path, shas: list[str], device) -> tuple[PacketMoments | None, int]:
    try:
        data = load_npz(cache)
    except (FileNotFoundError, NpzError):
        return None, 0
    done = [str(s) for s in data["shards"]]
    if done != shas[: len(done)]:
        return None, 0  # another run's or a regenerated shard: start over
    moments = PacketMoments(int(data["count"]), torch.as_tensor(data["sum"], device=device),
                            torch.as_tensor(data["outer"], device=device))  # fmt: skip
    return moments, len(done)


def _save_prefix(cache: Path, moments: PacketMoments, shas: list[str]) -> None:
    atomic_write_npz(cache, count=np.asarray(moments.count), sum=moments.sum_PD.cpu().numpy(),
                     outer=moments.outer_PDD.cpu().numpy(), shards=np.asarray(shas))  # fmt: skip


def run_moments(cfg: Any, run_dir: Path, manifest: dict, device) -> dict[str, Any]:
    """Packet moments, per-sample band powers and labels of every shard of the run (cached)."""
    from ssg_eval.sampling.shards import read_shard

    settings, tag = band_settings(cfg), _tag(band_settings(cfg))
    shards = _shards(cfg, run_dir, manifest)
    shas = [sha for _, sha in shards]
    cache = run_dir / BANDS_CACHE / f"moments-{tag}.npz"
    moments, done = _load_prefix(cache, shas, device)
    powers, labels, last_save = [], [], time.monotonic()
    batch = int(cfg.metrics.feature_batch_size or 64)
    for number, (path, sha) in enumerate(shards):
        psd_cache = run_dir / BANDS_CACHE / f"psd-{path.stem}-{sha[:16]}-{tag}.npz"
        images = None
        try:
            cached = load_npz(psd_cache)
        except (FileNotFoundError, NpzError):
            images, shard_labels, _ = read_shard(path, sha)
            cached = {"psd": psd_band_powers(images, settings["psd_band_edges"]),
                      "labels": shard_labels.astype(np.int64)}  # fmt: skip
            atomic_write_npz(psd_cache, **cached)
        powers.append(cached["psd"])
        labels.append(cached["labels"])
        if number < done:
            continue
        if images is None:
            images = read_shard(path, sha)[0]
        moments = _stream(cfg, _batches(images, batch), moments, device)
        if number + 1 == len(shards) or time.monotonic() - last_save > CHECKPOINT_S:
            _save_prefix(cache, moments, shas[: number + 1])
            last_save = time.monotonic()
    return {"moments": moments, "psd": np.concatenate(powers), "labels": np.concatenate(labels)}


def run_influence(cfg, run_dir, manifest, mu, ref_mu, sensitivity) -> np.ndarray:
    """Second pass over the shards: every sample's influence on every packet's FD, centred."""
    from ssg_eval.sampling.shards import read_shard

    settings, batch, parts = band_settings(cfg), int(cfg.metrics.feature_batch_size or 64), []
    for path, sha in _shards(cfg, run_dir, manifest):
        for images in _batches(read_shard(path, sha)[0], batch):
            coeffs = packet_coefficients(images, settings["fwd_wavelet"], settings["fwd_level"],
                                         sensitivity.device)  # fmt: skip
            parts.append(packet_influence(coeffs, mu, ref_mu, sensitivity).cpu().numpy())
    influence_NP = np.concatenate(parts)
    return influence_NP - influence_NP.mean(0)


def _meta(cfg: Any, manifest: dict, reference: Any) -> dict[str, Any]:
    return {"config_hash": manifest["config_hash"],
            "num_samples": int(manifest["samples"]["num_samples"]),
            "shards_sha256": hashlib.sha256("".join(sorted(manifest["shards"].values()))
                                            .encode()).hexdigest(),
            "reference_sha256": reference.sha256, **band_settings(cfg)}  # fmt: skip


def run_bands(cfg: Any, run_dir: Path, reference: Any, cache_dir: Path) -> dict[str, Any]:
    """FWD (aggregate, per packet, per band), each sample's band influences and band powers.

    Reuses `<run>/bands.npz` when `bands.json` records the same samples, reference and settings.

    Returns:
        The arrays of `bands.npz`: `fwd` (scalar), `fwd_packets` (P,), `fwd_bands` (B,),
        `influence_bands` (N, B), `influence_fwd` (N,), `psd` (N, 3), `ref_psd` (3,), `labels`.
    """
    from ssg_eval.utils.dist import resolve_device

    manifest = read_record(run_dir / "manifest.json", "manifest", need=("config",))
    check_band_settings(cfg, tuple(manifest.get("image_shape") or reference.image_shape))
    meta = _meta(cfg, manifest, reference)
    out_path, meta_path = run_dir / BANDS_NPZ, run_dir / BANDS_JSON
    if out_path.is_file() and meta_path.is_file() and read_json(meta_path) == meta:
        try:
            return load_npz(out_path)
        except NpzError:
            log.warning("%s is damaged; recomputing", out_path)
    device = resolve_device(cfg.metrics.feature_device)
    ref = reference_statistics(cfg, reference, cache_dir, device)
    run = run_moments(cfg, run_dir, manifest, device)
    mu, sigma = run["moments"].mean_cov()
    fwd_packets = packet_frechet(mu, sigma, ref["mu"], ref["sigma"], cfg.metrics.fid_method)
    bands_P = packet_bands(int(cfg.metrics.fwd_level))
    num_bands = 2 ** int(cfg.metrics.fwd_level)
    sensitivity = sensitivity_matrices(sigma, ref["sigma"], device)
    influence = run_influence(cfg, run_dir, manifest, mu, ref["mu"], sensitivity)
    result = {
        "fwd": np.asarray(fwd_packets.mean()),
        "fwd_packets": fwd_packets,
        "fwd_bands": band_means(fwd_packets, bands_P, num_bands),
        "influence_bands": band_means(influence, bands_P, num_bands),
        "influence_fwd": influence.mean(1),
        "psd": run["psd"],
        "ref_psd": np.asarray(ref["psd_mean"]),
        "labels": run["labels"],
    }
    atomic_write_npz(out_path, **result)
    atomic_write_json(meta_path, meta)
    return result


def fwd_of_run(cfg: Any, run_dir: Path, reference: Any, cache_dir: Path) -> dict[str, float]:
    """`{fwd: value}` (and `bands.npz` beside it) when `fwd` is in `metrics.metrics`, else {}."""
    if FWD not in cfg.metrics.metrics:
        return {}
    return {FWD: float(run_bands(cfg, Path(run_dir), reference, Path(cache_dir))["fwd"])}
