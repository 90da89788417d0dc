"""Every random draw of sampling: generators, VAR's label draw, token draws, Gumbel noise.

This module is the only place that draws random numbers (processors and models never do); it owns
how each draw consumes its generator, so that a single generator reproduces VAR's stream and one
generator per sample makes a sample independent of its batch. It must not run networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gumbel_soft_weights", "make_generators", "official_labels", "sample_tokens"]


def make_generators(seeds: Sequence[int], device: str | torch.device) -> list[torch.Generator]:
    """One generator per seed, living on `device` (CPU and CUDA streams differ).

    Args:
        seeds: one integer seed per sample.
        device: the sampling device.
    """
    return [torch.Generator(device=torch.device(device)).manual_seed(int(s)) for s in seeds]


def official_labels(batch_size: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """VAR's labels for `label_B=None`: B uniform draws with replacement (`multinomial`).

    In the official sampler this is the first use of the freshly reseeded generator.

    Args:
        batch_size: B.
        num_classes: number of real classes.
        generator: the (single) generator; its device is used.

    Returns:
        labels_B: (B,) int64.
    """
    uniform_1N = torch.full(
        (1, num_classes), 1.0 / num_classes, dtype=torch.float32, device=generator.device
    )
    return torch.multinomial(uniform_1N, batch_size, replacement=True, generator=generator).view(
        batch_size
    )


def sample_tokens(
    logits_BlV: Tensor, generators: torch.Generator | Sequence[torch.Generator]
) -> Tensor:
    """Draw one token per position from softmax(logits).

    A single generator reproduces VAR's stream: one `multinomial` over the (B·l, V) probabilities.
    A list of B generators draws row b with `generators[b]` from its own (l, V) probabilities, so a
    sample does not depend on the other members of its batch.

    Args:
        logits_BlV: (B, l, V) float logits (−inf = removed).
        generators: one generator, or a sequence of B generators.

    Returns:
        tokens_Bl: (B, l) int64.

    Raises:
        ValueError: a generator list whose length is not B.
    """
    B, l, V = logits_BlV.shape
    if isinstance(generators, torch.Generator):
        probs_NV = logits_BlV.softmax(dim=-1).view(B * l, V)
        return torch.multinomial(probs_NV, 1, replacement=True, generator=generators).view(B, l)
    if len(generators) != B:
        raise ValueError(f"got {len(generators)} generators for a batch of {B} samples")
    rows = [
        torch.multinomial(logits_BlV[b].softmax(dim=-1), 1, replacement=True, generator=g).view(l)
        for b, g in enumerate(generators)
    ]
    return torch.stack(rows)


def gumbel_soft_weights(
    logits_BlV: Tensor, generators: torch.Generator | Sequence[torch.Generator], tau: float
) -> Tensor:
    """VAR's `more_smooth` draw: softmax((logits + Gumbel noise) / tau) over V, not hard.

    The noise is −log(Exp(1)) from `exponential_` on the sampling generator(s), exactly as VAR's
    `gumbel_softmax_with_rng`: one (B, l, V) block from a single generator, or one (l, V) block per
    row from B generators, drawn after that scale's token draw.

    Args:
        logits_BlV: (B, l, V) float logits, already truncated and scaled (−inf = removed).
        generators: one generator, or a sequence of B generators.
        tau: softmax temperature > 0.

    Returns:
        weights_BlV: (B, l, V) probabilities (rows sum to 1).
    """

    def draw(x: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.empty_like(x, memory_format=torch.legacy_contiguous_format)
        gumbels = -noise.exponential_(generator=generator).log()
        return ((x + gumbels) / tau).softmax(dim=-1)

    if isinstance(generators, torch.Generator):
        return draw(logits_BlV, generators)
    return torch.stack([draw(logits_BlV[b], g) for b, g in enumerate(generators)])
