"""Metric-key constants shared by `metrics.json`, the report table and the registry.

This module owns the names only; it must not import anything heavy or compute values.
`METRIC_NAMES` is the one list of names `metrics.metrics` accepts (a config enum is built from it).
"""

from __future__ import annotations

FID = "fid"
SFID = "sfid"
IS = "is"
IS_STD = "is_std"
PRECISION = "precision"
RECALL = "recall"

FD_DINOV2 = "fd_dinov2"  # Fréchet distance in DINOv2 feature space (optional, own weights)
FWD = "fwd"  # Fréchet Wavelet Distance, mean over packets (optional; per-band values beside it)

# Beyond the ADM protocol, from the Inception features already extracted (no second pass).
KID = "kid"  # kernel Inception distance, torch-fidelity's definition (mean over subsets)
KID_STD = "kid_std"  # its std over the subsets
DENSITY = "density"  # Naeem et al. 2020, k = 5
COVERAGE = "coverage"  # Naeem et al. 2020, k = 5
FD_INF = "fd_inf"  # FID extrapolated to infinitely many samples (Chong & Forsyth 2020)
FD_INF_ERR = "fd_inf_err"  # standard error of that intercept
PER_CLASS = "per_class"  # per-class FID / precision table (per_class.csv) + summary

ALL_METRICS = (FID, SFID, IS, PRECISION, RECALL)  # the ADM protocol's five
OPTIONAL_METRICS = (
    FD_DINOV2,
    FWD,
)  # requestable; computed from their own features, not Inception's
FEATURE_METRICS = (KID, DENSITY, COVERAGE, FD_INF, PER_CLASS)  # from the same Inception features
# Every name metrics.metrics accepts, in display order (build config enums from this tuple).
METRIC_NAMES = (*ALL_METRICS, *OPTIONAL_METRICS, *FEATURE_METRICS)
