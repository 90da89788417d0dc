"""The next-scale sampling loop: scale by scale, logits → processors → truncation → tokens.

This module owns the per-scale orchestration of VAR's sampler (docs/VAR.md, sampling); its random
draws all go through `sampling.draw`, and it must not hold guidance math or write files. The loop
returns tokens; latents and pixels are separate steps (`sampling.decode`), so an image depends
only on its tokens and its decode group, never on the forward batch it was sampled in.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ssg_eval.guidance.base import GUIDE_MODEL, NULL_CLASS, RANDOM_CLASS, StepContext
from ssg_eval.guidance.truncation import apply_truncation
from ssg_eval.sampling.decode import autocast_context as _autocast
from ssg_eval.sampling.decode import decode_images, latents_from_tokens
from ssg_eval.sampling.draw import gumbel_soft_weights, sample_tokens

__all__ = ["SampledScales", "generate_batch", "sample_scales"]


@dataclass(frozen=True)
class SampledScales:
    """What the loop returns for one batch.

    Attributes:
        tokens: K tensors (B, pn_k²) int64, row-major, one per scale.
        embeddings: with more_smooth, the K soft code maps (B, Cvae, pn_k, pn_k) that f̂ is built
            from (the tokens are then drawn but not used); None otherwise.
        diagnostics: with `diagnostics=True`, per scale a dict of new tensors: `logits_BlV`
            (after the processors, before truncation), `tokens_Bl` and the loop's `f_hat_BCHW`.
        scale_end_s: with `diagnostics=True`, `time.perf_counter()` at the end of every scale,
            taken after a device synchronisation (per-scale timing).
    """

    tokens: list[Tensor]
    embeddings: list[Tensor] | None = None
    diagnostics: list[dict[str, Tensor]] | None = None
    scale_end_s: list[float] | None = None


def _branches(processors: Sequence[Any]) -> list[str]:
    """The extra forward branches the processors read, in row order (null, random, guide)."""
    wanted = {branch for proc in processors for branch in proc.branches}
    return [b for b in (NULL_CLASS, RANDOM_CLASS, GUIDE_MODEL) if b in wanted]


def _apply_processors(
    processors: Sequence[Any], ctx: StepContext, states: list[Any], branch_states: dict
) -> Tensor:
    """Branch-wise processors on every branch (own states), then the others on the running ones."""
    for i, proc in enumerate(processors):
        if proc.branch_wise:
            cond_BlV, states[i] = proc(ctx.logits_cond_BlV, ctx, states[i])
            uncond_BlV = ctx.logits_uncond_BlV
            if uncond_BlV is not None:
                uncond_BlV, branch_states[NULL_CLASS][i] = proc(
                    uncond_BlV, ctx, branch_states[NULL_CLASS][i]
                )
            others = {}
            for name, logits_BlV in ctx.branch_logits.items():
                others[name], branch_states[name][i] = proc(logits_BlV, ctx, branch_states[name][i])
            ctx = dataclasses.replace(
                ctx, logits_cond_BlV=cond_BlV, logits_uncond_BlV=uncond_BlV, branch_logits=others
            )
    logits_BlV = ctx.logits_cond_BlV
    for i, proc in enumerate(processors):
        if not proc.branch_wise:
            logits_BlV, states[i] = proc(logits_BlV, ctx, states[i])
    return logits_BlV


def _row_labels(
    var: Any, labels_B: Tensor, branches: list[str], random_labels_B: Tensor | None
) -> Tensor:
    """Labels of the main model's rows: [cond; null class; random class] blocks of B."""
    rows = [labels_B]
    if NULL_CLASS in branches:
        rows.append(torch.full_like(labels_B, var.num_classes))
    if RANDOM_CLASS in branches:
        if random_labels_B is None or random_labels_B.shape != labels_B.shape:
            got = None if random_labels_B is None else tuple(random_labels_B.shape)
            raise ValueError(
                f"a processor reads the random-class branch (ICG): random_labels_B of shape "
                f"{tuple(labels_B.shape)} is required, got {got}"
            )
        rows.append(random_labels_B.to(labels_B.device))
    return torch.cat(rows)


