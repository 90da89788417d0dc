"""The one npz reader and validator: member headers, memory maps, full reads with named errors.

A damaged npz (bad zip, CRC mismatch, truncation, missing key) raises `NpzError` naming the file
and the fix instead of a raw `BadZipFile` trace; this module must not know run layouts or configs.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.errors import NpzError

__all__ = [
    "load_npz",
    "npz_array_header",
    "npz_headers",
    "npz_keys",
    "npz_problem",
    "open_npz_array",
]

_ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes; last two: name and extra lengths
DEFAULT_FIX = "delete it and rerun the stage that writes it"
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile)


def _exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")


def npz_keys(path: str | Path, fix: str = DEFAULT_FIX) -> list[str]:
    """Member names of an npz without the `.npy` suffix.

    Raises:
        FileNotFoundError: no such file. NpzError: not a readable zip.
    """
    path = Path(path)
    _exists(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return [n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")]
    except _READ_ERRORS as err:
        raise NpzError(f"{path} is not a readable npz file ({err}); {fix}") from err


def _read_header(handle: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f"{where}: unsupported .npy format version {version}")


def _member(archive: zipfile.ZipFile, path: Path, key: str, fix: str) -> zipfile.ZipInfo:
    name = f"{key}.npy"
    if name not in archive.namelist():
        keys = sorted(n.removesuffix(".npy") for n in archive.namelist())
        raise NpzError(f"{path} has no key {key!r} (keys present: {keys}); {fix}")
    return archive.getinfo(name)


def npz_headers(path: str | Path, fix: str = DEFAULT_FIX) -> dict[str, tuple[tuple, np.dtype]]:
    """`{key: (shape, dtype)}` of every member, read from the .npy headers only (no pixel data).

    Raises:
        FileNotFoundError: no such file. NpzError: not a readable npz.
    """
    path = Path(path)
    _exists(path)
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as handle:
                    shape, _, dtype = _read_header(handle, f"{path}[{info.filename}]")
                headers[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
    except _READ_ERRORS as err:
        raise NpzError(f"{path} is not a readable npz file ({err}); {fix}") from err
    return headers


def npz_array_header(
    path: str | Path, key: str, fix: str = DEFAULT_FIX
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of `key` in an npz without reading its data.

    Raises:
        FileNotFoundError: no such file. NpzError: not an npz, or no such key (keys listed).
    """
    path = Path(path)
    _exists(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = _member(archive, path, key, fix)
            with archive.open(info) as handle:
                shape, _, dtype = _read_header(handle, f"{path}[{key}]")
    except NpzError:
        raise
    except _READ_ERRORS as err:
        raise NpzError(f"{path} is not a readable npz file ({err}); {fix}") from err
    return tuple(shape), dtype


def open_npz_array(path: str | Path, key: str, fix: str = DEFAULT_FIX) -> np.ndarray:
    """`key` of an npz as a read-only memory map when stored uncompressed, else loaded once.

    `np.load` cannot memory-map npz members; an uncompressed member is a plain npy inside the
    zip, so its data offset is computed from the local zip header and mapped directly.

    Raises:
        FileNotFoundError, NpzError: as `npz_array_header`.
    """
    path = Path(path)
    shape, dtype = npz_array_header(path, key, fix)
    with zipfile.ZipFile(path) as archive:
        info = _member(archive, path, key, fix)
        with archive.open(info) as member:
            _, fortran, _ = _read_header(member, f"{path}[{key}]")
            header_len = member.tell()
    if info.compress_type != zipfile.ZIP_STORED or dtype.hasobject:
        return load_npz(path, [key], fix)[key]
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        fields = _ZIP_LOCAL_HEADER.unpack(raw.read(_ZIP_LOCAL_HEADER.size))
    offset = info.header_offset + _ZIP_LOCAL_HEADER.size + fields[-2] + fields[-1] + header_len
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype=dtype)
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def load_npz(
    path: str | Path, keys: list[str] | tuple[str, ...] | None = None, fix: str = DEFAULT_FIX
) -> dict[str, np.ndarray]:
    """Read `keys` (all when None) in full; the zip CRC of every read member is checked.

    Raises:
        FileNotFoundError: no such file.
        NpzError: bad zip, CRC mismatch, truncation or a missing key, naming the file and `fix`.
    """
    path = Path(path)
    _exists(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            wanted = list(data.files if keys is None else keys)
            missing = [k for k in wanted if k not in data.files]
            if missing:
                raise NpzError(
                    f"{path} has no key {missing[0]!r} (keys present: {sorted(data.files)}); {fix}"
                )
            return {key: data[key] for key in wanted}
    except NpzError:
        raise
    except _READ_ERRORS as err:
        raise NpzError(f"{path} is damaged ({type(err).__name__}: {err}); {fix}") from err


def npz_problem(
    path: str | Path,
    expected: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None,
    *,
    deep: bool = False,
) -> str | None:
    """None when `path` is a readable npz with exactly the `expected` headers, else the reason.

    Args:
        path: the npz.
        expected: `{key: (shape, dtype)}`; None checks readability only.
        deep: also read every member in full (zip CRC, truncation).

    Returns:
        `"missing"`, a one-phrase reason, or None.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        headers = npz_headers(path)
        if expected is not None:
            if set(headers) != set(expected):
                return f"keys {sorted(headers)} != {sorted(expected)}"
            for key, (shape, dtype) in expected.items():
                if headers[key] != (tuple(shape), np.dtype(dtype)):
                    got_shape, got_dtype = headers[key]
                    return f"{key} is {got_dtype} {got_shape}, expected {np.dtype(dtype)} {shape}"
        if deep:
            load_npz(path)
    except NpzError as err:
        return f"unreadable ({err.__cause__ or err})"
    return None
