"""Shared, process-wide cached random-weight Inception assets for the metrics/feature tests.

CPU Inception costs ~0.2-0.6 s per image on 2 cores, so every test file builds the network once
through these cached helpers; nothing here uses the network or real weights.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ssg_eval import smoke
from ssg_eval.features.inception import build_inception, make_random_inception_weights


@functools.lru_cache(maxsize=1)
def asset_dir() -> Path:
    """A temporary folder removed at interpreter exit."""
    path = Path(tempfile.mkdtemp(prefix="ssg_eval_inception_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.lru_cache(maxsize=1)
def random_weights_path() -> Path:
    """A random-weight state dict in torch-fidelity's layout (seed 0)."""
    path = asset_dir() / "random_inception.pth"
    make_random_inception_weights(path, seed=0)
    return path


@functools.lru_cache(maxsize=1)
def random_inception() -> torch.nn.Module:
    """`build_inception` on the random weights, on CPU."""
    return build_inception(str(random_weights_path()), torch.device("cpu"))


def synthetic_images(num: int, size: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """Smooth random uint8 NHWC images (cosines plus noise); `spread` scales the contrast."""
    return smoke.synthetic_images(num, size, seed, spread=spread, noise=10.0)
