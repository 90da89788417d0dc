"""The multi-scale residual quantizer of VAR's VQVAE: codebook, shared phi convs, f̂ update.

This module owns codebook lookups, the phi index per scale (docs/VAR.md) and the residual
accumulation of f̂; it must not sample, run the encoder/decoder or edit tensors it is given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssg_eval.errors import ConfigError
from ssg_eval.models.blocks import Conv2d, Embedding


def phi_ticks(num_phis: int) -> np.ndarray:
    """The float64 tick positions of the partially shared phis (official numpy formula)."""
    if num_phis == 4:
        return np.linspace(1 / 3 / num_phis, 1 - 1 / 3 / num_phis, num_phis)
    return np.linspace(1 / 2 / num_phis, 1 - 1 / 2 / num_phis, num_phis)


def phi_index_table(num_scales: int, num_phis: int) -> tuple[int, ...]:
    """Which phi each scale uses: argmin |ticks − si/(K−1)|, all in float64 like the official code.

    For K = 10 and 4 phis this is (0, 0, 1, 1, 1, 2, 2, 3, 3, 3); si = 2 and 7 are real-arithmetic
    ties that float64 rounding settles (docs/VAR.md, phi table). A single scale uses at = 0.

    Args:
        num_scales: K, the number of scales.
        num_phis: number of shared phi convs (`model.share_quant_resi`).

    Returns:
        A tuple of K phi indices.
    """
    ticks = phi_ticks(num_phis)
    table = []
    for si in range(num_scales):
        at = si / (num_scales - 1) if num_scales > 1 else 0.0
        table.append(int(np.argmin(np.abs(ticks - at))))
    return tuple(table)


class Phi(Conv2d):
    """phi(h) = (1 − r)·h + r·conv3×3(h), r = |quant_resi| (keys `weight`, `bias`)."""

    def __init__(self, channels: int, quant_resi: float) -> None:
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(quant_resi)

    def forward(self, h_BChw: Tensor) -> Tensor:
        """(B, C, h, w) → (B, C, h, w)."""
        return h_BChw.mul(1 - self.resi_ratio) + super().forward(h_BChw).mul(self.resi_ratio)


class PhiPartiallyShared(nn.Module):
    """`num_phis` phi convs (`qresi_ls.{i}`) shared across scales by nearest tick."""

    def __init__(self, channels: int, quant_resi: float, num_phis: int) -> None:
        super().__init__()
        self.qresi_ls = nn.ModuleList([Phi(channels, quant_resi) for _ in range(num_phis)])


class MultiScaleQuantizer(nn.Module):
    """Codebook plus phi convs: `ema_vocab_hit_SV` (buffer), `quant_resi.qresi_ls.*`, `embedding`.

    `ema_vocab_hit_SV` (K, V) is a training statistic kept only for state-dict compatibility.
    """

    def __init__(
        self,
        vocab_size: int,
        cvae: int,
        patch_nums: list[int] | tuple[int, ...],
        quant_resi: float,
        share_quant_resi: int,
    ) -> None:
        super().__init__()
        if share_quant_resi < 2:
            raise ConfigError(
                f"model.share_quant_resi={share_quant_resi} is not supported; the released VQVAE "
                "uses partially shared phis (4); use a value >= 2"
            )
        if not 0 < abs(quant_resi) <= 1:
            raise ConfigError(f"model.quant_resi={quant_resi} must satisfy 0 < |quant_resi| <= 1")
        self.vocab_size, self.cvae = vocab_size, cvae
        self.patch_nums = tuple(int(pn) for pn in patch_nums)
        self.phi_index = phi_index_table(len(self.patch_nums), share_quant_resi)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), vocab_size))
        self.quant_resi = PhiPartiallyShared(cvae, quant_resi, share_quant_resi)
        self.embedding = Embedding(vocab_size, cvae)

    def phi(self, scale_index: int) -> Phi:
        """The phi conv used at 0-based scale `scale_index`."""
        return self.quant_resi.qresi_ls[self.phi_index[scale_index]]

    def embed_tokens(self, tokens_Bl: Tensor, patch_num: int) -> Tensor:
        """Codebook lookup of a row-major token map.

        Args:
            tokens_Bl: (B, l) int64 token indices, l = patch_num**2, row-major.
            patch_num: side of the token grid.

        Returns:
            h_BChw: (B, Cvae, patch_num, patch_num).
        """
        B = tokens_Bl.shape[0]
        return self.embedding(tokens_Bl).transpose(1, 2).reshape(B, self.cvae, patch_num, patch_num)

    def accumulate(
        self, scale_index: int, f_hat_BCHW: Tensor, h_BChw: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Add this scale's phi-filtered embedding to f̂ (official update, without in-place edits).

        Non-last scales: f̂ + phi(bicubic(h → last grid)) and the next input map is
        area-resize(f̂ → next patch_num). Last scale: f̂ + phi(h) and no next map.

        Args:
            scale_index: 0-based si.
            f_hat_BCHW: (B, Cvae, pn_last, pn_last) running f̂ (not modified).
            h_BChw: (B, Cvae, pn_si, pn_si) embedded tokens of scale si.

        Returns:
            (f_hat_new_BCHW, next_map_BChw or None at the last scale).
        """
        last = self.patch_nums[-1]
        if scale_index != len(self.patch_nums) - 1:
            up_BCHW = F.interpolate(h_BChw, size=(last, last), mode="bicubic")
            f_hat_BCHW = f_hat_BCHW + self.phi(scale_index)(up_BCHW)
            nxt = self.patch_nums[scale_index + 1]
            return f_hat_BCHW, F.interpolate(f_hat_BCHW, size=(nxt, nxt), mode="area")
        return f_hat_BCHW + self.phi(scale_index)(h_BChw), None

    def quantize_to_tokens(self, f_BCHW: Tensor) -> list[Tensor]:
        """Multi-scale residual quantisation of an encoder feature map (nearest codeword, L2).

        Args:
            f_BCHW: (B, Cvae, pn_last, pn_last) output of encoder + quant_conv.

        Returns:
            One (B, pn_si**2) int64 token tensor per scale, row-major.
        """
        B, C, H, W = f_BCHW.shape
        if (H, W) != (self.patch_nums[-1], self.patch_nums[-1]):
            raise ValueError(
                f"feature map {H}x{W} does not match patch_nums[-1]={self.patch_nums[-1]}"
            )
        f_rest = f_BCHW.clone()
        f_hat = torch.zeros_like(f_rest)
        codebook_VC = self.embedding.weight
        code_sq_V = codebook_VC.square().sum(dim=1)
        tokens = []
        K = len(self.patch_nums)
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != K - 1 else f_rest
            z_NC = z.permute(0, 2, 3, 1).reshape(-1, C)
            dist_NV = z_NC.square().sum(dim=1, keepdim=True) + code_sq_V
            dist_NV = torch.addmm(dist_NV, z_NC, codebook_VC.T, alpha=-2, beta=1)
            idx_Bl = dist_NV.argmin(dim=1).view(B, pn * pn)
            h_BChw = self.embed_tokens(idx_Bl, pn)
            if si != K - 1:
                h_BChw = F.interpolate(h_BChw, size=(H, W), mode="bicubic")
            h_BChw = self.phi(si)(h_BChw)
            f_hat = f_hat + h_BChw
            f_rest = f_rest - h_BChw
            tokens.append(idx_Bl)
        return tokens
