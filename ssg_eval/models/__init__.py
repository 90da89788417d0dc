"""Port of the class-conditional VAR transformer and its multi-scale VQVAE (networks only).

This package owns the networks and their checkpoint layout; it must not sample, guide or hold RNGs.
Builders and checkpoint loading live in `ssg_eval.models.load`.
"""

from __future__ import annotations
