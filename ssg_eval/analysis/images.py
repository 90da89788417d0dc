"""Reading reference and sample images for the spectral analysis: npz headers and streamed batches.

This module reads uint8 (N, H, W, 3) images from an ADM-style npz (without loading the whole
array) or a folder of PNGs; it must not compute spectra or write files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ssg_eval.errors import InputFileError
from ssg_eval.runs.npz import npz_array_header

IMAGE_BATCH = 256  # images per batch when streaming


def _png_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")


def iter_png_images(folder: Path, batch: int = IMAGE_BATCH) -> Iterator[np.ndarray]:
    """Stream a folder of PNGs (sorted by name) as uint8 RGB (N, H, W, 3) batches."""
    from PIL import Image

    files = _png_files(folder)
    for start in range(0, len(files), batch):
        arrays = []
        for path in files[start : start + batch]:
            with Image.open(path) as image:
                arrays.append(np.asarray(image.convert("RGB")))
        yield np.stack(arrays)


def reference_image_shape(reference: Path) -> tuple[int, ...]:
    """(H, W, 3) of the reference images (arr_0 of an npz, or every PNG of a folder).

    Raises:
        FileNotFoundError: the reference is missing, or a folder holds no PNG.
        InputFileError: a malformed npz, or PNGs of different sizes.
    """
    if reference.is_dir():
        from PIL import Image

        files = _png_files(reference)
        if not files:
            raise FileNotFoundError(f"reference folder {reference} holds no .png files")
        sizes = {}
        for path in files:
            with Image.open(path) as image:
                sizes.setdefault(image.size, path)
        if len(sizes) > 1:
            raise InputFileError(
                f"reference PNGs differ in size: {sorted(sizes)} (e.g. "
                f"{[p.name for p in sizes.values()][:2]})"
            )
        width, height = next(iter(sizes))
        return (height, width, 3)
    if not reference.is_file():
        raise FileNotFoundError(
            f"reference {reference} not found; pass an ADM batch npz (arr_0) or a folder of PNGs"
        )
    shape, dtype = npz_array_header(reference, "arr_0")
    if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8 or shape[0] < 1:
        raise InputFileError(
            f"{reference}[arr_0] must be uint8 (N >= 1, H, W, 3); got {dtype} {shape}"
        )
    return tuple(shape[1:])
