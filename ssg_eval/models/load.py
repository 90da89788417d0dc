"""Builders for VAR and its VQVAE (and a guide model), from checkpoints or name-seeded weights.

This module owns turning `model.*` config keys into eval-mode networks; reading and explaining
checkpoint files is `models.checkpoint`. It must not sample or download anything.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import nn

from ssg_eval.models.checkpoint import check_checkpoint_path, load_checkpoint
from ssg_eval.models.var import VAR
from ssg_eval.models.vqvae import VQVAE
from ssg_eval.utils.hashing import sha256_file

__all__ = [
    "build_guide",
    "build_model",
    "build_var",
    "build_vqvae",
    "count_parameters",
    "init_from_names",
    "name_seed",
]


def _var_kwargs(model_cfg: Any) -> dict[str, Any]:
    return dict(
        depth=int(model_cfg.depth),
        patch_nums=[int(pn) for pn in model_cfg.patch_nums],
        vocab_size=int(model_cfg.vocab_size),
        cvae=int(model_cfg.cvae),
        num_classes=int(model_cfg.num_classes),
        shared_aln=bool(model_cfg.shared_aln),
        attn_l2_norm=bool(model_cfg.attn_l2_norm),
        mlp_ratio=float(model_cfg.mlp_ratio),
        norm_eps=float(model_cfg.norm_eps),
    )


def _vqvae_kwargs(model_cfg: Any) -> dict[str, Any]:
    return dict(
        vocab_size=int(model_cfg.vocab_size),
        cvae=int(model_cfg.cvae),
        ch=int(model_cfg.vae_ch),
        ch_mult=[int(m) for m in model_cfg.vae_ch_mult],
        num_res_blocks=int(model_cfg.vae_num_res_blocks),
        patch_nums=[int(pn) for pn in model_cfg.patch_nums],
        quant_resi=float(model_cfg.quant_resi),
        share_quant_resi=int(model_cfg.share_quant_resi),
    )


def _construct(make: Any, device: str | torch.device, zero: bool = True) -> Any:
    """Construct directly on `device`; the layers skip torch's random init (uninitialised memory).

    Parameters are zeroed unless `zero` is False (the caller then overwrites every one of them);
    buffers hold their constructed values.
    """
    with torch.device(device):
        module = make()
    if zero:
        with torch.no_grad():
            for param in module.parameters():
                param.zero_()
    module.eval().requires_grad_(False)
    return module


def build_var(model_cfg: Any, device: str | torch.device = "cpu") -> VAR:
    """Build the VAR transformer described by `model_cfg` (width 64·depth, heads = depth).

    Parameters are zero until a checkpoint is loaded or `init_from_names` runs; buffers hold their
    constructed values. The model is in eval mode with requires_grad False.

    Args:
        model_cfg: a ModelConfig-like object (depth, patch_nums, vocab_size, cvae, num_classes,
            shared_aln, attn_l2_norm, mlp_ratio, norm_eps).
        device: where to allocate the parameters.
    """
    return _construct(lambda: VAR(**_var_kwargs(model_cfg)), device)


def build_vqvae(model_cfg: Any, device: str | torch.device = "cpu") -> VQVAE:
    """Build the VQVAE with the model's patch_nums (d36 needs the 512 schedule); see `build_var`."""
    return _construct(lambda: VQVAE(**_vqvae_kwargs(model_cfg)), device)


def count_parameters(model_cfg: Any) -> tuple[int, int]:
    """Exact (VAR, VQVAE) parameter counts, built on the meta device (no memory).

    Args:
        model_cfg: a ModelConfig-like object.

    Returns:
        (num_params_var, num_params_vae); buffers are not counted.
    """
    with torch.device("meta"):
        var = VAR(**_var_kwargs(model_cfg))
        vae = VQVAE(**_vqvae_kwargs(model_cfg))
    return (
        sum(p.numel() for p in var.parameters()),
        sum(p.numel() for p in vae.parameters()),
    )


def name_seed(seed_prefix: int | str, name: str) -> int:
    """Seed of one parameter: the first 8 hex digits of sha256(f"{prefix}:{name}") as an int."""
    return int(hashlib.sha256(f"{seed_prefix}:{name}".encode()).hexdigest()[:8], 16)


@torch.no_grad()
def init_from_names(module: nn.Module, seed_prefix: int | str = 1234) -> None:
    """Deterministic random weights from parameter names (docs/VAR.md); buffers are untouched.

    Each parameter gets randn(shape)·0.02 from a CPU generator seeded by `name_seed`, except
    `quantize.embedding.weight` (std 0.5), 1-D `*norm*.weight` (+1) and `scale_mul_1H11` (+ln 4).
    Any port with the same key names rebuilds identical weights. Modifies `module` in place.

    Args:
        module: the VAR or VQVAE to initialise.
        seed_prefix: prefix of the hashed seed string (`model.init_seed`).
    """
    for name, param in module.named_parameters():
        generator = torch.Generator(device="cpu").manual_seed(name_seed(seed_prefix, name))
        direct = param.device.type == "cpu" and param.dtype == torch.float32
        values = param if direct else torch.empty(param.shape, dtype=torch.float32)
        torch.randn(param.shape, generator=generator, dtype=torch.float32, out=values)
        values.mul_(0.5 if name == "quantize.embedding.weight" else 0.02)
        if param.ndim == 1 and "norm" in name and name.endswith(".weight"):
            values.add_(1)
        if name.endswith("scale_mul_1H11"):
            values.add_(math.log(4))
        if not direct:
            param.copy_(values)


