"""The one sha256 helper of the codebase: streamed file hashes, memoised per process.

Checkpoints, weights, reference batches and shards are all identified by content through this
function; it reads files and nothing else, and knows no run layout.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 24) -> str:
    """Hex sha256 of a file, streamed; memoised on (resolved path, size, mtime).

    Large read-only inputs (checkpoints, the reference batch, Inception weights) are then hashed
    once per process even when every run of a suite asks for them.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(chunk_bytes):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]
