"""The next-scale sampling loop: transformer, logit processors, truncation, token draw, f̂ update.

This module owns the per-scale orchestration of docs/VAR.md and is the only place that draws
random numbers (`sample_tokens`, `official_labels`); it must not hold guidance math or write files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ssg_eval.guidance.base import StepContext
from ssg_eval.guidance.truncation import apply_truncation


def make_generators(seeds: Sequence[int], device: str | torch.device) -> list[torch.Generator]:
    """One generator per seed, living on `device` (CPU and CUDA streams differ).

    Args:
        seeds: one integer seed per sample.
        device: the sampling device.
    """
    return [torch.Generator(device=torch.device(device)).manual_seed(int(s)) for s in seeds]


def official_labels(batch_size: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """VAR's labels for `label_B=None`: B uniform draws with replacement (`multinomial`).

    In the official sampler this is the first use of the freshly reseeded generator.

    Args:
        batch_size: B.
        num_classes: number of real classes.
        generator: the (single) generator; its device is used.

    Returns:
        labels_B: (B,) int64.
    """
    uniform_1N = torch.full(
        (1, num_classes), 1.0 / num_classes, dtype=torch.float32, device=generator.device
    )
    return torch.multinomial(uniform_1N, batch_size, replacement=True, generator=generator).view(
        batch_size
    )


def sample_tokens(
    logits_BlV: Tensor, generators: torch.Generator | Sequence[torch.Generator]
) -> Tensor:
    """Draw one token per position from softmax(logits).

    A single generator reproduces VAR's stream: one `multinomial` over the (B·l, V) probabilities.
    A list of B generators draws row b with `generators[b]` from its own (l, V) probabilities, so a
    sample does not depend on the other members of its batch.

    Args:
        logits_BlV: (B, l, V) float logits (−inf = removed).
        generators: one generator, or a sequence of B generators.

    Returns:
        tokens_Bl: (B, l) int64.

    Raises:
        ValueError: a generator list whose length is not B.
    """
    B, l, V = logits_BlV.shape
    if isinstance(generators, torch.Generator):
        probs_NV = logits_BlV.softmax(dim=-1).view(B * l, V)
        return torch.multinomial(probs_NV, 1, replacement=True, generator=generators).view(B, l)
    if len(generators) != B:
        raise ValueError(f"got {len(generators)} generators for a batch of {B} samples")
    rows = [
        torch.multinomial(logits_BlV[b].softmax(dim=-1), 1, replacement=True, generator=g).view(l)
        for b, g in enumerate(generators)
    ]
    return torch.stack(rows)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _apply_processors(
    processors: Sequence[Any], ctx: StepContext, states: list[Any], uncond_states: list[Any]
) -> Tensor:
    """Branch-wise processors on each branch, then the others on the running logits."""
    for i, proc in enumerate(processors):
        if getattr(proc, "branch_wise", False):
            cond_BlV, states[i] = proc(ctx.logits_cond_BlV, ctx, states[i])
            uncond_BlV = ctx.logits_uncond_BlV
            if uncond_BlV is not None:
                uncond_BlV, uncond_states[i] = proc(uncond_BlV, ctx, uncond_states[i])
            ctx = dataclasses.replace(ctx, logits_cond_BlV=cond_BlV, logits_uncond_BlV=uncond_BlV)
    logits_BlV = ctx.logits_cond_BlV
    for i, proc in enumerate(processors):
        if not getattr(proc, "branch_wise", False):
            logits_BlV, states[i] = proc(logits_BlV, ctx, states[i])
    return logits_BlV


def generate_batch(
    var: Any,
    vae: Any,
    labels_B: Tensor,
    generators: torch.Generator | Sequence[torch.Generator],
    processors: Sequence[Any],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    truncation_impl: str = "sort",
    autocast_dtype: torch.dtype | None = None,
    decode_dtype: torch.dtype | None = None,
    observer: Callable[[int, dict[str, Tensor]], None] | None = None,
    decode: bool = True,
) -> Tensor:
    """Sample one batch of images scale by scale (VAR's `autoregressive_infer_cfg`, generalised).

    Per scale si: transformer logits ([cond; uncond] as one 2B batch when any processor
    `needs_uncond`, else B rows) → branch-wise processors → other processors in list order →
    truncation → `sample_tokens` → f̂ update → next input. With `processors=[CfgRamp(1.5)]`, a single
    generator and the README truncation this reproduces the official samples.

    Args:
        var: the VAR transformer (eval mode).
        vae: the VQVAE built with the same patch_nums.
        labels_B: (B,) int64 class labels on the model's device (`num_classes` = unconditional).
        generators: one generator (official stream) or B generators (per-sample stream).
        processors: logit processors (see `ssg_eval.guidance.base.LogitProcessor`).
        temperature: divides the logits when != 1.0.
        top_k: 0 disables.
        top_p: 0 disables.
        truncation_impl: "sort" or "fast" (same kept set).
        autocast_dtype: bf16/fp16 autocast around the transformer only; None/float32 = off.
        decode_dtype: dtype of the VQVAE decode; None = float32.
        observer: called as observer(si, info) after each scale with clones of `f_hat_BCHW`,
            `logits_BlV` (after processors, before truncation) and `tokens_Bl`.
        decode: False returns the accumulated latents f̂ (B, Cvae, pn, pn) instead of images, so
            that callers can decode in fixed groups (`decode_images`).

    Returns:
        images_B3HW: float32 in [0, 1], H = W = 16·patch_nums[-1] (or f̂ when decode=False).

    Raises:
        ValueError: a generator list whose length is not B.
    """
    patch_nums, K = var.patch_nums, len(var.patch_nums)
    device = labels_B.device
    B = labels_B.shape[0]
    if not isinstance(generators, torch.Generator) and len(generators) != B:
        raise ValueError(f"got {len(generators)} generators for a batch of {B} samples")
    two_branches = any(p.needs_uncond for p in processors)
    states = [p.init_state(B) for p in processors]
    uncond_states = [
        p.init_state(B) if getattr(p, "branch_wise", False) else None for p in processors
    ]
    with torch.inference_mode():
        if two_branches:  # (2B,): conditional rows first, then the null class
            labels_B = torch.cat((labels_B, torch.full_like(labels_B, var.num_classes)))
        cond_BD = var.class_condition(labels_B)
        with _autocast(device, autocast_dtype):
            x_BlC = var.first_scale_input(cond_BD)
        f_hat_BCHW = cond_BD.new_zeros(
            B, vae.cvae, patch_nums[-1], patch_nums[-1], dtype=torch.float32
        )
        var.set_kv_cache(True)
        try:
            for si, pn in enumerate(patch_nums):
                with _autocast(device, autocast_dtype):
                    logits_BlV = var.scale_logits(x_BlC, cond_BD).float()
                ctx = StepContext(
                    scale_index=si,
                    num_scales=K,
                    patch_num=pn,
                    prev_patch_num=patch_nums[si - 1] if si > 0 else None,
                    logits_cond_BlV=logits_BlV[:B],
                    logits_uncond_BlV=logits_BlV[B:] if two_branches else None,
                )
                logits_BlV = _apply_processors(processors, ctx, states, uncond_states)
                truncated_BlV = apply_truncation(
                    logits_BlV, temperature, top_k, top_p, impl=truncation_impl
                )
                tokens_Bl = sample_tokens(truncated_BlV, generators)
                h_BChw = vae.embed_tokens(tokens_Bl, pn)
                f_hat_BCHW, next_BChw = vae.accumulate(si, f_hat_BCHW, h_BChw)
                if observer is not None:
                    observer(
                        si,
                        {
                            "f_hat_BCHW": f_hat_BCHW.clone(),
                            "logits_BlV": logits_BlV.clone(),
                            "tokens_Bl": tokens_Bl.clone(),
                        },
                    )
                if next_BChw is not None:
                    with _autocast(device, autocast_dtype):
                        x_BlC = var.next_scale_input(next_BChw, si + 1)
                    if two_branches:  # both halves get the same token input
                        x_BlC = x_BlC.repeat(2, 1, 1)
        finally:
            var.set_kv_cache(False)
        if not decode:
            return f_hat_BCHW.clone()
        img_B3HW = decode_images(vae, f_hat_BCHW, decode_dtype)
    return img_B3HW.clone()  # a normal tensor again: callers may edit it outside inference mode


def latents_from_tokens(vae: Any, tokens_per_scale: Sequence[Tensor]) -> Tensor:
    """Rebuild f̂ from the tokens of every scale (the loop's residual update, without sampling).

    Args:
        vae: the VQVAE built with the model's patch_nums.
        tokens_per_scale: K tensors (B, pn_k²) int64, row-major.

    Returns:
        f_hat_BCHW: (B, Cvae, pn_last, pn_last) float32.
    """
    with torch.inference_mode():
        f_hat_BCHW = None
        for si, tokens_Bl in enumerate(tokens_per_scale):
            pn = math.isqrt(tokens_Bl.shape[1])
            h_BChw = vae.embed_tokens(tokens_Bl, pn)
            if f_hat_BCHW is None:
                last = math.isqrt(tokens_per_scale[-1].shape[1])
                f_hat_BCHW = h_BChw.new_zeros(h_BChw.shape[0], h_BChw.shape[1], last, last)
            f_hat_BCHW, _ = vae.accumulate(si, f_hat_BCHW, h_BChw)
        return f_hat_BCHW


def decode_images(vae: Any, f_hat_BCHW: Tensor, decode_dtype: torch.dtype | None = None) -> Tensor:
    """VQVAE decode of accumulated latents to images in [0, 1]: (decode(f̂) + 1) / 2.

    Args:
        vae: the VQVAE.
        f_hat_BCHW: (B, Cvae, pn_last, pn_last) accumulated latents.
        decode_dtype: autocast dtype of the decoder; None or float32 = plain fp32.

    Returns:
        (B, 3, 16·pn_last, 16·pn_last) float32 images in [0, 1].
    """
    decode_dtype = decode_dtype or torch.float32
    with torch.inference_mode():
        with _autocast(f_hat_BCHW.device, None if decode_dtype == torch.float32 else decode_dtype):
            img_B3HW = vae.decode(f_hat_BCHW)
        return img_B3HW.float().add(1).mul(0.5)
