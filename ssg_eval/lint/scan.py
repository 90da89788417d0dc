"""One streaming pass over an image array: per-image range and digest, JPEG blockiness on a subset.

Works on any (N, H, W, C) array, memory-mapped ones included, reading `chunk` images at a time
(peak memory: one chunk), so a 9.8 GB file is never loaded whole; no file I/O of its own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as JPEG's Y channel


@dataclass
class ImageScan:
    """What the image checks need, from one pass.

    Attributes:
        minimum, maximum: (N,) per-image smallest and largest value.
        digests: (N,) SHA-1 of each image's bytes (exact-duplicate detection).
        subset: (K,) indices of the images measured for blockiness and channel means.
        blockiness: (K,) `blockiness` of those images (NaN when smaller than 16 px).
        channel_means: (C,) mean value per channel over the subset.
        seconds: wall time of the pass.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    digests: list[bytes]
    subset: np.ndarray
    blockiness: np.ndarray
    channel_means: np.ndarray
    seconds: float


def subset_indices(num: int, size: int) -> np.ndarray:
    """`size` indices spread evenly over 0..num-1 (all of them when num <= size)."""
    if num <= size:
        return np.arange(num)
    return np.unique(np.linspace(0, num - 1, size).round().astype(np.int64))


def _luma(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float32)
    return pixels @ LUMA if pixels.shape[-1] == 3 else pixels[..., 0]


def _edge_ratio(images_KHWC: np.ndarray) -> np.ndarray:
    """Mean |luma step| into columns ≡ 8 mod 16 over the mean step into columns ≡ 4 mod 8."""
    width = images_KHWC.shape[2]
    boundary = np.arange(8, width, 16)  # step from column j-1 to j: a JPEG block edge
    middle = np.arange(4, width, 8)  # the middle of a JPEG block (4 and 12 mod 16)

    def steps(cols: np.ndarray) -> np.ndarray:
        after, before = _luma(images_KHWC[:, :, cols]), _luma(images_KHWC[:, :, cols - 1])
        return np.abs(after - before).mean(axis=(1, 2))

    return (steps(boundary) + 1e-3) / (steps(middle) + 1e-3)


def blockiness(images_KHWC: np.ndarray) -> np.ndarray:
    """JPEG 8×8 grid strength per image: ≈ 1 without a grid, > 1 with one.

    The luma step across a JPEG block edge (columns and rows ≡ 8 mod 16) is compared with the
    step in the middle of a block (≡ 4 mod 8), averaged over both directions. Edges at multiples
    of 16 are left out so a VQ decoder's 16-px patch grid is not mistaken for JPEG, and both sets
    are multiples of 4 so 2× or 4× upsampling affects them alike. Only the columns and rows
    involved are converted to luma.

    Args:
        images_KHWC: (K, H, W, C) images, C = 3 (RGB) or 1.

    Returns:
        (K,) float64; NaN for images under 16 px on a side.
    """
    images = np.asarray(images_KHWC)
    if images.shape[1] < 16 or images.shape[2] < 16:
        return np.full(len(images), np.nan)
    ratio = (_edge_ratio(images) + _edge_ratio(np.swapaxes(images, 1, 2))) / 2
    return ratio.astype(np.float64)


def _digest(image: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(image)).digest()  # releases the GIL


def iter_chunks(images: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive (≤ chunk, ...) slices of an array or memory map."""
    for start in range(0, len(images), chunk):
        yield np.asarray(images[start : start + chunk])


def scan_images(
    chunks: Iterable[np.ndarray],
    num_images: int,
    *,
    subset_size: int = 1000,
    workers: int = 2,
    progress: bool = False,
) -> ImageScan:
    """Read every image once: min/max, SHA-1, and blockiness/channel means on a spread subset.

    Args:
        chunks: consecutive (n, H, W, C) arrays covering the file in order (`iter_chunks` of a
            memory map, or a streamed compressed member); one is held at a time.
        num_images: N, the total over the chunks.
        subset_size: images measured for blockiness and channel means.
        workers: threads hashing a chunk (hashlib releases the GIL).
        progress: tqdm bar over images.

    Returns:
        An `ImageScan`.

    Raises:
        ValueError: the chunks hold another number of images than `num_images`.
    """
    started = time.perf_counter()
    num = int(num_images)
    minimum, maximum = np.empty(num, dtype=np.float64), np.empty(num, dtype=np.float64)
    digests: list[bytes] = []
    subset = subset_indices(num, subset_size)
    block_values: list[np.ndarray] = []
    channel_sums = None
    start = 0
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=num, unit="img", desc="ssg-lint", disable=not progress) as bar,
    ):
        for part in chunks:
            if start + len(part) > num:
                raise ValueError(f"the image stream holds more than {num} images")
            flat = part.reshape(len(part), -1)
            minimum[start : start + len(part)] = flat.min(axis=1)
            maximum[start : start + len(part)] = flat.max(axis=1)
            digests.extend(pool.map(_digest, part))
            picked = subset[(subset >= start) & (subset < start + len(part))] - start
            if len(picked):
                block_values.append(blockiness(part[picked]))
                sums = part[picked].reshape(-1, part.shape[-1]).sum(0, dtype=np.float64)
                channel_sums = sums if channel_sums is None else channel_sums + sums
            start += len(part)
            bar.update(len(part))
    if start != num:
        raise ValueError(f"the image stream held {start} images, expected {num}")
    pixels = len(subset) * int(np.prod(part.shape[1:3])) if num else 1
    return ImageScan(
        minimum=minimum,
        maximum=maximum,
        digests=digests,
        subset=subset,
        blockiness=np.concatenate(block_values) if block_values else np.empty(0),
        channel_means=np.zeros(0) if channel_sums is None else channel_sums / pixels,
        seconds=time.perf_counter() - started,
    )
