"""The VAR/VQVAE port on the tiny config: layout, strict reload, KV cache vs teacher forcing."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ssg_eval.config import ModelConfig
from ssg_eval.models.load import (
    build_model,
    build_var,
    build_vqvae,
    init_from_names,
)
from ssg_eval.models.quant import phi_index_table
from ssg_eval.models.var import VAR
from ssg_eval.models.vqvae import VQVAE
from ssg_eval.sampling.draw import make_generators
from ssg_eval.sampling.loop import generate_batch
from ssg_eval.utils.hashing import sha256_file

PATCH_256 = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]
PATCH_512 = [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]
KEY_LISTING = Path(__file__).resolve().parents[1] / "fixtures" / "var_state_dict_keys.txt"


CONF_MODEL = Path(__file__).resolve().parents[2] / "conf" / "model"


def load_model_config(name: str):
    """`conf/model/<name>.yaml` on the ModelConfig schema, without composing the other groups."""
    raw = OmegaConf.load(CONF_MODEL / f"{name}.yaml")
    raw.pop("defaults", None)
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), raw)


@pytest.fixture(scope="module")
def tiny_model_cfg():
    return load_model_config("tiny")


@pytest.fixture(scope="module")
def tiny(tiny_model_cfg):
    var, vae, info = build_model(tiny_model_cfg)
    return var, vae, info


def _random_tokens(var: VAR, batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, var.vocab_size, (batch, pn * pn), generator=g) for pn in var.patch_nums
    ]


def _scale_inputs(var: VAR, vae: VQVAE, cond_BD: torch.Tensor, tokens: list[torch.Tensor]):
    """Per-scale transformer inputs for given tokens (teacher forcing through the f̂ updates)."""
    xs = [var.first_scale_input(cond_BD)]
    f_hat = torch.zeros(cond_BD.shape[0], vae.cvae, var.patch_nums[-1], var.patch_nums[-1])
    for si, pn in enumerate(var.patch_nums):
        f_hat, nxt = vae.accumulate(si, f_hat, vae.embed_tokens(tokens[si], pn))
        if nxt is not None:
            xs.append(var.next_scale_input(nxt, si + 1))
    return xs


def _kv_and_tf_logits(var: VAR, vae: VQVAE, labels: torch.Tensor, seed: int):
    with torch.inference_mode():
        cond_BD = var.class_condition(labels)
        xs = _scale_inputs(var, vae, cond_BD, _random_tokens(var, labels.shape[0], seed))
        var.set_kv_cache(True)
        try:
            kv_BLV = torch.cat([var.scale_logits(x, cond_BD) for x in xs], dim=1)
        finally:
            var.set_kv_cache(False)
        tf_BLV = var.teacher_forcing_logits(cond_BD, torch.cat(xs, dim=1))
    return kv_BLV, tf_BLV


def test_tiny_builds_with_name_weights(tiny, tiny_model_cfg):
    var, vae, info = tiny
    assert info["init"] == "names" and info["var_ckpt"] is None and info["vae_sha256"] is None
    assert info["num_params_var"] == sum(p.numel() for p in var.parameters())
    assert not var.training and not vae.training
    assert not any(p.requires_grad for p in [*var.parameters(), *vae.parameters()])
    assert var.width == 64 * tiny_model_cfg.depth and var.num_heads == tiny_model_cfg.depth


def test_kv_cache_path_equals_teacher_forcing(tiny):
    var, vae, _ = tiny
    labels = torch.tensor([0, 3, 10])  # 10 = null class
    kv_BLV, tf_BLV = _kv_and_tf_logits(var, vae, labels, seed=5)
    assert kv_BLV.dtype == torch.float32 and kv_BLV.shape == (3, var.seq_len, var.vocab_size)
    torch.testing.assert_close(kv_BLV, tf_BLV, rtol=1e-5, atol=1e-5)


def test_kv_cache_equals_teacher_forcing_with_shared_adaln(tiny_model_cfg):
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg.shared_aln = True
    var, vae = build_var(cfg), build_vqvae(cfg)
    init_from_names(var, seed_prefix=7)
    init_from_names(vae, seed_prefix=7)
    assert any(k.endswith("ada_gss") for k in var.state_dict())
    kv_BLV, tf_BLV = _kv_and_tf_logits(var, vae, torch.tensor([1, 2]), seed=6)
    torch.testing.assert_close(kv_BLV, tf_BLV, rtol=1e-5, atol=1e-5)


def test_state_dict_save_and_strict_reload_gives_identical_outputs(tiny, tiny_model_cfg, tmp_path):
    var, vae, _ = tiny
    torch.save(var.state_dict(), tmp_path / "var.pth")
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg.var_ckpt, cfg.vae_ckpt = str(tmp_path / "var.pth"), str(tmp_path / "vae.pth")
    var2, vae2, info = build_model(cfg)
    assert info["init"] == "checkpoint"
    assert info["var_sha256"] == sha256_file(tmp_path / "var.pth")
    for a, b in [(var, var2), (vae, vae2)]:
        sd_a, sd_b = a.state_dict(), b.state_dict()
        assert list(sd_a) == list(sd_b)
        assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    labels = torch.tensor([1, 4])
    for one, two in zip(
        _kv_and_tf_logits(var, vae, labels, 9),
        _kv_and_tf_logits(var2, vae2, labels, 9),
        strict=True,
    ):
        assert torch.equal(one, two)
    images = [
        generate_batch(v, q, labels, make_generators([3, 4], "cpu"), [], top_k=5, top_p=0.9)
        for v, q in [(var, vae), (var2, vae2)]
    ]
    assert torch.equal(images[0], images[1])


def test_decode_gives_images_in_unit_range_of_16x_last_patch(tiny):
    var, vae, _ = tiny
    images = generate_batch(var, vae, torch.tensor([0, 9]), make_generators([0, 1], "cpu"), [])
    side = 16 * var.patch_nums[-1]
    assert images.shape == (2, 3, side, side) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    f_hat = torch.randn(1, vae.cvae, var.patch_nums[-1], var.patch_nums[-1]) * 50
    decoded = vae.decode(f_hat)
    assert decoded.min() >= -1 and decoded.max() <= 1


def test_embed_tokens_is_row_major_codebook_lookup(tiny):
    _, vae, _ = tiny
    tokens_Bl = torch.arange(9).view(1, 9) % vae.vocab_size
    h_BChw = vae.embed_tokens(tokens_Bl, 3)
    codebook = vae.quantize.embedding.weight
    for j in range(9):
        assert torch.equal(h_BChw[0, :, j // 3, j % 3], codebook[tokens_Bl[0, j]])


def test_accumulate_leaves_inputs_alone_and_ends_without_next_map(tiny):
    var, vae, _ = tiny
    last = var.patch_nums[-1]
    f_hat = torch.randn(2, vae.cvae, last, last)
    h = torch.randn(2, vae.cvae, var.patch_nums[0], var.patch_nums[0])
    f_before, h_before = f_hat.clone(), h.clone()
    f_new, nxt = vae.accumulate(0, f_hat, h)
    assert torch.equal(f_hat, f_before) and torch.equal(h, h_before)
    assert nxt.shape == (2, vae.cvae, var.patch_nums[1], var.patch_nums[1])
    f_last, none = vae.accumulate(
        len(var.patch_nums) - 1, f_new, torch.randn(2, vae.cvae, last, last)
    )
    assert none is None and f_last.shape == f_hat.shape


def test_phi_index_table_matches_spec():
    assert phi_index_table(10, 4) == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)
    assert phi_index_table(4, 4) == (0, 1, 2, 3)


def test_encode_to_tokens_is_nearest_codeword_of_the_sampler_residual(tiny):
    # Independent of the quantizer's own loop: f̂ is rebuilt from the tokens with the sampler's
    # `accumulate`, the residual is pooled with adaptive average pooling, and the nearest
    # codeword is a brute-force float64 distance argmin.
    var, vae, _ = tiny
    side, K = 16 * var.patch_nums[-1], len(var.patch_nums)
    img = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        tokens = vae.encode_to_tokens(img)
        f_BCHW = vae.quant_conv(vae.encoder(img))
        codebook_VC = vae.quantize.embedding.weight.double()
        f_hat_BCHW = torch.zeros_like(f_BCHW)
        for si, pn in enumerate(var.patch_nums):
            rest_BCHW = f_BCHW - f_hat_BCHW
            z_BChw = (
                torch.nn.functional.adaptive_avg_pool2d(rest_BCHW, pn) if si < K - 1 else rest_BCHW
            )
            z_NC = z_BChw.permute(0, 2, 3, 1).reshape(-1, vae.cvae).double()
            nearest_Bl = torch.cdist(z_NC, codebook_VC).argmin(dim=1).view(2, pn * pn)
            assert tokens[si].dtype == torch.int64 and torch.equal(tokens[si], nearest_Bl), si
            f_hat_BCHW, _ = vae.accumulate(si, f_hat_BCHW, vae.embed_tokens(tokens[si], pn))


def test_init_from_names_rules_and_determinism(tiny_model_cfg):
    var_a, var_b = build_var(tiny_model_cfg), build_var(tiny_model_cfg)
    init_from_names(var_a, seed_prefix=1234)
    init_from_names(var_b, seed_prefix=1234)
    assert all(
        torch.equal(a, b) for a, b in zip(var_a.parameters(), var_b.parameters(), strict=True)
    )
    scale_mul = var_a.blocks[0].attn.scale_mul_1H11
    assert torch.allclose(scale_mul, torch.full_like(scale_mul, math.log(4)), atol=0.1)
    assert var_a.pos_1LC.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.equal(var_a.blocks[0].attn.zero_k_bias, torch.zeros(var_a.width))
    vae = build_vqvae(tiny_model_cfg)
    init_from_names(vae, seed_prefix=1234)
    assert vae.quantize.embedding.weight.std().item() == pytest.approx(0.5, rel=0.2)
    norm_weight = vae.encoder.norm_out.weight
    assert torch.allclose(norm_weight, torch.ones_like(norm_weight), atol=0.1)
    init_from_names(var_b, seed_prefix=99)
    assert not torch.equal(var_a.head.weight, var_b.head.weight)


def test_buffers_hold_the_scale_schedule(tiny):
    var, _, _ = tiny
    lvl = [si for si, pn in enumerate(var.patch_nums) for _ in range(pn * pn)]
    assert var.lvl_1L.tolist() == [lvl]
    bias = var.attn_bias_for_masking[0, 0]
    for q in range(var.seq_len):
        for k in range(var.seq_len):
            assert bias[q, k].item() == (0.0 if lvl[q] >= lvl[k] else -math.inf)


# ------------------------------------------------------------------------------------------------
# official layout (meta device, no memory)
# ------------------------------------------------------------------------------------------------
def _parse_listing() -> dict[str, list[tuple[str, str, str, str]]]:
    path = KEY_LISTING  # committed fixture (see tests/fixtures/README.md); never skipped
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("### "):
            current = line[4:]
            sections[current] = []
        elif line and not line.startswith("#"):
            key, shape, dtype, kind = line.split("\t")
            sections[current].append((key, shape, dtype, kind))
    return sections


def _listing(module: torch.nn.Module) -> list[tuple[str, str, str, str]]:
    params = {name for name, _ in module.named_parameters()}
    return [
        (
            k,
            str(tuple(v.shape)),
            str(v.dtype).removeprefix("torch."),
            "param" if k in params else "buffer",
        )
        for k, v in module.state_dict().items()
    ]


@pytest.mark.parametrize(
    "prefix,make",
    [
        ("VQVAE ", lambda: VQVAE(4096, 32, 160, [1, 1, 2, 2, 4], 2, PATCH_256, 0.5, 4)),
        ("VAR depth=16 ", lambda: _meta_var(16, None, False)),
        ("VAR depth=36 ", lambda: _meta_var(36, PATCH_512, True)),
    ],
)
def test_state_dict_layout_matches_official_listing(prefix, make):
    sections = _parse_listing()
    (title,) = [t for t in sections if t.startswith(prefix)]
    with torch.device("meta"):
        module = make()
    assert _listing(module) == sections[title]
    assert f"{len(sections[title])} state_dict entries" in title


def _meta_var(depth: int, patch_nums: list[int] | None, shared: bool) -> VAR:
    return VAR(
        depth=depth,
        patch_nums=patch_nums or PATCH_256,
        vocab_size=4096,
        cvae=32,
        num_classes=1000,
        shared_aln=shared,
        attn_l2_norm=True,
        mlp_ratio=4.0,
        norm_eps=1e-6,
    )


@pytest.mark.parametrize("depth", [16, 20, 24, 30, 36])
def test_state_dict_entry_count_per_depth(depth):
    shared = depth == 36
    with torch.device("meta"):
        var = _meta_var(depth, PATCH_512 if shared else None, shared)
    expected = 8 + 2 + 12 * depth + 4 if shared else 8 + 13 * depth + 4
    assert len(var.state_dict()) == expected
