"""Exact parameter counts of the released VARs and the VQVAE on the meta device (docs/VAR.md)."""

from __future__ import annotations

import pytest

from ssg_eval.config import ModelConfig
from ssg_eval.models.load import count_parameters
from tests.unit.test_models import load_model_config

PATCH_512 = [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]
VQVAE_PARAMS = 108_948_355
RELEASED = {  # README / run-verified exact counts
    "var_d16": 310_283_520,
    "var_d20": 600_917_136,
    "var_d24": 1_033_399_360,
    "var_d30": 2_010_020_356,
    "var_d36": 2_353_893_904,
}


def closed_form(depth: int, patch_nums: list[int], shared_aln: bool) -> int:
    """docs/VAR.md: d·(18C² + 14C + H) + 2C² + C·(L + 1047 + V) + V, shared AdaLN adjusted."""
    C, H, V = 64 * depth, depth, 4096
    L = sum(pn * pn for pn in patch_nums)
    total = depth * (18 * C * C + 14 * C + H) + 2 * C * C + C * (L + 1047 + V) + V
    if shared_aln:  # per block 6C² + 6C → 6C (ada_gss), plus one shared 6C² + 6C
        total += -depth * (6 * C * C + 6 * C) + depth * 6 * C + 6 * C * C + 6 * C
    return total


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_configs_have_exact_counts(name):
    model = load_model_config(name)
    num_var, num_vae = count_parameters(model)
    assert num_var == RELEASED[name]
    assert num_vae == VQVAE_PARAMS
    assert num_var == closed_form(model.depth, list(model.patch_nums), model.shared_aln)


@pytest.mark.parametrize(
    "depth,patch_nums,shared",
    [
        (16, None, False),
        (20, None, False),
        (24, None, False),
        (30, None, False),
        (36, PATCH_512, True),
    ],
)
def test_counts_from_plain_model_config(depth, patch_nums, shared):
    cfg = ModelConfig(name=f"d{depth}", depth=depth, shared_aln=shared)
    if patch_nums is not None:
        cfg.patch_nums = patch_nums
    num_var, num_vae = count_parameters(cfg)
    assert num_var == RELEASED[f"var_d{depth}"]
    assert num_vae == VQVAE_PARAMS


def test_tiny_oracle_counts_match_spec():
    num_var, num_vae = count_parameters(load_model_config("tiny_oracle"))
    assert num_var == 1_164_932  # "1.16M"
    assert num_vae == 4_612_867  # "4.61M"
