"""Counting the bytes a block of code reads and writes under one folder (benchmarks and tests).

`count_io(root)` swaps `open`/`io.open` for the block so that every file under `root` is opened
through a counting raw file; it changes nothing that is read or written and must never be active
in a production run. Memory-mapped pages (`np.memmap`) and `os.read` on raw descriptors are not
counted.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssg_eval.runs.io import temp_destination

__all__ = ["IOCount", "count_io"]


class IOCount:
    """Bytes read and written per file (path relative to `root`), summed by the counting files.

    Attributes:
        root: the counted folder (resolved).
        read: `Counter` of bytes read per relative path.
        written: `Counter` of bytes written per relative path.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.read: Counter[str] = Counter()
        self.written: Counter[str] = Counter()

    def key(self, file: Any) -> str | None:
        """The path of `file` relative to `root` (temp files as their destination), else None."""
        if isinstance(file, int):
            return None
        path = Path(os.fsdecode(file)).resolve()
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        destination = temp_destination(relative.name)  # a temp file counts for its destination
        return str(relative if destination is None else relative.with_name(destination))

    def total_read(self, prefix: str = "") -> int:
        """Bytes read from files whose relative path starts with `prefix`."""
        return sum(v for k, v in self.read.items() if k.startswith(prefix))

    def total_written(self, prefix: str = "") -> int:
        """Bytes written to files whose relative path starts with `prefix`."""
        return sum(v for k, v in self.written.items() if k.startswith(prefix))


class _CountingFileIO(io.FileIO):
    """A raw file that adds the bytes it moves to an `IOCount`."""

    def __init__(self, file: Any, mode: str, counts: IOCount, key: str) -> None:
        super().__init__(file, mode)
        self._counts, self._key = counts, key

    def readinto(self, buffer: Any) -> int | None:  # noqa: D102
        got = super().readinto(buffer)
        self._counts.read[self._key] += got or 0
        return got

    def readall(self) -> bytes:  # noqa: D102
        data = super().readall()
        self._counts.read[self._key] += len(data)
        return data

    def write(self, data: Any) -> int | None:  # noqa: D102
        done = super().write(data)
        self._counts.written[self._key] += done or 0
        return done


def _counting_open(real_open: Any, counts: IOCount) -> Any:
    def open_(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
              closefd=True, opener=None):  # fmt: skip
        key = counts.key(file) if opener is None and closefd else None
        if key is None or set(mode) - set("rwaxbt+"):
            return real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
        raw_mode = "".join(c for c in mode if c not in "bt")
        raw = _CountingFileIO(file, raw_mode, counts, key)
        if buffering == 0 and "b" in mode:
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering in (-1, 0, 1) else buffering
        if "+" in mode:
            buffered = io.BufferedRandom(raw, size)
        elif "r" in mode:
            buffered = io.BufferedReader(raw, size)
        else:
            buffered = io.BufferedWriter(raw, size)
        if "b" in mode:
            return buffered
        return io.TextIOWrapper(buffered, encoding or "utf-8", errors, newline,
                                line_buffering=buffering == 1)  # fmt: skip

    return open_


@contextlib.contextmanager
def count_io(root: str | Path) -> Iterator[IOCount]:
    """Count bytes read and written under `root` while the block runs (this process only).

    Args:
        root: the folder whose files are counted (e.g. a run directory).

    Yields:
        The `IOCount`, filled as the block runs.
    """
    counts = IOCount(root)
    real_open = builtins.open
    counting = _counting_open(real_open, counts)
    builtins.open, io.open = counting, counting
    try:
        yield counts
    finally:
        builtins.open, io.open = real_open, real_open
