"""Luma of uint8 RGB images (ITU-R BT.601), shared by the frequency features and the spectra.

Pure numpy (importing it loads no torch or plotting backend); it must not read or write files.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LUMA_WEIGHTS", "to_grayscale"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


def to_grayscale(images_NHWC: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of uint8 RGB images, float64 (N, H, W) in [0, 255].

    Raises:
        ValueError: the input is not (N, H, W, 3) uint8.
    """
    images = np.asarray(images_NHWC)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}")
    return images.astype(np.float64) @ np.asarray(LUMA_WEIGHTS, dtype=np.float64)
