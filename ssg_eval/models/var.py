"""The class-conditional VAR transformer (next-scale prediction), official state-dict layout.

This module owns embeddings, the block stack, the AdaLN head and the scale bookkeeping
(docs/VAR.md); it must not sample, mix guidance branches, hold a generator or a VQVAE.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssg_eval.models.blocks import AdaLNBeforeHead, AdaLNBlock, Embedding, Linear


class VAR(nn.Module):
    """VAR transformer: width C = 64·depth, heads = depth, head dim 64.

    State-dict keys, shapes, dtypes and order equal the official `VAR` (see
    `var_state_dict_keys.txt`), including the persistent buffers `lvl_1L`,
    `attn_bias_for_masking` and every `blocks.{i}.attn.zero_k_bias`.

    Args:
        depth: number of blocks.
        patch_nums: scale sides pn_0 < ... < pn_{K−1}.
        vocab_size: codebook size V.
        cvae: codebook width.
        num_classes: real classes; index `num_classes` is the null (unconditional) class.
        shared_aln: shared AdaLN (d36) instead of one `ada_lin` per block.
        attn_l2_norm: l2-normalised attention (True for every released checkpoint).
        mlp_ratio: FFN hidden width / C.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        depth: int,
        patch_nums: list[int],
        vocab_size: int,
        cvae: int,
        num_classes: int,
        shared_aln: bool,
        attn_l2_norm: bool,
        mlp_ratio: float,
        norm_eps: float,
    ) -> None:
        super().__init__()
        C = 64 * depth
        self.depth, self.width, self.num_heads = depth, C, depth
        self.vocab_size, self.cvae, self.num_classes = vocab_size, cvae, num_classes
        self.shared_aln = shared_aln
        self.patch_nums = tuple(int(pn) for pn in patch_nums)
        self.begin_ends: list[tuple[int, int]] = []
        start = 0
        for pn in self.patch_nums:
            self.begin_ends.append((start, start + pn * pn))
            start += pn * pn
        self.seq_len = start
        self.first_l = self.patch_nums[0] ** 2

        self.pos_start = nn.Parameter(torch.zeros(1, self.first_l, C))
        self.pos_1LC = nn.Parameter(torch.zeros(1, self.seq_len, C))
        self.register_buffer("lvl_1L", torch.zeros(1, self.seq_len, dtype=torch.int64))
        self.register_buffer("attn_bias_for_masking", torch.zeros(1, 1, self.seq_len, self.seq_len))
        self._fill_buffers()
        self.word_embed = Linear(cvae, C)
        self.class_emb = Embedding(num_classes + 1, C)
        self.lvl_embed = Embedding(len(self.patch_nums), C)
        if shared_aln:
            self.shared_ada_lin = nn.Sequential(nn.SiLU(), Linear(C, 6 * C))
        self.blocks = nn.ModuleList(
            AdaLNBlock(C, depth, mlp_ratio, norm_eps, shared_aln, attn_l2_norm)
            for _ in range(depth)
        )
        self.head_nm = AdaLNBeforeHead(C, norm_eps)
        self.head = Linear(C, vocab_size)

    @torch.no_grad()
    def _fill_buffers(self) -> None:
        """Compute the buffers from the scale schedule (skipped on the meta device)."""
        if self.lvl_1L.is_meta:  # shapes only; values do not exist on the meta device
            return
        cpu = torch.device("cpu")
        lvl_L = torch.cat(
            [
                torch.full((pn * pn,), si, dtype=torch.int64, device=cpu)
                for si, pn in enumerate(self.patch_nums)
            ]
        )
        self.lvl_1L.copy_(lvl_L.view(1, -1))
        # 0 where the query's scale >= the key's scale, else −inf (block-causal)
        visible_LL = lvl_L.view(-1, 1) >= lvl_L.view(1, -1)
        bias_LL = torch.zeros(visible_LL.shape, device=cpu).masked_fill_(~visible_LL, -torch.inf)
        self.attn_bias_for_masking.copy_(bias_LL.view(1, 1, self.seq_len, self.seq_len))

    def set_kv_cache(self, enabled: bool) -> None:
        """Enable or disable KV caching in every block; the caches are cleared either way."""
        for block in self.blocks:
            block.attn.set_kv_cache(enabled)

    def class_condition(self, labels_B: Tensor) -> Tensor:
        """Class embedding (B,) int64 → cond_BD (B, C); label `num_classes` is the null class."""
        return self.class_emb(labels_B)

    def _lvl_pos(self, scale_index: int) -> Tensor:
        begin, end = self.begin_ends[scale_index]
        return self.lvl_embed(self.lvl_1L[:, begin:end]) + self.pos_1LC[:, begin:end]

    def first_scale_input(self, cond_BD: Tensor) -> Tensor:
        """Input of scale 0: cond + pos_start + lvl_pos[:, :first_l] → x (B, first_l, C)."""
        B = cond_BD.shape[0]
        sos_B1C = cond_BD.unsqueeze(1).expand(B, self.first_l, -1)
        return sos_B1C + self.pos_start.expand(B, self.first_l, -1) + self._lvl_pos(0)

    def next_scale_input(self, map_BCvaehw: Tensor, scale_index: int) -> Tensor:
        """Input of scale `scale_index` from the area-resized f̂ of the previous step.

        Args:
            map_BCvaehw: (B, Cvae, pn, pn) with pn = patch_nums[scale_index].
            scale_index: the scale this input is for (si + 1 of the step that produced the map).

        Returns:
            x_BlC: (B, pn², C) = word_embed(row-major map) + lvl_pos of that scale.
        """
        B = map_BCvaehw.shape[0]
        map_BlCvae = map_BCvaehw.view(B, self.cvae, -1).transpose(1, 2)
        return self._word_embed(map_BlCvae) + self._lvl_pos(scale_index)

    def _word_embed(self, map_BlCvae: Tensor) -> Tensor:
        """`word_embed` of the strided (B, l, Cvae) map with the official float32 arithmetic.

        The official sampler runs with trainable weights, so `F.linear` on this non-contiguous
        input folds the batch: one contiguous copy of the rows, one GEMM, then the bias added.
        With frozen weights `F.linear` would take a batched GEMM instead, whose last bits depend
        on the BLAS (docs/EQUIVALENCE.md); spelling out the folded path makes the result the
        same whatever `requires_grad` says. A contiguous map (one position per scale) takes
        `F.linear`'s flattened path in either state, and under autocast the module runs as
        called (not a bitwise case).
        """
        if map_BlCvae.is_contiguous() or torch.is_autocast_enabled(map_BlCvae.device.type):
            return self.word_embed(map_BlCvae)
        B, l, cvae = map_BlCvae.shape
        rows_NC = map_BlCvae.reshape(B * l, cvae).mm(self.word_embed.weight.t())
        return rows_NC.view(B, l, -1).add_(self.word_embed.bias)

    def _head_logits(self, h_BLC: Tensor, cond_BD: Tensor) -> Tensor:
        return self.head(self.head_nm(h_BLC.float(), cond_BD).float()).float()

    def _run_blocks(self, x_BLC: Tensor, cond_BD: Tensor, attn_bias: Tensor | None) -> Tensor:
        if self.shared_aln:
            cond_or_gss = self.shared_ada_lin(cond_BD).view(-1, 1, 6, self.width)
        else:
            cond_or_gss = cond_BD
        for block in self.blocks:
            x_BLC = block(x_BLC, cond_or_gss, attn_bias)
        return x_BLC

    def scale_logits(self, x_BlC: Tensor, cond_BD: Tensor) -> Tensor:
        """Logits of one scale; with the KV cache on, attends to every earlier cached scale.

        Args:
            x_BlC: (B, l, C) this scale's input.
            cond_BD: (B, C) raw class embedding (blocks get shared_ada_lin(cond) when shared).

        Returns:
            logits_BlV: (B, l, V) float32.
        """
        return self._head_logits(self._run_blocks(x_BlC, cond_BD, None), cond_BD)

    def teacher_forcing_logits(self, cond_BD: Tensor, x_BLC: Tensor) -> Tensor:
        """Logits of a whole prefix of scales at once with the block-causal mask (cache off).

        Args:
            cond_BD: (B, C) raw class embedding.
            x_BLC: (B, L', C) concatenated per-scale inputs (first_scale_input, then
                next_scale_input for each later scale), L' a sum of leading l_k.

        Returns:
            logits_BLV: (B, L', V) float32.
        """
        if any(block.attn.caching for block in self.blocks):
            raise RuntimeError("teacher_forcing_logits needs the KV cache off: set_kv_cache(False)")
        L = x_BLC.shape[1]
        attn_bias = self.attn_bias_for_masking[:, :, :L, :L]
        return self._head_logits(self._run_blocks(x_BLC, cond_BD, attn_bias), cond_BD)
