"""Shard files of a run: the one float -> uint8 conversion, write/verify, ordered reads, export.

A shard `shards/chunk_{c:05d}.npz` holds `images` (uint8 NHWC), `labels` and `indices` (int64) of
one plan chunk and is written atomically; this module must not generate images or read configs.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.utils.io import atomic_write_npz

__all__ = [
    "ROUNDING_RULES",
    "SAMPLES_NPZ",
    "export_samples_npz",
    "images_sha256",
    "iter_run_images",
    "shard_path",
    "shard_problem",
    "to_uint8",
    "verify_shard",
    "write_shard",
]

ROUNDING_RULES = ("nearest", "truncate")
SHARD_KEYS = ("images", "labels", "indices")
SAMPLES_NPZ = "samples.npz"
# A fixed zip member timestamp makes samples.npz a pure function of its arrays (hashable).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def to_uint8(images_B3HW: torch.Tensor | np.ndarray, rounding: str = "nearest") -> np.ndarray:
    """Quantize float images in [0, 1] to uint8 NHWC; the project's only float -> uint8 conversion.

    Rules (computed in float64, which is exact for float32/bfloat16/float16 inputs):
    - `nearest`: `floor(255·x + 0.5)` clamped to [0, 255], i.e. round half up (x = 0.5 -> 128).
      This is VAR #45/#83's `x·255 + 0.5` rule (docs/METRICS.md, traps: float -> uint8).
    - `truncate`: `floor(255·x)` clamped to [0, 255] (VAR demo / `.to(uint8)` of `x·255`); it
      darkens every pixel by 0.5/255 on average and exists for the rounding ablation only.

    Args:
        images_B3HW: (B, 3, H, W) float tensor or array, nominally in [0, 1]; values outside are
            clamped after scaling.
        rounding: `nearest` or `truncate` (`sampler.uint8_rounding`).

    Returns:
        (B, H, W, 3) uint8 C-contiguous array.

    Raises:
        ValueError: an unknown rounding rule, a wrong shape, or any NaN/inf value (nothing is
            written in that case).
    """
    if rounding not in ROUNDING_RULES:
        raise ValueError(
            f"sampler.uint8_rounding={rounding!r} is not valid; expected one of {ROUNDING_RULES}"
        )
    if isinstance(images_B3HW, torch.Tensor):
        x = images_B3HW.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        x = np.asarray(images_B3HW, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(x.shape)}")
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(
            f"{int(x.size - finite.sum())} of {x.size} image values are NaN or inf; refusing to "
            "quantize (check runtime.autocast_dtype / runtime.decode_dtype or the checkpoint)"
        )
    scaled = 255.0 * x + (0.5 if rounding == "nearest" else 0.0)
    quantized = np.clip(np.floor(scaled), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(quantized.transpose(0, 2, 3, 1))


def shard_path(run_dir: str | Path, chunk: int) -> Path:
    """`<run_dir>/shards/chunk_{chunk:05d}.npz`."""
    return Path(run_dir) / "shards" / f"chunk_{chunk:05d}.npz"


def write_shard(
    run_dir: str | Path, chunk: int, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
) -> Path:
    """Write one chunk's shard atomically (`*.tmp`, then `os.replace`).

    Args:
        run_dir: the run directory.
        chunk: chunk number (names the file).
        images: (n, H, W, 3) uint8.
        labels: (n,) integer labels.
        indices: (n,) sample indices.

    Returns:
        The shard path.

    Raises:
        ValueError: wrong dtypes or inconsistent lengths.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"shard images must be uint8 (n, H, W, 3); got {images.dtype} {images.shape}"
        )
    if not len(images) == len(labels) == len(indices):
        raise ValueError(
            f"shard {chunk}: {len(images)} images, {len(labels)} labels, {len(indices)} indices"
        )
    return atomic_write_npz(
        shard_path(run_dir, chunk),
        images=np.ascontiguousarray(images),
        labels=np.asarray(labels, dtype=np.int64),
        indices=np.asarray(indices, dtype=np.int64),
    )


