"""KID, density, coverage, FD∞ and the per-class table from the features already extracted.

`feature_metrics` is pure (features in, values and a table out); the metrics stage's edge that
reads the reference's labels and writes `per_class.csv` is `ssg_eval.stages.feature_metrics`.
Nothing here runs Inception or touches files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ssg_eval.metrics.keys import (
    COVERAGE,
    DENSITY,
    FD_INF,
    FD_INF_ERR,
    KID,
    KID_STD,
    PER_CLASS,
)
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)


def _kid(sample: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    from ssg_eval.metrics.kid import KID_SUBSET_SIZE, kid

    size = min(KID_SUBSET_SIZE, len(sample), len(real))
    if size < KID_SUBSET_SIZE:
        log.warning(
            "KID subsets of %d rows (fewer than %d samples or references)", size, KID_SUBSET_SIZE
        )
    mean, std = kid(sample, real, subset_size=size)
    return {KID: mean, KID_STD: std, "kid_subset_size": size}


def _fd_inf(sample: np.ndarray, reference: Any, real: np.ndarray, method: str) -> dict[str, Any]:
    from ssg_eval.metrics.fd_inf import fd_infinity
    from ssg_eval.metrics.stats import feature_statistics

    mu, sigma = (
        (reference.mu, reference.sigma) if reference.mu is not None else feature_statistics(real)
    )
    fit = fd_infinity(sample, mu, sigma, method=method)
    return {
        FD_INF: fit.value,
        FD_INF_ERR: fit.stderr,
        "fd_inf_fit": {
            "sizes": list(fit.sizes),
            "fids": list(fit.fids),
            "slope": fit.slope,
            "fit_stderr": fit.fit_stderr,
            "sampling_std": fit.sampling_std,
        },
    }


def feature_metrics(
    metrics: Sequence[str],
    sample_features: dict[str, np.ndarray],
    labels: np.ndarray | None,
    reference: Any,
    reference_features: dict[str, np.ndarray],
    *,
    reference_labels: np.ndarray | None = None,
    fid_method: str = "eigh",
    pr_k: int = 3,
    pr_block_size: int = 10_000,
    pr_distance_dtype: str = "float16",
    pr_device: str = "cpu",
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The requested names of `FEATURE_METRICS` on pool features (others are ignored).

    Args:
        metrics: `metrics.metrics`.
        sample_features: `pool` (N, 2048) in sample order. labels: (N,) classes (per_class).
        reference: `load_reference` result (stored `mu`/`sigma` anchor FD∞ like FID).
        reference_features: `pool` (M, 2048) of the reference images (KID, density, coverage).
        reference_labels: (M,) classes of the reference images, when it has them (intra-class FID).
        fid_method, pr_k, pr_block_size, pr_distance_dtype, pr_device: as for FID and precision.

    Returns:
        `(values, per_class table or None)`; `values[per_class]` is the table's summary.
    """
    from ssg_eval.metrics.density_coverage import density_coverage

    sample, real = sample_features["pool"], reference_features["pool"]
    values: dict[str, Any] = {}
    if KID in metrics:
        values.update(_kid(sample, real))
    if DENSITY in metrics or COVERAGE in metrics:
        density, coverage = density_coverage(real, sample)
        values.update({k: v for k, v in ((DENSITY, density), (COVERAGE, coverage)) if k in metrics})
    if FD_INF in metrics:
        values.update(_fd_inf(sample, reference, real, fid_method))
    table = None
    if PER_CLASS in metrics:
        from ssg_eval.metrics.per_class import per_class_summary, per_class_table
        from ssg_eval.metrics.precision_recall import precision_membership

        if labels is None:
            raise ValueError("per_class needs the samples' class labels (features.npz `labels`)")
        member = precision_membership(
            real, sample, pr_k, pr_block_size, pr_distance_dtype, pr_device
        )
        table = per_class_table(labels, member, sample, real, reference_labels)
        values[PER_CLASS] = per_class_summary(table)
    return values, table
