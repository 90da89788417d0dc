"""Name -> builder tables for models, logit processors and metrics.

Configs name registered keys; this module maps them to code. It must not import heavy modules
at import time (builders import lazily) and must not read configs itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ssg_eval.config import ConfigError

# key -> "module:attribute"; resolved on first use so that importing the registry stays cheap.
MODELS: dict[str, str] = {"var": "ssg_eval.models.load:build_model"}
PROCESSORS: dict[str, str] = {
    "cfg_ramp": "ssg_eval.guidance.cfg:build_cfg_ramp",
    "ssg": "ssg_eval.guidance.ssg:build_ssg",
}
METRICS: dict[str, str] = {
    "fid": "ssg_eval.metrics.compute:fid_from_stats",
    "sfid": "ssg_eval.metrics.compute:sfid_from_stats",
    "is": "ssg_eval.metrics.inception_score:inception_score",
    "precision": "ssg_eval.metrics.precision_recall:precision_recall",
    "recall": "ssg_eval.metrics.precision_recall:precision_recall",
}


def lookup(table: dict[str, str], name: str, key: str) -> Callable[..., Any]:
    """Return the builder registered as `name` in `table`.

    Raises:
        ConfigError: `name` is unknown; the message lists the valid names and the config key.
    """
    if name not in table:
        raise ConfigError(f"{key}={name!r} is not registered; valid names: {sorted(table)}")
    module_name, attr = table[name].split(":")
    return getattr(importlib.import_module(module_name), attr)
