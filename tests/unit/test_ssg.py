"""Unit tests for the SSG processor against a hand-written numpy version of the method.

The reference re-derives docs/METHOD.md with numpy/scipy only (bilinear or nearest matrices,
`scipy.fft.dctn`), so no code under test is reused to build expectations.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.fft
import torch
from omegaconf import OmegaConf

from ssg_eval.config import SsgConfig
from ssg_eval.errors import ConfigError
from ssg_eval.guidance.base import StepContext
from ssg_eval.guidance.ssg import Ssg, beta_per_scale, build_ssg

PATCH_NUMS = [1, 2, 3, 5]
B, V = 2, 6


def _ssg(**overrides: object) -> Ssg:
    return build_ssg(dataclasses.replace(SsgConfig(), **overrides), PATCH_NUMS)


def _logits(seed: int, scale: float = 3.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        scale * torch.randn(B, pn * pn, V, generator=gen, dtype=torch.float64) for pn in PATCH_NUMS
    ]


def _ctx(si: int, cond_BlV: torch.Tensor) -> StepContext:
    return StepContext(
        scale_index=si,
        num_scales=len(PATCH_NUMS),
        patch_num=PATCH_NUMS[si],
        prev_patch_num=PATCH_NUMS[si - 1] if si else None,
        logits_cond_BlV=cond_BlV,
        logits_uncond_BlV=None,
    )


def _run(proc: Ssg, inputs: list[torch.Tensor], conds: list[torch.Tensor]) -> list[torch.Tensor]:
    state, outs = proc.init_state(B), []
    for si, (x_BlV, c_BlV) in enumerate(zip(inputs, conds, strict=True)):
        out_BlV, state = proc(x_BlV, _ctx(si, c_BlV), state)
        outs.append(out_BlV)
    return outs


# --------------------------------------------------------- numpy reference (docs/METHOD.md)
def _interp_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """(n_out, n_in) 1-D resampling: torch bilinear (align_corners=False) or legacy nearest."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        if mode == "nearest":
            m[i, min(int(math.floor(i * n_in / n_out)), n_in - 1)] = 1.0
            continue
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(math.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[i, i0] += 1.0 - lam
        m[i, i1] += lam
    return m


def _ref_prior(
    prev_BVhw: np.ndarray, pn: int, mode: str, prior_mode: str, scaled: bool
) -> np.ndarray:
    h = prev_BVhw.shape[-1]
    m = _interp_matrix(h, pn, mode)
    interp_BVHW = np.einsum("ih,bvhw,jw->bvij", m, prev_BVhw, m)
    if prior_mode == "interpolate_only":
        return interp_BVHW
    fine = scipy.fft.dctn(interp_BVHW, axes=(-2, -1), norm="ortho")
    alpha = pn / h if scaled else 1.0
    fine[..., :h, :h] = alpha * scipy.fft.dctn(prev_BVhw, axes=(-2, -1), norm="ortho")
    return scipy.fft.idctn(fine, axes=(-2, -1), norm="ortho")


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ref_run(
    inputs, conds, betas, source, *, space="raw", mode="bilinear", prior_mode="dse", scaled=True
):
    outs, prev = [], None
    for si, (x, c) in enumerate(zip(inputs, conds, strict=True)):
        x, c = x.numpy(), c.numpy()
        pn = PATCH_NUMS[si]
        out = x
        if si > 0 and betas[si] != 0.0:
            cur = _log_softmax(x) if space == "log_softmax" else x
            prior = _ref_prior(prev, pn, mode, prior_mode, scaled)  # (B, V, pn, pn)
            prior_BlV = prior.reshape(B, V, pn * pn).transpose(0, 2, 1)
            out = cur + betas[si] * (cur - prior_BlV)
        src = {"guided_pre_ssg": x, "guided_post_ssg": out, "cond_only": c}[source]
        src = _log_softmax(src) if space == "log_softmax" else src
        prev = src.transpose(0, 2, 1).reshape(B, V, pn, pn)  # row-major token grid
        outs.append(out)
    return outs


# ---------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("source", ["guided_pre_ssg", "guided_post_ssg", "cond_only"])
@pytest.mark.parametrize(
    ("schedule", "extra", "betas"),
    [
        ("constant", {"beta": 0.5}, [0.0, 0.5, 0.5, 0.5]),
        ("linear_decay", {"beta": 0.9, "beta_end": 0.3}, [0.0, 0.9, 0.6, 0.3]),
        ("linear_ramp", {"beta": 0.2, "beta_end": 1.0, "scale_indices": [3, 2]}, [0, 0, 0.2, 1.0]),
        ("list", {"beta_list": [7.0, 0.25, 0.0, 1.5]}, [0.0, 0.25, 0.0, 1.5]),
    ],
)
def test_ssg_matches_numpy_reference(source, schedule, extra, betas) -> None:
    proc = _ssg(prior_source=source, beta_schedule=schedule, **extra)
    np.testing.assert_allclose(proc.betas, betas, rtol=0, atol=1e-15)
    inputs, conds = _logits(0), _logits(1)
    expected = _ref_run(inputs, conds, betas, source)
    for out, exp in zip(_run(proc, inputs, conds), expected, strict=True):
        np.testing.assert_allclose(out.numpy(), exp, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("mode", "prior_mode", "block"),
    [
        ("nearest", "dse", "sqrt_area_ratio"),
        ("bilinear", "dse", "none"),
        ("bilinear", "interpolate_only", "sqrt_area_ratio"),
        ("nearest", "interpolate_only", "none"),
    ],
)
def test_ssg_prior_variants_match_numpy_reference(mode, prior_mode, block) -> None:
    proc = _ssg(beta=0.75, interpolation=mode, prior_mode=prior_mode, coarse_block_scale=block)
    inputs = _logits(2)
    expected = _ref_run(
        inputs, inputs, proc.betas, "guided_pre_ssg", mode=mode, prior_mode=prior_mode,
        scaled=block == "sqrt_area_ratio",
    )  # fmt: skip
    for out, exp in zip(_run(proc, inputs, inputs), expected, strict=True):
        np.testing.assert_allclose(out.numpy(), exp, rtol=1e-10, atol=1e-10)


def test_ssg_log_softmax_space_matches_reference_and_raw_in_distribution() -> None:
    inputs, conds = _logits(3), _logits(4)
    outs_ls = _run(_ssg(beta=0.6, logit_space="log_softmax"), inputs, conds)
    expected = _ref_run(inputs, conds, [0.0, 0.6, 0.6, 0.6], "guided_pre_ssg", space="log_softmax")
    for out, exp in zip(outs_ls, expected, strict=True):
        np.testing.assert_allclose(out.numpy(), exp, rtol=1e-10, atol=1e-10)
    outs_raw = _run(_ssg(beta=0.6), inputs, conds)
    for ls_BlV, raw_BlV in zip(outs_ls, outs_raw, strict=True):
        diff_BlV = raw_BlV - ls_BlV  # a per-position constant (docs/METHOD.md)
        torch.testing.assert_close(
            diff_BlV, diff_BlV[..., :1].expand_as(diff_BlV), atol=1e-10, rtol=0
        )
        torch.testing.assert_close(ls_BlV.softmax(-1), raw_BlV.softmax(-1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("placement", ["after_cfg", "per_branch"])
@pytest.mark.parametrize("space", ["raw", "log_softmax"])
def test_beta_zero_is_bit_exact_identity(placement: str, space: str) -> None:
    proc = _ssg(beta=0.0, placement=placement, logit_space=space, prior_source="guided_post_ssg")
    inputs = _logits(5, scale=1e4)
    for out, x in zip(_run(proc, inputs, inputs), inputs, strict=True):
        assert torch.equal(out, x)


def test_first_scale_is_identity_even_with_a_listed_beta() -> None:
    proc = _ssg(beta_schedule="list", beta_list=[3.0, 1.0, 1.0, 1.0], scale_indices=[0, 1, 2, 3])
    assert proc.betas[0] == 0.0
    x_BlV = _logits(6)[0]
    out_BlV, state = proc(x_BlV, _ctx(0, x_BlV), proc.init_state(B))
    assert torch.equal(out_BlV, x_BlV)
    assert state.shape == (B, V, 1, 1)


def test_state_is_private_copy() -> None:
    # Truncation writes -inf into the logits after SSG; the recorded prior must not see it.
    for source in ["guided_pre_ssg", "guided_post_ssg", "cond_only"]:
        proc = _ssg(prior_source=source)
        inputs, conds = _logits(7), _logits(8)
        clean = _run(proc, inputs, conds)
        state, dirty = proc.init_state(B), []
        for si, (x, c) in enumerate(zip(inputs, conds, strict=True)):
            x, c = x.clone(), c.clone()
            out, state = proc(x, _ctx(si, c), state)
            dirty.append(out.clone())
            for t in (x, c, out):
                t.fill_(-math.inf)
        for a, b in zip(clean, dirty, strict=True):
            assert torch.equal(a, b), source


def test_branch_wise_follows_placement() -> None:
    assert not _ssg(placement="after_cfg").branch_wise
    assert _ssg(placement="per_branch").branch_wise
    assert _ssg(placement="per_branch").branches == ()


def test_build_from_dictconfig() -> None:
    node = OmegaConf.structured(SsgConfig(beta=0.3, beta_schedule="linear_decay", beta_end=0.1))
    assert build_ssg(node, PATCH_NUMS).betas == pytest.approx((0.0, 0.3, 0.2, 0.1), abs=1e-15)


def test_missing_or_wrong_state_raises() -> None:
    proc = _ssg()
    x_BlV = _logits(9)[1]
    with pytest.raises(ValueError, match="state returned at scale 0"):
        proc(x_BlV, _ctx(1, x_BlV), None)
    with pytest.raises(ValueError, match=r"expected logits \(B, 9, V\)"):
        proc(x_BlV, _ctx(2, x_BlV), None)
    with pytest.raises(ValueError, match="patch_nums"):
        proc(x_BlV, dataclasses.replace(_ctx(1, x_BlV), num_scales=9), None)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"beta": -0.1}, "guidance.ssg.beta"),
        ({"beta": math.nan}, "guidance.ssg.beta"),
        ({"prior_source": "pre_cfg"}, "guidance.ssg.prior_source"),
        ({"placement": "before_cfg"}, "guidance.ssg.placement"),
        ({"interpolation": "lanczos"}, "guidance.ssg.interpolation"),
        ({"logit_space": "softmax"}, "guidance.ssg.logit_space"),
        ({"prior_mode": "fft"}, "guidance.ssg.prior_mode"),
        ({"coarse_block_scale": "half"}, "guidance.ssg.coarse_block_scale"),
        ({"band_fusion": "soft"}, "guidance.ssg.band_fusion"),
        ({"dct_norm": "backward"}, "guidance.ssg.dct_norm"),
        ({"beta_schedule": "cosine"}, "guidance.ssg.beta_schedule"),
        ({"beta_schedule": "list", "beta_list": [0.1, 0.2]}, "guidance.ssg.beta_list"),
        ({"beta_schedule": "list", "beta_list": None}, "guidance.ssg.beta_list"),
        ({"beta_schedule": "list", "beta_list": [0, 0, -1, 0]}, r"guidance.ssg.beta_list\[2\]"),
        ({"beta_schedule": "linear_decay"}, "guidance.ssg.beta_end"),
        ({"beta_schedule": "linear_decay", "beta_end": 0.9}, "guidance.ssg.beta_end"),
        ({"beta_schedule": "linear_ramp", "beta_end": 0.1}, "guidance.ssg.beta_end"),
        ({"scale_indices": [1, 4]}, "guidance.ssg.scale_indices"),
    ],
)
def test_invalid_config_raises_with_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _ssg(**overrides)


def test_invalid_patch_nums_raise() -> None:
    with pytest.raises(ConfigError, match="model.patch_nums"):
        build_ssg(SsgConfig(), [1, 3, 2])


def test_linear_schedule_endpoints_are_exact() -> None:
    betas = beta_per_scale(
        10, beta=0.1, beta_schedule="linear_ramp", beta_end=0.3, beta_list=None, scale_indices=None
    )
    assert betas[0] == 0.0 and betas[1] == 0.1 and betas[9] == 0.3
    single = beta_per_scale(
        10, beta=0.4, beta_schedule="linear_decay", beta_end=0.0, beta_list=None, scale_indices=[5]
    )
    assert single == tuple(0.4 if s == 5 else 0.0 for s in range(10))
