"""The ADM reference batch: load and validate it, build one in ADM's format, cache its features.

Validation (existence, keys, shapes, dtypes, finiteness, sha256 against the manifest) is cheap
and runs before any Inception work; this module must not compute metric values.
It runs past 300 lines because validation, the ADM-format writer and the content-hash feature cache
all serve the one reference file format and its manifest, which are defined here only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssg_eval.errors import InputFileError
from ssg_eval.features import FEATURE_DIMS, FEATURE_KEYS
from ssg_eval.features.extract import (
    device_batch_size,
    device_key,
    extract_features,
    iter_npz_images,
    validate_images,
)
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.runs.io import atomic_write_npz
from ssg_eval.runs.npz import npz_array_header, npz_keys, open_npz_array
from ssg_eval.runs.records import read_record
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

# Expected reference files (names, sha256, keys, shapes); package data, so installs find it.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "reference_manifest.json"
REFERENCE_ENV = "SSG_EVAL_REFERENCE"
REFERENCE_KEY = "metrics.reference"
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s")
STAT_DIMS = {"mu": FEATURE_DIMS["pool"], "mu_s": FEATURE_DIMS["spatial"]}
_SIGMA_OF = {"mu": "sigma", "mu_s": "sigma_s"}


@dataclass
class ReferenceBatch:
    """A validated ADM-format batch (`arr_0` plus optional stored statistics).

    Attributes:
        path: the npz file.
        name: its manifest name (the file name by default).
        sha256: hex sha256 of the file.
        num_images: N of `arr_0`.
        image_shape: (H, W, 3) of `arr_0`.
        mu, sigma: stored pool statistics, (2048,), (2048, 2048) float64, or None.
        mu_s, sigma_s: stored spatial statistics, (2023,), (2023, 2023) float64, or None.
        images: uint8 (N, H, W, 3) once `load_images` ran (memory-mapped when possible), else None.
    """

    path: Path
    name: str
    sha256: str
    num_images: int
    image_shape: tuple[int, int, int]
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    mu_s: np.ndarray | None = None
    sigma_s: np.ndarray | None = None
    images: np.ndarray | None = None

    @property
    def has_stats(self) -> bool:
        """ADM's rule: stored `mu` means FID/sFID use the stored statistics."""
        return self.mu is not None

    def load_images(self) -> np.ndarray:
        """`arr_0` as uint8 (N, H, W, 3), memory-mapped when the npz is uncompressed."""
        if self.images is None:
            self.images = open_npz_array(self.path, "arr_0")
        return self.images

    def iter_images(self, batch: int) -> Iterator[np.ndarray]:
        """Stream `arr_0` in chunks of `batch` images."""
        return iter_npz_images(self.path, batch)


def load_manifest(manifest_path: str | Path = DEFAULT_MANIFEST) -> dict[str, dict[str, Any]]:
    """`files` of the reference manifest (name -> entry); empty when the file is absent."""
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        log.warning("reference manifest %s not found; validating by key/shape only", manifest_path)
        return {}
    return dict(read_record(manifest_path, "reference_manifest").get("files", {}))


def _missing_message(path: Path, name: str, entry: dict[str, Any] | None) -> str:
    source = f" (source: {entry['source_url']})" if entry and entry.get("source_url") else ""
    return (
        f"reference batch {name} not found at {path}{source}. Put the file at "
        f"reference_stats/{name} (see reference_stats/README.md) or point to it with "
        f"{REFERENCE_ENV}=<path> or {REFERENCE_KEY}=<path>; it is never downloaded"
    )


def _check_images_header(path: Path, entry: dict[str, Any] | None) -> tuple[int, ...]:
    shape, dtype = npz_array_header(path, "arr_0")
    expected = (entry or {}).get("keys", {}).get("arr_0")
    if dtype != np.uint8:
        raise InputFileError(f"{path}: key 'arr_0' has dtype {dtype}, expected uint8 (NHWC, 0-255)")
    if len(shape) != 4 or shape[-1] != 3:
        raise InputFileError(f"{path}: key 'arr_0' has shape {shape}, expected (N, H, W, 3) NHWC")
    if expected and tuple(expected["shape"]) != tuple(shape):
        raise InputFileError(
            f"{path}: key 'arr_0' has shape {shape}, expected {tuple(expected['shape'])} "
            f"(manifest entry {path.name})"
        )
    return shape


