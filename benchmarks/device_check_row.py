"""Device-check parts for the row pipeline: features while sampling, and the decode overlap.

Both run the production chunk loop (`ssg_eval.sampling.overlap.decoded_chunks`, what the sample
stage runs) on the check's model and config, a few chunks of one forward batch each, alternating
the two variants (ABAB) after one warm-up chunk each, and report medians. `overlap`: the serial
path vs the CUDA side-stream path (on CPU both are the serial code order: a ratio near 1 only
proves the path runs). `features while sampling`: the chunk loop without and with the per-shard
Inception pass (the overlap as in production). Imported by `device_check.py`; never by ssg_eval.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from omegaconf import open_dict

from ssg_eval.sampling.generate import SamplingModel
from ssg_eval.sampling.overlap import decoded_chunks
from ssg_eval.sampling.plan import SamplePlan

CHUNKS = 3  # chunks per timed pass (one forward batch each); quick: 2


def _setup(check: Any, weights: str | None = None) -> tuple[SamplingModel, Any, SamplePlan]:
    cfg = check.cfg.copy()
    batch = int(check.sizes["batch"])
    with open_dict(cfg):
        cfg.sampler.batch_size = cfg.sampler.chunk_size = batch
        cfg.sampler.decode_batch_size = min(int(cfg.sampler.decode_batch_size), batch)
        if weights is not None:
            cfg.metrics.inception_weights = weights
    model = SamplingModel(check.var, check.vae, check.info, check.processors["cfg_ssg"])
    chunks = 2 if check.args.quick else CHUNKS
    plan = SamplePlan(chunks * batch, int(cfg.model.num_classes), batch, 0)
    return model, cfg, plan


def _timed_pass(model, cfg, plan, device, nets=None, overlap=None, first: int = 0) -> float:
    chunks = range(first, plan.num_chunks) if first else range(plan.num_chunks)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in decoded_chunks(model, cfg, plan, chunks, device, nets, overlap=overlap):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _alternate(variants: dict[str, dict], model, cfg, plan, device, deadline) -> dict[str, list]:
    for options in variants.values():  # warm-up: one chunk each (kernels, allocator, buffers)
        _timed_pass(model, cfg, plan, device, first=plan.num_chunks - 1, **options)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(3):
        if repeat and time.perf_counter() > deadline:
            break
        for name, options in variants.items():
            times[name].append(_timed_pass(model, cfg, plan, device, **options))
    return times


def overlap_part(check: Any) -> dict[str, Any]:
    """Images/s of the chunk loop, serial vs overlapped (decode + uint8 + host copy on a side
    stream beside the next chunk's transformer steps), and the gain in %."""
    model, cfg, plan = _setup(check)
    variants = {"serial": {"overlap": False}, "overlapped": {"overlap": True}}
    times = _alternate(variants, model, cfg, plan, check.device, check.slice_end(0.2))
    med = {name: statistics.median(values) for name, values in times.items()}
    return {
        "images_per_s_serial": plan.num_samples / med["serial"],
        "images_per_s_overlapped": plan.num_samples / med["overlapped"],
        "overlap_gain_pct": 100.0 * (med["serial"] / med["overlapped"] - 1.0),
        "pass_s": times, "images_per_pass": plan.num_samples,
    }  # fmt: skip


def features_part(check: Any) -> dict[str, Any]:
    """Images/s of the chunk loop without and with features while sampling, and the overhead."""
    from ssg_eval.sampling.shard_features import feature_nets

    model, cfg, plan = _setup(check, check.inception_weights())
    nets = feature_nets(cfg, check.device)
    variants = {"plain": {}, "features": {"nets": nets}}
    times = _alternate(variants, model, cfg, plan, check.device, check.slice_end(0.25))
    med = {name: statistics.median(values) for name, values in times.items()}
    return {
        "images_per_s_plain": plan.num_samples / med["plain"],
        "images_per_s_features": plan.num_samples / med["features"],
        "features_overhead_pct": 100.0 * (med["features"] / med["plain"] - 1.0),
        "feature_batch": nets.batch, "pass_s": times, "images_per_pass": plan.num_samples,
    }  # fmt: skip


def table_rows(cell: Any, batch: int) -> list[tuple[str, str, str]]:
    """The printed rows of the two parts (`cell(part, key)` formats a figure or a status)."""
    return [
        ("sampling img/s, chunk loop serial", cell("overlap", "images_per_s_serial"),
         f"decoded_chunks, chunks of {batch}, overlap off"),
        ("sampling img/s, chunk loop overlapped", cell("overlap", "images_per_s_overlapped"),
         "decode + uint8 + host copy on a side stream (CUDA; CPU: same order)"),
        ("overlap gain %", cell("overlap", "overlap_gain_pct", 1), "serial / overlapped - 1"),
        ("features while sampling overhead %",
         cell("features_while_sampling", "features_overhead_pct", 1),
         "chunk loop with / without the per-shard Inception pass - 1"),
    ]  # fmt: skip
