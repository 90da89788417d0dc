"""Chunk generation and the latency probe: model and processors built once, seeds -> uint8 images.

This module turns plan chunks into quantized images in three explicit steps: tokens per forward
batch (`sampling.loop.sample_scales`), then f̂ and pixels per decode group aligned to the chunk
start (`latents_from_tokens`, `decode_images`); it must not decide which chunks to run, touch run
directories or hold any sampling math itself.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ssg_eval.errors import ConfigError
from ssg_eval.registry import MODELS, lookup
from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.sampling.shards import to_uint8
from ssg_eval.utils.dist import autocast_dtype

__all__ = [
    "ChunkTokens",
    "SamplingModel",
    "batch_inputs",
    "build_sampling_model",
    "chunk_tokens",
    "decode_groups",
    "generate_images",
    "generate_chunk",
    "image_shape_of",
    "measure_latency",
]


@dataclass(frozen=True)
class SamplingModel:
    """The networks and processors one rank samples with (built once, shared by every chunk)."""

    var: Any
    vae: Any
    info: dict[str, Any]  # build_model's info: checkpoint paths and sha256s, parameter counts
    processors: list[Any]
    guide: Any = None  # autoguidance's guide VAR (shares the VQVAE), None without autoguidance


def image_shape_of(model_cfg: Any) -> tuple[int, int, int]:
    """(H, W, 3) of decoded images: the VQVAE upsamples by 2**(len(vae_ch_mult)-1) per token."""
    side = 2 ** (len(model_cfg.vae_ch_mult) - 1) * int(model_cfg.patch_nums[-1])
    return side, side, 3


def build_sampling_model(cfg: Any, device: torch.device) -> SamplingModel:
    """Build the registered model (`model.arch`) in eval mode, the guide model (autoguidance)
    and the guidance processors."""
    from ssg_eval.guidance import build_processors

    build_model = lookup(MODELS, str(cfg.model.arch), "model.arch")
    var, vae, info = build_model(cfg.model, device)
    var.eval()
    vae.eval()
    processors = build_processors(cfg.guidance, list(cfg.model.patch_nums))
    guide = None
    if "autoguidance" in list(cfg.guidance.order):
        from ssg_eval.models.load import build_guide

        guide, guide_info = build_guide(cfg.model, cfg.guidance.autoguidance.guide, device)
        info = {**info, **guide_info}
    return SamplingModel(var=var, vae=vae, info=dict(info), processors=processors, guide=guide)


def sampling_kwargs(cfg: Any) -> dict[str, Any]:
    """`generate_batch` keyword arguments of a config: truncation, more_smooth and precision."""
    sampler = cfg.sampler
    return {
        "temperature": float(sampler.temperature),
        "top_k": int(sampler.top_k),
        "top_p": float(sampler.top_p),
        "truncation_impl": str(sampler.truncation_impl),
        "more_smooth": bool(sampler.more_smooth),
        "autocast_dtype": autocast_dtype(str(cfg.runtime.autocast_dtype)),
        "decode_dtype": autocast_dtype(str(cfg.runtime.decode_dtype)),
    }


def batch_inputs(
    model: SamplingModel, plan: SamplePlan, indices: np.ndarray, device: torch.device
) -> dict[str, Any]:
    """Labels and branch inputs of the samples `indices`: all pure functions of the index."""
    from ssg_eval.guidance.base import RANDOM_CLASS

    inputs: dict[str, Any] = {
        "labels_B": torch.as_tensor(plan.labels(indices), dtype=torch.long, device=device),
        "guide": model.guide,
    }
    if any(RANDOM_CLASS in p.branches for p in model.processors):
        random_B = plan.reference_labels(indices)
        inputs["random_labels_B"] = torch.as_tensor(random_B, dtype=torch.long, device=device)
    return inputs


def _generators(cfg: Any, plan: SamplePlan, indices: np.ndarray, chunk: int, device) -> Any:
    # per_sample: one generator per index, so tokens do not depend on the batch split; official:
    # one generator per chunk (VAR's per-batch stream), so the chunk is generated as one batch.
    from ssg_eval.sampling.draw import make_generators

    if cfg.sampler.rng == "official":
        g_seed = cfg.sampler.g_seed  # one official call per chunk
        generator = torch.Generator(device=device)
        generator.manual_seed(plan.chunk_seed(chunk) if g_seed is None else int(g_seed))
        return generator
    return make_generators([plan.sample_seed(int(i)) for i in indices], device)


@dataclass(frozen=True)
class ChunkTokens:
    """The sampled tokens of one chunk (every scale), before f̂ and the decoder."""

    tokens: list[torch.Tensor]  # K tensors (n, pn_k²) int64
    embeddings: list[torch.Tensor] | None  # more_smooth's soft codes, else None
    count: int  # n, the chunk's number of samples


def chunk_tokens(
    model: SamplingModel,
    cfg: Any,
    plan: SamplePlan,
    chunk: int,
    device: torch.device,
    indices: np.ndarray | None = None,
) -> ChunkTokens:
    """Step 1 of `generate_chunk`: the tokens of one chunk, in forward batches from its start.

    rng=per_sample splits the chunk into batches of `sampler.batch_size` with one generator per
    sample, so the tokens do not depend on the batch size; rng=official samples the whole chunk
    as one batch (one official call). `indices` (default: the chunk's) may be a prefix of it.
    """
    from ssg_eval.sampling.loop import sample_scales

    kwargs = sampling_kwargs(cfg)
    kwargs.pop("decode_dtype")
    indices = plan.chunk_indices(chunk) if indices is None else indices
    size = len(indices) if cfg.sampler.rng == "official" else int(cfg.sampler.batch_size)
    samples = []
    for start in range(0, len(indices), size):
        sub = indices[start : start + size]
        generators = _generators(cfg, plan, sub, chunk, device)
        inputs = batch_inputs(model, plan, sub, device)
        samples.append(sample_scales(model.var, model.vae, generators=generators,
                                     processors=model.processors, **inputs, **kwargs))  # fmt: skip
    tokens = [torch.cat(parts) for parts in zip(*(s.tokens for s in samples), strict=True)]
    embeddings = None
    if kwargs["more_smooth"]:
        embeddings = [torch.cat(p) for p in zip(*(s.embeddings for s in samples), strict=True)]
    return ChunkTokens(tokens, embeddings, len(indices))


def decode_groups(model: SamplingModel, cfg: Any, sampled: ChunkTokens) -> Iterator[torch.Tensor]:
    """Step 2 of `generate_chunk`: f̂ and pixels per decode group aligned to the chunk start.

    Yields:
        (g, 3, H, W) float images in [0, 1] of `sampler.decode_batch_size` rows each (the last
        group may be shorter), in index order, on the sampling device.
    """
    from ssg_eval.sampling.decode import decode_images, latents_from_tokens

    decode_dtype = sampling_kwargs(cfg)["decode_dtype"]
    # The residual convs and the decoder round differently per batch shape, so only a fixed
    # grouping makes the pixels independent of sampler.batch_size; the tokens never depend on it.
    group = int(cfg.sampler.decode_batch_size)
    for start in range(0, sampled.count, group):
        rows = slice(start, start + group)
        f_hat_BCHW = latents_from_tokens(
            model.vae,
            [t[rows] for t in sampled.tokens],
            None if sampled.embeddings is None else [e[rows] for e in sampled.embeddings],
        )
        yield decode_images(model.vae, f_hat_BCHW, decode_dtype)


def generate_chunk(
    model: SamplingModel, cfg: Any, plan: SamplePlan, chunk: int, device: torch.device
) -> np.ndarray:
    """The images of one chunk as uint8 NHWC, in index order (`generate_images` of its indices)."""
    return generate_images(model, cfg, plan, plan.chunk_indices(chunk), chunk, device)


def generate_images(
    model: SamplingModel,
    cfg: Any,
    plan: SamplePlan,
    indices: np.ndarray,
    chunk: int,
    device: torch.device,
) -> np.ndarray:
    """Generate the images of `indices` (a chunk's, from its first index) as uint8 NHWC.

    1. Tokens (`chunk_tokens`): forward batches from the chunk's first index, one generator per
       sample, so the tokens do not depend on the batch size.
    2. f̂ and pixels (`decode_groups`): groups of `sampler.decode_batch_size` aligned to the
       chunk start, so the pixels do not depend on the batch size either (same device, threads
       and torch version); each group is quantised on the host (`to_uint8`).

    Args:
        model: built once per rank by `build_sampling_model`.
        cfg: the composed config (sampler, runtime).
        plan: the run's plan.
        indices: the sample indices, in order (`plan.chunk_indices(chunk)` or a prefix of it).
        chunk: their chunk number (seeds the chunk's generator with rng=official).
        device: sampling device (the generators live there too).

    Returns:
        (n, H, W, 3) uint8 images of `indices`.
    """
    sampled = chunk_tokens(model, cfg, plan, chunk, device, indices)
    rounding = str(cfg.sampler.uint8_rounding)
    return np.concatenate([to_uint8(x, rounding) for x in decode_groups(model, cfg, sampled)])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: SamplingModel, cfg: Any, plan: SamplePlan, device: torch.device
) -> dict[str, Any]:
    """The Time column: seconds per image of the production path at `runtime.latency_batch_size`.

    The timed call is `generate_images` of the first `runtime.latency_batch_size` plan indices
    (modulo N): exactly what a chunk of that size costs (tokens, decode, uint8), except writing.
    Protocol: one warm-up call, then the median of `runtime.latency_repeats` timed calls, with
    `torch.cuda.synchronize` before and after each on GPU.

    Returns:
        `seconds_per_image`, `seconds_per_batch`, `times_s`, `batch_size`, `repeats`,
        `warmup_calls`, `device`, `device_name`, `autocast_dtype`, `decode_dtype`.

    Raises:
        ConfigError: a latency batch size or repeat count below 1.
    """
    batch, repeats = int(cfg.runtime.latency_batch_size), int(cfg.runtime.latency_repeats)
    if batch < 1 or repeats < 1:
        raise ConfigError(
            f"runtime.latency_batch_size={batch} and runtime.latency_repeats={repeats} must be "
            ">= 1; or set runtime.measure_latency=false"
        )
    indices = np.arange(batch, dtype=np.int64) % plan.num_samples

    def timed() -> float:
        _sync(device)
        start = time.perf_counter()
        generate_images(model, cfg, plan, indices, 0, device)
        _sync(device)
        return time.perf_counter() - start

    timed()  # warm-up (kernel selection, allocator), excluded
    times = [timed() for _ in range(repeats)]
    median = statistics.median(times)
    return {
        "seconds_per_image": median / batch,
        "seconds_per_batch": median,
        "times_s": times,
        "batch_size": batch,
        "repeats": len(times),
        "warmup_calls": 1,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "autocast_dtype": str(cfg.runtime.autocast_dtype),
        "decode_dtype": str(cfg.runtime.decode_dtype),
    }
