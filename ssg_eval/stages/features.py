"""Features stage: Inception pool/spatial/logit features of one run's samples -> `features.npz`.

Reads only the run's manifest and shards (each checked against its recorded sha256), refuses
samples of another identity or another N, and caches features per shard (keyed by the shard's
sha256 and the Inception weights' sha256), so a grown run only extracts its new shards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry
from ssg_eval.runs.claim import check_identity, stage_lock
from ssg_eval.runs.identity import identity_hash
from ssg_eval.runs.io import atomic_write_json, atomic_write_npz, clean_stale_temps, read_json
from ssg_eval.runs.layout import FEATURES_CACHE, FEATURES_JSON, FEATURES_NPZ, MANIFEST_JSON, run_dir
from ssg_eval.runs.npz import NpzError, load_npz
from ssg_eval.runs.records import read_record
from ssg_eval.sampling.identity import identity_of
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)
_FIX = "run the sample stage with these overrides first, or set run_name to the run you mean"


def load_manifest(cfg: Any, stage: str) -> dict[str, Any]:
    """The run's manifest after the provenance checks shared by the features and metrics stages.

    Raises:
        FileNotFoundError: sampling has not finished.
        IdentityMismatch: the run was sampled with another identity (names the keys).
        ValueError: the run holds another number of samples than `sampler.num_samples`.
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
        raise ValueError(
            f"sampler.num_samples: the run has {have} samples, this command asks {want}; run the "
            f"sample stage with sampler.num_samples={want} first (it only adds the new chunks)"
        )
    return manifest


def _features_meta(
    manifest: dict[str, Any], weights_sha: str, batch: int, impl: str
) -> dict[str, Any]:
    shards = hashlib.sha256("".join(sorted(manifest["shards"].values())).encode()).hexdigest()
    return {
        "config_hash": manifest["config_hash"],
        "inception_sha256": weights_sha,
        "feature_batch_size": batch,
        "inception_impl": impl,
        "num_samples": int(manifest["samples"]["num_samples"]),
        "shards_sha256": shards,
    }


def _cache_path(
    directory: Path, name: str, shard_sha: str, weights_sha: str, batch: int, impl: str
) -> Path:
    stem = name.removesuffix(".npz")
    tag = "" if impl == "torch_fidelity" else f"-{impl}"  # the extraction path changes rounding
    return (
        directory / FEATURES_CACHE / f"{stem}-{shard_sha[:16]}-{weights_sha[:16]}-b{batch}{tag}.npz"
    )


def feature_batch(cfg: Any, device: Any) -> int:
    """`metrics.feature_batch_size`, or the device's choice when it is null."""
    from ssg_eval.features.extract import device_batch_size

    batch = cfg.metrics.feature_batch_size
    return device_batch_size(device) if batch is None else int(batch)


def _shard_features(cfg: Any, directory: Path, manifest: dict, weights_sha: str) -> dict:
    """Features of every shard of the plan, from the per-shard cache or extracted now."""
    from ssg_eval.features.extract import extract_features
    from ssg_eval.features.inception import build_inception
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shards import read_shard, shard_path
    from ssg_eval.utils.dist import resolve_device

    device, model = resolve_device(cfg.metrics.feature_device), None
    batch, impl = feature_batch(cfg, device), str(cfg.metrics.inception_impl)
    out: dict[str, np.ndarray] = {}  # filled in place: peak memory = the features + one shard
    filled = 0
    plan = plan_from_config(cfg)
    for chunk in range(plan.num_chunks):
        path = shard_path(directory, chunk)
        sha = manifest["shards"][path.name]
        cache = _cache_path(directory, path.name, sha, weights_sha, batch, impl)
        try:
            feats = load_npz(cache)
        except (FileNotFoundError, NpzError):
            images, labels, _ = read_shard(path, sha)
            if model is None:
                model = build_inception(cfg.metrics.inception_weights, device, impl)
            feats = extract_features([images], model, batch_size=batch, device=device,
                                     num_images=len(images))  # fmt: skip
            feats["labels"] = labels.astype(np.int64)
            atomic_write_npz(cache, **feats)
        if not out:
            total = int(manifest["samples"]["num_samples"])
            out = {k: np.empty((total, *v.shape[1:]), v.dtype) for k, v in feats.items()}
        rows = len(feats["labels"])
        if filled + rows > len(out["labels"]):
            raise RuntimeError(f"{directory / 'shards'} holds more rows than the manifest's N")
        for key, value in feats.items():
            out[key][filled : filled + rows] = value
        filled += rows
    return {key: value[:filled] for key, value in out.items()}


def run_features(cfg: Any) -> Path | None:
    """Extract features of `<run_dir>/shards` into `<run_dir>/features.npz` (+ `features.json`).

    Returns:
        The features path, or None for `dry_run`.

    Raises:
        FileNotFoundError: the run has no manifest (sampling not finished) or no Inception weights.
        IdentityMismatch / ValueError: the samples are of another config or another N.
        RunLockedError: another process holds the run.
    """
    from ssg_eval.features.inception import inception_weights_sha256
    from ssg_eval.stages.dinov2 import write_run_features

    directory = run_dir(cfg)
    if cfg.dry_run:
        return _print_plan(cfg, directory)
    with stage_lock(cfg, "features"):
        manifest = load_manifest(cfg, "features")
        clean_stale_temps(directory)  # we hold the run's lock: no other writer exists
        write_run_features(cfg, directory, manifest)  # features_dinov2.npz if fd_dinov2 requested
        weights_sha = inception_weights_sha256(cfg.metrics.inception_weights)
        from ssg_eval.utils.dist import resolve_device

        batch = feature_batch(cfg, resolve_device(cfg.metrics.feature_device))
        meta = _features_meta(manifest, weights_sha, batch, str(cfg.metrics.inception_impl))
        out_path, meta_path = directory / FEATURES_NPZ, directory / FEATURES_JSON
        if not cfg.overwrite and out_path.is_file() and meta_path.is_file():
            try:
                same = read_json(meta_path) == meta
            except ValueError:
                same = False  # a damaged record: recompute (features of the same samples)
            if same:
                log.info("features of %s are up to date; skipping", cfg.run_name)
                return out_path
        feats = _shard_features(cfg, directory, manifest, weights_sha)
        if feats["pool"].shape[0] != meta["num_samples"]:
            raise RuntimeError(
                f"extracted {feats['pool'].shape[0]} feature rows from {directory / 'shards'}, "
                f"expected {meta['num_samples']}"
            )
        atomic_write_npz(out_path, **feats)
        atomic_write_json(meta_path, meta)
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


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="features")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-features` / `python -m ssg_eval.stages.features` with Hydra overrides."""
    cli_main("features", run_features, cfg)


def main() -> None:
    """`ssg-features`: the strict override checks, then the Hydra entry point."""
    hydra_entry("features", "features", _hydra_main)


if __name__ == "__main__":
    main()
