"""The reference-logit guidance family: ℓ̃_k = ℓ_k + w_k·(ℓ_k − ℓ_ref,k), one processor.

This module owns the family's update, its per-scale weights (windows, ramp schedule) and the
references read from the sampler's extra forward branches (null class, random class, guide model);
it must not run networks, draw random numbers or modify its inputs. The DSE prior reference (SSG)
lives in `guidance.ssg`; see docs/GUIDANCE.md for the family and the cost of each reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ssg_eval.config import Arithmetic, LogitSpace, RampSchedule, parse_choice
from ssg_eval.errors import ConfigError
from ssg_eval.guidance.base import GUIDE_MODEL, NULL_CLASS, RANDOM_CLASS, StepContext

__all__ = [
    "BranchReference",
    "Reference",
    "ReferenceGuidance",
    "check_weight",
    "ramp_weights",
    "window",
]


def check_weight(key: str, value: Any) -> float:
    """`value` as a finite float >= 0, or a ConfigError naming `key` (0 is the no-op)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number >= 0 (0 disables it)")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key}={value!r} must be a finite number >= 0 (0 disables it)")
    return float(value)


def window(key: str, num_scales: int, scale_indices: Any, default: range) -> list[int]:
    """The sorted, distinct 0-based scales a term acts on (`scale_indices`, null = `default`)."""
    if scale_indices is None:
        return list(default)
    requested = [int(s) for s in scale_indices]
    bad = [s for s in requested if not 0 <= s < num_scales]
    if bad:
        raise ConfigError(f"{key}={requested} has {bad} outside [0, {num_scales - 1}]")
    return sorted(set(requested))


def ramp_weights(
    num_scales: int, *, key: str, scale: Any, schedule: Any, scale_indices: Any
) -> tuple[float, ...]:
    """w_k at every scale: `constant` = scale, `linear_ramp` = scale·j/(n−1) (0.0 off the window).

    j is the position of the scale among the n scales of the window (every scale by default), so
    with the default window the ramp is VAR's t = cfg·(si/(K−1)), computed in that order (ratio
    first, then times the scale) and therefore bit-identical to it; n = 1 gives 0.0.

    Raises:
        ConfigError: naming `<key>.scale`, `<key>.schedule` or `<key>.scale_indices`.
    """
    if num_scales < 1:
        raise ConfigError(f"model.patch_nums has {num_scales} scales; need at least 1")
    value = check_weight(f"{key}.scale", scale)
    schedule = parse_choice(f"{key}.schedule", schedule, RampSchedule)
    active = window(f"{key}.scale_indices", num_scales, scale_indices, range(num_scales))
    weights = [0.0] * num_scales
    n = len(active)
    for j, si in enumerate(active):
        if schedule == RampSchedule.constant:
            weights[si] = value
        else:
            weights[si] = value * (j / (n - 1)) if n > 1 else 0.0
    return tuple(weights)


class Reference(Protocol):
    """Where ℓ_ref comes from; state carried between scales, as for processors."""

    branch: str | None  # the sampler's extra forward branch it reads (None: no forward pass)

    def init_state(self, batch_size: int) -> object: ...

    def check(self, logits_BlV: Tensor, ctx: StepContext, state: object, weight: float) -> None: ...

    def reference(self, logits_BlV: Tensor, ctx: StepContext, state: object) -> Tensor: ...

    def next_state(
        self, pre_BlV: Tensor, post_BlV: Tensor, ctx: StepContext, state: object
    ) -> object: ...


def to_space(logits_BlV: Tensor, logit_space: LogitSpace) -> Tensor:
    """The logits as given (raw) or log-softmaxed over V (a new tensor)."""
    if logit_space == LogitSpace.log_softmax:
        return torch.log_softmax(logits_BlV, dim=-1)
    return logits_BlV


@dataclass(frozen=True)
class BranchReference:
    """ℓ_ref = this scale's logits of an extra forward branch of the sampler (no state).

    null_class: the main model with the null label (CFG); random_class: the main model with a
    random label per sample (ICG); guide_model: the guide network with the sample's label, fed
    the same tokens (autoguidance).
    """

    branch: str
    logit_space: LogitSpace = LogitSpace.raw

    def init_state(self, batch_size: int) -> None:
        return None

    def check(self, logits_BlV: Tensor, ctx: StepContext, state: None, weight: float) -> None:
        return None

    def reference(self, logits_BlV: Tensor, ctx: StepContext, state: None) -> Tensor:
        if self.branch == NULL_CLASS:
            ref_BlV, name = ctx.logits_uncond_BlV, "ctx.logits_uncond_BlV"
        else:
            ref_BlV, name = (
                ctx.branch_logits.get(self.branch),
                f"ctx.branch_logits[{self.branch!r}]",
            )
        if ref_BlV is None or ref_BlV.shape != logits_BlV.shape:
            got = None if ref_BlV is None else tuple(ref_BlV.shape)
            shape = tuple(logits_BlV.shape)
            raise ValueError(f"reference {self.branch} needs {name} of shape {shape}, got {got}")
        return to_space(ref_BlV, self.logit_space)

    def next_state(self, pre_BlV: Tensor, post_BlV: Tensor, ctx: StepContext, state: None) -> None:
        return None


