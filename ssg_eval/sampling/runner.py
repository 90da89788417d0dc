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

from tqdm import tqdm

from ssg_eval.errors import ConfigError, NpzError, UnreadableFileError
from ssg_eval.runs.claim import check_identity, stage_lock, stored_identity, write_identity
from ssg_eval.runs.identity import identity_diff, identity_hash
from ssg_eval.runs.io import clean_stale_temps
from ssg_eval.runs.layout import (
    FEATURES_CACHE,
    FEATURES_DINOV2_NPZ,
    FEATURES_JSON,
    FEATURES_NPZ,
    IDENTITY_JSON,
    MANIFEST_JSON,
    METRICS_JSON,
    SAMPLES_SCAN,
)
from ssg_eval.runs.layout import run_dir as resolve_run_dir
from ssg_eval.runs.npz import npz_array_header
from ssg_eval.runs.records import read_record
from ssg_eval.sampling.environment import (
    check_resume,
    numeric_environment,
    write_shard_environment,
)
from ssg_eval.sampling.finalize import finalize_run
from ssg_eval.sampling.generate import build_sampling_model, image_shape_of, measure_latency
from ssg_eval.sampling.identity import identity_of
from ssg_eval.sampling.overlap import decoded_chunks
from ssg_eval.sampling.plan import SamplePlan, plan_from_config
from ssg_eval.sampling.shards import (
    SAMPLES_NPZ,
    shard_check,
    shard_path,
    shard_problem,
    write_shard_sha256,
)
from ssg_eval.utils.dist import resolve_device, setup_runtime
from ssg_eval.utils.logging import get_logger
from ssg_eval.validation import validate

__all__ = ["plan_status", "prepare_run_dir", "run_rank", "sample_run"]

log = get_logger(__name__)
# Artifacts derived from a run's samples; `overwrite=true` removes them with the shards, unread.
DERIVED = (MANIFEST_JSON, IDENTITY_JSON, SAMPLES_NPZ, SAMPLES_SCAN, FEATURES_NPZ, FEATURES_JSON,
           METRICS_JSON, FEATURES_DINOV2_NPZ)  # fmt: skip
_FIX = "choose a new run_name=... or pass overwrite=true to delete the old shards"


def _remove_run_content(directory: Path) -> None:
    shutil.rmtree(directory / "shards", ignore_errors=True)
    shutil.rmtree(directory / FEATURES_CACHE, ignore_errors=True)
    for name in DERIVED:
        (directory / name).unlink(missing_ok=True)


def prepare_run_dir(
    cfg: Any,
    rank: int,
    identity: dict[str, Any],
    *,
    barrier: Callable[[], None] | None = None,
) -> Path:
    """Check (every rank) and clean (rank 0) the run dir for this identity, then wait for all.

    A run dir whose stored identity differs is refused unless `overwrite=true`, in which case
    rank 0 removes the old shards and every artifact derived from them without reading them
    (a damaged file cannot block an overwrite). With the same identity nothing is removed,
    `overwrite` or not: valid shards are kept (resume). Rank 0 also removes stale temp files
    (the caller holds the run's lock, so no other writer exists).

    Args:
        cfg: the composed config.
        rank: this process's rank (only rank 0 removes files).
        identity: `identity_of(cfg)`.
        barrier: called after rank 0 has cleaned the dir (None: single process).

    Returns:
        The run directory.

    Raises:
        IdentityMismatch: the stored identity differs and `overwrite` is false (names each key).
        ConfigError: shards exist without an identity and `overwrite` is false.
    """
    directory = resolve_run_dir(cfg)
    if rank == 0:
        state = check_identity(directory, identity, overwrite=bool(cfg.overwrite), fix=_FIX)
        orphans = state == "new" and any((directory / "shards").glob("chunk_*.npz"))
        if orphans and not cfg.overwrite:
            raise ConfigError(
                f"run dir {directory} holds shards but no {IDENTITY_JSON}, so their config is "
                f"unknown; {_FIX}"
            )
        if state == "replace" or orphans:
            log.warning("overwrite=true: removing the shards and results in %s", directory)
            _remove_run_content(directory)
        for path in clean_stale_temps(directory):
            log.info("removed stale temp file %s", path)
    if barrier is not None:
        barrier()
    if rank != 0:  # after rank 0 cleaned: the stored identity is now the same or absent
        check_identity(directory, identity, overwrite=False, fix=_FIX)
    return directory


