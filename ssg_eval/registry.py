"""Name -> code tables for models, logit processors and metrics.

Configs name registered keys; this module maps them to code. It must not import heavy modules
at import time (builders import lazily) and must not read configs itself. Adding a processor
touches exactly these places (tests/unit/test_registry_places.py counts them):

1. its module under `ssg_eval/guidance/` with `build_<name>(node, patch_nums)` and
   `describe_<name>(params)`;
2. one line in `PROCESSORS` below;
3. its schema dataclass in `ssg_eval.config` and the `GuidanceConfig` field of the same name;
4. one `conf/guidance/<name>.yaml` whose `order` lists it;
5. one line in `PROCESSOR_DISPLAY` below: its `describe_<name>` (the report's summary of it).

Adding a metric: its name in `ssg_eval.config.METRIC_NAMES` and one line in `METRICS` naming the
function that computes it (a name without a line is planned and refused by validation).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ssg_eval.errors import ConfigError

# key -> "module:attribute"; resolved on first use so that importing the registry stays cheap.
MODELS: dict[str, str] = {"var": "ssg_eval.models.load:build_model"}
# processor -> "module:builder"
PROCESSORS: dict[str, str] = {
    "cfg_ramp": "ssg_eval.guidance.cfg:build_cfg_ramp",
    "icg": "ssg_eval.guidance.family:build_icg",
    "autoguidance": "ssg_eval.guidance.family:build_autoguidance",
    "ssg": "ssg_eval.guidance.ssg:build_ssg",
}
# processor -> "module:function" turning its resolved section into the report's one-line summary
PROCESSOR_DISPLAY: dict[str, str] = {
    "cfg_ramp": "ssg_eval.guidance.cfg:describe_cfg_ramp",
    "icg": "ssg_eval.guidance.family:describe_icg",
    "autoguidance": "ssg_eval.guidance.family:describe_autoguidance",
    "ssg": "ssg_eval.guidance.ssg:describe_ssg",
}
# metric name (ssg_eval.config.METRIC_NAMES) -> "module:function" that computes it.
METRICS: dict[str, str] = {
    "fid": "ssg_eval.metrics.compute:compute_metrics",
    "sfid": "ssg_eval.metrics.compute:compute_metrics",
    "is": "ssg_eval.metrics.compute:compute_metrics",
    "precision": "ssg_eval.metrics.compute:compute_metrics",
    "recall": "ssg_eval.metrics.compute:compute_metrics",
    "fd_dinov2": "ssg_eval.stages.dinov2:fd_dinov2_of_run",
    "fwd": "ssg_eval.stages.spectral_bands:fwd_of_run",
    "kid": "ssg_eval.stages.feature_metrics:feature_metrics_of_run",
    "density": "ssg_eval.stages.feature_metrics:feature_metrics_of_run",
    "coverage": "ssg_eval.stages.feature_metrics:feature_metrics_of_run",
    "fd_inf": "ssg_eval.stages.feature_metrics:feature_metrics_of_run",
    "per_class": "ssg_eval.stages.feature_metrics:feature_metrics_of_run",
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
