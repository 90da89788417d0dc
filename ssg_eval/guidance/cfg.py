"""VAR's classifier-free guidance ramp as a logit processor: (1 + t)·cond − t·uncond.

This module owns the CFG mix and its per-scale strength t; it must not truncate, sample, keep
state between scales or modify its inputs.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ssg_eval.config import ConfigError, require_choice
from ssg_eval.guidance.base import StepContext

SCHEDULES = ("linear_ramp", "constant")


class CfgRamp:
    """Classifier-free guidance with VAR's linear ramp (docs/VAR.md, official sampler).

    At scale si of K: ratio = si/(K−1) (0 when K = 1), t = scale·ratio (Python floats, ratio
    computed first, exactly as VAR's `autoregressive_infer_cfg`), and

        guided = (1 + t)·cond − t·uncond.

    Convention: this is the "cond + t·(cond − uncond)" form. In the other common form,
    "uncond + s·(cond − uncond)", it is s = 1 + t; so t = 0 means no guidance (plain conditional
    logits) and VAR's README recipe (scale 1.5) ends at s = 2.5 on the last scale. With
    `schedule=constant`, t = scale at every scale, si = 0 included.

    Where t == 0 (scale 0, or si = 0 of the ramp) the running logits are returned as they are:
    bit-identical to VAR's (1 + 0)·cond − 0·uncond for finite logits, and independent of uncond.
    The processor is stateless (state is None) but `needs_uncond` is always True.
    """

    needs_uncond = True
    branch_wise = False

    def __init__(self, *, scale: float, schedule: str, num_scales: int) -> None:
        """Validate the ramp parameters.

        Args:
            scale: CFG scale >= 0 (`guidance.cfg_ramp.scale`); 0 is an exact no-op.
            schedule: linear_ramp (VAR) | constant (`guidance.cfg_ramp.schedule`).
            num_scales: K, the number of scales (len(model.patch_nums)).

        Raises:
            ConfigError: naming `guidance.cfg_ramp.scale`, `.schedule` or `model.patch_nums`.
        """
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ConfigError(f"guidance.cfg_ramp.scale={scale!r} must be a number >= 0")
        if not (math.isfinite(scale) and scale >= 0):
            raise ConfigError(
                f"guidance.cfg_ramp.scale={scale!r} must be a finite number >= 0 "
                "(0 disables CFG; VAR's recipe uses 1.5)"
            )
        require_choice("guidance.cfg_ramp.schedule", schedule, SCHEDULES)
        if num_scales < 1:
            raise ConfigError(f"model.patch_nums has {num_scales} scales; need at least 1")
        self.scale = float(scale)
        self.schedule = schedule
        self.num_scales = int(num_scales)

    def ramp_value(self, scale_index: int) -> float:
        """t at 0-based scale `scale_index`, in VAR's order: ratio first, then times scale."""
        if self.schedule == "constant":
            return self.scale
        ratio = scale_index / (self.num_scales - 1) if self.num_scales > 1 else 0.0
        return self.scale * ratio

    def init_state(self, batch_size: int) -> None:
        """CFG carries nothing between scales."""
        return None

    def __call__(self, logits_BlV: Tensor, ctx: StepContext, state: None) -> tuple[Tensor, None]:
        """Mix the running (conditional) logits with the unconditional ones.

        Args:
            logits_BlV: (B, l, V) running logits, used as `cond` (processors listed before CFG
                may already have edited them); not modified.
            ctx: this scale's context; `logits_uncond_BlV` (B, l, V) is required when t != 0.
            state: unused (None).

        Returns:
            (guided_BlV, None): (B, l, V) in the input dtype; the input itself when t == 0.

        Raises:
            ValueError: `ctx.num_scales` differs from the K this processor was built for, or the
                unconditional logits are missing or of another shape.
        """
        if ctx.num_scales != self.num_scales:
            raise ValueError(
                f"CfgRamp built for {self.num_scales} scales got ctx.num_scales={ctx.num_scales}"
            )
        t = self.ramp_value(ctx.scale_index)
        if t == 0.0:
            return logits_BlV, None
        uncond_BlV = ctx.logits_uncond_BlV
        if uncond_BlV is None or uncond_BlV.shape != logits_BlV.shape:
            got = None if uncond_BlV is None else tuple(uncond_BlV.shape)
            raise ValueError(
                f"CfgRamp needs ctx.logits_uncond_BlV of shape {tuple(logits_BlV.shape)}, got {got}"
            )
        return (1 + t) * logits_BlV - t * uncond_BlV, None


def build_cfg_ramp(cfg_ramp_cfg: Any, patch_nums: list[int]) -> CfgRamp:
    """Build `CfgRamp` from a `guidance.cfg_ramp` node (CfgRampConfig or DictConfig).

    Args:
        cfg_ramp_cfg: the `guidance.cfg_ramp` node; `enabled` is not read here.
        patch_nums: the model's scale sides; only their number K matters.

    Raises:
        ConfigError: invalid scale or schedule.
    """
    return CfgRamp(
        scale=cfg_ramp_cfg.scale, schedule=cfg_ramp_cfg.schedule, num_scales=len(patch_nums)
    )
