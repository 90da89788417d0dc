"""Metric-key constants shared by `metrics.json`, the report table and the registry.

This module owns the names only; it must not import anything heavy or compute values.
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

ALL_METRICS = (FID, SFID, IS, PRECISION, RECALL)  # requestable via metrics.metrics
OPTIONAL_METRICS = (FD_DINOV2, FWD)  # also requestable via metrics.metrics; need extra weights