def _recorded_shard_sha256(directory: Path, identity: dict[str, Any]) -> dict[str, str]:
    # Shard sha256s of a finished run of the same identity (empty when there is none).
    try:
        manifest = read_record(directory / MANIFEST_JSON, "manifest")
    except (FileNotFoundError, UnreadableFileError):  # a damaged manifest counts as absent
        return {}
    if manifest.get("config_hash") != identity_hash(identity):
        return {}
    return dict(manifest.get("shards") or {})


def _pending_chunks(
    directory: Path, plan: SamplePlan, chunks: range, shape, recorded: dict[str, str]
) -> tuple[list[int], dict[str, str]]:
    # Chunks to generate, and the sha256 of every valid shard (each existing shard read once).
    todo, valid = [], {}
    for chunk in chunks:
        path = shard_path(directory, chunk)
        problem, digest = shard_check(path, plan, chunk, shape, recorded.get(path.name))
        if problem is None:
            valid[path.name] = digest
            continue
        if _resized(path, plan, chunk, shape):
            log.info("chunk %d holds another range of a run of another N (sampler.num_samples "
                     "changed); regenerating it for this N", chunk)  # fmt: skip
        elif problem != "missing":
            log.warning("shard of chunk %d is invalid (%s); regenerating it", chunk, problem)
        todo.append(chunk)
    return todo, valid


def _resized(path: Path, plan: SamplePlan, chunk: int, shape) -> bool:
    # A readable shard whose images differ from the plan in their count only.
    try:
        held, _ = npz_array_header(path, "images")
    except (FileNotFoundError, NpzError):
        return False
    return held[1:] == tuple(shape) and held[0] != len(plan.chunk_indices(chunk))


