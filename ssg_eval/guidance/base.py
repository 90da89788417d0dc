"""The logit-processor protocol and the per-scale context the sampler hands to every processor.

This module owns the guidance seam only; it must not hold any guidance math or randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

# The extra forward branches a processor may ask the sampler for (`LogitProcessor.branches`).
NULL_CLASS = "null_class"  # the main model with the null label (CFG's unconditional rows)
RANDOM_CLASS = "random_class"  # the main model with a random label per sample (ICG)
GUIDE_MODEL = "guide_model"  # the guide network with the sample's label (autoguidance)
BRANCHES = (NULL_CLASS, RANDOM_CLASS, GUIDE_MODEL)


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
        branch_logits: (B, l, V) logits of the other extra branches that some processor asked
            for, keyed by branch name (random_class, guide_model); empty otherwise.
    """

    scale_index: int
    num_scales: int
    patch_num: int
    prev_patch_num: int | None
    logits_cond_BlV: Tensor
    logits_uncond_BlV: Tensor | None
    branch_logits: Mapping[str, Tensor] = field(default_factory=dict)


@runtime_checkable
class LogitProcessor(Protocol):
    """A pure per-scale edit of the logits.

    Contract (tested for every registered processor):
    - never modifies `logits_BlV`, `ctx` or its own attributes; carried values go into `state`;
    - draws no random numbers;
    - shape and dtype are preserved;
    - its neutral setting is a bit-exact identity.

    `branch_wise` processors run before any branch-mixing processor (CFG), once on the
    conditional logits and once on every extra branch, each branch with its own state; the
    sampler then rebuilds `ctx` from the edited branches. All other processors run in listed
    order on the running (B, l, V) logits.

    `branches` names the extra forward branches it reads (a subset of `BRANCHES`); the sampler
    runs, and pays for, exactly those (the null class is CFG's unconditional branch).
    """

    branch_wise: bool
    branches: tuple[str, ...]

    def init_state(self, batch_size: int) -> object: ...

    def __call__(
        self, logits_BlV: Tensor, ctx: StepContext, state: object
    ) -> tuple[Tensor, object]: ...
