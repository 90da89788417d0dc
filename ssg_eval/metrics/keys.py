"""Metric-key constants shared by `metrics.json`, the report table and the registry.

This module owns the key strings only, derived from the one list of metric names
(`ssg_eval.config.MetricName`); it must not import anything heavy or compute values.
"""

from __future__ import annotations

from ssg_eval.config import MetricName

FID = MetricName.fid.value
SFID = MetricName.sfid.value
IS = MetricName["is"].value
IS_STD = "is_std"  # written beside `is`, never requested on its own
PRECISION = MetricName.precision.value
RECALL = MetricName.recall.value

FD_DINOV2 = MetricName.fd_dinov2.value  # Fréchet distance in DINOv2 space (optional, own weights)
FWD = MetricName.fwd.value  # Fréchet Wavelet Distance, mean over packets (per-band values beside)

# Beyond the ADM protocol, from the Inception features already extracted (no second pass).
KID = MetricName.kid.value  # kernel Inception distance, torch-fidelity's definition
KID_STD = "kid_std"  # its std over the subsets (written beside `kid`)
DENSITY = MetricName.density.value  # Naeem et al. 2020, k = 5
COVERAGE = MetricName.coverage.value  # Naeem et al. 2020, k = 5
FD_INF = MetricName.fd_inf.value  # FID extrapolated to infinitely many samples (Chong & Forsyth)
FD_INF_ERR = "fd_inf_err"  # standard error of that intercept (written beside `fd_inf`)
PER_CLASS = MetricName.per_class.value  # per-class FID / precision table (per_class.csv)

ALL_METRICS = (FID, SFID, IS, PRECISION, RECALL)  # the ADM protocol, computed by compute_metrics
FEATURE_METRICS = (KID, DENSITY, COVERAGE, FD_INF, PER_CLASS)  # from the same Inception features
