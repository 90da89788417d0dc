"""FD-DINOv2: the Fréchet distance between DINOv2 CLS-token features of samples and reference.

`fd_dinov2` is pure (features in, float out); the run-level files (`features_dinov2.npz`, the cached
reference features) are the stages' business (`ssg_eval.stages.dinov2`). The reference is the ADM
batch's own images (10,000 at 256 px), not ImageNet's training set, so values are comparable within
this harness, not with numbers computed against other reference sets.
"""

from __future__ import annotations

import numpy as np

from ssg_eval.metrics.frechet import frechet_distance
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
