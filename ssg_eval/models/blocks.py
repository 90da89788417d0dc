"""VAR transformer blocks: attention with a KV cache, FFN, AdaLN block and the head norm.

This module owns the per-block math of docs/VAR.md with the official parameter names; it must
not sample, hold random generators or know about scales beyond the attention mask it is given.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ln(100) and ln(4) as the official code computes them (float32 log); built on the CPU explicitly
# so that construction under `torch.device("meta")` needs no meta kernels for `log`.
MAX_SCALE_MUL = torch.log(torch.tensor(100.0, dtype=torch.float32, device="cpu")).item()
INIT_SCALE_MUL = torch.log(torch.tensor(4.0, dtype=torch.float32, device="cpu")).item()


class Linear(nn.Linear):
    """`nn.Linear` without default initialisation: weights come from a checkpoint or init rule."""

    def reset_parameters(self) -> None:
        """Skip torch's random init (scoped to this class; torch itself is not patched)."""


class Embedding(nn.Embedding):
    """`nn.Embedding` without default initialisation (see `Linear`)."""

    def reset_parameters(self) -> None:
        """Skip torch's random init."""


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` without default initialisation (see `Linear`)."""

    def reset_parameters(self) -> None:
        """Skip torch's random init."""


class SelfAttention(nn.Module):
    """Multi-head self-attention with VAR's l2-normalised q/k and an optional KV cache.

    Keys (state-dict order): `scale_mul_1H11` (only with l2-norm), `q_bias`, `v_bias`,
    `zero_k_bias` (persistent buffer), `mat_qkv.weight` (no bias), `proj.weight`, `proj.bias`.
    """

    def __init__(self, width: int, num_heads: int, attn_l2_norm: bool) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.attn_l2_norm = attn_l2_norm
        if attn_l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), INIT_SCALE_MUL))
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width))
        self.mat_qkv = Linear(width, 3 * width, bias=False)
        self.proj = Linear(width, width)
        self.caching = False
        self.cached_k_BHLc: Tensor | None = None
        self.cached_v_BHLc: Tensor | None = None

    def set_kv_cache(self, enabled: bool) -> None:
        """Switch caching on or off; either way the cache is emptied."""
        self.caching = enabled
        self.cached_k_BHLc = self.cached_v_BHLc = None

    def forward(self, x_BLC: Tensor, attn_bias: Tensor | None) -> Tensor:
        """Attend over this input (and, when caching, every cached earlier position).

        Args:
            x_BLC: (B, L, C) normalised and modulated block input.
            attn_bias: additive (1, 1, L, L) mask, or None for unmasked attention.

        Returns:
            (B, L, C) projected attention output.
        """
        B, L, C = x_BLC.shape
        bias_3C = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        # output channel = which·C + head·64 + j
        qkv = F.linear(x_BLC, self.mat_qkv.weight, bias_3C).view(B, L, 3, self.num_heads, -1)
        q_BHLc, k_BHLc, v_BHLc = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.attn_l2_norm:
            scale_mul_1H11 = self.scale_mul_1H11.clamp_max(MAX_SCALE_MUL).exp()
            q_BHLc = F.normalize(q_BHLc, dim=-1).mul(scale_mul_1H11)
            k_BHLc = F.normalize(k_BHLc, dim=-1)
        if self.caching:
            if self.cached_k_BHLc is not None:
                k_BHLc = torch.cat((self.cached_k_BHLc, k_BHLc), dim=2)
                v_BHLc = torch.cat((self.cached_v_BHLc, v_BHLc), dim=2)
            self.cached_k_BHLc, self.cached_v_BHLc = k_BHLc, v_BHLc
        out_BHLc = F.scaled_dot_product_attention(
            q_BHLc, k_BHLc, v_BHLc, attn_mask=attn_bias, dropout_p=0.0, scale=self.scale
        )
        return self.proj(out_BHLc.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    """fc1 → GELU(tanh) → fc2 (keys `fc1.*`, `fc2.*`)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(width, hidden)
        self.fc2 = Linear(hidden, width)

    def forward(self, x_BLC: Tensor) -> Tensor:
        """(B, L, C) → (B, L, C)."""
        return self.fc2(F.gelu(self.fc1(x_BLC), approximate="tanh"))


class AdaLNBlock(nn.Module):
    """One VAR transformer block with adaptive LayerNorm (docs/VAR.md, "AdaLN block").

    The six modulation vectors split in the order gamma1, gamma2, scale1, scale2, shift1, shift2.
    Without shared AdaLN they come from `ada_lin` (SiLU, Linear) applied to the condition; with it,
    `ada_gss` (1, 1, 6, C) is added to the already projected (B, 1, 6, C) shared modulation.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        mlp_ratio: float,
        norm_eps: float,
        shared_aln: bool,
        attn_l2_norm: bool,
    ) -> None:
        super().__init__()
        self.width, self.shared_aln, self.norm_eps = width, shared_aln, norm_eps
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.zeros(1, 1, 6, width))
        self.attn = SelfAttention(width, num_heads, attn_l2_norm)
        self.ffn = FFN(width, round(width * mlp_ratio))
        if not shared_aln:
            self.ada_lin = nn.Sequential(nn.SiLU(), Linear(width, 6 * width))

    def _norm(self, x_BLC: Tensor) -> Tensor:
        return F.layer_norm(x_BLC, (self.width,), eps=self.norm_eps)

    def forward(self, x_BLC: Tensor, cond_BD_or_gss: Tensor, attn_bias: Tensor | None) -> Tensor:
        """Apply attention and FFN residual branches.

        Args:
            x_BLC: (B, L, C) hidden states.
            cond_BD_or_gss: (B, D) condition, or the (B, 1, 6, C) shared modulation.
            attn_bias: additive attention mask or None.

        Returns:
            (B, L, C) new hidden states.
        """
        if self.shared_aln:
            mods_B16C = self.ada_gss + cond_BD_or_gss
        else:
            mods_B16C = self.ada_lin(cond_BD_or_gss).view(-1, 1, 6, self.width)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mods_B16C.unbind(2)
        attn_in = self._norm(x_BLC) * (scale1 + 1) + shift1
        x_BLC = x_BLC + self.attn(attn_in, attn_bias) * gamma1
        ffn_in = self._norm(x_BLC) * (scale2 + 1) + shift2
        return x_BLC + self.ffn(ffn_in) * gamma2


class AdaLNBeforeHead(nn.Module):
    """LayerNorm modulated by (scale, shift) from `ada_lin(cond)` viewed (B, 1, 2, C)."""

    def __init__(self, width: int, norm_eps: float) -> None:
        super().__init__()
        self.width, self.norm_eps = width, norm_eps
        self.ada_lin = nn.Sequential(nn.SiLU(), Linear(width, 2 * width))

    def forward(self, x_BLC: Tensor, cond_BD: Tensor) -> Tensor:
        """(B, L, C) hidden states and (B, D) raw class embedding → (B, L, C) head input."""
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.width).unbind(2)
        return F.layer_norm(x_BLC, (self.width,), eps=self.norm_eps) * (scale + 1) + shift
