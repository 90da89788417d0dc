"""The one atomic writer and the one JSON reader of the codebase (hashes: `utils.hashing`).

Every artifact is written to a per-process unique temp file `<name>.<pid>.<random>.tmp` next to
its destination, fsynced and `os.replace`d, so two writers never share a temp file and a crash
never leaves a partial file under the real name. This module must not know run layouts or configs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ssg_eval.errors import UnreadableFileError, UnwritablePathError

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_npz",
    "atomic_write_text",
    "clean_stale_temps",
    "disk_error",
    "ensure_dir",
    "read_json",
    "temp_destination",
]

# `<name>.<pid>.<8 hex>.tmp` (this writer) or `<name>.tmp` (older writers): both are temp files.
_TEMP_RE = re.compile(r"^(?P<name>.+?)(?:\.(?P<pid>\d+)\.[0-9a-f]{8})?\.tmp$")


# errno -> what the user can do about it (anything else is not a user's condition: kept as is)
_DISK_FIXES = {
    errno.ENOSPC: "no space left on the device; free space or point paths.results elsewhere",
    errno.EDQUOT: "disk quota exceeded; free space or point paths.results elsewhere",
    errno.EFBIG: "file too large for this filesystem or the process's file-size limit (ulimit "
    "-f); raise the limit or point paths.results elsewhere",
    errno.EACCES: "permission denied; make the directory writable or point paths.results elsewhere",
    errno.EPERM: "operation not permitted; make the directory writable or point paths.results "
    "elsewhere",
    errno.EROFS: "read-only filesystem; point paths.results to a writable place",
    errno.ENOTDIR: "a path component is a file, not a directory; move that file or point "
    "paths.results elsewhere",
    errno.EEXIST: "a file is in the way of a directory; move it or point paths.results elsewhere",
}


def disk_error(path: str | Path, err: OSError) -> OSError:
    """`err` as an `UnwritablePathError` naming `path` and the fix, when the user can act on it.

    Args:
        path: the file or directory that was being written.
        err: the error the write raised.

    Returns:
        An `UnwritablePathError` for a full disk, a size limit, permissions, a read-only
        filesystem or a file in the way; `err` itself otherwise (a bug keeps its traceback).
    """
    fix = _DISK_FIXES.get(err.errno or -1)
    if fix is None or isinstance(err, UnwritablePathError):
        return err
    return UnwritablePathError(err.errno, f"cannot write {path}: {fix} ({err.strerror})")


def ensure_dir(path: str | Path) -> Path:
    """`mkdir -p path`, with a full disk, permissions or a file in the way as one user line.

    Raises:
        UnwritablePathError: the directory cannot be created (names it and the fix).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(path, err) from None
    return path


def temp_path(path: Path) -> Path:
    """A temp name next to `path`, unique to this process and call."""
    return path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a binary handle whose content replaces `path` atomically when the block succeeds.

    The data goes to `temp_path(path)`, is fsynced, then `os.replace`d onto `path`; on any error
    the temp file is removed and `path` is left as it was.

    Raises:
        UnwritablePathError: the directory is not writable, the disk is full or a size limit is
            reached (the message names the file and the fix).
    """
    path = Path(path)
    tmp = temp_path(path)
    ensure_dir(path.parent)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise disk_error(path, err) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path`."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically; returns `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON atomically with sorted keys; floats keep full precision (repr round-trip)."""
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an uncompressed npz atomically.

    Args:
        path: destination ending in `.npz`.
        **arrays: the arrays to store under their keyword names.

    Returns:
        The destination path.
    """
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)
    return Path(path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file.

    Raises:
        FileNotFoundError: the file is missing (named).
        UnreadableFileError: the file is not valid JSON (named, with the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableFileError(
            f"{path} is not readable JSON ({err}); it is a damaged artifact: delete it and "
            "rerun the stage that writes it (or rerun with overwrite=true)"
        ) from err


def temp_destination(name: str) -> str | None:
    """The destination file name of a temp file name (`a.npz.12.0a1b2c3d.tmp` -> `a.npz`)."""
    match = _TEMP_RE.match(name)
    return None if match is None else match.group("name")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(
    directory: str | Path, *, recursive: bool = True, min_age_s: float = 0.0
) -> list[Path]:
    """Remove temp files left by writers that died (their pid is gone, or an old-style name).

    Call it only while holding the directory's run lock: then no other process of this host
    writes there. A temp of a live pid is kept (it may be a rank of the same stage). A folder
    that other runs (and other hosts, whose pids mean nothing here) write unlocked, such as
    `results/cache`, passes `min_age_s`: a temp is removed only once it has not been written for
    that long, which no live writer's temp reaches (it is written, fsynced and renamed at once).

    Returns:
        The removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    now = time.time()
    for path in directory.rglob("*.tmp") if recursive else directory.glob("*.tmp"):
        match = _TEMP_RE.match(path.name)
        if match is None or not path.is_file():
            continue
        pid = match.group("pid")
        if pid is not None and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if min_age_s and now - path.stat().st_mtime < min_age_s:
                continue
            path.unlink()
            removed.append(path)
    return removed
