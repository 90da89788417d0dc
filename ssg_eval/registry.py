"""Name -> builder tables for models and logit processors.

Configs name registered keys; this module maps them to code. It must not import heavy modules
at import time (builders import lazily) and must not read configs itself. Adding a processor is
one module, one line in `PROCESSORS`, its schema in `ssg_eval.config` and one conf/guidance file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ssg_eval.errors import ConfigError

# key -> "module:attribute"; resolved on first use so that importing the registry stays cheap.
MODELS: dict[str, str] = {"var": "ssg_eval.models.load:build_model"}
PROCESSORS: dict[str, str] = {
    "cfg_ramp": "ssg_eval.guidance.cfg:build_cfg_ramp",
    "icg": "ssg_eval.guidance.family:build_icg",
    "autoguidance": "ssg_eval.guidance.family:build_autoguidance",
    "ssg": "ssg_eval.guidance.ssg:build_ssg",
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
