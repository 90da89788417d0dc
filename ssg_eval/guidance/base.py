"""The logit-processor protocol and the per-scale context the sampler hands to every processor.

This module owns the guidance seam only; it must not hold any guidance math or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor


@dataclass(frozen=True)
class StepContext:
    """What a processor may read at one scale (nothing here may be modified).

    Attributes:
        scale_index: 0-based scale si.
        num_scales: K.
        patch_num: side of this scale's token grid (l = patch_num**2).
        prev_patch_num: side of the previous grid, None at si = 0.
        logits_cond_BlV: raw conditional logits (B, l, V) float32.
        logits_uncond_BlV: raw unconditional logits (B, l, V), or None when no processor
            needs the unconditional branch.
    """

    scale_index: int
    num_scales: int
    patch_num: int
    prev_patch_num: int | None
    logits_cond_BlV: Tensor
    logits_uncond_BlV: Tensor | None


@runtime_checkable
class LogitProcessor(Protocol):
    """A pure per-scale edit of the logits.

    Contract (tested for every registered processor):
    - never modifies `logits_BlV`, `ctx` or its own attributes; carried values go into `state`;
    - draws no random numbers;
    - shape and dtype are preserved;
    - its neutral setting is a bit-exact identity.

    `branch_wise` processors run before any branch-mixing processor (CFG), once on the
    conditional and once on the unconditional logits, each branch with its own state; the sampler
    then rebuilds `ctx` from the edited branches. All other processors run in listed order on the
    running (B, l, V) logits.
    """

    needs_uncond: bool
    branch_wise: bool

    def init_state(self, batch_size: int) -> object: ...

    def __call__(
        self, logits_BlV: Tensor, ctx: StepContext, state: object
    ) -> tuple[Tensor, object]: ...
