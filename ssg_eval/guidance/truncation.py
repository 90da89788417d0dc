"""Temperature, top-k and top-p truncation of per-scale logits, exactly as VAR's sampler masks them.

This module owns the truncation rules of docs/VAR.md and a faster implementation with the same
kept set; it must not draw random numbers or modify the logits it is given (it returns new tensors).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssg_eval.errors import ConfigError

IMPLS = ("sort", "fast")


def _top_p_sort(logits_NV: Tensor, top_p: float) -> Tensor:
    """Official rule: ascending sort, softmax, cumsum; remove cumsum <= 1 − p except the largest."""
    sorted_NV, order_NV = logits_NV.sort(dim=-1, descending=False)
    remove_sorted_NV = sorted_NV.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    remove_sorted_NV[..., -1:] = False
    return remove_sorted_NV.scatter(-1, order_NV, remove_sorted_NV)


def _top_p_from_top_k(
    logits_NV: Tensor, top_vals_Nk: Tensor, threshold_N1: Tensor, num_kept_N: Tensor, top_p: float
) -> Tensor:
    """Same removal set as `_top_p_sort` on top-k-filtered logits, without sorting all V entries.

    The ascending sorted *values* are unique even with ties: −inf, then the extra copies of the
    top-k threshold (ties that survived top-k), then the k top values sorted. Rebuilding that
    (N, V) array exactly lets softmax and cumsum run on identical inputs. Removed positions form a
    prefix, so the kept set is "value >= first kept value" unless the cut falls inside a tie group
    (the member choice then depends on the sort permutation) or the mask is not a prefix; those
    rows are recomputed with the reference sort.
    """
    N, V = logits_NV.shape
    k = top_vals_Nk.shape[-1]
    position_1V = torch.arange(V, device=logits_NV.device).view(1, V)
    first_tie_N1 = (V - num_kept_N).view(N, 1)
    sorted_NV = torch.where(position_1V >= first_tie_N1, threshold_N1, -torch.inf)
    sorted_NV[:, V - k :] = top_vals_Nk.sort(dim=-1, descending=False)[0]
    cumsum_NV = sorted_NV.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted_NV = cumsum_NV <= (1 - top_p)  # the official comparison (float32 limit)
    remove_sorted_NV[..., -1:] = False
    limit_N1 = torch.full((N, 1), 1 - top_p, dtype=cumsum_NV.dtype, device=cumsum_NV.device)
    num_removed_N1 = torch.searchsorted(cumsum_NV, limit_N1, right=True).clamp_max(V - 1)
    # a parallel (GPU) cumsum need not be monotone: rows whose mask is not that prefix fall back
    not_prefix_N = (remove_sorted_NV != (position_1V < num_removed_N1)).any(dim=-1)
    first_kept_N1 = sorted_NV.gather(-1, num_removed_N1)
    last_removed_N1 = sorted_NV.gather(-1, (num_removed_N1 - 1).clamp_min(0))
    remove_NV = logits_NV < first_kept_N1
    split_tie_N1 = (num_removed_N1 > 0) & (last_removed_N1 == first_kept_N1)
    rows = (split_tie_N1.view(N) | not_prefix_N).nonzero().view(-1)
    if rows.numel() > 0:
        remove_NV[rows] = _top_p_sort(logits_NV[rows], top_p)
    return remove_NV


def apply_truncation(
    logits_BlV: Tensor, temperature: float, top_k: int, top_p: float, impl: str = "sort"
) -> Tensor:
    """Temperature, then top-k, then top-p (VAR's `sample_with_top_k_top_p_`, not in place).

    Rules: logits are divided by `temperature` only if it is not 1.0. Top-k (k > 0): entries
    strictly below the k-th largest value of their row become −inf (ties at the threshold
    survive). Top-p (p > 0), on the top-k-filtered logits: sort ascending, softmax, cumsum; entries
    whose cumsum is <= 1 − p become −inf, never the largest one; boundary ties follow `torch.sort`.

    Args:
        logits_BlV: (B, l, V) float logits; not modified.
        temperature: > 0; 1.0 is skipped exactly.
        top_k: 0 disables; otherwise 1..V.
        top_p: 0 disables; otherwise in (0, 1].
        impl: "sort" (reference, the official computation) or "fast" (sorts only the top-k
            survivors; identical kept set, falls back to "sort" without top-k).

    Returns:
        A new (B, l, V) tensor with removed entries set to −inf.

    Raises:
        ConfigError: unknown `impl`, or `top_k` outside [0, V].
    """
    if impl not in IMPLS:
        raise ConfigError(f"sampler.truncation_impl={impl!r} is not valid; expected one of {IMPLS}")
    B, l, V = logits_BlV.shape
    if not 0 <= top_k <= V:
        raise ConfigError(f"sampler.top_k={top_k} must be in [0, {V}] (0 disables top-k)")
    logits_NV = logits_BlV.reshape(B * l, V)
    if temperature != 1.0:
        logits_NV = logits_NV / temperature
    if top_k > 0:
        # threshold = the k-th largest value per row; only entries strictly below it are removed
        top_vals_Nk = logits_NV.topk(top_k, dim=-1, largest=True, sorted=False)[0]
        threshold_N1 = top_vals_Nk.amin(dim=-1, keepdim=True)
        below_NV = logits_NV < threshold_N1
        logits_NV = logits_NV.masked_fill(below_NV, -torch.inf)
    if top_p > 0:
        if impl == "fast" and top_k > 0:
            num_kept_N = V - below_NV.view(torch.uint8).sum(dim=-1, dtype=torch.int64)
            remove_NV = _top_p_from_top_k(logits_NV, top_vals_Nk, threshold_N1, num_kept_N, top_p)
        else:
            remove_NV = _top_p_sort(logits_NV, top_p)
        logits_NV = logits_NV.masked_fill(remove_NV, -torch.inf)
    if logits_NV.data_ptr() == logits_BlV.data_ptr():
        logits_NV = logits_NV.clone()
    return logits_NV.view(B, l, V)
