"""Metrics stage: FID, sFID, IS, precision and recall of one run against the reference batch.

Reads `features.npz` of the run and the reference file (validated before any Inception work),
writes `metrics.json` atomically; it must not touch samples or shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ssg_eval.metrics.keys import FID
from ssg_eval.stage import CONF_DIR, cli_main, results_dir, run_dir
from ssg_eval.utils.io import atomic_write_json, read_json, sha256_of_file
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


def run_metrics(cfg: Any) -> Path:
    """Compute every metric in `metrics.metrics` for `run_name` and write `metrics.json`.

    Raises:
        FileNotFoundError: the reference file, the Inception weights or the run's features are
            missing (each message names the file and the fix).
        FileExistsError: metrics from other inputs exist and `overwrite` is false.
    """
    from ssg_eval.features.inception import build_inception
    from ssg_eval.metrics.compute import compute_metrics
    from ssg_eval.metrics.inception_score import check_class_order
    from ssg_eval.metrics.reference import reference_features
    from ssg_eval.utils.dist import resolve_device

    directory = run_dir(cfg)
    features_path = directory / "features.npz"
    if not features_path.is_file():
        raise FileNotFoundError(
            f"{features_path} is missing; run the features stage first (make features EXP=...)"
        )
    reference = load_checked_reference(cfg)
    protocol = {key: cfg.metrics[key] for key in PROTOCOL_KEYS}
    inputs = {
        "features_sha256": sha256_of_file(features_path),
        "reference_sha256": reference.sha256,
        "features_meta": read_json(directory / "features.json"),
    }
    out_path = directory / "metrics.json"
    if out_path.is_file():
        previous = read_json(out_path)
        same = previous.get("inputs") == inputs and previous.get("protocol") == protocol
        if same and set(cfg.metrics.metrics) <= set(previous.get("metrics", {})):
            log.info("metrics of %s are up to date; skipping", cfg.run_name)
            return out_path
        if not cfg.overwrite:
            raise FileExistsError(
                f"{out_path} was computed from other inputs or protocol; pass overwrite=true"
            )
    with np.load(features_path) as data:
        sample_feats = {key: data[key] for key in data.files}
    labels = sample_feats.pop("labels")
    for warning in check_class_order(labels, cfg.metrics.is_split_size):
        log.warning("%s", warning)
    device = resolve_device(cfg.metrics.feature_device)
    model = build_inception(cfg.metrics.inception_weights, device, cfg.metrics.inception_impl)
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
        metrics=list(cfg.metrics.metrics),
    )
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
    atomic_write_json(out_path, payload)
    return out_path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="metrics")
def main(cfg: DictConfig) -> None:
    """`ssg-metrics` / `python -m ssg_eval.metrics_stage` with Hydra overrides."""
    cli_main("metrics", run_metrics, cfg)


if __name__ == "__main__":
    main()
