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
    "METRICS_JSON",
    "results_dir",
    "run_dir",
]

MANIFEST_JSON = "manifest.json"
IDENTITY_JSON = "identity.json"
FEATURES_NPZ = "features.npz"
FEATURES_JSON = "features.json"
FEATURES_CACHE = "features_cache"  # per-shard features keyed by shard and Inception sha256
METRICS_JSON = "metrics.json"


def results_dir(cfg: Any) -> Path:
    """`paths.results` resolved once against the launch directory."""
    return Path(cfg.paths.results).expanduser().resolve()


def run_dir(cfg: Any) -> Path:
    """`<paths.results>/runs/<run_name>`, identical on every rank (no timestamps)."""
    return results_dir(cfg) / "runs" / str(cfg.run_name)
