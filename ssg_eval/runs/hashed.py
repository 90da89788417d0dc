"""One pass over an artifact's bytes: sha256 while writing, sha256 and parse from the same read.

`write_npz_sha256` serialises an npz in memory (the same bytes `np.savez` writes to a file),
hashes that buffer and writes it through the atomic writer, so the digest is known without
reading the file back; `load_npz_verified` reads a file once, checks the digest and parses the
arrays from those bytes (zip CRC included). This module must not know run layouts or configs.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from ssg_eval.errors import NpzError
from ssg_eval.runs.io import atomic_open
from ssg_eval.runs.npz import DEFAULT_FIX

__all__ = ["load_npz_verified", "read_verified", "write_npz_sha256"]

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile)


def write_npz_sha256(path: str | Path, **arrays: np.ndarray) -> str:
    """Write an uncompressed npz atomically and return the sha256 of the bytes written.

    Memory: the arrays plus one serialised copy (a shard, a feature file), never a read-back.

    Args:
        path: destination `.npz`.
        **arrays: the arrays under their keyword names.

    Returns:
        Hex sha256 of the file's bytes.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    view = buffer.getbuffer()
    digest = hashlib.sha256(view).hexdigest()
    with atomic_open(path) as handle:
        handle.write(view)
    del view  # release the export of the buffer before it is freed
    return digest


def read_verified(path: str | Path, sha256: str | None = None, fix: str = DEFAULT_FIX) -> tuple:
    """The file's bytes and their sha256, read once; checked against `sha256` when given.

    Raises:
        FileNotFoundError: no such file.
        NpzError: the bytes differ from `sha256` (names the file, both digests and `fix`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {fix}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise NpzError(
            f"{path} has sha256 {digest[:12]}..., {sha256[:12]}... was recorded when it was "
            f"written (the file changed since); {fix}"
        )
    return data, digest


def load_npz_verified(
    path: str | Path,
    sha256: str | None = None,
    keys: list[str] | tuple[str, ...] | None = None,
    fix: str = DEFAULT_FIX,
) -> tuple[dict[str, np.ndarray], str]:
    """Arrays of an npz and the file's sha256 from one read (digest first, then the zip CRC).

    Args:
        path: the npz.
        sha256: the digest recorded when the file was written (None: only computed).
        keys: members to return (None: all).
        fix: what the user should do, appended to every error.

    Returns:
        `({key: array}, sha256)`.

    Raises:
        FileNotFoundError: no such file.
        NpzError: another digest, a damaged zip (CRC, truncation) or a missing key.
    """
    data, digest = read_verified(path, sha256, fix)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            wanted = list(archive.files if keys is None else keys)
            missing = [k for k in wanted if k not in archive.files]
            if missing:
                raise NpzError(
                    f"{path} has no key {missing[0]!r} (keys present: {sorted(archive.files)}); "
                    f"{fix}"
                )
            return {key: archive[key] for key in wanted}, digest
    except NpzError:
        raise
    except _READ_ERRORS as err:
        raise NpzError(f"{path} is damaged ({type(err).__name__}: {err}); {fix}") from err
