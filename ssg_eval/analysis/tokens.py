"""Re-generation of a few paired samples with their per-scale tokens: where guidance changed them.

This module drives the production sampler (`analysis.latent.sample_indices`, the loop's
diagnostics) with each run's manifest config; with `sampler.rng=per_sample` the re-generated
images equal the stored ones. It must not write files or draw pictures (that is `report.grids`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssg_eval.analysis.latent import LatentRecorder, sample_indices
from ssg_eval.errors import ConfigError

__all__ = ["PairedTokens", "paired_tokens"]


@dataclass(frozen=True)
class PairedTokens:
    """Tokens of the same samples without and with guidance.

    Attributes:
        indices: plan indices, in the order given.
        baseline_images, guided_images: re-generated uint8 (n, H, W, 3).
        changed: per scale, bool (n, pn, pn): the guided token differs from the baseline's.
    """

    indices: list[int]
    baseline_images: np.ndarray
    guided_images: np.ndarray
    changed: list[np.ndarray]


def paired_tokens(
    baseline_config: dict[str, Any],
    guided_config: dict[str, Any],
    indices: Sequence[int],
    device: str | None = None,
) -> PairedTokens:
    """Re-generate plan indices `indices` with both runs' settings, recording every scale's tokens.

    Both runs are sampled freely (as they were stored): a token that differs at scale k may
    differ because guidance acted at k or because an earlier scale already differed.

    Args:
        baseline_config, guided_config: the runs' resolved manifest configs (one model, one plan).
        indices: plan indices to re-generate (one batch).
        device: `cpu`, `cuda`, `auto` or None (the baseline manifest's `runtime.device`).

    Raises:
        ConfigError: `sampler.rng` is not `per_sample`.
    """
    from omegaconf import OmegaConf

    from ssg_eval.guidance import build_processors
    from ssg_eval.sampling.generate import build_sampling_model
    from ssg_eval.utils.dist import resolve_device, setup_runtime

    cfg_b, cfg_g = OmegaConf.create(baseline_config), OmegaConf.create(guided_config)
    if cfg_b.sampler.rng != "per_sample":
        raise ConfigError(f"sampler.rng={cfg_b.sampler.rng!r}: re-generating single samples needs "
                         "sampler.rng=per_sample (one generator per sample)")  # fmt: skip
    torch_device = resolve_device(device or str(cfg_b.runtime.device))
    setup_runtime(cfg_b.runtime)
    model = build_sampling_model(cfg_b, torch_device)
    guide = None
    if "autoguidance" in list(cfg_g.guidance.order):
        from ssg_eval.models.load import build_guide

        guide, _ = build_guide(cfg_g.model, cfg_g.guidance.autoguidance.guide, torch_device)
    processors = build_processors(cfg_g.guidance, list(cfg_g.model.patch_nums))
    indices = [int(i) for i in indices]
    base, guided = LatentRecorder(), LatentRecorder()
    images_b = sample_indices(model.var, model.vae, cfg_b, indices, model.processors, base,
                              torch_device, guide=model.guide)  # fmt: skip
    images_g = sample_indices(model.var, model.vae, cfg_g, indices, processors, guided,
                              torch_device, guide=guide)  # fmt: skip
    changed = []
    for si, pn in enumerate(cfg_b.model.patch_nums):
        tokens_b = base.tokens[si][0].numpy().reshape(len(indices), pn, pn)
        tokens_g = guided.tokens[si][0].numpy().reshape(len(indices), pn, pn)
        changed.append(tokens_b != tokens_g)
    return PairedTokens(indices, images_b, images_g, changed)
