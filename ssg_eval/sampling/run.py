"""Per-rank sampling runner: run-dir identity, the resumable chunk loop, and single-process runs.

Rank and world size are arguments (read from the environment once, by `ssg_eval.stages.sample`), so
tests drive `run_rank(cfg, r, W)` in a loop without torch.distributed; this module must not
parse the command line, and it holds no sampling math (that is `sampling.loop`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ssg_eval.config import ConfigError, validate
from ssg_eval.sampling.finalize import finalize_run, resolved_config
from ssg_eval.sampling.generate import (
    build_sampling_model,
    generate_chunk,
    image_shape_of,
    measure_latency,
)
from ssg_eval.sampling.plan import SamplePlan, plan_from_config
from ssg_eval.sampling.shards import SAMPLES_NPZ, shard_path, shard_problem, write_shard
from ssg_eval.stages.entry import run_dir as resolve_run_dir
from ssg_eval.utils.dist import resolve_device, setup_runtime
from ssg_eval.utils.io import atomic_write_json, read_json
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import config_hash

__all__ = [
    "SimulatedCrash",
    "finalize_run",
    "plan_status",
    "prepare_run_dir",
    "resolved_config",
    "run_rank",
    "sample_run",
]

log = get_logger(__name__)
# The identity of the shards in a run dir, written before the first shard: the manifest only
# appears once the run is complete (later stages wait for it), but a crashed run must still
# refuse to be resumed by another config.
IDENTITY = "shards/identity.json"
# Artifacts derived from a run's samples; `overwrite=true` removes them with the shards.
DERIVED = ("manifest.json", SAMPLES_NPZ, "features.npz", "features.json", "metrics.json")


class SimulatedCrash(RuntimeError):
    """Raised by the `fail_after_chunks` test hook of `run_rank`."""


def _stored_hash(directory: Path) -> str | None:
    for name in ("manifest.json", IDENTITY):
        try:
            return read_json(directory / name).get("config_hash")
        except FileNotFoundError:  # absent, or just removed by rank 0 (overwrite=true)
            continue
    return None


def prepare_run_dir(cfg: Any, rank: int, *, barrier: Callable[[], None] | None = None) -> Path:
    """Check (every rank) and claim (rank 0) the run dir for this config, then wait for all ranks.

    A run dir whose manifest or shards belong to another config hash is refused unless
    `overwrite=true`, in which case rank 0 removes the old shards and the artifacts derived from
    them (manifest, samples.npz, features, metrics). With a matching hash nothing is removed,
    `overwrite` or not: valid shards are kept (resume).

    Args:
        cfg: the composed config.
        rank: this process's rank (only rank 0 writes).
        barrier: called after rank 0 has claimed the dir (None: single process).

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
    barrier: Callable[[], None] | None = None,
    fail_after_chunks: int | None = None,
) -> dict[str, Any]:
    """Generate and write every missing shard of `rank`'s chunks (`plan.chunks_for_rank`).

    Shards that exist and verify are skipped (the whole resume mechanism); invalid ones are
    regenerated with a warning. The model and processors are built once, and only when some
    chunk is missing. Rank 0 then also measures the latency (`runtime.measure_latency`).

    Args:
        cfg: the composed, validated config.
        rank: this process's rank in [0, world_size).
        world_size: number of sampling processes.
        barrier: synchronises all ranks after the run dir is claimed (None: no synchronisation).
        fail_after_chunks: test hook: raise `SimulatedCrash` after this many written shards.

    Returns:
        JSON-friendly stats: rank, world_size, device, runtime (applied settings),
        chunks_assigned / chunks_generated / chunks_skipped, images_generated, sample_s,
        model_build_s, model_info (build_model's info or None), latency (rank 0 or None).

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
        log.warning("sampler.rng=official generates each chunk as one batch of chunk_size=%d; "
                    "sampler.batch_size=%d is not used", plan.chunk_size,
                    int(cfg.sampler.batch_size))  # fmt: skip
    start = time.perf_counter()
    model = build_sampling_model(cfg, device)
    stats["model_build_s"] = time.perf_counter() - start
    stats["model_info"] = model.info

    def written(future: Future) -> None:
        stats["chunks_generated"] += 1
        stats["images_generated"] += future.result()
        if fail_after_chunks is not None and stats["chunks_generated"] >= fail_after_chunks:
            raise SimulatedCrash(f"simulated crash after {fail_after_chunks} written shard(s)")

    start = time.perf_counter()
    # One writer thread overlaps the (atomic) write of shard c with the generation of shard c+1;
    # at most one write is pending, so host memory holds at most two chunks of images.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
        pending: Future | None = None
        for chunk in tqdm(todo, desc=f"sampling {cfg.run_name}", unit="chunk", disable=rank != 0):
            images = generate_chunk(model, cfg, plan, chunk, device)
            if images.shape[1:] != shape:
                raise RuntimeError(
                    f"generated images have shape {images.shape[1:]}, expected {shape}"
                )
            if pending is not None:
                written(pending)
            pending = writer.submit(_write_chunk, directory, plan, chunk, images)
        if pending is not None:
            written(pending)
    stats["sample_s"] = time.perf_counter() - start
    if rank == 0 and cfg.runtime.measure_latency:
        stats["latency"] = measure_latency(model, cfg, plan, device)
    return stats


def _write_chunk(directory: Path, plan: SamplePlan, chunk: int, images: np.ndarray) -> int:
    indices = plan.chunk_indices(chunk)
    write_shard(directory, chunk, images, plan.labels(indices), indices)
    return len(indices)


def plan_status(cfg: Any, world_size: int) -> dict[str, Any]:
    """What a run would do, without loading weights: chunks per rank and shards already done.

    Returns:
        `run_dir`, `config_hash`, `stored_hash` (None for a fresh dir), `plan` (its
        description) and `ranks`: per rank `{"chunks": [...], "done": [...]}`.
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
        "ranks": ranks,
    }


def sample_run(cfg: Any) -> Path:
    """Single-process sampling: validate, rank 0 of 1, then finalize; returns the run dir."""
    validate(cfg)
    stats = run_rank(cfg, 0, 1)
    directory = resolve_run_dir(cfg)
    finalize_run(cfg, directory, plan_from_config(cfg), [stats])
    return directory
