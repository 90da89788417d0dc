"""Stale temp files: removed when their writer is dead, and in a shared folder only once idle.

A run directory is locked, so a temp whose pid is gone is stale at once. `results/cache` is
written by other runs and other hosts without a lock (a pid from another host means nothing
here), so there a dead-looking temp is removed only once it has not been written for a while.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ssg_eval.runs.io import clean_stale_temps


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(directory, name: str, pid: int, age_s: float = 0.0):
    path = directory / f"{name}.{pid}.0123abcd.tmp"
    path.write_bytes(b"partial")
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_a_locked_folder_drops_dead_writers_temps_at_once(tmp_path):
    dead = _temp(tmp_path, "metrics.json", _dead_pid())
    live = _temp(tmp_path, "features.npz", os.getppid(), age_s=7200)
    assert clean_stale_temps(tmp_path) == [dead]
    assert live.is_file() and not dead.exists()


def test_a_shared_folder_drops_only_idle_temps_of_dead_writers(tmp_path):
    pid = _dead_pid()
    young = _temp(tmp_path, "ref_features.npz", pid, age_s=60)
    idle = _temp(tmp_path, "other_features.npz", pid, age_s=7200)
    live = _temp(tmp_path, "third_features.npz", os.getppid(), age_s=7200)
    assert clean_stale_temps(tmp_path, recursive=False, min_age_s=3600) == [idle]
    assert young.is_file() and live.is_file() and not idle.exists()
