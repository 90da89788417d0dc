"""Atomic file writes and small JSON/npz helpers used by every stage.

Every artifact is written to `<name>.tmp` and `os.replace`d, so a crash never leaves a partial
file behind; this module must not know about run layouts or configs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an uncompressed npz atomically (temp file, then rename).

    Args:
        path: destination ending in `.npz`.
        **arrays: the arrays to store under their keyword names.

    Returns:
        The destination path.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    return _atomic(Path(path), write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text atomically (temp file, then rename)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    return _atomic(Path(path), write)


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON atomically with sorted keys; floats keep full precision (repr round-trip)."""
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raises FileNotFoundError naming the path when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def sha256_of_file(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file, streamed in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
