"""VAR's classifier-free guidance ramp: the reference-guidance family with the null-class reference.

This module owns CFG's parameters (scale, schedule, window) and their mapping onto
`guidance.reference.ReferenceGuidance`; it must not truncate, sample, keep state between scales or
modify its inputs.
"""

from __future__ import annotations

from typing import Any

from ssg_eval.guidance.base import NULL_CLASS
from ssg_eval.guidance.family import BranchReference, ReferenceGuidance, ramp_weights


class CfgRamp(ReferenceGuidance):
    """Classifier-free guidance with VAR's linear ramp (docs/VAR.md, sampling).

    At scale si of K: ratio = si/(K−1) (0 when K = 1), t = scale·ratio (Python floats, ratio
    computed first, exactly as VAR's `autoregressive_infer_cfg`), and

        guided = (1 + t)·cond − t·uncond   (arithmetic=mix, the default).

    Convention: this is the "cond + t·(cond − uncond)" form. In the other common form,
    "uncond + s·(cond − uncond)", it is s = 1 + t; so t = 0 means no guidance (plain conditional
    logits) and VAR's README recipe (scale 1.5) ends at s = 2.5 on the last scale. With
    `schedule=constant`, t = scale at every scale, si = 0 included. `scale_indices` restricts CFG
    to a window (the ramp then runs over the window's scales).

    Where t == 0 (scale 0, or si = 0 of the ramp) the running logits are returned as they are:
    bit-identical to VAR's (1 + 0)·cond − 0·uncond for finite logits, and independent of uncond.
    The processor is stateless (state is None) but always reads the null-class branch.
    """

    def __init__(
        self,
        *,
        scale: float,
        schedule: str,
        num_scales: int,
        scale_indices: list[int] | None = None,
        arithmetic: str = "mix",
    ) -> None:
        """Validate the ramp parameters.

        Args:
            scale: CFG scale >= 0 (`guidance.cfg_ramp.scale`); 0 is an exact no-op.
            schedule: linear_ramp (VAR) | constant (`guidance.cfg_ramp.schedule`).
            num_scales: K, the number of scales (len(model.patch_nums)).
            scale_indices: 0-based scales where CFG acts; None = every scale.
            arithmetic: mix (VAR's bits) | delta.

        Raises:
            ConfigError: naming `guidance.cfg_ramp.scale`, `.schedule`, `.scale_indices` or
                `model.patch_nums`.
        """
        weights = ramp_weights(
            num_scales,
            key="guidance.cfg_ramp",
            scale=scale,
            schedule=schedule,
            scale_indices=scale_indices,
        )
        super().__init__(
            name="cfg_ramp",
            reference=BranchReference(NULL_CLASS),
            weights=weights,
            arithmetic=arithmetic,
        )
        self.scale = float(scale)
        self.schedule = schedule
        self.num_scales = int(num_scales)

    def ramp_value(self, scale_index: int) -> float:
        """t at 0-based scale `scale_index`, in VAR's order: ratio first, then times scale."""
        return self.weight(scale_index)


def build_cfg_ramp(cfg_ramp_cfg: Any, patch_nums: list[int]) -> CfgRamp:
    """Build `CfgRamp` from a `guidance.cfg_ramp` node (CfgRampConfig or DictConfig).

    Args:
        cfg_ramp_cfg: the `guidance.cfg_ramp` node.
        patch_nums: the model's scale sides; only their number K matters.

    Raises:
        ConfigError: invalid scale, schedule, window or arithmetic.
    """
    indices = cfg_ramp_cfg.scale_indices
    return CfgRamp(
        scale=cfg_ramp_cfg.scale,
        schedule=cfg_ramp_cfg.schedule,
        num_scales=len(patch_nums),
        scale_indices=None if indices is None else list(indices),
        arithmetic=cfg_ramp_cfg.arithmetic,
    )


def describe_cfg_ramp(params: dict[str, Any]) -> str:
    """The report's one-line summary of a run's resolved `guidance.cfg_ramp` section."""
    return f"cfg={params['scale']:g} ({params['schedule']})"
