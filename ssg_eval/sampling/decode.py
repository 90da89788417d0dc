"""Tokens → f̂ → pixels: the VQVAE steps after sampling, separate from the loop.

This module owns rebuilding the accumulated latents f̂ from the tokens of every scale (or
more_smooth's soft codes) and decoding them; it must not sample or read configs. Callers decode in
fixed groups, so pixels do not depend on the batch the tokens were sampled in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["autocast_context", "decode_images", "latents_from_tokens"]


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """torch.autocast on `device` for a reduced dtype; a no-op context for None / float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def latents_from_tokens(
    vae: Any,
    tokens_per_scale: Sequence[Tensor],
    embeddings_per_scale: Sequence[Tensor] | None = None,
) -> Tensor:
    """Rebuild f̂ from the tokens of every scale (the loop's residual update, without sampling).

    Args:
        vae: the VQVAE built with the model's patch_nums.
        tokens_per_scale: K tensors (B, pn_k²) int64, row-major.
        embeddings_per_scale: more_smooth's K soft code maps (B, Cvae, pn_k, pn_k); when given
            they are accumulated instead of the embedded tokens.

    Returns:
        f_hat_BCHW: (B, Cvae, pn_last, pn_last) float32, bit-identical to the loop's f̂ for the
        same rows in the same grouping.
    """
    with torch.inference_mode():
        f_hat_BCHW = None
        last = math.isqrt(tokens_per_scale[-1].shape[1])
        for si, tokens_Bl in enumerate(tokens_per_scale):
            pn = math.isqrt(tokens_Bl.shape[1])
            if embeddings_per_scale is not None:
                h_BChw = embeddings_per_scale[si]
            else:
                h_BChw = vae.embed_tokens(tokens_Bl, pn)
            if f_hat_BCHW is None:
                f_hat_BCHW = h_BChw.new_zeros(h_BChw.shape[0], h_BChw.shape[1], last, last)
            f_hat_BCHW, _ = vae.accumulate(si, f_hat_BCHW, h_BChw)
        return f_hat_BCHW


def decode_images(vae: Any, f_hat_BCHW: Tensor, decode_dtype: torch.dtype | None = None) -> Tensor:
    """VQVAE decode of accumulated latents to images in [0, 1]: (decode(f̂) + 1) / 2.

    Args:
        vae: the VQVAE.
        f_hat_BCHW: (B, Cvae, pn_last, pn_last) accumulated latents.
        decode_dtype: autocast dtype of the decoder; None or float32 = plain fp32.

    Returns:
        (B, 3, 16·pn_last, 16·pn_last) float32 images in [0, 1].
    """
    decode_dtype = decode_dtype or torch.float32
    with torch.inference_mode():
        with autocast_context(
            f_hat_BCHW.device, None if decode_dtype == torch.float32 else decode_dtype
        ):
            img_B3HW = vae.decode(f_hat_BCHW)
        return img_B3HW.float().add(1).mul(0.5)
