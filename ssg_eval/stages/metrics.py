"""Metrics stage: FID, sFID, IS, precision and recall of one run against the reference batch.

Reads `features.npz` of the run (refused when it belongs to another config, N or image size)
and the reference file (validated before any Inception work), writes `metrics.json`
atomically; it must not touch samples or shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry
from ssg_eval.metrics.keys import FID
from ssg_eval.runs.claim import stage_lock
from ssg_eval.runs.io import atomic_write_json, clean_stale_temps
from ssg_eval.runs.layout import FEATURES_JSON, FEATURES_NPZ, METRICS_JSON, results_dir, run_dir
from ssg_eval.runs.npz import load_npz
from ssg_eval.runs.records import read_record
from ssg_eval.stages.features import load_manifest
from ssg_eval.stages.spectral_bands import fwd_of_run, fwd_protocol
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import collect_provenance

log = get_logger(__name__)

PROTOCOL_KEYS = (
    "extractor", "feature_batch_size", "inception_impl", "is_split_size", "pr_k", "pr_block_size",
    "pr_distance_dtype", "fid_method", "reference_name", "bootstrap_resamples",
)  # fmt: skip


def load_checked_reference(cfg: Any):
    """Load and validate the reference batch named by `metrics.reference` (cheap, up front)."""
    from ssg_eval.metrics.reference import load_reference

    return load_reference(
        cfg.metrics.reference,
        name=cfg.metrics.reference_name,
        verify_sha256=cfg.metrics.verify_reference_sha256,
    )


def fid_bootstrap_std(pool, labels, reference, ref_feats, cfg: Any) -> float:
    """Std of FID over class-stratified bootstrap resamples of the sample features.

    A cheap, documented stand-in for seed spread when only one seed exists
    (`metrics.bootstrap_resamples`); it does not replace more seeds.
    """
    from ssg_eval.analysis.seeds import bootstrap_metric
    from ssg_eval.metrics.frechet import frechet_distance
    from ssg_eval.metrics.stats import feature_statistics

    if reference.mu is not None:
        mu_ref, sigma_ref = reference.mu, reference.sigma
    else:
        mu_ref, sigma_ref = feature_statistics(ref_feats["pool"])

    def fid(features):
        mu, sigma = feature_statistics(features)
        return frechet_distance(mu, sigma, mu_ref, sigma_ref, method=cfg.metrics.fid_method)

    _, std = bootstrap_metric(
        fid, pool, seed=int(cfg.sampler.seed), num_resamples=int(cfg.metrics.bootstrap_resamples),
        strata=labels,
    )  # fmt: skip
    return float(std)


def _inputs(cfg: Any, directory: Path, manifest: dict, reference: Any) -> dict[str, Any]:
    """Provenance of the numbers: the features (sha256 and record) and the reference sha256.

    Raises:
        FileNotFoundError: no features yet. IdentityMismatch / ValueError: features of another
        config or N. ValueError: samples and reference differ in image size.
    """
    sample_shape = tuple(manifest.get("image_shape") or ())
    if sample_shape and sample_shape != tuple(reference.image_shape):
        raise ValueError(
            f"image size mismatch: the run's samples are {sample_shape[0]}x{sample_shape[1]}, "
            f"the reference {reference.path} holds {reference.image_shape[0]}x"
            f"{reference.image_shape[1]} images; use the reference for this model's resolution "
            "(metrics.reference=...)"
        )
    features_path, meta_path = directory / FEATURES_NPZ, directory / FEATURES_JSON
    if not features_path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(
            f"{features_path} is missing; run the features stage first (make features EXP=...)"
        )
    meta = read_record(meta_path, "features", need=("config_hash", "num_samples"))
    if meta.get("config_hash") != manifest["config_hash"] or meta.get("num_samples") != int(
        cfg.sampler.num_samples
    ):
        raise ValueError(
            f"{features_path} was extracted from other samples (config {meta.get('config_hash')}, "
            f"N={meta.get('num_samples')}; the run is {manifest['config_hash']}, "
            f"N={cfg.sampler.num_samples}); rerun the features stage"
        )
    from ssg_eval.stages.dinov2 import dinov2_inputs

    return {
        "features_sha256": sha256_file(features_path),
        "reference_sha256": reference.sha256,
        "features_meta": meta,
        **dinov2_inputs(cfg, directory),  # features_dinov2.npz meta when fd_dinov2 is requested
    }


def run_metrics(cfg: Any) -> Path | None:
    """Compute every metric in `metrics.metrics` for `run_name` and write `metrics.json`.

    Returns:
        The metrics path, or None for `dry_run`.

    Raises:
        FileNotFoundError: the reference file, the Inception weights or the run's features are
            missing (each message names the file and the fix).
        IdentityMismatch / ValueError: features of another config, N or image size.
        FileExistsError: metrics from other inputs exist and `overwrite` is false.
        RunLockedError: another process holds the run.
    """
    directory = run_dir(cfg)
    if cfg.dry_run:
        print(
            f"dry run: metrics of {cfg.run_name} -> {directory / METRICS_JSON} against "
            f"{cfg.metrics.reference} ({', '.join(cfg.metrics.metrics)}); nothing was read or "
            "written"
        )
        return None
    with stage_lock(cfg, "metrics"):
        manifest = load_manifest(cfg, "metrics")  # provenance first: refusals cost nothing
        clean_stale_temps(directory)  # we hold the run's lock: no other writer exists
        reference = load_checked_reference(cfg)
        inputs = _inputs(cfg, directory, manifest, reference)
        protocol = {key: cfg.metrics[key] for key in PROTOCOL_KEYS}
        protocol.update(fwd_protocol(cfg, reference.image_shape))  # {} unless fwd is requested
        out_path = directory / METRICS_JSON
        if out_path.is_file() and not cfg.overwrite:
            previous = read_record(out_path, "metrics")
            same = previous.get("inputs") == inputs and previous.get("protocol") == protocol
            if same and set(cfg.metrics.metrics) <= set(previous.get("metrics", {})):
                log.info("metrics of %s are up to date; skipping", cfg.run_name)
                return out_path
            raise FileExistsError(
                f"{out_path} was computed from other inputs or protocol; pass overwrite=true"
            )
        return _compute(cfg, directory, reference, inputs, protocol)


def _compute(cfg: Any, directory: Path, reference, inputs: dict, protocol: dict) -> Path:
    from ssg_eval.features.inception import build_inception
    from ssg_eval.metrics.compute import compute_metrics
    from ssg_eval.metrics.inception_score import check_class_order
    from ssg_eval.metrics.keys import OPTIONAL_METRICS
    from ssg_eval.metrics.reference import reference_features
    from ssg_eval.stages.dinov2 import fd_dinov2_of_run
    from ssg_eval.utils.dist import resolve_device

    sample_feats = load_npz(directory / FEATURES_NPZ, fix="rerun the features stage")
    labels = sample_feats.pop("labels")
    for warning in check_class_order(labels, cfg.metrics.is_split_size):
        log.warning("%s", warning)
    device = resolve_device(cfg.metrics.feature_device)
    model = build_inception(cfg.metrics.inception_weights, device, str(cfg.metrics.inception_impl))
    ref_feats = reference_features(
        reference,
        model,
        cache_dir=results_dir(cfg) / "cache",
        batch_size=cfg.metrics.feature_batch_size,
        device=device,
    )
    values = compute_metrics(
        sample_feats,
        reference,
        ref_feats,
        split_size=cfg.metrics.is_split_size,
        k=cfg.metrics.pr_k,
        block_size=cfg.metrics.pr_block_size,
        distance_dtype=cfg.metrics.pr_distance_dtype,
        fid_method=cfg.metrics.fid_method,
        metrics=[m for m in cfg.metrics.metrics if m not in OPTIONAL_METRICS],
    )
    values.update(fd_dinov2_of_run(cfg, directory, reference, results_dir(cfg) / "cache"))
    values.update(fwd_of_run(cfg, directory, reference, results_dir(cfg) / "cache"))
    if cfg.metrics.bootstrap_resamples > 0:
        values[f"{FID}_bootstrap_std"] = fid_bootstrap_std(
            sample_feats["pool"], labels, reference, ref_feats, cfg
        )
    payload = {
        "metrics": values,
        "protocol": protocol,
        "inputs": inputs,
        "run_name": str(cfg.run_name),
        "num_samples": int(sample_feats["pool"].shape[0]),
        "metrics_config": OmegaConf.to_container(cfg.metrics, resolve=True)
        if OmegaConf.is_config(cfg.metrics)
        else dict(cfg.metrics),
        "provenance": collect_provenance(),
    }
    return atomic_write_json(directory / METRICS_JSON, payload)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="metrics")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-metrics` / `python -m ssg_eval.stages.metrics` with Hydra overrides."""
    cli_main("metrics", run_metrics, cfg)


def main() -> None:
    """`ssg-metrics`: the strict override checks, then the Hydra entry point."""
    hydra_entry("metrics", "metrics", _hydra_main)


if __name__ == "__main__":
    main()
