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
        block_steps: (K, 2) `block_steps` of those images (NaN rows under 16 px).
        channel_means: (C,) mean value per channel over the subset.
        seconds: wall time of the pass.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    digests: list[bytes]
    subset: np.ndarray
    block_steps: np.ndarray
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


def _steps(images_KHWC: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per image, the mean |luma step| from column j − 1 to column j over `cols`."""
    after, before = _luma(images_KHWC[:, :, cols]), _luma(images_KHWC[:, :, cols - 1])
    return np.abs(after - before).mean(axis=(1, 2))


def block_steps(images_KHWC: np.ndarray) -> np.ndarray:
    """Per image: mean luma step across JPEG block edges and inside blocks, both directions.

    Edges are the columns and rows ≡ 8 mod 16 (a JPEG block edge); the inside is ≡ 4 mod 8 (the
    middle of a block). Multiples of 16 are left out so a VQ decoder's 16-px patch seams are not
    counted as JPEG edges, and both sets are multiples of 4 so 2× or 4× upsampling affects them
    alike. Only the columns and rows involved are converted to luma.

    Args:
        images_KHWC: (K, H, W, C) images, C = 3 (RGB) or 1.

    Returns:
        (K, 2) float64 `[edge step, inside step]`; NaN rows for images under 16 px on a side.
    """
    images = np.asarray(images_KHWC)
    if images.shape[1] < 16 or images.shape[2] < 16:
        return np.full((len(images), 2), np.nan)
    out = np.zeros((len(images), 2))
    for view in (images, np.swapaxes(images, 1, 2)):  # columns, then rows
        width = view.shape[2]
        out[:, 0] += _steps(view, np.arange(8, width, 16)) / 2
        out[:, 1] += _steps(view, np.arange(4, width, 8)) / 2
    return out


def blockiness(steps_K2: np.ndarray) -> float:
    """JPEG 8×8 grid strength of a set: Σ edge steps / Σ inside steps (≈ 1 without a grid).

    Pooled over the images (a ratio of sums), so small images with few block edges still give a
    stable figure. NaN when no image was measured.
    """
    steps = np.asarray(steps_K2, dtype=np.float64).reshape(-1, 2)
    steps = steps[np.isfinite(steps).all(axis=1)]
    if len(steps) == 0:
        return float("nan")
    return float(steps[:, 0].sum() / max(steps[:, 1].sum(), 1e-12))


def _digest(image: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(image)).digest()  # releases the GIL


def iter_chunks(images: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive (≤ chunk, ...) slices of an array or memory map."""
    for start in range(0, len(images), chunk):
        yield np.asarray(images[start : start + chunk])


class ImageScanner:
    """The streaming half of `scan_images`: feed consecutive chunks with `add`, then `result`.

    The sample stage feeds it the chunks it is exporting anyway, so a run's image checks cost no
    read of their own (`ssg_eval.lint.preflight`).

    Args:
        num_images: N, the total over the chunks.
        subset_size: images measured for blockiness and channel means.
        workers: threads hashing a chunk (hashlib releases the GIL).
    """

    def __init__(self, num_images: int, *, subset_size: int = 1000, workers: int = 2):
        self.started = time.perf_counter()
        self.num = int(num_images)
        self.minimum = np.empty(self.num, dtype=np.float64)
        self.maximum = np.empty(self.num, dtype=np.float64)
        self.digests: list[bytes] = []
        self.subset = subset_indices(self.num, subset_size)
        self.block_values: list[np.ndarray] = []
        self.channel_sums: np.ndarray | None = None
        self.start, self.pixels_per_image, self.workers = 0, 0, workers

    def add(self, part: np.ndarray) -> None:
        """Scan the next (n, H, W, C) chunk.

        Raises:
            ValueError: the chunks hold more than `num_images` images.
        """
        start, count = self.start, len(part)
        if start + count > self.num:
            raise ValueError(f"the image stream holds more than {self.num} images")
        flat = part.reshape(count, -1)
        self.minimum[start : start + count] = flat.min(axis=1)
        self.maximum[start : start + count] = flat.max(axis=1)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            self.digests.extend(pool.map(_digest, part))
        picked = self.subset[(self.subset >= start) & (self.subset < start + count)] - start
        if len(picked):
            self.block_values.append(block_steps(part[picked]))
            sums = part[picked].reshape(-1, part.shape[-1]).sum(0, dtype=np.float64)
            self.channel_sums = sums if self.channel_sums is None else self.channel_sums + sums
        self.pixels_per_image = int(np.prod(part.shape[1:3]))
        self.start += count

    def result(self) -> ImageScan:
        """The scan of every image added.

        Raises:
            ValueError: fewer than `num_images` images were added.
        """
        if self.start != self.num:
            raise ValueError(f"the image stream held {self.start} images, expected {self.num}")
        pixels = len(self.subset) * self.pixels_per_image if self.num else 1
        blocks = np.concatenate(self.block_values) if self.block_values else np.empty((0, 2))
        return ImageScan(
            minimum=self.minimum,
            maximum=self.maximum,
            digests=self.digests,
            subset=self.subset,
            block_steps=blocks,
            channel_means=np.zeros(0) if self.channel_sums is None else self.channel_sums / pixels,
            seconds=time.perf_counter() - self.started,
        )


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
    scanner = ImageScanner(num_images, subset_size=subset_size, workers=workers)
    with tqdm(total=scanner.num, unit="img", desc="ssg-lint", disable=not progress) as bar:
        for part in chunks:
            scanner.add(part)
            bar.update(len(part))
    return scanner.result()


def scan_to_arrays(scan: ImageScan) -> dict[str, np.ndarray]:
    """The scan as plain arrays (what a run stores beside its `samples.npz`)."""
    digests = np.frombuffer(b"".join(scan.digests), dtype=np.uint8).reshape(len(scan.digests), -1)
    return {
        "minimum": scan.minimum,
        "maximum": scan.maximum,
        "digests": digests,
        "subset": scan.subset,
        "block_steps": scan.block_steps,
        "channel_means": scan.channel_means,
    }


def scan_from_arrays(arrays: dict[str, np.ndarray]) -> ImageScan:
    """The inverse of `scan_to_arrays` (the wall time of a stored scan is 0: nothing was read)."""
    return ImageScan(
        minimum=arrays["minimum"],
        maximum=arrays["maximum"],
        digests=[row.tobytes() for row in arrays["digests"]],
        subset=arrays["subset"],
        block_steps=arrays["block_steps"],
        channel_means=arrays["channel_means"],
        seconds=0.0,
    )
