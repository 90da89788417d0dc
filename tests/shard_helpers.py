"""Shared test helper: a run's shard contents by array bytes (file bytes hold zip timestamps)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
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


class SimulatedCrash(RuntimeError):
    """The crash `crash_after_shards` injects: a stand-in for a killed sampling process."""


@contextlib.contextmanager
def crash_after_shards(count: int) -> Iterator[None]:
    """Within the block, `run_rank` crashes once `count` shards are written (atomically, whole).

    The sampler's shard writer is wrapped: the shard is written, then `SimulatedCrash` surfaces
    in the sampling loop when it collects that write, exactly where a dying process would stop.
    """
    from ssg_eval.sampling import runner

    original = runner._write_chunk
    written = []

    def write_then_crash(*args):
        count_written = original(*args)
        written.append(count_written)
        if len(written) >= count:
            raise SimulatedCrash(f"simulated crash after {count} written shard(s)")
        return count_written

    runner._write_chunk = write_then_crash
    try:
        yield
    finally:
        runner._write_chunk = original
