"""DINOv2 features for FD-DINOv2 (dgm-eval's protocol): the network, its preprocessing, extraction.

The network is timm's ViT-L/14 DINOv2 built without downloading anything and loaded strictly from
a user-supplied weights file; preprocessing is dgm-eval's (bicubic resize of the RGB image to
224 x 224, scale to [0, 1], ImageNet mean/std) and the feature is the final-norm CLS token. This
module computes no statistics or metrics (see `ssg_eval.metrics.fd_dinov2`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ssg_eval.errors import InputFileError, UnreadableFileError
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

DEFAULT_ARCH = "vit_large_patch14_dinov2"  # timm name of DINOv2 ViT-L/14 (1024-d CLS token)
INPUT_SIZE = 224  # dgm-eval resizes every image to 224 x 224 (16 x 16 patches of 14 px)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DINOv2's positional-embedding interpolation (its `interpolate_pos_encoding`): bicubic, no
# antialiasing, scale factor (grid + 0.1) / release grid. The release grid is 37 x 37 (518 px).
POS_EMBED_OFFSET = 0.1
UNUSED_KEYS = ("mask_token",)  # in DINOv2's release files; used only for masked training
RELEASE_FILE = "dinov2_vitl14_pretrain.pth"


def preprocess(images_NHWC: np.ndarray) -> torch.Tensor:
    """dgm-eval's DINOv2 transform of uint8 RGB images: bicubic resize, [0, 1], ImageNet mean/std.

    The resize is PIL's bicubic on the uint8 image (what torchvision's `Resize` does to a PIL
    image, as dgm-eval applies it), so downscaling is antialiased exactly like dgm-eval's.

    Args:
        images_NHWC: uint8 (B, H, W, 3).

    Returns:
        float32 (B, 3, 224, 224).
    """
    resized = np.stack(
        [
            np.asarray(Image.fromarray(img).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))
            for img in images_NHWC
        ]
    )
    x_BHWC = resized.astype(np.float32) / 255.0
    x_BHWC = (x_BHWC - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x_BHWC.transpose(0, 3, 1, 2)))


def resample_pos_embed(pos_embed_1LC: torch.Tensor, grid: int) -> torch.Tensor:
    """DINOv2's interpolation of a (1, 1 + M*M, C) positional embedding to a grid x grid one."""
    cls_1C, patch_1PC = pos_embed_1LC[:, :1], pos_embed_1LC[:, 1:]
    release = math.isqrt(patch_1PC.shape[1])
    if release * release != patch_1PC.shape[1]:
        raise InputFileError(
            f"the DINOv2 weights' pos_embed has {patch_1PC.shape[1]} patch positions, not a square "
            "grid; use DINOv2's release file (metrics.dinov2_weights)"
        )
    if release == grid:
        return pos_embed_1LC
    channels = patch_1PC.shape[-1]
    scale = (grid + POS_EMBED_OFFSET) / release
    patch_1CMM = patch_1PC.float().reshape(1, release, release, channels).permute(0, 3, 1, 2)
    patch_1CGG = nn.functional.interpolate(
        patch_1CMM, scale_factor=(scale, scale), mode="bicubic", antialias=False
    )
    assert patch_1CGG.shape[-2:] == (grid, grid), patch_1CGG.shape
    patch_1PC = patch_1CGG.permute(0, 2, 3, 1).reshape(1, grid * grid, channels)
    return torch.cat([cls_1C.float(), patch_1PC], dim=1).to(pos_embed_1LC.dtype)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a DINOv2 weights file: DINOv2's release `.pth` or timm's `.safetensors`.

    Raises:
        UnreadableFileError: the file cannot be loaded (truncated, not a weights file).
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any read failure of the user's file is the same problem
        raise UnreadableFileError(
            f"metrics.dinov2_weights: {path} cannot be loaded ({type(err).__name__}: {err}); "
            "replace it with a complete copy of the weights file"
        ) from err
    return state.get("model", state) if isinstance(state, dict) else state


def build_dinov2(
    weights_path: str | os.PathLike | None,
    device: torch.device | str,
    arch: str = DEFAULT_ARCH,
    architecture_overrides: dict[str, Any] | None = None,
) -> nn.Module:
    """timm's DINOv2 ViT at 224 px, loaded strictly from `weights_path` (nothing downloads).

    Args:
        weights_path: DINOv2's release file (`dinov2_vitl14_pretrain.pth`, its unused
            `mask_token` is dropped) or timm's safetensors of the same network.
        device: where the model runs (eval mode, no gradients).
        arch: timm model name (`metrics.dinov2_arch`).
        architecture_overrides: timm constructor arguments that change the size (tests build a
            tiny network in the same layout: `embed_dim`, `depth`, `num_heads`).

    Returns:
        The network; `model(x_BCHW)` gives the (B, C) final-norm CLS token. It carries
        `weights_sha256` and `weights_path`.

    Raises:
        FileNotFoundError: no weights configured or the file is missing (one line with the fix).
        UnreadableFileError: the file cannot be loaded.
        InputFileError: the file's keys or shapes do not match the architecture.
    """
    import timm

    if not weights_path:
        raise FileNotFoundError(
            "metrics.dinov2_weights is not set: FD-DINOv2 needs DINOv2 ViT-L/14 weights "
            f"({RELEASE_FILE}); set SSG_EVAL_DINOV2=/path or metrics.dinov2_weights=..., or drop "
            "fd_dinov2 from metrics.metrics"
        )
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"metrics.dinov2_weights: {path} does not exist; put DINOv2's {RELEASE_FILE} there "
            "or point SSG_EVAL_DINOV2 / metrics.dinov2_weights at it"
        )
    model = timm.create_model(
        arch, pretrained=False, img_size=INPUT_SIZE, num_classes=0,
        **(architecture_overrides or {}),
    )  # fmt: skip
    state = {k: v for k, v in load_state_dict(path).items() if k not in UNUSED_KEYS}
    if "pos_embed" in state:
        state["pos_embed"] = resample_pos_embed(state["pos_embed"], INPUT_SIZE // 14)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise InputFileError(
            f"metrics.dinov2_weights: {path} does not match {arch}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}; use DINOv2's {RELEASE_FILE} "
            "with metrics.dinov2_arch=vit_large_patch14_dinov2"
        )
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False).to(device)
    model.weights_sha256 = sha256_file(path)
    model.weights_path = path
    return model


def _batches(images: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    from ssg_eval.features.extract import rebatch

    return rebatch(images, batch_size)


@torch.inference_mode()
def dinov2_features(
    images: Iterable[np.ndarray],
    model: nn.Module,
    batch_size: int,
    device: torch.device | str,
) -> np.ndarray:
    """CLS-token features of a stream of uint8 NHWC images, in stream order.

    Args:
        images: iterable of uint8 (n_i, H, W, 3) arrays (any chunking; re-batched here).
        model: `build_dinov2(...)` output.
        batch_size: images per forward pass (`metrics.feature_batch_size`).
        device: where `model` lives.

    Returns:
        float32 (N, C) with C the network width (1024 for ViT-L/14).
    """
    out = []
    with torch.autocast(torch.device(device).type, enabled=False):  # float32 inside a sampler
        for batch_NHWC in _batches(images, batch_size):
            x_BCHW = preprocess(batch_NHWC).to(device)
            out.append(model(x_BCHW).float().cpu().numpy())
    if not out:
        raise ValueError("no images to extract DINOv2 features from")
    return np.concatenate(out).astype(np.float32)