def _check_separate(var: Any, guide: Any | None) -> None:
    # The KV cache lives in the attention modules: a guide that is (or shares modules with) the
    # main model would append its rows to the main model's cache and read them back as context.
    if guide is None:
        return
    shared = {id(m) for m in var.modules()} & {id(m) for m in guide.modules()}
    if shared:
        raise ValueError(
            "guide= is the main model object or shares modules with it: both would write one KV "
            "cache and the logits would be wrong; pass a separate instance "
            "(ssg_eval.models.load.build_guide, or copy.deepcopy(var) for the same weights)"
        )


def sample_scales(
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
    more_smooth: bool = False,
    random_labels_B: Tensor | None = None,
    guide: Any | None = None,
    diagnostics: bool = False,
) -> SampledScales:
    """Sample the tokens of one batch scale by scale (VAR's `autoregressive_infer_cfg`, extended).

    Per scale si: transformer logits of every row ([cond; null; random] as one batch, only the
    branches some processor reads) and of the guide model → branch-wise processors → other
    processors in list order → truncation → `sample_tokens` → f̂ update → next input. With
    `processors=[CfgRamp(1.5)]`, a single generator and the README truncation this reproduces the
    official tokens.

    Args:
        var: the VAR transformer (eval mode).
        vae: the VQVAE built with the same patch_nums (its quantizer builds the next inputs).
        labels_B: (B,) int64 class labels on the model's device (`num_classes` = unconditional).
        generators: one generator (official stream) or B generators (per-sample stream).
        processors: logit processors (see `ssg_eval.guidance.base.LogitProcessor`).
        temperature: divides the logits when != 1.0.
        top_k: 0 disables.
        top_p: 0 disables.
        truncation_impl: "sort" or "fast" (same kept set).
        autocast_dtype: bf16/fp16 autocast around the transformers only; None/float32 = off.
        more_smooth: VAR's visualisation path: after each token draw, a Gumbel-softmax draw
            (tau = max(0.27·(1 − 0.95·ratio), 0.005)) on the truncated logits × (1 + ratio) from
            the same generator; the soft one-hot times the codebook replaces the token embedding.
        random_labels_B: (B,) labels of the random-class branch (ICG), required when read.
        guide: the guide VAR (autoguidance), required when its branch is read; it shares the
            VQVAE and scales, keeps its own KV cache and is fed the same f̂ at every scale. It
            must be a separate module: the main model object itself is refused.
        diagnostics: also return per-scale copies of the logits, tokens and f̂.

    Returns:
        A `SampledScales` with the tokens of every scale.

    Raises:
        ValueError: a generator list whose length is not B, a missing branch input, or a guide
            that is (or shares modules with) the main model.
    """
    patch_nums, K = var.patch_nums, len(var.patch_nums)
    device, B = labels_B.device, labels_B.shape[0]
    if not isinstance(generators, torch.Generator) and len(generators) != B:
        raise ValueError(f"got {len(generators)} generators for a batch of {B} samples")
    branches = _branches(processors)
    if GUIDE_MODEL in branches and guide is None:
        raise ValueError("a processor reads the guide-model branch (autoguidance): pass guide=")
    guided = guide if GUIDE_MODEL in branches else None
    _check_separate(var, guided)
    states = [p.init_state(B) for p in processors]
    branch_states = {b: [p.init_state(B) if p.branch_wise else None
                         for p in processors] for b in branches}  # fmt: skip
    tokens, embeddings, records = [], [] if more_smooth else None, [] if diagnostics else None
    times = [] if diagnostics else None
    with torch.inference_mode():
        # Conditioning: one class embedding per row of the main model, and the guide's own.
        cond_BD = var.class_condition(_row_labels(var, labels_B, branches, random_labels_B))
        num_blocks = cond_BD.shape[0] // B  # 1 + the main model's extra branches
        guide_cond_BD = guided.class_condition(labels_B) if guided is not None else None
        with _autocast(device, autocast_dtype):
            x_BlC = var.first_scale_input(cond_BD)
            guide_x_BlC = guided.first_scale_input(guide_cond_BD) if guided is not None else None
        f_hat_BCHW = cond_BD.new_zeros(B, vae.cvae, patch_nums[-1], patch_nums[-1],
                                       dtype=torch.float32)  # fmt: skip
        models = [var] if guided is None else [var, guided]
        for model in models:
            model.set_kv_cache(True)
        try:
            for si, pn in enumerate(patch_nums):
                # 1. Logits of every row at this scale; each model attends to its own KV cache.
                with _autocast(device, autocast_dtype):
                    logits_BlV = var.scale_logits(x_BlC, cond_BD).float()
                    if guided is not None:
                        guide_BlV = guided.scale_logits(guide_x_BlC, guide_cond_BD).float()
                extra = {
                    name: logits_BlV[(j + 1) * B : (j + 2) * B]
                    for j, name in enumerate(branches[: num_blocks - 1])
                }
                if guided is not None:
                    extra[GUIDE_MODEL] = guide_BlV
                ctx = StepContext(
                    scale_index=si,
                    num_scales=K,
                    patch_num=pn,
                    prev_patch_num=patch_nums[si - 1] if si > 0 else None,
                    logits_cond_BlV=logits_BlV[:B],
                    logits_uncond_BlV=extra.pop(NULL_CLASS, None),
                    branch_logits=extra,
                )
                # 2. Guidance: the processors turn the branches into one (B, l, V) tensor.
                logits_BlV = _apply_processors(processors, ctx, states, branch_states)
                # 3. Truncation, then one token per position from the sampling stream.
                truncated_BlV = apply_truncation(
                    logits_BlV, temperature, top_k, top_p, impl=truncation_impl
                )
                tokens_Bl = sample_tokens(truncated_BlV, generators)
                tokens.append(tokens_Bl)
                # 4. Embed (tokens, or more_smooth's soft codes drawn next) and add to f̂.
                if more_smooth:
                    ratio = si / (K - 1) if K > 1 else 0.0
                    tau = max(0.27 * (1 - ratio * 0.95), 0.005)
                    weights_BlV = gumbel_soft_weights(truncated_BlV.mul(1 + ratio), generators, tau)
                    h_BChw = vae.embed_soft(weights_BlV, pn)
                    embeddings.append(h_BChw)
                else:
                    h_BChw = vae.embed_tokens(tokens_Bl, pn)
                f_hat_BCHW, next_BChw = vae.accumulate(si, f_hat_BCHW, h_BChw)
                if records is not None:
                    records.append({"f_hat_BCHW": f_hat_BCHW.clone(),
                                    "logits_BlV": logits_BlV.clone(),
                                    "tokens_Bl": tokens_Bl.clone()})  # fmt: skip
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times.append(time.perf_counter())
                # 5. Next input: area-resized f̂, the same for every row and for the guide.
                if next_BChw is not None:
                    with _autocast(device, autocast_dtype):
                        x_BlC = var.next_scale_input(next_BChw, si + 1)
                        if num_blocks > 1:  # every branch row gets the same token input
                            x_BlC = x_BlC.repeat(num_blocks, 1, 1)
                        if guided is not None:
                            guide_x_BlC = guided.next_scale_input(next_BChw, si + 1)
        finally:
            for model in models:
                model.set_kv_cache(False)
    return SampledScales(tokens, embeddings, records, times)


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
    more_smooth: bool = False,
    random_labels_B: Tensor | None = None,
    guide: Any | None = None,
    observer: Callable[[int, dict[str, Tensor]], None] | None = None,
) -> Tensor:
    """One batch from labels to images: `sample_scales` → `latents_from_tokens` → `decode_images`.

    This is one official call when the batch is decoded as a whole. Keyword arguments are those
    of `sample_scales`, plus:

    Args:
        decode_dtype: dtype of the VQVAE decode; None = float32.
        observer: called as observer(si, info) for every scale, after sampling, with that scale's
            diagnostics (new tensors `f_hat_BCHW`, `logits_BlV` before truncation, `tokens_Bl`).

    Returns:
        images_B3HW: float32 in [0, 1], H = W = 16·patch_nums[-1].

    Raises:
        ValueError: a generator list whose length is not B, or a missing branch input.
    """
    sample = sample_scales(
        var, vae, labels_B, generators, processors, temperature=temperature, top_k=top_k,
        top_p=top_p, truncation_impl=truncation_impl, autocast_dtype=autocast_dtype,
        more_smooth=more_smooth, random_labels_B=random_labels_B, guide=guide,
        diagnostics=observer is not None,
    )  # fmt: skip
    f_hat_BCHW = latents_from_tokens(vae, sample.tokens, sample.embeddings)
    images_B3HW = decode_images(vae, f_hat_BCHW, decode_dtype).clone()  # a normal tensor again
    if observer is not None:
        with torch.inference_mode():  # the records are inference tensors, as the loop made them
            for si, info in enumerate(sample.diagnostics):
                observer(si, info)
    return images_B3HW
