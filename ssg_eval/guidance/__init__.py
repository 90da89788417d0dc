"""Guidance processors and the builder that turns the `guidance` config group into their list.

This package owns the logit processors (the reference-guidance family: CFG ramp, ICG,
autoguidance, SSG with DSE); importing it stays light (the processor modules load on first build),
and it must not sample, truncate, run networks or touch files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssg_eval.errors import ConfigError
from ssg_eval.registry import PROCESSORS, lookup

if TYPE_CHECKING:
    from ssg_eval.guidance.base import LogitProcessor

__all__ = ["active_guidance", "build_processors", "check_guidance"]


def build_processors(guidance_cfg: Any, patch_nums: list[int]) -> list[LogitProcessor]:
    """Build the processors named in `guidance.order`, in that order.

    `guidance.order` is the only on/off switch: each name is looked up in
    `ssg_eval.registry.PROCESSORS` and built from its section `guidance.<name>`; sections whose
    name is not listed are ignored.

    Args:
        guidance_cfg: the `guidance` node (GuidanceConfig or DictConfig).
        patch_nums: the model's scale sides (`model.patch_nums`).

    Returns:
        The processors in application order (possibly empty: plain conditional sampling).

    Raises:
        ConfigError: an unknown or repeated name in `guidance.order`, a name without its
            `guidance.<name>` section, or any invalid processor parameter.
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
        processors.append(builder(sub_cfg, list(patch_nums)))
    return processors


def check_guidance(guidance_cfg: Any, model_cfg: Any) -> None:
    """Validate the `guidance` group against the model without building any network.

    Builds the processors (their builders hold every parameter rule) and checks the guide
    model of autoguidance: random guide weights only beside a random main model.

    Raises:
        ConfigError: naming the offending key.
    """
    build_processors(guidance_cfg, list(model_cfg.patch_nums))
    if "autoguidance" in list(guidance_cfg.order):
        guide = guidance_cfg.autoguidance.guide
        if guide.var_ckpt is None and model_cfg.var_ckpt is not None:
            raise ConfigError(
                "guidance.autoguidance.guide.var_ckpt=null (random weights) but model.var_ckpt is "
                "a checkpoint; set guidance.autoguidance.guide.var_ckpt to the guide's file"
            )
        if int(guide.depth) < 1:
            raise ConfigError(f"guidance.autoguidance.guide.depth={guide.depth} must be >= 1")


def active_guidance(guidance: Any) -> dict[str, dict[str, Any]]:
    """{name: parameters} of the processors in `guidance.order` (plain values, in order).

    Args:
        guidance: the `guidance` node or its resolved dict (e.g. from a manifest).
    """
    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        if OmegaConf.is_config(node):
            return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
        if hasattr(node, "__dataclass_fields__"):
            return OmegaConf.to_container(OmegaConf.structured(node), enum_to_str=True)
        return node

    get = guidance.get if isinstance(guidance, dict) else lambda k: getattr(guidance, k)
    return {str(name): plain(get(str(name))) for name in get("order")}
