"""VAR's `more_smooth` path against a written-out transcription of the official formula, and one
official call reproduced from Hydra (`sampler.rng=official`, `sampler.g_seed`, `official_labels`).

The transcription below spells out the official per-scale update with plain torch ops on the
tiny oracle model (docs/EQUIVALENCE.md): CFG mix, multinomial draw, then a Gumbel block from the
same generator, soft one-hot times the codebook, bicubic + phi, area resize.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ssg_eval.guidance.cfg import CfgRamp
from ssg_eval.models.load import build_model
from ssg_eval.sampling.draw import make_generators
from ssg_eval.sampling.loop import generate_batch
from ssg_eval.sampling.runner import sample_run
from ssg_eval.sampling.shards import shard_path, to_uint8
from tests.conftest import compose_config
from tests.integration.test_oracle_parity import run_case
from tests.unit.test_models import load_model_config


def _official_more_smooth(var, vae, labels_B, g_seed, cfg, top_k, top_p):
    """A transcription of the official call with more_smooth=True (labels given, CPU)."""
    rng = torch.Generator().manual_seed(g_seed)
    B, K = labels_B.shape[0], len(var.patch_nums)
    quant = vae.quantize
    last = var.patch_nums[-1]
    with torch.inference_mode():
        cond_BD = var.class_condition(torch.cat((labels_B, torch.full_like(labels_B, 10))))
        x = var.first_scale_input(cond_BD)
        f_hat = torch.zeros(B, vae.cvae, last, last)
        var.set_kv_cache(True)
        try:
            for si, pn in enumerate(var.patch_nums):
                ratio = si / (K - 1)
                logits = var.scale_logits(x, cond_BD)
                t = cfg * ratio
                logits = (1 + t) * logits[:B] - t * logits[B:]
                if top_k > 0:
                    kth = logits.topk(top_k, dim=-1)[0].amin(dim=-1, keepdim=True)
                    logits.masked_fill_(logits < kth, -torch.inf)
                assert top_p == 0.0  # the transcription covers the default call
                V = logits.shape[-1]
                torch.multinomial(
                    logits.softmax(-1).view(-1, V), 1, replacement=True, generator=rng
                )
                tau = max(0.27 * (1 - ratio * 0.95), 0.005)
                scaled = logits.mul(1 + ratio)
                gumbels = -torch.empty_like(scaled).exponential_(generator=rng).log()
                soft = ((scaled + gumbels) / tau).softmax(-1)
                h = (soft @ quant.embedding.weight.unsqueeze(0)).transpose(1, 2)
                h = h.reshape(B, vae.cvae, pn, pn)
                if si != K - 1:
                    f_hat = f_hat + quant.phi(si)(
                        F.interpolate(h, size=(last, last), mode="bicubic")
                    )
                    nxt = var.patch_nums[si + 1]
                    x = var.next_scale_input(
                        F.interpolate(f_hat, size=(nxt, nxt), mode="area"), si + 1
                    )
                    x = x.repeat(2, 1, 1)
                else:
                    f_hat = f_hat + quant.phi(si)(h)
        finally:
            var.set_kv_cache(False)
        return vae.decode(f_hat).float().add(1).mul(0.5)


def _oracle():
    var, vae, _ = build_model(load_model_config("tiny_oracle"))
    return var, vae


def test_more_smooth_matches_the_official_formula():
    var, vae = _oracle()
    labels_B = torch.tensor([1, 2, 3, 4])
    for cfg, top_k in [(1.5, 0), (4.0, 900)]:
        expected = _official_more_smooth(var, vae, labels_B, 3, cfg, top_k, 0.0)
        ramp = CfgRamp(scale=cfg, schedule="linear_ramp", num_scales=4)
        got = generate_batch(var, vae, labels_B, torch.Generator().manual_seed(3), [ramp],
                             top_k=top_k, more_smooth=True)  # fmt: skip
        assert torch.equal(got, expected)
        plain = generate_batch(var, vae, labels_B, torch.Generator().manual_seed(3), [ramp],
                               top_k=top_k)  # fmt: skip
        assert not torch.equal(got, plain)


def test_more_smooth_per_sample_generators_do_not_depend_on_the_batch():
    var, vae = _oracle()
    ramp = CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=4)
    labels = torch.tensor([1, 2, 3])
    whole = generate_batch(var, vae, labels, make_generators([7, 8, 9], "cpu"), [ramp],
                           more_smooth=True)  # fmt: skip
    alone = generate_batch(var, vae, labels[1:2], make_generators([8], "cpu"), [ramp],
                           more_smooth=True)  # fmt: skip
    torch.testing.assert_close(alone, whole[1:2], rtol=0, atol=2e-5)  # decoder batch rounding


def test_hydra_reproduces_one_official_call(tmp_path):
    """experiment=official_call as written is case A of the oracle: labels [0, 3, 7, 9], g_seed 0,
    cfg 1.5, top-k 900, top-p 0.96."""
    cfg = compose_config(
        ["experiment=official_call", "runtime.device=cpu", f"paths.results={tmp_path}"]
    )
    assert cfg.model.name == "tiny_oracle" and cfg.sampler.rng == "official"
    directory = sample_run(cfg)
    with np.load(shard_path(directory, 0)) as shard:
        images, labels = shard["images"], shard["labels"]
    _, _, official = run_case(*_oracle(), "A")
    assert labels.tolist() == [0, 3, 7, 9]
    assert np.array_equal(images, to_uint8(official, "nearest"))
