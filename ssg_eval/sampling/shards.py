"""Shard files of a run: the one float -> uint8 conversion, write/verify, ordered reads, export.

A shard `shards/chunk_{c:05d}.npz` holds `images` (uint8 NHWC), `labels` and `indices` (int64) of
one plan chunk and is written atomically; this module must not generate images or read configs.
It runs past 300 lines because it owns the shard format whole, from the uint8 conversion through
writing, verifying and reading to the ADM export, so the format is defined in one place.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssg_eval.errors import ConfigError, IncompleteRunError, NpzError
from ssg_eval.runs.hashed import (
    HashingWriter,
    array_crc32,
    crc32_combine,
    load_npz_verified,
    stored_member_header,
    write_npz_sha256,
)
from ssg_eval.runs.io import atomic_open
from ssg_eval.runs.npz import load_npz, npz_array_header, npz_problem
from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.utils.hashing import sha256_file

__all__ = [
    "ROUNDING_RULES",
    "SAMPLES_NPZ",
    "export_samples_npz",
    "export_samples_npz_sha256",
    "images_sha256",
    "iter_run_images",
    "quantize_on_device",
    "read_shard",
    "shard_check",
    "shard_path",
    "shard_problem",
    "to_uint8",
    "verify_shard",
    "write_shard",
    "write_shard_sha256",
]

ROUNDING_RULES = ("nearest", "truncate")
SHARD_KEYS = ("images", "labels", "indices")
SAMPLES_NPZ = "samples.npz"
# A fixed zip member timestamp makes samples.npz a pure function of its arrays (hashable).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_ATTR = 0o644 << 16  # rw-r--r--


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
        ConfigError: an unknown rounding rule, or any NaN/inf value (nothing is written then).
        ValueError: a wrong shape.
    """
    if rounding not in ROUNDING_RULES:
        raise ConfigError(
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
        raise ConfigError(
            f"{int(x.size - finite.sum())} of {x.size} image values are NaN or inf; refusing to "
            "quantize (check runtime.autocast_dtype / runtime.decode_dtype or the checkpoint)"
        )
    scaled = 255.0 * x + (0.5 if rounding == "nearest" else 0.0)
    quantized = np.clip(np.floor(scaled), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(quantized.transpose(0, 2, 3, 1))


def quantize_on_device(
    images_B3HW: torch.Tensor, rounding: str = "nearest"
) -> tuple[torch.Tensor, torch.Tensor]:
    """`to_uint8`'s rule on the images' own device, without a host round trip or a sync.

    The same float64 arithmetic as `to_uint8` (exact for float32/bfloat16/float16 inputs, so the
    bytes are identical on any device); the finiteness check is returned as a device flag for
    the caller to test once the result reaches the host.

    Args:
        images_B3HW: (B, 3, H, W) float tensor, nominally in [0, 1].
        rounding: `nearest` or `truncate`.

    Returns:
        `(images_BHW3, finite)`: contiguous uint8 NHWC on the same device, and a 0-d bool
        tensor, False when any value is NaN or inf (then the images must not be used).
    """
    if rounding not in ROUNDING_RULES:
        raise ValueError(
            f"sampler.uint8_rounding={rounding!r} is not valid; expected one of {ROUNDING_RULES}"
        )
    if images_B3HW.dim() != 4 or images_B3HW.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images_B3HW.shape)}")
    x = images_B3HW.detach().to(torch.float64)
    finite = torch.isfinite(x).all()
    scaled = x.mul(255.0).add_(0.5 if rounding == "nearest" else 0.0).floor_().clamp_(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous(), finite


def shard_path(run_dir: str | Path, chunk: int) -> Path:
    """`<run_dir>/shards/chunk_{chunk:05d}.npz`."""
    return Path(run_dir) / "shards" / f"chunk_{chunk:05d}.npz"


def write_shard(
    run_dir: str | Path, chunk: int, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
) -> Path:
    """Write one chunk's shard atomically (`*.tmp`, then `os.replace`); see `write_shard_sha256`.

    Returns:
        The shard path.
    """
    write_shard_sha256(run_dir, chunk, images, labels, indices)
    return shard_path(run_dir, chunk)


def write_shard_sha256(
    run_dir: str | Path, chunk: int, images: np.ndarray, labels: np.ndarray, indices: np.ndarray
) -> str:
    """Write one chunk's shard atomically and return its sha256, hashed while it was written.

    Args:
        run_dir: the run directory.
        chunk: chunk number (names the file).
        images: (n, H, W, 3) uint8.
        labels: (n,) integer labels.
        indices: (n,) sample indices.

    Returns:
        The hex sha256 of the shard file (recorded in the manifest; never a read-back).

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
    return write_npz_sha256(
        shard_path(run_dir, chunk),
        images=np.ascontiguousarray(images),
        labels=np.asarray(labels, dtype=np.int64),
        indices=np.asarray(indices, dtype=np.int64),
    )


def shard_problem(
    path: str | Path,
    plan: SamplePlan,
    chunk: int,
    image_shape: tuple[int, int, int],
    *,
    deep: bool = False,
    sha256: str | None = None,
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
        deep: also read the pixel data (the zip CRC is then checked too, which catches flipped
            bytes and truncation), in one read of the file (`shard_check`); by default only the
            array headers and the small members are read.
        sha256: the file's recorded sha256 (the manifest's), checked when given (a deep check).
    """
    if deep or sha256 is not None:
        return shard_check(path, plan, chunk, image_shape, sha256)[0]
    path = Path(path)
    problem = npz_problem(path, _wanted(plan, chunk, image_shape))
    if problem is not None:
        return problem
    try:
        data = load_npz(path, ["indices", "labels"])
    except NpzError as err:
        return f"unreadable ({err.__cause__ or err})"
    return _plan_problem(plan, chunk, data["indices"], data["labels"])


def _wanted(plan: SamplePlan, chunk: int, image_shape: tuple[int, ...]) -> dict[str, tuple]:
    n = len(plan.chunk_indices(chunk))
    return {
        "images": ((n, *image_shape), np.uint8),
        "labels": ((n,), np.int64),
        "indices": ((n,), np.int64),
    }


def _plan_problem(plan: SamplePlan, chunk: int, indices: np.ndarray, labels: np.ndarray):
    expected = plan.chunk_indices(chunk)
    if not np.array_equal(indices, expected):
        return f"indices differ from chunk_indices({chunk})"
    if not np.array_equal(labels, plan.labels(expected)):
        return "labels differ from the plan's labels"
    return None


def shard_check(
    path: str | Path,
    plan: SamplePlan,
    chunk: int,
    image_shape: tuple[int, ...],
    sha256: str | None = None,
) -> tuple[str | None, str | None]:
    """`(problem, sha256)` of a shard from one full read: digest, zip CRC, headers, plan.

    Returns:
        `(None, digest)` for a valid shard; `(reason, digest or None)` otherwise (`"missing"`
        for no file).
    """
    path = Path(path)
    if not path.is_file():
        return "missing", None
    try:
        data, digest = load_npz_verified(path, keys=None)
    except NpzError as err:
        return f"unreadable ({err.__cause__ or err})", None
    wanted = _wanted(plan, chunk, image_shape)
    if set(data) != set(wanted):
        return f"keys {sorted(data)} != {sorted(wanted)}", digest
    for key, (shape, dtype) in wanted.items():
        if (data[key].shape, data[key].dtype) != (tuple(shape), np.dtype(dtype)):
            got = data[key]
            return f"{key} is {got.dtype} {got.shape}, expected {np.dtype(dtype)} {shape}", digest
    if sha256 is not None and digest != sha256:
        return "sha256 differs from the one recorded in the manifest", digest
    return _plan_problem(plan, chunk, data["indices"], data["labels"]), digest


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


def _shard_files(run_dir: Path, plan: SamplePlan | None) -> list[tuple[int, Path]]:
    # With a plan: exactly its chunks (shards of a larger N beyond them are ignored, not read).
    if plan is not None:
        return [(c, shard_path(run_dir, c)) for c in range(plan.num_chunks)]
    files = []
    for path in (run_dir / "shards").glob("chunk_*.npz"):
        stem = path.stem.removeprefix("chunk_")
        if stem.isdigit():
            files.append((int(stem), path))
    return sorted(files)


_SHARD_FIX = "rerun the sample stage with the same command: it regenerates the shard"


def read_shard(path: str | Path, sha256: str | None = None) -> list[np.ndarray]:
    """`[images, labels, indices]` of one shard, read once and checked against `sha256` first.

    Raises:
        FileNotFoundError: no such file.
        NpzError: the file is damaged or differs from `sha256` (named, with the fix).
    """
    data, _ = load_npz_verified(path, sha256, SHARD_KEYS, fix=_SHARD_FIX)
    return [data[key] for key in SHARD_KEYS]


def iter_run_images(
    run_dir: str | Path,
    batch_size: int,
    plan: SamplePlan | None = None,
    shard_sha256: dict[str, str] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stream a run's samples in index order, in batches of `batch_size` (the last may be short).

    Memory stays bounded by one shard plus one batch. Shards are read in chunk order and must
    continue each other without gaps, so the features stage sees every sample once, in order.

    Args:
        run_dir: the run directory (holding `shards/`).
        batch_size: images per yielded batch (> 0).
        plan: read exactly this plan's chunks (None: every shard file present).
        shard_sha256: `{shard file name: sha256}` (the manifest's); each shard is checked
            against it before it is read.

    Yields:
        `(images_NHWC uint8, labels int64, indices int64)`.

    Raises:
        FileNotFoundError: the run has no shards, or a chunk of `plan` is missing.
        IncompleteRunError: a shard's indices do not continue the previous shard's.
        NpzError: a shard is damaged or differs from its recorded sha256 (named, with the fix).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be positive")
    run_dir = Path(run_dir)
    files = _shard_files(run_dir, plan)
    if not files or not files[0][1].is_file():
        raise FileNotFoundError(f"no shards under {run_dir / 'shards'}; sample the run first")
    pending: list[np.ndarray] | None = None
    next_index = 0
    for _, path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; re-run the sample stage to complete it")
        arrays = read_shard(path, None if shard_sha256 is None else shard_sha256[path.name])
        indices = arrays[2]
        if len(indices) and not np.array_equal(
            indices, np.arange(next_index, next_index + len(indices))
        ):
            raise IncompleteRunError(
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
    missing = [c for c in range(plan.num_chunks) if not shard_path(run_dir, c).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir / 'shards'} is incomplete: missing chunks {missing[:10]}; re-run the "
            "sample stage"
        )


def images_sha256(
    run_dir: str | Path, plan: SamplePlan, shard_sha256: dict[str, str] | None = None
) -> str:
    """sha256 of all image bytes (uint8 NHWC, index order): a content key independent of files."""
    import hashlib

    run_dir = Path(run_dir)
    _check_complete(run_dir, plan)
    digest = hashlib.sha256()
    for images, _, _ in iter_run_images(run_dir, plan.chunk_size, plan, shard_sha256):
        digest.update(np.ascontiguousarray(images).reshape(-1).data)
    return digest.hexdigest()


def _npy_member(archive: zipfile.ZipFile, name: str) -> Any:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = _ZIP_ATTR
    return archive.open(info, "w", force_zip64=True)


def export_samples_npz(
    run_dir: str | Path,
    plan: SamplePlan,
    *,
    hasher: Any = None,
    shard_sha256: dict[str, str] | None = None,
) -> Path:
    """Write ADM's `samples.npz`; see `export_samples_npz_sha256` (this returns the path only)."""
    return export_samples_npz_sha256(run_dir, plan, hasher=hasher, shard_sha256=shard_sha256)[0]


def export_samples_npz_sha256(
    run_dir: str | Path,
    plan: SamplePlan,
    *,
    hasher: Any = None,
    shard_sha256: dict[str, str] | None = None,
    observe: Callable[[np.ndarray], None] | None = None,
) -> tuple[Path, str]:
    """Write ADM's `samples.npz` (`arr_0`: exactly N images in index order, plus `labels`).

    The file is streamed shard by shard into an uncompressed zip (memory: one shard, not the
    9.8 GB of 50k 256² images), written through the atomic writer, and has fixed member
    timestamps, so identical images give a byte-identical file. It loads with `np.load` and with
    ADM's `evaluator.py` (which reads `arr_0` as NHWC uint8). Its sha256 is computed while it is
    written (`HashingWriter`, with the two zip headers computed ahead from the shards' CRCs), so
    each shard is read once and the export is never read back; only where that cannot be vouched
    for (no system zlib) is the file hashed after writing.

    Args:
        run_dir: the run directory; the file goes to `<run_dir>/samples.npz`.
        plan: the run's plan (defines N and the chunks that are read).
        hasher: optional `hashlib` object updated with the image bytes in index order.
        shard_sha256: recorded shard sha256s; each shard is verified as it is read (one read).
        observe: called with every chunk of images in index order (e.g. the sample linter's
            scanner), so work on the pixels shares this read.

    Returns:
        The path of `samples.npz` and its sha256.

    Raises:
        FileNotFoundError: a chunk's shard is missing.
        IncompleteRunError: the shards do not hold exactly indices 0..N-1 in order.
        NpzError: a shard is damaged or differs from its recorded sha256.
    """
    run_dir = Path(run_dir)
    _check_complete(run_dir, plan)
    image_shape = npz_array_header(shard_path(run_dir, 0), "images")[0][1:]
    header = {"descr": "|u1", "fortran_order": False, "shape": (plan.num_samples, *image_shape)}
    out = run_dir / SAMPLES_NPZ
    with atomic_open(out) as handle:
        writer = HashingWriter(handle, _export_headers(run_dir, plan, header))
        _write_export(writer, run_dir, plan, header, hasher, shard_sha256, observe)
    digest = writer.digest()
    return out, digest if digest is not None else sha256_file(out)


def _write_export(
    writer, run_dir: Path, plan: SamplePlan, header: dict, hasher, shas, observe=None
) -> None:
    shape, labels, count = header["shape"], [], 0
    # One read per shard of the plan (verified against its sha256 as it is read); shards of a
    # larger N beyond the plan are not read.
    stream = iter_run_images(run_dir, plan.chunk_size, plan, shas)
    with zipfile.ZipFile(writer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with _npy_member(archive, "arr_0.npy") as member:
            np.lib.format.write_array_header_1_0(member, header)
            for images, labels_n, _ in stream:
                if images.shape[1:] != shape[1:]:
                    raise IncompleteRunError(
                        f"{run_dir / 'shards'} mixes image sizes ({images.shape[1:]} and "
                        f"{shape[1:]}): a foreign shard; rerun the sample stage"
                    )
                data = np.ascontiguousarray(images).reshape(-1).data
                member.write(data)
                if hasher is not None:
                    hasher.update(data)
                if observe is not None:
                    observe(images)
                labels.append(labels_n)
                count += len(images)
            if count != plan.num_samples:
                raise IncompleteRunError(
                    f"{run_dir / 'shards'} holds {count} images, the plan {plan.num_samples}; "
                    "rerun the sample stage to complete the run"
                )
        with _npy_member(archive, "labels.npy") as member:
            np.lib.format.write_array(member, np.concatenate(labels).astype(np.int64))


def _export_headers(run_dir: Path, plan: SamplePlan, header: dict) -> dict[int, bytes]:
    # The two local headers zipfile rewrites when each member closes, computed ahead: arr_0's
    # CRC from the shards' recorded member CRCs (no image data read), labels' from the plan.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    npy_header = buffer.getvalue()
    crc, size = zlib.crc32(npy_header), len(npy_header)
    for chunk in range(plan.num_chunks):
        part = array_crc32(shard_path(run_dir, chunk), "images")
        crc = None if part is None or crc is None else crc32_combine(crc, *part)
        size += 0 if part is None else part[1]
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, plan.labels(range(plan.num_samples)).astype(np.int64))
    labels = buffer.getvalue()
    if crc is None:
        return {}
    first = stored_member_header("arr_0.npy", size, crc, _ZIP_EPOCH, _ZIP_ATTR)
    second = stored_member_header("labels.npy", len(labels), zlib.crc32(labels), _ZIP_EPOCH,
                                  _ZIP_ATTR)  # fmt: skip
    return {0: first, len(first) + size: second}
