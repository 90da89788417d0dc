"""Guidance processors and the builder that turns the `guidance` config group into their list.

This package owns the logit processors (CFG ramp, SSG with DSE); importing it stays light (the
processor modules load on first build), and it must not sample, truncate or touch files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssg_eval.config import ConfigError
from ssg_eval.registry import PROCESSORS, lookup

if TYPE_CHECKING:
    from ssg_eval.guidance.base import LogitProcessor

__all__ = ["build_processors"]


def build_processors(guidance_cfg: Any, patch_nums: list[int]) -> list[LogitProcessor]:
    """Build the enabled processors in `guidance.order`.

    Each name in `guidance.order` is looked up in `ssg_eval.registry.PROCESSORS`; its sub-config
    `guidance.<name>` is built when `enabled` is true and skipped otherwise.

    Args:
        guidance_cfg: the `guidance` node (GuidanceConfig or DictConfig).
        patch_nums: the model's scale sides (`model.patch_nums`).

    Returns:
        The processors in application order (possibly empty: plain conditional sampling).

    Raises:
        ConfigError: an unknown or repeated name in `guidance.order`, a name without its
            `guidance.<name>` section, an enabled processor missing from `guidance.order`, or
            any invalid processor parameter.
    """
    order = [str(name) for name in guidance_cfg.order]
    repeated = sorted({name for name in order if order.count(name) > 1})
    if repeated:
        raise ConfigError(f"guidance.order={order} lists {repeated} more than once")
    processors: list[LogitProcessor] = []
    for name in order:
        builder = lookup(PROCESSORS, name, "guidance.order")
        sub_cfg = getattr(guidance_cfg, name, None)
        if sub_cfg is None:
            raise ConfigError(f"guidance.order names {name!r} but guidance.{name} is not set")
        if sub_cfg.enabled:
            processors.append(builder(sub_cfg, list(patch_nums)))
    for name in sorted(PROCESSORS):
        sub_cfg = getattr(guidance_cfg, name, None)
        if sub_cfg is not None and sub_cfg.enabled and name not in order:
            raise ConfigError(
                f"guidance.{name}.enabled=true but {name!r} is not in guidance.order={order}; "
                f"add it to guidance.order or set guidance.{name}.enabled=false"
            )
    return processors
