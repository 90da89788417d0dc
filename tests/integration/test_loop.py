"""The next-scale loop on the tiny model: per-sample RNG, branches, processor order, cleanup."""

from __future__ import annotations

import pytest
import torch

from ssg_eval.guidance.base import NULL_CLASS
from ssg_eval.guidance.cfg import CfgRamp
from ssg_eval.models.load import build_model
from ssg_eval.sampling.draw import make_generators, official_labels, sample_tokens
from ssg_eval.sampling.loop import generate_batch
from tests.unit.test_models import load_model_config


@pytest.fixture(scope="module")
def tiny():
    var, vae, _ = build_model(load_model_config("tiny"))
    return var, vae


def _cfg(var, scale: float = 1.5) -> CfgRamp:
    return CfgRamp(scale=scale, schedule="linear_ramp", num_scales=len(var.patch_nums))


def _generate(var, vae, labels, generators, processors, **kwargs):
    tokens: list[torch.Tensor] = []
    images = generate_batch(
        var,
        vae,
        torch.tensor(labels),
        generators,
        processors,
        observer=lambda si, info: tokens.append(info["tokens_Bl"]),
        **kwargs,
    )
    return torch.cat(tokens, dim=1), images


class Identity:
    """A processor that needs only the conditional branch."""

    branches = ()
    branch_wise = False

    def init_state(self, batch_size: int) -> None:
        return None

    def __call__(self, logits_BlV, ctx, state):
        return logits_BlV, state


class BranchShift:
    """Branch-wise: adds `delta` to whichever branch it gets; counts calls in its state."""

    branches = (NULL_CLASS,)
    branch_wise = True

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.log: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []

    def init_state(self, batch_size: int) -> int:
        return 0

    def __call__(self, logits_BlV, ctx, state):
        out = logits_BlV + self.delta
        self.log.append((ctx.scale_index, state, logits_BlV, out))
        return out, state + 1


class CheckRunning:
    """Non-branch-wise: records what it is given."""

    branches = ()
    branch_wise = False

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def init_state(self, batch_size: int) -> None:
        return None

    def __call__(self, logits_BlV, ctx, state):
        self.seen.append((logits_BlV, ctx.logits_cond_BlV, ctx.logits_uncond_BlV))
        return logits_BlV, state


def test_per_sample_generators_do_not_depend_on_batch_composition(tiny):
    var, vae = tiny
    seeds = list(range(100, 108))
    labels = [3, 1, 4, 1, 5, 9, 2, 6]
    kwargs = dict(top_k=6, top_p=0.9)
    ref_tokens, ref_images = _generate(
        var, vae, labels, make_generators(seeds, "cpu"), [_cfg(var)], **kwargs
    )
    for start, size in [(5, 1), (2, 3)]:
        part = slice(start, start + size)
        tokens, images = _generate(
            var, vae, labels[part], make_generators(seeds[part], "cpu"), [_cfg(var)], **kwargs
        )
        assert torch.equal(tokens, ref_tokens[part])
        # identical tokens and f̂; the decoder's convolutions depend on the batch size (≤ ~5e-6)
        torch.testing.assert_close(images, ref_images[part], rtol=0, atol=2e-5)


def test_single_generator_is_the_official_stream(tiny):
    var, vae = tiny
    logits_BlV = torch.randn(1, 9, var.vocab_size, generator=torch.Generator().manual_seed(0))
    one = sample_tokens(logits_BlV, torch.Generator().manual_seed(5))
    per_sample = sample_tokens(logits_BlV, make_generators([5], "cpu"))
    assert one.dtype == torch.int64 and torch.equal(one, per_sample)
    with pytest.raises(ValueError, match="generators"):
        sample_tokens(torch.zeros(2, 1, 4), make_generators([1], "cpu"))
    with pytest.raises(ValueError, match="1 generators for a batch of 2"):
        generate_batch(var, vae, torch.tensor([0, 1]), make_generators([1], "cpu"), [])


def test_official_labels_are_the_first_draw():
    labels = official_labels(4, 10, torch.Generator().manual_seed(42))
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize(
    "processors,factor", [([], 1), ([Identity()], 1), ([Identity(), "cfg"], 2)]
)
def test_uncond_branch_runs_only_when_needed(tiny, monkeypatch, processors, factor):
    var, vae = tiny
    processors = [_cfg(var) if p == "cfg" else p for p in processors]
    rows: list[int] = []
    original = var.scale_logits

    def spy(x_BlC, cond_BD):
        rows.append(x_BlC.shape[0])
        assert cond_BD.shape[0] == x_BlC.shape[0]
        return original(x_BlC, cond_BD)

    monkeypatch.setattr(var, "scale_logits", spy)
    _generate(var, vae, [1, 2, 3], make_generators([0, 1, 2], "cpu"), processors)
    assert rows == [3 * factor] * len(var.patch_nums)


def test_branch_wise_processors_run_first_with_their_own_states(tiny):
    var, vae = tiny
    shift, check = BranchShift(0.25), CheckRunning()
    _generate(var, vae, [1, 2], make_generators([0, 1], "cpu"), [check, shift, _cfg(var, 0.0)])
    K = len(var.patch_nums)
    # per scale: cond call then uncond call, each branch counting its own calls
    assert [(si, state) for si, state, _, _ in shift.log] == [
        (si, si) for si in range(K) for _ in range(2)
    ]
    for si in range(K):
        (_, _, cond_in, cond_out), (_, _, uncond_in, uncond_out) = shift.log[2 * si : 2 * si + 2]
        running, ctx_cond, ctx_uncond = check.seen[si]
        assert ctx_cond is cond_out and ctx_uncond is uncond_out  # ctx rebuilt from the edits
        assert torch.equal(running, cond_out)  # running logits start from the edited cond
        assert not torch.equal(cond_in, uncond_in)  # different classes in the two branches


def test_observer_gets_clones_of_pre_truncation_logits(tiny):
    var, vae = tiny
    infos: list[dict] = []

    def observer(si, info):
        infos.append(info)
        info["f_hat_BCHW"].fill_(1e6)  # must not leak into the sample

    kwargs = dict(top_k=1)
    plain = generate_batch(var, vae, torch.tensor([4]), make_generators([9], "cpu"), [], **kwargs)
    seen = generate_batch(
        var, vae, torch.tensor([4]), make_generators([9], "cpu"), [], observer=observer, **kwargs
    )
    assert torch.equal(plain, seen)
    assert [sorted(i) for i in infos] == [["f_hat_BCHW", "logits_BlV", "tokens_Bl"]] * len(infos)
    for info in infos:
        assert info["logits_BlV"].isfinite().all()  # before top-k masked anything
        assert torch.equal(info["tokens_Bl"], info["logits_BlV"].argmax(dim=-1))


def test_kv_cache_is_switched_off_after_an_error(tiny):
    var, vae = tiny

    class Boom(Identity):
        def __call__(self, logits_BlV, ctx, state):
            if ctx.scale_index == 1:
                raise RuntimeError("boom")
            return logits_BlV, state

    with pytest.raises(RuntimeError, match="boom"):
        _generate(var, vae, [0], make_generators([0], "cpu"), [Boom()])
    assert all(not b.attn.caching and b.attn.cached_k_BHLc is None for b in var.blocks)


def test_reduced_precision_paths_return_float32_images(tiny):
    var, vae = tiny
    _, images = _generate(
        var,
        vae,
        [0, 1],
        make_generators([0, 1], "cpu"),
        [_cfg(var)],
        autocast_dtype=torch.bfloat16,
        decode_dtype=torch.bfloat16,
    )
    assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
