"""One writer per run directory: an exclusive `filelock` lock held for a whole stage.

The lock lives outside the run dir (`<results>/locks/<run_name>.lock`), so that taking it never
changes the run's files, and it is taken before anything in the run dir is read, removed or
written. A second process is refused with one line naming the holder; this module holds no
stage logic.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from pathlib import Path
from typing import Any

import filelock

from ssg_eval.errors import RunLockedError, UnreadableFileError
from ssg_eval.runs.io import atomic_write_json, ensure_dir
from ssg_eval.runs.records import read_record

__all__ = ["RunLock"]


class RunLock:
    """Exclusive lock of one run name under a results directory (a context manager).

    Args:
        results: the results directory (`paths.results`, resolved).
        run_name: the run whose directory is protected.
        stage: the stage taking the lock (recorded for the refusal message).
    """

    def __init__(self, results: str | Path, run_name: str, stage: str):
        self.path = Path(results) / "locks" / f"{run_name}.lock"
        self.holder_path = self.path.with_name(self.path.name + ".holder.json")
        self.run_name, self.stage = run_name, stage
        self._lock: filelock.BaseFileLock | None = None

    def _holder(self) -> str:
        try:
            info: dict[str, Any] = read_record(self.holder_path, "lock_holder")
        except (FileNotFoundError, UnreadableFileError):
            return "another process (holder unknown)"
        return (f"{info.get('stage', '?')} on host {info.get('host', '?')}, pid "
                f"{info.get('pid', '?')}, since {info.get('since', '?')}")  # fmt: skip

    def acquire(self) -> RunLock:
        """Take the lock now or raise.

        Raises:
            RunLockedError: another process holds it (one line: holder, and how to clear it).
            OSError: the locks directory cannot be created (unwritable results path).
        """
        ensure_dir(self.path.parent)
        lock = filelock.FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunLockedError(
                f"run {self.run_name} is locked by {self._holder()} ({self.path}); wait for that "
                "process to finish or stop it. The lock is released when its holder exits, so a "
                f"stale lock can only remain on a network filesystem: then delete {self.path}"
            ) from None
        self._lock = lock
        since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        atomic_write_json(self.holder_path, {"stage": self.stage, "host": socket.gethostname(),
                                             "pid": os.getpid(), "since": since})  # fmt: skip
        return self

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._lock is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.holder_path.unlink()
        self._lock.release()
        self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
