"""Unit tests for VAR's CFG ramp processor: ramp values, the mixing formula and its no-op setting.

Expected values are recomputed here in VAR's own arithmetic order (docs/VAR.md, official sampler).
"""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from ssg_eval.config import CfgRampConfig
from ssg_eval.errors import ConfigError
from ssg_eval.guidance.base import NULL_CLASS, StepContext
from ssg_eval.guidance.cfg import CfgRamp, build_cfg_ramp

PATCH_NUMS_256 = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]


def _ctx(si: int, cond_BlV: torch.Tensor, uncond_BlV: torch.Tensor | None, k: int) -> StepContext:
    return StepContext(si, k, 2, None if si == 0 else 1, cond_BlV, uncond_BlV)


def test_var_ramp_values_for_cfg_1_5() -> None:
    proc = build_cfg_ramp(CfgRampConfig(scale=1.5), PATCH_NUMS_256)
    num_stages_minus_1 = len(PATCH_NUMS_256) - 1
    expected = []
    for si in range(len(PATCH_NUMS_256)):
        ratio = si / num_stages_minus_1  # VAR: ratio first ...
        expected.append(1.5 * ratio)  # ... then t = cfg * ratio
    got = [proc.ramp_value(si) for si in range(len(PATCH_NUMS_256))]
    assert got == expected  # bit-exact Python floats
    assert got == pytest.approx(
        [0, 1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6, 1, 7 / 6, 4 / 3, 1.5], abs=1e-15
    )
    assert got[0] == 0.0 and got[-1] == 1.5


def test_mix_matches_var_expression_bit_exactly() -> None:
    proc = CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=10)
    gen = torch.Generator().manual_seed(0)
    both_2BlV = 4 * torch.randn(6, 4, 11, generator=gen)  # (2B, l, V): cond rows first
    cond_BlV, uncond_BlV = both_2BlV[:3], both_2BlV[3:]
    for si in range(10):
        t = 1.5 * (si / 9)
        out_BlV, state = proc(cond_BlV, _ctx(si, cond_BlV, uncond_BlV, 10), None)
        assert state is None and out_BlV.dtype == torch.float32
        assert torch.equal(out_BlV, (1 + t) * both_2BlV[:3] - t * both_2BlV[3:])


def test_constant_schedule_uses_scale_everywhere() -> None:
    proc = CfgRamp(scale=2.0, schedule="constant", num_scales=4)
    assert [proc.ramp_value(si) for si in range(4)] == [2.0] * 4
    cond_BlV, uncond_BlV = torch.ones(1, 1, 3), torch.zeros(1, 1, 3)
    out_BlV, _ = proc(cond_BlV, _ctx(0, cond_BlV, uncond_BlV, 4), None)
    assert torch.equal(out_BlV, torch.full((1, 1, 3), 3.0))


@pytest.mark.parametrize("schedule", ["linear_ramp", "constant"])
def test_scale_zero_is_identity_and_ignores_uncond(schedule: str) -> None:
    proc = CfgRamp(scale=0.0, schedule=schedule, num_scales=3)
    cond_BlV = torch.tensor([[[1e30, -0.0, 3.5]]])
    uncond_BlV = torch.tensor([[[math.inf, math.nan, -math.inf]]])
    for si in range(3):
        out_BlV, _ = proc(cond_BlV, _ctx(si, cond_BlV, uncond_BlV, 3), None)
        assert torch.equal(out_BlV, cond_BlV)
        assert torch.equal(proc(cond_BlV, _ctx(si, cond_BlV, None, 3), None)[0], cond_BlV)


def test_single_scale_ramp_is_zero() -> None:
    assert CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=1).ramp_value(0) == 0.0


def test_missing_uncond_raises_clearly() -> None:
    proc = CfgRamp(scale=1.5, schedule="linear_ramp", num_scales=3)
    cond_BlV = torch.zeros(1, 4, 5)
    with pytest.raises(ValueError, match="logits_uncond_BlV"):
        proc(cond_BlV, _ctx(1, cond_BlV, None, 3), None)
    with pytest.raises(ValueError, match="num_scales"):
        proc(cond_BlV, _ctx(1, cond_BlV, cond_BlV, 4), None)


def test_flags_and_dictconfig_builder() -> None:
    proc = build_cfg_ramp(OmegaConf.structured(CfgRampConfig(scale=1.5)), PATCH_NUMS_256)
    assert proc.branches == (NULL_CLASS,) and not proc.branch_wise and proc.num_scales == 10
    assert proc.init_state(4) is None


@pytest.mark.parametrize(
    ("scale", "schedule", "key"),
    [
        (-0.5, "linear_ramp", "guidance.cfg_ramp.scale"),
        (math.inf, "linear_ramp", "guidance.cfg_ramp.scale"),
        ("1.5", "linear_ramp", "guidance.cfg_ramp.scale"),
        (1.5, "cosine", "guidance.cfg_ramp.schedule"),
    ],
)
def test_invalid_params_raise_with_key(scale: object, schedule: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        CfgRamp(scale=scale, schedule=schedule, num_scales=10)
