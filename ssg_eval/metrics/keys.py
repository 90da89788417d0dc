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

ALL_METRICS = (FID, SFID, IS, PRECISION, RECALL)  # requestable via metrics.metrics
