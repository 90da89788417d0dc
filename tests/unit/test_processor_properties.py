"""Contract tests run over every processor registered in `ssg_eval.registry.PROCESSORS`.

Each property of the processor contract in docs/CONTRIBUTING.md (inputs untouched, shape/dtype
kept, neutral = identity, declared branches, no RNG, frozen attributes, per-batch state) is
checked for several configs of every processor;
`build_processors` is checked on the conf/guidance files.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from ssg_eval.config import (
    AutoguidanceConfig,
    CfgRampConfig,
    GuidanceConfig,
    IcgConfig,
    SsgConfig,
)
from ssg_eval.errors import ConfigError
from ssg_eval.guidance import build_processors
from ssg_eval.guidance.base import BRANCHES, NULL_CLASS, LogitProcessor, StepContext
from ssg_eval.registry import PROCESSORS, lookup
from tests.conftest import compose_config

PATCH_NUMS = [1, 2, 3, 4]
V = 8
_SSG = SsgConfig()

# name -> [(case id, config node, is the neutral setting)]; every registered name must appear.
CASES: dict[str, list[tuple[str, object, bool]]] = {
    "cfg_ramp": [
        ("ramp_1.5", CfgRampConfig(scale=1.5), False),
        ("constant_2", CfgRampConfig(scale=2.0, schedule="constant"), False),
        ("neutral_ramp", CfgRampConfig(scale=0.0), True),
        ("neutral_constant", CfgRampConfig(scale=0.0, schedule="constant"), True),
    ],
    "icg": [
        ("ramp_1.5", IcgConfig(scale=1.5), False),
        (
            "constant_window_mix",
            IcgConfig(scale=2.0, schedule="constant", scale_indices=[1, 3], arithmetic="mix"),
            False,
        ),
        ("neutral", IcgConfig(scale=0.0), True),
    ],
    "autoguidance": [
        ("ramp_1", AutoguidanceConfig(scale=1.0), False),
        ("constant_2", AutoguidanceConfig(scale=2.0, schedule="constant"), False),
        ("neutral", AutoguidanceConfig(scale=0.0, schedule="constant"), True),
    ],
    "ssg": [
        ("default", _SSG, False),
        (
            "per_branch_post_logsoftmax_bicubic",
            dataclasses.replace(
                _SSG,
                placement="per_branch",
                prior_source="guided_post_ssg",
                logit_space="log_softmax",
                interpolation="bicubic",
                coarse_block_scale="none",
            ),
            False,
        ),
        (
            "cond_only_interp_decay",
            dataclasses.replace(
                _SSG,
                prior_source="cond_only",
                prior_mode="interpolate_only",
                interpolation="area",
                beta=1.0,
                beta_schedule="linear_decay",
                beta_end=0.2,
                scale_indices=[2, 3],
            ),
            False,
        ),
        ("neutral", dataclasses.replace(_SSG, beta=0.0), True),
        (
            "neutral_per_branch_logsoftmax",
            dataclasses.replace(
                _SSG,
                beta=0.0,
                placement="per_branch",
                logit_space="log_softmax",
                prior_source="guided_post_ssg",
            ),
            True,
        ),
    ],
}
PARAMS = [
    pytest.param(name, cfg, neutral, id=f"{name}-{case}")
    for name, cases in CASES.items()
    for case, cfg, neutral in cases
]
NEUTRAL_PARAMS = [p for p in PARAMS if p.values[2]]


def _build(name: str, cfg: object) -> LogitProcessor:
    return lookup(PROCESSORS, name, "guidance.order")(cfg, PATCH_NUMS)


def _steps(seed: int, batch: int, dtype: torch.dtype = torch.float32) -> list[tuple]:
    gen = torch.Generator().manual_seed(seed)
    return [
        tuple(3 * torch.randn(batch, pn * pn, V, generator=gen).to(dtype) for _ in range(2))
        for pn in PATCH_NUMS
    ]


def _ctx(si: int, cond_BlV: torch.Tensor, uncond_BlV: torch.Tensor | None) -> StepContext:
    # the extra branches of ICG and autoguidance are always run: they are not the null class
    prev = PATCH_NUMS[si - 1] if si else None
    branches = {"random_class": -cond_BlV, "guide_model": 0.5 * cond_BlV}
    return StepContext(si, len(PATCH_NUMS), PATCH_NUMS[si], prev, cond_BlV, uncond_BlV, branches)


def _call(proc: LogitProcessor, step: tuple, si: int, state: object, with_uncond: bool = True):
    cond_BlV, uncond_BlV = step
    return proc(cond_BlV, _ctx(si, cond_BlV, uncond_BlV if with_uncond else None), state)


def _run(proc: LogitProcessor, steps: list[tuple], with_uncond: bool = True) -> list[torch.Tensor]:
    state, outs = proc.init_state(steps[0][0].shape[0]), []
    for si, step in enumerate(steps):
        out_BlV, state = _call(proc, step, si, state, with_uncond)
        outs.append(out_BlV.clone())
    return outs


def _tree_clone(x: object) -> object:
    if isinstance(x, torch.Tensor):
        return x.clone()
    return copy.deepcopy(x)


def _tree_equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_tree_equal, a, b))
    return type(a) is type(b) and a == b


def test_every_registered_processor_has_cases() -> None:
    assert set(CASES) == set(PROCESSORS)
    assert all(any(neutral for _, _, neutral in cases) for cases in CASES.values())


@pytest.mark.parametrize(("name", "cfg", "neutral"), PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_untouched_and_shape_dtype_kept(name, cfg, neutral, dtype) -> None:
    proc = _build(name, cfg)
    state = proc.init_state(2)
    for si, step in enumerate(_steps(0, 2, dtype)):
        before = (_tree_clone(step), _tree_clone(state))
        out_BlV, new_state = _call(proc, step, si, state)
        assert _tree_equal(before, (step, state)), f"input, ctx or state modified at scale {si}"
        assert out_BlV.shape == step[0].shape and out_BlV.dtype == dtype
        assert bool(torch.isfinite(out_BlV).all())
        state = new_state


@pytest.mark.parametrize(("name", "cfg", "neutral"), NEUTRAL_PARAMS)
def test_neutral_setting_is_bit_exact_identity(name, cfg, neutral) -> None:
    steps = _steps(1, 2)
    for out_BlV, (cond_BlV, _) in zip(_run(_build(name, cfg), steps), steps, strict=True):
        assert torch.equal(out_BlV, cond_BlV)


def _run_shifted(proc: LogitProcessor, steps: list[tuple], branch: str) -> list[torch.Tensor]:
    """`_run` with one extra branch's logits moved by +1.5 (null_class: the uncond logits)."""
    state, outs = proc.init_state(steps[0][0].shape[0]), []
    for si, (cond_BlV, uncond_BlV) in enumerate(steps):
        ctx = _ctx(si, cond_BlV, uncond_BlV + 1.5 if branch == NULL_CLASS else uncond_BlV)
        if branch != NULL_CLASS:
            moved = {**ctx.branch_logits, branch: ctx.branch_logits[branch] + 1.5}
            ctx = dataclasses.replace(ctx, branch_logits=moved)
        out_BlV, state = proc(cond_BlV, ctx, state)
        outs.append(out_BlV.clone())
    return outs


