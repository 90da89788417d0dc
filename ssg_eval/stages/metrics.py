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
from ssg_eval.errors import ConfigError, IncompleteRunError, UnreadableFileError
from ssg_eval.metrics.keys import FID
from ssg_eval.runs.claim import stage_lock
from ssg_eval.runs.hashed import load_npz_verified
from ssg_eval.runs.io import atomic_write_json, clean_stale_temps
from ssg_eval.runs.layout import FEATURES_JSON, FEATURES_NPZ, METRICS_JSON, results_dir, run_dir
from ssg_eval.runs.records import read_record
from ssg_eval.stages.features import load_run_manifest
from ssg_eval.stages.spectral_bands import fwd_of_run, fwd_protocol
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import collect_provenance

log = get_logger(__name__)
SHARED_TEMP_AGE_S = 3600.0  # a temp in results/cache untouched this long belongs to a dead writer

PROTOCOL_KEYS = (
    "feature_batch_size", "inception_impl", "is_split_size", "pr_k", "pr_block_size",
    "pr_distance_dtype", "fid_method", "reference_name", "bootstrap_resamples",
)  # fmt: skip
EXTRACTOR = "inception"  # the only feature network (torch-fidelity's inception-v3-compat)


def load_checked_reference(cfg: Any):
    """Load and validate the reference batch named by `metrics.reference` (cheap, up front)."""
    from ssg_eval.metrics.reference import load_reference

    return load_reference(
        cfg.metrics.reference,
        name=cfg.metrics.reference_name,
        verify_sha256=cfg.metrics.verify_reference_sha256,
    )


def _fid_bootstrap_std(cfg: Any, pool, labels, reference, ref_feats) -> float:
    """`metrics.bootstrap_resamples` draws of FID's class-stratified bootstrap std (one seed)."""
    from ssg_eval.analysis.seeds import fid_bootstrap_std
    from ssg_eval.metrics.stats import feature_statistics

    if reference.mu is not None:  # ADM's rule: the reference's stored statistics win
        mu_ref, sigma_ref = reference.mu, reference.sigma
    else:
        mu_ref, sigma_ref = feature_statistics(ref_feats["pool"])
    return fid_bootstrap_std(
        pool, labels, mu_ref, sigma_ref, seed=int(cfg.sampler.seed),
        num_resamples=int(cfg.metrics.bootstrap_resamples), method=str(cfg.metrics.fid_method),
    )  # fmt: skip


def _check_counts(cfg: Any, reference: Any) -> None:
    from ssg_eval.metrics.compute import too_few_samples

    metrics = [str(m) for m in cfg.metrics.metrics]
    problem = too_few_samples(
        metrics, int(cfg.sampler.num_samples), reference.num_images, int(cfg.metrics.pr_k)
    )
    if problem:
        raise ConfigError(
            f"metrics.metrics={metrics}: {problem} ({cfg.metrics.reference}); raise "
            "sampler.num_samples, lower metrics.pr_k or drop those metrics"
        )


