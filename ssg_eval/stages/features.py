"""Features stage: Inception pool/spatial/logit features of one run's samples -> `features.npz`.

Reads only the run's manifest, its per-shard feature files and (for a shard without one) the
shard itself, once, checked against its recorded sha256; refuses samples of another identity or
another N. Per-shard features are keyed by the shard's and the weights' sha256, so features made
while sampling, or by an earlier N, are merged, not recomputed. Under torchrun every rank extracts
its own chunks and rank 0 merges; the result does not depend on the number of ranks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry
from ssg_eval.errors import IncompleteRunError, NpzError, UnreadableFileError
from ssg_eval.runs.claim import check_identity, stage_lock_on_all_ranks
from ssg_eval.runs.hashed import read_verified, write_npz_sha256
from ssg_eval.runs.identity import identity_hash
from ssg_eval.runs.io import atomic_write_json, clean_stale_temps
from ssg_eval.runs.layout import (
    FEATURES_DINOV2_NPZ,
    FEATURES_JSON,
    FEATURES_NPZ,
    MANIFEST_JSON,
    run_dir,
)
from ssg_eval.runs.records import read_record
from ssg_eval.sampling.identity import identity_of
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)
_FIX = "run the sample stage with these overrides first, or set run_name to the run you mean"
RECORD_KEYS = ("features_sha256", "dinov2")  # what features.json adds to the inputs' record


def load_run_manifest(cfg: Any, stage: str) -> dict[str, Any]:
    """The run's manifest after the provenance checks shared by the features and metrics stages.

    Raises:
        FileNotFoundError: sampling has not finished.
        IdentityMismatch: the run was sampled with another identity (names the keys).
        IncompleteRunError: the run holds another number of samples than `sampler.num_samples`.
    """
    directory = run_dir(cfg)
    manifest_path = directory / MANIFEST_JSON
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} is missing: sampling of run {cfg.run_name!r} has not finished; "
            "run the sample stage first (make sample EXP=...)"
        )
    manifest = read_record(
        manifest_path, "manifest", need=("config_hash", "samples.num_samples", "shards")
    )
    check_identity(
        directory, identity_of(cfg, require_checkpoints=False), overwrite=False, fix=_FIX
    )
    have, want = manifest["samples"]["num_samples"], int(cfg.sampler.num_samples)
    if have != want:
        raise IncompleteRunError(
            f"sampler.num_samples: the run has {have} samples, this command asks {want}; run the "
            f"sample stage with sampler.num_samples={want} first (it only adds the new chunks)"
        )
    return manifest


def _shard_name(chunk: int) -> str:
    from ssg_eval.sampling.shards import shard_path

    return shard_path(Path("."), chunk).name


def _features_meta(manifest: dict[str, Any], nets: Any, num_chunks: int) -> dict[str, Any]:
    # The record of what features.npz is made of: the plan's shards (by content) and the network.
    names = [_shard_name(chunk) for chunk in range(num_chunks)]
    shards = hashlib.sha256("".join(sorted(manifest["shards"][n] for n in names)).encode())
    return {
        "config_hash": manifest["config_hash"],
        "inception_sha256": nets.weights_sha["inception"],
        "feature_batch_size": nets.batch,
        "inception_impl": str(nets.cfg.metrics.inception_impl),
        "num_samples": int(manifest["samples"]["num_samples"]),
        "shards_sha256": shards.hexdigest(),
    }


def extract_missing(directory: Path, manifest: dict, nets: Any, chunks) -> int:
    """Extract the per-shard feature files of `chunks` that do not exist yet; returns how many.

    A shard is read once, checked against the manifest's sha256 (a changed shard is refused
    naming the file and the fix); files made while sampling or by a smaller N are kept.
    """
    from ssg_eval.sampling.shards import read_shard, shard_path

    done = 0
    for chunk in chunks:
        path = shard_path(directory, chunk)
        paths = nets.paths(directory, path.name, manifest["shards"][path.name])
        kinds = [kind for kind, cache in paths.items() if not cache.is_file()]
        if not kinds:
            continue
        images, labels, _ = read_shard(path, manifest["shards"][path.name])
        nets.write({k: paths[k] for k in kinds}, nets.extract(images, kinds), labels)
        done += 1
    return done


def merge_features(directory: Path, manifest: dict, nets: Any, num_chunks: int) -> dict:
    """`{kind: {key: (N, ...)}}` of every chunk's feature file, in index order.

    A damaged or missing file is extracted again from its shard (read once, verified).
    """
    total = int(manifest["samples"]["num_samples"])
    out: dict[str, dict[str, np.ndarray]] = {}
    filled = 0
    for chunk in range(num_chunks):
        name = _shard_name(chunk)
        paths = nets.paths(directory, name, manifest["shards"][name])
        feats = nets.load(paths)
        if feats is None:
            for cache in paths.values():
                cache.unlink(missing_ok=True)  # damaged: extracted again below
            extract_missing(directory, manifest, nets, [chunk])
            feats = nets.load(paths)
        rows = len(feats["inception"]["labels"])
        if filled + rows > total:
            raise RuntimeError(f"{directory / 'shards'} holds more rows than the manifest's N")
        for kind, arrays in feats.items():
            parts = out.setdefault(kind, {})
            for key, value in arrays.items():
                if key not in parts:  # filled in place: peak memory = the features + one file
                    parts[key] = np.empty((total, *value.shape[1:]), value.dtype)
                parts[key][filled : filled + rows] = value
        filled += rows
    if filled != total:
        raise RuntimeError(f"extracted {filled} feature rows from {directory}, expected {total}")
    return out


def _up_to_date(directory: Path, meta: dict[str, Any], dinov2: dict[str, Any] | None) -> bool:
    # features.json records the same inputs and every file it names has its recorded sha256
    # (one read each: a damaged features.npz is recomputed here, never skipped on).
    try:
        record = read_record(directory / FEATURES_JSON, "features")
    except (FileNotFoundError, UnreadableFileError):
        return False  # absent or damaged record: recompute (from the per-shard features)
    if {k: v for k, v in record.items() if k not in RECORD_KEYS} != meta:
        return False
    files = {FEATURES_NPZ: record.get("features_sha256")}
    if dinov2 is not None:
        stored = dict(record.get("dinov2") or {})
        files[FEATURES_DINOV2_NPZ] = stored.pop("sha256", None)
        if stored != dinov2:
            return False
    if not all(files.values()):
        return False  # a record written before the digests were recorded
    for name, sha in files.items():
        try:
            read_verified(directory / name, sha, "it is recomputed from the per-shard features")
        except (FileNotFoundError, NpzError) as err:
            log.warning("%s", err)
            return False
    return True


def run_features(cfg: Any) -> Path | None:
    """Features of the run's samples into `<run_dir>/features.npz` (+ `features.json`).

    Under torchrun (WORLD_SIZE > 1) rank r extracts the missing per-shard files of the chunks
    `plan.chunks_for_rank(r, W)` and rank 0 merges them; one process does both.

    Returns:
        The features path (rank 0), or None for `dry_run` and on other ranks.

    Raises:
        FileNotFoundError: the run has no manifest (sampling not finished) or no Inception weights.
        IdentityMismatch / IncompleteRunError: the samples are of another config or another N.
        RunLockedError: another process holds the run.
    """
    from ssg_eval.utils import dist

    directory = run_dir(cfg)
    if cfg.dry_run:
        return _print_plan(cfg, directory)
    rank, world_size, _ = dist.dist_env()
    device = dist.resolve_device(str(cfg.metrics.feature_device))
    ours = not dist.is_distributed()  # a process group this call creates, it also destroys
    dist.init_process_group_if_needed(str(cfg.runtime.dist_backend), device)
    try:
        with stage_lock_on_all_ranks(cfg, "features", rank):
            return _features(cfg, directory, rank, world_size)
    finally:
        if ours:
            dist.destroy()


def _features(cfg: Any, directory: Path, rank: int, world_size: int) -> Path | None:
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shard_features import DINOV2, feature_nets
    from ssg_eval.stages.dinov2 import dinov2_meta, write_run_features
    from ssg_eval.utils import dist

    manifest = load_run_manifest(cfg, "features")
    plan = plan_from_config(cfg)
    nets = feature_nets(cfg)
    meta = _features_meta(manifest, nets, plan.num_chunks)
    dinov2 = dinov2_meta(cfg, nets, meta) if DINOV2 in nets.kinds else None
    out_path = directory / FEATURES_NPZ
    fresh = rank == 0 and not cfg.overwrite and _up_to_date(directory, meta, dinov2)
    if dist.gather_objects(fresh)[0]:
        if rank == 0:
            log.info("features of %s are up to date; skipping", cfg.run_name)
        return out_path if rank == 0 else None
    if rank == 0:
        clean_stale_temps(directory)  # we hold the run's lock: no other writer exists
    extract_missing(directory, manifest, nets, plan.chunks_for_rank(rank, world_size))
    dist.barrier()
    if rank != 0:
        return None
    feats = merge_features(directory, manifest, nets, plan.num_chunks)
    record = {**meta, "features_sha256": write_npz_sha256(out_path, **feats["inception"])}
    if dinov2 is not None:
        record["dinov2"] = write_run_features(directory, feats[DINOV2]["features"], dinov2)
    atomic_write_json(directory / FEATURES_JSON, record)
    return out_path


def _print_plan(cfg: Any, directory: Path) -> None:
    identity = identity_hash(identity_of(cfg, require_checkpoints=False))
    state = "sampled" if (directory / MANIFEST_JSON).is_file() else "NOT sampled yet"
    done = (directory / FEATURES_NPZ).is_file()
    print(
        f"dry run: features of {cfg.run_name} -> {directory / FEATURES_NPZ} (config {identity}, "
        f"run {state}, features {'present' if done else 'absent'}, batch "
        f"{cfg.metrics.feature_batch_size}); nothing was read or written"
    )
    return None


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-features` / `python -m ssg_eval.stages.features` with Hydra overrides (or torchrun)."""
    cli_main("features", run_features, cfg)


def main() -> None:
    """`ssg-features`: the strict override checks, then the Hydra entry point."""
    hydra_entry("features", "config", _hydra_main)


if __name__ == "__main__":
    main()
