"""Where a run's files live: `<paths.results>/runs/<run_name>/...`, identical on every rank.

Pure path arithmetic from the config (no timestamps, nothing relative to the cwd after start-up);
this module must not read or write files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "FEATURES_CACHE",
    "FEATURES_JSON",
    "FEATURES_NPZ",
    "IDENTITY_JSON",
    "MANIFEST_JSON",
    "FEATURES_DINOV2_NPZ",
    "METRICS_JSON",
    "SAMPLES_SCAN",
    "feature_cache_path",
    "results_dir",
    "run_dir",
]

MANIFEST_JSON = "manifest.json"
IDENTITY_JSON = "identity.json"
FEATURES_NPZ = "features.npz"
FEATURES_JSON = "features.json"
FEATURES_CACHE = "features_cache"  # per-shard features keyed by shard and Inception sha256
FEATURES_DINOV2_NPZ = "features_dinov2.npz"  # FD-DINOv2 features of the run's N samples
METRICS_JSON = "metrics.json"
# The sample linter's image scan of samples.npz, made while exporting it (no read of its own).
SAMPLES_SCAN = "samples_scan.npz"


def results_dir(cfg: Any) -> Path:
    """`paths.results` resolved once against the launch directory."""
    return Path(cfg.paths.results).expanduser().resolve()


def run_dir(cfg: Any) -> Path:
    """`<paths.results>/runs/<run_name>`, identical on every rank (no timestamps)."""
    return results_dir(cfg) / "runs" / str(cfg.run_name)


def feature_cache_path(
    directory: Path,
    shard_name: str,
    shard_sha: str,
    weights_sha: str,
    batch: int,
    tag: str,
    device_key: str,
) -> Path:
    """`features_cache/<chunk>-<shard sha16>-<weights sha16>-b<batch>-<device>[-<tag>].npz`.

    The features of a shard are a pure function of its bytes, the network's weights, the
    forward batch, the device kind that ran the forward (`device_key`: `cpu`, or `cuda-` and the
    GPU model: float rounding differs between them) and the extraction path (`tag`: `fast` for
    Inception's fast path, empty for torch-fidelity's forward, `dinov2` for DINOv2), so the name
    is their key: features of one device kind are never merged with another's.
    """
    stem = shard_name.removesuffix(".npz")
    suffix = f"-{tag}" if tag else ""
    name = f"{stem}-{shard_sha[:16]}-{weights_sha[:16]}-b{batch}-{device_key}{suffix}.npz"
    return Path(directory) / FEATURES_CACHE / name
