"""Inception features for the ADM protocol: pool3 (2048), unbiased logits (1008), sFID tap (2023).

The network is torch-fidelity's `inception-v3-compat` port, never re-implemented here (the fast
path runs its layers in their order with BatchNorm folded, channels-last, after a bit-exact fused
resize); this package must not compute metrics or read run layouts (see `ssg_eval.stages.features`).
"""

from __future__ import annotations

FEATURE_KEYS = ("pool", "spatial", "logits")
FEATURE_DIMS = {"pool": 2048, "spatial": 2023, "logits": 1008}
