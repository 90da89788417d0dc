"""ssg_eval: reference harness for Scaled Spatial Guidance on multi-scale VAR models."""

from __future__ import annotations

__version__ = "0.1.0"