def read_stored_stats(
    path: str | Path, entry: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Load and check `mu`, `sigma`, `mu_s`, `sigma_s` of an npz (empty dict when `mu` is absent).

    Args:
        path: the npz.
        entry: manifest entry with expected shapes/dtypes; None checks the ADM dims (2048/2023).

    Returns:
        The four arrays as float64 (or `{}`).

    Raises:
        ValueError: a key is missing, has the wrong shape/dtype, or holds non-finite values; the
            message names the file and the key.
    """
    path = Path(path)
    keys = npz_keys(path)
    required = [k for k in STAT_KEYS if k in (entry or {}).get("keys", {})]
    if "mu" not in keys and not required:
        return {}
    expected = (entry or {}).get("keys", {})
    stats: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in STAT_KEYS:
            if key not in keys:
                raise InputFileError(
                    f"{path}: key {key!r} missing (keys present: {sorted(keys)}); an ADM batch "
                    f"with stored statistics needs all of {list(STAT_KEYS)}"
                )
            value = data[key]
            allowed = expected.get(key, {}).get("dtype", ["float64", "float32"])
            if str(value.dtype) not in ([allowed] if isinstance(allowed, str) else allowed):
                raise InputFileError(
                    f"{path}: key {key!r} has dtype {value.dtype}, expected {allowed}"
                )
            stats[key] = value.astype(np.float64)
    for mean_key, sigma_key in _SIGMA_OF.items():
        dim = STAT_DIMS[mean_key]
        for key, shape in ((mean_key, (dim,)), (sigma_key, (dim, dim))):
            want = tuple(expected.get(key, {}).get("shape", shape))
            if stats[key].shape != want:
                raise InputFileError(
                    f"{path}: key {key!r} has shape {stats[key].shape}, expected {want}"
                )
            if not np.isfinite(stats[key]).all():
                raise InputFileError(f"{path}: key {key!r} contains non-finite values (NaN or inf)")
    return stats


def load_reference(
    path: str | Path,
    *,
    name: str | None = None,
    manifest_path: str | Path = DEFAULT_MANIFEST,
    verify_sha256: bool = True,
) -> ReferenceBatch:
    """Validate an ADM reference batch against the manifest and load its stored statistics.

    Images stay on disk (`ReferenceBatch.load_images` / `iter_images` read them on demand).
    Files not in the manifest (smoke/test references) are checked for ADM consistency only.

    Args:
        path: the npz (`metrics.reference`).
        name: manifest key (`metrics.reference_name`); defaults to the file name.
        manifest_path: the manifest (default: `ssg_eval/metrics/reference_manifest.json`).
        verify_sha256: compare the file's sha256 with the manifest's (null there: warn only).

    Returns:
        The validated `ReferenceBatch` (sha256 always computed).

    Raises:
        FileNotFoundError: no file at `path` (names the expected file and where to put it).
        ValueError: bad keys, shapes, dtypes, non-finite statistics or a sha256 mismatch.
    """
    path = Path(path).expanduser()
    name = name or path.name
    manifest = load_manifest(manifest_path)
    entry = manifest.get(name)
    if not path.is_file():
        raise FileNotFoundError(_missing_message(path, name, entry))
    keys = npz_keys(path)
    if "arr_0" not in keys:
        raise InputFileError(f"{path}: key 'arr_0' missing (keys present: {sorted(keys)})")
    for key in (entry or {}).get("keys", {}):
        if key not in keys:
            raise InputFileError(
                f"{path}: key {key!r} missing (keys present: {sorted(keys)}; manifest entry {name})"
            )
    shape = _check_images_header(path, entry)
    stats = read_stored_stats(path, entry)
    extra = sorted(set(keys) - {"arr_0", *STAT_KEYS})
    if extra:
        log.info("%s: extra keys %s ignored", path, extra)
    sha = sha256_file(path)
    if entry is None:
        log.info("%s is not in %s: validated by key/shape consistency only", name, manifest_path)
    elif entry.get("sha256") is None:
        log.warning("%s: sha256 not verified (unknown in the manifest); this file: %s", path, sha)
    elif verify_sha256 and entry["sha256"] != sha:
        raise InputFileError(
            f"{path}: sha256 {sha} differs from the manifest's {entry['sha256']} for {name}; "
            "re-download the file or set metrics.verify_reference_sha256=false knowingly"
        )
    return ReferenceBatch(path, name, sha, int(shape[0]), tuple(shape[1:]), **stats)


def center_crop_arr(image: np.ndarray, resolution: int) -> np.ndarray:
    """guided-diffusion's `center_crop_arr`: BOX-halve while >= 2x, BICUBIC shorter side, crop.

    Args:
        image: uint8 (H, W, 3).
        resolution: output side.

    Returns:
        uint8 (resolution, resolution, 3).
    """
    from PIL import Image

    pil = Image.fromarray(image)
    while min(*pil.size) >= 2 * resolution:
        pil = pil.resize(tuple(x // 2 for x in pil.size), resample=Image.BOX)
    scale = resolution / min(*pil.size)
    pil = pil.resize(tuple(round(x * scale) for x in pil.size), resample=Image.BICUBIC)
    arr = np.asarray(pil.convert("RGB"))
    top, left = (arr.shape[0] - resolution) // 2, (arr.shape[1] - resolution) // 2
    return arr[top : top + resolution, left : left + resolution]


def _load_images(source: np.ndarray | str | Path, center_crop: bool, resolution: int) -> np.ndarray:
    if isinstance(source, (str, os.PathLike)):
        from PIL import Image

        folder = Path(source)
        files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
        )
        if not files:
            raise FileNotFoundError(f"no png/jpg images in {folder}")
        raw = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    else:
        validate_images(source, where="build_reference_npz images")
        raw = list(source)
    if center_crop:
        return np.stack([center_crop_arr(img, resolution) for img in raw])
    for img in raw:
        if img.shape != (resolution, resolution, 3):
            raise InputFileError(
                f"image shape {img.shape} != ({resolution}, {resolution}, 3) and center_crop=False"
            )
    return np.stack(raw).astype(np.uint8, copy=False)


def build_reference_npz(
    images: np.ndarray | str | Path,
    out_path: str | Path,
    model: nn.Module,
    batch_size: int,
    center_crop: bool = True,
    resolution: int = 256,
    progress: bool = True,
) -> Path:
    """Write an ADM-format reference batch: `arr_0` + `mu`/`sigma`/`mu_s`/`sigma_s` (atomic).

    Recipe with `center_crop=True` (guided-diffusion `image_datasets.center_crop_arr`): while the
    shorter side is >= 2x `resolution`, halve the image with PIL BOX; then resize so the shorter
    side is `resolution` with PIL BICUBIC (rounded sizes); then centre-crop to a square. How ADM
    built the official ImageNet statistics (over the whole training set) is undocumented, so a
    rebuilt file gives different numbers: use this for smoke/test references or new datasets,
    never as a substitute for `VIRTUAL_imagenet256_labeled.npz`. The statistics here are over
    the images written to `arr_0`.

    Args:
        images: uint8 (N, H, W, 3) array, or a folder of png/jpg files (sorted by name).
        out_path: destination npz.
        model: `build_inception(...)` output.
        batch_size: Inception batch (ADM: 64).
        center_crop: apply the recipe above; False requires images already at `resolution`.
        resolution: output side in pixels.
        progress: show a tqdm bar.

    Returns:
        `out_path`.
    """
    arr = _load_images(images, center_crop, resolution)
    device = next(model.parameters()).device
    feats = extract_features(
        (arr[i : i + batch_size] for i in range(0, len(arr), batch_size)),
        model, batch_size=batch_size, device=device, progress=progress,
    )  # fmt: skip
    mu, sigma = feature_statistics(feats["pool"])
    mu_s, sigma_s = feature_statistics(feats["spatial"])
    return atomic_write_npz(out_path, arr_0=arr, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)


def reference_cache_key(
    reference_sha256: str,
    inception_sha256: str,
    batch_size: int,
    inception_impl: str,
    device_kind: str,
) -> str:
    """Content hash naming the cached reference features (hex sha256).

    It covers everything the features depend on: the reference file's bytes (its sha256), the
    Inception weights' bytes (their sha256), the forward batch, the extraction path and the
    device kind (`features.extract.device_key`). Any change gives a new file name, so a cache
    entry is never overwritten by other inputs.
    """
    identity = json.dumps(
        {
            "reference_sha256": reference_sha256,
            "inception_sha256": inception_sha256,
            "feature_batch_size": int(batch_size),
            "inception_impl": inception_impl,
            "device": device_kind,
        },
        sort_keys=True,
    )
    return hashlib.sha256(identity.encode()).hexdigest()


def reference_features(
    ref: ReferenceBatch,
    model: nn.Module,
    cache_dir: str | Path | None,
    batch_size: int | None,
    device: torch.device | str,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Inception features of the reference images, extracted once and cached by content hash.

    The cache is `<cache_dir>/<reference_cache_key(...)[:32]>_features.npz` (reference sha256 +
    Inception weights sha256 + batch + extraction path + device kind); the file also stores those
    inputs and is used only when they all match and it holds `ref.num_images` rows of each feature.

    Args:
        ref: a `load_reference` result.
        model: `build_inception(...)` output (its `weights_sha256` and `impl` key the cache).
        cache_dir: cache folder; None computes without caching.
        batch_size: Inception batch (ADM: 64); None = chosen by the device.
        device: where the model runs.
        progress: show a tqdm bar.

    Returns:
        `pool` (N, 2048), `spatial` (N, 2023), `logits` (N, 1008) float32.
    """
    batch_size = device_batch_size(device) if batch_size is None else int(batch_size)
    meta = {
        "inception_sha256": str(getattr(model, "weights_sha256", "unknown")),
        "reference_sha256": ref.sha256,
        "feature_batch_size": batch_size,
        "inception_impl": str(getattr(model, "impl", "unknown")),
        "device": device_key(device),
    }
    key = reference_cache_key(
        ref.sha256, meta["inception_sha256"], batch_size, meta["inception_impl"], meta["device"]
    )
    cache = None if cache_dir is None else Path(cache_dir) / f"{key[:32]}_features.npz"
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            stored = {k: data[k].item() for k in meta if k in data.files}
            if stored == meta and all(
                k in data.files and data[k].shape[0] == ref.num_images for k in FEATURE_KEYS
            ):
                log.info("reference features from cache %s", cache)
                return {k: data[k] for k in FEATURE_KEYS}
        log.warning("reference feature cache %s does not match its inputs; recomputing", cache)
    feats = extract_features(
        ref.iter_images(batch_size), model, batch_size=batch_size, device=device,
        progress=progress, num_images=ref.num_images,
    )  # fmt: skip
    if cache is not None:
        atomic_write_npz(cache, **{k: np.array(v) for k, v in meta.items()}, **feats)
    return feats
