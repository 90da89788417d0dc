"""Temperature, top-k and top-p truncation of per-scale logits, exactly as VAR's sampler masks them.

This module owns the truncation rules of VAR_SPEC.md §6 and a faster implementation with the same
kept set; it must not draw random numbers or modify the logits it is given (it returns new tensors).
"""

from __future__ import annotations

import torch
from torch import Tensor

IMPLS = ("sort", "fast")


def _top_k_mask(logits_NV: Tensor, top_k: int) -> Tensor:
    # threshold = the k-th largest value per row; only entries strictly below it are removed
    threshold_N1 = logits_NV.topk(top_k, dim=-1, largest=True, sorted=False)[0].amin(
        dim=-1, keepdim=True
    )
    return logits_NV < threshold_N1


def _top_p_sort(logits_NV: Tensor, top_p: float) -> Tensor:
    """Official rule: ascending sort, softmax, cumsum; remove cumsum <= 1 − p except the largest."""
    sorted_NV, order_NV = logits_NV.sort(dim=-1, descending=False)
    remove_sorted_NV = sorted_NV.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    remove_sorted_NV[..., -1:] = False
    return remove_sorted_NV.scatter(-1, order_NV, remove_sorted_NV)


def _top_p_after_top_k(logits_NV: Tensor, top_p: float) -> Tensor:
    """Same removal set as `_top_p_sort` on top-k-filtered logits, sorting only the survivors.

    The ascending sorted *values* are unique even with ties, so they are rebuilt exactly (−inf
    first, then the m survivors from `topk`) and softmax/cumsum run on the identical array. Which
    member of a tie group is removed depends only on the sort permutation, so rows where the cut
    falls inside a tie group are recomputed with the reference sort.
    """
    N, V = logits_NV.shape
    m = int((logits_NV > -torch.inf).sum(dim=-1).max().item())
    m = max(m, 1)
    top_vals_Nm = logits_NV.topk(m, dim=-1, largest=True, sorted=True)[0]
    sorted_NV = torch.full_like(logits_NV, -torch.inf)
    sorted_NV[:, V - m :] = top_vals_Nm.flip(-1)
    remove_sorted_NV = sorted_NV.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    remove_sorted_NV[..., -1:] = False
    # removed positions form a prefix; n_removed − 1 is the last removed, n_removed the first kept
    n_removed_N = remove_sorted_NV.sum(dim=-1)
    first_kept_N1 = sorted_NV.gather(-1, n_removed_N.view(N, 1))
    last_removed_N1 = sorted_NV.gather(-1, (n_removed_N - 1).clamp_min(0).view(N, 1))
    remove_NV = logits_NV < first_kept_N1
    tie_N = (n_removed_N > 0) & (last_removed_N1.view(N) == first_kept_N1.view(N))
    tie_N &= first_kept_N1.view(N) > -torch.inf
    if bool(tie_N.any()):
        rows = tie_N.nonzero().view(-1)
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
        ValueError: unknown `impl`, or `top_k` outside [0, V].
    """
    if impl not in IMPLS:
        raise ValueError(f"sampler.truncation_impl={impl!r} is not valid; expected one of {IMPLS}")
    B, l, V = logits_BlV.shape
    if not 0 <= top_k <= V:
        raise ValueError(f"sampler.top_k={top_k} must be in [0, {V}] (0 disables top-k)")
    logits_NV = logits_BlV.reshape(B * l, V)
    if temperature != 1.0:
        logits_NV = logits_NV / temperature
    if top_k > 0:
        logits_NV = logits_NV.masked_fill(_top_k_mask(logits_NV, top_k), -torch.inf)
    if top_p > 0:
        if impl == "fast" and top_k > 0:
            remove_NV = _top_p_after_top_k(logits_NV, top_p)
        else:
            remove_NV = _top_p_sort(logits_NV, top_p)
        logits_NV = logits_NV.masked_fill(remove_NV, -torch.inf)
    if logits_NV.data_ptr() == logits_BlV.data_ptr():
        logits_NV = logits_NV.clone()
    return logits_NV.view(B, l, V)