def _member_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    # Shapes and dtypes from the .npy headers inside the zip, without reading the pixel data.
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                reader = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = reader(handle)
            headers[info.filename.removesuffix(".npy")] = (tuple(shape), np.dtype(dtype))
    return headers


def shard_problem(
    path: str | Path,
    plan: SamplePlan,
    chunk: int,
    image_shape: tuple[int, int, int],
    *,
    deep: bool = False,
) -> str | None:
    """Why the shard at `path` is not a valid shard of `chunk`, or None when it is.

    Checks that the file is a readable npz with exactly the keys images/labels/indices, their
    dtypes (uint8, int64, int64) and shapes ((n, *image_shape), (n,), (n,)), that `indices`
    equals `plan.chunk_indices(chunk)` and `labels` equals `plan.labels(indices)`.

    Args:
        path: the shard file.
        plan: the run's plan.
        chunk: the chunk the file should hold.
        image_shape: (H, W, 3).
        deep: also read the pixel data (the zip CRC is then checked too); by default only the
            array headers are read, which is enough for files written atomically.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        headers = _member_headers(path)
        if set(headers) != set(SHARD_KEYS):
            return f"keys {sorted(headers)} != {sorted(SHARD_KEYS)}"
        expected = plan.chunk_indices(chunk)
        n = len(expected)
        wanted = {
            "images": ((n, *image_shape), np.dtype(np.uint8)),
            "labels": ((n,), np.dtype(np.int64)),
            "indices": ((n,), np.dtype(np.int64)),
        }
        for key, (shape, dtype) in wanted.items():
            if headers[key] != (shape, dtype):
                return f"{key} is {headers[key][1]} {headers[key][0]}, expected {dtype} {shape}"
        with np.load(path) as data:
            if not np.array_equal(data["indices"], expected):
                return f"indices differ from chunk_indices({chunk})"
            if not np.array_equal(data["labels"], plan.labels(expected)):
                return "labels differ from the plan's labels"
            if deep and data["images"].size != n * int(np.prod(image_shape)):
                return "images could not be read in full"
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return f"unreadable ({type(err).__name__}: {err})"
    return None


def verify_shard(
    path: str | Path,
    plan: SamplePlan,
    chunk: int,
    image_shape: tuple[int, int, int],
    *,
    deep: bool = False,
) -> bool:
    """True when `path` is a valid shard of `chunk` (see `shard_problem` for the checks)."""
    return shard_problem(path, plan, chunk, image_shape, deep=deep) is None


def _shard_files(run_dir: Path) -> list[tuple[int, Path]]:
    files = []
    for path in (run_dir / "shards").glob("chunk_*.npz"):
        stem = path.stem.removeprefix("chunk_")
        if stem.isdigit():
            files.append((int(stem), path))
    return sorted(files)


def iter_run_images(
    run_dir: str | Path, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stream a run's samples in index order, in batches of `batch_size` (the last may be short).

    Memory stays bounded by one shard plus one batch. Shards are read in chunk order and must
    continue each other without gaps, so the features stage sees every sample once, in order.

    Args:
        run_dir: the run directory (holding `shards/`).
        batch_size: images per yielded batch (> 0).

    Yields:
        `(images_NHWC uint8, labels int64, indices int64)`.

    Raises:
        FileNotFoundError: the run has no shards.
        ValueError: a shard's indices do not continue the previous shard's (missing shard).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be positive")
    files = _shard_files(Path(run_dir))
    if not files:
        raise FileNotFoundError(f"no shards under {Path(run_dir) / 'shards'}; sample the run first")
    pending: list[np.ndarray] | None = None
    next_index = 0
    for _, path in files:
        with np.load(path) as data:
            arrays = [data[key] for key in SHARD_KEYS]
        indices = arrays[2]
        if len(indices) and not np.array_equal(
            indices, np.arange(next_index, next_index + len(indices))
        ):
            raise ValueError(
                f"{path} starts at index {int(indices[0])}, expected {next_index}: a shard is "
                "missing or foreign; re-run the sample stage to complete the run"
            )
        next_index += len(indices)
        if pending is not None:
            arrays = [np.concatenate([p, a]) for p, a in zip(pending, arrays, strict=True)]
            pending = None
        full = len(arrays[0]) - len(arrays[0]) % batch_size
        for start in range(0, full, batch_size):
            yield tuple(a[start : start + batch_size] for a in arrays)  # type: ignore[misc]
        if full < len(arrays[0]):
            pending = [a[full:].copy() for a in arrays]
    if pending is not None:
        yield tuple(pending)  # type: ignore[misc]


def _check_complete(run_dir: Path, plan: SamplePlan) -> None:
    files = _shard_files(run_dir)
    chunks = [c for c, _ in files]
    if chunks != list(range(plan.num_chunks)):
        missing = sorted(set(range(plan.num_chunks)) - set(chunks))
        extra = sorted(set(chunks) - set(range(plan.num_chunks)))
        raise FileNotFoundError(
            f"{run_dir / 'shards'} is incomplete: missing chunks {missing[:10]}, unexpected "
            f"chunks {extra[:10]}; re-run the sample stage"
        )


def images_sha256(run_dir: str | Path, plan: SamplePlan, batch_size: int = 1024) -> str:
    """sha256 of all image bytes (uint8 NHWC, index order): a content key independent of files."""
    import hashlib

    run_dir = Path(run_dir)
    _check_complete(run_dir, plan)
    digest = hashlib.sha256()
    for images, _, _ in iter_run_images(run_dir, batch_size):
        digest.update(np.ascontiguousarray(images).reshape(-1).data)
    return digest.hexdigest()


def _npy_member(archive: zipfile.ZipFile, name: str) -> Any:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return archive.open(info, "w", force_zip64=True)


def export_samples_npz(run_dir: str | Path, plan: SamplePlan, *, hasher: Any = None) -> Path:
    """Write ADM's `samples.npz` (`arr_0`: exactly N images in index order, plus `labels`).

    The file is streamed shard by shard into an uncompressed zip (memory: one shard, not the
    9.8 GB of 50k 256² images), written to `samples.npz.tmp` and renamed, and has fixed member
    timestamps, so identical images give a byte-identical file. It loads with `np.load` and with
    ADM's `evaluator.py` (which reads `arr_0` as NHWC uint8).

    Args:
        run_dir: the run directory; the file goes to `<run_dir>/samples.npz`.
        plan: the run's plan (defines N and the chunks that must exist).
        hasher: optional `hashlib` object updated with the image bytes in index order.

    Returns:
        The path of `samples.npz`.

    Raises:
        FileNotFoundError: a chunk's shard is missing.
        ValueError: the shards do not hold exactly indices 0..N-1 in order.
    """
    run_dir = Path(run_dir)
    _check_complete(run_dir, plan)
    shape = (plan.num_samples, *_member_headers(shard_path(run_dir, 0))["images"][0][1:])
    out = run_dir / SAMPLES_NPZ
    tmp = out.with_name(out.name + ".tmp")
    labels: list[np.ndarray] = []
    count = 0
    try:
        with open(tmp, "wb") as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                with _npy_member(archive, "arr_0.npy") as member:
                    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
                    np.lib.format.write_array_header_1_0(member, header)
                    for images, labels_n, _ in iter_run_images(run_dir, plan.chunk_size):
                        if images.shape[1:] != shape[1:]:
                            raise ValueError(f"image shape {images.shape[1:]} != {shape[1:]}")
                        data = np.ascontiguousarray(images).reshape(-1).data
                        member.write(data)
                        if hasher is not None:
                            hasher.update(data)
                        labels.append(labels_n)
                        count += len(images)
                    if count != plan.num_samples:
                        raise ValueError(f"shards hold {count} images, expected {plan.num_samples}")
                with _npy_member(archive, "labels.npy") as member:
                    np.lib.format.write_array(member, np.concatenate(labels).astype(np.int64))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
