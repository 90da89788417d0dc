"""VAR's multi-scale VQVAE: convolutional encoder/decoder around the residual quantizer.

This module owns the image ↔ latent networks and their official state-dict layout (docs/VAR.md);
it must not sample tokens, run the transformer or modify tensors it is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssg_eval.models.blocks import Conv2d
from ssg_eval.models.quant import MultiScaleQuantizer


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _conv3(c_in: int, c_out: int, stride: int = 1, padding: int = 1) -> Conv2d:
    return Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=padding)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice plus a 1×1 `nin_shortcut` when the width changes."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(c_in)
        self.conv1 = _conv3(c_in, c_out)
        self.norm2 = _group_norm(c_out)
        self.conv2 = _conv3(c_out, c_out)
        self.nin_shortcut = Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, Cin, H, W) → (B, Cout, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention, softmax(qᵀk/√C), with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.norm = _group_norm(channels)
        self.qkv = Conv2d(channels, 3 * channels, 1)
        self.w_ratio = int(channels) ** (-0.5)
        self.proj_out = Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        qkv = self.qkv(self.norm(x))
        B, _, H, W = qkv.shape
        C = self.channels
        q, k, v = qkv.reshape(B, 3, C, H, W).unbind(1)
        q_BNC = q.reshape(B, C, H * W).permute(0, 2, 1).contiguous()
        k_BCN = k.reshape(B, C, H * W).contiguous()
        w_BNN = torch.bmm(q_BNC, k_BCN).mul(self.w_ratio)  # [b, query, key]
        w_BNN = F.softmax(w_BNN, dim=2)
        v_BCN = v.reshape(B, C, H * W).contiguous()
        h_BCN = torch.bmm(v_BCN, w_BNN.permute(0, 2, 1).contiguous())
        return x + self.proj_out(h_BCN.view(B, C, H, W))


class Downsample(nn.Module):
    """Zero-pad right/bottom by one, then a 3×3 stride-2 conv (key `conv`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H/2, W/2)."""
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv (key `conv`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, 2H, 2W)."""
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _level(
    blocks: list[nn.Module], attns: list[nn.Module], resample: nn.Module | None
) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList(attns)
    if resample is not None:
        setattr(level, "downsample" if isinstance(resample, Downsample) else "upsample", resample)
    return level


def _mid(channels: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels)
    return mid


class Encoder(nn.Module):
    """Image (B, 3, H, W) → latent (B, Cvae, H/2^(n−1), W/2^(n−1)); attention at the last level."""

    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, cvae: int) -> None:
        super().__init__()
        self.conv_in = _conv3(3, ch)
        n = len(ch_mult)
        self.down = nn.ModuleList()
        c_in = ch
        for i in range(n):
            c_out = ch * ch_mult[i]
            blocks = [ResnetBlock(c_in if j == 0 else c_out, c_out) for j in range(num_res_blocks)]
            attns = [AttnBlock(c_out) for _ in range(num_res_blocks)] if i == n - 1 else []
            self.down.append(_level(blocks, attns, Downsample(c_out) if i != n - 1 else None))
            c_in = c_out
        self.mid = _mid(c_in)
        self.norm_out = _group_norm(c_in)
        self.conv_out = _conv3(c_in, cvae)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [−1, 1] → (B, Cvae, h, w)."""
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, Cvae, h, w) → image (B, 3, 16h, 16w); `up.{i}` indexed by level, run 4 → 0."""

    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, cvae: int) -> None:
        super().__init__()
        n = len(ch_mult)
        c_in = ch * ch_mult[-1]
        self.conv_in = _conv3(cvae, c_in)
        self.mid = _mid(c_in)
        levels: list[nn.Module] = []
        for i in reversed(range(n)):
            c_out = ch * ch_mult[i]
            blocks = [
                ResnetBlock(c_in if j == 0 else c_out, c_out) for j in range(num_res_blocks + 1)
            ]
            attns = [AttnBlock(c_out) for _ in range(num_res_blocks + 1)] if i == n - 1 else []
            levels.insert(0, _level(blocks, attns, Upsample(c_out) if i != 0 else None))
            c_in = c_out
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(c_in)
        self.conv_out = _conv3(c_in, 3)

    def forward(self, z: Tensor) -> Tensor:
        """(B, Cvae, h, w) → (B, 3, H, W), unclamped."""
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VQVAE(nn.Module):
    """Encoder, decoder and multi-scale quantizer with the official key layout (324 keys at ch 160).

    Args:
        vocab_size: codebook size V.
        cvae: latent / codebook width.
        ch: base channel count (`model.vae_ch`).
        ch_mult: channel multipliers per level (`model.vae_ch_mult`).
        num_res_blocks: encoder res blocks per level (the decoder has one more).
        patch_nums: the scale sides; the last one is the latent grid.
        quant_resi: phi mixing ratio.
        share_quant_resi: number of partially shared phi convs.
    """

    def __init__(
        self,
        vocab_size: int,
        cvae: int,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        patch_nums: list[int],
        quant_resi: float,
        share_quant_resi: int,
    ) -> None:
        super().__init__()
        self.vocab_size, self.cvae = vocab_size, cvae
        self.patch_nums = tuple(int(pn) for pn in patch_nums)
        self.downsample = 2 ** (len(ch_mult) - 1)
        self.encoder = Encoder(ch, list(ch_mult), num_res_blocks, cvae)
        self.decoder = Decoder(ch, list(ch_mult), num_res_blocks, cvae)
        self.quantize = MultiScaleQuantizer(
            vocab_size, cvae, self.patch_nums, quant_resi, share_quant_resi
        )
        self.quant_conv = _conv3(cvae, cvae)
        self.post_quant_conv = _conv3(cvae, cvae)

    def decode(self, f_hat_BCHW: Tensor) -> Tensor:
        """f̂ (B, Cvae, pn, pn) → image (B, 3, 16·pn, 16·pn) clamped to [−1, 1], pn = pn_last."""
        return self.decoder(self.post_quant_conv(f_hat_BCHW)).clamp(-1, 1)

    def embed_tokens(self, tokens_Bl: Tensor, patch_num: int) -> Tensor:
        """(B, l) row-major tokens → h (B, Cvae, patch_num, patch_num) (codebook lookup)."""
        return self.quantize.embed_tokens(tokens_Bl, patch_num)

    def embed_soft(self, weights_BlV: Tensor, patch_num: int) -> Tensor:
        """(B, l, V) weights over the codebook → h = weights @ codebook as (B, Cvae, pn, pn).

        VAR's `more_smooth` input: a soft one-hot (Gumbel softmax) times the codebook, row-major.
        """
        B = weights_BlV.shape[0]
        h_BlC = weights_BlV @ self.quantize.embedding.weight.unsqueeze(0)
        return h_BlC.transpose(1, 2).reshape(B, self.cvae, patch_num, patch_num)

    def accumulate(
        self, scale_index: int, f_hat_BCHW: Tensor, h_BChw: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """New f̂ and the next scale's input map (None at the last scale); inputs are not modified.

        See `MultiScaleQuantizer.accumulate` for the exact update.
        """
        return self.quantize.accumulate(scale_index, f_hat_BCHW, h_BChw)

    def encode_to_tokens(self, img_BCHW: Tensor) -> list[Tensor]:
        """Image (B, 3, 16·pn_last, 16·pn_last) in [−1, 1] → one (B, pn²) int64 tensor per scale."""
        return self.quantize.quantize_to_tokens(self.quant_conv(self.encoder(img_BCHW)))
