"""Builders for VAR and its VQVAE, strict checkpoint loading and name-seeded random weights.

This module owns turning `model.*` config keys and checkpoint files into eval-mode networks and
explaining every checkpoint mismatch before any sampling; it must not sample or download anything.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssg_eval.models.var import VAR
from ssg_eval.models.vqvae import VQVAE
from ssg_eval.runs.io import sha256_file

RELEASED_DEPTHS = (16, 20, 24, 30, 36)
_HF_URL = "https://huggingface.co/FoundationVision/var/resolve/main/"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
_EMA_KEY = "quantize.ema_vocab_hit_SV"
_SHOW = 5
# which config key decides the shape of a state-dict entry (first matching prefix wins)
_SHAPE_KEYS = (
    ("head.", "model.vocab_size"),
    ("class_emb.", "model.num_classes"),
    ("pos_1LC", "model.patch_nums"),
    ("lvl_", "model.patch_nums"),
    ("word_embed.", "model.cvae"),
    ("quantize.embedding.", "model.vocab_size/model.cvae"),
    ("quantize.", "model.cvae/model.share_quant_resi"),
    ("encoder.", "model.vae_ch/model.vae_ch_mult/model.cvae"),
    ("decoder.", "model.vae_ch/model.vae_ch_mult/model.cvae"),
    ("", "model.depth"),
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded strictly; the message names the file, key and fix."""


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


def _check_path(path: Any, key: str) -> Path:
    file = Path(str(path)).expanduser()
    fix = (
        f"download it (e.g. {_HF_URL}{file.name}) into that place, or point {key} (or "
        "paths.ckpt_dir / SSG_EVAL_CKPT_DIR) at the file; set it to null for random test weights"
    )
    if not file.is_file():
        raise FileNotFoundError(f"{key}={file}: no such file; {fix}")
    if not os.access(file, os.R_OK):
        raise FileNotFoundError(f"{key}={file}: the file is not readable (permissions); {fix}")
    return file


def _kind_of_keys(keys: list[str]) -> str | None:
    if any(k.startswith(("blocks.", "class_emb.", "head_nm.")) for k in keys):
        return "var"
    if any(k.startswith(("encoder.", "decoder.", "quantize.")) for k in keys):
        return "vae"
    return None


def _file_depth(keys: list[str]) -> int:
    indices = [int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))]
    return max(indices) + 1 if indices else 0


def _depth_fix(file_depth: int, file_shared: bool, prefix: str = "model") -> str:
    if prefix == "model" and file_depth in RELEASED_DEPTHS:
        return f"use model=var_d{file_depth}"
    return f"set {prefix}.depth={file_depth} {prefix}.shared_aln={str(file_shared).lower()}"