def build_model(
    model_cfg: Any, device: str | torch.device = "cpu"
) -> tuple[VAR, VQVAE, dict[str, Any]]:
    """Build VAR + VQVAE from `model_cfg`, load their checkpoints (or name-seeded weights).

    Checkpoint paths are checked before anything is built. A null `var_ckpt` / `vae_ckpt` means
    deterministic random weights from parameter names (`init_from_names`, prefix `init_seed`).

    Args:
        model_cfg: the `model` config node.
        device: device for both networks.

    Returns:
        (var, vae, info): eval-mode models with requires_grad False, and info with keys
        var_ckpt, var_sha256, vae_ckpt, vae_sha256 (None when not loaded), num_params_var,
        num_params_vae and init ("checkpoint", "names", or "mixed" when only one file is given).

    Raises:
        FileNotFoundError: a checkpoint path does not exist or is unreadable (names the key).
        CheckpointError: a checkpoint does not match the config (see `load_checkpoint`).
    """
    paths = {}
    for kind in ("var", "vae"):
        value = getattr(model_cfg, f"{kind}_ckpt")
        paths[kind] = None if value is None else check_checkpoint_path(value, f"model.{kind}_ckpt")
    # every parameter is overwritten below (checkpoint or names), so skip the zero fill
    var = _construct(lambda: VAR(**_var_kwargs(model_cfg)), device, zero=False)
    vae = _construct(lambda: VQVAE(**_vqvae_kwargs(model_cfg)), device, zero=False)
    info: dict[str, Any] = {}
    for kind, module in (("var", var), ("vae", vae)):
        path = paths[kind]
        if path is None:
            init_from_names(module, seed_prefix=model_cfg.init_seed)
            info[f"{kind}_ckpt"], info[f"{kind}_sha256"] = None, None
        else:
            load_checkpoint(module, path, kind)
            info[f"{kind}_ckpt"], info[f"{kind}_sha256"] = str(path), sha256_file(path)
    for module in (var, vae):
        module.eval().requires_grad_(False)
    info["num_params_var"] = sum(p.numel() for p in var.parameters())
    info["num_params_vae"] = sum(p.numel() for p in vae.parameters())
    loaded = [paths[k] is not None for k in ("var", "vae")]
    info["init"] = "checkpoint" if all(loaded) else "names" if not any(loaded) else "mixed"
    return var, vae, info


GUIDE_KEY = "guidance.autoguidance.guide"


def build_guide(
    model_cfg: Any, guide_cfg: Any, device: str | torch.device = "cpu"
) -> tuple[VAR, dict[str, Any]]:
    """Build the guide VAR of autoguidance: the main model's token space with its own depth.

    The guide shares the main model's VQVAE, so `patch_nums`, `vocab_size`, `cvae` and
    `num_classes` are the main model's; `depth`, `shared_aln`, `attn_l2_norm`, `mlp_ratio`,
    `norm_eps` and the checkpoint are the guide's. The checkpoint is loaded strictly, like every
    other; null means name-seeded random weights (prefix `init_seed`), for random main models.

    Args:
        model_cfg: the main `model` node.
        guide_cfg: the `guidance.autoguidance.guide` node (GuideModelConfig).
        device: where to build it.

    Returns:
        (guide, info): the eval-mode guide and info keys guide_var_ckpt, guide_var_sha256,
        num_params_guide.

    Raises:
        FileNotFoundError: the guide checkpoint does not exist (names the key).
        CheckpointError: it does not match the guide's architecture (names the key and the fix).
    """
    key = f"{GUIDE_KEY}.var_ckpt"
    path = None if guide_cfg.var_ckpt is None else check_checkpoint_path(guide_cfg.var_ckpt, key)
    kwargs = _var_kwargs(model_cfg)
    kwargs.update(
        depth=int(guide_cfg.depth),
        shared_aln=bool(guide_cfg.shared_aln),
        attn_l2_norm=bool(guide_cfg.attn_l2_norm),
        mlp_ratio=float(guide_cfg.mlp_ratio),
        norm_eps=float(guide_cfg.norm_eps),
    )
    guide = _construct(lambda: VAR(**kwargs), device, zero=False)
    if path is None:
        init_from_names(guide, seed_prefix=guide_cfg.init_seed)
    else:
        load_checkpoint(guide, path, "var", key=key)
    guide.eval().requires_grad_(False)
    return guide, {
        "guide_var_ckpt": None if path is None else str(path),
        "guide_var_sha256": None if path is None else sha256_file(path),
        "num_params_guide": sum(p.numel() for p in guide.parameters()),
    }
