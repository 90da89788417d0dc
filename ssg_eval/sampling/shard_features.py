"""Per-shard feature files: the networks, their cache keys, one shard's extraction and its files.

Shared by the sampler (features while sampling: each rank extracts its own decoded chunks) and the
features stage (which extracts what is missing and merges), so both write the same file under the
same key (shard sha256, weights sha256, forward batch, path) with the same forward batches from the
shard's first image. This module must not decide which chunks run, nor read shards itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssg_eval.errors import NpzError
from ssg_eval.features.extract import (
    collect_features,
    device_batch_size,
    device_key,
    extract_chunk_features,
    launch_chunk_features,
)
from ssg_eval.runs.hashed import load_npz_verified, write_npz_sha256
from ssg_eval.runs.layout import feature_cache_path
from ssg_eval.utils.dist import resolve_device

__all__ = ["FeatureNets", "feature_nets"]

INCEPTION, DINOV2 = "inception", "dinov2"


@dataclass
class FeatureNets:
    """The feature networks of a config on one device, built on first use.

    Attributes:
        cfg: the composed config (`metrics.*`).
        device: where the forward passes run (`metrics.feature_device`).
        batch: the forward batch (`metrics.feature_batch_size`, or the device's choice).
        kinds: `inception`, plus `dinov2` when `fd_dinov2` is in `metrics.metrics`.
        weights_sha: sha256 of each kind's weights file.
        device_key: the device kind in the cache names (`features.extract.device_key`).
    """

    cfg: Any
    device: torch.device
    batch: int
    kinds: tuple[str, ...]
    weights_sha: dict[str, str]
    device_key: str
    _models: dict[str, Any] = field(default_factory=dict)

    def tag(self, kind: str) -> str:
        """The cache-name tag of a kind: Inception's path (`fast`, or none), or `dinov2`."""
        if kind == DINOV2:
            return DINOV2
        impl = str(self.cfg.metrics.inception_impl)
        return "" if impl == "torch_fidelity" else impl  # the extraction path changes rounding

    def paths(self, directory: Path, shard_name: str, shard_sha: str) -> dict[str, Path]:
        """The cache file of every kind for one shard."""
        return {
            kind: feature_cache_path(
                directory,
                shard_name,
                shard_sha,
                self.weights_sha[kind],
                self.batch,
                self.tag(kind),
                self.device_key,
            )
            for kind in self.kinds
        }

    def model(self, kind: str) -> Any:
        """The network of `kind` on `device` (built once)."""
        if kind not in self._models:
            metrics = self.cfg.metrics
            if kind == INCEPTION:
                from ssg_eval.features.inception import build_inception

                net = build_inception(metrics.inception_weights, self.device,
                                      str(metrics.inception_impl))  # fmt: skip
            else:
                from ssg_eval.features.dinov2 import build_dinov2

                net = build_dinov2(metrics.dinov2_weights, self.device, arch=metrics.dinov2_arch)
            self._models[kind] = net
        return self._models[kind]

    def extract(self, images_NHWC: np.ndarray | torch.Tensor, kinds=None) -> dict[str, dict]:
        """Features of one shard's images (host array or device tensor), per kind.

        Returns:
            `{inception: {pool, spatial, logits}, dinov2: {features}}` (the kinds asked for).
        """
        out: dict[str, dict[str, np.ndarray]] = {}
        for kind in kinds or self.kinds:
            if kind == INCEPTION:
                net = self.model(kind)
                out[kind] = extract_chunk_features(
                    images_NHWC, net, batch_size=self.batch, device=self.device
                )
            else:
                from ssg_eval.features.dinov2 import dinov2_features

                host = images_NHWC if isinstance(images_NHWC, np.ndarray) else (
                    images_NHWC.cpu().numpy())  # fmt: skip
                out[kind] = {"features": dinov2_features([host], self.model(kind), self.batch,
                                                         self.device)}  # fmt: skip
        return out

    def launch(self, images_NHWC: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Queue the Inception passes of a chunk already on `device` (no host sync)."""
        return launch_chunk_features(images_NHWC, self.model(INCEPTION), batch_size=self.batch,
                                     device=self.device)  # fmt: skip

    def finish(self, launched: list, images_NHWC: np.ndarray) -> dict[str, dict]:
        """`extract`'s result from `launch`'s outputs (DINOv2, host-side, runs here)."""
        out = {INCEPTION: collect_features(launched)}
        if DINOV2 in self.kinds:
            out.update(self.extract(images_NHWC, [DINOV2]))
        return out

    def write(self, paths: dict[str, Path], feats: dict[str, dict], labels: np.ndarray) -> None:
        """Write each kind's features of one shard (with its labels) to its cache file."""
        for kind, arrays in feats.items():
            write_npz_sha256(paths[kind], **arrays, labels=np.asarray(labels, np.int64))

    def load(self, paths: dict[str, Path]) -> dict[str, dict] | None:
        """Every kind's cached features of one shard, or None if any is missing or damaged."""
        out = {}
        for kind, path in paths.items():
            try:
                out[kind] = load_npz_verified(path, fix="it is recomputed")[0]
            except (FileNotFoundError, NpzError):
                return None
        return out


def feature_nets(cfg: Any, device: torch.device | None = None) -> FeatureNets:
    """The feature networks of `cfg` (weights hashed now, networks built on first use).

    Args:
        cfg: the composed config.
        device: override of `metrics.feature_device` (None: resolve it).

    Raises:
        FileNotFoundError: the Inception (or requested DINOv2) weights are missing.
    """
    from ssg_eval.features.inception import inception_weights_sha256
    from ssg_eval.metrics.keys import FD_DINOV2
    from ssg_eval.utils.hashing import sha256_file

    device = resolve_device(str(cfg.metrics.feature_device)) if device is None else device
    batch = cfg.metrics.feature_batch_size
    batch = device_batch_size(device) if batch is None else int(batch)
    shas = {INCEPTION: inception_weights_sha256(cfg.metrics.inception_weights)}
    if FD_DINOV2 in cfg.metrics.metrics:
        weights = cfg.metrics.dinov2_weights
        if not weights or not Path(str(weights)).is_file():
            raise FileNotFoundError(
                f"metrics.dinov2_weights={weights}: no such file; FD-DINOv2 needs DINOv2's "
                "weights (SSG_EVAL_DINOV2 / metrics.dinov2_weights), or drop fd_dinov2 from "
                "metrics.metrics"
            )
        shas[DINOV2] = sha256_file(Path(str(weights)))
    return FeatureNets(cfg, device, batch, tuple(shas), shas, device_key(device))
