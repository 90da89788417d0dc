"""The FD-DINOv2 files of a run: `features_dinov2.npz`, the cached reference features, the metric.

The features stage writes a run's DINOv2 features here and the metrics stage reads them back; the
network and its preprocessing are `ssg_eval.features.dinov2`, the distance is
`ssg_eval.metrics.fd_dinov2`. This module holds the run-level file handling only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.features import dinov2 as network
from ssg_eval.features.dinov2 import INPUT_SIZE, dinov2_features
from ssg_eval.metrics.fd_dinov2 import fd_dinov2
from ssg_eval.metrics.keys import FD_DINOV2
from ssg_eval.runs.hashed import write_npz_sha256
from ssg_eval.runs.io import atomic_write_npz
from ssg_eval.runs.layout import FEATURES_DINOV2_NPZ
from ssg_eval.utils.dist import resolve_device
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger

__all__ = [
    "dinov2_inputs",
    "dinov2_meta",
    "fd_dinov2_of_run",
    "read_run_features",
    "write_run_features",
]

log = get_logger(__name__)

FEATURES_FILE = FEATURES_DINOV2_NPZ


def _meta(cfg: Any, weights_sha: str, extra: dict[str, Any]) -> dict:
    return {
        "dinov2_arch": str(cfg.metrics.dinov2_arch),
        "dinov2_sha256": weights_sha,
        "feature_batch_size": cfg.metrics.feature_batch_size,
        "input_size": INPUT_SIZE,
        **extra,
    }


def _read_meta(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"]))


def _write(path: Path, features: np.ndarray, meta: dict[str, Any]) -> Path:
    meta_text = np.array(json.dumps(meta, sort_keys=True))
    return atomic_write_npz(path, features=features, meta=meta_text)


def dinov2_meta(cfg: Any, nets: Any, samples: dict[str, Any]) -> dict[str, Any]:
    """What `features_dinov2.npz` is made of: weights, protocol and the samples' record.

    Args:
        cfg: the composed config.
        nets: the run's `FeatureNets` (weights sha256, forward batch).
        samples: the features stage's record of the samples (config hash, N, shards).
    """
    extra = {"sample_config_hash": samples["config_hash"], "num_samples": samples["num_samples"],
             "shards_sha256": samples["shards_sha256"]}  # fmt: skip
    return {**_meta(cfg, nets.weights_sha["dinov2"], extra), "feature_batch_size": nets.batch}


def write_run_features(run_dir: Path, features: np.ndarray, meta: dict[str, Any]) -> dict:
    """Write `<run_dir>/features_dinov2.npz` (features + meta) and return meta with its sha256."""
    meta_text = np.array(json.dumps(meta, sort_keys=True))
    sha = write_npz_sha256(run_dir / FEATURES_FILE, features=features, meta=meta_text)
    return {**meta, "sha256": sha}


def reference_run_features(cfg: Any, reference: Any, cache_dir: Path) -> np.ndarray:
    """DINOv2 features of the reference batch's images, cached per (file, weights, protocol)."""
    weights = cfg.metrics.dinov2_weights
    sha = sha256_file(Path(weights)) if weights and Path(weights).is_file() else "missing"
    meta = _meta(cfg, sha, {"reference_sha256": reference.sha256})
    path = Path(cache_dir) / f"{reference.sha256[:16]}_dinov2_{sha[:16]}.npz"
    if path.is_file() and _read_meta(path) == meta:
        with np.load(path, allow_pickle=False) as data:
            return data["features"]
    device = resolve_device(cfg.metrics.feature_device)
    model = network.build_dinov2(weights, device, arch=cfg.metrics.dinov2_arch)  # as patched
    batch = int(cfg.metrics.feature_batch_size)
    features = dinov2_features(reference.iter_images(batch), model, batch, device)
    _write(path, features, meta)
    return features


def read_run_features(run_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Features and meta of `<run_dir>/features_dinov2.npz`.

    Raises:
        FileNotFoundError: the features stage has not written them (with the fix).
    """
    path = run_dir / FEATURES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run the features stage with fd_dinov2 in metrics.metrics first"
        )
    with np.load(path, allow_pickle=False) as data:
        return data["features"], _read_meta(path)


def dinov2_inputs(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """The run's DINOv2 feature meta when FD-DINOv2 is requested (keys the metrics cache)."""
    if FD_DINOV2 not in cfg.metrics.metrics:
        return {}
    return {"dinov2_features_meta": read_run_features(run_dir)[1]}


def fd_dinov2_of_run(cfg: Any, run_dir: Path, reference: Any, cache_dir: Path) -> dict[str, float]:
    """`{fd_dinov2: value}` for one run when requested in `metrics.metrics`, else `{}`."""
    if FD_DINOV2 not in cfg.metrics.metrics:
        return {}
    samples, _ = read_run_features(run_dir)
    ref = reference_run_features(cfg, reference, cache_dir)
    return {FD_DINOV2: fd_dinov2(samples, ref, method=cfg.metrics.fid_method)}
