"""Finalizing a sampled run on rank 0: completeness checks, the ADM export and `manifest.json`.

The manifest is what later stages wait for, so it is written last and atomically, only after
every chunk verified; this module must not generate images except for the latency probe.
"""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.errors import IncompleteRunError, UnreadableFileError
from ssg_eval.lint.scan import ImageScanner, scan_to_arrays
from ssg_eval.runs.claim import stored_identity, write_identity
from ssg_eval.runs.identity import identity_hash, resolved_config
from ssg_eval.runs.io import atomic_write_json, atomic_write_npz
from ssg_eval.runs.layout import MANIFEST_JSON, SAMPLES_SCAN
from ssg_eval.runs.records import read_record
from ssg_eval.sampling.environment import shard_environments
from ssg_eval.sampling.generate import build_sampling_model, image_shape_of, measure_latency
from ssg_eval.sampling.identity import identity_of
from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.sampling.shards import (
    SAMPLES_NPZ,
    export_samples_npz_sha256,
    images_sha256,
    shard_check,
    shard_path,
    shard_problem,
)
from ssg_eval.utils.dist import resolve_device, setup_runtime
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import collect_provenance

__all__ = ["check_complete", "finalize_run"]

log = get_logger(__name__)


def check_complete(
    run_dir: str | Path,
    plan: SamplePlan,
    image_shape: tuple[int, ...],
    known: dict[str, str] | None = None,
) -> dict[str, str]:
    """Check that every chunk of the plan has a valid shard; return their sha256s.

    A shard whose sha256 a rank reported (`known`: hashed while written, or verified in one
    read on resume) is checked by its headers, indices and labels only; any other shard is read
    once in full (digest and zip CRC). Each shard's indices equal its chunk's, and the chunks
    partition 0..N-1, so every index appears exactly once.

    Returns:
        `{shard file name: sha256}` of the plan's shards (recorded in the manifest, verified by
        every later reader of a shard as it reads it).

    Raises:
        IncompleteRunError: naming the first missing or invalid shards.
    """
    directory = Path(run_dir)
    known = known or {}
    problems = {}
    shas = {}
    for chunk in range(plan.num_chunks):
        path = shard_path(directory, chunk)
        if path.name in known:
            problem, digest = shard_problem(path, plan, chunk, image_shape), known[path.name]
        else:
            problem, digest = shard_check(path, plan, chunk, image_shape)
        if problem is not None:
            problems[chunk] = problem
            continue
        shas[path.name] = digest
    if problems:
        listed = ", ".join(f"{c}: {p}" for c, p in list(problems.items())[:5])
        raise IncompleteRunError(
            f"{len(problems)} of {plan.num_chunks} shards in {directory / 'shards'} are missing or "
            f"invalid ({listed}); re-run the sample stage to complete them"
        )
    return shas


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


def _export(
    directory: Path, plan: SamplePlan, export: bool, shas: dict[str, str]
) -> dict[str, Any]:
    # One pass over the shards (each verified against its sha256 as it is read): the ADM export
    # (when asked) and the content hash of the images; then the export's own sha256.
    path = digest = None
    if export:
        hasher, scanner = hashlib.sha256(), ImageScanner(plan.num_samples)
        path, digest = export_samples_npz_sha256(
            directory, plan, hasher=hasher, shard_sha256=shas, observe=scanner.add
        )
        content = hasher.hexdigest()
        # the sample linter's image checks, from this same read (the metrics stage reads no image)
        atomic_write_npz(directory / SAMPLES_SCAN, images_sha256=np.array(content),
                         **scan_to_arrays(scanner.result()))  # fmt: skip
    else:
        content = images_sha256(directory, plan, shas)
    return {
        "num_samples": plan.num_samples,
        "images_sha256": content,
        "samples_npz": SAMPLES_NPZ if export else None,
        "samples_npz_sha256": digest,
        "samples_npz_bytes": path.stat().st_size if path is not None else None,
    }


def _export_intact(directory: Path, manifest: dict[str, Any]) -> bool:
    # samples.npz exists and has the sha256 recorded when it was written (one read).
    recorded = (manifest.get("samples") or {}).get("samples_npz_sha256")
    path = directory / SAMPLES_NPZ
    if not path.is_file():
        return False
    if recorded is None or sha256_file(path) != recorded:
        log.warning("%s does not have the sha256 recorded when it was exported (damaged, or "
                    "exported before digests were recorded); exporting it again", path)  # fmt: skip
        return False
    return True