@pytest.mark.parametrize(("name", "cfg", "neutral"), PARAMS)
def test_branches_honoured(name, cfg, neutral) -> None:
    # The sampler runs (and pays for) exactly the declared branches: a processor must read every
    # branch it declares (unless neutral) and none that it does not.
    proc = _build(name, cfg)
    assert isinstance(proc, LogitProcessor)
    assert isinstance(proc.branch_wise, bool)
    assert set(proc.branches) <= set(BRANCHES)
    steps = _steps(2, 2)
    plain = _run(proc, steps)
    if NULL_CLASS not in proc.branches:
        without = _run(proc, steps, with_uncond=False)
        assert all(map(torch.equal, plain, without))
    for branch in BRANCHES:
        moved = _run_shifted(proc, steps, branch)
        changed = any(not torch.equal(a, b) for a, b in zip(plain, moved, strict=True))
        if branch not in proc.branches:
            assert not changed, f"reads the undeclared branch {branch}"
        elif not neutral:
            assert changed, f"declares the {branch} branch but never reads it"


@pytest.mark.parametrize(("name", "cfg", "neutral"), PARAMS)
def test_no_randomness_and_frozen_attributes(name, cfg, neutral) -> None:
    proc = _build(name, cfg)
    attributes = copy.deepcopy(vars(proc))
    steps = _steps(3, 2)
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()
    first = _run(proc, steps)
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert _tree_equal(np.random.get_state(), numpy_rng)
    assert _tree_equal(vars(proc), attributes)
    assert all(map(torch.equal, first, _run(proc, steps)))  # deterministic rerun


