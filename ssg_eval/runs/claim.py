"""Claiming a run directory for a stage: the lock, the stored identity and the provenance refusals.

Every stage calls `stage_lock` for the whole stage and compares its own identity with the one
stored in the run (`identity.json`) through `check_identity`; a mismatch is refused naming each
differing key. This module decides nothing about shards, features or metrics themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssg_eval.errors import IdentityMismatch, RunLockedError, UnreadableFileError
from ssg_eval.runs.identity import identity_diff, identity_hash
from ssg_eval.runs.io import atomic_write_json
from ssg_eval.runs.layout import IDENTITY_JSON, results_dir
from ssg_eval.runs.lock import RunLock
from ssg_eval.runs.records import read_record

__all__ = [
    "check_identity",
    "stage_lock",
    "stage_lock_on_all_ranks",
    "stored_identity",
    "write_identity",
]


def stored_identity(directory: str | Path) -> dict[str, Any] | None:
    """The `identity` stored in `<run>/identity.json`, or None for a run dir without one.

    Raises:
        UnreadableFileError: the file is damaged (named, with the fix).
    """
    path = Path(directory) / IDENTITY_JSON
    if not path.is_file():
        return None
    return dict(read_record(path, "identity", need=("identity",))["identity"])


def write_identity(directory: str | Path, identity: dict[str, Any]) -> Path:
    """Write `<run>/identity.json` (`identity` and its `config_hash`) atomically."""
    payload = {"config_hash": identity_hash(identity), "identity": identity}
    return atomic_write_json(Path(directory) / IDENTITY_JSON, payload)


def mismatch_message(directory: Path, stored: dict[str, Any], wanted: dict[str, Any],
                     fix: str) -> str:  # fmt: skip
    """One line: both hashes, every differing key, and the fix."""
    diffs = identity_diff(stored, wanted)
    return (
        f"run dir {directory} holds samples of config hash {identity_hash(stored)}, but this "
        f"command's config hashes to {identity_hash(wanted)}: " + "; ".join(diffs) + f". {fix}"
    )


def check_identity(
    directory: str | Path, wanted: dict[str, Any], *, overwrite: bool, fix: str
) -> str:
    """Compare the run's stored identity with `wanted`.

    Args:
        directory: the run directory.
        wanted: this command's identity (`identity_of(cfg)`).
        overwrite: when true a different or unreadable identity is reported as `"replace"`
            instead of refused (the damaged file is never parsed further).
        fix: the advice appended to a refusal.

    Returns:
        `"new"` (no identity stored), `"same"` or `"replace"`.

    Raises:
        IdentityMismatch: the identities differ and `overwrite` is false.
        UnreadableFileError: the stored identity is damaged and `overwrite` is false.
    """
    directory = Path(directory)
    try:
        stored = stored_identity(directory)
    except UnreadableFileError:
        if overwrite:
            return "replace"
        raise
    if stored is None:
        return "new"
    if not identity_diff(stored, wanted):
        return "same"
    if overwrite:
        return "replace"
    raise IdentityMismatch(mismatch_message(directory, stored, wanted, fix))


@contextlib.contextmanager
def stage_lock(cfg: Any, stage: str, rank: int = 0) -> Iterator[RunLock | None]:
    """Hold the run's lock for the whole block on rank 0 (other ranks follow rank 0's claim).

    Raises:
        RunLockedError: another process holds the run (one line naming it).
    """
    if rank != 0:
        yield None
        return
    lock = RunLock(results_dir(cfg), str(cfg.run_name), stage)
    with lock:
        yield lock


@contextlib.contextmanager
def stage_lock_on_all_ranks(cfg: Any, stage: str, rank: int) -> Iterator[None]:
    """`stage_lock` under torchrun: rank 0 holds the run's lock for the whole block, and every rank
    learns whether it got it before touching the run dir (the others stop with rank 0's line).

    Raises:
        RunLockedError: on every rank, when another process holds the run.
    """
    from ssg_eval.utils import dist

    with contextlib.ExitStack() as stack:
        refusal = None
        try:
            stack.enter_context(stage_lock(cfg, stage, rank))
        except RunLockedError as err:
            refusal = str(err)
        refusal = dist.gather_objects(refusal)[0]
        if refusal is not None:
            raise RunLockedError(refusal)
        yield
