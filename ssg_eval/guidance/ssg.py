"""SSG (Scaled Spatial Guidance) as a logit processor: ℓ̃_k = ℓ_k + β_k·(ℓ_k − DSE(ℓ_{k−1})).

This module owns the SSG update, its β schedule and every open-question switch of docs/METHOD.md;
it must not modify its inputs or attributes, draw random numbers, or mix CFG branches itself.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ssg_eval.config import ConfigError, require_choice
from ssg_eval.guidance.base import StepContext
from ssg_eval.guidance.dse import dse_upsample, interpolate_prior

_KEY = "guidance.ssg"
_CHOICES = {
    "beta_schedule": ("constant", "linear_decay", "linear_ramp", "list"),
    "placement": ("after_cfg", "per_branch"),
    "prior_source": ("guided_pre_ssg", "guided_post_ssg", "cond_only"),
    "logit_space": ("raw", "log_softmax"),
    "prior_mode": ("dse", "interpolate_only"),
    "interpolation": ("bilinear", "bicubic", "area", "nearest"),
    "coarse_block_scale": ("sqrt_area_ratio", "none"),
    "band_fusion": ("hard_overwrite",),
    "dct_norm": ("ortho",),
}


def _check_beta(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number >= 0 (0 disables SSG)")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key}={value!r} must be a finite number >= 0 (0 disables SSG)")
    return float(value)


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
    require_choice(f"{_KEY}.beta_schedule", beta_schedule, _CHOICES["beta_schedule"])
    if scale_indices is None:
        requested = list(range(1, num_scales))
    else:
        requested = [int(s) for s in scale_indices]
        bad = [s for s in requested if not 0 <= s < num_scales]
        if bad:
            raise ConfigError(
                f"{_KEY}.scale_indices={requested} has {bad} outside [0, {num_scales - 1}]"
            )
    active = sorted({s for s in requested if s >= 1})
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
        raise ConfigError(
            f"{_KEY}.beta_end={end} contradicts beta_schedule={beta_schedule} with beta={beta}; "
            "linear_decay needs beta_end <= beta, linear_ramp needs beta_end >= beta"
        )
    n = len(active)
    for j, s in enumerate(active):
        r = j / (n - 1) if n > 1 else 0.0
        betas[s] = (1.0 - r) * beta + r * end
    return tuple(betas)


class Ssg:
    """Scaled Spatial Guidance: ℓ̃_k = ℓ_k + β_k·(ℓ_k − ℓ_prior,k), ℓ_prior,k = DSE(ℓ_{k−1}).

    ℓ_k are this scale's logits (optionally log-softmaxed over V, `logit_space`). ℓ_{k−1} is the
    previous scale's `prior_source` tensor, viewed row-major as (B, V, pn', pn') and upsampled to
    (B, V, pn, pn) by DSE (or plain interpolation, `prior_mode`), then flattened back to (B, l, V).
    si = 0 and scales with β_k = 0 return the input itself (a bit-exact no-op); every call still
    records the state for the next scale.

    `needs_uncond` is False in both placements: after_cfg only reads the running (mixed) logits,
    and per_branch (`branch_wise`) is applied by the sampler to whichever branches exist (cond
    only, or cond and uncond each with its own state), so SSG never forces the doubled batch.

    prior_source picks ℓ_{k−1}: `guided_pre_ssg` = the logits this processor received at k−1,
    `guided_post_ssg` = what it returned at k−1, `cond_only` = ctx.logits_cond_BlV at k−1 (with
    per_branch this is the conditional prior for both branches). With log_softmax, both ℓ_k and
    ℓ_{k−1} are log-softmaxed over V before the update; the output then differs from raw by a
    per-position constant only.

    State: the previous scale's prior source, a new (B, V, pn', pn') tensor (a channels-last view
    of a private (B, pn', pn', V) buffer that nothing else references), or None before si = 0.
    """

    needs_uncond = False

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
    ) -> None:
        """Validate every switch (SsgConfig) and precompute β_k per scale.

        Raises:
            ConfigError: naming the offending `guidance.ssg.*` (or `model.patch_nums`) key.
        """
        patch_nums = [int(p) for p in patch_nums]
        if not patch_nums or patch_nums != sorted(set(patch_nums)) or patch_nums[0] < 1:
            raise ConfigError(f"model.patch_nums={patch_nums} must be strictly increasing, >= 1")
        for key, value in (
            ("placement", placement),
            ("prior_source", prior_source),
            ("logit_space", logit_space),
            ("prior_mode", prior_mode),
            ("interpolation", interpolation),
            ("coarse_block_scale", coarse_block_scale),
            ("band_fusion", band_fusion),
            ("dct_norm", dct_norm),
        ):
            require_choice(f"{_KEY}.{key}", value, _CHOICES[key])
        self.patch_nums = tuple(patch_nums)
        self.betas = beta_per_scale(
            len(patch_nums),
            beta=beta,
            beta_schedule=beta_schedule,
            beta_end=beta_end,
            beta_list=None if beta_list is None else list(beta_list),
            scale_indices=None if scale_indices is None else list(scale_indices),
        )
        self.branch_wise = placement == "per_branch"
        self.placement = placement
        self.prior_source = prior_source
        self.logit_space = logit_space
        self.prior_mode = prior_mode
        self.interpolation = interpolation
        self.coarse_block_scale = coarse_block_scale

    def init_state(self, batch_size: int) -> Tensor | None:
        """No previous scale yet: the state before si = 0 is None."""
        return None

    def _to_space(self, logits_BlV: Tensor) -> Tensor:
        if self.logit_space == "log_softmax":
            return torch.log_softmax(logits_BlV, dim=-1)
        return logits_BlV

    def _prior(self, prev_BVhw: Tensor, pn: int) -> Tensor:
        if self.prior_mode == "dse":
            return dse_upsample(
                prev_BVhw,
                (pn, pn),
                interpolation=self.interpolation,
                coarse_block_scale=self.coarse_block_scale,
            )
        return interpolate_prior(prev_BVhw, (pn, pn), self.interpolation)

    def _check(self, logits_BlV: Tensor, ctx: StepContext, state: Tensor | None) -> None:
        si, pn, k = ctx.scale_index, ctx.patch_num, len(self.patch_nums)
        if ctx.num_scales != k or not 0 <= si < k or self.patch_nums[si] != pn:
            raise ValueError(
                f"SSG built for patch_nums={list(self.patch_nums)} got scale {si} with "
                f"patch_num={pn} of num_scales={ctx.num_scales}"
            )
        if logits_BlV.dim() != 3 or logits_BlV.shape[1] != pn * pn:
            raise ValueError(f"expected logits (B, {pn * pn}, V), got {tuple(logits_BlV.shape)}")
        if si > 0 and self.betas[si] != 0.0:
            prev = self.patch_nums[si - 1]
            expected = (logits_BlV.shape[0], logits_BlV.shape[2], prev, prev)
            got = None if state is None else tuple(state.shape)
            if got != expected:
                raise ValueError(
                    f"SSG at scale {si} needs the state returned at scale {si - 1} with shape "
                    f"{expected} (B, V, pn', pn'); got {got}"
                )

    def __call__(
        self, logits_BlV: Tensor, ctx: StepContext, state: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Apply SSG at scale `ctx.scale_index` and record this scale's prior source.

        Args:
            logits_BlV: (B, l, V) floating logits with l = ctx.patch_num**2 (CFG-mixed for
                after_cfg; one branch for per_branch); not modified.
            ctx: this scale's context; `logits_cond_BlV` is read only for prior_source=cond_only.
            state: what this processor returned at the previous scale (None at si = 0).

        Returns:
            (guided_BlV, next_state): guided_BlV (B, l, V) with the input dtype (the input itself
            where β_k = 0 or si = 0); next_state (B, V, pn, pn), a new tensor.

        Raises:
            ValueError: ctx/shape do not match the patch_nums this processor was built for, or
                the state of the previous scale is missing.
        """
        self._check(logits_BlV, ctx, state)
        si, pn = ctx.scale_index, ctx.patch_num
        beta = self.betas[si]
        if si == 0 or beta == 0.0:
            guided_BlV = logits_BlV
        else:
            cur_BlV = self._to_space(logits_BlV)
            b, l, v = cur_BlV.shape
            prior_BlV = self._prior(state, pn).permute(0, 2, 3, 1).reshape(b, l, v)
            guided_BlV = cur_BlV + beta * (cur_BlV - prior_BlV)
        source_BlV = {
            "guided_pre_ssg": logits_BlV,
            "guided_post_ssg": guided_BlV,
            "cond_only": ctx.logits_cond_BlV,
        }[self.prior_source]
        return guided_BlV, self._record(source_BlV, pn)

    def _record(self, source_BlV: Tensor, pn: int) -> Tensor:
        # Always a private copy: the sampler's truncation (or anyone) may later edit the source.
        if self.logit_space == "log_softmax":
            kept_BlV = torch.log_softmax(source_BlV, dim=-1).contiguous()
        else:
            kept_BlV = source_BlV.clone(memory_format=torch.contiguous_format)
        b, _, v = kept_BlV.shape
        return kept_BlV.view(b, pn, pn, v).permute(0, 3, 1, 2)  # (B, V, pn, pn) row-major grid


def build_ssg(ssg_cfg: Any, patch_nums: list[int]) -> Ssg:
    """Build `Ssg` from a `guidance.ssg` config node (SsgConfig or DictConfig).

    Args:
        ssg_cfg: the `guidance.ssg` node; `enabled` is not read here.
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
    )
