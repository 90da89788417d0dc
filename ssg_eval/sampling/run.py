"""Per-rank sampling runner: run-dir identity, resumable chunk loop, finalize and the manifest.

Rank and world size are arguments (read from the environment once, by `ssg_eval.sample`), so
tests drive `run_rank(cfg, r, W)` in a loop without torch.distributed; this module must not
parse the command line, and it holds no sampling math (that is `sampling.loop`).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from ssg_eval.config import ConfigError, validate
from ssg_eval.registry import MODELS, lookup
from ssg_eval.sampling.plan import SamplePlan, plan_from_config
from ssg_eval.sampling.shards import (
    SAMPLES_NPZ,
    export_samples_npz,
    images_sha256,
    shard_path,
    shard_problem,
    to_uint8,
    write_shard,
)
from ssg_eval.stage import run_dir as resolve_run_dir
from ssg_eval.utils.dist import autocast_dtype, resolve_device, setup_runtime
from ssg_eval.utils.io import atomic_write_json, read_json
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import collect_provenance, config_hash

__all__ = [
    "SimulatedCrash",
    "finalize_run",
    "generate_chunk",
    "image_shape_of",
    "measure_latency",
    "plan_status",
    "prepare_run_dir",
    "run_rank",
    "sample_run",
]

log = get_logger(__name__)
# The identity of the shards in a run dir, written before the first shard (the manifest only
# appears once the run is complete, which is what the later stages wait for).
IDENTITY = "shards/identity.json"
# Artifacts derived from a run's samples; `overwrite=true` removes them with the shards.
DERIVED = ("manifest.json", SAMPLES_NPZ, "features.npz", "features.json", "metrics.json")


class SimulatedCrash(RuntimeError):
    """Raised by the `fail_after_chunks` test hook of `run_rank`."""


def resolved_config(cfg: Any) -> dict[str, Any]:
    """The config as a plain, fully resolved dict (what the manifest stores and the hash sees)."""
    node = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def image_shape_of(model_cfg: Any) -> tuple[int, int, int]:
    """(H, W, 3) of decoded images: the VQVAE upsamples by 2**(len(vae_ch_mult)-1) per token."""
    side = 2 ** (len(model_cfg.vae_ch_mult) - 1) * int(model_cfg.patch_nums[-1])
    return side, side, 3


def _stored_hash(directory: Path) -> str | None:
    for name in ("manifest.json", IDENTITY):
        if (directory / name).is_file():
            return read_json(directory / name).get("config_hash")
    return None


def prepare_run_dir(cfg: Any, rank: int, *, barrier: Any = None) -> Path:
    """Check (every rank) and claim (rank 0) the run dir for this config, then wait for all ranks.

    A run dir that holds shards or a manifest of another config hash is refused unless
    `overwrite=true`, in which case rank 0 removes the old shards and the artifacts derived from
    them (manifest, samples.npz, features, metrics). With a matching hash nothing is removed,
    `overwrite` or not: valid shards are kept (resume).

    Args:
        cfg: the composed config.
        rank: this process's rank (only rank 0 writes).
        barrier: callable run after rank 0 has claimed the dir (None: single process).

    Returns:
        The run directory.

    Raises:
        ConfigError: the stored config hash differs and `overwrite` is false.
    """
    directory = resolve_run_dir(cfg)
    resolved = resolved_config(cfg)
    digest = config_hash(resolved)
    stored = _stored_hash(directory)
    if stored is not None and stored != digest:
        if not cfg.overwrite:
            raise ConfigError(
                f"run dir {directory} holds samples of config hash {stored}, but this config "
                f"hashes to {digest}; choose a new run_name=... or pass overwrite=true to delete "
                "the old shards"
            )
        if rank == 0:
            log.warning("overwrite=true: removing shards of config %s in %s", stored, directory)
            shutil.rmtree(directory / "shards", ignore_errors=True)
            for name in DERIVED:
                (directory / name).unlink(missing_ok=True)
    if rank == 0 and not (directory / IDENTITY).is_file():
        atomic_write_json(directory / IDENTITY, {"config_hash": digest, "config": resolved})
    if barrier is not None:
        barrier()
    return directory


def _build(cfg: Any, device: torch.device) -> tuple[Any, Any, dict[str, Any], list[Any]]:
    from ssg_eval.guidance import build_processors

    build_model = lookup(MODELS, str(cfg.model.arch), "model.arch")
    var, vae, info = build_model(cfg.model, device)
    var.eval()
    vae.eval()
    processors = build_processors(cfg.guidance, list(cfg.model.patch_nums))
    return var, vae, dict(info), processors


def _sampling_kwargs(cfg: Any) -> dict[str, Any]:
    sampler = cfg.sampler
    return {
        "temperature": float(sampler.temperature),
        "top_k": int(sampler.top_k),
        "top_p": float(sampler.top_p),
        "truncation_impl": str(sampler.truncation_impl),
        "autocast_dtype": autocast_dtype(str(cfg.runtime.autocast_dtype)),
        "decode_dtype": autocast_dtype(str(cfg.runtime.decode_dtype)),
    }


def _generators(cfg: Any, plan: SamplePlan, indices: np.ndarray, chunk: int, device) -> Any:
    # per_sample: one generator per index (any batch split gives the same images); official: one
    # generator per chunk, VAR's per-batch stream, so the chunk must be generated as one batch.
    from ssg_eval.sampling.loop import make_generators

    if cfg.sampler.rng == "official":
        generator = torch.Generator(device=device)
        generator.manual_seed(plan.chunk_seed(chunk))
        return generator
    return make_generators([plan.sample_seed(int(i)) for i in indices], device)


def generate_chunk(
    model: tuple[Any, Any, dict[str, Any], list[Any]],
    cfg: Any,
    plan: SamplePlan,
    chunk: int,
    device: torch.device,
) -> np.ndarray:
    """Generate the images of one chunk as uint8 NHWC, in index order.

    Args:
        model: `(var, vae, info, processors)` as built once per rank.
        cfg: the composed config (sampler, runtime).
        plan: the run's plan.
        chunk: chunk number.
        device: sampling device (generators live there too).

    Returns:
        (n, H, W, 3) uint8 images of `plan.chunk_indices(chunk)`.
    """
    from ssg_eval.sampling.loop import generate_batch

    var, vae, _, processors = model
    kwargs = _sampling_kwargs(cfg)
    indices = plan.chunk_indices(chunk)
    size = len(indices) if cfg.sampler.rng == "official" else int(cfg.sampler.batch_size)
    parts = []
    for start in range(0, len(indices), size):
        sub = indices[start : start + size]
        generators = _generators(cfg, plan, sub, chunk, device)
        labels_B = torch.as_tensor(plan.labels(sub), dtype=torch.long, device=device)
        with torch.inference_mode():
            images_B3HW = generate_batch(var, vae, labels_B, generators, processors, **kwargs)
        parts.append(to_uint8(images_B3HW, str(cfg.sampler.uint8_rounding)))
    return np.concatenate(parts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: tuple[Any, Any, dict[str, Any], list[Any]],
    cfg: Any,
    plan: SamplePlan,
    device: torch.device,
) -> dict[str, Any]:
    """The Time column: seconds per image of `generate_batch` at `runtime.latency_batch_size`.

    Protocol: one warm-up call, then the median of `runtime.latency_repeats` timed calls, with
    `torch.cuda.synchronize` before and after each on GPU; generators are created outside the
    timed region and the images are not quantized or written.

    Returns:
        `seconds_per_image`, `seconds_per_batch`, `times_s`, `batch_size`, `repeats`, `device`,
        `device_name`, `autocast_dtype`, `decode_dtype`.
    """
    from ssg_eval.sampling.loop import generate_batch

    var, vae, _, processors = model
    kwargs = _sampling_kwargs(cfg)
    batch = int(cfg.runtime.latency_batch_size)
    indices = np.arange(batch, dtype=np.int64) % plan.num_samples
    labels_B = torch.as_tensor(plan.labels(indices), dtype=torch.long, device=device)

    def timed() -> float:
        generators = _generators(cfg, plan, indices, 0, device)
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            generate_batch(var, vae, labels_B, generators, processors, **kwargs)
        _sync(device)
        return time.perf_counter() - start

    timed()  # warm-up (kernel selection, allocator), excluded
    times = [timed() for _ in range(int(cfg.runtime.latency_repeats))]
    median = statistics.median(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "seconds_per_image": median / batch,
        "seconds_per_batch": median,
        "times_s": times,
        "batch_size": batch,
        "repeats": len(times),
        "warmup_calls": 1,
        "device": str(device),
        "device_name": name,
        "autocast_dtype": str(cfg.runtime.autocast_dtype),
        "decode_dtype": str(cfg.runtime.decode_dtype),
    }


def _pending_chunks(directory: Path, plan: SamplePlan, chunks: range, shape) -> list[int]:
    todo = []
    for chunk in chunks:
        problem = shard_problem(shard_path(directory, chunk), plan, chunk, shape)
        if problem is not None:
            if problem != "missing":
                log.warning("shard of chunk %d is invalid (%s); regenerating it", chunk, problem)
            todo.append(chunk)
    return todo


def run_rank(
    cfg: Any,
    rank: int,
    world_size: int,
    *,
    barrier: Any = None,
    fail_after_chunks: int | None = None,
) -> dict[str, Any]:
    """Generate and write every missing shard of `rank`'s chunks (`plan.chunks_for_rank`).

    Shards that exist and verify are skipped (the whole resume mechanism); invalid ones are
    regenerated with a warning. The model and processors are built once, and only when some
    chunk is missing. Rank 0 also measures the latency (`runtime.measure_latency`).

    Args:
        cfg: the composed, validated config.
        rank: this process's rank in [0, world_size).
        world_size: number of sampling processes.
        barrier: callable that synchronises all ranks (None: no synchronisation).
        fail_after_chunks: test hook: raise `SimulatedCrash` after this many written shards.

    Returns:
        JSON-friendly stats: rank, world_size, chunks (assigned / generated / skipped),
        images_generated, sample_s, model_build_s, runtime settings, model info, latency.

    Raises:
        ConfigError: the run dir belongs to another config (see `prepare_run_dir`).
        SimulatedCrash: from the test hook.
    """
    plan = plan_from_config(cfg)
    directory = prepare_run_dir(cfg, rank, barrier=barrier)
    runtime = setup_runtime(cfg.runtime)
    device = resolve_device(str(cfg.runtime.device))
    shape = image_shape_of(cfg.model)
    assigned = plan.chunks_for_rank(rank, world_size)
    todo = _pending_chunks(directory, plan, assigned, shape)
    stats: dict[str, Any] = {
        "rank": rank, "world_size": world_size, "device": str(device), "runtime": runtime,
        "chunks_assigned": len(assigned), "chunks_generated": 0,
        "chunks_skipped": len(assigned) - len(todo), "images_generated": 0,
        "sample_s": 0.0, "model_build_s": 0.0, "model_info": None, "latency": None,
    }  # fmt: skip
    log.info("rank %d/%d: %d of %d chunks to generate in %s", rank, world_size, len(todo),
             len(assigned), directory)  # fmt: skip
    if not todo:
        return stats
    if cfg.sampler.rng == "official" and plan.chunk_size > int(cfg.sampler.batch_size):
        log.warning(
            "sampler.rng=official generates each chunk as one batch of chunk_size=%d; "
            "sampler.batch_size=%d is not used",
            plan.chunk_size,
            cfg.sampler.batch_size,
        )
    start = time.perf_counter()
    model = _build(cfg, device)
    stats["model_build_s"] = time.perf_counter() - start
    stats["model_info"] = model[2]
    start = time.perf_counter()
    for chunk in tqdm(todo, desc=f"sampling {cfg.run_name}", unit="chunk", disable=rank != 0):
        images = generate_chunk(model, cfg, plan, chunk, device)
        if images.shape[1:] != shape:
            raise RuntimeError(f"generated images have shape {images.shape[1:]}, expected {shape}")
        indices = plan.chunk_indices(chunk)
        write_shard(directory, chunk, images, plan.labels(indices), indices)
        stats["chunks_generated"] += 1
        stats["images_generated"] += len(indices)
        if fail_after_chunks is not None and stats["chunks_generated"] >= fail_after_chunks:
            raise SimulatedCrash(f"simulated crash after {fail_after_chunks} written shard(s)")
    stats["sample_s"] = time.perf_counter() - start
    if rank == 0 and cfg.runtime.measure_latency:
        stats["latency"] = measure_latency(model, cfg, plan, device)
    return stats


def _check_all_chunks(directory: Path, plan: SamplePlan, shape: tuple[int, int, int]) -> None:
    problems = {}
    counts = np.zeros(plan.num_samples, dtype=np.int64)
    for chunk in range(plan.num_chunks):
        path = shard_path(directory, chunk)
        problem = shard_problem(path, plan, chunk, shape)
        if problem is not None:
            problems[chunk] = problem
            continue
        with np.load(path) as data:
            np.add.at(counts, data["indices"], 1)
    if problems:
        listed = ", ".join(f"{c}: {p}" for c, p in list(problems.items())[:5])
        raise RuntimeError(
            f"{len(problems)} of {plan.num_chunks} shards in {directory / 'shards'} are missing or "
            f"invalid ({listed}); re-run the sample stage to complete them"
        )
    if not (counts == 1).all():
        bad = np.flatnonzero(counts != 1)[:10].tolist()
        raise RuntimeError(f"sample indices {bad} do not appear exactly once across the shards")


def _timings(rank_stats: list[dict[str, Any]], latency: dict[str, Any] | None) -> dict[str, Any]:
    images = sum(s["images_generated"] for s in rank_stats)
    wall = max((s["sample_s"] for s in rank_stats), default=0.0)
    rates = [s["images_generated"] / s["sample_s"] for s in rank_stats if s["sample_s"] > 0]
    return {
        "images_generated": images,
        "chunks_generated": sum(s["chunks_generated"] for s in rank_stats),
        "chunks_skipped": sum(s["chunks_skipped"] for s in rank_stats),
        "resumed": any(s["chunks_skipped"] for s in rank_stats),
        "wall_s": wall,
        "images_per_s": images / wall if wall > 0 else None,
        "images_per_s_per_process": statistics.mean(rates) if rates else None,
        "model_build_s": max((s["model_build_s"] for s in rank_stats), default=0.0),
        "latency": latency,
    }


def finalize_run(
    cfg: Any, run_dir: str | Path, plan: SamplePlan, rank_stats: list[dict[str, Any]] | None = None
) -> Path:
    """Rank 0, after the final barrier: check completeness, export, write `manifest.json`.

    Checks that every chunk's shard exists and verifies and that every index 0..N-1 appears
    exactly once, exports `samples.npz` when `sampler.save_samples_npz`, and writes the manifest
    atomically. When this session generated nothing and a manifest of the same config exists,
    the manifest is left untouched (reruns are no-ops). Timings describe the images generated in
    this session (`images_generated`, `resumed`); `images_per_s` is the whole job's rate.

    Args:
        cfg: the composed config.
        run_dir: the run directory.
        plan: the run's plan.
        rank_stats: `run_rank`'s result of every rank, in rank order (None: unknown).

    Returns:
        The manifest path.

    Raises:
        RuntimeError: a shard is missing or invalid, or an index is not covered exactly once.
    """
    directory = Path(run_dir)
    rank_stats = list(rank_stats or [])
    shape = image_shape_of(cfg.model)
    device = resolve_device(str(cfg.runtime.device))
    _check_all_chunks(directory, plan, shape)
    resolved = resolved_config(cfg)
    digest = config_hash(resolved)
    manifest_path = directory / "manifest.json"
    export = bool(cfg.sampler.save_samples_npz)
    previous = read_json(manifest_path) if manifest_path.is_file() else None
    if previous is not None and previous.get("config_hash") == digest:
        generated = sum(s["images_generated"] for s in rank_stats)
        if generated == 0 and (not export or (directory / SAMPLES_NPZ).is_file()):
            log.info("run %s is complete; manifest kept", directory)
            return manifest_path
    import hashlib

    hasher = hashlib.sha256()
    if export:
        export_samples_npz(directory, plan, hasher=hasher)
        content = hasher.hexdigest()
    else:
        content = images_sha256(directory, plan)
    model_info = next((s["model_info"] for s in rank_stats if s.get("model_info")), None)
    latency = rank_stats[0].get("latency") if rank_stats else None
    needs_latency = latency is None and cfg.runtime.measure_latency
    if model_info is None or needs_latency:
        model = _build(cfg, device)
        model_info = model[2]
        if needs_latency:
            latency = measure_latency(model, cfg, plan, device)
    provenance = collect_provenance()
    seeds = [plan.sample_seed(i) for i in range(min(4, plan.num_samples))]
    manifest = {
        "run_name": str(cfg.run_name),
        "config": resolved,
        "config_hash": digest,
        "git": provenance["git"],
        "versions": provenance["versions"],
        "device": {**provenance["device"], "sampling_device": str(device)},
        "world_size": rank_stats[0]["world_size"] if rank_stats else None,
        "plan": {**plan.describe(), "rng": str(cfg.sampler.rng), "first_sample_seeds": seeds},
        "chunk_size": plan.chunk_size,
        "batch_size": int(cfg.sampler.batch_size),
        "image_shape": list(shape),
        "uint8_rounding": str(cfg.sampler.uint8_rounding),
        "checkpoints": model_info,
        "runtime": setup_runtime(cfg.runtime),
        "timings": _timings(rank_stats, latency) if rank_stats else {"latency": latency},
        "samples": {
            "num_samples": plan.num_samples,
            "images_sha256": content,
            "samples_npz": SAMPLES_NPZ if export else None,
        },
    }  # fmt: skip
    if previous is not None and previous.get("config_hash") == digest and not rank_stats:
        manifest["timings"] = previous.get("timings", manifest["timings"])
    return atomic_write_json(manifest_path, manifest)


def plan_status(cfg: Any, world_size: int) -> dict[str, Any]:
    """What a run would do, without loading weights: chunks per rank and shards already done.

    Returns:
        `run_dir`, `config_hash`, `stored_hash` (None for a fresh dir), `num_chunks`, and
        `ranks`: per rank `{"chunks": [...], "done": [...]}`.
    """
    plan = plan_from_config(cfg)
    directory = resolve_run_dir(cfg)
    shape = image_shape_of(cfg.model)
    done = {c for c in range(plan.num_chunks)
            if shard_problem(shard_path(directory, c), plan, c, shape) is None}  # fmt: skip
    ranks = []
    for rank in range(world_size):
        chunks = list(plan.chunks_for_rank(rank, world_size))
        ranks.append({"chunks": chunks, "done": [c for c in chunks if c in done]})
    return {
        "run_dir": str(directory),
        "config_hash": config_hash(resolved_config(cfg)),
        "stored_hash": _stored_hash(directory),
        "plan": plan.describe(),
        "num_chunks": plan.num_chunks,
        "ranks": ranks,
    }


def sample_run(cfg: Any) -> Path:
    """Single-process sampling: validate, rank 0 of 1, then finalize; returns the run dir."""
    validate(cfg)
    stats = run_rank(cfg, 0, 1)
    directory = resolve_run_dir(cfg)
    finalize_run(cfg, directory, plan_from_config(cfg), [stats])
    return directory
