"""Re-generation of a few samples of two runs to compare their cumulative latents f̂ per step.

This module drives the production sampler (`sampling.loop.sample_scales`) with each run's own
manifest config and reads f̂ after every scale from the loop's diagnostics; it must not write files
or hold spectral math (that is `analysis.spectral`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ssg_eval.analysis.spectral import LatentPanel, latent_delta_spectrum, nyquist_bin
from ssg_eval.errors import ConfigError
from ssg_eval.sampling.generate import sampling_kwargs
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)


def _field(info: Any, name: str) -> Any:
    return info[name] if isinstance(info, dict) else getattr(info, name)


class LatentRecorder:
    """Reads the loop's per-scale diagnostics: keeps f̂ (and tokens) after the requested scales."""

    def __init__(self, scales: Sequence[int] | None = None) -> None:
        self.scales = None if scales is None else set(scales)
        self.f_hat: dict[int, list[np.ndarray]] = {}
        self.tokens: dict[int, list[Any]] = {}

    def __call__(self, scale_index: int, info: Any) -> None:
        if self.scales is not None and scale_index not in self.scales:
            return
        f_hat_BCHW = _field(info, "f_hat_BCHW").detach().float().cpu().numpy()
        self.f_hat.setdefault(scale_index, []).append(f_hat_BCHW)
        self.tokens.setdefault(scale_index, []).append(_field(info, "tokens_Bl").detach().cpu())

    def stacked(self, scale_index: int) -> np.ndarray:
        """f̂ after `scale_index` of every recorded batch, (N, C, H, W) float32."""
        return np.concatenate(self.f_hat[scale_index])


class TokenForcer:
    """Logit processor that replays given tokens at scales below `until_scale`.

    Placed after the run's own processors, it replaces the logits at forced scales with 0 at the
    recorded token and −inf elsewhere, so temperature, top-k/top-p and sampling pick that token
    while every earlier processor (SSG keeps its prior in its state) still sees the model's real
    logits. From `until_scale` on it is the identity. It draws no random numbers; the sampler
    still draws its usual ones, so the step after the forced prefix meets the baseline's RNG
    state when the draw count does not depend on the logits.
    """

    branch_wise = False
    branches: tuple[str, ...] = ()

    def __init__(self, tokens_by_scale: dict[int, Any], until_scale: int) -> None:
        self.tokens_by_scale = tokens_by_scale  # scale -> (B, l) int64, this batch's rows
        self.until_scale = until_scale

    def init_state(self, batch_size: int) -> object:
        return None

    def __call__(self, logits_BlV: Any, ctx: Any, state: object) -> tuple[Any, object]:
        if ctx.scale_index >= self.until_scale:
            return logits_BlV, state
        import torch

        tokens_Bl = self.tokens_by_scale[ctx.scale_index].to(logits_BlV.device)
        forced_BlV = torch.full_like(logits_BlV, float("-inf"))
        forced_BlV.scatter_(-1, tokens_Bl.unsqueeze(-1), 0.0)  # a fresh tensor, not the input
        return forced_BlV, state


def sample_indices(
    var: Any,
    vae: Any,
    config: Any,
    indices: Sequence[int],
    processors: list,
    observer: Callable[[int, Any], None] | None,
    device: Any,
    guide: Any = None,
) -> np.ndarray:
    """Generate plan indices `indices` as one batch with the run's labels, seeds and settings.

    `observer(si, info)` receives the loop's diagnostics of every scale (f̂, logits, tokens);
    ICG's random labels come from the plan and `guide` is autoguidance's guide model.

    Returns:
        (n, H, W, 3) uint8 images (`sampling.shards.to_uint8` with the run's rounding); with
        `sampler.rng=per_sample` the tokens equal the stored samples' tokens.
    """
    import torch

    from ssg_eval.guidance.base import RANDOM_CLASS
    from ssg_eval.sampling.decode import decode_images, latents_from_tokens
    from ssg_eval.sampling.draw import make_generators
    from ssg_eval.sampling.loop import sample_scales
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shards import to_uint8

    plan = plan_from_config(config)
    kwargs = sampling_kwargs(config)
    decode_dtype = kwargs.pop("decode_dtype")
    labels_B = torch.as_tensor(plan.labels(list(indices)), dtype=torch.long, device=device)
    if any(RANDOM_CLASS in p.branches for p in processors):
        random_B = plan.reference_labels(list(indices))
        kwargs["random_labels_B"] = torch.as_tensor(random_B, dtype=torch.long, device=device)
    generators = make_generators([plan.sample_seed(int(i)) for i in indices], device)
    sample = sample_scales(var, vae, labels_B, generators, processors, guide=guide,
                           diagnostics=observer is not None, **kwargs)  # fmt: skip
    with torch.inference_mode():
        if observer is not None:
            for si, info in enumerate(sample.diagnostics):
                observer(si, info)
        f_hat_BCHW = latents_from_tokens(vae, sample.tokens, sample.embeddings)
        images_B3HW = decode_images(vae, f_hat_BCHW, decode_dtype)
    return to_uint8(images_B3HW, str(config.sampler.uint8_rounding))