@pytest.mark.parametrize(("name", "cfg", "neutral"), PARAMS)
def test_one_instance_serves_interleaved_batches(name, cfg, neutral) -> None:
    steps_a, steps_b = _steps(4, 2), _steps(5, 3)
    alone_a, alone_b = _run(_build(name, cfg), steps_a), _run(_build(name, cfg), steps_b)
    proc = _build(name, cfg)
    state_a, state_b = proc.init_state(2), proc.init_state(3)
    for si in range(len(PATCH_NUMS)):
        out_a, state_a = _call(proc, steps_a[si], si, state_a)
        out_b, state_b = _call(proc, steps_b[si], si, state_b)
        assert torch.equal(out_a, alone_a[si]) and torch.equal(out_b, alone_b[si])


@pytest.mark.parametrize(("name", "cfg", "neutral"), PARAMS)
def test_state_survives_later_in_place_edits(name, cfg, neutral) -> None:
    # The sampler may truncate (write -inf) after the processors; carried state must not alias.
    steps = _steps(6, 2)
    clean = _run(_build(name, cfg), steps)
    proc = _build(name, cfg)
    state = proc.init_state(2)
    for si, step in enumerate(steps):
        step = _tree_clone(step)
        out_BlV, state = _call(proc, step, si, state)
        assert torch.equal(out_BlV, clean[si])
        for tensor in (*step, out_BlV):
            tensor.fill_(-math.inf)


@pytest.mark.parametrize(
    ("guidance", "expected"),
    [
        ("none", []),
        ("cfg", ["CfgRamp"]),
        ("cfg_ssg", ["CfgRamp", "Ssg"]),
        ("ssg", ["Ssg"]),
        ("icg", ["Icg"]),
        ("autoguidance", ["Autoguidance"]),
        ("autoguidance_ssg", ["Autoguidance", "Ssg"]),
    ],
)
def test_build_processors_from_conf_files(guidance: str, expected: list[str]) -> None:
    cfg = compose_config([f"guidance={guidance}", "model=var_d16"])
    processors = build_processors(cfg.guidance, list(cfg.model.patch_nums))
    assert [type(p).__name__ for p in processors] == expected


def test_build_processors_follows_order() -> None:
    cfg = compose_config(["guidance=cfg_ssg", "guidance.order=[ssg,cfg_ramp]"])
    assert [type(p).__name__ for p in build_processors(cfg.guidance, [1, 2, 3])] == [
        "Ssg",
        "CfgRamp",
    ]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"order": ["cfg_ramp", "top_k"]}, "guidance.order='top_k' is not registered"),
        ({"order": ["cfg_ramp", "cfg_ramp"]}, "more than once"),
        ({"order": ["ssg"], "ssg": SsgConfig(beta=-1.0)}, "guidance.ssg.beta"),
        ({"order": ["icg"], "icg": IcgConfig(scale_indices=[7])}, "guidance.icg.scale_indices"),
    ],
)
def test_build_processors_rejects_bad_guidance(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_processors(dataclasses.replace(GuidanceConfig(), **overrides), PATCH_NUMS)
