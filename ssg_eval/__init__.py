"""ssg_eval: reference harness for Scaled Spatial Guidance on multi-scale VAR models.

The public surface is re-exported lazily (importing the package stays cheap); everything else is
reached through its module path.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "ssg_eval.models.load",
    "sample_run": "ssg_eval.sampling.runner",
    "compute_metrics": "ssg_eval.metrics.compute",
    "render_report": "ssg_eval.report.render",
    "LogitProcessor": "ssg_eval.guidance.base",
    "StepContext": "ssg_eval.guidance.base",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ssg_eval' has no attribute {name!r}")
