"""Shared test helper: a run's shard contents by array bytes (file bytes hold zip timestamps)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def shard_contents(directory: Path) -> dict[str, str]:
    """sha256 of every shard's arrays (images, labels, indices) under `<directory>/shards`."""
    out = {}
    for path in sorted((Path(directory) / "shards").glob("chunk_*.npz")):
        with np.load(path) as data:
            blob = b"".join(data[key].tobytes() for key in ("images", "labels", "indices"))
        out[path.name] = hashlib.sha256(blob).hexdigest()
    return out