def run_rank(
    cfg: Any,
    rank: int,
    world_size: int,
    *,
    barrier: Callable[[], None] | None = None,
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

    Returns:
        JSON-friendly stats: rank, world_size, device, runtime (applied settings),
        chunks_assigned / chunks_generated / chunks_skipped, images_generated, sample_s,
        model_build_s, model_info (build_model's info or None), latency (rank 0 or None).

    Raises:
        ConfigError: the run dir belongs to another config (see `prepare_run_dir`).
        FileNotFoundError: a configured checkpoint is missing (nothing was written).
        EnvironmentMismatch: finished shards come from another numeric environment
            (`sampling.environment`).
    """
    plan = plan_from_config(cfg)
    identity = identity_of(cfg)  # hashes the checkpoints; a missing one stops here
    directory = prepare_run_dir(cfg, rank, identity, barrier=barrier)
    runtime = setup_runtime(cfg.runtime)
    device = resolve_device(str(cfg.runtime.device))
    shape = image_shape_of(cfg.model)
    assigned = plan.chunks_for_rank(rank, world_size)
    recorded = _recorded_shard_sha256(directory, identity)
    todo, shard_sha256 = _pending_chunks(directory, plan, assigned, shape, recorded)
    env = numeric_environment(device, runtime)  # recorded per shard, compared on resume
    stale = check_resume(directory, plan.num_chunks, todo, env, overwrite=bool(cfg.overwrite))
    todo = sorted({*todo, *(c for c in stale if c in assigned)})  # overwrite=true regenerates
    nets = _feature_nets(cfg) if todo else None  # weights checked before the model loads
    # The identity is written by rank 0 once the models loaded and validated, before any shard.
    claim = rank == 0 and stored_identity(directory) is None
    start = time.perf_counter()
    model = build_sampling_model(cfg, device) if todo or claim else None
    model_build_s = time.perf_counter() - start
    if claim:
        write_identity(directory, identity)
    if barrier is not None:
        barrier()
    stats: dict[str, Any] = {
        "rank": rank, "world_size": world_size, "device": str(device), "runtime": runtime,
        "chunks_assigned": len(assigned), "chunks_generated": 0,
        "chunks_skipped": len(assigned) - len(todo), "images_generated": 0,
        "sample_s": 0.0, "model_build_s": 0.0, "model_info": None, "latency": None,
        "shard_sha256": shard_sha256, "features_while_sampling": nets is not None,
    }  # fmt: skip
    log.info("rank %d/%d: %d of %d chunks to generate in %s", rank, world_size, len(todo),
             len(assigned), directory)  # fmt: skip
    if model is not None:
        stats["model_info"], stats["model_build_s"] = model.info, model_build_s
    if not todo:
        return stats
    if cfg.sampler.rng == "official" and plan.chunk_size > int(cfg.sampler.batch_size):
        log.warning("sampler.rng=official generates each chunk as one batch of chunk_size=%d; "
                    "sampler.batch_size=%d is not used", plan.chunk_size,
                    int(cfg.sampler.batch_size))  # fmt: skip

    def written(future: Future) -> None:
        count, name, digest = future.result()
        stats["chunks_generated"] += 1
        stats["images_generated"] += count
        shard_sha256[name] = digest

    start = time.perf_counter()
    # One writer thread overlaps the (atomic) write of shard c with the generation of shard c+1;
    # at most one write is pending, so host memory holds at most two chunks of images.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
        pending: Future | None = None
        chunks = decoded_chunks(model, cfg, plan, todo, device, nets)
        for decoded in tqdm(chunks, desc=f"sampling {cfg.run_name}", unit="chunk",
                            total=len(todo), disable=rank != 0):  # fmt: skip
            if decoded.images.shape[1:] != shape:
                raise RuntimeError(
                    f"generated images have shape {decoded.images.shape[1:]}, expected {shape}"
                )
            if pending is not None:
                written(pending)
            pending = writer.submit(_write_chunk, directory, plan, decoded, nets, env)
        if pending is not None:
            written(pending)
    stats["sample_s"] = time.perf_counter() - start
    if rank == 0 and cfg.runtime.measure_latency:
        stats["latency"] = measure_latency(model, cfg, plan, device)
    return stats


def _write_chunk(directory: Path, plan: SamplePlan, decoded: Any, nets: Any, env: dict[str, Any]):
    # The environment record, the shard (its sha256 hashed while written), then its feature files
    # keyed by that sha256: a crash in between leaves a valid shard (with its record) whose
    # features the features stage extracts.
    indices = plan.chunk_indices(decoded.chunk)
    labels = plan.labels(indices)
    write_shard_environment(directory, decoded.chunk, env)  # first: a shard never lacks one
    digest = write_shard_sha256(directory, decoded.chunk, decoded.images, labels, indices)
    name = shard_path(directory, decoded.chunk).name
    if decoded.features is not None:
        nets.write(nets.paths(directory, name, digest), decoded.features, labels)
    return len(indices), name, digest


def _feature_nets(cfg: Any) -> Any:
    # Features while sampling (`metrics.features_while_sampling`): this rank's networks.
    if not bool(cfg.metrics.get("features_while_sampling", False)):
        return None
    from ssg_eval.sampling.shard_features import feature_nets

    try:
        return feature_nets(cfg)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} (metrics.features_while_sampling=true extracts the features while sampling; "
            "set it to false to sample without them)"
        ) from None


def plan_status(cfg: Any, world_size: int) -> dict[str, Any]:
    """What a run would do, without loading weights: chunks per rank and shards already done.

    Returns:
        `run_dir`, `config_hash`, `stored_hash` (None for a fresh dir), `plan` (its
        description) and `ranks`: per rank `{"chunks": range, "done": [...]}`.
    """
    plan = plan_from_config(cfg)
    directory = resolve_run_dir(cfg)
    shape = image_shape_of(cfg.model)
    identity = identity_of(cfg, require_checkpoints=False)
    try:
        stored = stored_identity(directory)
    except UnreadableFileError:
        stored = {"<unreadable identity.json>": True}
    done = set()
    if stored is not None and not identity_diff(stored, identity):  # the shards on disk only
        names = (p.stem.removeprefix("chunk_") for p in (directory / "shards").glob("chunk_*.npz"))
        chunks = {int(n) for n in names if n.isdigit() and int(n) < plan.num_chunks}
        done = {
            c for c in chunks if shard_problem(shard_path(directory, c), plan, c, shape) is None
        }
    ranks = []
    for rank in range(world_size):  # `chunks` stays a range: lazy for any N
        chunks = plan.chunks_for_rank(rank, world_size)
        ranks.append({"chunks": chunks, "done": sorted(c for c in done if c % world_size == rank)})
    return {
        "run_dir": str(directory),
        "config_hash": identity_hash(identity),
        "stored_hash": None if stored is None else identity_hash(stored),
        "differences": [] if stored is None else identity_diff(stored, identity),
        "plan": plan.describe(),
        "ranks": ranks,
    }


def sample_run(cfg: Any) -> Path:
    """Single-process sampling under the run's lock: validate, rank 0 of 1, finalize.

    Returns:
        The run directory.

    Raises:
        RunLockedError: another process holds the run.
    """
    validate(cfg)
    with stage_lock(cfg, "sample"):
        stats = run_rank(cfg, 0, 1)
        directory = resolve_run_dir(cfg)
        finalize_run(cfg, directory, plan_from_config(cfg), [stats])
    return directory
