"""All ADM metrics of one sample feature set against a reference, and the npz-to-json evaluator.

`compute_metrics` is pure (features in, floats out); `evaluate_npz` is the I/O edge that
validates both files before any Inception work and writes `metrics.json` atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.errors import ConfigError, InputFileError
from ssg_eval.metrics.frechet import frechet_distance, frechet_distance_features
from ssg_eval.metrics.inception_score import check_prediction_order, inception_score
from ssg_eval.metrics.keys import (
    ALL_METRICS,
    FD_DINOV2,
    FID,
    FWD,
    IS,
    IS_STD,
    PRECISION,
    RECALL,
    SFID,
)
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.metrics.reference import (
    DEFAULT_MANIFEST,
    ReferenceBatch,
    load_manifest,
    load_reference,
    read_stored_stats,
    reference_features,
)
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.runs.io import atomic_write_json
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)


def too_few_samples(
    metrics: Sequence[str], num_samples: int, num_reference: int, k: int
) -> str | None:
    """Why `metrics` cannot be computed from sets of these sizes (None when they can).

    A Fréchet distance needs a covariance (N >= 2 samples); precision/recall need k + 1 points
    on both sides (each point's k-th nearest *other* point); IS needs one sample. Checked before
    any feature work, so a too-small run fails in a line, not in the middle of the metric.

    Args:
        metrics: the requested metric names. num_samples, num_reference: the two set sizes.
        k: the P/R neighbourhood (`metrics.pr_k`).
    """
    frechet = [m for m in metrics if m in (FID, SFID, FD_DINOV2, FWD)]
    manifold = [m for m in metrics if m in (PRECISION, RECALL)]
    if frechet and num_samples < 2:
        return f"{frechet} need at least 2 samples, got {num_samples}"
    if manifold and min(num_samples, num_reference) < k + 1:
        return (
            f"{manifold} need at least metrics.pr_k+1={k + 1} samples and reference images, got "
            f"{num_samples} and {num_reference}"
        )
    if metrics and num_samples < 1:
        return "no samples"
    return None


def _frechet(
    sample: dict[str, np.ndarray],
    sample_stats: dict[str, np.ndarray] | None,
    ref: dict[str, np.ndarray],
    ref_stats: dict[str, np.ndarray | None],
    spatial: bool,
    method: str,
) -> float:
    """ADM's rule per side (stored `mu` wins, else the features), then the Fréchet distance."""
    mean_key, sigma_key, feat_key = (
        ("mu_s", "sigma_s", "spatial") if spatial else ("mu", "sigma", "pool")
    )
    sides = []
    for feats, stored in ((sample, sample_stats), (ref, ref_stats)):
        if stored and stored.get(mean_key) is not None:
            sides.append((None, stored[mean_key], stored[sigma_key]))
        else:
            sides.append((feats[feat_key], None, None))
    (feats1, mu1, sigma1), (feats2, mu2, sigma2) = sides
    if feats1 is None and feats2 is None:
        return frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
    if feats1 is not None and feats2 is not None:
        # keep the smaller set as features (cheap low-rank path when it has fewer rows than dims)
        if len(feats1) > len(feats2):
            feats1, feats2 = feats2, feats1
        mu2, sigma2 = feature_statistics(feats2)
    elif feats1 is None:
        feats1, mu2, sigma2 = feats2, mu1, sigma1
    return frechet_distance_features(feats1, mu2, sigma2, method=method)


def compute_metrics(
    sample_features: dict[str, np.ndarray],
    reference: ReferenceBatch,
    reference_features: dict[str, np.ndarray],
    *,
    split_size: int,
    k: int,
    block_size: int,
    distance_dtype: str,
    fid_method: str,
    metrics: Sequence[str],
    sample_stats: dict[str, np.ndarray] | None = None,
    pr_device: str = "cpu",
) -> dict[str, float]:
    """FID, sFID, IS (+ std), precision and recall under the ADM protocol.

    Args:
        sample_features: `pool` (N, 2048), `spatial` (N, 2023), `logits` (N, 1008) float32, in
            sample order (IS splits are consecutive).
        reference: `load_reference` result; its stored `mu`/`sigma`/`mu_s`/`sigma_s` are used
            for FID/sFID when present (ADM's rule), else `reference_features` statistics.
        reference_features: the reference's `pool`/`spatial` features (P/R always needs `pool`).
        split_size: IS split size (ADM 5000). k: P/R neighbourhood (ADM 3).
        block_size: P/R distance block (ADM 10000). distance_dtype: `float16` | `float32`.
        fid_method: `eigh` | `sqrtm`.
        metrics: subset of `fid`, `sfid`, `is`, `precision`, `recall`.
        sample_stats: stored statistics of the sample batch (ADM applies the `mu` rule to it too).
        pr_device: device for the P/R matmuls.

    Returns:
        Key constants of `ssg_eval.metrics.keys` -> Python float (`is` adds `is_std`).

    Raises:
        ConfigError: an unknown metric name.
    """
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ConfigError(f"metrics.metrics contains {unknown}; valid names: {list(ALL_METRICS)}")
    ref_stats = {k_: getattr(reference, k_) for k_ in ("mu", "sigma", "mu_s", "sigma_s")}
    values: dict[str, float] = {}
    for key, spatial in ((FID, False), (SFID, True)):
        if key in metrics:
            values[key] = _frechet(
                sample_features, sample_stats, reference_features, ref_stats, spatial, fid_method
            )
    if IS in metrics:
        values[IS], values[IS_STD] = inception_score(sample_features["logits"], split_size)
    if PRECISION in metrics or RECALL in metrics:
        precision, recall = precision_recall(
            reference_features["pool"],
            sample_features["pool"],
            k=k,
            block_size=block_size,
            distance_dtype=distance_dtype,
            device=pr_device,
        )
        if PRECISION in metrics:
            values[PRECISION] = precision
        if RECALL in metrics:
            values[RECALL] = recall
    return values


def _check_order_of_arguments(samples: Path, reference: Path, manifest: dict[str, Any]) -> None:
    def is_reference(path: Path) -> bool:
        return manifest.get(path.name, {}).get("role") == "reference"

    if is_reference(samples) and not is_reference(reference):
        raise InputFileError(
            f"{samples} is the reference batch {samples.name} but was given as SAMPLES; the order "
            "is SAMPLES REFERENCE (ADM's evaluator.py takes the reference first)"
        )


def evaluate_npz(
    samples_npz: str | Path,
    reference_npz: str | Path,
    out_json: str | Path,
    *,
    inception_weights: str | Path | None,
    device: str = "auto",
    batch_size: int = 64,
    split_size: int = 5000,
    k: int = 3,
    block_size: int = 10_000,
    distance_dtype: str = "float16",
    fid_method: str = "eigh",
    metrics: Sequence[str] = ALL_METRICS,
    manifest_path: str | Path = DEFAULT_MANIFEST,
    verify_sha256: bool = True,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """ADM `evaluator.py` replacement: metrics of a sample npz against a reference npz -> json.

    Both files are validated (keys, shapes, dtypes, sha256) before the Inception network is
    built. The sample batch also follows ADM's `mu` rule (stored statistics win for FID/sFID).

    Args:
        samples_npz: ADM-format samples (`arr_0` uint8 NHWC, e.g. 50k images).
        reference_npz: ADM reference batch (e.g. `VIRTUAL_imagenet256_labeled.npz`).
        out_json: destination `metrics.json`.
        inception_weights: torch-fidelity weights file (None: `$SSG_EVAL_INCEPTION` or cache).
        device: `auto` | `cpu` | `cuda` for Inception and the P/R matmuls.
        batch_size, split_size, k, block_size, distance_dtype, fid_method, metrics: the ADM
            protocol settings (defaults are ADM's; see `conf/metrics/adm.yaml`).
        manifest_path: reference manifest. verify_sha256: check the reference's sha256.
        cache_dir: folder caching the reference activations; None disables the cache.
        overwrite: replace an existing `out_json`.
        progress: tqdm bars.

    Returns:
        The payload written to `out_json` (`metrics`, `protocol`, `inputs`, `warnings`, ...).

    Raises:
        FileExistsError: `out_json` exists and `overwrite` is False.
        FileNotFoundError / InputFileError / NpzError: missing or invalid inputs (named in the
            message), or too few images for the requested metrics.
    """
    from ssg_eval.features.extract import extract_features, iter_npz_images
    from ssg_eval.features.inception import build_inception
    from ssg_eval.runs.npz import npz_array_header
    from ssg_eval.utils.dist import resolve_device
    from ssg_eval.utils.provenance import collect_provenance

    started = time.perf_counter()
    samples_npz, reference_npz, out_json = Path(samples_npz), Path(reference_npz), Path(out_json)
    if out_json.exists() and not overwrite:
        raise FileExistsError(f"{out_json} exists; pass overwrite=True (--overwrite) to replace it")
    manifest = load_manifest(manifest_path)
    if not samples_npz.is_file():
        raise FileNotFoundError(f"samples batch {samples_npz} does not exist")
    _check_order_of_arguments(samples_npz, reference_npz, manifest)
    shape, dtype = npz_array_header(samples_npz, "arr_0")
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        raise InputFileError(
            f"{samples_npz}: key 'arr_0' is {dtype} {shape}, expected uint8 (N, H, W, 3) NHWC"
        )
    sample_stats = read_stored_stats(samples_npz)
    reference = load_reference(
        reference_npz, manifest_path=manifest_path, verify_sha256=verify_sha256
    )
    problem = too_few_samples(list(metrics), int(shape[0]), reference.num_images, k)
    if problem:
        raise InputFileError(f"{samples_npz} against {reference_npz}: {problem}")
    torch_device = resolve_device(device)
    model = build_inception(inception_weights, torch_device)
    sample_feats = extract_features(
        iter_npz_images(samples_npz, batch_size), model, batch_size=batch_size,
        device=torch_device, progress=progress, num_images=int(shape[0]),
    )  # fmt: skip
    ref_feats = reference_features(
        reference, model, cache_dir, batch_size=batch_size, device=torch_device, progress=progress
    )
    warnings = check_prediction_order(sample_feats["logits"], split_size)
    values = compute_metrics(
        sample_feats, reference, ref_feats, split_size=split_size, k=k, block_size=block_size,
        distance_dtype=distance_dtype, fid_method=fid_method, metrics=list(metrics),
        sample_stats=sample_stats, pr_device=str(torch_device),
    )  # fmt: skip
    payload = {
        "metrics": values,
        "protocol": {
            "extractor": "inception-v3-compat (torch-fidelity)",
            "feature_batch_size": batch_size,
            "is_split_size": split_size,
            "pr_k": k,
            "pr_block_size": block_size,
            "pr_distance_dtype": distance_dtype,
            "fid_method": fid_method,
            "reference_name": reference.name,
            "device": str(torch_device),
        },
        "inputs": {
            "samples": {
                "path": str(samples_npz.resolve()),
                "sha256": sha256_file(samples_npz),
                "num_images": int(shape[0]),
                "stored_stats_used": bool(sample_stats),
            },
            "reference": {
                "path": str(reference.path.resolve()),
                "sha256": reference.sha256,
                "num_images": reference.num_images,
                "stored_stats_used": reference.has_stats,
            },
            "inception_weights": {
                "path": str(model.weights_path.resolve()),
                "sha256": model.weights_sha256,
            },
        },
        "num_samples": int(shape[0]),
        "warnings": warnings,
        "time_s": time.perf_counter() - started,
        "provenance": collect_provenance(),
    }
    atomic_write_json(out_json, payload)
    return payload