class ReferenceGuidance:
    """ℓ̃_k = ℓ_k + w_k·(ℓ_k − ℓ_ref,k): one processor for CFG, ICG, autoguidance and SSG.

    ℓ_k are the running logits (optionally log-softmaxed, `logit_space`), ℓ_ref,k comes from the
    `reference`, w_k from the precomputed per-scale `weights` (0.0 off the window). Where w_k = 0
    the input itself is returned (a bit-exact no-op, the reference is not even read). Two float
    evaluation orders of the same formula (`arithmetic`):

    - delta: ℓ + w·(ℓ − ℓ_ref). A reference equal to ℓ gives ℓ bit for bit (ℓ − ℓ = 0).
    - mix: (1 + w)·ℓ − w·ℓ_ref. VAR's CFG order; the official samples need it bit for bit.

    The reference's state is carried between scales (SSG's previous-scale prior) and recorded at
    every scale, w_k = 0 included. `branches` names the extra forward branch the sampler must run
    (none for the DSE prior).
    """

    def __init__(
        self,
        *,
        name: str,
        reference: Reference,
        weights: tuple[float, ...],
        arithmetic: Any = Arithmetic.delta,
        logit_space: Any = LogitSpace.raw,
        branch_wise: bool = False,
    ) -> None:
        self.name = name
        self.reference = reference
        self.weights = tuple(float(w) for w in weights)
        self.arithmetic = parse_choice(f"guidance.{name}.arithmetic", arithmetic, Arithmetic)
        self.logit_space = parse_choice(f"guidance.{name}.logit_space", logit_space, LogitSpace)
        self.branch_wise = bool(branch_wise)
        self.branches = () if reference.branch is None else (reference.branch,)

    def weight(self, scale_index: int) -> float:
        """w_k at 0-based scale `scale_index`."""
        return self.weights[scale_index]

    def init_state(self, batch_size: int) -> object:
        """The reference's state before scale 0."""
        return self.reference.init_state(batch_size)

    def __call__(
        self, logits_BlV: Tensor, ctx: StepContext, state: object
    ) -> tuple[Tensor, object]:
        """Apply the term at scale `ctx.scale_index` and record the reference's next state.

        Args:
            logits_BlV: (B, l, V) running logits (one branch when `branch_wise`); not modified.
            ctx: this scale's context; the reference reads its branch from it.
            state: what this processor returned at the previous scale.

        Returns:
            (guided_BlV, next_state): (B, l, V) in the input dtype (the input itself where
            w_k = 0), and the reference's state for the next scale.

        Raises:
            ValueError: `ctx` does not match the scales this processor was built for, or the
                reference's branch or state is missing or of another shape.
        """
        if ctx.num_scales != len(self.weights):
            raise ValueError(
                f"guidance.{self.name} built for {len(self.weights)} scales (model.patch_nums) "
                f"got ctx.num_scales={ctx.num_scales}"
            )
        w = self.weights[ctx.scale_index]
        self.reference.check(logits_BlV, ctx, state, w)
        if w == 0.0:
            guided_BlV = logits_BlV
        else:
            cur_BlV = to_space(logits_BlV, self.logit_space)
            ref_BlV = self.reference.reference(cur_BlV, ctx, state)
            if self.arithmetic == Arithmetic.mix:
                guided_BlV = (1 + w) * cur_BlV - w * ref_BlV
            else:
                guided_BlV = cur_BlV + w * (cur_BlV - ref_BlV)
        return guided_BlV, self.reference.next_state(logits_BlV, guided_BlV, ctx, state)


def _ramp_term(name: str, node: Any, patch_nums: list[int], branch: str) -> dict[str, Any]:
    key = f"guidance.{name}"
    return dict(
        name=name,
        reference=BranchReference(branch),
        weights=ramp_weights(
            len(patch_nums),
            key=key,
            scale=node.scale,
            schedule=node.schedule,
            scale_indices=None if node.scale_indices is None else list(node.scale_indices),
        ),
        arithmetic=parse_choice(f"{key}.arithmetic", node.arithmetic, Arithmetic),
    )


class Icg(ReferenceGuidance):
    """Independent condition guidance: ℓ_ref = the main model's logits for a random class.

    The random label of each sample is a pure function of its index and the run's seed
    (`SamplePlan.reference_labels`), so it does not depend on batch size or world size.
    """


class Autoguidance(ReferenceGuidance):
    """Autoguidance: ℓ_ref = a guide model's logits (same label, same tokens, own KV cache)."""


def build_icg(icg_cfg: Any, patch_nums: list[int]) -> Icg:
    """Build `Icg` from a `guidance.icg` node (IcgConfig or DictConfig).

    Raises:
        ConfigError: invalid scale, schedule, window or arithmetic (names the key).
    """
    return Icg(**_ramp_term("icg", icg_cfg, patch_nums, RANDOM_CLASS))


def build_autoguidance(autoguidance_cfg: Any, patch_nums: list[int]) -> Autoguidance:
    """Build `Autoguidance` from a `guidance.autoguidance` node; the guide network is built by
    `ssg_eval.models.load.build_guide` and handed to the sampler, not to the processor.

    Raises:
        ConfigError: invalid scale, schedule, window or arithmetic (names the key).
    """
    return Autoguidance(**_ramp_term("autoguidance", autoguidance_cfg, patch_nums, GUIDE_MODEL))


def describe_icg(params: dict[str, Any]) -> str:
    """The report's one-line summary of a run's resolved `guidance.icg` section."""
    return f"icg={params['scale']:g} ({params['schedule']})"


def describe_autoguidance(params: dict[str, Any]) -> str:
    """The report's one-line summary of a run's resolved `guidance.autoguidance` section."""
    return f"autoguidance={params['scale']:g} ({params['schedule']})"
