"""Port of the class-conditional VAR transformer and its multi-scale VQVAE (networks only).

This package owns the networks and their checkpoint layout; it must not sample, guide or hold RNGs.
Builders live in `ssg_eval.models.load`, the checkpoint reader (strict loading, errors that
name the config key) in `ssg_eval.models.checkpoint`.
"""

from __future__ import annotations