def _previous(directory: Path, digest: str, plan: SamplePlan) -> dict[str, Any] | None:
    # The finished manifest of this identity and this N (a damaged one counts as absent).
    try:
        manifest = read_record(directory / MANIFEST_JSON, "manifest")
    except (FileNotFoundError, UnreadableFileError):
        return None
    same_n = (manifest.get("samples") or {}).get("num_samples") == plan.num_samples
    return manifest if manifest.get("config_hash") == digest and same_n else None


def _model_record(cfg: Any, plan: SamplePlan, device: Any, rank_stats: list[dict[str, Any]]):
    # Checkpoint info and latency from the ranks; the model is built only if no rank built it.
    model_info = next((s["model_info"] for s in rank_stats if s.get("model_info")), None)
    latency = rank_stats[0].get("latency") if rank_stats else None
    needs_latency = latency is None and bool(cfg.runtime.measure_latency)
    if model_info is None or needs_latency:
        model = build_sampling_model(cfg, device)
        model_info = model.info
        if needs_latency:
            latency = measure_latency(model, cfg, plan, device)
    return model_info, latency


def finalize_run(
    cfg: Any, run_dir: str | Path, plan: SamplePlan, rank_stats: list[dict[str, Any]] | None = None
) -> Path:
    """Rank 0, after the final barrier: check completeness, export, write `manifest.json`.

    Checks that every chunk's shard exists and verifies and that every index 0..N-1 appears
    exactly once, exports `samples.npz` when `sampler.save_samples_npz`, and writes the manifest
    atomically. When this session generated nothing and a manifest of the same config exists,
    nothing is rewritten (reruns are no-ops), except that a missing `samples.npz`, or one whose
    sha256 differs from the one recorded at its export (read once to check), is exported again
    into the old manifest. Timings describe the images generated in this session
    (`images_generated`, `resumed`); `images_per_s` is the whole job's rate (all ranks over the
    slowest rank's sampling time). The model is built here only when no rank built it
    (every shard existed) and the checkpoint info or latency is still needed.

    Args:
        cfg: the composed config.
        run_dir: the run directory.
        plan: the run's plan.
        rank_stats: `run_rank`'s result of every rank, in rank order (None: unknown).

    Returns:
        The manifest path.

    Raises:
        IncompleteRunError: a shard is missing or invalid.
    """
    directory = Path(run_dir)
    rank_stats = list(rank_stats or [])
    shape = image_shape_of(cfg.model)
    known = {k: v for s in rank_stats for k, v in (s.get("shard_sha256") or {}).items()}
    shas = check_complete(directory, plan, shape, known)
    resolved = resolved_config(cfg)
    identity = identity_of(cfg)
    digest = identity_hash(identity)
    export = bool(cfg.sampler.save_samples_npz)
    manifest_path = directory / MANIFEST_JSON
    previous = _previous(directory, digest, plan)
    if previous is not None and not sum(s["images_generated"] for s in rank_stats):
        if not export or _export_intact(directory, previous):
            log.info("run %s is complete; manifest kept", directory)
            return manifest_path
        # Only the export is missing or damaged: write it, keep the sampling session's record.
        previous["samples"] = _export(directory, plan, export, shas)
        previous["config"] = resolved
        return atomic_write_json(manifest_path, previous)
    samples = _export(directory, plan, export, shas)
    device = resolve_device(str(cfg.runtime.device))
    model_info, latency = _model_record(cfg, plan, device, rank_stats)
    if stored_identity(directory) is None:  # models loaded above: claim the run now
        write_identity(directory, identity)
    provenance = collect_provenance()
    seeds = [plan.sample_seed(i) for i in range(min(4, plan.num_samples))]
    manifest = {
        "run_name": str(cfg.run_name),
        "config": resolved,
        "config_hash": digest,
        "identity": identity,
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
        "runtime": rank_stats[0]["runtime"] if rank_stats else setup_runtime(cfg.runtime),
        "timings": _timings(rank_stats, latency) if rank_stats else {"latency": latency},
        "samples": samples,
        "shards": shas,
        "numeric_environments": shard_environments(directory, plan.num_chunks),
    }
    return atomic_write_json(manifest_path, manifest)
