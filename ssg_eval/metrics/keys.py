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

ALL_METRICS = (FID, SFID, IS, PRECISION, RECALL)  # the ADM protocol, computed by compute_metrics