def _read_state_dict(path: Path, key: str) -> dict[str, Tensor]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any read failure is the same user-facing problem
        raise CheckpointError(
            f"{key}={path}: cannot be read by torch.load ({type(exc).__name__}: {exc}). "
            "The file is truncated, corrupt or not a torch checkpoint; download it again and "
            "compare its sha256 with the published one"
        ) from exc
    if not isinstance(content, dict):
        raise CheckpointError(
            f"{key}={path}: holds a {type(content).__name__}, not a state dict (a dict of name → "
            "tensor); save `model.state_dict()` instead"
        )
    bad = [k for k, v in content.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
    if bad:
        nested = [k for k in bad if isinstance(content[k], dict)]
        hint = (
            f"; the weights may be under {nested[:_SHOW]}: save that dict alone" if nested else ""
        )
        raise CheckpointError(
            f"{key}={path}: is not a flat state dict; entries {bad[:_SHOW]} are not tensors "
            f"(a training checkpoint?){hint}"
        )
    # NaN only: the attention mask buffer legitimately holds -inf.
    nans = [k for k, v in content.items() if v.is_floating_point() and v.isnan().any()]
    if nans:
        raise CheckpointError(
            f"{key}={path}: tensors {nans[:_SHOW]} hold NaN values; the checkpoint is damaged "
            "(or from a diverged run): download it again and compare its sha256"
        )
    return content


def _mismatch_report(
    module: nn.Module, state: dict[str, Tensor], kind: str, prefix: str = "model"
) -> tuple[list[str], dict[str, Tensor]]:
    """Problems of `state` against `module` (empty list = loadable) and the tolerated buffers."""
    expected = module.state_dict()
    problems: list[str] = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    file_keys = list(state)
    if kind == "var":
        file_depth, model_depth = _file_depth(file_keys), len(module.blocks)
        file_shared = any(k.endswith(".ada_gss") for k in file_keys)
        if file_depth and file_depth != model_depth:
            problems.append(
                f"depth mismatch: file has {file_depth} blocks, config "
                f"{prefix}.depth={model_depth} "
                f"→ {_depth_fix(file_depth, file_shared, prefix)}"
            )
        elif file_depth and file_shared != module.shared_aln:
            problems.append(
                f"shared AdaLN mismatch: file has shared_aln={file_shared}, config "
                f"{prefix}.shared_aln={module.shared_aln} → set "
                f"{prefix}.shared_aln={str(file_shared).lower()}"
            )
    if missing and unexpected and len(missing) == len(unexpected):
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in unexpected):
                problems.append(
                    f"every key carries the prefix {prefix!r} (a DDP/compile wrapper?): strip it "
                    "and save the plain state dict"
                )
                break
    if missing:
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:_SHOW]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:_SHOW]}")
    tolerated: dict[str, Tensor] = {}
    shapes = []
    for k, tensor in state.items():
        if k not in expected or tuple(tensor.shape) == tuple(expected[k].shape):
            continue
        if k == _EMA_KEY and tensor.shape[1:] == expected[k].shape[1:]:
            tolerated[k] = tensor  # official behaviour: the buffer is replaced by the file's
            continue
        shapes.append(f"{k}: file {tuple(tensor.shape)} vs model {tuple(expected[k].shape)}")
    if shapes:
        keys = sorted({next(v for p, v in _SHAPE_KEYS if s.startswith(p)) for s in shapes})
        problems.append(
            f"{len(shapes)} shape mismatches, e.g. {shapes[:_SHOW]} → check {', '.join(keys)}"
        )
    return problems, tolerated


def load_checkpoint(
    module: nn.Module, path: str | os.PathLike, kind: str, key: str | None = None
) -> None:
    """Load a flat state dict strictly into `module`, or explain every mismatch in one error.

    `quantize.ema_vocab_hit_SV` with another number of scales replaces the module's buffer (the
    official VQVAE does the same). Nothing is loaded when any check fails.

    Args:
        module: a VAR (kind "var") or VQVAE (kind "vae").
        path: checkpoint file (read with `weights_only=True` onto the CPU).
        kind: "var" or "vae"; selects the config key named in errors (`model.<kind>_ckpt`).
        key: the config key to name in errors instead (e.g. the guide model's checkpoint).

    Raises:
        CheckpointError: unreadable/corrupt file, non-dict or nested content, a VAR checkpoint given
            as VQVAE (or the reverse), wrong depth or AdaLN type, missing/unexpected/renamed keys,
            or shape mismatches. The message names the file, the config key and the fix.
        ValueError: `kind` is not "var" or "vae".
    """
    if kind not in ("var", "vae"):
        raise ValueError(f"kind={kind!r} must be 'var' or 'vae'")
    key = key or f"model.{kind}_ckpt"
    path = Path(path)
    state = _read_state_dict(path, key)
    file_kind = _kind_of_keys(list(state))
    if file_kind is not None and file_kind != kind:
        names = {"var": "VAR", "vae": "VQVAE"}
        other = f"model.{file_kind}_ckpt"
        raise CheckpointError(
            f"{key}={path}: this looks like a {names[file_kind]} checkpoint passed as {key} "
            f"(keys like {list(state)[:3]}); swap the files: give it as {other}"
        )
    prefix = key.rsplit(".", 1)[0] if "." in key else "model"
    problems, tolerated = _mismatch_report(module, state, kind, prefix)
    if problems:
        raise CheckpointError(
            f"{key}={path} does not match the {type(module).__name__} built from the config: "
            + "; ".join(problems)
        )
    for name, tensor in tolerated.items():
        owner_name, _, buffer_name = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        device = getattr(owner, buffer_name).device
        owner.register_buffer(buffer_name, torch.empty_like(tensor, device=device))
    module.load_state_dict(state, strict=True)


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
        paths[kind] = None if value is None else _check_path(value, f"model.{kind}_ckpt")
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
    path = None if guide_cfg.var_ckpt is None else _check_path(guide_cfg.var_ckpt, key)
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
