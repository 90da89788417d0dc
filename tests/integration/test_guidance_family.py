"""The reference-guidance family in the sampler: identities, the guide branch, ICG's labels.

Tiny model on CPU. The guide model's logits are checked against a standalone run of the guide
(KV cache, bit for bit) and against its block-causal teacher-forcing pass (allclose).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from ssg_eval.config import AutoguidanceConfig, GuideModelConfig, IcgConfig, SsgConfig
from ssg_eval.guidance.base import GUIDE_MODEL, RANDOM_CLASS, StepContext
from ssg_eval.guidance.cfg import CfgRamp
from ssg_eval.guidance.family import build_autoguidance, build_icg
from ssg_eval.guidance.ssg import build_ssg
from ssg_eval.models.load import build_guide, build_model
from ssg_eval.sampling import generate as generate_module
from ssg_eval.sampling.draw import make_generators
from ssg_eval.sampling.generate import build_sampling_model, generate_chunk
from ssg_eval.sampling.loop import sample_scales
from ssg_eval.sampling.plan import SamplePlan, plan_from_config
from ssg_eval.sampling.runner import run_rank
from tests.integration.test_distributed import _contents
from tests.unit.test_models import load_model_config

PATCH_NUMS = [1, 2, 3]


@pytest.fixture(scope="module")
def tiny():
    model_cfg = load_model_config("tiny")
    var, vae, _ = build_model(model_cfg)
    return model_cfg, var, vae


def _same_guide(model_cfg) -> GuideModelConfig:
    return GuideModelConfig(depth=int(model_cfg.depth), var_ckpt=None,
                            init_seed=int(model_cfg.init_seed))  # fmt: skip


# ------------------------------------------------------------------ identities of the family
@pytest.mark.parametrize(
    "proc",
    [
        CfgRamp(scale=1.5, schedule="constant", num_scales=3, arithmetic="delta"),
        build_icg(IcgConfig(scale=2.0, schedule="constant"), PATCH_NUMS),
        build_autoguidance(AutoguidanceConfig(scale=3.0, schedule="constant"), PATCH_NUMS),
    ],
    ids=["cfg_delta", "icg", "autoguidance"],
)
def test_reference_equal_to_the_logits_is_a_bit_exact_identity(proc):
    gen = torch.Generator().manual_seed(0)
    for si, pn in enumerate(PATCH_NUMS):
        logits_BlV = 7 * torch.randn(2, pn * pn, 16, generator=gen)
        same = {RANDOM_CLASS: logits_BlV.clone(), GUIDE_MODEL: logits_BlV.clone()}
        ctx = StepContext(si, 3, pn, PATCH_NUMS[si - 1] if si else None, logits_BlV,
                          logits_BlV.clone(), same)  # fmt: skip
        out_BlV, _ = proc(logits_BlV, ctx, None)
        assert proc.weight(si) != 0.0 and torch.equal(out_BlV, logits_BlV)
        other = dataclasses.replace(ctx, logits_uncond_BlV=-logits_BlV,
                                    branch_logits={k: -v for k, v in same.items()})  # fmt: skip
        assert not torch.equal(proc(logits_BlV, other, None)[0], logits_BlV)  # it does act


def test_ssg_with_a_prior_equal_to_the_logits_is_an_identity():
    # A constant map over space: DSE keeps constants, so the prior equals the logits exactly
    # only up to the DCT's rounding; the family's delta form turns an exact zero into identity.
    proc = build_ssg(SsgConfig(beta=2.0, prior_mode="interpolate_only", interpolation="nearest"),
                     PATCH_NUMS)  # fmt: skip
    row_1V = torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
    state = None
    for si, pn in enumerate(PATCH_NUMS):
        logits_BlV = row_1V.expand(1, pn * pn, 16).contiguous()
        ctx = StepContext(si, 3, pn, PATCH_NUMS[si - 1] if si else None, logits_BlV, None)
        out_BlV, state = proc(logits_BlV, ctx, state)
        assert torch.equal(out_BlV, logits_BlV)


# ------------------------------------------------------------------ autoguidance in the sampler
def _tokens(var, vae, processors, labels, **kwargs) -> torch.Tensor:
    generators = make_generators(range(len(labels)), "cpu")
    sample = sample_scales(
        var, vae, torch.tensor(labels), generators, processors, top_k=8, **kwargs
    )
    return torch.cat(sample.tokens, dim=1)


def test_model_as_its_own_guide_is_an_identity(tiny):
    model_cfg, var, vae = tiny
    guide, info = build_guide(model_cfg, _same_guide(model_cfg))
    assert info["guide_var_ckpt"] is None
    labels = [0, 3, 7, 9]
    auto = build_autoguidance(AutoguidanceConfig(scale=2.0, schedule="constant"), PATCH_NUMS)
    ssg = build_ssg(SsgConfig(beta=0.7), PATCH_NUMS)
    assert torch.equal(
        _tokens(var, vae, [auto], labels, guide=guide), _tokens(var, vae, [], labels)
    )
    assert torch.equal(_tokens(var, vae, [auto, ssg], labels, guide=guide),
                       _tokens(var, vae, [ssg], labels))  # fmt: skip
    weaker, _ = build_guide(model_cfg, dataclasses.replace(_same_guide(model_cfg), depth=1))
    assert not torch.equal(_tokens(var, vae, [auto], labels, guide=weaker),
                           _tokens(var, vae, [], labels))  # fmt: skip


def test_the_main_model_object_as_guide_is_refused(tiny):
    # One object would hold one KV cache for both: the guide's rows would be read back as the main
    # model's context. A separate instance with the same weights (above) is the identity.
    model_cfg, var, vae = tiny
    auto = build_autoguidance(AutoguidanceConfig(scale=2.0, schedule="constant"), PATCH_NUMS)
    with pytest.raises(ValueError, match="main model object or shares modules with it"):
        _tokens(var, vae, [auto], [0, 3], guide=var)
    twin = copy.deepcopy(var)
    twin.blocks[0] = var.blocks[0]  # one shared attention block is enough to share the cache
    with pytest.raises(ValueError, match="separate instance"):
        _tokens(var, vae, [auto], [0, 3], guide=twin)
    assert torch.equal(_tokens(var, vae, [auto], [0, 3], guide=copy.deepcopy(var)),
                       _tokens(var, vae, [], [0, 3]))  # fmt: skip


class GuideSpy:
    """Reads the guide branch and records it (a processor that changes nothing)."""

    branch_wise, branches = False, (GUIDE_MODEL,)

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def init_state(self, batch_size: int) -> None:
        return None

    def __call__(self, logits_BlV, ctx, state):
        self.seen.append(ctx.branch_logits[GUIDE_MODEL].clone())
        return logits_BlV, state


def test_guide_logits_equal_a_standalone_run_of_the_guide(tiny):
    model_cfg, var, vae = tiny
    guide, _ = build_guide(model_cfg, dataclasses.replace(_same_guide(model_cfg), depth=1,
                                                          init_seed=99))  # fmt: skip
    labels_B = torch.tensor([1, 5, 8])
    spy = GuideSpy()
    sample = sample_scales(var, vae, labels_B, make_generators([4, 5, 6], "cpu"),
                           [CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=3), spy],
                           guide=guide, top_k=8)  # fmt: skip
    # the guide alone, fed the sampled tokens through the shared VQVAE, scale by scale
    with torch.inference_mode():
        cond_BD = guide.class_condition(labels_B)
        x_BlC = guide.first_scale_input(cond_BD)
        f_hat = torch.zeros(3, vae.cvae, PATCH_NUMS[-1], PATCH_NUMS[-1])
        inputs, standalone = [x_BlC], []
        guide.set_kv_cache(True)
        try:
            for si, pn in enumerate(PATCH_NUMS):
                standalone.append(guide.scale_logits(x_BlC, cond_BD))
                f_hat, next_BChw = vae.accumulate(
                    si, f_hat, vae.embed_tokens(sample.tokens[si], pn)
                )
                if next_BChw is not None:
                    x_BlC = guide.next_scale_input(next_BChw, si + 1)
                    inputs.append(x_BlC)
        finally:
            guide.set_kv_cache(False)
        forced_BLV = guide.teacher_forcing_logits(cond_BD, torch.cat(inputs, dim=1))
    assert all(map(torch.equal, spy.seen, standalone))
    torch.testing.assert_close(torch.cat(spy.seen, dim=1), forced_BLV, rtol=1e-5, atol=1e-5)


def test_missing_branch_inputs_are_named(tiny):
    _, var, vae = tiny
    icg = build_icg(IcgConfig(), PATCH_NUMS)
    auto = build_autoguidance(AutoguidanceConfig(), PATCH_NUMS)
    with pytest.raises(ValueError, match="random_labels_B"):
        _tokens(var, vae, [icg], [1, 2])
    with pytest.raises(ValueError, match="guide="):
        _tokens(var, vae, [auto], [1, 2])


# ------------------------------------------------------------------ ICG's random labels
def test_reference_labels_are_per_index():
    plan = SamplePlan(num_samples=40, num_classes=10, chunk_size=8, seed=3)
    labels = plan.reference_labels(range(40))
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 10
    assert len(set(labels.tolist())) > 5  # not constant
    assert np.array_equal(plan.reference_labels([17, 2]), labels[[17, 2]])
    other_seed = SamplePlan(num_samples=40, num_classes=10, chunk_size=8, seed=4)
    assert not np.array_equal(other_seed.reference_labels(range(40)), labels)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_icg_labels_and_images_do_not_depend_on_batch_size(tiny_cfg, monkeypatch, batch_size):
    cfg = tiny_cfg("guidance=icg", f"sampler.batch_size={batch_size}")
    plan = plan_from_config(cfg)
    model = build_sampling_model(cfg, torch.device("cpu"))
    seen: list[torch.Tensor] = []
    real = generate_module.batch_inputs

    def spy(*args, **kwargs):
        inputs = real(*args, **kwargs)
        seen.append(inputs["random_labels_B"])
        return inputs

    monkeypatch.setattr(generate_module, "batch_inputs", spy)
    images = generate_chunk(model, cfg, plan, 1, torch.device("cpu"))
    assert torch.cat(seen).tolist() == plan.reference_labels(plan.chunk_indices(1)).tolist()
    reference = generate_chunk(model, tiny_cfg("guidance=icg", "sampler.batch_size=8"), plan, 1,
                               torch.device("cpu"))  # fmt: skip
    assert np.array_equal(images, reference)


def test_icg_shards_do_not_depend_on_world_size(tiny_cfg, tmp_path):
    one = tiny_cfg("guidance=icg", "runtime.measure_latency=false", f"paths.results={tmp_path}/1")
    two = tiny_cfg("guidance=icg", "runtime.measure_latency=false", f"paths.results={tmp_path}/2")
    run_rank(one, 0, 1)
    for rank in range(2):
        run_rank(two, rank, 2)
    first = _contents(tmp_path / "1" / "runs" / str(one.run_name))
    assert first and first == _contents(tmp_path / "2" / "runs" / str(two.run_name))


# ------------------------------------------------------------------ the guide's checkpoint
def test_guide_loads_strictly_and_names_its_own_keys(tiny, tiny_cfg, tmp_path):
    from ssg_eval.errors import CheckpointError

    model_cfg, var, _ = tiny
    torch.save(var.state_dict(), tmp_path / "guide.pth")
    cfg = tiny_cfg("guidance=autoguidance", "guidance.autoguidance.guide.depth=2",
                   f"guidance.autoguidance.guide.var_ckpt={tmp_path / 'guide.pth'}")  # fmt: skip
    model = build_sampling_model(cfg, torch.device("cpu"))
    assert model.info["guide_var_ckpt"] == str(tmp_path / "guide.pth")
    assert len(model.info["guide_var_sha256"]) == 64
    guide_sd, var_sd = model.guide.state_dict(), var.state_dict()
    assert guide_sd.keys() == var_sd.keys()
    assert all(torch.equal(guide_sd[k], var_sd[k]) for k in var_sd)
    wrong = dataclasses.replace(
        _same_guide(model_cfg), depth=3, var_ckpt=str(tmp_path / "guide.pth")
    )
    with pytest.raises(CheckpointError) as info:
        build_guide(model_cfg, wrong)
    message = str(info.value)
    assert "guidance.autoguidance.guide.var_ckpt" in message
    assert "set guidance.autoguidance.guide.depth=2" in message
    missing = dataclasses.replace(wrong, var_ckpt=str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match="guidance.autoguidance.guide.var_ckpt"):
        build_guide(model_cfg, missing)


def test_branches_read_by_several_processors_run_once_in_one_batch(tiny, monkeypatch):
    model_cfg, var, vae = tiny
    guide, _ = build_guide(model_cfg, dataclasses.replace(_same_guide(model_cfg), depth=1))
    rows: list[int] = []
    original = var.scale_logits
    monkeypatch.setattr(var, "scale_logits", lambda x, c: rows.append(x.shape[0]) or original(x, c))
    processors = [
        CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=3),
        build_icg(IcgConfig(), PATCH_NUMS),
        CfgRamp(scale=0.5, schedule="constant", num_scales=3),
        build_autoguidance(AutoguidanceConfig(), PATCH_NUMS),
    ]
    _tokens(var, vae, processors, [1, 2], random_labels_B=torch.tensor([5, 6]), guide=guide)
    assert rows == [3 * 2] * len(PATCH_NUMS)  # [cond; null; random], the guide on its own


def test_missing_guide_checkpoint_is_listed_up_front(tiny_cfg, tmp_path):
    from ssg_eval.stages.preflight import missing_inputs

    cfg = tiny_cfg(
        "guidance=autoguidance", f"guidance.autoguidance.guide.var_ckpt={tmp_path}/g.pth"
    )
    assert any(line.startswith("guidance.autoguidance.guide.var_ckpt:") for line in
               missing_inputs(cfg))  # fmt: skip
    cfg = tiny_cfg("guidance=cfg")
    assert not any("guide" in line for line in missing_inputs(cfg))


def test_combined_conf_files_keep_each_part():
    """autoguidance_ssg = autoguidance's guide + cfg_ssg's SSG keys; ssg = cfg_ssg without CFG."""
    from tests.conftest import compose_config

    def guidance(name):
        return compose_config([f"guidance={name}"]).guidance

    both, auto, paper = guidance("autoguidance_ssg"), guidance("autoguidance"), guidance("cfg_ssg")
    assert both.autoguidance == auto.autoguidance and both.autoguidance.guide.var_ckpt is not None
    assert both.ssg == paper.ssg and list(both.order) == ["autoguidance", "ssg"]
    assert guidance("ssg").ssg == paper.ssg and list(guidance("ssg").order) == ["ssg"]
