"""FD-DINOv2: the Fréchet distance between DINOv2 CLS-token features of samples and reference.

`fd_dinov2` is pure (features in, float out); `fd_dinov2_of_run` is the metrics stage's edge that
reads a run's `features_dinov2.npz` and the cached reference features. The reference is the ADM
batch's own images (10,000 at 256 px), not ImageNet's training set, so values are comparable within
this harness, not with numbers computed against other reference sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.metrics.frechet import frechet_distance
from ssg_eval.metrics.keys import FD_DINOV2
from ssg_eval.metrics.stats import feature_statistics


def fd_dinov2(
    sample_features: np.ndarray, reference_features: np.ndarray, method: str = "eigh"
) -> float:
    """Fréchet distance between Gaussians fitted to two DINOv2 feature sets.

    Args:
        sample_features: (N, C) CLS-token features of the samples.
        reference_features: (M, C) features of the reference images (same network).
        method: `metrics.fid_method` (eigh | sqrtm), as for FID.

    Returns:
        ||mu_s - mu_r||^2 + Tr(S_s + S_r - 2 (S_s S_r)^(1/2)) as a Python float.
    """
    if sample_features.shape[1] != reference_features.shape[1]:
        raise ValueError(
            f"DINOv2 feature widths differ: samples {sample_features.shape}, reference "
            f"{reference_features.shape}; both must come from the same metrics.dinov2_arch"
        )
    mu_s, sigma_s = feature_statistics(sample_features)
    mu_r, sigma_r = feature_statistics(reference_features)
    return frechet_distance(mu_s, sigma_s, mu_r, sigma_r, method=method)


def dinov2_inputs(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """The run's DINOv2 feature meta when FD-DINOv2 is requested (keys the metrics cache)."""
    from ssg_eval.features.dinov2 import read_run_features

    if FD_DINOV2 not in cfg.metrics.metrics:
        return {}
    return {"dinov2_features_meta": read_run_features(run_dir)[1]}


def fd_dinov2_of_run(cfg: Any, run_dir: Path, reference: Any, cache_dir: Path) -> dict[str, float]:
    """`{fd_dinov2: value}` for one run when requested in `metrics.metrics`, else `{}`."""
    from ssg_eval.features.dinov2 import read_run_features, reference_run_features

    if FD_DINOV2 not in cfg.metrics.metrics:
        return {}
    samples, _ = read_run_features(run_dir)
    ref = reference_run_features(cfg, reference, cache_dir)
    return {FD_DINOV2: fd_dinov2(samples, ref, method=cfg.metrics.fid_method)}
