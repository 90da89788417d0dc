"""Features stage: Inception pool/spatial/logit features of one run's samples -> `features.npz`.

Reads only the run's shards and manifest; skips work whose inputs are unchanged and never
overwrites features of different samples unless `overwrite=true`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from ssg_eval.stage import CONF_DIR, cli_main, run_dir
from ssg_eval.utils.io import atomic_write_json, atomic_write_npz, read_json
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)


def _features_meta(
    cfg: Any, manifest: dict[str, Any], inception_sha256: str | None, batch_size: int
) -> dict:
    return {
        "sample_config_hash": manifest["config_hash"],
        "inception_sha256": inception_sha256,
        "feature_batch_size": batch_size,
        "inception_impl": str(cfg.metrics.inception_impl),
        "num_samples": int(manifest["config"]["sampler"]["num_samples"]),
    }


def run_features(cfg: Any) -> Path:
    """Extract features of `<run_dir>/shards` into `<run_dir>/features.npz` (+ `features.json`).

    Raises:
        FileNotFoundError: the run has no manifest (sampling not finished) or no Inception weights.
        FileExistsError: features of different samples exist and `overwrite` is false.
    """
    from ssg_eval.features.extract import device_batch_size, extract_features
    from ssg_eval.features.inception import build_inception, inception_weights_sha256
    from ssg_eval.sampling.shards import iter_run_images
    from ssg_eval.utils.dist import resolve_device

    directory = run_dir(cfg)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} is missing: sampling of run {cfg.run_name!r} has not finished; "
            "run the sample stage first (make sample EXP=...)"
        )
    manifest = read_json(manifest_path)
    weights_sha = inception_weights_sha256(cfg.metrics.inception_weights)
    device = resolve_device(cfg.metrics.feature_device)
    batch = cfg.metrics.feature_batch_size
    batch = device_batch_size(device) if batch is None else int(batch)
    meta = _features_meta(cfg, manifest, weights_sha, batch)
    out_path, meta_path = directory / "features.npz", directory / "features.json"
    if out_path.is_file() and meta_path.is_file():
        if read_json(meta_path) == meta:
            log.info("features of %s are up to date; skipping", cfg.run_name)
            return out_path
        if not cfg.overwrite:
            raise FileExistsError(
                f"{out_path} was computed from other inputs ({meta_path} differs from "
                f"{meta}); pass overwrite=true to recompute"
            )
    model = build_inception(cfg.metrics.inception_weights, device, cfg.metrics.inception_impl)
    labels: list[np.ndarray] = []

    def images():
        for images_NHWC, labels_N, _ in iter_run_images(directory, batch):
            labels.append(labels_N)
            yield images_NHWC

    try:  # outputs preallocated for sampler.num_samples rows: memory flat in N
        feats = extract_features(images(), model, batch_size=batch, device=device,
                                 num_images=meta["num_samples"])  # fmt: skip
    except ValueError as err:
        raise ValueError(f"{directory / 'shards'}: {err} (sampler.num_samples)") from err
    atomic_write_npz(out_path, labels=np.concatenate(labels).astype(np.int64), **feats)
    atomic_write_json(meta_path, meta)
    return out_path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="features")
def main(cfg: DictConfig) -> None:
    """`ssg-features` / `python -m ssg_eval.features_stage` with Hydra overrides."""
    cli_main("features", run_features, cfg)


if __name__ == "__main__":
    main()
