"""SSG (Scaled Spatial Guidance): the reference-guidance family with the DSE prior as reference.

ℓ̃_k = ℓ_k + β_k·(ℓ_k − DSE(ℓ_{k−1})). This module owns the DSE-prior reference, SSG's β schedule and
every open-question switch of docs/METHOD.md; it must not modify its inputs or attributes, draw
random numbers, or mix CFG branches itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ssg_eval.config import (
    Arithmetic,
    BandFusion,
    BetaSchedule,
    CoarseBlockScale,
    DctNorm,
    Interpolation,
    LogitSpace,
    Placement,
    PriorMode,
    PriorSource,
    parse_choice,
)
from ssg_eval.errors import ConfigError
from ssg_eval.guidance.base import StepContext
from ssg_eval.guidance.dse import dse_upsample, interpolate_prior
from ssg_eval.guidance.family import ReferenceGuidance, check_weight, window

_KEY = "guidance.ssg"


def _check_beta(key: str, value: Any) -> float:
    return check_weight(key, value)


def beta_per_scale(
    num_scales: int,
    *,
    beta: float,
    beta_schedule: str,
    beta_end: float | None,
    beta_list: list[float] | None,
    scale_indices: list[int] | None,
) -> tuple[float, ...]:
    """The β_k SSG uses at every scale si = 0..K−1 (0.0 where SSG does not act).

    Active scales are `scale_indices` (null = every si >= 1) without si = 0, which has no previous
    scale. `constant`: β everywhere active. `linear_decay` / `linear_ramp`: (1 − r)·β + r·β_end with
    r = j/(n − 1) for the j-th of the n active scales in increasing order (r = 0 when n = 1).
    `list`: β_k = beta_list[si] (`beta` is then unused).

    Raises:
        ConfigError: naming the `guidance.ssg.*` key that is out of range.
    """
    beta = _check_beta(f"{_KEY}.beta", beta)
    beta_schedule = parse_choice(f"{_KEY}.beta_schedule", beta_schedule, BetaSchedule)
    requested = window(f"{_KEY}.scale_indices", num_scales, scale_indices, range(1, num_scales))
    active = [s for s in requested if s >= 1]
    betas = [0.0] * num_scales
    if beta_schedule == "list":
        if beta_list is None or len(beta_list) != num_scales:
            got = None if beta_list is None else len(beta_list)
            raise ConfigError(
                f"{_KEY}.beta_list has length {got}; beta_schedule=list needs one beta per scale "
                f"({num_scales})"
            )
        values = [_check_beta(f"{_KEY}.beta_list[{i}]", b) for i, b in enumerate(beta_list)]
        for s in active:
            betas[s] = values[s]
        return tuple(betas)
    if beta_schedule == "constant":
        for s in active:
            betas[s] = beta
        return tuple(betas)
    if beta_end is None:
        raise ConfigError(
            f"{_KEY}.beta_end=None must be set (>= 0) for beta_schedule={beta_schedule}"
        )
    end = _check_beta(f"{_KEY}.beta_end", beta_end)
    if (beta_schedule == "linear_decay" and end > beta) or (
        beta_schedule == "linear_ramp" and end < beta
    ):
        relation, other = ("<=", "linear_ramp") if end > beta else (">=", "linear_decay")
        raise ConfigError(
            f"{_KEY}.beta_end={end} must be {relation} {_KEY}.beta={beta} for "
            f"beta_schedule={beta_schedule}; use {other} to go the other way"
        )
    n = len(active)
    for j, s in enumerate(active):
        r = j / (n - 1) if n > 1 else 0.0
        betas[s] = (1.0 - r) * beta + r * end
    return tuple(betas)


@dataclass(frozen=True)
class DsePrior:
    """ℓ_ref,k = DSE(ℓ_{k−1}): the previous scale's `prior_source` logits, upsampled (no forward).

    State: the previous scale's prior source, a new (B, V, pn', pn') tensor (a channels-last view
    of a private (B, pn', pn', V) buffer that nothing else references), or None before si = 0. It
    is recorded at every scale (β_k = 0 included), already in `logit_space`.
    """

    patch_nums: tuple[int, ...]
    prior_source: PriorSource
    logit_space: LogitSpace
    prior_mode: PriorMode
    interpolation: Interpolation
    coarse_block_scale: CoarseBlockScale
    branch: None = None

    def init_state(self, batch_size: int) -> Tensor | None:
        """No previous scale yet: the state before si = 0 is None."""
        return None

    def check(
        self, logits_BlV: Tensor, ctx: StepContext, state: Tensor | None, beta: float
    ) -> None:
        si, pn, k = ctx.scale_index, ctx.patch_num, len(self.patch_nums)
        if ctx.num_scales != k or not 0 <= si < k or self.patch_nums[si] != pn:
            raise ValueError(
                f"SSG built for patch_nums={list(self.patch_nums)} got scale {si} with "
                f"patch_num={pn} of num_scales={ctx.num_scales}"
            )
        if logits_BlV.dim() != 3 or logits_BlV.shape[1] != pn * pn:
            raise ValueError(f"expected logits (B, {pn * pn}, V), got {tuple(logits_BlV.shape)}")
        if si > 0 and beta != 0.0:
            prev = self.patch_nums[si - 1]
            expected = (logits_BlV.shape[0], logits_BlV.shape[2], prev, prev)
            got = None if state is None else tuple(state.shape)
            if got != expected:
                raise ValueError(
                    f"SSG at scale {si} needs the state returned at scale {si - 1} with shape "
                    f"{expected} (B, V, pn', pn'); got {got}"
                )

    def reference(self, logits_BlV: Tensor, ctx: StepContext, state: Tensor) -> Tensor:
        b, l, v = logits_BlV.shape
        pn = ctx.patch_num
        if self.prior_mode == PriorMode.dse:
            prior_BVHW = dse_upsample(
                state,
                (pn, pn),
                interpolation=self.interpolation,
                coarse_block_scale=self.coarse_block_scale,
            )
        else:
            prior_BVHW = interpolate_prior(state, (pn, pn), self.interpolation)
        return prior_BVHW.permute(0, 2, 3, 1).reshape(b, l, v)

    def next_state(
        self, pre_BlV: Tensor, post_BlV: Tensor, ctx: StepContext, state: Tensor | None
    ) -> Tensor:
        source_BlV = {
            PriorSource.guided_pre_ssg: pre_BlV,
            PriorSource.guided_post_ssg: post_BlV,
            PriorSource.cond_only: ctx.logits_cond_BlV,
        }[self.prior_source]
        # Always a private copy: the sampler's truncation (or anyone) may later edit the source.
        if self.logit_space == LogitSpace.log_softmax:
            kept_BlV = torch.log_softmax(source_BlV, dim=-1).contiguous()
        else:
            kept_BlV = source_BlV.clone(memory_format=torch.contiguous_format)
        b, _, v = kept_BlV.shape
        pn = ctx.patch_num
        return kept_BlV.view(b, pn, pn, v).permute(0, 3, 1, 2)  # (B, V, pn, pn) row-major grid


class Ssg(ReferenceGuidance):
    """Scaled Spatial Guidance: ℓ̃_k = ℓ_k + β_k·(ℓ_k − ℓ_prior,k), ℓ_prior,k = DSE(ℓ_{k−1}).

    ℓ_k are this scale's logits (optionally log-softmaxed over V, `logit_space`). ℓ_{k−1} is the
    previous scale's `prior_source` tensor, viewed row-major as (B, V, pn', pn') and upsampled to
    (B, V, pn, pn) by DSE (or plain interpolation, `prior_mode`), then flattened back to (B, l, V).
    si = 0 and scales with β_k = 0 return the input itself (a bit-exact no-op); every call still
    records the state for the next scale.

    `branches` is empty in both placements: after_cfg only reads the running logits,
    and per_branch (`branch_wise`) is applied by the sampler to whichever branches exist (cond
    only, or cond and each extra branch with its own state), so SSG never forces another branch.

    prior_source picks ℓ_{k−1}: `guided_pre_ssg` = the logits this processor received at k−1,
    `guided_post_ssg` = what it returned at k−1, `cond_only` = ctx.logits_cond_BlV at k−1 (with
    per_branch this is the conditional prior for both branches). With log_softmax, both ℓ_k and
    ℓ_{k−1} are log-softmaxed over V before the update; the output then differs from raw by a
    per-position constant only.
    """

    def __init__(
        self,
        *,
        patch_nums: list[int],
        beta: float,
        beta_schedule: str,
        beta_end: float | None,
        beta_list: list[float] | None,
        scale_indices: list[int] | None,
        placement: str,
        prior_source: str,
        logit_space: str,
        prior_mode: str,
        interpolation: str,
        coarse_block_scale: str,
        band_fusion: str,
        dct_norm: str,
        arithmetic: str = "delta",
    ) -> None:
        """Validate every switch (SsgConfig) and precompute β_k per scale.

        Raises:
            ConfigError: naming the offending `guidance.ssg.*` (or `model.patch_nums`) key.
        """
        patch_nums = [int(p) for p in patch_nums]
        if not patch_nums or patch_nums != sorted(set(patch_nums)) or patch_nums[0] < 1:
            raise ConfigError(f"model.patch_nums={patch_nums} must be strictly increasing, >= 1")
        choice = {
            key: parse_choice(f"{_KEY}.{key}", value, options)
            for key, value, options in (
                ("placement", placement, Placement),
                ("prior_source", prior_source, PriorSource),
                ("logit_space", logit_space, LogitSpace),
                ("prior_mode", prior_mode, PriorMode),
                ("interpolation", interpolation, Interpolation),
                ("coarse_block_scale", coarse_block_scale, CoarseBlockScale),
                ("band_fusion", band_fusion, BandFusion),
                ("dct_norm", dct_norm, DctNorm),
                ("arithmetic", arithmetic, Arithmetic),
            )
        }
        betas = beta_per_scale(
            len(patch_nums),
            beta=beta,
            beta_schedule=beta_schedule,
            beta_end=beta_end,
            beta_list=None if beta_list is None else list(beta_list),
            scale_indices=None if scale_indices is None else list(scale_indices),
        )
        prior = DsePrior(
            patch_nums=tuple(patch_nums),
            prior_source=choice["prior_source"],
            logit_space=choice["logit_space"],
            prior_mode=choice["prior_mode"],
            interpolation=choice["interpolation"],
            coarse_block_scale=choice["coarse_block_scale"],
        )
        super().__init__(
            name="ssg",
            reference=prior,
            weights=betas,
            arithmetic=choice["arithmetic"],
            logit_space=choice["logit_space"],
            branch_wise=choice["placement"] == Placement.per_branch,
        )
        self.patch_nums = tuple(patch_nums)
        self.betas = betas
        self.placement = choice["placement"]
        self.prior_source = choice["prior_source"]
        self.prior_mode = choice["prior_mode"]
        self.interpolation = choice["interpolation"]
        self.coarse_block_scale = choice["coarse_block_scale"]


def build_ssg(ssg_cfg: Any, patch_nums: list[int]) -> Ssg:
    """Build `Ssg` from a `guidance.ssg` config node (SsgConfig or DictConfig).

    Args:
        ssg_cfg: the `guidance.ssg` node.
        patch_nums: the model's scale sides (`model.patch_nums`).

    Raises:
        ConfigError: any invalid `guidance.ssg.*` value.
    """
    beta_list = ssg_cfg.beta_list
    scale_indices = ssg_cfg.scale_indices
    return Ssg(
        patch_nums=list(patch_nums),
        beta=ssg_cfg.beta,
        beta_schedule=ssg_cfg.beta_schedule,
        beta_end=ssg_cfg.beta_end,
        beta_list=None if beta_list is None else list(beta_list),
        scale_indices=None if scale_indices is None else list(scale_indices),
        placement=ssg_cfg.placement,
        prior_source=ssg_cfg.prior_source,
        logit_space=ssg_cfg.logit_space,
        prior_mode=ssg_cfg.prior_mode,
        interpolation=ssg_cfg.interpolation,
        coarse_block_scale=ssg_cfg.coarse_block_scale,
        band_fusion=ssg_cfg.band_fusion,
        dct_norm=ssg_cfg.dct_norm,
        arithmetic=ssg_cfg.arithmetic,
    )


def describe_ssg(params: dict[str, Any]) -> str:
    """The report's one-line summary of a run's resolved `guidance.ssg` section."""
    schedule = params["beta_schedule"]
    beta = params["beta_list"] if schedule == "list" else params["beta"]
    end = f"->{params['beta_end']:g}" if schedule in ("linear_decay", "linear_ramp") else ""
    return (
        f"ssg beta={beta}{end} ({schedule}), {params['placement']}, "
        f"prior={params['prior_source']}, {params['prior_mode']}/{params['interpolation']}, "
        f"alpha={params['coarse_block_scale']}"
    )