def latent_transitions(
    baseline_config: dict[str, Any],
    treated_config: dict[str, Any],
    num_samples: int,
    mode: str,
    device: str | None,
) -> list[LatentPanel]:
    """ΔLog Magnitude of f̂ (treated − baseline) after every step b >= 2 (1-based), paired.

    Samples 0..num_samples−1 of the shared plan are re-generated (same labels and per-sample
    seeds as the stored images) in batches of the baseline's `sampler.batch_size`. `forced`:
    the baseline is sampled once; then, for each b, the treated processors run with a
    `TokenForcer` replaying the baseline's tokens at steps < b, so only step b differs
    (docs/METHOD.md default). `free`: both runs are sampled once, as they were stored.

    Args:
        baseline_config: the baseline manifest's resolved config.
        treated_config: the SSG run's resolved config (same model and plan, checked upstream).
        num_samples: how many plan indices to re-generate.
        mode: `forced` or `free`.
        device: `cpu`, `cuda`, `auto` or None (baseline manifest's `runtime.device`).

    Returns:
        One `LatentPanel` per transition, steps 1→2 … (K−1)→K.

    Raises:
        ConfigError: `sampler.rng` is not `per_sample` (stored images could not be matched).
    """
    from omegaconf import OmegaConf

    from ssg_eval.guidance import build_processors
    from ssg_eval.sampling.generate import build_sampling_model
    from ssg_eval.utils.dist import resolve_device, setup_runtime

    cfg_b, cfg_t = OmegaConf.create(baseline_config), OmegaConf.create(treated_config)
    if cfg_b.sampler.rng != "per_sample":
        raise ConfigError(
            f"sampler.rng={cfg_b.sampler.rng!r}: the latent panels re-generate single samples "
            "and need sampler.rng=per_sample (one generator per sample)"
        )
    torch_device = resolve_device(device or str(cfg_b.runtime.device))
    setup_runtime(cfg_b.runtime)
    model = build_sampling_model(cfg_b, torch_device)
    patch_nums = list(cfg_b.model.patch_nums)
    proc_t = build_processors(cfg_t.guidance, patch_nums)
    guide_t = None
    if "autoguidance" in list(cfg_t.guidance.order):
        from ssg_eval.models.load import build_guide

        guide_t, _ = build_guide(cfg_t.model, cfg_t.guidance.autoguidance.guide, torch_device)
    step = max(1, min(int(cfg_b.sampler.batch_size), num_samples))
    transitions = range(1, len(patch_nums))
    base, treated = LatentRecorder(), LatentRecorder()

    def run(config: Any, indices: list[int], processors: list, recorder: LatentRecorder) -> None:
        guide = model.guide if config is cfg_b else guide_t
        sample_indices(model.var, model.vae, config, indices, processors, recorder, torch_device,
                       guide=guide)  # fmt: skip

    for start in range(0, num_samples, step):
        indices = list(range(start, min(start + step, num_samples)))
        run(cfg_b, indices, model.processors, base)
        if mode == "free":
            run(cfg_t, indices, proc_t, treated)
            continue
        batch_tokens = {si: chunks[-1] for si, chunks in base.tokens.items()}
        for si in transitions:  # the treated pass replays the baseline's tokens before step si
            recorder = LatentRecorder(scales=[si])
            run(cfg_t, indices, [*proc_t, TokenForcer(batch_tokens, until_scale=si)], recorder)
            treated.f_hat.setdefault(si, []).extend(recorder.f_hat[si])
    panels = []
    for si in transitions:
        bins, mean, std = latent_delta_spectrum(treated.stacked(si), base.stacked(si))
        grid = base.stacked(si).shape[-1]
        panels.append(
            LatentPanel(
                to_step=si + 1,
                prev_patch_num=patch_nums[si - 1],
                patch_num=patch_nums[si],
                bins=bins,
                mean=mean,
                std=std,
                nyquist=nyquist_bin(patch_nums[si - 1], grid),
            )
        )
    log.info("latent spectra: %d transitions, %d samples, mode=%s", len(panels), num_samples, mode)
    return panels
