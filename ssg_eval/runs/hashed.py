"""One pass over an artifact's bytes: sha256 while writing, sha256 and parse from the same read.

`write_npz_sha256` serialises an npz in memory (the same bytes `np.savez` writes to a file),
hashes that buffer and writes it through the atomic writer; `HashingWriter` hashes a streamed file
(the ADM export) as it is written, with the zip headers that are rewritten after their member
announced ahead; `load_npz_verified` reads a file once, checks the digest and parses the arrays
from those bytes (zip CRC included). This module must not know run layouts or configs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import io
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.errors import NpzError
from ssg_eval.runs.io import atomic_open
from ssg_eval.runs.npz import DEFAULT_FIX

__all__ = [
    "HashingWriter",
    "array_crc32",
    "crc32_combine",
    "load_npz_verified",
    "read_verified",
    "stored_member_header",
    "write_npz_sha256",
]

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


class HashingWriter:
    """A seekable binary writer that computes the file's sha256 while the file is written.

    Bytes are hashed in file order as the writes reach them. zipfile writes each member's local
    header, then the data, then seeks back and rewrites the header with the CRC and sizes; the
    final bytes of such regions are passed as `ahead` (`{offset: final bytes}`) and hashed in
    their place, and the bytes finally written there are compared with them. `digest()` is the
    sha256 of the file as written, or None when a region ended otherwise or a byte outside the
    regions was written twice or out of order (the caller then hashes the file itself).
    """

    def __init__(self, raw: Any, ahead: dict[int, bytes] | None = None) -> None:
        self.raw = raw
        self.ahead = dict(sorted((ahead or {}).items()))
        self.written = {offset: bytearray(len(data)) for offset, data in self.ahead.items()}
        self.position = self.frontier = raw.tell()
        self.sha = hashlib.sha256()
        self.ordered = True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        count = self.raw.write(view)
        start, end = self.position, self.position + len(view)
        for offset, region in self.written.items():
            low, high = max(start, offset), min(end, offset + len(region))
            if low < high:
                region[low - offset : high - offset] = view[low - start : high - start]
        if start > self.frontier or (start < self.frontier and not self._in_region(start, end)):
            self.ordered = False
        while self.frontier < end and self.ordered:
            self._advance(view, start, end)
        self.position = end
        return count

    def _in_region(self, start: int, end: int) -> bool:
        return any(o <= start and end <= o + len(d) for o, d in self.ahead.items())

    def _advance(self, view: memoryview, start: int, end: int) -> None:
        for offset, data in self.ahead.items():
            if offset <= self.frontier < offset + len(data):  # hash the announced final bytes
                stop = offset + len(data)
                self.sha.update(data[self.frontier - offset :])
                self.frontier = stop
                return
        later = [o for o in self.ahead if o > self.frontier]
        stop = min([end, *later])
        self.sha.update(view[self.frontier - start : stop - start])
        self.frontier = stop

    def seek(self, offset: int, whence: int = 0) -> int:  # noqa: D102
        self.position = self.raw.seek(offset, whence)
        return self.position

    def tell(self) -> int:  # noqa: D102
        return self.position

    def flush(self) -> None:  # noqa: D102
        self.raw.flush()

    def seekable(self) -> bool:  # noqa: D102
        return True

    def digest(self) -> str | None:
        """The sha256 of what was written, or None when it cannot be vouched for."""
        same = all(bytes(self.written[o]) == d for o, d in self.ahead.items())
        return self.sha.hexdigest() if self.ordered and same else None


def stored_member_header(
    name: str, size: int, crc: int, date_time: tuple, external_attr: int
) -> bytes:
    """The final local header zipfile writes for an uncompressed zip64 member (`force_zip64`).

    zipfile's own `ZipInfo.FileHeader` on the values it sets when the member closes.
    """
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = external_attr
    info.flag_bits = 0
    info.file_size = info.compress_size = size
    info.CRC = crc
    return info.FileHeader(True)


@functools.lru_cache(maxsize=1)
def _libz_combine() -> Any:
    name = ctypes.util.find_library("z")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        combine = getattr(library, "crc32_combine64", None) or library.crc32_combine
    except (OSError, AttributeError):
        return None
    combine.restype = ctypes.c_ulong
    combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64]
    return combine


def crc32_combine(crc1: int, crc2: int, length2: int) -> int | None:
    """CRC-32 of `A + B` from `crc32(A)`, `crc32(B)` and `len(B)` (zlib's `crc32_combine`).

    Returns None where the system zlib cannot be loaded (callers then fall back to hashing).
    """
    combine = _libz_combine()
    return None if combine is None else int(combine(crc1, crc2, length2)) & 0xFFFFFFFF


def array_crc32(path: str | Path, key: str) -> tuple[int, int] | None:
    """CRC-32 and length of an uncompressed npz member's array bytes (its .npy header excluded).

    Read from the member's zip record and its .npy header only (no array data): the record's
    CRC covers header + data, and the header's share is removed with `crc32_combine`.

    Returns:
        `(crc32, length)`, or None when the member is compressed or zlib cannot be loaded.
    """
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                np.lib.format.read_array_header_1_0(member)
            else:
                np.lib.format.read_array_header_2_0(member)
            header_length = member.tell()
            member.seek(0)
            header = member.read(header_length)
    length = info.file_size - header_length
    shifted = crc32_combine(zlib.crc32(header), 0, length)
    return None if shifted is None else (info.CRC ^ shifted, length)
