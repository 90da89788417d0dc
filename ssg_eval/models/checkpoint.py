"""Strict loading of VAR/VQVAE checkpoint files, and one error per mistake, before any sampling.

This module owns reading a checkpoint (path, readability, flat state dict, NaNs) and explaining a
mismatch with the configured architecture (missing/unexpected keys, shapes, depth, shared AdaLN)
by naming the file, the config key and the fix; it must not build networks or download anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssg_eval.errors import CheckpointError

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


def check_checkpoint_path(path: Any, key: str) -> Path:
    """The readable checkpoint file at `path` (config key `key`); else one error with the fix."""
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