def _inputs(cfg: Any, directory: Path, manifest: dict, reference: Any) -> dict[str, Any]:
    """Provenance of the numbers: the features (sha256 and record) and the reference sha256.

    Raises:
        FileNotFoundError: no features yet. IdentityMismatch / IncompleteRunError: features of
        another config or N. ConfigError: samples and reference differ in image size.
    """
    sample_shape = tuple(manifest.get("image_shape") or ())
    if sample_shape and sample_shape != tuple(reference.image_shape):
        raise ConfigError(
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
        raise IncompleteRunError(
            f"{features_path} was extracted from other samples (config {meta.get('config_hash')}, "
            f"N={meta.get('num_samples')}; the run is {manifest['config_hash']}, "
            f"N={cfg.sampler.num_samples}); rerun the features stage"
        )
    from ssg_eval.stages.dinov2 import dinov2_inputs

    recorded = meta.get("features_sha256")  # written with the file: no read here
    return {
        "features_sha256": recorded or sha256_file(features_path),
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
        IdentityMismatch / IncompleteRunError: features of another config or N.
        ConfigError: samples and reference differ in image size.
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
        manifest = load_run_manifest(cfg, "metrics")  # provenance first: refusals cost nothing
        clean_stale_temps(directory)  # we hold the run's lock: no other writer exists
        # The shared cache has no lock (other runs, other hosts): only temps idle for an hour.
        clean_stale_temps(results_dir(cfg) / "cache", recursive=False, min_age_s=SHARED_TEMP_AGE_S)
        reference = load_checked_reference(cfg)
        _check_counts(cfg, reference)
        inputs = _inputs(cfg, directory, manifest, reference)
        protocol = {"extractor": EXTRACTOR, **{key: cfg.metrics[key] for key in PROTOCOL_KEYS}}
        protocol.update(fwd_protocol(cfg, reference.image_shape))  # {} unless fwd is requested
        out_path = directory / METRICS_JSON
        if out_path.is_file() and not cfg.overwrite:
            if _reusable(cfg, out_path, inputs, protocol):
                log.info("metrics of %s are up to date; skipping", cfg.run_name)
                return out_path
        return _compute(cfg, directory, manifest, reference, inputs, protocol)


def _reusable(cfg: Any, path: Path, inputs: dict, protocol: dict) -> bool:
    """True when `metrics.json` holds every asked metric of these inputs under this protocol.

    Features of other samples (a grown or shrunk N, re-extracted features) make it stale: it is
    recomputed. A damaged file is recomputed with a warning. Another protocol or reference is
    refused: those numbers are not this command's to replace.

    Raises:
        FileExistsError: metrics of another protocol or reference exist and `overwrite` is false.
    """
    try:
        previous = read_record(path, "metrics")
    except UnreadableFileError as err:
        log.warning("%s; recomputing it", err)
        return False
    old_inputs = previous.get("inputs") or {}
    if (
        previous.get("protocol") != protocol
        or old_inputs.get("reference_sha256") != inputs["reference_sha256"]
    ):
        raise FileExistsError(
            f"{path} was computed with another protocol or reference; pass overwrite=true"
        )
    if old_inputs != inputs:
        log.info("%s was computed from other features (N or samples changed); recomputing", path)
        return False
    return set(cfg.metrics.metrics) <= set(previous.get("metrics", {}))


def _compute(
    cfg: Any, directory: Path, manifest: dict, reference, inputs: dict, protocol: dict
) -> Path:
    from ssg_eval.lint.preflight import lint_run
    from ssg_eval.metrics.compute import compute_metrics
    from ssg_eval.metrics.inception_score import check_class_order
    from ssg_eval.metrics.keys import ALL_METRICS
    from ssg_eval.metrics.reference import reference_features
    from ssg_eval.stages.dinov2 import fd_dinov2_of_run
    from ssg_eval.stages.feature_metrics import feature_metrics_of_run
    from ssg_eval.utils.dist import resolve_device

    sample_feats, _ = load_npz_verified(
        directory / FEATURES_NPZ, inputs["features_sha256"],
        fix="rerun the features stage: it recomputes a damaged features.npz",
    )  # one read, checked against the sha256 recorded when it was written  # fmt: skip
    labels = sample_feats.pop("labels")
    # the sample linter, from the scan made at export (no image read); a fail stops here
    lint_run(directory, reference, sample_feats["pool"], manifest, labels)
    for warning in check_class_order(labels, cfg.metrics.is_split_size):
        log.warning("%s", warning)
    device = resolve_device(cfg.metrics.feature_device)
    model = _LazyInception(cfg, device)  # built only when the reference's features are not cached
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
        metrics=[m for m in cfg.metrics.metrics if m in ALL_METRICS],
    )
    values.update(fd_dinov2_of_run(cfg, directory, reference, results_dir(cfg) / "cache"))
    values.update(fwd_of_run(cfg, directory, reference, results_dir(cfg) / "cache"))
    extra = feature_metrics_of_run(cfg, directory, sample_feats, labels, reference, ref_feats)
    values.update(extra)  # kid, density, coverage, fd_inf, per_class (+ per_class.csv)
    if cfg.metrics.bootstrap_resamples > 0:
        values[f"{FID}_bootstrap_std"] = _fid_bootstrap_std(
            cfg, sample_feats["pool"], labels, reference, ref_feats
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


class _LazyInception:
    """Inception for the reference features, built on first use: a cached entry needs only the
    weights' sha256 and the extraction path, which key the cache."""

    def __init__(self, cfg: Any, device: Any) -> None:
        from ssg_eval.features.inception import inception_weights_sha256

        self.cfg, self.device, self.net = cfg, device, None
        self.weights_sha256 = inception_weights_sha256(cfg.metrics.inception_weights)
        self.impl = str(cfg.metrics.inception_impl)

    def _built(self) -> Any:
        if self.net is None:
            from ssg_eval.features.inception import build_inception

            self.net = build_inception(self.cfg.metrics.inception_weights, self.device, self.impl)
        return self.net

    def eval(self) -> Any:
        """The built network in eval mode."""
        return self._built().eval()

    def __call__(self, images_BCHW: Any) -> Any:
        return self._built()(images_BCHW)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-metrics` / `python -m ssg_eval.stages.metrics` with Hydra overrides."""
    cli_main("metrics", run_metrics, cfg)


def main() -> None:
    """`ssg-metrics`: the strict override checks, then the Hydra entry point."""
    hydra_entry("metrics", "config", _hydra_main)


if __name__ == "__main__":
    main()
