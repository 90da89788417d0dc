"""The sampler's logits are the official float32 bits at every scale, frozen weights or not.

The official VAR samples with trainable weights (its builder's state) under `no_grad`; there
`F.linear` on the strided word-embedding input folds the batch into one GEMM, while frozen
weights would send it to a batched GEMM (docs/EQUIVALENCE.md). The transcription below spells out
the official token path with plain torch ops (CFG mix, top-k, multinomial, codebook, bicubic +
phi, area resize, `F.linear` on the transposed map + level/position embedding).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from ssg_eval.config import ModelConfig
from ssg_eval.guidance.cfg import CfgRamp
from ssg_eval.models.load import build_model
from ssg_eval.sampling.loop import sample_scales

LABELS = [207, 360, 387, 974]


def _model(**overrides):
    """A random-weight model on the ModelConfig schema (defaults: the d16 shape)."""
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"name": "bits", **overrides})
    var, vae, _ = build_model(cfg)
    return var, vae


def _small():
    # the d16 shape class, narrower and shallower: Cvae 32, V 4096, six scales, 1000 classes
    return _model(depth=2, patch_nums=[1, 2, 3, 4, 5, 6], vae_ch=32)


def _official_logits(var, vae, labels_B, g_seed, cfg, top_k):
    """Per-scale CFG-mixed logits and tokens of the official call (token path, labels given)."""
    rng = torch.Generator().manual_seed(g_seed)
    B, K, last = labels_B.shape[0], len(var.patch_nums), var.patch_nums[-1]
    quant, cvae = vae.quantize, var.cvae
    word = var.word_embed
    logits_per_scale, tokens_per_scale = [], []
    with torch.no_grad():  # the official method's decorator
        cond = var.class_emb(torch.cat((labels_B, torch.full_like(labels_B, var.num_classes))))
        lvl_pos = var.lvl_embed(var.lvl_1L) + var.pos_1LC
        first = var.first_l
        x = cond.unsqueeze(1).expand(2 * B, first, -1) + var.pos_start.expand(2 * B, first, -1)
        x = x + lvl_pos[:, :first]
        f_hat, cur = torch.zeros(B, cvae, last, last), 0
        var.set_kv_cache(True)
        try:
            for si, pn in enumerate(var.patch_nums):
                cur += pn * pn
                logits = var.scale_logits(x, cond)
                t = cfg * si / (K - 1)
                logits = (1 + t) * logits[:B] - t * logits[B:]
                logits_per_scale.append(logits.clone())
                kth = logits.topk(top_k, dim=-1)[0].amin(dim=-1, keepdim=True)
                logits.masked_fill_(logits < kth, -torch.inf)
                V = logits.shape[-1]
                idx = torch.multinomial(logits.softmax(-1).view(-1, V), 1, True, generator=rng)
                tokens_per_scale.append(idx.view(B, pn * pn))
                h = quant.embedding(idx.view(B, pn * pn)).transpose_(1, 2).reshape(B, cvae, pn, pn)
                if si == K - 1:
                    break
                f_hat = f_hat + quant.phi(si)(F.interpolate(h, size=(last, last), mode="bicubic"))
                nxt = var.patch_nums[si + 1]
                small = F.interpolate(f_hat, size=(nxt, nxt), mode="area")
                x = F.linear(small.view(B, cvae, -1).transpose(1, 2), word.weight, word.bias)
                x = (x + lvl_pos[:, cur : cur + nxt * nxt]).repeat(2, 1, 1)
        finally:
            var.set_kv_cache(False)
    return logits_per_scale, tokens_per_scale


def _ours(var, vae, labels_B, g_seed, cfg, top_k):
    ramp = CfgRamp(scale=cfg, schedule="linear_ramp", num_scales=len(var.patch_nums))
    sample = sample_scales(var, vae, labels_B, torch.Generator().manual_seed(g_seed), [ramp],
                           top_k=top_k, diagnostics=True)  # fmt: skip
    return [d["logits_BlV"] for d in sample.diagnostics], sample.tokens


def _differing(first, second) -> list[int]:
    """Number of differing elements per scale (0 everywhere = bit-identical)."""
    return [int((a != b).sum()) for a, b in zip(first, second, strict=True)]


def _aten_ops(run) -> list[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return [event.name for event in prof.events() if event.name.startswith("aten::")]


def _check_official_bits(var, vae, labels_B, trainable_too=True, g_seed=0, cfg=1.5, top_k=900):
    """Ours (frozen, and trainable) against the official formula with trainable weights."""
    assert not any(p.requires_grad for p in var.parameters())  # as build_model returns it
    frozen = _ours(var, vae, labels_B, g_seed, cfg, top_k)
    var.requires_grad_(True)  # the official builder's state
    try:
        trainable = _ours(var, vae, labels_B, g_seed, cfg, top_k) if trainable_too else frozen
        official = _official_logits(var, vae, labels_B, g_seed, cfg, top_k)
    finally:
        var.requires_grad_(False)
    zeros = [0] * len(var.patch_nums)
    assert _differing(frozen[0], trainable[0]) == zeros
    assert _differing(frozen[0], official[0]) == zeros
    assert _differing(frozen[1], official[1]) == zeros


def test_frozen_and_trainable_weights_run_the_same_kernels():
    var, vae = _model(depth=1, patch_nums=[1, 2, 3], vae_ch=32)  # two strided word embeddings
    labels_B = torch.tensor(LABELS)
    frozen = _aten_ops(lambda: _ours(var, vae, labels_B, 0, 1.5, 900))
    var.requires_grad_(True)
    trainable = _aten_ops(lambda: _ours(var, vae, labels_B, 0, 1.5, 900))
    assert "aten::mm" in trainable
    assert frozen == trainable


def test_logits_are_the_official_bits_at_every_scale_small_model():
    var, vae = _small()
    _check_official_bits(var, vae, torch.tensor(LABELS))


@pytest.mark.slow
def test_logits_are_the_official_bits_at_every_scale_d16_shape():
    """Depth 16 (width 1024), patch_nums 1..16, V 4096, random weights, batch 4 (minutes)."""
    var, vae = _model()
    assert var.depth == 16 and var.patch_nums == (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    _check_official_bits(var, vae, torch.tensor(LABELS), trainable_too=False)
